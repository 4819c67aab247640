"""Node lifecycle and taint-based eviction (pkg/controller/nodelifecycle, tainteviction).

Every 5 s (nodeMonitorPeriod) each node's Ready heartbeat is checked. A
kubelet that stopped posting (the kubelet stops refreshing
`lastHeartbeatTime` for nodes in `cluster.nodes_down`) is noticed after the
grace period: Ready, MemoryPressure, DiskPressure and PIDPressure go
Unknown/NodeStatusUnknown "Kubelet stopped posting node status.", the node
gets a `NodeNotReady` event, and each of its pods gets Ready=False and a
`NodeNotReady` "Node is not ready" warning. Conditions map to taints as
TaintNodesByCondition does (`node.kubernetes.io/unreachable` NoSchedule,
`unschedulable` for a cordoned node, pressure taints), and an Unknown or False
Ready adds the NoExecute taint. The taint eviction controller then deletes
each pod when its toleration runs out (300 s by default),
`TaintManagerEviction` "Marking for deletion Pod <ns>/<pod>"; with the
kubelet gone the pod stays Terminating, and its ReplicaSet replaces it
elsewhere. A node that posts again loses the taints and its pending
evictions are cancelled. If most nodes are unhealthy at once (a small
cluster's partial or full disruption), no new NoExecute taints are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from twin.clock import parse_rfc3339
from twin.controllers.base import Index, Key, get_condition, key_of, now_str
from twin.controllers.scheduler import tolerates
from twin.errors import ApiError
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

COMPONENT = "node-controller"
EVICTION_COMPONENT = "taint-eviction-controller"
#: --node-monitor-period.
MONITOR_PERIOD = 5.0
#: --node-monitor-grace-period (40 s before v1.32, 50 s from it; the twin keeps 40 s).
GRACE_PERIOD = 40.0
#: --unhealthy-zone-threshold and --large-cluster-size-threshold.
UNHEALTHY_ZONE_THRESHOLD = 0.55
LARGE_CLUSTER = 50
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
#: TaintNodesByCondition: condition type and status -> NoSchedule taint key.
CONDITION_TAINTS = {
    ("Ready", "False"): TAINT_NOT_READY,
    ("Ready", "Unknown"): TAINT_UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MANAGED_NO_SCHEDULE = frozenset({*CONDITION_TAINTS.values(), TAINT_UNSCHEDULABLE})
#: What the kubelet posts when healthy, to restore conditions the controller set Unknown.
HEALTHY = {
    "MemoryPressure": (
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
}


@dataclass
class _Eviction:
    node: str
    started: float
    due: float | None


def toleration_seconds(pod: Obj, taints: list[Obj]) -> float | None:
    """getMinTolerationTime over NoExecute taints: 0 if one is untolerated, None if forever."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    minimum: float | None = None
    forever = False
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        for t in matching:
            seconds = t.get("tolerationSeconds")
            if seconds is None:
                forever = True
                continue
            value = max(float(seconds), 0.0)
            minimum = value if minimum is None else min(minimum, value)
    if minimum is None and forever:
        return None
    return minimum


