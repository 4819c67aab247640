"""The StatefulSet controller: ordinal pods, ordered creation, revisions, rolling updates."""

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
    remove_terminating,
    run_all,
    settle,
    update,
)
from twin.cluster import Cluster
from twin.store import Obj


def statefulset(name: str = "db", replicas: int = 3, **spec: object) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container()]},
            },
            **spec,
        },
    }


def names(cluster: Cluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods(cluster, active_only=True))


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster(nodes=2)[0]


def test_ordered_ready_creation(cluster: Cluster) -> None:
    created = create(cluster, statefulset())
    cluster.advance(3)
    assert names(cluster) == ["db-0"]  # db-1 waits until db-0 is Running and Ready
    pod = live(cluster, "Pod", "db-0")
    revision = live(cluster, "StatefulSet", "db")["status"]["updateRevision"]
    assert revision.startswith("db-")
    assert pod["metadata"]["labels"] == {
        "app": "db",
        "controller-revision-hash": revision,
        "statefulset.kubernetes.io/pod-name": "db-0",
        "apps.kubernetes.io/pod-index": "0",
    }
    assert pod["spec"]["hostname"] == "db-0"
    assert pod["spec"]["subdomain"] == "db"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    run_all(cluster)
    cluster.advance(1)
    assert names(cluster) == ["db-0", "db-1"]
    settle(cluster, 5)
    assert names(cluster) == ["db-0", "db-1", "db-2"]
    assert messages(cluster, "SuccessfulCreate") == [
        "create Pod db-0 in StatefulSet db successful",
        "create Pod db-1 in StatefulSet db successful",
        "create Pod db-2 in StatefulSet db successful",
    ]
    status = live(cluster, "StatefulSet", "db")["status"]
    assert status["replicas"] == 3
    assert status["readyReplicas"] == 3
    assert status["availableReplicas"] == 3
    assert status["currentReplicas"] == 3
    assert status["updatedReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"] == revision
    assert status["observedGeneration"] == 1
    rev = live(cluster, "ControllerRevision", revision)
    assert rev["revision"] == 1
    assert rev["data"]["spec"]["template"]["$patch"] == "replace"


def test_parallel_creation(cluster: Cluster) -> None:
    create(cluster, statefulset(podManagementPolicy="Parallel"))
    cluster.advance(1)
    assert names(cluster) == ["db-0", "db-1", "db-2"]


def test_scale_down_removes_highest_ordinal_first(cluster: Cluster) -> None:
    create(cluster, statefulset())
    settle(cluster, 10, remove=False)
    update(cluster, "StatefulSet", "db", lambda s: s["spec"].update(replicas=1))
    cluster.advance(2)
    # One at a time: db-2 goes first, db-1 waits until db-2 is gone.
    assert names(cluster) == ["db-0", "db-1"]
    remove_terminating(cluster)
    cluster.advance(2)
    assert names(cluster) == ["db-0"]
    assert messages(cluster, "SuccessfulDelete") == [
        "delete Pod db-2 in StatefulSet db successful",
        "delete Pod db-1 in StatefulSet db successful",
    ]


def test_rolling_update_in_reverse_ordinal_order(cluster: Cluster) -> None:
    create(cluster, statefulset())
    settle(cluster, 10)
    old = live(cluster, "StatefulSet", "db")["status"]["currentRevision"]

    def bump(s: Obj) -> None:
        s["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/web:2.0"

    update(cluster, "StatefulSet", "db", bump)
    settle(cluster, 20)
    assert messages(cluster, "SuccessfulDelete") == [
        "delete Pod db-2 in StatefulSet db successful",
        "delete Pod db-1 in StatefulSet db successful",
        "delete Pod db-0 in StatefulSet db successful",
    ]
    status = live(cluster, "StatefulSet", "db")["status"]
    assert status["updateRevision"] != old
    assert status["currentRevision"] == status["updateRevision"]
    assert status["updatedReplicas"] == 3
    images = {p["spec"]["containers"][0]["image"] for p in pods(cluster)}
    assert images == {"registry.example.com/web:2.0"}
    revisions = cluster.store.list(cluster.rt("ControllerRevision"), NS)
    assert sorted(r["revision"] for r in revisions) == [1, 2]


def test_partition_holds_lower_ordinals(cluster: Cluster) -> None:
    create(
        cluster,
        statefulset(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
    )
    settle(cluster, 10)

    def bump(s: Obj) -> None:
        s["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/web:2.0"

    update(cluster, "StatefulSet", "db", bump)
    settle(cluster, 15)
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods(cluster)}
    assert images["db-2"] == "registry.example.com/web:2.0"
    assert images["db-0"] == images["db-1"] == "registry.example.com/web:1.0"
    status = live(cluster, "StatefulSet", "db")["status"]
    assert status["updatedReplicas"] == 1
    assert status["currentRevision"] != status["updateRevision"]


def test_deleted_pod_comes_back_with_the_same_name(cluster: Cluster) -> None:
    create(cluster, statefulset(replicas=2))
    settle(cluster, 6)
    uid = live(cluster, "Pod", "db-1")["metadata"]["uid"]
    cluster.delete(cluster.rt("Pod"), NS, "db-1")
    cluster.advance(3)
    assert (
        live(cluster, "Pod", "db-1")["metadata"]["uid"] == uid
    )  # still terminating: no replacement
    remove_terminating(cluster)
    cluster.advance(1)
    assert live(cluster, "Pod", "db-1")["metadata"]["uid"] != uid
