"""The closed action set (SAFETY.md) as pydantic models: actions are data, not tools.

The planner emits these; the executor alone turns one into API calls
(`tools.executor`). Each action names its target, its parameters, the
hypothesis it serves, the evidence it rests on, the effect it should have and
how to verify it. JSON that does not validate is rejected with the
validation error (`ActionRejected`), never repaired by guessing: unknown
fields are errors, kinds are Literals, names follow Kubernetes' rules.
"""

# The models live in state.py, so that the policy gate (which may import only
# state) judges the very objects the executor runs.
from __future__ import annotations

from state import (
    ACTION_ADAPTER,
    ACTION_NAMES,
    Action,
    ActionName,
    ActionRejected,
    CordonAction,
    DeletePodAction,
    EscalateAction,
    EscalateParams,
    NoParams,
    PatchServiceAction,
    PatchServiceParams,
    PortFix,
    Quantity,
    ResourceValues,
    RestartAction,
    RollbackAction,
    RollbackParams,
    ScaleAction,
    ScaleParams,
    SetHpaAction,
    SetHpaParams,
    SetImageAction,
    SetImageParams,
    SetResourcesAction,
    SetResourcesParams,
    ShiftTrafficAction,
    ShiftTrafficParams,
    Target,
    TargetKind,
    UncordonAction,
    action_schema,
    parse_action,
)

__all__ = [
    "ACTION_ADAPTER",
    "ACTION_NAMES",
    "Action",
    "ActionName",
    "ActionRejected",
    "CordonAction",
    "DeletePodAction",
    "EscalateAction",
    "EscalateParams",
    "NoParams",
    "PatchServiceAction",
    "PatchServiceParams",
    "PortFix",
    "Quantity",
    "ResourceValues",
    "RestartAction",
    "RollbackAction",
    "RollbackParams",
    "ScaleAction",
    "ScaleParams",
    "SetHpaAction",
    "SetHpaParams",
    "SetImageAction",
    "SetImageParams",
    "SetResourcesAction",
    "SetResourcesParams",
    "ShiftTrafficAction",
    "ShiftTrafficParams",
    "Target",
    "TargetKind",
    "UncordonAction",
    "action_schema",
    "parse_action",
]
