"""Node lifecycle: a silent kubelet, NotReady, taints, eviction after the toleration, recovery."""

from __future__ import annotations

import pytest

from tests.twin.test_controllers_support import (
    NS,
    create,
    deployment,
    events,
    live,
    make_cluster,
    messages,
    pods,
    settle,
)
from twin.cluster import Cluster
from twin.controllers.nodelifecycle import toleration_seconds
from twin.store import Obj


@pytest.fixture
def cluster() -> Cluster:
    c = make_cluster(nodes=3)[0]
    create(c, deployment(replicas=3))
    settle(c, 5)
    return c


def node(cluster: Cluster, name: str = "node-1") -> Obj:
    return live(cluster, "Node", name, namespace="")


def conditions(obj: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in obj["status"]["conditions"]}


def pods_on(cluster: Cluster, name: str) -> list[Obj]:
    return [p for p in pods(cluster) if p["spec"].get("nodeName") == name]


def test_node_goes_unknown_after_the_grace_period(cluster: Cluster) -> None:
    victims = pods_on(cluster, "node-1")
    assert victims
    cluster.nodes_down.add("node-1")
    cluster.advance(30)  # less than the 40 s grace period since the last heartbeat
    assert conditions(node(cluster))["Ready"]["status"] == "True"
    cluster.advance(25)
    cond = conditions(node(cluster))
    assert (cond["Ready"]["status"], cond["Ready"]["reason"], cond["Ready"]["message"]) == (
        "Unknown",
        "NodeStatusUnknown",
        "Kubelet stopped posting node status.",
    )
    for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        assert cond[ctype]["status"] == "Unknown"
        assert cond[ctype]["reason"] == "NodeStatusUnknown"
    taints = node(cluster)["spec"]["taints"]
    assert [(t["key"], t["effect"]) for t in taints] == [
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    ]
    assert "timeAdded" in taints[1]
    assert "timeAdded" not in taints[0]
    (node_event,) = events(cluster, reason="NodeNotReady", name="node-1")
    assert node_event["type"] == "Normal"
    assert node_event["message"] == "Node node-1 status is now: NodeNotReady"
    assert node_event["source"]["component"] == "node-controller"
    assert node_event["involvedObject"]["kind"] == "Node"
    assert node_event["metadata"]["namespace"] == "default"
    for pod in victims:
        ready = next(
            c
            for c in live(cluster, "Pod", pod["metadata"]["name"])["status"]["conditions"]
            if c["type"] == "Ready"
        )
        assert ready["status"] == "False"
        (pod_event,) = events(cluster, reason="NodeNotReady", name=pod["metadata"]["name"])
        assert (pod_event["type"], pod_event["message"]) == ("Warning", "Node is not ready")


def test_pods_are_evicted_after_their_toleration(cluster: Cluster) -> None:
    victims = [p["metadata"]["name"] for p in pods_on(cluster, "node-1")]
    cluster.nodes_down.add("node-1")
    cluster.advance(60)
    tainted_at = cluster.elapsed
    assert not [p for p in victims if live(cluster, "Pod", p)["metadata"].get("deletionTimestamp")]
    settle(cluster, 250, remove=False)
    assert not [p for p in victims if live(cluster, "Pod", p)["metadata"].get("deletionTimestamp")]
    settle(cluster, 60, remove=False)
    assert cluster.elapsed - tainted_at > 300
    for name in victims:
        pod = live(cluster, "Pod", name)
        assert pod["metadata"][
            "deletionTimestamp"
        ]  # Terminating: the kubelet is not there to finish it
        target = next(c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert target["reason"] == "DeletionByTaintManager"
    assert sorted(messages(cluster, "TaintManagerEviction")) == sorted(
        f"Marking for deletion Pod {NS}/{n}" for n in victims
    )
    (event,) = events(cluster, reason="TaintManagerEviction")[:1]
    assert event["source"]["component"] == "taint-eviction-controller"
    assert "uid" not in event["involvedObject"]
    # The ReplicaSet replaced them elsewhere.
    active = [p for p in pods(cluster, active_only=True)]
    assert len(active) == 3
    assert all(p["spec"]["nodeName"] != "node-1" for p in active)


def test_node_that_returns_is_untainted_and_evictions_are_cancelled(cluster: Cluster) -> None:
    victims = [p["metadata"]["name"] for p in pods_on(cluster, "node-1")]
    cluster.nodes_down.add("node-1")
    cluster.advance(120)
    cluster.nodes_down.discard("node-1")
    cluster.advance(20)
    n = node(cluster)
    assert "taints" not in n["spec"]
    assert conditions(n)["Ready"]["status"] == "True"
    assert conditions(n)["MemoryPressure"]["status"] == "False"
    settle(cluster, 300, remove=False)
    assert all(not live(cluster, "Pod", p)["metadata"].get("deletionTimestamp") for p in victims)
    assert sorted(messages(cluster, "TaintManagerEviction")) == sorted(
        f"Cancelling deletion of Pod {NS}/{n}" for n in victims
    )


def test_short_toleration_is_honoured(cluster: Cluster) -> None:
    def tolerate(d: Obj) -> None:
        d["spec"]["template"]["spec"]["tolerations"] = [
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 30,
            }
        ]

    obj = deployment("quick", replicas=3)
    tolerate(obj)
    create(cluster, obj)
    settle(cluster, 5)
    quick = [
        p["metadata"]["name"]
        for p in pods_on(cluster, "node-1")
        if p["metadata"]["name"].startswith("quick-")
    ]
    assert quick
    cluster.nodes_down.add("node-1")
    cluster.advance(60)  # NotReady and tainted by now
    cluster.advance(35)
    assert all(live(cluster, "Pod", p)["metadata"].get("deletionTimestamp") for p in quick)


def test_toleration_arithmetic() -> None:
    unreachable = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
    assert toleration_seconds({"spec": {}}, unreachable) == 0.0
    forever = {"spec": {"tolerations": [{"operator": "Exists"}]}}
    assert toleration_seconds(forever, unreachable) is None
    mixed = {
        "spec": {
            "tolerations": [
                {"operator": "Exists"},
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "tolerationSeconds": 120,
                },
            ]
        }
    }
    assert toleration_seconds(mixed, unreachable) == 120.0


def test_cordon_adds_the_unschedulable_taint(cluster: Cluster) -> None:
    n = node(cluster, "node-2")
    n["spec"]["unschedulable"] = True
    cluster.store.commit(cluster.rt("Node"), n)
    cluster.advance(6)
    assert node(cluster, "node-2")["spec"]["taints"] == [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ]
    n = node(cluster, "node-2")
    n["spec"]["unschedulable"] = False
    cluster.store.commit(cluster.rt("Node"), n)
    cluster.advance(6)
    assert "taints" not in node(cluster, "node-2")["spec"]


def test_no_evictions_when_most_of_a_small_cluster_is_down() -> None:
    cluster = make_cluster(nodes=4)[0]
    for name in ("node-1", "node-2", "node-3"):
        cluster.nodes_down.add(name)
    cluster.advance(60)
    for name in ("node-1", "node-2", "node-3"):
        n = node(cluster, name)
        assert conditions(n)["Ready"]["status"] == "Unknown"
        assert [t["effect"] for t in n["spec"]["taints"]] == [
            "NoSchedule"
        ]  # no NoExecute: partial disruption
