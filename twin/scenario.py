"""Scenario files: the typed form of `shared/SCENARIOS.md`, loading and validation.

A scenario says what cluster to build, which faults to inject when, what
alert Alertmanager would send, and (for the scorer alone) the truth: what
broke, what fixes it and when the cluster counts as recovered. Every key is
checked (unknown keys are errors), each fault type has its own parameter
model, and `validate_file` reports every problem with its path in the file
(`spec.faults[1].params.replicas: ...`) and its line, before anything starts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal, TypeAlias, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from twin.apps import BUILTIN as BUILTIN_APPS
from twin.behavior import BehaviorProfile, Call, LogStyle, Operation, Protocol, StartBehavior
from twin.cluster import TrafficSettings
from twin.quantity import parse_cpu, parse_memory, parse_quantity

API_VERSION = "kubemedic.dev/v1"
#: The entry Service of an app that names none (the twin's default traffic settings).
DEFAULT_ENTRY = TrafficSettings().service

# -- scalar types ----------------------------------------------------------------

_DURATION_RE = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$"
)


def parse_duration(value: Any) -> float:
    """`30s`, `2m`, `1h30m`, `500ms` (or a number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected a string such as 30s, 2m or 1h30m")
    text = value.strip()
    m = _DURATION_RE.match(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"invalid duration {value!r}: expected a string such as 30s, 2m or 1h30m")
    h, mins, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mins * 60 + s + ms / 1000


def format_duration(seconds: float) -> str:
    """Seconds as the shortest scenario duration string (`90` -> `1m30s`)."""
    total = round(seconds)
    if total == 0:
        return "0s"
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v)


