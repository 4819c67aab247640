"""The StatefulSet controller (pkg/controller/statefulset): ordinal pods and revisions.

Pods are `<sts>-0 .. <sts>-N-1`, with `controller-revision-hash`,
`statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`
labels and hostname/subdomain set. Each template is recorded as a
ControllerRevision `<sts>-<hash>`. With OrderedReady, pod i+1 is created
only once pod i is Running and Ready, scale-down removes the highest ordinal
first and waits for it to go, and nothing proceeds past a terminating pod. A
RollingUpdate replaces pods from the highest ordinal down to the partition,
one at a time, waiting for each replacement to be Running and Ready. Events:
`create Pod web-0 in StatefulSet web successful` and the like.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from twin.controllers.base import (
    Index,
    Key,
    WorkQueue,
    controller_ref,
    int_field,
    is_available,
    is_ready,
    key_of,
    owner_reference,
)
from twin.controllers.hashing import canonical_json, compute_hash
from twin.controllers.replicaset import backoff_delay
from twin.errors import ApiError
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

COMPONENT = "statefulset-controller"
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
HASH_LABEL = "controller.kubernetes.io/hash"


def revision_data(sts: Obj) -> Obj:
    """getPatch: the part of the set a revision records (the template, replacing)."""
    template = copy.deepcopy((sts.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def ordinal_of(sts_name: str, pod: Obj) -> int | None:
    name = str(pod["metadata"]["name"])
    prefix = f"{sts_name}-"
    if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
        return None
    return int(name[len(prefix) :])


def running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


class StatefulSetController:
    name = COMPONENT

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.rt = cluster.rt("StatefulSet")
        self.rev_rt = cluster.rt("ControllerRevision")
        self.pod_rt = cluster.rt("Pod")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._failures: dict[Key, int] = {}
        with cluster.lock:
            for sts in cluster.store.iter_live(self.rt):
                self.queue.add(key_of(sts))
        index.on(self.rt.key, self._on_sts)
        index.on("pods", self._on_pod)

    def _on_sts(self, etype: EventType, sts: Obj) -> None:
        if etype == "DELETED":
            self._failures.pop(key_of(sts), None)
        else:
            self.queue.add(key_of(sts))

    def _on_pod(self, etype: EventType, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") == "StatefulSet":
            self.queue.add((str(pod["metadata"].get("namespace", "")), str(ref.get("name"))))

    def step(self, cluster: Cluster, dt: float) -> None:
        for key in self.queue.pop_due(cluster.elapsed):
            sts = cluster.store.find(self.rt, *key)
            if sts is not None:
                self.sync(cluster, sts)

    # -- revisions -------------------------------------------------------------------------------

    def revisions(self, cluster: Cluster, sts: Obj) -> list[Obj]:
        uid = sts["metadata"]["uid"]
        owned = [
            r
            for r in cluster.store.list(
                self.rev_rt, str(sts["metadata"].get("namespace", "")), live=True
            )
            if (controller_ref(r) or {}).get("uid") == uid
        ]
        return sorted(owned, key=lambda r: (int(r.get("revision") or 0), r["metadata"]["name"]))

    def update_revision(self, cluster: Cluster, sts: Obj, revisions: list[Obj]) -> Obj | None:
        data = revision_data(sts)
        wanted = canonical_json(data)
        latest = max((int(r.get("revision") or 0) for r in revisions), default=0)
        for rev in revisions:
            if canonical_json(rev.get("data")) == wanted:
                if int(rev.get("revision") or 0) < latest:
                    rev["revision"] = latest + 1
                    cluster.store.commit(self.rev_rt, rev)
                return rev
        status = sts.setdefault("status", {})
        collision = int(status.get("collisionCount") or 0)
        template_labels = ((sts["spec"].get("template") or {}).get("metadata") or {}).get(
            "labels"
        ) or {}
        for _ in range(5):
            digest = compute_hash(data, collision)
            name = f"{sts['metadata']['name']}-{digest}"
            fresh: Obj = {
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": name,
                    "namespace": sts["metadata"].get("namespace", "default"),
                    "labels": {**template_labels, HASH_LABEL: digest},
                    "ownerReferences": [owner_reference(sts)],
                },
                "data": data,
                "revision": latest + 1,
            }
            try:
                cluster.create(self.rev_rt, fresh)
            except ApiError as exc:
                if exc.code == 409:
                    collision += 1
                    status["collisionCount"] = collision
                    continue
                return None
            return cluster.store.find(self.rev_rt, fresh["metadata"]["namespace"], name)
        return None

    def truncate_history(
        self, cluster: Cluster, sts: Obj, revisions: list[Obj], live: set[str]
    ) -> None:
        limit = int_field(sts.get("spec"), "revisionHistoryLimit", 10)
        history = [r for r in revisions if r["metadata"]["name"] not in live]
        for rev in history[: max(len(history) - limit, 0)]:
            try:
                cluster.delete(
                    self.rev_rt, str(rev["metadata"].get("namespace", "")), rev["metadata"]["name"]
                )
            except ApiError:
                continue

    # -- pods --------------------------------------------------------------------------------------

    def new_pod(self, sts: Obj, ordinal: int, revision: Obj) -> Obj:
        name = f"{sts['metadata']['name']}-{ordinal}"
        template = copy.deepcopy(
            ((revision.get("data") or {}).get("spec") or {}).get("template") or {}
        )
        template.pop("$patch", None)
        meta = template.get("metadata") or {}
        labels = {
            **(meta.get("labels") or {}),
            REVISION_LABEL: revision["metadata"]["name"],
            POD_NAME_LABEL: name,
            POD_INDEX_LABEL: str(ordinal),
        }
        pod_meta: dict[str, Any] = {
            "name": name,
            "namespace": sts["metadata"].get("namespace", "default"),
            "labels": labels,
            "ownerReferences": [owner_reference(sts)],
        }
        if meta.get("annotations"):
            pod_meta["annotations"] = copy.deepcopy(meta["annotations"])
        spec = copy.deepcopy(template.get("spec") or {})
        spec["hostname"] = name
        service = (sts.get("spec") or {}).get("serviceName")
        if service:
            spec["subdomain"] = service
        return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}

    def _event(
        self, cluster: Cluster, sts: Obj, verb: str, pod: str, error: ApiError | None = None
    ) -> None:
        set_name = sts["metadata"]["name"]
        if error is None:
            reason = "SuccessfulCreate" if verb == "create" else "SuccessfulDelete"
            cluster.recorder.event(
                sts,
                "Normal",
                reason,
                f"{verb} Pod {pod} in StatefulSet {set_name} successful",
                component=COMPONENT,
            )
        else:
            reason = "FailedCreate" if verb == "create" else "FailedDelete"
            cluster.recorder.event(
                sts,
                "Warning",
                reason,
                f"{verb} Pod {pod} in StatefulSet {set_name} failed error: {error.message}",
                component=COMPONENT,
            )

    def _delete(self, cluster: Cluster, sts: Obj, pod: Obj) -> None:
        try:
            cluster.delete(self.pod_rt, *key_of(pod))
        except ApiError as exc:
            self._event(cluster, sts, "delete", pod["metadata"]["name"], exc)
            return
        self._event(cluster, sts, "delete", pod["metadata"]["name"])

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, cluster: Cluster, sts: Obj) -> None:
        key = key_of(sts)
        spec = sts.get("spec") or {}
        sts_name = str(sts["metadata"]["name"])
        revisions = self.revisions(cluster, sts)
        update = self.update_revision(cluster, sts, revisions)
        if update is None:
            return
        revisions = self.revisions(cluster, sts)
        by_name = {r["metadata"]["name"]: r for r in revisions}
        status = sts.get("status") or {}
        current = by_name.get(str(status.get("currentRevision") or "")) or update
        replicas_wanted = int_field(spec, "replicas", 1)
        pods: dict[int, Obj] = {}
        for pod in self.index.pods_of(sts["metadata"]["uid"]):
            ordinal = ordinal_of(sts_name, pod)
            if ordinal is not None:
                pods[ordinal] = pod
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        strategy = spec.get("updateStrategy") or {}
        partition = int_field(strategy.get("rollingUpdate"), "partition")
        current_replicas = int_field(status, "currentReplicas")
        failed = self.reconcile(
            cluster,
            sts,
            pods,
            replicas_wanted,
            monotonic,
            current,
            update,
            partition,
            current_replicas,
        )
        if failed:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            self.queue.add_at(key, cluster.elapsed + max(backoff_delay(failures), 1.0))
        else:
            self._failures.pop(key, None)
        pods = {}
        for pod in self.index.pods_of(sts["metadata"]["uid"]):
            ordinal = ordinal_of(sts_name, pod)
            if ordinal is not None:
                pods[ordinal] = pod
        self.update_status(cluster, sts, pods, current, update, replicas_wanted)
        live = {str(sts["status"].get("currentRevision")), str(sts["status"].get("updateRevision"))}
        self.truncate_history(cluster, sts, revisions, live)

    def reconcile(
        self,
        cluster: Cluster,
        sts: Obj,
        pods: dict[int, Obj],
        replicas: int,
        monotonic: bool,
        current: Obj,
        update: Obj,
        partition: int,
        current_replicas: int,
    ) -> bool:
        """updateStatefulSet's three passes; True if a create failed."""
        rolling = (sts["spec"].get("updateStrategy") or {}).get(
            "type", "RollingUpdate"
        ) == "RollingUpdate"
        for ordinal in range(replicas):
            pod = pods.get(ordinal)
            if (
                pod is not None
                and (pod.get("status") or {}).get("phase") == "Failed"
                and not terminating(pod)
            ):
                self._delete(cluster, sts, pod)
                if monotonic:
                    return False
                continue
            if pod is None:
                use_current = rolling and (
                    (partition == 0 and ordinal < current_replicas) or ordinal < partition
                )
                revision = current if use_current else update
                new = self.new_pod(sts, ordinal, revision)
                try:
                    cluster.create(self.pod_rt, new)
                except ApiError as exc:
                    self._event(cluster, sts, "create", new["metadata"]["name"], exc)
                    return True
                self._event(cluster, sts, "create", new["metadata"]["name"])
                if monotonic:
                    return False
                continue
            if terminating(pod) and monotonic:
                return False
            if monotonic and not running_and_ready(pod):
                return False
        condemned = sorted((o for o in pods if o >= replicas), reverse=True)
        for ordinal in condemned:
            pod = pods[ordinal]
            if terminating(pod):
                if monotonic:
                    return False
                continue
            self._delete(cluster, sts, pod)
            if monotonic:
                return False
        if not rolling:
            return False
        update_name = update["metadata"]["name"]
        for ordinal in range(replicas - 1, partition - 1, -1):
            pod = pods.get(ordinal)
            if pod is None:
                return False
            if labels_revision(pod) != update_name and not terminating(pod):
                self._delete(cluster, sts, pod)
                return False
            if not running_and_ready(pod):
                return False
        return False

    def update_status(
        self,
        cluster: Cluster,
        sts: Obj,
        pods: dict[int, Obj],
        current: Obj,
        update: Obj,
        replicas_wanted: int,
    ) -> None:
        min_ready = int_field(sts.get("spec"), "minReadySeconds")
        now = cluster.clock.now()
        live = [
            p
            for p in pods.values()
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        counted = [p for p in live if not terminating(p)]
        ready = sum(1 for p in counted if running_and_ready(p))
        available = sum(
            1 for p in counted if running_and_ready(p) and is_available(p, min_ready, now)
        )
        cur_name, upd_name = current["metadata"]["name"], update["metadata"]["name"]
        current_count = sum(1 for p in counted if labels_revision(p) == cur_name)
        updated_count = sum(1 for p in counted if labels_revision(p) == upd_name)
        old = sts.get("status") or {}
        status: Obj = {
            "observedGeneration": int_field(sts["metadata"], "generation", 1),
            "replicas": len(counted),
            "readyReplicas": ready,
            "currentReplicas": current_count,
            "updatedReplicas": updated_count,
            "currentRevision": cur_name,
            "updateRevision": upd_name,
            "collisionCount": int(old.get("collisionCount") or 0),
            "availableReplicas": available,
        }
        if updated_count == len(counted) == replicas_wanted and ready == replicas_wanted:
            status["currentReplicas"] = updated_count
            status["currentRevision"] = upd_name
        for name in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if not status[name]:
                del status[name]
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if status != old:
            sts["status"] = status
            cluster.store.commit(self.rt, sts)


def labels_revision(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))
