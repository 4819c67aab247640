"""The event recorder: de-duplication, aggregation, the spam filter, expiry."""

from __future__ import annotations

import pytest

from tests.twin.test_controllers_support import NS, container, create, make_cluster
from twin.cluster import Cluster
from twin.events import EventRecorder
from twin.store import Obj


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster(nodes=0)[0]


@pytest.fixture
def pod(cluster: Cluster) -> Obj:
    # Bound already, so the scheduler writes no events of its own about it.
    return create(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": NS},
            "spec": {"nodeName": "node-1", "containers": [container()]},
        },
    )


def all_events(cluster: Cluster) -> list[Obj]:
    return sorted(cluster.store.list(cluster.rt("Event")), key=lambda e: e["metadata"]["name"])


def test_event_shape(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    assert isinstance(rec, EventRecorder)
    ev = rec.event(
        pod,
        "Warning",
        "BackOff",
        "Back-off restarting failed container app",
        component="kubelet",
        host="node-1",
        field_path="spec.containers{app}",
    )
    assert ev["metadata"]["namespace"] == NS
    name, _, nanos = ev["metadata"]["name"].partition(".")
    assert name == "web-0"
    assert int(nanos, 16) == int(cluster.clock.now().timestamp() * 1e9)
    assert ev["involvedObject"] == {
        "kind": "Pod",
        "namespace": NS,
        "name": "web-0",
        "uid": pod["metadata"]["uid"],
        "apiVersion": "v1",
        "resourceVersion": pod["metadata"]["resourceVersion"],
        "fieldPath": "spec.containers{app}",
    }
    assert ev["source"] == {"component": "kubelet", "host": "node-1"}
    assert (ev["reportingComponent"], ev["reportingInstance"]) == ("kubelet", "node-1")
    assert ev["count"] == 1
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == cluster.now_str()


def test_identical_events_count_up(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    first = rec.event(pod, "Normal", "Pulled", "pulled", component="kubelet", host="node-1")
    cluster.advance(30)
    again = rec.event(pod, "Normal", "Pulled", "pulled", component="kubelet", host="node-1")
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["count"] == 2
    assert again["firstTimestamp"] == first["firstTimestamp"]
    assert again["lastTimestamp"] == cluster.now_str()
    rec.event(pod, "Normal", "Pulled", "pulled", component="kubelet", host="node-2")
    assert len(all_events(cluster)) == 2  # another source is another event


def test_ten_distinct_messages_aggregate(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    for i in range(12):
        rec.event(
            pod,
            "Warning",
            "FailedCreate",
            f"Error creating: attempt {i}",
            component="replicaset-controller",
        )
        cluster.advance(1)
    found = all_events(cluster)
    assert len(found) == 10
    combined = [e for e in found if e["message"].startswith("(combined from similar events): ")]
    (aggregate,) = combined
    assert aggregate["message"] == "(combined from similar events): Error creating: attempt 11"
    assert aggregate["count"] == 3
    plain = sorted(e["message"] for e in found if e not in combined)
    assert plain == sorted(f"Error creating: attempt {i}" for i in range(9))


def test_aggregation_window_resets_after_600_seconds(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    for i in range(9):
        rec.event(pod, "Warning", "Unhealthy", f"probe {i}", component="kubelet")
    cluster.advance(601)
    rec.event(pod, "Warning", "Unhealthy", "probe 9", component="kubelet")
    assert not [e for e in all_events(cluster) if e["message"].startswith("(combined")]


def test_spam_filter_burst_and_refill(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    for _ in range(30):
        rec.event(
            pod,
            "Warning",
            "BackOff",
            "Back-off restarting failed container",
            component="kubelet",
            host="n",
        )
    (ev,) = all_events(cluster)
    assert ev["count"] == 25  # a burst of 25 per source and object
    assert rec.filtered == 5
    cluster.advance(299)
    rec.event(
        pod,
        "Warning",
        "BackOff",
        "Back-off restarting failed container",
        component="kubelet",
        host="n",
    )
    assert all_events(cluster)[0]["count"] == 25
    cluster.advance(2)
    rec.event(
        pod,
        "Warning",
        "BackOff",
        "Back-off restarting failed container",
        component="kubelet",
        host="n",
    )
    # One token came back after 300 s; what was filtered still counted, so the count jumps.
    assert all_events(cluster)[0]["count"] == 32


def test_spam_filter_is_per_object(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    for _ in range(26):
        rec.event(pod, "Normal", "Pulled", "pulled", component="kubelet")
    other = create(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": NS},
            "spec": {"containers": [container()]},
        },
    )
    written = rec.event(other, "Normal", "Pulled", "pulled", component="kubelet")
    assert cluster.store.find(cluster.rt("Event"), NS, written["metadata"]["name"]) is not None


def test_events_with_an_action_are_only_deduplicated(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    for i in range(40):
        rec.event(
            pod,
            "Warning",
            "FailedScheduling",
            "0/0 nodes",
            component="default-scheduler",
            action="Scheduling",
        )
        rec.event(
            pod,
            "Warning",
            "FailedScheduling",
            f"message {i}",
            component="default-scheduler",
            action="Scheduling",
        )
    found = all_events(cluster)
    assert len(found) == 41
    same = next(e for e in found if e["message"] == "0/0 nodes")
    assert same["count"] == 40
    assert same["action"] == "Scheduling"
    assert same["eventTime"].endswith("Z")


def test_long_scheduler_messages_are_truncated(cluster: Cluster, pod: Obj) -> None:
    ev = cluster.recorder.event(
        pod,
        "Warning",
        "FailedScheduling",
        "x" * 2000,
        component="default-scheduler",
        action="Scheduling",
    )
    assert len(ev["message"]) == 1024
    assert ev["message"].endswith(" ...")


def test_events_expire_an_hour_after_their_last_update(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    rec.event(pod, "Normal", "Old", "old", component="kubelet")
    cluster.advance(1800)
    rec.event(pod, "Normal", "Recent", "recent", component="kubelet")
    cluster.advance(1860)  # the controller sweeps every minute
    assert [e["reason"] for e in all_events(cluster)] == ["Recent"]
    cluster.advance(1900)
    assert all_events(cluster) == []


def test_recreated_after_expiry_keeps_counting(cluster: Cluster, pod: Obj) -> None:
    rec = cluster.recorder
    first = rec.event(pod, "Normal", "Pulled", "pulled", component="kubelet")
    cluster.store.delete(cluster.rt("Event"), NS, first["metadata"]["name"])
    again = rec.event(pod, "Normal", "Pulled", "pulled", component="kubelet")
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["count"] == 2


def test_cluster_scoped_objects_get_events_in_default(cluster: Cluster) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-9", "uid": "node-9"}}
    ev = cluster.recorder.event(
        node,
        "Normal",
        "NodeNotReady",
        "Node node-9 status is now: NodeNotReady",
        component="node-controller",
    )
    assert ev["metadata"]["namespace"] == "default"
    assert "namespace" not in ev["involvedObject"]
