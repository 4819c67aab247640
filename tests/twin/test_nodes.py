"""Node objects (make_node), quantities, and the kubelet's node heartbeats."""

from __future__ import annotations

import ipaddress

import pytest

from tests.twin.test_kubelet import KubeletSim, running, web
from twin.nodes import format_memory, make_node, parse_cpu, parse_memory


def test_make_node_looks_like_a_registered_kubelet() -> None:
    node = make_node("node-2", labels={"topology.kubernetes.io/zone": "europe-west1-b"})
    meta, status = node["metadata"], node["status"]
    assert node["apiVersion"] == "v1"
    assert node["kind"] == "Node"
    assert meta["labels"]["kubernetes.io/hostname"] == "node-2"
    assert meta["labels"]["kubernetes.io/os"] == "linux"
    assert meta["labels"]["kubernetes.io/arch"] == "amd64"
    assert "node-role.kubernetes.io/worker" in meta["labels"]
    assert meta["labels"]["topology.kubernetes.io/zone"] == "europe-west1-b"
    info = status["nodeInfo"]
    assert info["kubeletVersion"] == "v1.32.4"
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert info["operatingSystem"] == "linux"
    assert {a["type"]: a["address"] for a in status["addresses"]} == {
        "InternalIP": "10.0.0.12",
        "Hostname": "node-2",
    }
    assert node["spec"]["podCIDR"] == "10.244.2.0/24"
    assert node["spec"]["podCIDRs"] == ["10.244.2.0/24"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID"),
        "Ready": ("True", "KubeletReady"),
    }
    ready = status["conditions"][-1]
    assert ready["message"] == "kubelet is posting ready status"


def test_allocatable_is_slightly_below_capacity() -> None:
    status = make_node("node-1", cpu="8", memory="32Gi", pods=110)["status"]
    cap, alloc = status["capacity"], status["allocatable"]
    assert cap["cpu"] == "8"
    assert cap["memory"] == "33554432Ki"
    assert cap["pods"] == alloc["pods"] == "110"
    assert alloc["cpu"] == "7910m"
    assert 0.9 * parse_cpu(cap["cpu"]) < parse_cpu(alloc["cpu"]) < parse_cpu(cap["cpu"])
    assert 0.95 * parse_memory(cap["memory"]) < parse_memory(alloc["memory"])
    assert parse_memory(alloc["memory"]) < parse_memory(cap["memory"])
    small = make_node("tiny", cpu="1500m", memory="2Gi")["status"]
    assert small["capacity"]["cpu"] == "1500m"
    assert parse_cpu(small["allocatable"]["cpu"]) < 1.5


def test_nodes_get_distinct_cidrs_and_addresses() -> None:
    nodes = [make_node(f"node-{i}") for i in range(1, 51)] + [make_node("edge"), make_node("gpu")]
    cidrs = [ipaddress.ip_network(n["spec"]["podCIDR"]) for n in nodes]
    assert len(set(cidrs)) == len(cidrs)
    ips = [n["status"]["addresses"][0]["address"] for n in nodes]
    assert len(set(ips)) == len(ips)
    assert make_node("x", index=300)["spec"]["podCIDR"] == "10.245.44.0/24"


def test_make_node_refuses_bad_quantities() -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        make_node("n", cpu="eight")
    with pytest.raises(ValueError, match=r"'n'.*positive"):
        make_node("n", memory="0")


@pytest.mark.parametrize(
    ("text", "cores"),
    [("100m", 0.1), ("2", 2.0), ("0.5", 0.5), ("5e-1", 0.5), ("250000u", 0.25), ("1k", 1000.0)],
)
def test_parse_cpu(text: str, cores: float) -> None:
    assert parse_cpu(text) == pytest.approx(cores)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("128Mi", 134_217_728),
        ("1Gi", 2**30),
        ("1.5Gi", 3 * 2**29),
        ("129M", 129_000_000),
        ("129e6", 129_000_000),
        ("64Ki", 65_536),
        ("2k", 2000),
        ("123", 123),
    ],
)
def test_parse_memory(text: str, size: int) -> None:
    assert parse_memory(text) == size
    assert format_memory(134_217_728) == "128Mi"


# -- heartbeats -------------------------------------------------------------------------


