"""The Deployment controller: ReplicaSets per template, rollouts, revisions, conditions."""

from __future__ import annotations

import copy

import pytest

from tests.twin.test_controllers_support import (
    NS,
    container,
    create,
    deployment,
    events,
    live,
    make_cluster,
    messages,
    pods,
    replica_sets,
    run_all,
    run_pod,
    settle,
    update,
)
from twin.cluster import Cluster
from twin.controllers.deployment import resolve_fenceposts, template_key
from twin.controllers.hashing import compute_hash, fnv32a, safe_encode
from twin.store import Obj

REVISION = "deployment.kubernetes.io/revision"


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster(nodes=3, cpu="8", memory="32Gi")[0]


def set_image(image: str):  # type: ignore[no-untyped-def]
    def change(d: Obj) -> None:
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image

    return change


def conditions(obj: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in obj["status"].get("conditions", [])}


def test_hash_functions() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    # Decimal digits map through the vowel-free alphabet: '0'..'9' -> 4 5 6 7 8 9 b c d f.
    assert safe_encode("0123456789") == "456789bcdf"
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}
    assert compute_hash(template) != compute_hash(template, 1)
    assert set(compute_hash(template)) <= set("456789bcdf")


def test_fenceposts_rounding() -> None:
    def d(replicas: int, surge: object, unavailable: object) -> Obj:
        return {
            "spec": {
                "replicas": replicas,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
                },
            }
        }

    assert resolve_fenceposts(d(3, "25%", "25%")) == (1, 0)  # surge rounds up, unavailable down
    assert resolve_fenceposts(d(10, "25%", "25%")) == (3, 2)
    assert resolve_fenceposts(d(1, "0%", "25%")) == (0, 1)  # both zero: unavailable becomes 1
    assert resolve_fenceposts(d(4, 2, 0)) == (2, 0)


def test_new_replica_set_name_labels_and_event(cluster: Cluster) -> None:
    created = create(cluster, deployment(replicas=3))
    cluster.advance(1)
    (rs,) = replica_sets(cluster)
    pod_hash = compute_hash(created["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": pod_hash}}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
    assert rs["spec"]["replicas"] == 3
    ref = rs["metadata"]["ownerReferences"][0]
    assert ref == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "uid": created["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    annotations = rs["metadata"]["annotations"]
    assert annotations[REVISION] == "1"
    assert annotations["deployment.kubernetes.io/desired-replicas"] == "3"
    assert annotations["deployment.kubernetes.io/max-replicas"] == "4"
    assert live(cluster, "Deployment", "web")["metadata"]["annotations"][REVISION] == "1"
    assert messages(cluster, "ScalingReplicaSet") == [
        f"Scaled up replica set web-{pod_hash} from 0 to 3"
    ]
    (event,) = events(cluster, reason="ScalingReplicaSet")
    assert event["source"] == {"component": "deployment-controller"}
    assert event["involvedObject"]["kind"] == "Deployment"
    assert all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash for p in pods(cluster))


def test_conditions_and_status_through_first_rollout(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=3))
    cluster.advance(1)
    d = live(cluster, "Deployment", "web")
    rs_name = replica_sets(cluster)[0]["metadata"]["name"]
    cond = conditions(d)
    assert cond["Available"]["status"] == "False"
    assert cond["Available"]["reason"] == "MinimumReplicasUnavailable"
    assert cond["Available"]["message"] == "Deployment does not have minimum availability."
    assert cond["Progressing"]["reason"] in ("NewReplicaSetCreated", "ReplicaSetUpdated")
    settle(cluster, 5)
    d = live(cluster, "Deployment", "web")
    assert d["status"]["observedGeneration"] == 1
    assert d["status"]["replicas"] == 3
    assert d["status"]["updatedReplicas"] == 3
    assert d["status"]["readyReplicas"] == 3
    assert d["status"]["availableReplicas"] == 3
    assert "unavailableReplicas" not in d["status"]
    cond = conditions(d)
    assert [c["type"] for c in d["status"]["conditions"]] == ["Available", "Progressing"]
    assert cond["Available"]["status"] == "True"
    assert cond["Available"]["reason"] == "MinimumReplicasAvailable"
    assert cond["Available"]["message"] == "Deployment has minimum availability."
    assert cond["Progressing"]["status"] == "True"
    assert cond["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert cond["Progressing"]["message"] == f'ReplicaSet "{rs_name}" has successfully progressed.'


def test_rolling_update_respects_surge_and_unavailable(cluster: Cluster) -> None:
    create(
        cluster,
        deployment(
            replicas=4,
            strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
            },
        ),
    )
    settle(cluster, 5)
    update(cluster, "Deployment", "web", set_image("registry.example.com/web:2.0"))
    seen_new_rs = False
    for _ in range(40):
        cluster.advance(1)
        active = pods(cluster, active_only=True)
        assert len(active) <= 5, "more pods than replicas + maxSurge"
        rss = replica_sets(cluster)
        available = sum(r["status"].get("availableReplicas", 0) for r in rss)
        assert available >= 3, "fewer available than replicas - maxUnavailable"
        if len(rss) == 2:
            seen_new_rs = True
        # The kubelet runs new pods within a second and removes deleted ones.
        run_all(cluster)
        for p in pods(cluster):
            if p["metadata"].get("deletionTimestamp"):
                cluster.store.delete(cluster.rt("Pod"), NS, p["metadata"]["name"])
    assert seen_new_rs
    old, new = replica_sets(cluster)
    assert old["spec"]["replicas"] == 0
    assert new["spec"]["replicas"] == 4
    assert new["metadata"]["annotations"][REVISION] == "2"
    d = live(cluster, "Deployment", "web")
    assert d["metadata"]["annotations"][REVISION] == "2"
    assert d["status"]["updatedReplicas"] == 4
    assert conditions(d)["Progressing"]["reason"] == "NewReplicaSetAvailable"
    scaling = messages(cluster, "ScalingReplicaSet")
    new_name, old_name = new["metadata"]["name"], old["metadata"]["name"]
    assert f"Scaled up replica set {new_name} from 0 to 1" in scaling
    assert f"Scaled down replica set {old_name} from 4 to 3" in scaling
    assert f"Scaled down replica set {old_name} from 1 to 0" in scaling
    assert all(
        p["spec"]["containers"][0]["image"] == "registry.example.com/web:2.0" for p in pods(cluster)
    )