_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_memory_rate(value: Any) -> float:
    """A memory growth rate such as `40Mi/min` -> bytes per second."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"invalid rate {value!r}: expected <quantity>/<s|min|h>, e.g. 40Mi/min")
    amount, _, unit = value.partition("/")
    per = _RATE_UNITS.get(unit.strip())
    if per is None:
        raise ValueError(f"invalid rate {value!r}: unit must be one of s, min, h")
    size = parse_quantity(amount)
    if size <= 0:
        raise ValueError(f"invalid rate {value!r}: must be positive")
    return size / per


def _cpu(value: Any) -> float:
    return parse_cpu(value)


def _memory(value: Any) -> int:
    return parse_memory(value)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Cpu = Annotated[float, BeforeValidator(_cpu)]
Memory = Annotated[int, BeforeValidator(_memory)]
MemoryRate = Annotated[float, BeforeValidator(parse_memory_rate)]

_WORKLOAD_RE = r"^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
#: A workload as `namespace/name`, or `name` in the scenario's default namespace.
WorkloadKey = Annotated[str, Field(pattern=_WORKLOAD_RE)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# -- objects -----------------------------------------------------------------------


class ObjectRef(_Model):
    """An object by kind, namespace and name (namespace empty for cluster-scoped kinds)."""

    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    namespace: str = ""
    apiVersion: str | None = None

    def key(self, default_namespace: str) -> tuple[str, str, str]:
        ns = "" if self.kind in CLUSTER_SCOPED else (self.namespace or default_namespace)
        return (self.kind, ns, self.name)

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )


#: Kinds that have no namespace (targets of these need none).
CLUSTER_SCOPED = frozenset(
    {"Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}
)


class ManifestMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    namespace: str | None = None


class Manifest(BaseModel):
    """A Kubernetes object as written in YAML; everything beyond the identity is kept as given."""

    model_config = ConfigDict(extra="allow")

    apiVersion: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    metadata: ManifestMeta

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


# -- spec ---------------------------------------------------------------------------


class NodesSpec(_Model):
    count: int = Field(default=3, ge=1, le=5000)
    cpu: Cpu = 8.0
    memory: Memory = 32 * 2**30


class TrafficSpec(_Model):
    rps: float = Field(default=40.0, ge=0)


class EntrySpec(_Model):
    service: str = Field(min_length=1)
    namespace: str = Field(min_length=1)


class CallSpec(_Model):
    service: str = Field(min_length=1)
    per_request: float = Field(default=1.0, ge=0)
    soft: bool = False
    operations: list[str] = Field(default_factory=list)


class OperationSpec(_Model):
    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)


class LogsSpec(_Model):
    info: list[str] = Field(default_factory=list)
    error: list[str] = Field(default_factory=list)
    warning: list[str] = Field(default_factory=list)
    startup: list[str] = Field(default_factory=list)


class BehaviorSpec(_Model):
    """What an image the twin does not know does (see twin.behavior.BehaviorProfile)."""

    cpu: Cpu = 0.05
    memory: Memory = 64 * 2**20
    latency_ms: float = Field(default=20.0, ge=0)
    calls: list[CallSpec] = Field(default_factory=list)
    operations: list[OperationSpec] = Field(default_factory=list)
    reference_rps: float = Field(default=10.0, gt=0)
    logs: LogsSpec = Field(default_factory=LogsSpec)
    on_start_failure: list[str] = Field(default_factory=list)
    start: StartBehavior = "healthy"
    crash_after: int = Field(default=200, ge=1)
    startup_seconds: float = Field(default=3.0, ge=0)
    log_style: LogStyle = "plain"
    protocol: Protocol = "http"
    required_env: list[str] = Field(default_factory=list)
    logger: str = ""
    http_paths: list[str] | None = None
    port: int = Field(default=8080, ge=1, le=65535)

    def to_profile(self) -> BehaviorProfile:
        base = BehaviorProfile()
        return BehaviorProfile(
            cpu=self.cpu,
            memory=self.memory,
            latency_ms=self.latency_ms,
            calls=tuple(
                Call(c.service, c.per_request, c.soft, tuple(c.operations)) for c in self.calls
            ),
            operations=tuple(Operation(o.name, o.weight) for o in self.operations),
            reference_rps=self.reference_rps,
            info_logs=tuple(self.logs.info) or base.info_logs,
            error_logs=tuple(self.logs.error) or base.error_logs,
            warning_logs=tuple(self.logs.warning),
            startup_logs=tuple(self.logs.startup),
            on_start_failure=tuple(self.on_start_failure),
            start=self.start,
            crash_after=self.crash_after,
            startup_seconds=self.startup_seconds,
            log_style=self.log_style,
            protocol=self.protocol,
            required_env=tuple(self.required_env),
            logger=self.logger,
            http_paths=tuple(self.http_paths) if self.http_paths is not None else base.http_paths,
            port=self.port,
        )


# -- faults ---------------------------------------------------------------------------

FaultType = Literal[
    "patch",
    "apply",
    "delete",
    "scale",
    "rollout",
    "memory-leak",
    "cpu-hog",
    "hang",
    "error-rate",
    "latency",
    "node-down",
    "secret-rotated",
    "traffic-spike",
    "noise",
]
FAULT_TYPES: tuple[str, ...] = get_args(FaultType)


class NoParams(_Model):
    pass


class PatchParams(_Model):
    #: A strategic merge patch, as `kubectl patch` sends it.
    patch: dict[str, Any]


class ApplyParams(_Model):
    #: The object to create, or to replace if it exists.
    object: Manifest


class ScaleParams(_Model):
    replicas: int = Field(ge=0)


class RolloutParams(_Model):
    image: str = Field(min_length=1)
    behavior: StartBehavior = "healthy"
    #: Which container gets the image; the first one when omitted.
    container: str | None = None
    #: The `kubernetes.io/change-cause` annotation a CI system would write.
    change_cause: str | None = None


class MemoryLeakParams(_Model):
    #: Growth, e.g. `40Mi/min`; stored as bytes per second.
    rate: MemoryRate
    container: str | None = None


class CpuHogParams(_Model):
    cores: Cpu = Field(gt=0)


class ErrorRateParams(_Model):
    #: Fraction of requests that fail.
    rate: float = Field(gt=0, le=1)
    log: str = "ERROR request failed: internal error"
    #: The fault ends by itself after this long.
    duration: Duration | None = None


class LatencyParams(_Model):
    ms: float = Field(gt=0)
    #: Only calls to this Service (one edge); all requests of the target when omitted.
    to: str | None = None


class SecretRotatedParams(_Model):
    #: The Service (or workload) whose credentials were rotated.
    dependency: str = Field(min_length=1)


class TrafficSpikeParams(_Model):
    factor: float = Field(gt=0)


class NoiseParams(_Model):
    log: str = Field(min_length=1)
    #: Lines per second.
    rate: float = Field(default=1.0, gt=0)


class _FaultBase(_Model):
    at: Duration = 0.0
    target: ObjectRef


class PatchFault(_FaultBase):
    type: Literal["patch"]
    params: PatchParams


class ApplyFault(_FaultBase):
    type: Literal["apply"]
    #: Optional: the applied object says what it is.
    target: ObjectRef | None = None  # type: ignore[assignment]
    params: ApplyParams


class DeleteFault(_FaultBase):
    type: Literal["delete"]
    params: NoParams = Field(default_factory=NoParams)


class ScaleFault(_FaultBase):
    type: Literal["scale"]
    params: ScaleParams


class RolloutFault(_FaultBase):
    type: Literal["rollout"]
    params: RolloutParams


class MemoryLeakFault(_FaultBase):
    type: Literal["memory-leak"]
    params: MemoryLeakParams


class CpuHogFault(_FaultBase):
    type: Literal["cpu-hog"]
    params: CpuHogParams


class HangFault(_FaultBase):
    type: Literal["hang"]
    params: NoParams = Field(default_factory=NoParams)


class ErrorRateFault(_FaultBase):
    type: Literal["error-rate"]
    params: ErrorRateParams


class LatencyFault(_FaultBase):
    type: Literal["latency"]
    params: LatencyParams


class NodeDownFault(_FaultBase):
    type: Literal["node-down"]
    params: NoParams = Field(default_factory=NoParams)


class SecretRotatedFault(_FaultBase):
    type: Literal["secret-rotated"]
    params: SecretRotatedParams


class TrafficSpikeFault(_FaultBase):
    type: Literal["traffic-spike"]
    #: Optional: a Service whose callers spike; the entry service when omitted.
    target: ObjectRef | None = None  # type: ignore[assignment]
    params: TrafficSpikeParams


class NoiseFault(_FaultBase):
    type: Literal["noise"]
    params: NoiseParams


AnyFault: TypeAlias = (
    PatchFault
    | ApplyFault
    | DeleteFault
    | ScaleFault
    | RolloutFault
    | MemoryLeakFault
    | CpuHogFault
    | HangFault
    | ErrorRateFault
    | LatencyFault
    | NodeDownFault
    | SecretRotatedFault
    | TrafficSpikeFault
    | NoiseFault
)
Fault = Annotated[AnyFault, Field(discriminator="type")]

#: Which target kinds each fault type acts on (None: any kind).
FAULT_TARGET_KINDS: dict[str, frozenset[str] | None] = {
    "patch": None,
    "apply": None,
    "delete": None,
    "scale": frozenset({"Deployment", "StatefulSet", "ReplicaSet"}),
    "rollout": frozenset({"Deployment", "StatefulSet", "DaemonSet"}),
    "memory-leak": frozenset({"Deployment", "StatefulSet"}),
    "cpu-hog": frozenset({"Deployment", "StatefulSet"}),
    "hang": frozenset({"Deployment", "StatefulSet"}),
    "error-rate": frozenset({"Deployment", "StatefulSet"}),
    "latency": frozenset({"Deployment", "StatefulSet", "Service"}),
    "node-down": frozenset({"Node"}),
    "secret-rotated": frozenset({"Deployment", "StatefulSet"}),
    "traffic-spike": frozenset({"Service"}),
    "noise": frozenset({"Deployment", "StatefulSet"}),
}

# -- alert -----------------------------------------------------------------------------


class ServiceValue(_Model):
    service: str = Field(min_length=1)
    value: float = Field(ge=0)
    namespace: str | None = None


class ServiceLatency(_Model):
    service: str = Field(min_length=1)
    ms: float = Field(gt=0)
    namespace: str | None = None


class WorkloadValue(_Model):
    workload: WorkloadKey
    value: int = Field(ge=0)


class WorkloadOnly(_Model):
    workload: WorkloadKey


ALERT_CONDITIONS = ("error_rate_above", "latency_p99_above", "restarts_above", "not_ready", "at")


class AlertWhen(_Model):
    error_rate_above: ServiceValue | None = None
    latency_p99_above: ServiceLatency | None = None
    restarts_above: WorkloadValue | None = None
    not_ready: WorkloadOnly | None = None
    #: Fires at this time whatever the cluster does (a spurious alert).
    at: Duration | None = None
    #: How long the condition must hold before the alert fires.
    for_: Duration = Field(default=0.0, alias="for")

    @model_validator(mode="after")
    def _one_condition(self) -> AlertWhen:
        given = [c for c in ALERT_CONDITIONS if getattr(self, c) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one condition of "
                + ", ".join(ALERT_CONDITIONS)
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def condition(self) -> str:
        return next(c for c in ALERT_CONDITIONS if getattr(self, c) is not None)


class AlertSpec(_Model):
    when: AlertWhen
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _alertname(cls, v: dict[str, str]) -> dict[str, str]:
        if not v.get("alertname"):
            raise ValueError("an alert needs an 'alertname' label")
        return v


class Spec(_Model):
    seed: int = 0
    #: A built-in application (twin/apps/<app>.py).
    app: str | None = None
    nodes: NodesSpec = Field(default_factory=NodesSpec)
    manifests: list[Manifest] = Field(default_factory=list)
    behaviors: dict[str, BehaviorSpec] = Field(default_factory=dict)
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    entry: EntrySpec | None = None
    horizon: Duration = 1800.0
    faults: list[Fault] = Field(default_factory=list)
    alert: AlertSpec | None = None


# -- truth --------------------------------------------------------------------------------

SystemLevel = Literal["Hardware", "Operating System", "Virtualization", "Application"]
FaultCategory = Literal[
    "Misconfiguration",
    "Code Defect",
    "Authentication Issue",
    "Network/Storage Issue",
    "Operation Error",
    "Dependency Problem",
    "Resource Exhaustion",
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
ACTIONS: tuple[str, ...] = get_args(ActionName)


class Category(_Model):
    system_level: SystemLevel
    fault_type: FaultCategory


class ActionRule(_Model):
    action: ActionName
    target: ObjectRef | None = None
    #: Alone (no target): the action on any target in this namespace.
    namespace: str | None = None
    #: What a fitting action sets (e.g. replicas), for the scorer's report.
    params: dict[str, Any] = Field(default_factory=dict)


class RecoveredSpec(_Model):
    """The oracle: every condition given holds, continuously, for `for`."""

    ready: list[WorkloadKey] = Field(default_factory=list)
    error_rate_below: ServiceValue | None = None
    latency_p99_below: ServiceLatency | None = None
    rollout_complete: list[WorkloadKey] = Field(default_factory=list)
    no_pending: list[str] = Field(default_factory=list)
    restarts_stable: list[WorkloadKey] = Field(default_factory=list)
    for_: Duration = Field(default=60.0, alias="for")


class Truth(_Model):
    expect: Literal["recover", "escalate", "nothing"] = "nothing"
    detection: bool = False
    root_cause: list[ObjectRef] = Field(default_factory=list)
    category: Category | None = None
    accepted_actions: list[ActionRule] = Field(default_factory=list)
    forbidden_actions: list[ActionRule] = Field(default_factory=list)
    recovered: RecoveredSpec = Field(default_factory=RecoveredSpec)

    @model_validator(mode="after")
    def _consistent(self) -> Truth:
        if self.expect != "nothing" and not self.root_cause:
            raise ValueError(f"expect {self.expect!r} needs a root_cause")
        if self.expect != "nothing" and self.category is None:
            raise ValueError(f"expect {self.expect!r} needs a category")
        if self.expect == "recover" and not self.accepted_actions:
            raise ValueError("expect 'recover' needs at least one accepted action")
        if self.expect == "nothing" and self.detection:
            raise ValueError("expect 'nothing' means there is nothing to detect (detection: false)")
        return self


class Metadata(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    description: str = ""


class Scenario(_Model):
    apiVersion: Literal["kubemedic.dev/v1"]
    kind: Literal["Scenario"]
    metadata: Metadata
    spec: Spec = Field(default_factory=Spec)
    truth: Truth = Field(default_factory=Truth)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def default_namespace(self) -> str:
        """Where an unqualified service or workload name lives."""
        if self.spec.entry is not None:
            return self.spec.entry.namespace
        if self.spec.app:
            return app_namespace(self.spec.app)
        return "default"

    def workload(self, key: str) -> tuple[str, str]:
        """`ns/name` or `name` -> (namespace, name)."""
        ns, _, name = key.rpartition("/")
        return (ns or self.default_namespace, name)

    def fault_types(self) -> list[str]:
        return sorted({f.type for f in self.spec.faults})


# -- apps ------------------------------------------------------------------------------------


def app_module(name: str) -> ModuleType | None:
    """The built-in application called `name` (see twin.apps), or None."""
    return BUILTIN_APPS.get(name)


def known_apps() -> list[str]:
    return sorted(BUILTIN_APPS)


def app_namespace(name: str) -> str:
    """The namespace an app's manifests go to by default."""
    module = app_module(name)
    if module is None:
        return name
    ns = getattr(module, "NAMESPACE", None)
    if isinstance(ns, str):
        return ns
    import inspect

    default = inspect.signature(module.manifests).parameters.get("namespace")
    if default is not None and isinstance(default.default, str):
        return default.default
    return name


