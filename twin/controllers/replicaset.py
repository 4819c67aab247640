"""The ReplicaSet controller (pkg/controller/replicaset): keep N pods of a template.

Pods come from the template with `generateName: <rs>-` and a controller
ownerReference; `SuccessfulCreate`, `SuccessfulDelete` and `FailedCreate`
events name them. Pods being deleted or in a terminal phase do not count,
so a replacement starts while the old one is still Terminating. Scale-down
deletes the pods that matter least first (unscheduled, pending, not ready,
doubled up on a node, recently ready, restarting, newest), as
`ActivePodsWithRanks` orders them. A refused create (quota) sets the
ReplicaFailure condition and is retried on the workqueue's exponential
back-off (5 ms doubling to 1000 s), not every tick. Pods whose labels stop
matching are released; matching orphans are adopted.
"""

from __future__ import annotations

import copy
import functools
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twin.clock import parse_rfc3339
from twin.controllers.admission import namespace_terminating
from twin.controllers.base import (
    Index,
    Key,
    WorkQueue,
    controller_ref,
    get_condition,
    int_field,
    is_active,
    is_available,
    is_ready,
    key_of,
    labels_of,
    now_str,
    owner_reference,
    ready_since,
)
from twin.errors import ApiError
from twin.selectors import match_labels
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

COMPONENT = "replicaset-controller"
#: burstReplicas: the most pods created or deleted in one sync.
BURST_REPLICAS = 500
#: workqueue.DefaultControllerRateLimiter's per-item exponential back-off.
BACKOFF_BASE = 0.005
BACKOFF_MAX = 1000.0
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def backoff_delay(failures: int) -> float:
    return min(BACKOFF_BASE * 2.0**failures, BACKOFF_MAX)


def pod_from_template(owner: Obj, template: Obj) -> Obj:
    """controller.GetPodFromTemplate."""
    meta = template.get("metadata") or {}
    pod_meta: dict[str, Any] = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"].get("namespace", "default"),
        "ownerReferences": [owner_reference(owner)],
    }
    for field in ("labels", "annotations", "finalizers"):
        if meta.get(field):
            pod_meta[field] = copy.deepcopy(meta[field])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def set_condition(status: Obj, cond: Obj) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    conditions.append(cond)
    status["conditions"] = conditions