def test_rollout_stalls_when_new_pods_never_become_ready(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=3, progressDeadlineSeconds=60))
    settle(cluster, 5)
    update(cluster, "Deployment", "web", set_image("registry.example.com/web:broken"))
    for _ in range(90):
        cluster.advance(1)
        for p in pods(cluster, active_only=True):
            broken = p["spec"]["containers"][0]["image"].endswith("broken")
            running = p.get("status", {}).get("phase") == "Running"
            if p["spec"].get("nodeName") and broken and not running:
                run_pod(cluster, p, ready=False)
    old, new = replica_sets(cluster)
    # maxSurge 25% of 3 -> 1, maxUnavailable -> 0: one new pod, and no old pod goes.
    assert new["spec"]["replicas"] == 1
    assert old["spec"]["replicas"] == 3
    d = live(cluster, "Deployment", "web")
    progressing = conditions(d)["Progressing"]
    assert progressing["status"] == "False"
    assert progressing["reason"] == "ProgressDeadlineExceeded"
    assert (
        progressing["message"]
        == f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.'
    )
    assert conditions(d)["Available"]["status"] == "True"
    assert d["status"]["unavailableReplicas"] == 1


def test_recreate_scales_down_before_creating(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=2, strategy={"type": "Recreate"}))
    settle(cluster, 5)
    update(cluster, "Deployment", "web", set_image("registry.example.com/web:2.0"))
    cluster.advance(2)
    (rs,) = replica_sets(cluster)
    assert rs["spec"]["replicas"] == 0
    # Old pods are terminating: no new ReplicaSet until they are gone.
    assert all(p["metadata"].get("deletionTimestamp") for p in pods(cluster))
    cluster.advance(5)
    assert len(replica_sets(cluster)) == 1
    settle(cluster, 5)
    old, new = replica_sets(cluster)
    assert new["spec"]["replicas"] == 2
    assert old["spec"]["replicas"] == 0
    assert [p["spec"]["containers"][0]["image"] for p in pods(cluster)] == [
        "registry.example.com/web:2.0"
    ] * 2


def test_rollback_reuses_the_old_replica_set(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=2))
    settle(cluster, 5)
    first = replica_sets(cluster)[0]
    original = copy.deepcopy(live(cluster, "Deployment", "web")["spec"]["template"])
    update(cluster, "Deployment", "web", set_image("registry.example.com/web:2.0"))
    settle(cluster, 20)
    assert len(replica_sets(cluster)) == 2

    # kubectl rollout undo: the RS template without its hash label goes back into the Deployment.
    def undo(d: Obj) -> None:
        template = copy.deepcopy(first["spec"]["template"])
        del template["metadata"]["labels"]["pod-template-hash"]
        d["spec"]["template"] = template

    update(cluster, "Deployment", "web", undo)
    settle(cluster, 20)
    rss = replica_sets(cluster)
    assert len(rss) == 2
    reused = live(cluster, "ReplicaSet", first["metadata"]["name"])
    assert reused["metadata"]["annotations"][REVISION] == "3"
    assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert reused["spec"]["replicas"] == 2
    assert live(cluster, "Deployment", "web")["metadata"]["annotations"][REVISION] == "3"
    assert template_key(live(cluster, "Deployment", "web")["spec"]["template"]) == template_key(
        original
    )