def entry_service(scenario: Scenario) -> tuple[str, str] | None:
    """Where the scenario's traffic enters: spec.entry, else the app's own; None without either."""
    spec = scenario.spec
    if spec.entry is not None:
        return (spec.entry.namespace, spec.entry.service)
    if spec.app:
        entry = getattr(app_module(spec.app), "ENTRY", None)
        return (app_namespace(spec.app), entry if isinstance(entry, str) else DEFAULT_ENTRY)
    return None


def app_manifests(name: str) -> list[dict[str, Any]]:
    module = app_module(name)
    if module is None:
        raise LookupError(f"unknown app {name!r}; built-in apps: {', '.join(known_apps()) or '-'}")
    result: list[dict[str, Any]] = module.manifests(namespace=app_namespace(name))
    return result


# -- errors, loading ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioError:
    """One problem in a scenario file, at a path such as `spec.faults[1].params.replicas`."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ScenarioInvalid(ValueError):
    """A scenario that does not validate; `errors` lists every problem."""

    def __init__(self, source: str, errors: list[ScenarioError]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"scenario {source} is invalid:\n{lines}")


@dataclass(frozen=True)
class ScenarioSummary:
    name: str
    description: str
    fault_types: tuple[str, ...]
    expect: str
    path: Path


def builtin_dir() -> Path:
    return Path(__file__).with_name("scenarios")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def list_builtin() -> list[ScenarioSummary]:
    """Every built-in scenario, by name."""
    out = []
    for name in builtin_names():
        path = builtin_dir() / f"{name}.yaml"
        sc = parse_scenario(path.read_text(), source=str(path))
        out.append(
            ScenarioSummary(
                sc.name,
                sc.metadata.description,
                tuple(sc.fault_types()),
                sc.truth.expect,
                path,
            )
        )
    return out


def resolve_source(path_or_name: str | Path) -> Path:
    """A file path as given, or the file of a built-in scenario name."""
    if isinstance(path_or_name, Path):
        return path_or_name
    text = str(path_or_name)
    if text.endswith((".yaml", ".yml")) or "/" in text or Path(text).is_file():
        return Path(text)
    path = builtin_dir() / f"{text}.yaml"
    if not path.is_file():
        raise LookupError(
            f"unknown scenario {text!r}: not a file and not a built-in scenario "
            f"({', '.join(builtin_names())})"
        )
    return path


def load_scenario(path_or_name: str | Path | Scenario) -> Scenario:
    """A built-in scenario by name, or a scenario file; ScenarioInvalid lists every problem."""
    if isinstance(path_or_name, Scenario):
        return path_or_name
    path = resolve_source(path_or_name)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioInvalid(str(path), [ScenarioError("", f"cannot read {path}: {exc}")]) from exc
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    scenario, errors = _validate(text)
    if errors or scenario is None:
        raise ScenarioInvalid(source, errors)
    return scenario


def validate_file(path: str | Path) -> list[ScenarioError]:
    """Every problem in a scenario file (empty when it is valid). Starts nothing."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        return [ScenarioError("", f"cannot read {path}: {exc.strerror or exc}")]
    return _validate(text)[1]


