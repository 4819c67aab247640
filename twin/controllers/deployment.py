"""The Deployment controller (pkg/controller/deployment): ReplicaSets per template, rollouts.

A port of sync.go, rolling.go, recreate.go and progress.go: the new
ReplicaSet is `<deploy>-<pod-template-hash>` with the hash label on its
labels, selector and template; an old ReplicaSet whose template matches is
reused with a new revision (that is how `kubectl rollout undo` works);
RollingUpdate honours maxSurge (rounded up) and maxUnavailable (rounded
down); Recreate scales the old ones to zero and waits for their pods to go
before it creates the new one. Scaling events are spread proportionally over
the active ReplicaSets. ScalingReplicaSet events use the v1.32+ wording;
Available and Progressing conditions, the ReplicaFailure copy, revision
annotations and history cleanup follow the real code.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

from twin.clock import parse_rfc3339
from twin.controllers.admission import default_pod_spec
from twin.controllers.base import (
    Index,
    Key,
    WorkQueue,
    controller_ref,
    get_condition,
    int_field,
    key_of,
    labels_of,
    now_str,
    owner_reference,
    scaled_value,
)
from twin.controllers.hashing import canonical_json, compute_hash
from twin.controllers.replicaset import omit_zero
from twin.errors import ApiError
from twin.selectors import match_labels
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

COMPONENT = "deployment-controller"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
ANNOTATIONS_TO_SKIP = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)
MAX_REV_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1

# Condition reasons (util/deployment_util.go).
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"


# -- small utilities --------------------------------------------------------------------


def replicas_of(obj: Obj | None) -> int:
    return int_field((obj or {}).get("spec"), "replicas", 1)


def status_int(obj: Obj | None, name: str) -> int:
    return int_field((obj or {}).get("status"), name)


def is_rolling(d: Obj) -> bool:
    strategy = (d.get("spec") or {}).get("strategy") or {}
    return str(strategy.get("type", "RollingUpdate")) == "RollingUpdate"


def resolve_fenceposts(d: Obj) -> tuple[int, int]:
    """util.ResolveFenceposts: surge rounds up, unavailable down; both 0 makes unavailable 1."""
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas_of(d)
    surge = scaled_value(rolling.get("maxSurge", 0), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", 0), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    desired = replicas_of(d)
    if not is_rolling(d) or desired == 0:
        return 0
    return min(resolve_fenceposts(d)[1], desired)


def revision_of(rs: Obj) -> int:
    raw = (rs["metadata"].get("annotations") or {}).get(REVISION, "")
    try:
        return int(raw)
    except ValueError:
        return 0


def has_progress_deadline(d: Obj) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def template_key(template: Obj) -> bytes:
    """A template compared as EqualIgnoreHash does, after defaulting (so unset == default)."""
    t = copy.deepcopy(template)
    labels = (t.setdefault("metadata", {}).get("labels")) or {}
    labels.pop(HASH_LABEL, None)
    if not labels:
        t["metadata"].pop("labels", None)
    for name in ("creationTimestamp",):
        t["metadata"].pop(name, None)
    if not t["metadata"]:
        del t["metadata"]
    default_pod_spec(t.setdefault("spec", {}))
    return canonical_json(t)


def sort_by_creation(rss: list[Obj]) -> list[Obj]:
    """controller.ReplicaSetsByCreationTimestamp."""
    return sorted(
        rss, key=lambda r: (str(r["metadata"].get("creationTimestamp", "")), r["metadata"]["name"])
    )


def active(rss: list[Obj]) -> list[Obj]:
    return [r for r in rss if replicas_of(r) > 0]


def new_condition(cluster: Cluster, type_: str, status: str, reason: str, message: str) -> Obj:
    now = now_str(cluster)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, cond: Obj) -> None:
    """util.SetDeploymentCondition: same status and reason is a no-op."""
    current = get_condition(status, cond["type"])
    if (
        current is not None
        and current.get("status") == cond["status"]
        and current.get("reason") == cond["reason"]
    ):
        return
    if current is not None and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    conditions.append(cond)
    status["conditions"] = conditions


def remove_condition(status: Obj, type_: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != type_]


# -- the controller ---------------------------------------------------------------------


class DeploymentController:
    name = COMPONENT

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.rt = cluster.rt("Deployment")
        self.rs_rt = cluster.rt("ReplicaSet")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._rs_keys: dict[tuple[str, int], bytes] = {}
        self._store = cluster.store
        with cluster.lock:
            for d in cluster.store.iter_live(self.rt):
                self.queue.add(key_of(d))
        index.on(self.rt.key, self._on_deployment)
        index.on(self.rs_rt.key, self._on_rs)
        index.on("pods", self._on_pod)

    # -- events --------------------------------------------------------------------------

    def _on_deployment(self, etype: EventType, d: Obj) -> None:
        if etype != "DELETED":
            self.queue.add(key_of(d))

    def _on_rs(self, etype: EventType, rs: Obj) -> None:
        namespace = str(rs["metadata"].get("namespace", ""))
        ref = controller_ref(rs)
        if etype == "DELETED":
            self._rs_keys.pop(
                (rs["metadata"]["uid"], int_field(rs["metadata"], "generation", 1)), None
            )
        if ref is not None:
            if ref.get("kind") == "Deployment":
                self.queue.add((namespace, str(ref.get("name", ""))))
            return
        if etype == "DELETED":
            return
        for d in self._store.list(self.rt, namespace, live=True):
            if match_labels((d.get("spec") or {}).get("selector"), labels_of(rs)):
                self.queue.add(key_of(d))

    def _on_pod(self, etype: EventType, pod: Obj) -> None:
        if etype != "DELETED":
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self._store.find(
            self.rs_rt, str(pod["metadata"].get("namespace", "")), str(ref.get("name"))
        )
        owner = controller_ref(rs) if rs is not None else None
        if rs is not None and owner is not None and owner.get("kind") == "Deployment":
            self.queue.add((str(rs["metadata"].get("namespace", "")), str(owner.get("name"))))

    def step(self, cluster: Cluster, dt: float) -> None:
        for key in self.queue.pop_due(cluster.elapsed):
            d = cluster.store.find(self.rt, *key)
            if d is not None:
                self.sync(cluster, d)

    # -- listing and claiming ------------------------------------------------------------

    def claim_replica_sets(self, cluster: Cluster, d: Obj) -> list[Obj]:
        """ReplicaSets this Deployment controls; adopts matching orphans, releases strays."""
        namespace = str(d["metadata"].get("namespace", ""))
        uid = d["metadata"]["uid"]
        selector = (d.get("spec") or {}).get("selector")
        owned: list[Obj] = []
        for rs in cluster.store.list(self.rs_rt, namespace, live=True):
            ref = controller_ref(rs)
            matches = bool(selector) and match_labels(selector, labels_of(rs))
            if ref is not None and ref.get("uid") == uid:
                if matches:
                    owned.append(rs)
                else:
                    refs = [
                        r
                        for r in rs["metadata"].get("ownerReferences") or []
                        if r.get("uid") != uid
                    ]
                    if refs:
                        rs["metadata"]["ownerReferences"] = refs
                    else:
                        rs["metadata"].pop("ownerReferences", None)
                    cluster.store.commit(self.rs_rt, rs)
            elif ref is None and matches:
                rs["metadata"].setdefault("ownerReferences", []).append(owner_reference(d))
                cluster.store.commit(self.rs_rt, rs)
                owned.append(rs)
        return owned

    def _rs_template_key(self, rs: Obj) -> bytes:
        cache_key = (str(rs["metadata"]["uid"]), int_field(rs["metadata"], "generation", 1))
        found = self._rs_keys.get(cache_key)
        if found is None:
            found = self._rs_keys[cache_key] = template_key(
                (rs.get("spec") or {}).get("template") or {}
            )
        return found

    def find_new(self, d: Obj, rss: list[Obj]) -> Obj | None:
        """util.FindNewReplicaSet: the oldest ReplicaSet whose template equals the Deployment's."""
        want = template_key((d.get("spec") or {}).get("template") or {})
        for rs in sort_by_creation(rss):
            if self._rs_template_key(rs) == want:
                return rs
        return None

    # -- sync ----------------------------------------------------------------------------

    def sync(self, cluster: Cluster, d: Obj) -> None:
        rss = self.claim_replica_sets(cluster, d)
        self.check_paused_conditions(cluster, d)
        spec = d.get("spec") or {}
        if spec.get("paused"):
            self.sync_scale(cluster, d, rss)
            return
        if self.is_scaling_event(cluster, d, rss):
            self.sync_scale(cluster, d, rss)
            return
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            self.rollout_recreate(cluster, d, rss)
        else:
            self.rollout_rolling(cluster, d, rss)

    def check_paused_conditions(self, cluster: Cluster, d: Obj) -> None:
        if not has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == TIMED_OUT_REASON:
            return
        paused_exists = cond is not None and cond.get("reason") == PAUSED_REASON
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and not paused_exists:
            set_condition(
                status,
                new_condition(
                    cluster, "Progressing", "Unknown", PAUSED_REASON, "Deployment is paused"
                ),
            )
        elif not paused and paused_exists:
            set_condition(
                status,
                new_condition(
                    cluster, "Progressing", "Unknown", RESUMED_REASON, "Deployment is resumed"
                ),
            )
        else:
            return
        cluster.store.commit(self.rt, d)

    def is_scaling_event(self, cluster: Cluster, d: Obj, rss: list[Obj]) -> bool:
        new_rs, old = self.get_all_and_sync_revision(cluster, d, rss, create=False)
        for rs in active([*old, *([new_rs] if new_rs else [])]):
            desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
            if desired is None:
                continue
            try:
                if int(desired) != replicas_of(d):
                    return True
            except ValueError:
                continue
        return False

    # -- the new ReplicaSet --------------------------------------------------------------

    def get_all_and_sync_revision(
        self, cluster: Cluster, d: Obj, rss: list[Obj], *, create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        existing = self.find_new(d, rss)
        old = [rs for rs in rss if rs is not existing]
        new_rs = self.get_new_replica_set(cluster, d, rss, old, existing, create)
        return new_rs, old

    def get_new_replica_set(
        self,
        cluster: Cluster,
        d: Obj,
        rss: list[Obj],
        old: list[Obj],
        existing: Obj | None,
        create: bool,
    ) -> Obj | None:
        max_old = max((revision_of(rs) for rs in old), default=0)
        new_revision = max_old + 1
        status = d.setdefault("status", {})
        if existing is not None:
            changed = set_new_rs_annotations(d, existing, new_revision, exists=True)
            min_ready = int_field(d.get("spec"), "minReadySeconds")
            if changed or int_field(existing.get("spec"), "minReadySeconds") != min_ready:
                if int_field(existing.get("spec"), "minReadySeconds") != min_ready:
                    existing["spec"]["minReadySeconds"] = min_ready
                    bump_generation(existing)
                cluster.store.commit(self.rs_rt, existing)
                return existing
            needs_update = set_deployment_revision(d, str(revision_of(existing) or ""))
            if has_progress_deadline(d) and get_condition(status, "Progressing") is None:
                set_condition(
                    status,
                    new_condition(
                        cluster,
                        "Progressing",
                        "True",
                        FOUND_NEW_RS_REASON,
                        f'Found new replica set "{existing["metadata"]["name"]}"',
                    ),
                )
                needs_update = True
            if needs_update:
                cluster.store.commit(self.rt, d)
            return existing
        if not create:
            return None
        spec = d.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        collision = status.get("collisionCount")
        pod_hash = compute_hash(template, collision)
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {
            **(template["metadata"].get("labels") or {}),
            HASH_LABEL: pod_hash,
        }
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        name = f"{d['metadata']['name']}-{pod_hash}"
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": d["metadata"].get("namespace", "default"),
                "ownerReferences": [owner_reference(d)],
                "labels": dict(template["metadata"]["labels"]),
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int_field(spec, "minReadySeconds"),
                "selector": selector,
                "template": template,
            },
        }
        new_rs["spec"]["replicas"] = new_rs_new_replicas(d, [*old, new_rs], new_rs)
        set_new_rs_annotations(d, new_rs, new_revision, exists=False)
        already_exists = False
        try:
            cluster.create(self.rs_rt, new_rs)
            created = cluster.store.find(self.rs_rt, new_rs["metadata"]["namespace"], name)
        except ApiError as exc:
            if exc.code == 409 and exc.reason == "AlreadyExists":
                found = cluster.store.find(self.rs_rt, new_rs["metadata"]["namespace"], name)
                ref = controller_ref(found) if found is not None else None
                if (
                    found is not None
                    and ref is not None
                    and ref.get("uid") == d["metadata"]["uid"]
                    and self._rs_template_key(found) == template_key(spec.get("template") or {})
                ):
                    created = found
                    already_exists = True
                else:
                    status["collisionCount"] = int(collision or 0) + 1
                    cluster.store.commit(self.rt, d)
                    self.queue.add(key_of(d))
                    return None
            else:
                message = f'Failed to create new replica set "{name}": {exc.message}'
                if has_progress_deadline(d):
                    set_condition(
                        status,
                        new_condition(
                            cluster, "Progressing", "False", FAILED_RS_CREATE_REASON, message
                        ),
                    )
                    cluster.store.commit(self.rt, d)
                cluster.recorder.event(
                    d, "Warning", FAILED_RS_CREATE_REASON, message, component=COMPONENT
                )
                return None
        if created is None:
            return None
        replicas = replicas_of(created)
        if not already_exists and replicas > 0:
            cluster.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {name} from 0 to {replicas}",
                component=COMPONENT,
            )
        needs_update = set_deployment_revision(d, str(new_revision))
        if not already_exists and has_progress_deadline(d):
            set_condition(
                status,
                new_condition(
                    cluster,
                    "Progressing",
                    "True",
                    NEW_RS_REASON,
                    f'Created new replica set "{name}"',
                ),
            )
            needs_update = True
        if needs_update:
            cluster.store.commit(self.rt, d)
        return created

    # -- scaling -------------------------------------------------------------------------

    def scale_rs(self, cluster: Cluster, d: Obj, rs: Obj, new_scale: int) -> bool:
        """scaleReplicaSet: size and replica annotations; an event if the size moved."""
        old_scale = replicas_of(rs)
        size_changed = old_scale != new_scale
        desired, maximum = replicas_of(d), replicas_of(d) + max_surge(d)
        annotations_changed = replicas_annotations_need_update(rs, desired, maximum)
        if not size_changed and not annotations_changed:
            return False
        rs.setdefault("spec", {})["replicas"] = new_scale
        set_replicas_annotations(rs, desired, maximum)
        if size_changed:
            bump_generation(rs)
        cluster.store.commit(self.rs_rt, rs)
        if size_changed:
            direction = "up" if old_scale < new_scale else "down"
            cluster.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} "
                f"from {old_scale} to {new_scale}",
                component=COMPONENT,
            )
        return size_changed

    def scale_and_record(self, cluster: Cluster, d: Obj, rs: Obj, new_scale: int) -> bool:
        if replicas_of(rs) == new_scale:
            return False
        return self.scale_rs(cluster, d, rs, new_scale)

    def scale(self, cluster: Cluster, d: Obj, new_rs: Obj | None, old: list[Obj]) -> None:
        """DeploymentController.scale: proportional scaling of the active ReplicaSets."""
        desired = replicas_of(d)
        latest = find_active_or_latest(new_rs, old)
        if latest is not None:
            if replicas_of(latest) != desired:
                self.scale_and_record(cluster, d, latest, desired)
            return
        if is_saturated(d, new_rs):
            for rs in active(old):
                self.scale_and_record(cluster, d, rs, 0)
            return
        if not is_rolling(d):
            return
        all_active = active([*old, *([new_rs] if new_rs else [])])
        total = sum(replicas_of(r) for r in all_active)
        allowed = desired + max_surge(d) if desired > 0 else 0
        to_add = allowed - total
        if to_add > 0:
            # ReplicaSetsBySizeNewer: larger first, newer first on ties.
            all_active.sort(
                key=lambda r: str(r["metadata"].get("creationTimestamp", "")), reverse=True
            )
            all_active.sort(key=replicas_of, reverse=True)
        elif to_add < 0:
            # ReplicaSetsBySizeOlder: larger first, older first on ties.
            all_active.sort(key=lambda r: str(r["metadata"].get("creationTimestamp", "")))
            all_active.sort(key=replicas_of, reverse=True)
        added = 0
        sizes: dict[str, int] = {}
        for rs in all_active:
            if to_add != 0:
                proportion = get_proportion(rs, d, to_add, added)
                sizes[rs["metadata"]["name"]] = replicas_of(rs) + proportion
                added += proportion
            else:
                sizes[rs["metadata"]["name"]] = replicas_of(rs)
        for i, rs in enumerate(all_active):
            name = rs["metadata"]["name"]
            if i == 0 and to_add != 0:
                sizes[name] = max(0, sizes[name] + to_add - added)
            self.scale_rs(cluster, d, rs, sizes[name])

    def sync_scale(self, cluster: Cluster, d: Obj, rss: list[Obj]) -> None:
        """DeploymentController.sync: scaling and paused deployments."""
        new_rs, old = self.get_all_and_sync_revision(cluster, d, rss, create=False)
        self.scale(cluster, d, new_rs, old)
        if (d.get("spec") or {}).get("paused"):
            self.cleanup(cluster, d, old)
        all_rss = [*old, *([new_rs] if new_rs else [])]
        self.write_status(cluster, d, calculate_status(cluster, all_rss, new_rs, d))

    # -- RollingUpdate -------------------------------------------------------------------

    def rollout_rolling(self, cluster: Cluster, d: Obj, rss: list[Obj]) -> None:
        new_rs, old = self.get_all_and_sync_revision(cluster, d, rss, create=True)
        if new_rs is None:
            return
        all_rss = [*old, new_rs]
        if self.reconcile_new(cluster, d, all_rss, new_rs):
            self.sync_rollout_status(cluster, d, all_rss, new_rs)
            return
        if self.reconcile_old(cluster, d, all_rss, active(old), new_rs):
            self.sync_rollout_status(cluster, d, all_rss, new_rs)
            return
        if deployment_complete(d, d.get("status") or {}):
            self.cleanup(cluster, d, old)
        self.sync_rollout_status(cluster, d, all_rss, new_rs)

    def reconcile_new(self, cluster: Cluster, d: Obj, all_rss: list[Obj], new_rs: Obj) -> bool:
        desired = replicas_of(d)
        current = replicas_of(new_rs)
        if current == desired:
            return False
        if current > desired:
            return self.scale_and_record(cluster, d, new_rs, desired)
        return self.scale_and_record(cluster, d, new_rs, new_rs_new_replicas(d, all_rss, new_rs))

    def reconcile_old(
        self, cluster: Cluster, d: Obj, all_rss: list[Obj], old: list[Obj], new_rs: Obj
    ) -> bool:
        old_count = sum(replicas_of(r) for r in old)
        if old_count == 0:
            return False
        all_count = sum(replicas_of(r) for r in all_rss)
        min_available = replicas_of(d) - max_unavailable(d)
        new_unavailable = replicas_of(new_rs) - status_int(new_rs, "availableReplicas")
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = self.cleanup_unhealthy(cluster, d, old, max_scaled_down)
        scaled = self.scale_down_old_for_rolling(cluster, d, [*old, new_rs], old)
        return cleaned + scaled > 0

    def cleanup_unhealthy(self, cluster: Cluster, d: Obj, old: list[Obj], max_cleanup: int) -> int:
        total = 0
        for rs in sort_by_creation(old):
            if total >= max_cleanup:
                break
            replicas = replicas_of(rs)
            available = status_int(rs, "availableReplicas")
            if replicas == 0 or replicas == available:
                continue
            count = min(max_cleanup - total, replicas - available)
            self.scale_and_record(cluster, d, rs, replicas - count)
            total += count
        return total

    def scale_down_old_for_rolling(
        self, cluster: Cluster, d: Obj, all_rss: list[Obj], old: list[Obj]
    ) -> int:
        min_available = replicas_of(d) - max_unavailable(d)
        available = sum(status_int(r, "availableReplicas") for r in all_rss)
        if available <= min_available:
            return 0
        total_to_scale = available - min_available
        total = 0
        for rs in sort_by_creation(old):
            if total >= total_to_scale:
                break
            replicas = replicas_of(rs)
            if replicas == 0:
                continue
            count = min(replicas, total_to_scale - total)
            self.scale_and_record(cluster, d, rs, replicas - count)
            total += count
        return total

    # -- Recreate ------------------------------------------------------------------------

    def rollout_recreate(self, cluster: Cluster, d: Obj, rss: list[Obj]) -> None:
        new_rs, old = self.get_all_and_sync_revision(cluster, d, rss, create=False)
        all_rss = [*old, *([new_rs] if new_rs else [])]
        scaled = False
        for rs in active(old):
            scaled = self.scale_and_record(cluster, d, rs, 0) or scaled
        if scaled or self.old_pods_running(new_rs, old):
            self.sync_rollout_status(cluster, d, all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old = self.get_all_and_sync_revision(cluster, d, rss, create=True)
            all_rss = [*old, *([new_rs] if new_rs else [])]
        if new_rs is not None:
            self.scale_and_record(cluster, d, new_rs, replicas_of(d))
        if deployment_complete(d, d.get("status") or {}):
            self.cleanup(cluster, d, old)
        self.sync_rollout_status(cluster, d, all_rss, new_rs)

    def old_pods_running(self, new_rs: Obj | None, old: list[Obj]) -> bool:
        if sum(status_int(r, "replicas") for r in old) > 0:
            return True
        for rs in old:
            for pod in self.index.pods_of(rs["metadata"]["uid"]):
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return True
        return False

    # -- history -------------------------------------------------------------------------

    def cleanup(self, cluster: Cluster, d: Obj, old: list[Obj]) -> None:
        """cleanupDeployment: delete the oldest idle ReplicaSets beyond revisionHistoryLimit."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        diff = len(old) - int(limit)
        if diff <= 0:
            return
        ordered = sorted(
            old,
            key=lambda r: (
                revision_of(r),
                str(r["metadata"].get("creationTimestamp", "")),
                r["metadata"]["name"],
            ),
        )
        for rs in ordered[:diff]:
            if (
                status_int(rs, "replicas") != 0
                or replicas_of(rs) != 0
                or int_field(rs["metadata"], "generation", 1) > status_int(rs, "observedGeneration")
            ):
                continue
            try:
                cluster.delete(
                    self.rs_rt, str(rs["metadata"].get("namespace", "")), rs["metadata"]["name"]
                )
            except ApiError as exc:
                if exc.code != 404:
                    raise

    # -- status --------------------------------------------------------------------------

    def write_status(self, cluster: Cluster, d: Obj, status: Obj) -> bool:
        if d.get("status") == status:
            return False
        d["status"] = status
        cluster.store.commit(self.rt, d)
        return True

    def sync_rollout_status(
        self, cluster: Cluster, d: Obj, all_rss: list[Obj], new_rs: Obj | None
    ) -> None:
        """progress.go syncRolloutStatus."""
        status = calculate_status(cluster, all_rss, new_rs, d)
        old_status = d.get("status") or {}
        if not has_progress_deadline(d):
            remove_condition(status, "Progressing")
        current = get_condition(old_status, "Progressing")
        complete = (
            status_value(status, "replicas") == status_value(status, "updatedReplicas")
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE_REASON
        )
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else ""
        d_name = d["metadata"]["name"]
        if has_progress_deadline(d) and not complete:
            if deployment_complete(d, status):
                message = (
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if new_rs is not None
                    else f'Deployment "{d_name}" has successfully progressed.'
                )
                set_condition(
                    status,
                    new_condition(cluster, "Progressing", "True", NEW_RS_AVAILABLE_REASON, message),
                )
            elif deployment_progressing(old_status, status):
                message = (
                    f'ReplicaSet "{rs_name}" is progressing.'
                    if new_rs is not None
                    else f'Deployment "{d_name}" is progressing.'
                )
                cond = new_condition(cluster, "Progressing", "True", RS_UPDATED_REASON, message)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, "Progressing")
                set_condition(status, cond)
            elif deployment_timed_out(cluster, d, status):
                message = (
                    f'ReplicaSet "{rs_name}" has timed out progressing.'
                    if new_rs is not None
                    else f'Deployment "{d_name}" has timed out progressing.'
                )
                set_condition(
                    status,
                    new_condition(cluster, "Progressing", "False", TIMED_OUT_REASON, message),
                )
        failures = replica_failures(all_rss, new_rs)
        if failures:
            set_condition(status, failures[0])
        else:
            remove_condition(status, "ReplicaFailure")
        if not status.get("conditions"):
            status.pop("conditions", None)
        if not self.write_status(cluster, d, status):
            self.requeue_stuck(cluster, d, status)

    def requeue_stuck(self, cluster: Cluster, d: Obj, status: Obj) -> None:
        current = get_condition(d.get("status"), "Progressing")
        if not has_progress_deadline(d) or current is None:
            return
        if deployment_complete(d, status) or current.get("reason") == TIMED_OUT_REASON:
            return
        last = current.get("lastUpdateTime")
        if not last:
            return
        deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds", 600))
        remaining = (parse_rfc3339(str(last)) - cluster.clock.now()).total_seconds() + deadline
        self.queue.add_at(key_of(d), cluster.elapsed + max(remaining, 0.0) + 1.0)


# -- annotations ------------------------------------------------------------------------


def bump_generation(obj: Obj) -> None:
    """A controller's spec change is an Update: the API server bumps metadata.generation."""
    meta = obj["metadata"]
    meta["generation"] = int_field(meta, "generation", 1) + 1


def set_deployment_revision(d: Obj, revision: str) -> bool:
    annotations = d["metadata"].setdefault("annotations", {})
    if annotations.get(REVISION) != revision:
        annotations[REVISION] = revision
        return True
    return False


def copy_annotations(d: Obj, rs: Obj) -> bool:
    rs_annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in (d["metadata"].get("annotations") or {}).items():
        if key in ANNOTATIONS_TO_SKIP or rs_annotations.get(key) == value:
            continue
        rs_annotations[key] = value
        changed = True
    return changed


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, *, exists: bool) -> bool:
    """util.SetNewReplicaSetAnnotations."""
    changed = copy_annotations(d, rs)
    annotations = rs["metadata"].setdefault("annotations", {})
    old_raw = annotations.get(REVISION)
    try:
        old_revision = int(old_raw) if old_raw else 0
    except ValueError:
        return False
    if old_revision < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if old_raw:
            history = annotations.get(REVISION_HISTORY, "")
            revisions = history.split(",") if history else []
            total = len(history) + len(old_raw) + 1
            start = 0
            while total > MAX_REV_HISTORY_CHARS and start < len(revisions):
                total -= len(revisions[start]) + 1
                start += 1
            if total <= MAX_REV_HISTORY_CHARS:
                annotations[REVISION_HISTORY] = ",".join([*revisions[start:], old_raw])
    if not exists and set_replicas_annotations(rs, replicas_of(d), replicas_of(d) + max_surge(d)):
        changed = True
    return changed


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    annotations = rs["metadata"].get("annotations") or {}
    return annotations.get(DESIRED_REPLICAS) != str(desired) or annotations.get(
        MAX_REPLICAS
    ) != str(maximum)