class NodeLifecycleController:
    name = "node-lifecycle-controller"

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.node_rt = cluster.rt("Node")
        self.pod_rt = cluster.rt("Pod")
        self._next_monitor = 0.0
        self._evictions: dict[Key, _Eviction] = {}
        self._tainted: set[str] = set()
        self._dirty = True
        index.on(self.node_rt.key, self._on_node)
        index.on("pods", self._on_pod)

    def _on_node(self, etype: EventType, node: Obj) -> None:
        self._dirty = True

    def _on_pod(self, etype: EventType, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node in self._tainted:
            self._dirty = True

    def step(self, cluster: Cluster, dt: float) -> None:
        now = cluster.elapsed
        if now + 1e-9 >= self._next_monitor:
            self._next_monitor = now + MONITOR_PERIOD
            self.monitor(cluster)
        if self._dirty:
            self._dirty = False
            self.plan_evictions(cluster)
        self.evict_due(cluster)

    # -- node health --------------------------------------------------------------------------

    def monitor(self, cluster: Cluster) -> None:
        nodes = sorted(
            cluster.store.iter_live(self.node_rt), key=lambda n: str(n["metadata"]["name"])
        )
        now = cluster.clock.now()
        for node in nodes:
            status = node.setdefault("status", {})
            ready = get_condition(status, "Ready")
            was_ready = ready is not None and ready.get("status") == "True"
            if ready is None:
                created = node["metadata"].get("creationTimestamp")
                stale = (
                    bool(created)
                    and (now - parse_rfc3339(str(created))).total_seconds() > GRACE_PERIOD
                )
                if stale:
                    self._mark_unknown(cluster, node)
            else:
                beat = ready.get("lastHeartbeatTime")
                age = (now - parse_rfc3339(str(beat))).total_seconds() if beat else GRACE_PERIOD + 1
                if age > GRACE_PERIOD:
                    self._mark_unknown(cluster, node)
                elif ready.get("reason") == "NodeStatusUnknown":
                    self._restore(cluster, node, str(beat))
            ready = get_condition(status, "Ready")
            if was_ready and (ready is None or ready.get("status") != "True"):
                name = str(node["metadata"]["name"])
                cluster.recorder.event(
                    # RecordNodeStatusChange refers to the node with its name as uid.
                    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": name}},
                    "Normal",
                    "NodeNotReady",
                    f"Node {name} status is now: NodeNotReady",
                    component=COMPONENT,
                )
                self.mark_pods_not_ready(cluster, node)
        self.update_taints(cluster, nodes)

    def _mark_unknown(self, cluster: Cluster, node: Obj) -> None:
        status = node["status"]
        changed = False
        stamp = now_str(cluster)
        for ctype in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            cond = get_condition(status, ctype)
            if cond is None:
                status.setdefault("conditions", []).append(
                    {
                        "type": ctype,
                        "status": "Unknown",
                        "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                        "lastTransitionTime": stamp,
                        "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.",
                    }
                )
                changed = True
            elif cond.get("status") != "Unknown":
                cond.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=stamp,
                )
                changed = True
        if changed:
            cluster.store.commit(self.node_rt, node)

    def _restore(self, cluster: Cluster, node: Obj, beat: str) -> None:
        """The kubelet posts again: what it reports for a healthy node replaces the Unknowns."""
        status = node["status"]
        stamp = now_str(cluster)
        for ctype, (value, reason, message) in HEALTHY.items():
            cond = get_condition(status, ctype)
            if cond is not None and cond.get("reason") == "NodeStatusUnknown":
                cond.update(
                    status=value,
                    reason=reason,
                    message=message,
                    lastTransitionTime=stamp,
                    lastHeartbeatTime=beat,
                )
        cluster.store.commit(self.node_rt, node)

    def mark_pods_not_ready(self, cluster: Cluster, node: Obj) -> None:
        """controllerutil.MarkPodsNotReady."""
        name = str(node["metadata"]["name"])
        for pod in sorted(self.index.pods_on(name), key=key_of):
            cond = get_condition(pod.get("status"), "Ready")
            if cond is None or cond.get("status") == "False":
                continue
            cond["status"] = "False"
            cond["lastTransitionTime"] = now_str(cluster)
            cluster.store.commit(self.pod_rt, pod)
            cluster.recorder.event(
                pod, "Warning", "NodeNotReady", "Node is not ready", component=COMPONENT
            )

    # -- taints --------------------------------------------------------------------------------

    def update_taints(self, cluster: Cluster, nodes: list[Obj]) -> None:
        unhealthy = [n for n in nodes if not _node_ready(n)]
        full = bool(nodes) and len(unhealthy) == len(nodes)
        partial = (
            bool(nodes)
            and len(nodes) <= LARGE_CLUSTER
            and len(unhealthy) > 2
            and len(unhealthy) / len(nodes) >= UNHEALTHY_ZONE_THRESHOLD
        )
        for node in nodes:
            spec = node.setdefault("spec", {})
            old: list[Obj] = list(spec.get("taints") or [])
            kept = [t for t in old if not _managed(t)]
            conditions = {
                c.get("type"): c.get("status")
                for c in (node.get("status") or {}).get("conditions") or []
            }
            no_schedule = []
            for (ctype, value), key in CONDITION_TAINTS.items():
                if conditions.get(ctype) == value:
                    no_schedule.append({"key": key, "effect": "NoSchedule"})
            if spec.get("unschedulable"):
                no_schedule.append({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"})
            ready = conditions.get("Ready")
            no_execute: list[Obj] = []
            wanted_key = {"Unknown": TAINT_UNREACHABLE, "False": TAINT_NOT_READY}.get(str(ready))
            existing = [
                t for t in old if t.get("effect") == "NoExecute" and t.get("key") == wanted_key
            ]
            if wanted_key and not full:
                if existing:
                    no_execute = existing[:1]
                elif not partial:
                    no_execute = [
                        {"key": wanted_key, "effect": "NoExecute", "timeAdded": now_str(cluster)}
                    ]
            new = [*kept, *no_schedule, *no_execute]
            if new != old:
                if new:
                    spec["taints"] = new
                else:
                    spec.pop("taints", None)
                cluster.store.commit(self.node_rt, node)
            name = str(node["metadata"]["name"])
            if any(t.get("effect") == "NoExecute" for t in new):
                self._tainted.add(name)
            else:
                self._tainted.discard(name)

    # -- taint eviction ---------------------------------------------------------------------------

    def plan_evictions(self, cluster: Cluster) -> None:
        now = cluster.elapsed
        seen: set[Key] = set()
        for name in sorted(self._tainted):
            node = cluster.store.find(self.node_rt, "", name)
            if node is None:
                continue
            taints = [
                t
                for t in (node.get("spec") or {}).get("taints") or []
                if t.get("effect") == "NoExecute"
            ]
            for pod in self.index.pods_on(name):
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                key = key_of(pod)
                seen.add(key)
                seconds = toleration_seconds(pod, taints)
                plan = self._evictions.get(key)
                if seconds is None:
                    if plan is not None:
                        self._cancel(cluster, key)
                    continue
                started = plan.started if plan is not None and plan.node == name else now
                self._evictions[key] = _Eviction(name, started, started + seconds)
        for key in [k for k in self._evictions if k not in seen]:
            self._cancel(cluster, key)

    def _cancel(self, cluster: Cluster, key: Key) -> None:
        self._evictions.pop(key, None)
        pod = cluster.store.find(self.pod_rt, *key)
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            cluster.recorder.event(
                _pod_ref(key),
                "Normal",
                "TaintManagerEviction",
                f"Cancelling deletion of Pod {key[0]}/{key[1]}",
                component=EVICTION_COMPONENT,
            )

    def evict_due(self, cluster: Cluster) -> None:
        now = cluster.elapsed
        for key, plan in sorted(self._evictions.items()):
            if plan.due is None or plan.due > now + 1e-9:
                continue
            del self._evictions[key]
            pod = cluster.store.find(self.pod_rt, *key)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                continue
            cluster.recorder.event(
                _pod_ref(key),
                "Normal",
                "TaintManagerEviction",
                f"Marking for deletion Pod {key[0]}/{key[1]}",
                component=EVICTION_COMPONENT,
            )
            status = pod.setdefault("status", {})
            status["conditions"] = [
                *[c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"],
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_str(cluster),
                    "reason": "DeletionByTaintManager",
                    "message": "Taint manager: deleting due to NoExecute taint",
                },
            ]
            cluster.store.commit(self.pod_rt, pod)
            try:
                cluster.delete(self.pod_rt, *key)
            except ApiError:
                continue


def _pod_ref(key: Key) -> Obj:
    """The reference emitPodDeletionEvent builds: no uid."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": key[1], "namespace": key[0]}}


def _node_ready(node: Obj) -> bool:
    cond = get_condition(node.get("status"), "Ready")
    return cond is not None and cond.get("status") == "True"


def _managed(taint: Obj) -> bool:
    if taint.get("effect") == "NoSchedule":
        return taint.get("key") in MANAGED_NO_SCHEDULE
    if taint.get("effect") == "NoExecute":
        return taint.get("key") in (TAINT_NOT_READY, TAINT_UNREACHABLE)
    return False
