"""Build the cluster a scenario describes, healthy, at the scenario's t=0.

One place assembles the parts in the order they depend on each other:
controllers, kubelet and traffic model; nodes; the app's namespace and
manifests and the scenario's own; behaviour profiles; traffic settings. Then
it runs the cluster until every workload is up and the metric windows hold
only healthy traffic, so faults land on a cluster that was working, as they
do in production. Only `spec` is read: the truth never reaches the cluster.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twin import controllers, kubelet, traffic
from twin.clock import DEFAULT_EPOCH, SimClock
from twin.cluster import Cluster
from twin.errors import ApiError
from twin.nodes import make_node
from twin.quantity import format_cpu, format_memory
from twin.resources import ResourceType
from twin.scenario import (
    CLUSTER_SCOPED,
    Scenario,
    app_manifests,
    app_module,
    app_namespace,
    entry_service,
)

#: Simulated seconds the warm-up may take before giving up on an app that never becomes ready.
WARMUP_LIMIT = 900.0
#: Simulated seconds run after everything is ready, so rate windows see only healthy traffic.
SETTLE = 60.0
#: Namespaces every cluster has.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

#: Creation order, as `kubectl apply` of a chart would go: what others refer to comes first.
_KIND_ORDER = {
    "Namespace": 0,
    "ResourceQuota": 1,
    "LimitRange": 1,
    "ServiceAccount": 2,
    "Secret": 2,
    "ConfigMap": 2,
    "PersistentVolume": 2,
    "PersistentVolumeClaim": 3,
    "Role": 3,
    "ClusterRole": 3,
    "RoleBinding": 4,
    "ClusterRoleBinding": 4,
    "Service": 5,
    "NetworkPolicy": 5,
    "PodDisruptionBudget": 5,
}
_WORKLOAD_ORDER = 6


class BuildError(RuntimeError):
    """A scenario whose objects the cluster refuses (admission, a duplicate)."""


def build_cluster(scenario: Scenario, *, clock_start: datetime | None = None) -> Cluster:
    """A seeded cluster running the scenario's app and manifests, warmed up and healthy."""
    spec = scenario.spec
    cluster = Cluster(seed=spec.seed, clock=SimClock(clock_start or DEFAULT_EPOCH))
    controllers.install(cluster)
    kubelet.install(cluster)
    traffic.install(cluster)
    for name in SYSTEM_NAMESPACES:
        ensure_namespace(cluster, name)
    for i in range(1, spec.nodes.count + 1):
        node = make_node(
            f"node-{i}",
            cpu=format_cpu(spec.nodes.cpu),
            memory=format_memory(spec.nodes.memory),
            now=cluster.now_str(),
        )
        _create(cluster, node, "spec.nodes")
    objects: list[tuple[str, dict[str, Any]]] = []
    if spec.app:
        module = app_module(spec.app)
        if module is None:
            raise BuildError(f"unknown app {spec.app!r}")
        ensure_namespace(cluster, app_namespace(spec.app))
        module.register_behaviors(cluster.behaviors)
        objects += [(f"app {spec.app}", obj) for obj in app_manifests(spec.app)]
    objects += [(f"spec.manifests[{i}]", m.as_dict()) for i, m in enumerate(spec.manifests)]
    for image, behavior in spec.behaviors.items():
        cluster.behaviors.register(image, behavior.to_profile())
    for where, obj in sorted(objects, key=lambda item: _KIND_ORDER.get(item[1]["kind"], 6)):
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns and obj["kind"] not in CLUSTER_SCOPED:
            ensure_namespace(cluster, ns)
        _create(cluster, obj, where)
    entry = entry_service(scenario)
    if entry is None:
        cluster.traffic.rps = 0.0
    else:
        cluster.traffic.rps = spec.traffic.rps
        cluster.traffic.namespace, cluster.traffic.service = entry
    warm_up(cluster)
    return cluster


def ensure_namespace(cluster: Cluster, name: str) -> None:
    rt = cluster.rt("Namespace")
    if cluster.store.find(rt, "", name) is None:
        cluster.create(
            rt,
            {
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
        )


def _resource_type(cluster: Cluster, obj: dict[str, Any]) -> ResourceType:
    api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
    found = cluster.store.registry.by_api_version_kind(api_version, kind)
    if found is not None:
        return found
    namespaced = bool((obj.get("metadata") or {}).get("namespace"))
    return cluster.store.registry.register_custom(api_version, kind, namespaced=namespaced)


def _create(cluster: Cluster, obj: dict[str, Any], where: str) -> None:
    rt = _resource_type(cluster, obj)
    meta = obj.get("metadata") or {}
    if rt.kind == "Namespace":
        existing = cluster.store.find(rt, "", str(meta.get("name", "")))
        if existing is not None:
            # A manifest may restate a namespace that exists: keep its labels and annotations.
            for field in ("labels", "annotations"):
                existing["metadata"].setdefault(field, {}).update(meta.get(field) or {})
            cluster.store.commit(rt, existing)
            return
    try:
        cluster.create(rt, obj)
    except ApiError as exc:
        name = (obj.get("metadata") or {}).get("name", "")
        raise BuildError(f"{where}: {obj.get('kind')} {name!r}: {exc.message}") from exc


def workloads_ready(cluster: Cluster) -> bool:
    """Every Deployment available and every StatefulSet ready, at its latest generation."""
    with cluster.lock:
        for obj in cluster.store.iter_live(cluster.rt("Deployment")):
            if not _ready(obj, "availableReplicas"):
                return False
        for obj in cluster.store.iter_live(cluster.rt("StatefulSet")):
            if not _ready(obj, "readyReplicas"):
                return False
    return True


def _ready(obj: dict[str, Any], field: str) -> bool:
    desired = int((obj.get("spec") or {}).get("replicas", 1))
    status = obj.get("status") or {}
    generation = int(obj["metadata"].get("generation", 1))
    if int(status.get("observedGeneration", 0)) < generation:
        return False
    return int(status.get(field, 0)) >= desired


def warm_up(cluster: Cluster, *, limit: float = WARMUP_LIMIT, settle: float = SETTLE) -> float:
    """Run until every workload is up (at most `limit`), then `settle`; returns seconds run."""
    start = cluster.elapsed
    while cluster.elapsed - start < limit:
        cluster.advance(5)
        if workloads_ready(cluster):
            break
    cluster.advance(settle)
    return cluster.elapsed - start
