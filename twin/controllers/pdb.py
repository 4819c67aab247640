"""The disruption controller (pkg/controller/disruption): PodDisruptionBudget status.

For each budget: the pods its selector matches (policy/v1: an empty selector
matches every pod of the namespace, a missing one none), how many of them
are healthy (Ready and not being deleted), how many should be (minAvailable,
or the expected count minus maxUnavailable, percentages taken of the scale
of the pods' controllers), and so how many disruptions are allowed now, with
the DisruptionAllowed condition (SufficientPods / InsufficientPods).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twin.controllers.base import (
    Index,
    Key,
    WorkQueue,
    controller_ref,
    get_condition,
    int_field,
    is_ready,
    key_of,
    labels_of,
    now_str,
    scaled_value,
)
from twin.selectors import match_labels
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

COMPONENT = "controllermanager"
_SCALED_KINDS = ("deployments.apps", "replicasets.apps", "statefulsets.apps")


class ControllerNotFound(Exception):
    pass


class DisruptionController:
    name = "disruption-controller"

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.rt = cluster.rt("PodDisruptionBudget")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._namespaces: dict[str, set[str]] = {}
        self._store = cluster.store
        with cluster.lock:
            for pdb in cluster.store.iter_live(self.rt):
                self._remember("ADDED", pdb)
        index.on(self.rt.key, self._on_pdb)
        index.on("pods", self._on_pod)
        for kind in _SCALED_KINDS:
            index.on(kind, self._on_related)

    def _remember(self, etype: EventType, pdb: Obj) -> None:
        ns, name = key_of(pdb)
        names = self._namespaces.setdefault(ns, set())
        if etype == "DELETED":
            names.discard(name)
        else:
            names.add(name)
            self.queue.add((ns, name))

    def _on_pdb(self, etype: EventType, pdb: Obj) -> None:
        self._remember(etype, pdb)

    def _on_pod(self, etype: EventType, pod: Obj) -> None:
        ns = str(pod["metadata"].get("namespace", ""))
        labels = labels_of(pod)
        for name in sorted(self._namespaces.get(ns, ())):
            pdb = self._store.find(self.rt, ns, name)
            selector = (pdb or {}).get("spec", {}).get("selector")
            if pdb is not None and selector is not None and match_labels(selector, labels):
                self.queue.add((ns, name))

    def _on_related(self, etype: EventType, obj: Obj) -> None:
        ns = str(obj["metadata"].get("namespace", ""))
        for name in sorted(self._namespaces.get(ns, ())):
            self.queue.add((ns, name))

    def step(self, cluster: Cluster, dt: float) -> None:
        for key in self.queue.pop_due(cluster.elapsed):
            pdb = cluster.store.find(self.rt, *key)
            if pdb is not None:
                self.sync(cluster, pdb)

    def sync(self, cluster: Cluster, pdb: Obj) -> None:
        spec = pdb.get("spec") or {}
        ns = str(pdb["metadata"].get("namespace", ""))
        selector = spec.get("selector")
        pods = []
        if selector is not None:
            pods = self.index.select_labels(ns, selector)
        pods.sort(key=lambda p: str(p["metadata"]["name"]))
        if not pods:
            cluster.recorder.event(
                pdb, "Normal", "NoPods", "No matching pods found", component=COMPONENT
            )
        try:
            expected, desired = self.expected_pod_count(cluster, pdb, pods)
        except ControllerNotFound as exc:
            message = f"Failed to calculate the number of expected pods: {exc}"
            cluster.recorder.event(
                pdb, "Warning", "CalculateExpectedPodCountFailed", message, component=COMPONENT
            )
            self.write(cluster, pdb, None, str(exc))
            return
        healthy = sum(1 for p in pods if not p["metadata"].get("deletionTimestamp") and is_ready(p))
        self.write(cluster, pdb, (healthy, desired, expected), "")

    def expected_pod_count(self, cluster: Cluster, pdb: Obj, pods: list[Obj]) -> tuple[int, int]:
        spec = pdb.get("spec") or {}
        if spec.get("maxUnavailable") is not None:
            expected = self.expected_scale(cluster, pods)
            unavailable = scaled_value(spec["maxUnavailable"], expected, True)
            return expected, max(expected - unavailable, 0)
        min_available = spec.get("minAvailable")
        if isinstance(min_available, int):
            return len(pods), min_available
        if min_available is not None:
            expected = self.expected_scale(cluster, pods)
            return expected, scaled_value(min_available, expected, True)
        return 0, 0

    def expected_scale(self, cluster: Cluster, pods: list[Obj]) -> int:
        """getExpectedScale: the sum of the scale of every controller owning a selected pod."""
        scales: dict[str, int] = {}
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None or str(ref.get("uid")) in scales:
                continue
            ns = str(pod["metadata"].get("namespace", ""))
            uid, scale = self._controller_scale(cluster, ref, ns)
            if uid is None:
                raise ControllerNotFound(
                    f'found no controllers for pod "{pod["metadata"]["name"]}"'
                )
            scales[uid] = scale
        return sum(scales.values())

    def _controller_scale(
        self, cluster: Cluster, ref: dict[str, Any], ns: str
    ) -> tuple[str | None, int]:
        kind = str(ref.get("kind", ""))
        try:
            rt = cluster.rt(kind, ref.get("apiVersion"))
        except KeyError:
            return None, 0
        owner = cluster.store.find(rt, ns, str(ref.get("name", "")))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None, 0
        if kind == "ReplicaSet":
            parent = controller_ref(owner)
            if parent is not None and parent.get("kind") == "Deployment":
                deployment = cluster.store.find(
                    cluster.rt("Deployment"), ns, str(parent.get("name"))
                )
                if deployment is not None and deployment["metadata"].get("uid") == parent.get(
                    "uid"
                ):
                    return str(parent["uid"]), int_field(deployment.get("spec"), "replicas", 1)
        if "replicas" not in (owner.get("spec") or {}) and kind not in (
            "ReplicaSet",
            "StatefulSet",
        ):
            return None, 0
        return str(owner["metadata"]["uid"]), int_field(owner.get("spec"), "replicas", 1)

    def write(
        self, cluster: Cluster, pdb: Obj, counts: tuple[int, int, int] | None, error: str
    ) -> None:
        old = pdb.get("status") or {}
        generation = int_field(pdb["metadata"], "generation", 1)
        status: Obj = {"observedGeneration": generation}
        if counts is None:
            status.update(
                disruptionsAllowed=0,
                currentHealthy=int_field(old, "currentHealthy"),
                desiredHealthy=int_field(old, "desiredHealthy"),
                expectedPods=int_field(old, "expectedPods"),
            )
            reason, cond_status, message = "SyncFailed", "False", error
        else:
            healthy, desired, expected = counts
            allowed = healthy - desired
            if expected <= 0 or allowed <= 0:
                allowed = 0
            status.update(
                disruptionsAllowed=allowed,
                currentHealthy=healthy,
                desiredHealthy=desired,
                expectedPods=expected,
            )
            reason = "SufficientPods" if allowed > 0 else "InsufficientPods"
            cond_status = "True" if allowed > 0 else "False"
            message = ""
        previous = get_condition(old, "DisruptionAllowed")
        changed = previous is None or previous.get("status") != cond_status
        status["conditions"] = [
            {
                "type": "DisruptionAllowed",
                "status": cond_status,
                "observedGeneration": generation,
                "lastTransitionTime": now_str(cluster)
                if changed or previous is None
                else previous.get("lastTransitionTime"),
                "reason": reason,
                "message": message,
            }
        ]
        if status != old:
            pdb["status"] = status
            cluster.store.commit(self.rt, pdb)