def ready_condition(sim: KubeletSim, name: str = "node-1") -> dict[str, str]:
    node = sim.cluster.store.get(sim.cluster.rt("Node"), "", name)
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def test_heartbeat_every_ten_seconds() -> None:
    sim = KubeletSim()
    beats = set()
    for _ in range(35):
        sim.advance(1)
        beats.add(ready_condition(sim)["lastHeartbeatTime"])
    stamps = sorted(beats)
    assert stamps == [
        sim.cluster.clock.at(t).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (1, 11, 21, 31)
    ]
    node = sim.cluster.store.get(sim.cluster.rt("Node"), "", "node-1")
    assert {c["lastHeartbeatTime"] for c in node["status"]["conditions"]} == {stamps[-1]}
    # Condition transitions are not older than the node.
    assert all(
        c["lastTransitionTime"] >= node["metadata"]["creationTimestamp"]
        for c in node["status"]["conditions"]
    )


def test_kubelet_start_events_on_the_node() -> None:
    sim = KubeletSim()
    sim.advance(1)
    events = [
        e
        for e in sim.cluster.store.list(sim.cluster.rt("Event"), "default")
        if e["involvedObject"]["kind"] == "Node"
    ]
    assert [(e["reason"], e["message"]) for e in events] == [
        ("Starting", "Starting kubelet."),
        ("NodeHasSufficientMemory", "Node node-1 status is now: NodeHasSufficientMemory"),
        ("NodeHasNoDiskPressure", "Node node-1 status is now: NodeHasNoDiskPressure"),
        ("NodeHasSufficientPID", "Node node-1 status is now: NodeHasSufficientPID"),
        ("NodeAllocatableEnforced", "Updated Node Allocatable limit across pods"),
    ]
    assert events[0]["source"] == {"component": "kubelet", "host": "node-1"}
    assert events[0]["involvedObject"]["uid"] == "node-1"


def test_a_dead_kubelet_stops_heartbeats_and_recovers() -> None:
    sim = KubeletSim()
    sim.advance(5)
    sim.cluster.nodes_down.add("node-1")
    frozen = ready_condition(sim)["lastHeartbeatTime"]
    sim.advance(60)
    assert ready_condition(sim)["lastHeartbeatTime"] == frozen
    # The node lifecycle controller (not installed here) would mark it Unknown:
    node = sim.cluster.store.get(sim.cluster.rt("Node"), "", "node-1", live=True)
    for cond in node["status"]["conditions"]:
        cond.update(
            status="Unknown",
            reason="NodeStatusUnknown",
            message="Kubelet stopped posting node status.",
        )
    sim.cluster.store.commit(sim.cluster.rt("Node"), node)
    sim.cluster.nodes_down.discard("node-1")
    sim.advance(1)
    cond = ready_condition(sim)
    assert (cond["status"], cond["reason"]) == ("True", "KubeletReady")
    assert cond["lastTransitionTime"] == sim.cluster.now_str()
    assert cond["lastHeartbeatTime"] == sim.cluster.now_str()
    ready = [
        e["message"]
        for e in sim.cluster.store.list(sim.cluster.rt("Event"), "default")
        if e["reason"] == "NodeReady"
    ]
    assert ready == ["Node node-1 status is now: NodeReady"]
    # Node status never shows the twin's hidden state.
    node_text = str(sim.cluster.store.get(sim.cluster.rt("Node"), "", "node-1"))
    assert "down" not in node_text.lower()


def test_pulled_images_appear_in_node_status() -> None:
    sim = KubeletSim()
    sim.pod("redis", [web(image="redis:alpine")])
    sim.run_until(running(sim, "redis"), 60)
    sim.advance(10)
    node = sim.cluster.store.get(sim.cluster.rt("Node"), "", "node-1")
    (image,) = node["status"]["images"]
    assert image["names"][1] == "docker.io/library/redis:alpine"
    assert image["names"][0].startswith("docker.io/library/redis@sha256:")
    assert image["sizeBytes"] > 0


def test_nodes_created_after_pods_still_run_them() -> None:
    sim = KubeletSim(nodes=())
    sim.pod("early", [web()], node="node-9")
    sim.advance(5)
    assert not sim.status("early")
    sim.cluster.create(sim.cluster.rt("Node"), make_node("node-9"))
    sim.run_until(running(sim, "early"), 60)
    assert sim.status("early")["hostIP"] == "10.0.0.19"
