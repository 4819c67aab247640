"""The typed state of an incident, as it flows through the graph (graph.py).

Three shapes, as in LangGraph's templates: `IncidentInput` is what a trigger
may send, `IncidentState` is the full state the nodes read and update, and
`IncidentReport` is what a post-mortem and `kubemedic run --json` need.
Fields that accumulate (evidence, transcript, token usage) have reducers, so
parallel nodes (log analyst and dependency tracer) can both add to them.

This module imports nothing of kubemedic's: the policy gate (policies/) may
import it and nothing else.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

# -- Kubernetes names and quantities (apimachinery's validation rules) ---------

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def dns1123_label(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"{value!r} is longer than 63 characters (a DNS-1123 label)")
    if not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def dns1123_subdomain(value: str) -> str:
    if len(value) > 253:
        raise ValueError(f"{value!r} is longer than 253 characters (a DNS-1123 subdomain)")
    if not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def dns1035_label(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"{value!r} is longer than 63 characters (a DNS-1035 label)")
    if not _DNS1035_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1035 label: lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return value


#: A namespace name (DNS-1123 label).
Namespace = Annotated[str, AfterValidator(dns1123_label)]
#: An object name: Pods, Deployments, ConfigMaps, Nodes... (DNS-1123 subdomain).
Name = Annotated[str, AfterValidator(dns1123_subdomain)]
#: A Service name (DNS-1035 label).
ServiceName = Annotated[str, AfterValidator(dns1035_label)]
#: A container name (DNS-1123 label).
ContainerName = Annotated[str, AfterValidator(dns1123_label)]

_SUFFIX = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


def parse_quantity(value: str | int | float) -> float:
    """The quantity as a float (cores for CPU, bytes for memory); ValueError names the bad value."""
    if isinstance(value, int | float):
        return float(value)
    m = _QUANTITY.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]


def format_cpu(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def format_bytes(n: float) -> str:
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}".replace(".0" + unit, unit)
    return f"{round(n)}"


def format_validation_error(exc: ValidationError) -> str:
    """Every error of a pydantic validation, each with its field path."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


# -- Actions: the closed action set of SAFETY.md, as data -----------------------

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


# -- The incident ------------------------------------------------------------------

Mode = Literal["observe", "approve", "autonomous"]
TriggerKind = Literal["alert", "slack", "cli", "scenario"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ObjectRef(BaseModel):
    """A Kubernetes object by kind, namespace (empty for cluster-scoped) and name."""

    model_config = _FROZEN

    kind: str
    namespace: str = ""
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace + '/' if self.namespace else ''}{self.name}"

    @property
    def key(self) -> str:
        return str(self)


class AlertInfo(BaseModel):
    """One Alertmanager alert. Labels and annotations are untrusted text."""

    model_config = ConfigDict(extra="ignore")

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: str = ""
    generator_url: str = ""


class IncidentInput(BaseModel):
    """What a trigger may send: an alert, a chat message or a CLI question."""

    trigger: TriggerKind
    #: The Slack message or CLI question, verbatim (untrusted).
    question: str = ""
    alert: AlertInfo | None = None
    cluster: str = ""
    namespace: str | None = None
    workload: ObjectRef | None = None
    mode: Mode = "observe"
    requested_by: str = ""
    #: A caller-chosen id (the scenario run, the Slack thread); generated when empty.
    incident_id: str = ""


class Incident(BaseModel):
    """The incident as intake understood it."""

    id: str
    title: str
    trigger: TriggerKind
    cluster: str = ""
    namespace: str | None = None
    workload: ObjectRef | None = None
    #: Normalised symptoms, for memory: alert name, namespace, workload kind.
    fingerprint: str
    mode: Mode
    alert: AlertInfo | None = None
    question: str = ""
    requested_by: str = ""
    #: Cluster time at intake.
    opened_at: datetime


EvidenceSource = Literal[
    "status", "events", "logs", "metrics", "traces", "rollout", "config", "graph", "memory", "alert"
]


