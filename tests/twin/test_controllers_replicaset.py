"""The ReplicaSet controller: pods from the template, status, which pods go first."""

from __future__ import annotations

import pytest

from tests.twin.test_controllers_support import (
    NS,
    container,
    create,
    live,
    make_cluster,
    messages,
    pods,
    run_pod,
)
from twin.cluster import Cluster
from twin.store import Obj


def replica_set(name: str = "rs", replicas: int = 3, **spec: object) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}, "annotations": {"team": "a"}},
                "spec": {"containers": [container()]},
            },
            **spec,
        },
    }


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster(nodes=2)[0]


def scale(cluster: Cluster, replicas: int, name: str = "rs") -> None:
    rt = cluster.rt("ReplicaSet")
    rs = cluster.store.get(rt, NS, name)
    rs["spec"]["replicas"] = replicas
    cluster.replace(rt, rs)


def test_pods_from_template(cluster: Cluster) -> None:
    rs = create(cluster, replica_set())
    cluster.advance(1)
    created = pods(cluster)
    assert len(created) == 3
    for pod in created:
        meta = pod["metadata"]
        assert meta["generateName"] == "rs-"
        assert meta["name"].startswith("rs-")
        assert len(meta["name"]) == 8
        assert meta["labels"] == {"app": "rs", "tier": "web"}
        assert meta["annotations"] == {"team": "a"}
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "rs",
                "uid": rs["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        # The pod went through admission: defaults and tolerations are there.
        assert pod["spec"]["serviceAccountName"] == "default"
        assert len(pod["spec"]["tolerations"]) == 2
    assert sorted(messages(cluster, "SuccessfulCreate")) == sorted(
        f"Created pod: {p['metadata']['name']}" for p in created
    )


def test_status_counts(cluster: Cluster) -> None:
    create(cluster, replica_set(replicas=3))
    cluster.advance(2)
    status = live(cluster, "ReplicaSet", "rs")["status"]
    assert status == {"replicas": 3, "fullyLabeledReplicas": 3, "observedGeneration": 1}
    first, second, _ = pods(cluster)
    run_pod(cluster, first)
    run_pod(cluster, second, ready=False)
    first["metadata"]["labels"]["tier"] = "canary"  # still selected, no longer fully labeled
    cluster.store.commit(cluster.rt("Pod"), first)
    cluster.advance(1)
    status = live(cluster, "ReplicaSet", "rs")["status"]
    assert status == {
        "replicas": 3,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "observedGeneration": 1,
    }


def test_min_ready_seconds_delays_availability(cluster: Cluster) -> None:
    create(cluster, replica_set(replicas=1, minReadySeconds=10))
    cluster.advance(1)
    run_pod(cluster, pods(cluster)[0])
    cluster.advance(1)
    status = live(cluster, "ReplicaSet", "rs")["status"]
    assert status["readyReplicas"] == 1
    assert "availableReplicas" not in status
    cluster.advance(10)
    assert live(cluster, "ReplicaSet", "rs")["status"]["availableReplicas"] == 1


def test_terminating_pods_do_not_count(cluster: Cluster) -> None:
    create(cluster, replica_set(replicas=2))
    cluster.advance(1)
    victim = pods(cluster)[0]["metadata"]["name"]
    cluster.delete(cluster.rt("Pod"), NS, victim)
    cluster.advance(1)
    assert len(pods(cluster)) == 3
    assert len(pods(cluster, active_only=True)) == 2
    assert live(cluster, "ReplicaSet", "rs")["status"]["replicas"] == 2
    cluster.advance(3)
    assert len(pods(cluster)) == 3  # no pile-up while the old pod terminates


def test_scale_down_prefers_unscheduled_then_not_ready_then_newest(cluster: Cluster) -> None:
    create(cluster, replica_set(replicas=4))
    cluster.advance(1)
    ready_old, not_ready, ready_new, unscheduled = pods(cluster)
    for pod in (ready_old, not_ready, ready_new):
        assert pod["spec"]["nodeName"]
    run_pod(cluster, ready_old)
    cluster.advance(600)
    run_pod(cluster, not_ready, ready=False)
    run_pod(cluster, ready_new)
    unscheduled["spec"].pop("nodeName")
    cluster.store.commit(cluster.rt("Pod"), unscheduled)
    order = []
    for replicas in (3, 2, 1):
        scale(cluster, replicas)
        cluster.advance(1)
        deleted = [
            p["metadata"]["name"] for p in pods(cluster) if p["metadata"].get("deletionTimestamp")
        ]
        order.append(next(n for n in deleted if n not in order))
    assert order == [
        unscheduled["metadata"]["name"],
        not_ready["metadata"]["name"],
        ready_new["metadata"]["name"],
    ]
    assert sorted(messages(cluster, "SuccessfulDelete")) == sorted(
        f"Deleted pod: {n}" for n in order
    )


def test_relabelled_pod_is_released_and_replaced(cluster: Cluster) -> None:
    create(cluster, replica_set(replicas=2))
    cluster.advance(1)
    quarantined = pods(cluster)[0]
    quarantined["metadata"]["labels"] = {"app": "quarantine"}
    cluster.store.commit(cluster.rt("Pod"), quarantined)
    cluster.advance(2)
    assert (
        "ownerReferences" not in live(cluster, "Pod", quarantined["metadata"]["name"])["metadata"]
    )
    owned = [p for p in pods(cluster) if p["metadata"].get("ownerReferences")]
    assert len(owned) == 2


def test_orphan_pod_is_adopted(cluster: Cluster) -> None:
    create(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stray", "namespace": NS, "labels": {"app": "rs"}},
            "spec": {"containers": [container()]},
        },
    )
    rs = create(cluster, replica_set(replicas=2))
    cluster.advance(1)
    stray = live(cluster, "Pod", "stray")
    assert stray["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    assert len(pods(cluster)) == 2


def test_no_failed_create_events_in_a_terminating_namespace(cluster: Cluster) -> None:
    namespace = live(cluster, "Namespace", NS, namespace="")
    namespace["status"]["phase"] = "Terminating"
    cluster.store.commit(cluster.rt("Namespace"), namespace)
    cluster.store.create(cluster.rt("ReplicaSet"), replica_set(replicas=2))
    cluster.advance(3)
    assert pods(cluster) == []
    assert messages(cluster, "FailedCreate") == []
    status = live(cluster, "ReplicaSet", "rs")["status"]
    assert "conditions" not in status