def remove_condition(status: Obj, type_: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def omit_zero(status: Obj, *fields: str) -> Obj:
    """Go's omitempty on int fields."""
    for name in fields:
        if not status.get(name):
            status.pop(name, None)
    return status


class ReplicaSetController:
    name = COMPONENT

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.rt = cluster.rt("ReplicaSet")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._failures: dict[Key, int] = {}
        self._retry_at: dict[Key, float] = {}
        #: spec.replicas when the last attempt failed: a new desire retries at once.
        self._failed_for: dict[Key, int] = {}
        with cluster.lock:
            for rs in cluster.store.iter_live(self.rt):
                self.queue.add(key_of(rs))
        index.on(self.rt.key, self._on_rs)
        index.on("pods", self._on_pod)
        self._store = cluster.store

    # -- events --------------------------------------------------------------------------

    def _on_rs(self, etype: EventType, rs: Obj) -> None:
        key = key_of(rs)
        if etype == "DELETED":
            self._forget(key)
            return
        self.queue.add(key)

    def _on_pod(self, etype: EventType, pod: Obj) -> None:
        ref = controller_ref(pod)
        namespace = str(pod["metadata"].get("namespace", ""))
        if ref is not None:
            if ref.get("kind") == "ReplicaSet":
                self.queue.add((namespace, str(ref.get("name", ""))))
            return
        if etype == "DELETED" or not is_active(pod):
            return
        labels = labels_of(pod)
        for rs in self._store.list(self.rt, namespace, live=True):
            if match_labels((rs.get("spec") or {}).get("selector"), labels):
                self.queue.add(key_of(rs))

    def _forget(self, key: Key) -> None:
        self._failures.pop(key, None)
        self._retry_at.pop(key, None)
        self._failed_for.pop(key, None)

    # -- reconcile -----------------------------------------------------------------------

    def step(self, cluster: Cluster, dt: float) -> None:
        for key in self.queue.pop_due(cluster.elapsed):
            rs = cluster.store.find(self.rt, *key)
            if rs is not None:
                self.sync(cluster, rs)

    def claim_pods(self, cluster: Cluster, rs: Obj) -> list[Obj]:
        """claimPods: owned active pods that still match, plus adopted orphans."""
        selector = (rs.get("spec") or {}).get("selector")
        uid = rs["metadata"]["uid"]
        pods: list[Obj] = []
        pod_rt = cluster.rt("Pod")
        for pod in self.index.pods_of(uid):
            if not is_active(pod):
                continue
            if selector and match_labels(selector, labels_of(pod)):
                pods.append(pod)
                continue
            refs = pod["metadata"].get("ownerReferences") or []
            pod["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
            if not pod["metadata"]["ownerReferences"]:
                del pod["metadata"]["ownerReferences"]
            cluster.store.commit(pod_rt, pod)
        if selector and not rs["metadata"].get("deletionTimestamp"):
            namespace = str(rs["metadata"].get("namespace", ""))
            for pod in list(self.index.orphans.get(namespace, {}).values()):
                if is_active(pod) and match_labels(selector, labels_of(pod)):
                    refs = pod["metadata"].setdefault("ownerReferences", [])
                    refs.append(owner_reference(rs))
                    cluster.store.commit(pod_rt, pod)
                    pods.append(pod)
        return pods

    def sync(self, cluster: Cluster, rs: Obj) -> None:
        key = key_of(rs)
        pods = self.claim_pods(cluster, rs)
        error: ApiError | None = None
        managed = False
        replicas = int_field(rs.get("spec"), "replicas", 1)
        backing_off = (
            key in self._failures
            and self._retry_at.get(key, 0.0) > cluster.elapsed + 1e-9
            and self._failed_for.get(key) == replicas
        )
        if not rs["metadata"].get("deletionTimestamp") and not backing_off:
            managed = True
            error = self.manage_replicas(cluster, rs, pods)
            pods = self.claim_pods(cluster, rs)
        if managed:
            if error is None:
                self._forget(key)
            else:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                self._failed_for[key] = replicas
                when = cluster.elapsed + backoff_delay(failures)
                self._retry_at[key] = when
                self.queue.add_at(key, when)
        self.update_status(cluster, rs, pods, error if managed else None, managed)

    def manage_replicas(self, cluster: Cluster, rs: Obj, pods: list[Obj]) -> ApiError | None:
        replicas = int_field(rs.get("spec"), "replicas", 1)
        diff = len(pods) - replicas
        recorder = cluster.recorder
        if diff < 0:
            return self.create_pods(cluster, rs, min(-diff, BURST_REPLICAS))
        if diff > 0:
            victims = pods_to_delete(
                pods, self.related_pods(cluster, rs), min(diff, BURST_REPLICAS), cluster
            )
            pod_rt = cluster.rt("Pod")
            for pod in victims:
                name = str(pod["metadata"]["name"])
                try:
                    cluster.delete(pod_rt, str(pod["metadata"].get("namespace", "")), name)
                except ApiError as exc:
                    if exc.code == 404:
                        continue
                    recorder.event(
                        rs,
                        "Warning",
                        "FailedDelete",
                        f"Error deleting: {exc.message}",
                        component=COMPONENT,
                    )
                    return exc
                recorder.event(
                    rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}", component=COMPONENT
                )
        return None

    def create_pods(self, cluster: Cluster, rs: Obj, count: int) -> ApiError | None:
        """slowStartBatch: batches of 1, 2, 4, ...; stop after a batch with a failure."""
        pod_rt = cluster.rt("Pod")
        template = (rs.get("spec") or {}).get("template") or {}
        batch, remaining = 1, count
        first_error: ApiError | None = None
        while remaining > 0 and first_error is None:
            size = min(batch, remaining)
            for _ in range(size):
                try:
                    created = cluster.create(pod_rt, pod_from_template(rs, template))
                except ApiError as exc:
                    if namespace_terminating(exc):
                        # Every create would fail; the namespace controller is removing it all.
                        continue
                    first_error = first_error or exc
                    cluster.recorder.event(
                        rs,
                        "Warning",
                        "FailedCreate",
                        f"Error creating: {exc.message}",
                        component=COMPONENT,
                    )
                    continue
                cluster.recorder.event(
                    rs,
                    "Normal",
                    "SuccessfulCreate",
                    f"Created pod: {created['metadata']['name']}",
                    component=COMPONENT,
                )
            remaining -= size
            batch *= 2
        return first_error

    def related_pods(self, cluster: Cluster, rs: Obj) -> list[Obj]:
        """Pods of every ReplicaSet with the same controlling owner (a Deployment's history)."""
        owner = controller_ref(rs)
        if owner is None:
            return self.index.pods_of(rs["metadata"]["uid"])
        related: list[Obj] = []
        for sibling in cluster.store.list(
            self.rt, str(rs["metadata"].get("namespace", "")), live=True
        ):
            ref = controller_ref(sibling)
            if ref is not None and ref.get("uid") == owner.get("uid"):
                related.extend(self.index.pods_of(sibling["metadata"]["uid"]))
        return related

    def update_status(
        self, cluster: Cluster, rs: Obj, pods: list[Obj], error: ApiError | None, managed: bool
    ) -> None:
        spec = rs.get("spec") or {}
        min_ready = int_field(spec, "minReadySeconds")
        now = cluster.clock.now()
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        fully = ready = available = 0
        soonest: float | None = None
        for pod in pods:
            labels = labels_of(pod)
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            if is_ready(pod):
                ready += 1
                if is_available(pod, min_ready, now):
                    available += 1
                else:
                    since = ready_since(pod)
                    if since is not None:
                        wait = (since - now).total_seconds() + min_ready + 1
                        soonest = wait if soonest is None else min(soonest, wait)
        old = rs.get("status") or {}
        status = copy.deepcopy(old)
        failure = get_condition(status, "ReplicaFailure")
        if managed and error is not None and failure is None:
            replicas = int_field(spec, "replicas", 1)
            reason = "FailedCreate" if len(pods) < replicas else "FailedDelete"
            set_condition(
                status,
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "lastTransitionTime": now_str(cluster),
                    "reason": reason,
                    "message": error.message,
                },
            )
        elif managed and error is None and failure is not None:
            remove_condition(status, "ReplicaFailure")
        status["replicas"] = len(pods)
        status["fullyLabeledReplicas"] = fully
        status["readyReplicas"] = ready
        status["availableReplicas"] = available
        status["observedGeneration"] = int_field(rs["metadata"], "generation", 1)
        omit_zero(
            status,
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        )
        if status != old:
            rs["status"] = status
            cluster.store.commit(self.rt, rs)
        if soonest is not None and error is None:
            self.queue.add_at(key_of(rs), cluster.elapsed + max(soonest, 0.0))


