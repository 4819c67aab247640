"""ResourceQuota: admission that refuses what would exceed a quota, and the status controller.

The admission plugin follows apiserver's resourcequota controller.go: each
quota of the namespace (by name) that covers the object first checks the
"must specify" constraint (`failed quota: q: must specify limits.cpu for:
app; ...`), then whether usage plus the request stays within hard
(`exceeded quota: q, requested: ..., used: ..., limited: ...`, only the
exceeded resources, sorted). Both are 403 Forbidden. Usage is computed from
the store at admission time, which is what the real plugin's incrementally
updated `status.used` amounts to; the controller writes `status.hard` and
`status.used` as the quota controller does.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from twin import errors
from twin.clock import parse_rfc3339
from twin.controllers import quantities
from twin.controllers.admission import qos_class
from twin.controllers.base import Index, Resources, WorkQueue, pod_resources
from twin.controllers.quantities import Quantity
from twin.resources import ResourceType
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from datetime import datetime

    from twin.cluster import Cluster

#: --resource-quota-sync-period.
RESYNC_PERIOD = 300.0
#: Resources a pod is charged for (the pod evaluator's MatchingResources).
POD_COMPUTE = (
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
)
POD_RESOURCES = frozenset({"pods", "count/pods", *POD_COMPUTE})
SERVICE_RESOURCES = frozenset(
    {"services", "count/services", "services.loadbalancers", "services.nodeports"}
)
#: Resources whose requests and limits every container must state once a quota covers them.
MUST_SPECIFY = frozenset(
    {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)
#: Object counts with their pre-`count/` names.
LEGACY_COUNTS = {
    "configmaps": "configmaps",
    "secrets": "secrets",
    "persistentvolumeclaims": "persistentvolumeclaims",
    "replicationcontrollers": "replicationcontrollers",
    "resourcequotas": "resourcequotas",
}
ONE = Quantity(Fraction(1))


def is_pod_resource(resource: str) -> bool:
    if resource in POD_RESOURCES:
        return True
    if resource.startswith(("requests.hugepages-", "limits.hugepages-", "hugepages-")):
        return True
    return resource.startswith("requests.") and "/" in resource


def count_name(rt: ResourceType) -> str:
    return f"count/{rt.plural}.{rt.group}" if rt.group else f"count/{rt.plural}"


def covers(rt: ResourceType, resource: str) -> bool:
    """Whether a hard resource name charges objects of this type."""
    if rt.key == "pods":
        return is_pod_resource(resource)
    if rt.key == "services":
        return resource in SERVICE_RESOURCES
    if resource == count_name(rt):
        return True
    return not rt.group and LEGACY_COUNTS.get(rt.plural) == resource


# -- usage ------------------------------------------------------------------------------


def pod_counts(pod: Obj, now: datetime) -> bool:
    """QuotaV1Pod: terminal pods, and pods stuck terminating past their grace, are free."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod["metadata"]
    deleted = meta.get("deletionTimestamp")
    grace = meta.get("deletionGracePeriodSeconds")
    if deleted and grace is not None:
        return not now > parse_rfc3339(str(deleted)) + timedelta(seconds=int(grace))
    return True


def pod_usage(pod: Obj, now: datetime) -> Resources:
    """PodUsageFunc: count/pods always; pods and compute only while the pod counts."""
    usage: Resources = {"count/pods": ONE}
    if not pod_counts(pod, now):
        return usage
    requests = pod_resources(pod, "requests")
    limits = pod_resources(pod, "limits")
    usage["pods"] = ONE
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            usage[name] = requests[name]
            usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, q in requests.items():
        if name.startswith("hugepages-") or "/" in name:
            usage[f"requests.{name}"] = q
    return usage


def object_usage(rt: ResourceType, obj: Obj, now: datetime) -> Resources:
    if rt.key == "pods":
        return pod_usage(obj, now)
    usage: Resources = {count_name(rt): ONE}
    if not rt.group and rt.plural in LEGACY_COUNTS:
        usage[LEGACY_COUNTS[rt.plural]] = ONE
    if rt.key == "services":
        usage["services"] = ONE
        spec = obj.get("spec") or {}
        stype = spec.get("type", "ClusterIP")
        if stype == "LoadBalancer":
            usage["services.loadbalancers"] = ONE
        if stype in ("NodePort", "LoadBalancer"):
            usage["services.nodeports"] = Quantity(Fraction(len(spec.get("ports") or [])))
    return usage


