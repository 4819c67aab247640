"""The `recovered` oracle: has the cluster recovered, and since when?

The scorer needs one honest answer per scenario: did the fix work, and when
did it start working. A scenario's `truth.recovered` lists conditions (all
replicas ready, an error rate under a bound, a finished rollout, no Pending
pods, no new restarts); the oracle samples them after every step and counts
how long they have all held without a break. It reads what a person would
look at (object status, pod status, the service's request metrics), never a
fault's hidden state, so a fix counts only if it shows where a real fix would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.scenario import RecoveredSpec, ServiceLatency, ServiceValue
from twin.selectors import match_labels

if TYPE_CHECKING:
    from twin.cluster import Cluster
    from twin.store import Obj

#: Window over which service error rates and latencies are judged (as a 1m PromQL rate).
SERVICE_WINDOW = 60.0


# -- reading the cluster --------------------------------------------------------------


@dataclass(frozen=True)
class ServiceReading:
    """A service's traffic over a window: requests per second, failed fraction, p99 latency."""

    rps: float
    error_rate: float
    p99_ms: float


def find_workload(cluster: Cluster, namespace: str, name: str) -> tuple[str, Obj] | None:
    """The Deployment, StatefulSet or DaemonSet called `name` (live object), with its kind."""
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        obj = cluster.store.find(cluster.rt(kind), namespace, name)
        if obj is not None:
            return kind, obj
    return None


def workload_pods(cluster: Cluster, namespace: str, workload: Obj) -> list[Obj]:
    """Live pods the workload's selector picks, terminating ones included."""
    selector = (workload.get("spec") or {}).get("selector")
    if not selector:
        return []
    return cluster.store.list(cluster.rt("Pod"), namespace, selector=selector, live=True)


def service_pods(cluster: Cluster, namespace: str, service: str) -> list[Obj]:
    svc = cluster.store.find(cluster.rt("Service"), namespace, service)
    if svc is None:
        return []
    selector = (svc.get("spec") or {}).get("selector")
    if not selector:
        return []
    return [
        p
        for p in cluster.store.list(cluster.rt("Pod"), namespace, live=True)
        if match_labels({"matchLabels": selector}, p["metadata"].get("labels") or {})
    ]


def ready_endpoints(cluster: Cluster, namespace: str, service: str) -> int:
    """Addresses in the Service's Endpoints that are ready."""
    ep = cluster.store.find(cluster.rt("Endpoints"), namespace, service)
    if ep is None:
        return 0
    return sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])


def read_service(
    cluster: Cluster, namespace: str, service: str, window: float = SERVICE_WINDOW
) -> ServiceReading | None:
    """A service's request rate, error rate and p99 over `window`, as its metrics show them.

    Reads the telemetry's per-service view when it is installed; otherwise
    the pods' runtime figures now. None when no request reached the service.
    """
    telemetry = cluster.telemetry
    reader = getattr(telemetry, "service_window", None)
    if reader is not None:
        got = reader(namespace, service, window)
        if got is None:
            return None
        rps, error_rate, p99 = got
        return ServiceReading(float(rps), float(error_rate), float(p99))
    total = failed = 0.0
    worst = 0.0
    for pod in service_pods(cluster, namespace, service):
        rt = cluster.pods.get(pod["metadata"]["uid"])
        if rt is None or rt.rps <= 0:
            continue
        total += rt.rps
        failed += rt.rps * rt.error_ratio
        worst = max(worst, rt.latency_ms)
    if total <= 0:
        return None
    return ServiceReading(total, failed / total, worst)


def service_error_rate(
    cluster: Cluster, namespace: str, service: str, window: float = SERVICE_WINDOW
) -> float | None:
    """Failed fraction of the service's requests over `window`; None without traffic."""
    reading = read_service(cluster, namespace, service, window)
    if reading is not None:
        return reading.error_rate
    return None


def service_latency_p99(
    cluster: Cluster, namespace: str, service: str, window: float = SERVICE_WINDOW
) -> float | None:
    reading = read_service(cluster, namespace, service, window)
    return reading.p99_ms if reading is not None else None


def pod_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


# -- conditions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionResult:
    """One oracle condition now: which, whether it holds, and why (for the scorer's report)."""

    name: str
    ok: bool
    detail: str


