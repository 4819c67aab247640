"""The scheduler: filters, FailedScheduling messages, binding, retries, preemption."""

from __future__ import annotations

from typing import Any

import pytest

from tests.twin.test_controllers_support import (
    NS,
    container,
    create,
    events,
    live,
    make_cluster,
    pods,
)
from twin.cluster import Cluster
from twin.nodes import make_node
from twin.store import Obj


def pod(name: str, *, cpu: str = "100m", memory: str = "64Mi", **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {"containers": [container(cpu=cpu, memory=memory)], **spec},
    }


def scheduled_condition(p: Obj) -> Obj:
    return next(c for c in p["status"]["conditions"] if c["type"] == "PodScheduled")


def taint(
    cluster: Cluster, node: str, key: str, effect: str = "NoSchedule", value: str = ""
) -> None:
    n = live(cluster, "Node", node, namespace="")
    entry = {"key": key, "effect": effect}
    if value:
        entry["value"] = value
    n["spec"].setdefault("taints", []).append(entry)
    cluster.store.commit(cluster.rt("Node"), n)


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster(nodes=3, cpu="2", memory="8Gi")[0]


def test_binds_and_reports_scheduled(cluster: Cluster) -> None:
    create(cluster, pod("a"))
    cluster.advance(1)
    bound = live(cluster, "Pod", "a")
    node = bound["spec"]["nodeName"]
    assert node in ("node-1", "node-2", "node-3")
    cond = scheduled_condition(bound)
    assert cond["status"] == "True"
    assert cond["lastProbeTime"] is None
    (event,) = events(cluster, reason="Scheduled")
    assert event["type"] == "Normal"
    assert event["message"] == f"Successfully assigned shop/a to {node}"
    assert event["source"]["component"] == "default-scheduler"
    assert event["reportingComponent"] == "default-scheduler"
    assert event["action"] == "Binding"


def test_least_allocated_spreads_pods(cluster: Cluster) -> None:
    for i in range(6):
        create(cluster, pod(f"p{i}", cpu="500m"))
    cluster.advance(1)
    per_node: dict[str, int] = {}
    for p in pods(cluster):
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    assert per_node == {"node-1": 2, "node-2": 2, "node-3": 2}


def test_scheduling_is_deterministic() -> None:
    placements = []
    for _ in range(2):
        c = make_cluster(nodes=3, cpu="2", memory="8Gi")[0]
        for i in range(7):
            create(c, pod(f"p{i}", cpu=f"{100 + 50 * i}m"))
        c.advance(1)
        placements.append([(p["metadata"]["name"], p["spec"]["nodeName"]) for p in pods(c)])
    assert placements[0] == placements[1]


def test_insufficient_cpu_message(cluster: Cluster) -> None:
    create(cluster, pod("big", cpu="3"))
    cluster.advance(1)
    p = live(cluster, "Pod", "big")
    assert "nodeName" not in p["spec"]
    message = (
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod."
    )
    cond = scheduled_condition(p)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", message)
    (event,) = events(cluster, reason="FailedScheduling")
    assert event["type"] == "Warning"
    assert event["message"] == message
    assert event["action"] == "Scheduling"


def test_taint_and_resources_message_as_real_clusters_print_it(cluster: Cluster) -> None:
    taint(cluster, "node-1", "node-role.kubernetes.io/control-plane")
    create(cluster, pod("big", cpu="3"))
    cluster.advance(1)
    assert scheduled_condition(live(cluster, "Pod", "big"))["message"] == (
        "0/3 nodes are available: "
        "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 Insufficient cpu. preemption: 0/3 nodes are available: "
        "1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod."
    )


def test_tolerated_taint_and_node_selector(cluster: Cluster) -> None:
    for name in ("node-1", "node-2", "node-3"):
        taint(cluster, name, "dedicated", value="gpu")
    create(cluster, pod("plain"))
    create(
        cluster,
        pod(
            "tolerant",
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
            ],
            nodeSelector={"kubernetes.io/hostname": "node-2"},
        ),
    )
    cluster.advance(1)
    assert live(cluster, "Pod", "tolerant")["spec"]["nodeName"] == "node-2"
    assert scheduled_condition(live(cluster, "Pod", "plain"))["message"].startswith(
        "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: gpu}."
    )