def add_into(total: Resources, more: Resources) -> None:
    for name, q in more.items():
        total[name] = total[name] + q if name in total else q


def _type_for(cluster: Cluster, resource: str) -> ResourceType | None:
    if is_pod_resource(resource):
        return cluster.rt("Pod")
    if resource in SERVICE_RESOURCES:
        return cluster.rt("Service")
    for rt in cluster.store.registry.all():
        if rt.namespaced and covers(rt, resource) and rt.group != "metrics.k8s.io":
            return rt
    return None


def namespace_usage(
    cluster: Cluster, index: Index, namespace: str, resources: Iterable[str]
) -> Resources:
    """What the namespace uses now of each named resource ("0" where nothing)."""
    now = cluster.clock.now()
    wanted = sorted(set(resources))
    types: dict[str, ResourceType] = {}
    for name in wanted:
        rt = _type_for(cluster, name)
        if rt is not None:
            types[rt.key] = rt
    total: Resources = {}
    for rt in types.values():
        if rt.key == "pods":
            objects = sorted(index.pods_in(namespace), key=lambda p: str(p["metadata"]["name"]))
        else:
            objects = cluster.store.list(rt, namespace, live=True)
        for obj in objects:
            add_into(total, object_usage(rt, obj, now))
    return {name: total.get(name, quantities.ZERO) for name in wanted}


def hard_of(quota: Obj) -> Resources:
    hard: Resources = {}
    for name, raw in ((quota.get("spec") or {}).get("hard") or {}).items():
        q = quantities.try_parse(raw)
        if q is not None:
            hard[str(name)] = q
    return hard


def scopes_match(quota: Obj, pod: Obj) -> bool:
    """The quota scopes the twin understands (Terminating, BestEffort and their negations)."""
    spec = quota.get("spec") or {}
    scopes = list(spec.get("scopes") or [])
    for expr in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        if expr.get("operator") == "Exists":
            scopes.append(expr.get("scopeName", ""))
    pod_spec = pod.get("spec") or {}
    for scope in scopes:
        terminating = pod_spec.get("activeDeadlineSeconds") is not None
        best_effort = qos_class(pod) == "BestEffort"
        if (
            (scope == "Terminating" and not terminating)
            or (scope == "NotTerminating" and terminating)
            or (scope == "BestEffort" and not best_effort)
            or (scope == "NotBestEffort" and best_effort)
        ):
            return False
    return True


# -- admission --------------------------------------------------------------------------