def validate_text(text: str) -> list[ScenarioError]:
    return _validate(text)[1]


#: libyaml's safe loader when PyYAML was built with it (ten times faster), else the pure one.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _validate(text: str) -> tuple[Scenario | None, list[ScenarioError]]:
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)
        root = yaml.compose(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {line}, column {col}: " if line is not None else ""
        return None, [ScenarioError("", f"YAML syntax error: {where}{problem}", line, col)]
    if not isinstance(data, dict):
        return None, [ScenarioError("", "a scenario is a YAML mapping (apiVersion, kind, ...)")]
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        errors = _pydantic_errors(exc, data, root)
        return None, errors + _semantics_without_bad_faults(exc, data, root)
    errors = [_locate(e, root) for e in check_semantics(scenario)]
    return (scenario if not errors else None), errors


def _semantics_without_bad_faults(
    exc: ValidationError, data: dict[str, Any], root: yaml.Node | None
) -> list[ScenarioError]:
    """When only some faults are malformed, still check the rest of the file's meaning."""
    bad: set[int] = set()
    for err in exc.errors():
        loc = err["loc"]
        if len(loc) < 3 or loc[:2] != ("spec", "faults") or not isinstance(loc[2], int):
            return []
        bad.add(loc[2])
    faults = data["spec"]["faults"]
    kept = [i for i in range(len(faults)) if i not in bad]
    trimmed = {**data, "spec": {**data["spec"], "faults": [faults[i] for i in kept]}}
    try:
        scenario = Scenario.model_validate(trimmed)
    except ValidationError:
        return []
    out = []
    for e in check_semantics(scenario):
        m = re.match(r"spec\.faults\[(\d+)\]", e.path)
        path = f"spec.faults[{kept[int(m.group(1))]}]{e.path[m.end() :]}" if m else e.path
        out.append(_locate(ScenarioError(path, e.message), root))
    return out


def _pydantic_errors(
    exc: ValidationError, data: Any, root: yaml.Node | None
) -> list[ScenarioError]:
    out: list[ScenarioError] = []
    for err in exc.errors():
        loc = _data_loc(err["loc"], data)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            tag = (err.get("ctx") or {}).get("tag")
            loc = (*loc, "type")
            message = f"unknown fault type {tag!r}; expected one of {', '.join(FAULT_TYPES)}"
        elif err["type"] == "union_tag_not_found":
            loc = (*loc, "type")
            message = f"Field required (one of {', '.join(FAULT_TYPES)})"
        line, col = _position(loc, root)
        out.append(ScenarioError(format_path(loc), message, line, col))
    return out


def _data_loc(loc: tuple[int | str, ...], data: Any) -> tuple[int | str, ...]:
    """The path as written in the file: drop the fault-type tags pydantic adds to a union's loc."""
    out: list[int | str] = []
    node = data
    for seg in loc:
        present = (isinstance(node, dict) and seg in node) or (
            isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node)
        )
        if present:
            out.append(seg)
            node = node[seg]
        elif isinstance(node, dict) and seg in FAULT_TYPES_SET:
            continue
        else:
            out.append(seg)
            node = None
    return tuple(out)


