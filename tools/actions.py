"""The closed action set (SAFETY.md) as pydantic models: actions are data, not tools.

The planner emits these; the executor alone turns one into API calls
(`tools.executor`). Each action names its target, its parameters, the
hypothesis it serves, the evidence it rests on, the effect it should have and
how to verify it. JSON that does not validate is rejected with the
validation error (`ActionRejected`), never repaired by guessing: unknown
fields are errors, kinds are Literals, names follow Kubernetes' rules.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from tools.args import ContainerName, Name, Namespace, ServiceName
from tools.quantity import parse_quantity
from tools.registry import format_validation_error

TargetKind = Literal[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Pod",
    "Service",
    "HorizontalPodAutoscaler",
    "HTTPRoute",
    "Node",
]
ActionName = Literal[
    "restart",
    "delete_pod",
    "scale",
    "rollback",
    "set_resources",
    "set_image",
    "patch_service",
    "set_hpa",
    "shift_traffic",
    "cordon",
    "uncordon",
    "escalate",
]
ACTION_NAMES: tuple[str, ...] = ActionName.__args__  # type: ignore[attr-defined]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class ActionRejected(ValueError):
    """An action's JSON did not validate; the message is the validation error."""


class Target(BaseModel):
    """The object an action acts on. Nodes have no namespace; everything else needs one."""

    model_config = _STRICT

    kind: TargetKind
    namespace: Namespace | None = None
    name: Name

    @model_validator(mode="after")
    def _scope(self) -> Target:
        if self.kind == "Node" and self.namespace is not None:
            raise ValueError("a Node is cluster-scoped: namespace must be omitted")
        if self.kind != "Node" and self.namespace is None:
            raise ValueError(f"a {self.kind} target needs a namespace")
        return self

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace + '/' if self.namespace else ''}{self.name}"


class NoParams(BaseModel):
    model_config = _STRICT


class _ActionBase(BaseModel):
    model_config = _STRICT
    #: Target kinds this action accepts.
    kinds: ClassVar[tuple[str, ...]] = ()

    target: Target
    hypothesis_id: Annotated[str, Field(min_length=1, max_length=200)]
    evidence_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list
    )
    expected_effect: Annotated[str, Field(min_length=1, max_length=2000)]
    verification: Annotated[str, Field(min_length=1, max_length=2000)]

    @model_validator(mode="after")
    def _target_kind(self) -> _ActionBase:
        if self.kinds and self.target.kind not in self.kinds:
            name = type(self).model_fields["action"].default
            raise ValueError(f"{name} acts on {', '.join(self.kinds)}, not on a {self.target.kind}")
        return self


class RestartAction(_ActionBase):
    """Rollout restart (new pods, same spec) of a Deployment, StatefulSet or DaemonSet."""

    kinds = ("Deployment", "StatefulSet", "DaemonSet")
    action: Literal["restart"] = "restart"
    params: NoParams = Field(default_factory=NoParams)


class DeletePodAction(_ActionBase):
    """Delete one pod so that its controller recreates it."""

    kinds = ("Pod",)
    action: Literal["delete_pod"] = "delete_pod"
    params: NoParams = Field(default_factory=NoParams)


class ScaleParams(BaseModel):
    model_config = _STRICT
    replicas: Annotated[int, Field(ge=0, le=10_000)]


class ScaleAction(_ActionBase):
    """Set the replicas of a Deployment or StatefulSet."""

    kinds = ("Deployment", "StatefulSet")
    action: Literal["scale"] = "scale"
    params: ScaleParams


class RollbackParams(BaseModel):
    model_config = _STRICT
    to_revision: Annotated[int, Field(ge=1)]


class RollbackAction(_ActionBase):
    """Roll a Deployment back to a named earlier revision (`kubectl rollout undo --to-revision`)."""

    kinds = ("Deployment",)
    action: Literal["rollback"] = "rollback"
    params: RollbackParams


Quantity = Annotated[str, Field(min_length=1, max_length=32)]


class ResourceValues(BaseModel):
    model_config = _STRICT
    cpu: Quantity | None = None
    memory: Quantity | None = None

    @model_validator(mode="after")
    def _valid(self) -> ResourceValues:
        for key in ("cpu", "memory"):
            value = getattr(self, key)
            if value is not None:
                parse_quantity(value)
        return self

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v is not None}


class SetResourcesParams(BaseModel):
    model_config = _STRICT
    container: ContainerName
    requests: ResourceValues | None = None
    limits: ResourceValues | None = None

    @model_validator(mode="after")
    def _something(self) -> SetResourcesParams:
        if not (self.requests and self.requests.as_dict()) and not (
            self.limits and self.limits.as_dict()
        ):
            raise ValueError("give at least one of requests or limits (cpu or memory)")
        for key in ("cpu", "memory"):
            req = getattr(self.requests, key, None) if self.requests else None
            lim = getattr(self.limits, key, None) if self.limits else None
            if req is not None and lim is not None and parse_quantity(req) > parse_quantity(lim):
                raise ValueError(f"requests.{key} {req} is above limits.{key} {lim}")
        return self