class Evidence(BaseModel):
    """One observed fact, with an id that hypotheses and actions cite."""

    #: Unique within the incident, prefixed by the producing agent: "log-3", "dep-7".
    id: str
    source: EvidenceSource
    #: The signal's name: oom_killed, crash_loop, image_pull_error, config_error, pending,
    #: probe_failure, no_endpoints, target_port_mismatch, rollout_changed, rollout_stuck,
    #: hpa_at_max, node_not_ready, error_ratio, latency, saturation, new_log_template,
    #: dependency_error, quota_exceeded, auth_error, restarts, memory_growth, ...
    signal: str
    subject: ObjectRef
    summary: str
    #: Strength of the anomaly, 0 (normal) to 1 (certain failure).
    severity: float = Field(default=0.5, ge=0.0, le=1.0)
    #: When the anomaly began, when known (cluster time).
    onset: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    agent: str = ""


class LogTemplate(BaseModel):
    """A mined log template (Drain3) with how often it occurred."""

    template: str
    count: int
    level: Literal["debug", "info", "warning", "error", "fatal", "unknown"] = "unknown"
    #: True when the template is absent from the workload's baseline (earlier logs).
    new: bool = False
    exemplar: str = ""
    #: A dependency the lines name (host, Service, address), when they name one.
    dependency: str | None = None


class WorkloadLogs(BaseModel):
    workload: ObjectRef
    templates: list[LogTemplate] = Field(default_factory=list)
    lines_read: int = 0
    summary: str = ""


class LogFindings(BaseModel):
    """The log analyst's typed result."""

    workloads: list[WorkloadLogs] = Field(default_factory=list)
    summary: str = ""
    evidence_ids: list[str] = Field(default_factory=list)


class GraphEdge(BaseModel):
    source: ObjectRef
    target: ObjectRef
    via: Literal["env", "trace", "endpoints", "route", "selector"] = "env"


class Candidate(BaseModel):
    """A component the dependency tracer suspects, with why."""

    subject: ObjectRef
    score: float = Field(ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)
    evidence_ids: list[str] = Field(default_factory=list)
    #: Dependencies whose anomalies explain this one (then it is a symptom).
    explained_by: list[ObjectRef] = Field(default_factory=list)


class DependencyFindings(BaseModel):
    """The dependency tracer's typed result."""

    nodes: list[ObjectRef] = Field(default_factory=list)
    edges: list[GraphEdge] = Field(default_factory=list)
    anomalous: list[ObjectRef] = Field(default_factory=list)
    candidates: list[Candidate] = Field(default_factory=list)
    summary: str = ""
    evidence_ids: list[str] = Field(default_factory=list)


class Category(BaseModel):
    """AIOpsLab's root-cause category."""

    #: Hardware, Operating System, Virtualization, Application.
    system_level: str
    #: Misconfiguration, Code Defect, Dependency Problem, Operation Error,
    #: Resource Exhaustion, Network/Storage Issue, Authentication Issue, No Fault.
    fault_type: str


class Hypothesis(BaseModel):
    """A ranked root-cause hypothesis."""

    id: str
    root_cause: ObjectRef
    #: The cause's kind, which decides the plan: oom, bad_rollout, scaled_to_zero,
    #: service_port_mismatch, selector_mismatch, missing_config, image_pull, crash_loop,
    #: hang, saturation, node_failure, quota_exhausted, bad_canary, auth_failure, ...
    cause_kind: str
    category: Category
    confidence: float = Field(ge=0.0, le=1.0)
    statement: str
    evidence_ids: list[str] = Field(default_factory=list)
    #: Set on a resolved cause (Plan.resolved): the plan revision whose applied action fixed it.
    resolved_in: int | None = None