FAULT_TYPES_SET = frozenset(FAULT_TYPES)


def format_path(loc: Iterable[int | str]) -> str:
    path = ""
    for seg in loc:
        if isinstance(seg, int):
            path += f"[{seg}]"
        else:
            path += f".{seg}" if path else str(seg)
    return path


def _parse_path(path: str) -> list[int | str]:
    out: list[int | str] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return out


def _position(loc: Iterable[int | str], root: yaml.Node | None) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the deepest node of the file along `loc`."""
    node = root
    found = node
    for seg in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(seg):
                    nxt = v
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and seg < len(node.value):
            nxt = node.value[seg]
        if nxt is None:
            break
        node = found = nxt
    if found is None:
        return None, None
    return found.start_mark.line + 1, found.start_mark.column + 1


def _locate(err: ScenarioError, root: yaml.Node | None) -> ScenarioError:
    line, col = _position(_parse_path(err.path), root)
    return ScenarioError(err.path, err.message, line, col)


# -- semantic checks -------------------------------------------------------------------------


def _manifest_key(obj: dict[str, Any], default_ns: str = "default") -> tuple[str, str, str]:
    kind = str(obj.get("kind", ""))
    meta = obj.get("metadata") or {}
    ns = "" if kind in CLUSTER_SCOPED else str(meta.get("namespace") or default_ns)
    return (kind, ns, str(meta.get("name", "")))


def defined_objects(scenario: Scenario) -> dict[tuple[str, str, str], dict[str, Any]]:
    """What the scenario's cluster holds at t=0, by (kind, namespace, name)."""
    objs: dict[tuple[str, str, str], dict[str, Any]] = {}
    spec = scenario.spec
    for i in range(1, spec.nodes.count + 1):
        objs[("Node", "", f"node-{i}")] = {"kind": "Node", "metadata": {"name": f"node-{i}"}}
    if spec.app and app_module(spec.app) is not None:
        ns = app_namespace(spec.app)
        objs[("Namespace", "", ns)] = {"kind": "Namespace", "metadata": {"name": ns}}
        for obj in app_manifests(spec.app):
            objs[_manifest_key(obj, ns)] = obj
    for m in spec.manifests:
        obj = m.as_dict()
        key = _manifest_key(obj)
        objs[key] = obj
        if key[1]:
            objs.setdefault(("Namespace", "", key[1]), {"kind": "Namespace"})
    return objs