def workload_ready(cluster: Cluster, namespace: str, name: str) -> ConditionResult:
    """All desired replicas ready (a workload scaled to zero serves nothing: not ready)."""
    label = f"ready {namespace}/{name}"
    found = find_workload(cluster, namespace, name)
    if found is None:
        return ConditionResult(label, False, f"no Deployment or StatefulSet {namespace}/{name}")
    kind, obj = found
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled", 0))
        ready = int(status.get("numberReady", 0))
    else:
        desired = int(spec.get("replicas", 1))
        ready = int(status.get("readyReplicas", 0))
    if desired < 1:
        return ConditionResult(label, False, f"{kind} {namespace}/{name} has 0 desired replicas")
    ok = ready >= desired
    return ConditionResult(label, ok, f"{ready}/{desired} ready")


def rollout_complete(cluster: Cluster, namespace: str, name: str) -> ConditionResult:
    """Every replica on the current template and available (`kubectl rollout status`)."""
    label = f"rollout_complete {namespace}/{name}"
    found = find_workload(cluster, namespace, name)
    if found is None:
        return ConditionResult(label, False, f"no Deployment or StatefulSet {namespace}/{name}")
    kind, obj = found
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 1)):
        return ConditionResult(label, False, "the controller has not observed the latest spec")
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    if kind == "StatefulSet":
        if status.get("updateRevision") and status.get("currentRevision") != status.get(
            "updateRevision"
        ):
            return ConditionResult(label, False, f"{updated}/{desired} on the update revision")
        ready = int(status.get("readyReplicas", 0))
        ok = updated >= desired and ready >= desired
        return ConditionResult(label, ok, f"{updated}/{desired} updated, {ready} ready")
    total = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    if updated < desired:
        return ConditionResult(label, False, f"{updated} of {desired} new replicas updated")
    if total > updated:
        return ConditionResult(label, False, f"{total - updated} old replicas pending termination")
    if available < updated:
        return ConditionResult(label, False, f"{available} of {updated} updated replicas available")
    return ConditionResult(label, True, f"{updated}/{desired} updated and available")


def no_pending(cluster: Cluster, namespace: str) -> ConditionResult:
    pending = [
        p["metadata"]["name"]
        for p in cluster.store.list(cluster.rt("Pod"), namespace, live=True)
        if (p.get("status") or {}).get("phase") == "Pending"
        and not p["metadata"].get("deletionTimestamp")
    ]
    detail = f"{len(pending)} Pending: {', '.join(pending[:5])}" if pending else "no Pending pod"
    return ConditionResult(f"no_pending {namespace}", not pending, detail)


def error_rate_below(cluster: Cluster, c: ServiceValue, namespace: str) -> ConditionResult:
    label = f"error_rate_below {namespace}/{c.service} {c.value:g}"
    rate = service_error_rate(cluster, namespace, c.service)
    if rate is None:
        if ready_endpoints(cluster, namespace, c.service) == 0:
            return ConditionResult(label, False, "no traffic served: no ready endpoint")
        return ConditionResult(label, True, "no traffic")
    return ConditionResult(label, rate < c.value, f"error rate {rate:.4f}")


def latency_p99_below(cluster: Cluster, c: ServiceLatency, namespace: str) -> ConditionResult:
    label = f"latency_p99_below {namespace}/{c.service} {c.ms:g}ms"
    p99 = service_latency_p99(cluster, namespace, c.service)
    if p99 is None:
        if ready_endpoints(cluster, namespace, c.service) == 0:
            return ConditionResult(label, False, "no traffic served: no ready endpoint")
        return ConditionResult(label, True, "no traffic")
    return ConditionResult(label, p99 < c.ms, f"p99 {p99:.1f}ms")


# -- the oracle ----------------------------------------------------------------------------------


@dataclass
class OracleReport:
    """The oracle's verdict now, with each condition, for the scorer and for tests."""

    holds: bool
    recovered_now: bool
    #: Scenario seconds since when every condition has held without a break, or None.
    since: float | None
    #: How long they must hold.
    required: float
    conditions: list[ConditionResult] = field(default_factory=list)

    def failing(self) -> list[ConditionResult]:
        return [c for c in self.conditions if not c.ok]

    def __str__(self) -> str:
        head = "holds" if self.holds else ("recovering" if self.recovered_now else "not recovered")
        if self.since is not None:
            head += f" (since t={self.since:.0f}s, needs {self.required:.0f}s)"
        rows = [f"  [{'ok' if c.ok else '--'}] {c.name}: {c.detail}" for c in self.conditions]
        return "\n".join([head, *rows])


