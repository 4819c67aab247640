"""The policy gate: hard invariants in code, tunable limits in a file, approvals and budgets.

Deterministic, no model, no I/O: `evaluate(action, context, limits)` decides
allow / needs_approval / deny for one action, from a `GateContext` that the
agents gather through read tools (agents/gate_context.py). Imports nothing of
kubemedic's but state.
"""

from policies.approvals import approved_indexes, check_approval, new_request_id, plan_digest
from policies.budgets import budget_exceeded, writes_done
from policies.context import (
    HARD_MAX_REPLICAS,
    HARD_PROTECTED_NAMESPACES,
    GateContext,
    PastAction,
    PdbInfo,
    PodInfo,
)
from policies.gate import Decision, evaluate, evaluate_plan, is_protected_namespace, may_execute
from policies.limits import FreezeWindow, PolicyFileError, PolicyLimits, load_limits

__all__ = [
    "HARD_MAX_REPLICAS",
    "HARD_PROTECTED_NAMESPACES",
    "Decision",
    "FreezeWindow",
    "GateContext",
    "PastAction",
    "PdbInfo",
    "PodInfo",
    "PolicyFileError",
    "PolicyLimits",
    "approved_indexes",
    "budget_exceeded",
    "check_approval",
    "evaluate",
    "evaluate_plan",
    "is_protected_namespace",
    "load_limits",
    "may_execute",
    "new_request_id",
    "plan_digest",
    "writes_done",
]