def _missing(
    kind: str, ns: str, name: str, objs: dict[tuple[str, str, str], dict[str, Any]]
) -> str:
    where = f"{ns}/{name}" if ns else name
    same_kind = [f"{k[1]}/{k[2]}" if k[1] else k[2] for k in objs if k[0] == kind]
    hint = difflib.get_close_matches(where, same_kind, n=1)
    msg = f"no manifest or app defines {kind} {where}"
    return msg + (f" (did you mean {hint[0]}?)" if hint else "")


def _workload_kind(
    ns: str, name: str, objs: dict[tuple[str, str, str], dict[str, Any]]
) -> str | None:
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        if (kind, ns, name) in objs:
            return kind
    return None


def check_semantics(scenario: Scenario) -> list[ScenarioError]:
    """Checks that need the whole file: targets exist, times fit the horizon, names resolve."""
    errors: list[ScenarioError] = []
    spec = scenario.spec
    if spec.app is not None and app_module(spec.app) is None:
        apps = ", ".join(known_apps()) or "none installed"
        errors.append(ScenarioError("spec.app", f"unknown app {spec.app!r}; built-in apps: {apps}"))
        return errors
    objs = defined_objects(scenario)
    dns = scenario.default_namespace
    errors += _duplicate_manifests(scenario)
    horizon = spec.horizon

    def service_exists(path: str, service: str, namespace: str | None) -> None:
        ns = namespace or dns
        if ("Service", ns, service) not in objs:
            errors.append(ScenarioError(path, _missing("Service", ns, service, objs)))

    def workload_exists(path: str, key: str) -> None:
        ns, name = scenario.workload(key)
        if _workload_kind(ns, name, objs) is None:
            msg = _missing("Deployment", ns, name, objs).replace(
                "Deployment", "Deployment or StatefulSet", 1
            )
            errors.append(ScenarioError(path, msg))

    if spec.entry is not None:
        service_exists("spec.entry.service", spec.entry.service, spec.entry.namespace)
    elif spec.app is None and spec.manifests and "traffic" in spec.model_fields_set:
        errors.append(
            ScenarioError("spec.entry", "required with traffic when spec.app is not given")
        )

    for i, fault in enumerate(spec.faults):
        base = f"spec.faults[{i}]"
        if fault.at > horizon:
            errors.append(
                ScenarioError(
                    f"{base}.at",
                    f"{format_duration(fault.at)} is beyond the horizon "
                    f"({format_duration(horizon)})",
                )
            )
        target = fault.target
        if isinstance(fault, ApplyFault):
            obj = fault.params.object.as_dict()
            key = _manifest_key(obj)
            if target is not None and target.key("default") != key:
                errors.append(ScenarioError(f"{base}.target", "does not name the applied object"))
            objs[key] = obj
            continue
        if target is None:
            continue
        if isinstance(fault, TrafficSpikeFault):
            entry = entry_service(scenario)
            if entry is None or target.key(dns) != ("Service", *entry):
                where = f"{entry[0]}/{entry[1]}" if entry else "no entry service"
                errors.append(
                    ScenarioError(f"{base}.target", f"load enters at {where} only; omit target")
                )
                continue
        allowed = FAULT_TARGET_KINDS[fault.type]
        if allowed is not None and target.kind not in allowed:
            errors.append(
                ScenarioError(
                    f"{base}.target.kind",
                    f"a {fault.type} fault acts on {' or '.join(sorted(allowed))}, "
                    f"not {target.kind}",
                )
            )
            continue
        key = target.key(dns)
        if key not in objs:
            errors.append(ScenarioError(f"{base}.target", _missing(*key, objs)))
            continue
        if isinstance(fault, RolloutFault) and fault.params.image in _container_images(objs[key]):
            errors.append(
                ScenarioError(
                    f"{base}.params.image",
                    f"{target} already runs {fault.params.image}; a rollout needs a new image",
                )
            )
        if isinstance(fault, RolloutFault) and fault.params.container:
            names = _container_names(objs[key])
            if fault.params.container not in names:
                errors.append(
                    ScenarioError(
                        f"{base}.params.container",
                        f"{target} has no container {fault.params.container!r} "
                        f"(containers: {', '.join(names)})",
                    )
                )
        if isinstance(fault, LatencyFault) and fault.params.to:
            service_exists(f"{base}.params.to", fault.params.to, key[1])
        if isinstance(fault, SecretRotatedFault):
            dep = fault.params.dependency
            if ("Service", key[1], dep) not in objs and _workload_kind(key[1], dep, objs) is None:
                errors.append(
                    ScenarioError(
                        f"{base}.params.dependency", _missing("Service", key[1], dep, objs)
                    )
                )
        if isinstance(fault, DeleteFault):
            del objs[key]

    alert = spec.alert
    if alert is not None:
        when = alert.when
        if when.error_rate_above is not None:
            c = when.error_rate_above
            service_exists("spec.alert.when.error_rate_above.service", c.service, c.namespace)
        if when.latency_p99_above is not None:
            lc = when.latency_p99_above
            service_exists("spec.alert.when.latency_p99_above.service", lc.service, lc.namespace)
        if when.restarts_above is not None:
            workload_exists("spec.alert.when.restarts_above.workload", when.restarts_above.workload)
        if when.not_ready is not None:
            workload_exists("spec.alert.when.not_ready.workload", when.not_ready.workload)
        if when.at is not None and when.at > horizon:
            errors.append(
                ScenarioError(
                    "spec.alert.when.at",
                    f"{format_duration(when.at)} is beyond the horizon "
                    f"({format_duration(horizon)})",
                )
            )

    rec = scenario.truth.recovered
    for field in ("ready", "rollout_complete", "restarts_stable"):
        for j, key_ in enumerate(getattr(rec, field)):
            workload_exists(f"truth.recovered.{field}[{j}]", key_)
    if rec.error_rate_below is not None:
        c = rec.error_rate_below
        service_exists("truth.recovered.error_rate_below.service", c.service, c.namespace)
    if rec.latency_p99_below is not None:
        lc = rec.latency_p99_below
        service_exists("truth.recovered.latency_p99_below.service", lc.service, lc.namespace)
    return errors