def test_change_cause_is_copied_and_last_applied_is_not(cluster: Cluster) -> None:
    obj = deployment(replicas=1)
    obj["metadata"]["annotations"] = {
        "kubernetes.io/change-cause": "kubectl set image deployment/web app=web:1.0",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    create(cluster, obj)
    cluster.advance(1)
    annotations = replica_sets(cluster)[0]["metadata"]["annotations"]
    assert (
        annotations["kubernetes.io/change-cause"] == "kubectl set image deployment/web app=web:1.0"
    )
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations


def test_revision_history_limit_cleans_up_old_replica_sets(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=1, revisionHistoryLimit=1))
    settle(cluster, 5)
    for version in ("2.0", "3.0", "4.0"):
        update(cluster, "Deployment", "web", set_image(f"registry.example.com/web:{version}"))
        settle(cluster, 15)
    rss = replica_sets(cluster)
    assert [r["metadata"]["annotations"][REVISION] for r in rss] == ["3", "4"]
    assert rss[0]["spec"]["replicas"] == 0


def test_scaling_goes_through_the_active_replica_set(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=2))
    settle(cluster, 5)
    update(cluster, "Deployment", "web", lambda d: d["spec"].update(replicas=5))
    settle(cluster, 3)
    (rs,) = replica_sets(cluster)
    assert rs["spec"]["replicas"] == 5
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    assert f"Scaled up replica set {rs['metadata']['name']} from 2 to 5" in messages(
        cluster, "ScalingReplicaSet"
    )
    update(cluster, "Deployment", "web", lambda d: d["spec"].update(replicas=0))
    settle(cluster, 3)
    assert replica_sets(cluster)[0]["spec"]["replicas"] == 0
    assert f"Scaled down replica set {rs['metadata']['name']} from 5 to 0" in messages(
        cluster, "ScalingReplicaSet"
    )
    assert pods(cluster) == []
    d = live(cluster, "Deployment", "web")
    assert "replicas" not in d["status"]  # omitempty, as the API returns it
    assert d["status"]["observedGeneration"] == d["metadata"]["generation"]


def test_scaling_mid_rollout_is_proportional(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=10, containers=[container(cpu="10m", memory="8Mi")]))
    settle(cluster, 5)
    update(cluster, "Deployment", "web", set_image("registry.example.com/web:2.0"))
    cluster.advance(2)  # new pods never become ready: the rollout is stuck half way
    old, new = replica_sets(cluster)
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (8, 5)  # 13 = 10 + maxSurge 3
    update(cluster, "Deployment", "web", lambda d: d["spec"].update(replicas=20))
    cluster.advance(2)
    old, new = replica_sets(cluster)
    # 25 allowed (20 + surge 5): the 12 extra go 8:5 as the previous 13 did: +7 and +5.
    assert old["spec"]["replicas"] + new["spec"]["replicas"] == 25
    assert old["spec"]["replicas"] == 15
    assert new["spec"]["replicas"] == 10


def test_paused_deployment(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=2))
    settle(cluster, 5)
    update(cluster, "Deployment", "web", lambda d: d["spec"].update(paused=True))
    cluster.advance(1)
    progressing = conditions(live(cluster, "Deployment", "web"))["Progressing"]
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "Unknown",
        "DeploymentPaused",
        "Deployment is paused",
    )
    update(cluster, "Deployment", "web", set_image("registry.example.com/web:2.0"))
    update(cluster, "Deployment", "web", lambda d: d["spec"].update(replicas=3))
    settle(cluster, 5)
    (rs,) = replica_sets(cluster)  # no new ReplicaSet while paused, but scaling works
    assert rs["spec"]["replicas"] == 3
    update(cluster, "Deployment", "web", lambda d: d["spec"].update(paused=False))
    cluster.advance(1)
    reasons = [c["reason"] for c in live(cluster, "Deployment", "web")["status"]["conditions"]]
    assert "DeploymentResumed" in reasons or "NewReplicaSetCreated" in reasons
    settle(cluster, 20)
    assert len(replica_sets(cluster)) == 2
    assert (
        conditions(live(cluster, "Deployment", "web"))["Progressing"]["reason"]
        == "NewReplicaSetAvailable"
    )


def test_deleting_a_deployment_removes_its_replica_sets_and_pods(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=2))
    settle(cluster, 3)
    cluster.delete(cluster.rt("Deployment"), NS, "web")
    assert replica_sets(cluster) == []
    assert all(p["metadata"].get("deletionTimestamp") for p in pods(cluster))


def test_orphan_replica_set_is_adopted(cluster: Cluster) -> None:
    created = create(cluster, deployment(replicas=1))
    cluster.advance(1)
    (rs,) = replica_sets(cluster)
    rs["metadata"]["ownerReferences"] = []
    cluster.store.commit(cluster.rt("ReplicaSet"), rs)
    cluster.advance(1)
    (rs,) = replica_sets(cluster)
    assert rs["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