class Plan(BaseModel):
    """The planner's output: ranked hypotheses and an ordered list of typed actions."""

    hypotheses: list[Hypothesis] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    reasoning: str = ""
    #: 0 for the first plan, +1 for each critic revision or re-plan after verification.
    revision: int = 0
    #: Actions dropped because their JSON did not validate, with the validation error.
    rejected: list[str] = Field(default_factory=list)
    #: Causes an earlier plan of this incident acted on whose signs were gone when the
    #: cluster was read again (proven, and already fixed), in the order they were fixed.
    #: A later plan carries them on: two faults at once are found and fixed one by one.
    resolved: list[Hypothesis] = Field(default_factory=list)

    def ranked(self) -> list[Hypothesis]:
        """The incident's root causes, best first: the resolved causes in the order they
        were fixed (the first was the incident's start), then the open hypotheses by
        confidence; one per object."""
        seen: set[str] = set()
        out: list[Hypothesis] = []
        for h in [*self.resolved, *sorted(self.hypotheses, key=lambda h: -h.confidence)]:
            if h.root_cause.key not in seen:
                seen.add(h.root_cause.key)
                out.append(h)
        return out


class CriticVerdict(BaseModel):
    """The safety critic's verdict on a plan."""

    verdict: Literal["approve", "revise", "reject"]
    reasons: list[str] = Field(default_factory=list)
    round: int = 0


class GateDecision(BaseModel):
    """The policy gate's decision on one action."""

    action_index: int
    action: str
    target: str
    decision: Literal["allow", "needs_approval", "deny"]
    reasons: list[str] = Field(default_factory=list)
    at: datetime


class Approval(BaseModel):
    """A person's answer to an approval request."""

    decision: Literal["approve", "reject"]
    #: Indexes into the plan's actions that this answer covers (all pending when empty).
    action_indexes: list[int] = Field(default_factory=list)
    by: str
    via: Literal["terminal", "slack", "api", "policy"]
    at: datetime
    #: The request this answers; an answer to another request (replayed, forged) is refused.
    request_id: str = ""
    comment: str = ""


class ExecutedAction(BaseModel):
    """What the executor did with one action."""

    action_index: int
    action: Action
    status: Literal[
        "applied", "dry_run_failed", "denied", "failed", "skipped", "escalated", "undone"
    ]
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    inverse: Action | None = None
    error: str = ""
    at: datetime
    #: The plan revision the action belonged to: (incident, revision, index) is the
    #: executor's idempotency key.
    plan_revision: int = 0


class Verification(BaseModel):
    """The verifier's reading after the recovery window."""

    status: Literal["recovered", "not_yet", "worse"]
    checks: list[str] = Field(default_factory=list)
    window_s: float = 0.0
    at: datetime


TranscriptKind = Literal[
    "intake",
    "observation",
    "evidence",
    "hypothesis",
    "proposal",
    "verdict",
    "decision",
    "approval",
    "dry_run",
    "api_call",
    "verification",
    "memory",
    "fallback",
    "error",
    "note",
    "outcome",
]


class TranscriptEntry(BaseModel):
    """One line of the audit trail: who did what, when, on what evidence."""

    at: datetime
    node: str
    kind: TranscriptKind
    summary: str
    data: dict[str, Any] = Field(default_factory=dict)


class TokenUsage(BaseModel):
    input: int = 0
    output: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input=self.input + other.input,
            output=self.output + other.output,
            cost_usd=self.cost_usd + other.cost_usd,
        )


def _add_tokens(left: TokenUsage, right: TokenUsage) -> TokenUsage:
    return left + right


class PastIncident(BaseModel):
    """A similar earlier incident, from memory."""

    incident_id: str
    similarity: float
    root_cause: ObjectRef | None = None
    cause_kind: str = ""
    category: Category | None = None
    actions: list[str] = Field(default_factory=list)
    outcome: str = ""
    time_to_recover_s: float | None = None


class ActionStats(BaseModel):
    """How one action kind fared for one failure kind."""

    cause_kind: str
    action: str
    successes: int = 0
    failures: int = 0
    mean_time_to_recover_s: float | None = None


class Recall(BaseModel):
    similar: list[PastIncident] = Field(default_factory=list)
    stats: list[ActionStats] = Field(default_factory=list)
    store: str = ""


Outcome = Literal[
    "recovered",
    "not_recovered",
    "escalated",
    "no_action",
    "recommended",
    "rejected",
    "denied",
    "failed",
]