def _duplicate_manifests(scenario: Scenario) -> list[ScenarioError]:
    """A manifest that restates another (or one of the app's) would fail to create."""
    spec = scenario.spec
    seen: dict[tuple[str, str, str], str] = {}
    if spec.app and app_module(spec.app) is not None:
        ns = app_namespace(spec.app)
        for obj in app_manifests(spec.app):
            seen[_manifest_key(obj, ns)] = f"an object of app {spec.app}"
    errors = []
    for i, m in enumerate(spec.manifests):
        key = _manifest_key(m.as_dict())
        where = f"{key[1]}/{key[2]}" if key[1] else key[2]
        if key[0] != "Namespace" and key in seen:
            errors.append(
                ScenarioError(f"spec.manifests[{i}]", f"{key[0]} {where} duplicates {seen[key]}")
            )
        seen.setdefault(key, f"spec.manifests[{i}]")
    return errors


def _container_images(obj: dict[str, Any]) -> list[str]:
    spec = obj.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return [str(c.get("image", "")) for c in template.get("containers") or []]


def _container_names(obj: dict[str, Any]) -> list[str]:
    spec = obj.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return [str(c.get("name", "")) for c in template.get("containers") or []]


def default_scenario(app: str = "shop", *, seed: int = 0) -> Scenario:
    """A healthy cluster running a built-in app, with no fault and no alert (serve mode)."""
    return Scenario.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "Scenario",
            "metadata": {"name": f"{app}-healthy", "description": f"a healthy {app} cluster"},
            "spec": {"seed": seed, "app": app},
        }
    )