class SetResourcesAction(_ActionBase):
    """Change one container's requests and/or limits."""

    kinds = ("Deployment", "StatefulSet", "DaemonSet")
    action: Literal["set_resources"] = "set_resources"
    params: SetResourcesParams


class SetImageParams(BaseModel):
    model_config = _STRICT
    container: ContainerName
    image: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\s]+$")]


class SetImageAction(_ActionBase):
    """Pin a container to an image that an earlier revision of the workload ran."""

    kinds = ("Deployment", "StatefulSet", "DaemonSet")
    action: Literal["set_image"] = "set_image"
    params: SetImageParams


class PortFix(BaseModel):
    model_config = _STRICT
    #: The Service port to fix (its `port`).
    port: Annotated[int, Field(ge=1, le=65535)]
    target_port: (
        Annotated[int, Field(ge=1, le=65535)]
        | Annotated[
            str, Field(min_length=1, max_length=15, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        ]
    )


class PatchServiceParams(BaseModel):
    model_config = _STRICT
    #: The complete new selector (keys not listed are removed).
    selector: dict[Annotated[str, Field(min_length=1, max_length=317)], str] | None = None
    ports: list[PortFix] | None = None

    @model_validator(mode="after")
    def _something(self) -> PatchServiceParams:
        if not self.selector and not self.ports:
            raise ValueError("give a selector or ports to fix")
        return self


class PatchServiceAction(_ActionBase):
    """Fix a Service's selector or a port's targetPort."""

    kinds = ("Service",)
    action: Literal["patch_service"] = "patch_service"
    params: PatchServiceParams


class SetHpaParams(BaseModel):
    model_config = _STRICT
    min_replicas: Annotated[int, Field(ge=1, le=10_000)] | None = None
    max_replicas: Annotated[int, Field(ge=1, le=10_000)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> SetHpaParams:
        if self.min_replicas is None and self.max_replicas is None:
            raise ValueError("give min_replicas and/or max_replicas")
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError("min_replicas is above max_replicas")
        return self


class SetHpaAction(_ActionBase):
    """Change an HPA's min/max replicas."""

    kinds = ("HorizontalPodAutoscaler",)
    action: Literal["set_hpa"] = "set_hpa"
    params: SetHpaParams


class ShiftTrafficParams(BaseModel):
    model_config = _STRICT
    #: Which rule of the route (its index in spec.rules).
    rule_index: Annotated[int, Field(ge=0, le=63)] = 0
    #: Backend Service name -> new weight; every backend of the rule, or a subset.
    weights: dict[ServiceName, Annotated[int, Field(ge=0, le=1_000_000)]]

    @model_validator(mode="after")
    def _weights(self) -> ShiftTrafficParams:
        if not self.weights:
            raise ValueError("give at least one backend weight")
        return self


class ShiftTrafficAction(_ActionBase):
    """Change the weights of a Gateway API HTTPRoute rule's backends."""

    kinds = ("HTTPRoute",)
    action: Literal["shift_traffic"] = "shift_traffic"
    params: ShiftTrafficParams


class CordonAction(_ActionBase):
    """Mark a node unschedulable."""

    kinds = ("Node",)
    action: Literal["cordon"] = "cordon"
    params: NoParams = Field(default_factory=NoParams)


class UncordonAction(_ActionBase):
    """Mark a node schedulable again."""

    kinds = ("Node",)
    action: Literal["uncordon"] = "uncordon"
    params: NoParams = Field(default_factory=NoParams)


class EscalateParams(BaseModel):
    model_config = _STRICT
    summary: Annotated[str, Field(min_length=1, max_length=4000)]
    findings: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list)
    severity: Literal["info", "warning", "critical"] = "critical"


class EscalateAction(_ActionBase):
    """Page a person with the findings; changes nothing in the cluster."""

    action: Literal["escalate"] = "escalate"
    params: EscalateParams


Action = Annotated[
    RestartAction
    | DeletePodAction
    | ScaleAction
    | RollbackAction
    | SetResourcesAction
    | SetImageAction
    | PatchServiceAction
    | SetHpaAction
    | ShiftTrafficAction
    | CordonAction
    | UncordonAction
    | EscalateAction,
    Field(discriminator="action"),
]

ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)


def parse_action(data: str | bytes | dict[str, Any] | Any) -> Action:
    """Validate an action from JSON text or a dict; ActionRejected names every error."""
    try:
        if isinstance(data, str | bytes):
            return ACTION_ADAPTER.validate_json(data)
        return ACTION_ADAPTER.validate_python(data)
    except ValidationError as exc:
        action = data.get("action") if isinstance(data, dict) else None
        raise ActionRejected(
            f"action {action!r} rejected: {format_validation_error(exc)}"
            if action
            else f"action rejected: {format_validation_error(exc)}"
        ) from exc


def action_schema() -> dict[str, Any]:
    """The JSON schema of the action union (for a model's structured output)."""
    return ACTION_ADAPTER.json_schema()