@dataclass
class IncidentState:
    """The full state of one incident's run through the graph."""

    #: What the trigger sent.
    input: IncidentInput
    #: The incident as intake understood it.
    incident: Incident | None = None
    #: Every observed fact; both specialists add to it in parallel.
    evidence: Annotated[list[Evidence], operator.add] = field(default_factory=list)
    #: Past incidents and action statistics from memory.
    recall: Recall | None = None
    #: The log analyst's result.
    log_findings: LogFindings | None = None
    #: The dependency tracer's result.
    dependency_findings: DependencyFindings | None = None
    #: The current plan (replaced on revision).
    plan: Plan | None = None
    #: The safety critic's latest verdict.
    verdict: CriticVerdict | None = None
    #: Critic rounds so far (bounded).
    critic_rounds: int = 0
    #: The gate's decisions on the current plan.
    decisions: list[GateDecision] = field(default_factory=list)
    #: Approval request currently awaiting an answer (its id), if any.
    pending_approval: str = ""
    #: Plan indexes a person approved for the current decisions (reset by the gate).
    approved_actions: list[int] = field(default_factory=list)
    #: Answers from people (or the policy) to approval requests.
    approvals: Annotated[list[Approval], operator.add] = field(default_factory=list)
    #: What the executor did.
    executed: Annotated[list[ExecutedAction], operator.add] = field(default_factory=list)
    #: Verifier readings.
    verifications: Annotated[list[Verification], operator.add] = field(default_factory=list)
    #: Re-plans after a failed verification so far (bounded).
    replans: int = 0
    #: How the incident ended.
    outcome: Outcome | None = None
    #: The audit trail.
    transcript: Annotated[list[TranscriptEntry], operator.add] = field(default_factory=list)
    #: Model tokens and cost spent on this incident.
    tokens: Annotated[TokenUsage, _add_tokens] = field(default_factory=TokenUsage)
    #: Cluster time when the incident was detected (a fault confirmed by evidence).
    detected_at: datetime | None = None
    #: Cluster time when the top hypothesis was first formed.
    localized_at: datetime | None = None
    #: Cluster time when the verifier confirmed recovery.
    mitigated_at: datetime | None = None


class IncidentReport(BaseModel):
    """What `kubemedic run --json` and the post-mortem read from a finished state."""

    incident: Incident
    outcome: Outcome | None
    #: The root causes, best first (Plan.ranked): those fixed along the way, then the rest.
    hypotheses: list[Hypothesis]
    actions: list[ExecutedAction]
    decisions: list[GateDecision]
    verifications: list[Verification]
    tokens: TokenUsage
    detected_at: datetime | None
    localized_at: datetime | None
    mitigated_at: datetime | None
    transcript: list[TranscriptEntry]
    evidence: list[Evidence] = Field(default_factory=list)
    plan: Plan | None = None
    approvals: list[Approval] = Field(default_factory=list)
    recall: Recall | None = None
    #: The specialists' results: the post-mortem draws the service graph and log templates.
    log_findings: LogFindings | None = None
    dependency_findings: DependencyFindings | None = None

    def ranked(self) -> list[Hypothesis]:
        """The root causes, best first: Plan.ranked, or by confidence for a report written
        before plans kept their resolved causes."""
        if self.plan is not None:
            return self.plan.ranked()
        return sorted(self.hypotheses, key=lambda h: -h.confidence)

    @classmethod
    def from_state(cls, state: IncidentState) -> IncidentReport:
        """The report of a finished (or interrupted) incident; needs intake to have run."""
        if state.incident is None:
            raise ValueError("the incident has no intake yet: nothing to report")
        return cls(
            incident=state.incident,
            outcome=state.outcome,
            hypotheses=state.plan.ranked() if state.plan else [],
            actions=state.executed,
            decisions=state.decisions,
            verifications=state.verifications,
            tokens=state.tokens,
            detected_at=state.detected_at,
            localized_at=state.localized_at,
            mitigated_at=state.mitigated_at,
            transcript=state.transcript,
            evidence=state.evidence,
            plan=state.plan,
            approvals=state.approvals,
            recall=state.recall,
            log_findings=state.log_findings,
            dependency_findings=state.dependency_findings,
        )
