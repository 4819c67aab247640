"""Pod deletion, dead nodes, spec changes, and what the kubelet costs per tick."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.twin.test_kubelet import NS, WEB, KubeletSim, running, web
from twin.kubelet import Kubelet, kubelet_of
from twin.nodes import make_node
from twin.runtime import Effect

Obj = dict[str, Any]


@pytest.fixture
def sim() -> KubeletSim:
    return KubeletSim()


# -- deletion ---------------------------------------------------------------------


def test_deleted_pod_stops_its_containers_and_is_removed(sim: KubeletSim) -> None:
    sim.profile(WEB, startup_logs=("up",))
    sim.pod("web", [web(), web(name="sidecar", image="example.org/agent:1")])
    sim.run_until(running(sim, "web"), 60)
    uid = sim.get("web")["metadata"]["uid"]
    sim.delete("web")
    deleted_at = sim.now
    sim.advance(1)
    assert sim.exists("web")
    assert sim.get("web")["metadata"]["deletionTimestamp"]
    assert sim.logs("web", "server") == ["up"]  # kept until removal
    killing = sim.events("web", "Killing")
    assert sorted((e["type"], e["message"], e["involvedObject"]["fieldPath"]) for e in killing) == [
        ("Normal", "Stopping container server", "spec.containers{server}"),
        ("Normal", "Stopping container sidecar", "spec.containers{sidecar}"),
    ]
    gone = sim.run_until(lambda: not sim.exists("web"), 30)
    assert 1 <= gone - deleted_at <= 3
    assert uid not in sim.cluster.pods
    assert sim.cluster.logs.read(uid, "server") == []


def test_deletion_respects_a_zero_grace_period(sim: KubeletSim) -> None:
    sim.pod("web", [web()], terminationGracePeriodSeconds=0)
    sim.run_until(running(sim, "web"), 60)
    sim.delete("web")
    sim.advance(1)
    assert not sim.exists("web")


def test_a_hung_process_uses_its_whole_grace_period(sim: KubeletSim) -> None:
    owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "uid": "d",
        "controller": True,
    }
    sim.pod("web", [web()], owner=owner, terminationGracePeriodSeconds=20)
    sim.run_until(running(sim, "web"), 60)
    prt = sim.runtime("web")
    sim.cluster.effects.append(
        Effect("hang", NS, "web", started=sim.now, pod_uids=frozenset({prt.uid}))
    )
    sim.delete("web")
    deleted = sim.now
    gone = sim.run_until(lambda: not sim.exists("web"), 60)
    # The kubelet sees the deletion at its next sync, then waits out the grace period.
    assert gone - (deleted + 1) == 20


def test_pod_that_never_started_is_removed_at_once(sim: KubeletSim) -> None:
    sim.profile("example.org/missing:1", start="missing-image")
    sim.pod("web", [web(image="example.org/missing:1")])
    sim.advance(20)
    sim.delete("web")
    sim.advance(1)
    assert not sim.exists("web")
    assert sim.events("web", "Killing") == []


def test_unscheduled_pod_is_removed_when_deleted(sim: KubeletSim) -> None:
    sim.cluster.create(
        sim.cluster.rt("Pod"),
        {"metadata": {"name": "pending", "namespace": NS}, "spec": {"containers": [web()]}},
    )
    sim.advance(2)
    sim.delete("pending")
    sim.advance(1)
    assert not sim.exists("pending")


def test_force_deleted_pod_is_forgotten(sim: KubeletSim) -> None:
    sim.pod("web", [web()])
    sim.run_until(running(sim, "web"), 60)
    uid = sim.get("web")["metadata"]["uid"]
    sim.cluster.store.delete(sim.cluster.rt("Pod"), NS, "web")
    sim.advance(1)
    assert uid not in sim.cluster.pods


# -- dead nodes ---------------------------------------------------------------------


def test_dead_node_freezes_status_and_stops_serving(sim: KubeletSim) -> None:
    sim.pod("web", [web(resources={"limits": {"memory": "64Mi"}})])
    sim.run_until(running(sim, "web"), 60)
    sim.advance(5)
    ctr = sim.runtime("web").containers["server"]
    assert ctr.serving
    rv = sim.get("web")["metadata"]["resourceVersion"]
    sim.cluster.nodes_down.add("node-1")
    sim.advance(1)
    assert not ctr.serving
    ctr.memory = 500 * 2**20  # the kubelet is dead: nobody reports an OOM kill
    sim.advance(120)
    assert sim.get("web")["metadata"]["resourceVersion"] == rv
    # Deleted pods on a dead node stay Terminating.
    sim.delete("web")
    sim.advance(120)
    assert sim.exists("web")
    sim.cluster.nodes_down.discard("node-1")
    sim.run_until(lambda: not sim.exists("web"), 10)


def test_node_back_resumes_serving_and_reports(sim: KubeletSim) -> None:
    sim.pod("web", [web()])
    sim.run_until(running(sim, "web"), 60)
    sim.advance(5)
    sim.cluster.nodes_down.add("node-1")
    sim.advance(30)
    # The node lifecycle controller marks the pod not ready meanwhile.
    pod = sim.cluster.store.get(sim.cluster.rt("Pod"), NS, "web", live=True)
    for cond in pod["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond["status"] = "False"
    sim.cluster.store.commit(sim.cluster.rt("Pod"), pod)
    sim.advance(10)
    assert sim.condition("web", "Ready")["status"] == "False"
    sim.cluster.nodes_down.discard("node-1")
    sim.advance(1)
    assert sim.runtime("web").containers["server"].serving
    assert sim.condition("web", "Ready")["status"] == "True"


def test_pods_bound_to_a_dead_node_wait_for_it(sim: KubeletSim) -> None:
    sim.cluster.nodes_down.add("node-1")
    sim.pod("web", [web()])
    sim.advance(30)
    assert not sim.status("web")
    sim.cluster.nodes_down.discard("node-1")
    sim.run_until(running(sim, "web"), 60)


# -- spec changes ------------------------------------------------------------------


def test_changed_image_restarts_the_container(sim: KubeletSim) -> None:
    sim.pod("web", [web()])
    sim.run_until(running(sim, "web"), 60)
    pod = sim.get("web")
    pod["spec"]["containers"][0]["image"] = "registry.example.com/web:2.0"
    sim.cluster.replace(sim.cluster.rt("Pod"), pod)
    sim.run_until(lambda: sim.container("web")["restartCount"] == 1, 30)
    sim.run_until(running(sim, "web"), 30)
    assert sim.container("web")["image"] == "registry.example.com/web:2.0"
    assert sim.messages("web", "Killing") == [
        "Container server definition changed, will be restarted"
    ]


def test_install_appends_one_kubelet() -> None:
    sim = KubeletSim()
    assert isinstance(kubelet_of(sim.cluster), Kubelet)
    assert sim.cluster.controllers[-1] is kubelet_of(sim.cluster)
    assert sim.cluster.controllers[-1].name == "kubelet"


# -- cost --------------------------------------------------------------------------


def _shop_like(sim: KubeletSim) -> None:
    """Twelve pods shaped like the shop's: probes of every kind, limits, one init container."""
    sim.profile("example.org/grpc:1", protocol="grpc", startup_seconds=2.0, startup_logs=("up",))
    grpc = {"grpc": {"port": 8080}, "periodSeconds": 5}
    http = {"httpGet": {"path": "/_healthz", "port": 8080}, "initialDelaySeconds": 10}
    limits = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    for i in range(10):
        probe = grpc if i % 2 else http
        sim.pod(
            f"svc-{i}",
            [
                web(
                    image="example.org/grpc:1" if i % 2 else WEB,
                    readinessProbe=probe,
                    livenessProbe=probe,
                    resources=limits,
                )
            ],
        )
    sim.pod(
        "redis",
        [
            web(
                image="redis:alpine",
                readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 5},
            )
        ],
    )
    sim.pod("lg", [web(name="main")], init=[{"name": "check", "image": "busybox:1.38.0"}])