# -- which pods go first ----------------------------------------------------------------


def _restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount", 0)) for s in statuses), default=0)


def _deletion_cost(pod: Obj) -> int:
    raw = (pod["metadata"].get("annotations") or {}).get(DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _created(pod: Obj) -> datetime | None:
    raw = pod["metadata"].get("creationTimestamp")
    return parse_rfc3339(str(raw)) if raw else None


def _log_rank_diff(t1: datetime, t2: datetime, now: datetime) -> int:
    d1 = (now - t1).total_seconds() * 1e9
    d2 = (now - t2).total_seconds() * 1e9
    r1 = int(math.log2(d1)) if d1 > 0 else -1
    r2 = int(math.log2(d2)) if d2 > 0 else -1
    return r1 - r2


def _time_less(
    t1: datetime | None, t2: datetime | None, pod_i: Obj, pod_j: Obj, now: datetime
) -> bool:
    """LogarithmicScaleDown: newer first, ages compared in powers of two, ties by uid."""
    if t1 is None or t2 is None:
        return t1 is None and t2 is not None
    diff = _log_rank_diff(t1, t2, now)
    if diff == 0:
        return str(pod_i["metadata"]["uid"]) < str(pod_j["metadata"]["uid"])
    return diff < 0


def pods_to_delete(pods: list[Obj], related: list[Obj], count: int, cluster: Cluster) -> list[Obj]:
    """getPodsToDelete with ActivePodsWithRanks ordering."""
    if count >= len(pods):
        return list(pods)
    on_node: dict[str, int] = {}
    for pod in related:
        if is_active(pod):
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            on_node[node] = on_node.get(node, 0) + 1
    rank = {id(p): on_node.get(str((p.get("spec") or {}).get("nodeName") or ""), 0) for p in pods}
    now = cluster.clock.now()

    def less(a: Obj, b: Obj) -> bool:
        node_a = (a.get("spec") or {}).get("nodeName") or ""
        node_b = (b.get("spec") or {}).get("nodeName") or ""
        if node_a != node_b and (not node_a or not node_b):
            return not node_a
        phase_a = _PHASE_ORDER.get((a.get("status") or {}).get("phase", ""), 0)
        phase_b = _PHASE_ORDER.get((b.get("status") or {}).get("phase", ""), 0)
        if phase_a != phase_b:
            return phase_a < phase_b
        if is_ready(a) != is_ready(b):
            return not is_ready(a)
        if _deletion_cost(a) != _deletion_cost(b):
            return _deletion_cost(a) < _deletion_cost(b)
        if rank[id(a)] != rank[id(b)]:
            return rank[id(a)] > rank[id(b)]
        if is_ready(a) and is_ready(b):
            ta, tb = ready_since(a), ready_since(b)
            if ta != tb:
                return _time_less(ta, tb, a, b, now)
        if _restarts(a) != _restarts(b):
            return _restarts(a) > _restarts(b)
        ca, cb = _created(a), _created(b)
        if ca != cb:
            return _time_less(ca, cb, a, b, now)
        return False

    def compare(a: Obj, b: Obj) -> int:
        if less(a, b):
            return -1
        if less(b, a):
            return 1
        return 0

    return sorted(pods, key=functools.cmp_to_key(compare))[:count]