# -- replica arithmetic -----------------------------------------------------------------


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """util.NewRSNewReplicas."""
    desired = replicas_of(d)
    if not is_rolling(d):
        return desired
    surge = scaled_value(
        (((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}).get(
            "maxSurge", 0
        ),
        desired,
        True,
    )
    current = sum(replicas_of(r) for r in all_rss)
    max_total = desired + surge
    if current >= max_total:
        return replicas_of(new_rs)
    scale_up = min(max_total - current, desired - replicas_of(new_rs))
    return replicas_of(new_rs) + scale_up


def find_active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
    if new_rs is None and not old:
        return None
    newest_first = list(reversed(sort_by_creation(old)))
    all_active = active([*newest_first, *([new_rs] if new_rs else [])])
    if not all_active:
        return new_rs if new_rs is not None else newest_first[0]
    if len(all_active) == 1:
        return all_active[0]
    return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
    return (
        replicas_of(rs) == replicas_of(d)
        and desired == str(replicas_of(d))
        and status_int(rs, "availableReplicas") == replicas_of(d)
    )


def get_proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def replica_set_fraction(rs: Obj, d: Obj) -> int:
    desired = replicas_of(d)
    if desired == 0:
        return -replicas_of(rs)
    max_now = desired + max_surge(d)
    raw = (rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS)
    try:
        max_before = int(raw) if raw is not None else 0
    except ValueError:
        max_before = 0
    if max_before == 0:
        max_before = status_int(d, "replicas")
    if max_before == 0:
        return 0
    fraction = replicas_of(rs) / max_before
    # Go's math.Round rounds half away from zero.
    new_size = math.floor(fraction * max_now + 0.5)
    return new_size - replicas_of(rs)


# -- status arithmetic ------------------------------------------------------------------


def status_value(status: Obj, name: str) -> int:
    return int(status.get(name) or 0)


def calculate_status(cluster: Cluster, all_rss: list[Obj], new_rs: Obj | None, d: Obj) -> Obj:
    """sync.go calculateStatus (the conditions copied, Available set)."""
    available = sum(status_int(r, "availableReplicas") for r in all_rss)
    total = sum(replicas_of(r) for r in all_rss)
    old_status = d.get("status") or {}
    status: Obj = {
        "observedGeneration": int_field(d["metadata"], "generation", 1),
        "replicas": sum(status_int(r, "replicas") for r in all_rss),
        "updatedReplicas": status_int(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": sum(status_int(r, "readyReplicas") for r in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    status["conditions"] = copy.deepcopy(old_status.get("conditions") or [])
    if available >= replicas_of(d) - max_unavailable(d):
        cond = new_condition(
            cluster,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    else:
        cond = new_condition(
            cluster,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    set_condition(status, cond)
    omit_zero(
        status,
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    )
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    desired = replicas_of(d)
    return (
        status_value(status, "updatedReplicas") == desired
        and status_value(status, "replicas") == desired
        and status_value(status, "availableReplicas") == desired
        and status_value(status, "observedGeneration") >= int_field(d["metadata"], "generation", 1)
    )


def deployment_progressing(old: Obj, new: Obj) -> bool:
    old_old = status_value(old, "replicas") - status_value(old, "updatedReplicas")
    new_old = status_value(new, "replicas") - status_value(new, "updatedReplicas")
    return (
        status_value(new, "updatedReplicas") > status_value(old, "updatedReplicas")
        or new_old < old_old
        or status_value(new, "readyReplicas") > status_value(old, "readyReplicas")
        or status_value(new, "availableReplicas") > status_value(old, "availableReplicas")
    )


def deployment_timed_out(cluster: Cluster, d: Obj, status: Obj) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    last = cond.get("lastUpdateTime")
    if not last:
        return False
    deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds", 600))
    return (cluster.clock.now() - parse_rfc3339(str(last))).total_seconds() > deadline


def replica_failures(all_rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
    """getReplicaFailures: the new ReplicaSet's ReplicaFailure first, else any old one's."""

    def from_rs(rs: Obj) -> list[Obj]:
        out: list[Obj] = []
        for c in (rs.get("status") or {}).get("conditions") or []:
            if c.get("type") == "ReplicaFailure":
                out.append(
                    {
                        "type": "ReplicaFailure",
                        "status": c.get("status"),
                        "lastUpdateTime": c.get("lastTransitionTime"),
                        "lastTransitionTime": c.get("lastTransitionTime"),
                        "reason": c.get("reason"),
                        "message": c.get("message"),
                    }
                )
        return out

    if new_rs is not None:
        found = from_rs(new_rs)
        if found:
            return found
    out: list[Obj] = []
    for rs in all_rss:
        out.extend(from_rs(rs))
    return out