def test_node_affinity_and_cordon_messages(cluster: Cluster) -> None:
    n1 = live(cluster, "Node", "node-1", namespace="")
    n1["spec"]["unschedulable"] = True
    cluster.store.commit(cluster.rt("Node"), n1)
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disktype", "operator": "In", "values": ["ssd"]}]}
                ]
            }
        }
    }
    create(cluster, pod("picky", affinity=affinity))
    cluster.advance(1)
    assert scheduled_condition(live(cluster, "Pod", "picky"))["message"] == (
        "0/3 nodes are available: 1 node(s) were unschedulable, "
        "2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    n2 = live(cluster, "Node", "node-2", namespace="")
    n2["metadata"]["labels"]["disktype"] = "ssd"
    cluster.store.commit(cluster.rt("Node"), n2)
    cluster.advance(3)
    assert live(cluster, "Pod", "picky")["spec"]["nodeName"] == "node-2"


def test_too_many_pods() -> None:
    cluster = make_cluster(nodes=0)[0]
    cluster.create(cluster.rt("Node"), make_node("tiny", pods=1, now=cluster.now_str()))
    create(cluster, pod("one"))
    create(cluster, pod("two"))
    cluster.advance(1)
    assert scheduled_condition(live(cluster, "Pod", "two"))["message"] == (
        "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )


def test_no_nodes(cluster: Cluster) -> None:
    empty = make_cluster(nodes=0)[0]
    create(empty, pod("lonely"))
    empty.advance(1)
    assert (
        scheduled_condition(live(empty, "Pod", "lonely"))["message"]
        == "no nodes available to schedule pods"
    )


def test_unschedulable_pods_are_retried_and_the_event_counts(cluster: Cluster) -> None:
    create(cluster, pod("big", cpu="3"))
    cluster.advance(95)
    (event,) = events(cluster, reason="FailedScheduling")
    assert 4 <= event["count"] <= 5  # at t=1, then at least every 30 s
    assert event["firstTimestamp"] < event["lastTimestamp"]
    # A bigger node joins: the pod is retried within its back-off, not at the next period.
    cluster.create(cluster.rt("Node"), make_node("node-4", cpu="8", now=cluster.now_str()))
    cluster.advance(11)
    assert live(cluster, "Pod", "big")["spec"]["nodeName"] == "node-4"


def test_requests_of_terminal_pods_free_the_node() -> None:
    cluster = make_cluster(nodes=1, cpu="2")[0]
    create(cluster, pod("first", cpu="1500m"))
    cluster.advance(1)
    create(cluster, pod("second", cpu="1500m"))
    cluster.advance(1)
    assert "nodeName" not in live(cluster, "Pod", "second")["spec"]
    # Deleting is not enough while it terminates; finishing is.
    cluster.delete(cluster.rt("Pod"), NS, "first")
    cluster.advance(5)
    assert "nodeName" not in live(cluster, "Pod", "second")["spec"]
    live(cluster, "Pod", "first")["status"]["phase"] = "Succeeded"
    cluster.store.commit(cluster.rt("Pod"), live(cluster, "Pod", "first"))
    cluster.advance(11)
    assert live(cluster, "Pod", "second")["spec"]["nodeName"] == "node-1"


def test_preemption_of_lower_priority_pods() -> None:
    cluster = make_cluster(nodes=1, cpu="2")[0]
    create(cluster, pod("low", cpu="1500m"))
    cluster.advance(1)
    high = pod("high", cpu="1500m")
    high["spec"]["priorityClassName"] = "system-cluster-critical"
    created = create(cluster, high)
    cluster.advance(1)
    low = live(cluster, "Pod", "low")
    assert low["metadata"].get("deletionTimestamp")
    target = next(c for c in low["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert target["reason"] == "PreemptionByScheduler"
    (preempted,) = events(cluster, reason="Preempted")
    assert preempted["message"] == f"Preempted by pod {created['metadata']['uid']} on node node-1"
    assert live(cluster, "Pod", "high")["status"]["nominatedNodeName"] == "node-1"
    cluster.store.delete(cluster.rt("Pod"), NS, "low")  # the kubelet finishes it
    cluster.advance(11)
    assert live(cluster, "Pod", "high")["spec"]["nodeName"] == "node-1"


def test_not_ready_node_without_taint_yet_is_avoided(cluster: Cluster) -> None:
    node = live(cluster, "Node", "node-1", namespace="")
    for cond in node["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond["status"] = "False"
    for name in ("node-2", "node-3"):
        n = live(cluster, "Node", name, namespace="")
        n["spec"]["unschedulable"] = True
        cluster.store.commit(cluster.rt("Node"), n)
    create(cluster, pod("a"))
    cluster.controllers[0].step(cluster, 1)  # quota only; the node controller has not tainted yet
    plane_scheduler = next(c for c in cluster.controllers if c.name == "default-scheduler")
    plane_scheduler.step(cluster, 1)
    message = scheduled_condition(live(cluster, "Pod", "a"))["message"]
    assert message.startswith(
        "0/3 nodes are available: "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
        "2 node(s) were unschedulable."
    )


def test_scheduling_gates_hold_the_pod(cluster: Cluster) -> None:
    create(cluster, pod("gated", schedulingGates=[{"name": "example.com/wait"}]))
    cluster.advance(2)
    p = live(cluster, "Pod", "gated")
    assert "nodeName" not in p["spec"]
    cond = scheduled_condition(p)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "SchedulingGated",
        "Scheduling is blocked due to non-empty scheduling gates",
    )
    assert events(cluster, reason="FailedScheduling") == []
    p["spec"]["schedulingGates"] = []
    cluster.store.commit(cluster.rt("Pod"), p)
    cluster.advance(1)
    assert live(cluster, "Pod", "gated")["spec"]["nodeName"]