class QuotaAdmission:
    """The ResourceQuota validating admission plugin."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def __call__(self, cluster: Cluster, rt: ResourceType, obj: Obj, operation: str) -> None:
        if operation != "CREATE" or not rt.namespaced or rt.kind == "Event":
            return
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        quotas = cluster.store.list(cluster.rt("ResourceQuota"), namespace, live=True)
        if not quotas:
            return
        name = str(meta.get("name", ""))
        interesting: list[tuple[Obj, Resources]] = []
        for quota in quotas:
            if rt.key == "pods" and not scopes_match(quota, obj):
                continue
            hard = {k: q for k, q in hard_of(quota).items() if covers(rt, k)}
            if not hard:
                continue
            if rt.key == "pods":
                missing = must_specify(obj, hard)
                if missing:
                    raise errors.forbidden(
                        rt.plural, name, f"failed quota: {quota['metadata']['name']}: {missing}"
                    )
            interesting.append((quota, hard))
        if not interesting:
            return
        delta = {k: q for k, q in object_usage(rt, obj, cluster.clock.now()).items() if q.value}
        if not delta:
            return
        for quota, hard in interesting:
            requested = {k: q for k, q in delta.items() if k in hard}
            if not requested:
                continue
            used = namespace_usage(cluster, self.index, namespace, hard)
            exceeded = sorted(
                k for k, q in requested.items() if used[k].value + q.value > hard[k].value
            )
            if exceeded:
                raise errors.forbidden(
                    rt.plural,
                    name,
                    f"exceeded quota: {quota['metadata']['name']}, "
                    f"requested: {quantities.pretty({k: requested[k] for k in exceeded})}, "
                    f"used: {quantities.pretty({k: used[k] for k in exceeded})}, "
                    f"limited: {quantities.pretty({k: hard[k] for k in exceeded})}",
                )


def must_specify(pod: Obj, hard: Resources) -> str:
    """podEvaluator.Constraints: "" or `must specify limits.cpu for: a,b; memory for: a`."""
    required = MUST_SPECIFY & set(hard)
    if not required:
        return ""
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = c.get("resources") or {}
        stated: set[str] = set()
        for name in resources.get("requests") or {}:
            if name in ("cpu", "memory"):
                stated |= {name, f"requests.{name}"}
        for name in resources.get("limits") or {}:
            if name in ("cpu", "memory"):
                stated.add(f"limits.{name}")
        for name in required - stated:
            missing.setdefault(name, set()).add(str(c.get("name", "")))
    if not missing:
        return ""
    parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
    return "must specify " + "; ".join(parts)


# -- the status controller --------------------------------------------------------------


class QuotaController:
    """Writes status.hard and status.used of every ResourceQuota when its namespace changes."""

    name = "resourcequota-controller"

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.queue: WorkQueue[str] = WorkQueue()
        self._namespaces_with_quota: dict[str, int] = {}
        self._next_resync = 0.0
        self._expiries: set[tuple[str, float]] = set()
        with cluster.lock:
            for quota in cluster.store.iter_live(cluster.rt("ResourceQuota")):
                self._track(str(quota["metadata"].get("namespace", "")), 1)
        index.on("resourcequotas", self._on_quota)
        index.on_any(self._on_object)

    def _track(self, namespace: str, delta: int) -> None:
        count = self._namespaces_with_quota.get(namespace, 0) + delta
        if count > 0:
            self._namespaces_with_quota[namespace] = count
        else:
            self._namespaces_with_quota.pop(namespace, None)
        self.queue.add(namespace)

    def _on_quota(self, etype: EventType, quota: Obj) -> None:
        namespace = str(quota["metadata"].get("namespace", ""))
        if etype == "ADDED":
            self._track(namespace, 1)
        elif etype == "DELETED":
            self._track(namespace, -1)
        else:
            self.queue.add(namespace)

    def _on_object(self, etype: EventType, rt: ResourceType, obj: Obj) -> None:
        if not rt.namespaced or rt.key in ("events", "resourcequotas", "endpoints"):
            return
        namespace = str(obj["metadata"].get("namespace", ""))
        if namespace in self._namespaces_with_quota:
            self.queue.add(namespace)

    def step(self, cluster: Cluster, dt: float) -> None:
        now = cluster.elapsed
        if now >= self._next_resync:
            self._next_resync = now + RESYNC_PERIOD
            for namespace in self._namespaces_with_quota:
                self.queue.add(namespace)
        for namespace in self.queue.pop_due(now):
            if namespace in self._namespaces_with_quota:
                self.sync(cluster, namespace)

    def sync(self, cluster: Cluster, namespace: str) -> None:
        rt = cluster.rt("ResourceQuota")
        for quota in cluster.store.list(rt, namespace, live=True):
            hard = hard_of(quota)
            used = namespace_usage(cluster, self.index, namespace, hard)
            status: dict[str, Any] = {
                "hard": {k: str(q) for k, q in sorted(hard.items())},
                "used": {k: str(q) for k, q in sorted(used.items())},
            }
            if quota.get("status") != status:
                quota["status"] = status
                cluster.store.commit(rt, quota)
        self._schedule_grace_expiry(cluster, namespace)

    def _schedule_grace_expiry(self, cluster: Cluster, namespace: str) -> None:
        """Recount when a terminating pod's grace runs out (it stops counting then)."""
        now = cluster.clock.now()
        for pod in self.index.pods_in(namespace):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") is not None:
                expiry = parse_rfc3339(str(meta["deletionTimestamp"])) + timedelta(
                    seconds=int(meta["deletionGracePeriodSeconds"]) + 1
                )
                when = cluster.elapsed + (expiry - now).total_seconds()
                if expiry > now and (namespace, when) not in self._expiries:
                    self._expiries.add((namespace, when))
                    self.queue.add_at(namespace, when)
        self._expiries = {e for e in self._expiries if e[1] > cluster.elapsed}
