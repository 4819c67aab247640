"""The control plane with the twin's kubelet: end to end, and what it costs per tick."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.twin.test_controllers_support import (
    NS,
    container,
    create,
    deployment,
    live,
    make_cluster,
    messages,
    pods,
    service,
)
from twin import kubelet
from twin.cluster import Cluster
from twin.controllers import ControlPlane


def timed(plane: ControlPlane) -> dict[str, float]:
    """Wrap each controller's step to add up its wall time."""
    spent: dict[str, float] = {}
    for ctl in plane.controllers:
        original: Callable[[Cluster, float], None] = ctl.step

        def step(
            cluster: Cluster,
            dt: float,
            original: Callable[[Cluster, float], None] = original,
            name: str = ctl.name,
        ) -> None:
            start = time.perf_counter()
            original(cluster, dt)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

        ctl.step = step  # type: ignore[method-assign]
    return spent


def ready_addresses(cluster: Cluster, name: str = "web") -> list[str]:
    ep = live(cluster, "Endpoints", name)
    return sorted(
        a["targetRef"]["name"] for s in ep.get("subsets", []) for a in s.get("addresses", [])
    )


def test_node_down_end_to_end_with_the_kubelet() -> None:
    cluster, _ = make_cluster(nodes=3, heartbeats=False)
    kubelet.install(cluster)
    create(cluster, deployment(replicas=3))
    create(cluster, service())
    cluster.advance(60)
    assert len(ready_addresses(cluster)) == 3
    d = live(cluster, "Deployment", "web")
    assert d["status"]["availableReplicas"] == 3
    on_node_1 = sorted(
        p["metadata"]["name"] for p in pods(cluster) if p["spec"]["nodeName"] == "node-1"
    )
    assert on_node_1
    cluster.nodes_down.add("node-1")
    cluster.advance(60)
    node = live(cluster, "Node", "node-1", namespace="")
    assert (
        next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "Unknown"
    )
    # Its pods are not ready any more: Endpoints moved them out of the addresses.
    assert not set(on_node_1) & set(ready_addresses(cluster))
    cluster.advance(330)
    assert sorted(messages(cluster, "TaintManagerEviction")) == sorted(
        f"Marking for deletion Pod {NS}/{p}" for p in on_node_1
    )
    for name in on_node_1:
        assert live(cluster, "Pod", name)["metadata"]["deletionTimestamp"]  # stuck Terminating
    addresses = ready_addresses(cluster)
    assert len(addresses) == 3
    assert not set(on_node_1) & set(addresses)
    assert live(cluster, "Deployment", "web")["status"]["availableReplicas"] == 3
    cluster.nodes_down.discard("node-1")
    cluster.advance(60)
    assert "taints" not in live(cluster, "Node", "node-1", namespace="")["spec"]
    for name in on_node_1:  # the kubelet is back and finishes the deletion
        assert cluster.store.find(cluster.rt("Pod"), NS, name) is None


def test_rollout_with_the_kubelet_completes() -> None:
    cluster, _ = make_cluster(nodes=3, heartbeats=False)
    kubelet.install(cluster)
    create(cluster, deployment(replicas=4))
    cluster.advance(60)
    rt = cluster.rt("Deployment")
    d = cluster.store.get(rt, NS, "web")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/web:2.0"
    cluster.replace(rt, d)
    cluster.advance(120)
    d = live(cluster, "Deployment", "web")
    assert d["status"]["updatedReplicas"] == 4
    assert d["status"]["availableReplicas"] == 4
    progressing = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    assert {p["spec"]["containers"][0]["image"] for p in pods(cluster)} == {
        "registry.example.com/web:2.0"
    }


def test_small_app_costs_little_per_simulated_half_hour() -> None:
    cluster, plane = make_cluster(nodes=3, heartbeats=False)
    kubelet.install(cluster)
    for i in range(12):
        create(cluster, deployment(f"svc{i}", replicas=1))
        create(cluster, service(f"svc{i}"))
    cluster.advance(60)
    assert sum(1 for p in pods(cluster) if p["status"].get("phase") == "Running") == 12
    spent = timed(plane)
    cluster.advance(1800)
    total = sum(spent.values())
    assert total < 0.5, f"controllers took {total:.3f} s for 30 simulated minutes: {spent}"


def test_two_thousand_pods_stay_workable() -> None:
    cluster, plane = make_cluster(nodes=50, cpu="32", memory="128Gi")
    spent = timed(plane)
    for i in range(100):
        create(
            cluster,
            deployment(f"app{i}", replicas=20, containers=[container(cpu="50m", memory="32Mi")]),
        )
    for i in range(300):
        create(cluster, service(f"svc{i}", selector={"app": f"app{i % 100}"}))
    cluster.advance(3)
    assert sum(1 for p in pods(cluster) if p["spec"].get("nodeName")) == 2000
    busy = sum(spent.values())
    assert busy < 15, f"creating and placing 2000 pods took {busy:.1f} s: {spent}"
    per_node: dict[str, int] = {}
    for p in pods(cluster):
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    assert max(per_node.values()) - min(per_node.values()) <= 2
    spent.clear()
    cluster.advance(120)
    idle = sum(spent.values())
    assert idle < 1.0, f"two idle minutes took {idle:.2f} s: {spent}"