class Oracle:
    """Samples `truth.recovered` after each step and keeps how long it has held.

    Times are scenario seconds: `cluster.elapsed - t0`, where t0 is the
    moment the scenario started (after the builder's warm-up).
    """

    def __init__(
        self, recovered: RecoveredSpec, *, default_namespace: str = "default", t0: float = 0.0
    ) -> None:
        self.spec = recovered
        self.default_namespace = default_namespace
        self.t0 = t0
        self._since: float | None = None
        self._last_sample: float | None = None
        self._last_results: list[ConditionResult] = []
        #: Pod uid -> restarts last seen, per restarts_stable workload.
        self._restarts: dict[tuple[str, str], dict[str, int]] = {}
        #: Scenario seconds of the last restart seen, per workload.
        self._restarted_at: dict[tuple[str, str], float] = {}

    def _split(self, key: str) -> tuple[str, str]:
        ns, _, name = key.rpartition("/")
        return (ns or self.default_namespace, name)

    def now(self, cluster: Cluster) -> float:
        return cluster.elapsed - self.t0

    def conditions(self, cluster: Cluster) -> list[ConditionResult]:
        """Every given condition as judged now."""
        self.sample(cluster)
        return list(self._last_results)

    def _judge(self, cluster: Cluster) -> list[ConditionResult]:
        spec = self.spec
        out: list[ConditionResult] = []
        with cluster.lock:
            for key in spec.ready:
                out.append(workload_ready(cluster, *self._split(key)))
            if spec.error_rate_below is not None:
                c = spec.error_rate_below
                out.append(error_rate_below(cluster, c, c.namespace or self.default_namespace))
            if spec.latency_p99_below is not None:
                lc = spec.latency_p99_below
                out.append(latency_p99_below(cluster, lc, lc.namespace or self.default_namespace))
            for key in spec.rollout_complete:
                out.append(rollout_complete(cluster, *self._split(key)))
            for ns in spec.no_pending:
                out.append(no_pending(cluster, ns))
            for key in spec.restarts_stable:
                out.append(self._restarts_stable(cluster, *self._split(key)))
        return out

    def _restarts_stable(self, cluster: Cluster, namespace: str, name: str) -> ConditionResult:
        label = f"restarts_stable {namespace}/{name}"
        found = find_workload(cluster, namespace, name)
        if found is None:
            return ConditionResult(label, False, f"no Deployment or StatefulSet {namespace}/{name}")
        counts = {
            p["metadata"]["uid"]: pod_restarts(p)
            for p in workload_pods(cluster, namespace, found[1])
        }
        key = (namespace, name)
        previous = self._restarts.get(key)
        now = self.now(cluster)
        if previous is not None and any(n > previous.get(uid, 0) for uid, n in counts.items()):
            self._restarted_at[key] = now
        self._restarts[key] = counts
        last = self._restarted_at.get(key)
        if last is not None and last >= now:
            return ConditionResult(label, False, f"a container restarted at t={last:.0f}s")
        total = sum(counts.values())
        return ConditionResult(label, True, f"no new restart ({total} restarts so far)")

    def sample(self, cluster: Cluster) -> None:
        """Judge the conditions now and extend or break the streak (call after each step)."""
        if self._last_sample == cluster.elapsed:
            return
        results = self._judge(cluster)
        self._last_sample = cluster.elapsed
        self._last_results = results
        if all(r.ok for r in results):
            if self._since is None:
                self._since = self.now(cluster)
        else:
            self._since = None

    def recovered_now(self, cluster: Cluster) -> bool:
        self.sample(cluster)
        return all(r.ok for r in self._last_results)

    def recovered_since(self, cluster: Cluster) -> float | None:
        """Scenario seconds since when every condition has held without a break."""
        self.sample(cluster)
        return self._since

    def holds(self, cluster: Cluster) -> bool:
        """Every condition has held continuously for `for`."""
        since = self.recovered_since(cluster)
        return since is not None and self.now(cluster) - since >= self.spec.for_

    def report(self, cluster: Cluster) -> OracleReport:
        self.sample(cluster)
        return OracleReport(
            holds=self.holds(cluster),
            recovered_now=all(r.ok for r in self._last_results),
            since=self._since,
            required=self.spec.for_,
            conditions=list(self._last_results),
        )

    def as_dict(self, cluster: Cluster) -> dict[str, Any]:
        r = self.report(cluster)
        return {
            "holds": r.holds,
            "recovered_now": r.recovered_now,
            "since": r.since,
            "for": r.required,
            "conditions": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in r.conditions],
        }