def _timed_steps(sim: KubeletSim, seconds: float) -> float:
    kl = kubelet_of(sim.cluster)
    assert kl is not None
    spent = 0.0
    original = kl.step

    def timed(cluster: Any, dt: float) -> None:
        nonlocal spent
        t0 = time.perf_counter()
        original(cluster, dt)
        spent += time.perf_counter() - t0

    kl.step = timed  # type: ignore[method-assign]
    sim.advance(seconds)
    kl.step = original  # type: ignore[method-assign]
    return spent


def test_shop_sized_app_for_thirty_minutes_costs_little() -> None:
    sim = KubeletSim(nodes=("node-1", "node-2", "node-3"))
    _shop_like(sim)
    spent = _timed_steps(sim, 1800)
    assert all(sim.container(f"svc-{i}")["ready"] for i in range(10))
    assert sim.container("redis")["ready"]
    assert spent < 0.5, f"kubelet took {spent:.2f}s for 30 simulated minutes"


def test_two_thousand_pods_stay_workable() -> None:
    nodes = tuple(f"node-{i}" for i in range(1, 51))
    sim = KubeletSim(nodes=nodes)
    sim.profile(WEB, startup_seconds=1.0)
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
    for i in range(2000):
        sim.pod(f"p-{i}", [web(readinessProbe=probe)], node=nodes[i % 50])
    t0 = time.perf_counter()
    sim.advance(30)
    startup = time.perf_counter() - t0
    assert all(sim.container(f"p-{i}")["ready"] for i in range(0, 2000, 97))
    steady = _timed_steps(sim, 60)
    assert steady / 60 < 0.05, f"{steady / 60 * 1000:.1f} ms per tick with 2,000 pods"
    assert startup < 20


def test_nodes_added_later_get_heartbeats(sim: KubeletSim) -> None:
    sim.advance(3)
    sim.cluster.create(sim.cluster.rt("Node"), make_node("node-2"))
    sim.advance(1)
    node = sim.cluster.store.get(sim.cluster.rt("Node"), "", "node-2")
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["lastHeartbeatTime"] == sim.cluster.now_str()


def test_finished_pods_are_removed_when_deleted(sim: KubeletSim) -> None:
    sim.profile("example.org/crash:1", start="crash-on-start")
    sim.pod("job", [web(image="example.org/crash:1")], restartPolicy="Never")
    sim.run_until(lambda: sim.status("job").get("phase") == "Failed", 60)
    sim.delete("job")
    sim.advance(1)
    assert not sim.exists("job")


def test_pods_freeze_when_their_node_object_is_deleted(sim: KubeletSim) -> None:
    sim.pod("web", [web()])
    sim.run_until(running(sim, "web"), 60)
    sim.advance(5)
    node = sim.cluster.store.get(sim.cluster.rt("Node"), "", "node-1")
    sim.cluster.store.delete(sim.cluster.rt("Node"), "", "node-1")
    sim.advance(2)
    assert not sim.runtime("web").containers["server"].serving
    sim.delete("web")
    sim.advance(30)
    assert sim.exists("web")  # no kubelet to stop it
    node["metadata"].pop("resourceVersion")
    sim.cluster.create(sim.cluster.rt("Node"), node)
    sim.run_until(lambda: not sim.exists("web"), 10)
