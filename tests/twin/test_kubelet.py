"""The kubelet: pod admission, sandbox, image pulls, container start, status, init containers.

Each test builds a cluster with only the kubelet (and the event recorder),
binds pods to a node directly (spec.nodeName), and advances simulated time.
`KubeletSim` is shared with the other test_kubelet_* files.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from twin import kubelet
from twin.behavior import BehaviorProfile
from twin.cluster import Cluster
from twin.events import EventRecorder
from twin.kubelet_images import image_size, pull_seconds
from twin.nodes import make_node
from twin.runtime import PodRuntime

Obj = dict[str, Any]
NS = "demo"
WEB = "registry.example.com/web:1.0"


class KubeletSim:
    """A cluster running only the kubelet, with helpers to read what it wrote."""

    def __init__(self, seed: int = 7, nodes: tuple[str, ...] = ("node-1",)) -> None:
        self.cluster = Cluster(seed=seed)
        self.cluster.recorder = EventRecorder(self.cluster)
        kubelet.install(self.cluster)
        self.cluster.create(self.cluster.rt("Namespace"), {"metadata": {"name": NS}})
        for name in nodes:
            self.cluster.create(self.cluster.rt("Node"), make_node(name))

    # -- writes -----------------------------------------------------------------

    def profile(self, image: str, **fields: Any) -> BehaviorProfile:
        profile = BehaviorProfile(**fields)
        self.cluster.behaviors.register(image, profile)
        return profile

    def pod(
        self,
        name: str,
        containers: list[Obj],
        *,
        node: str = "node-1",
        init: list[Obj] | None = None,
        owner: Obj | None = None,
        **spec: Any,
    ) -> Obj:
        body: Obj = {
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": containers, **spec},
        }
        if init:
            body["spec"]["initContainers"] = init
        if owner:
            body["metadata"]["ownerReferences"] = [owner]
        return self.cluster.create(self.cluster.rt("Pod"), body)

    def create(self, kind: str, obj: Obj) -> Obj:
        obj.setdefault("metadata", {}).setdefault("namespace", NS)
        return self.cluster.create(self.cluster.rt(kind), obj)

    def delete(self, name: str) -> None:
        self.cluster.delete(self.cluster.rt("Pod"), NS, name)

    # -- time -------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.cluster.elapsed

    def advance(self, seconds: float) -> None:
        self.cluster.advance(seconds)

    def run_until(self, pred: Callable[[], bool], limit: float = 600.0) -> float:
        """Advance a second at a time until `pred` holds; return the simulated time."""
        end = self.now + limit

        def holds() -> bool:
            try:
                return pred()
            except AssertionError:  # no status yet
                return False

        while not holds():
            if self.now >= end:
                raise AssertionError(f"condition not reached within {limit}s")
            self.cluster.advance(1)
        return self.now

    # -- reads ------------------------------------------------------------------

    def get(self, name: str) -> Obj:
        return self.cluster.store.get(self.cluster.rt("Pod"), NS, name)

    def exists(self, name: str) -> bool:
        return self.cluster.store.find(self.cluster.rt("Pod"), NS, name) is not None

    def status(self, name: str) -> Obj:
        return dict(self.get(name).get("status") or {})

    def container(self, name: str, ctr: str | None = None, *, init: bool = False) -> Obj:
        key = "initContainerStatuses" if init else "containerStatuses"
        statuses = self.status(name).get(key) or []
        for st in statuses:
            if ctr is None or st["name"] == ctr:
                return dict(st)
        raise AssertionError(f"pod {name!r} has no status for container {ctr!r}")

    def state(self, name: str, ctr: str | None = None) -> tuple[str, Obj]:
        ((kind, detail),) = self.container(name, ctr)["state"].items()
        return kind, detail

    def condition(self, name: str, ctype: str) -> Obj:
        for cond in self.status(name).get("conditions") or []:
            if cond["type"] == ctype:
                return dict(cond)
        raise AssertionError(f"pod {name!r} has no {ctype} condition")

    def events(self, name: str, reason: str | None = None) -> list[Obj]:
        out = [
            e
            for e in self.cluster.store.list(self.cluster.rt("Event"), NS)
            if e["involvedObject"]["name"] == name and (reason is None or e["reason"] == reason)
        ]
        return sorted(out, key=lambda e: (e["firstTimestamp"], e["metadata"]["name"]))

    def messages(self, name: str, reason: str | None = None) -> list[str]:
        return [e["message"] for e in self.events(name, reason)]

    def runtime(self, name: str) -> PodRuntime:
        return self.cluster.pods[self.get(name)["metadata"]["uid"]]

    def logs(self, name: str, ctr: str, *, previous: bool = False) -> list[str]:
        uid = self.get(name)["metadata"]["uid"]
        return self.cluster.logs.read(uid, ctr, previous=previous)


def web(name: str = "server", image: str = WEB, **fields: Any) -> Obj:
    return {"name": name, "image": image, "ports": [{"containerPort": 8080}], **fields}


@pytest.fixture
def sim() -> KubeletSim:
    return KubeletSim()


def running(sim: KubeletSim, name: str, ctr: str | None = None) -> Callable[[], bool]:
    def check() -> bool:
        if not sim.exists(name) or not sim.status(name).get("containerStatuses"):
            return False
        return sim.state(name, ctr)[0] == "running"

    return check


# -- admission and the first status ------------------------------------------------


def test_first_status_is_pending_with_container_creating(sim: KubeletSim) -> None:
    sim.pod("web", [web()])
    sim.advance(1)
    st = sim.status("web")
    assert st["phase"] == "Pending"
    assert sim.state("web") == ("waiting", {"reason": "ContainerCreating"})
    assert st["hostIP"] == "10.0.0.11"
    assert st["hostIPs"] == [{"ip": "10.0.0.11"}]
    assert st["startTime"] == sim.cluster.now_str()
    assert st["qosClass"] == "BestEffort"
    ready = sim.condition("web", "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [server]"
    assert sim.condition("web", "ContainersReady")["message"] == ready["message"]
    assert sim.condition("web", "PodReadyToStartContainers")["status"] == "False"
    assert sim.condition("web", "PodScheduled")["status"] == "True"
    assert sim.condition("web", "Initialized")["status"] == "True"
    types = [c["type"] for c in st["conditions"]]
    assert types == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert "podIP" not in st


def test_sandbox_gets_an_ip_from_the_node_pod_cidr(sim: KubeletSim) -> None:
    sim.pod("a", [web()])
    sim.pod("b", [web()])
    sim.advance(2)
    node = sim.cluster.store.get(sim.cluster.rt("Node"), "", "node-1")
    cidr = ipaddress.ip_network(node["spec"]["podCIDR"])
    ips = [sim.status(n)["podIP"] for n in ("a", "b")]
    assert all(ipaddress.ip_address(ip) in cidr for ip in ips)
    assert len(set(ips)) == 2
    assert sim.status("a")["podIPs"] == [{"ip": ips[0]}]
    assert sim.condition("a", "PodReadyToStartContainers")["status"] == "True"


def test_ips_are_released_and_host_network_uses_the_node_ip(sim: KubeletSim) -> None:
    sim.pod("host", [web()], hostNetwork=True)
    sim.pod("gone", [web()])
    sim.advance(2)
    assert sim.status("host")["podIP"] == sim.status("host")["hostIP"]
    freed = sim.status("gone")["podIP"]
    sim.delete("gone")
    sim.run_until(lambda: not sim.exists("gone"), 30)
    taken = set()
    for i in range(260):
        sim.pod(f"p{i}", [web()])
    sim.advance(2)
    for i in range(260):
        ip = sim.status(f"p{i}").get("podIP")
        if ip:
            taken.add(ip)
    # A /24 has 253 pod addresses (.2-.254); the freed one is reused, the rest wait.
    assert len(taken) == 253
    assert freed in taken
    failed = sim.messages("p259", "FailedCreatePodSandBox")
    assert failed
    assert "no IP addresses available in range set: 10.244.1.1-10.244.1.254" in failed[0]


def test_start_events_in_order_with_pull_duration_and_size(sim: KubeletSim) -> None:
    sim.pod("web", [web()])
    started = sim.run_until(running(sim, "web"), 60)
    events = sim.events("web")
    assert [(e["reason"], e["type"]) for e in events] == [
        ("Pulling", "Normal"),
        ("Pulled", "Normal"),
        ("Created", "Normal"),
        ("Started", "Normal"),
    ]
    took = pull_seconds(WEB)
    ms = round(took * 1000)
    text = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    assert [e["message"] for e in events] == [
        f'Pulling image "{WEB}"',
        f'Successfully pulled image "{WEB}" in {text} ({text} including waiting). '
        f"Image size: {image_size(WEB)} bytes.",
        "Created container: server",
        "Started container server",
    ]
    for e in events:
        assert e["source"] == {"component": "kubelet", "host": "node-1"}
        assert e["involvedObject"]["fieldPath"] == "spec.containers{server}"
        assert e["involvedObject"]["kind"] == "Pod"
    # Sandbox at t=2, then the pull.
    assert started == pytest.approx(2 + int(took) + 1)


def test_second_pod_on_the_node_finds_the_image_present(sim: KubeletSim) -> None:
    sim.pod("first", [web()])
    sim.run_until(running(sim, "first"), 60)
    sim.pod("second", [web()])
    start = sim.now
    done = sim.run_until(running(sim, "second"), 60)
    assert sim.messages("second") == [
        f'Container image "{WEB}" already present on machine',
        "Created container: server",
        "Started container server",
    ]
    assert done - start == 2  # admission tick + sandbox


def test_pull_policy_always_pulls_again_quickly(sim: KubeletSim) -> None:
    image = "registry.example.com/tool:latest"
    sim.pod("first", [web(image=image)])
    sim.run_until(running(sim, "first"), 60)
    sim.pod("second", [web(image=image)])
    sim.run_until(running(sim, "second"), 60)
    pulled = sim.messages("second", "Pulled")
    assert pulled == [
        f'Successfully pulled image "{image}" in 450ms (450ms including waiting). '
        f"Image size: {image_size(image)} bytes."
    ]


def test_running_status_fields(sim: KubeletSim) -> None:
    sim.pod("web", [web()])
    at = sim.run_until(running(sim, "web"), 60)
    st = sim.container("web")
    assert st["state"] == {
        "running": {"startedAt": sim.cluster.clock.at(at).strftime("%Y-%m-%dT%H:%M:%SZ")}
    }
    assert st["image"] == WEB
    assert re.fullmatch(r"registry\.example\.com/web@sha256:[0-9a-f]{64}", st["imageID"])
    assert re.fullmatch(r"containerd://[0-9a-f]{64}", st["containerID"])
    assert st["ready"] is True  # no readiness probe: ready once running
    assert st["started"] is True
    assert st["restartCount"] == 0
    assert st["lastState"] == {}
    assert sim.status("web")["phase"] == "Running"
    assert sim.condition("web", "Ready")["status"] == "True"
    assert "reason" not in sim.condition("web", "Ready")


def test_docker_hub_images_are_reported_fully_qualified(sim: KubeletSim) -> None:
    sim.pod("redis", [web(image="redis:alpine")])
    sim.run_until(running(sim, "redis"), 60)
    st = sim.container("redis")
    assert st["image"] == "docker.io/library/redis:alpine"
    assert st["imageID"].startswith("docker.io/library/redis@sha256:")


def test_runtime_state_for_the_traffic_model(sim: KubeletSim) -> None:
    sim.create(
        "Deployment",
        {"metadata": {"name": "shop-web"}, "spec": {"replicas": 1, "template": {}}},
    )
    dep = sim.cluster.store.get(sim.cluster.rt("Deployment"), NS, "shop-web")
    rs = sim.create(
        "ReplicaSet",
        {
            "metadata": {
                "name": "shop-web-5d4f8",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "shop-web",
                        "uid": dep["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {},
        },
    )
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "shop-web-5d4f8",
        "uid": rs["metadata"]["uid"],
        "controller": True,
    }
    sim.profile(WEB, memory=90 * 2**20, startup_seconds=3.0)
    sim.pod("web", [web(env=[{"name": "PORT", "value": "9000"}])], owner=owner)
    at = sim.run_until(running(sim, "web"), 60)
    prt = sim.runtime("web")
    assert prt.workload == ("Deployment", "shop-web")
    assert prt.node == "node-1"
    ctr = prt.containers["server"]
    assert ctr.phase == "running"
    assert ctr.started_at == at
    assert ctr.memory == pytest.approx(30 * 2**20)
    assert ctr.serving is False
    assert ctr.scratch["port"] == 8080  # the first containerPort wins over $PORT
    assert ctr.scratch["env"] == {"PORT": "9000"}
    sim.advance(2)
    assert ctr.serving is False
    sim.advance(1)
    assert ctr.serving is True


def test_startup_logs_rendered_in_the_profile_style(sim: KubeletSim) -> None:
    sim.profile(
        WEB,
        log_style="logrus",
        startup_logs=(
            "starting server on :{port}",
            "pod {pod} in {namespace} talks to {env:DB_ADDR}",
            '{"message": "ready", "severity": "debug", "build": "{{x}}"}',
        ),
    )
    sim.pod("web", [web(env=[{"name": "DB_ADDR", "value": "db:5432"}])])
    sim.run_until(running(sim, "web"), 60)
    lines = [json.loads(line) for line in sim.logs("web", "server")]
    assert [line["message"] for line in lines] == [
        "starting server on :8080",
        "pod web in demo talks to db:5432",
        "ready",
    ]
    assert lines[0]["severity"] == "info"
    assert lines[2]["severity"] == "debug"
    assert lines[2]["build"] == "{x}"
    assert lines[0]["timestamp"].startswith(sim.cluster.now_str()[:-1])


def test_unknown_image_logs_like_a_web_server_on_its_port(sim: KubeletSim) -> None:
    sim.pod("web", [web(image="example.org/whatever:2", ports=[{"containerPort": 3000}])])
    sim.run_until(running(sim, "web"), 60)
    assert sim.logs("web", "server") == ["listening on :3000"]


def test_qos_classes() -> None:
    sim = KubeletSim()
    guaranteed = {"limits": {"cpu": "500m", "memory": "128Mi"}}
    burstable = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    sim.pod("g", [web(resources=guaranteed)])
    sim.pod("b", [web(resources=burstable)])
    sim.pod("e", [web()])
    sim.advance(1)
    assert [sim.status(n)["qosClass"] for n in ("g", "b", "e")] == [
        "Guaranteed",
        "Burstable",
        "BestEffort",
    ]


def test_status_is_committed_only_when_it_changes(sim: KubeletSim) -> None:
    sim.profile(WEB, startup_seconds=1.0)
    sim.pod(
        "web",
        [web(readinessProbe={"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2})],
    )
    sim.run_until(lambda: sim.container("web")["ready"], 60)
    rv = sim.get("web")["metadata"]["resourceVersion"]
    sim.advance(120)  # sixty more successful probes
    assert sim.get("web")["metadata"]["resourceVersion"] == rv


# -- init containers ------------------------------------------------------------


BUSYBOX = "busybox:1.38.0"


def test_init_containers_run_in_order_before_the_app(sim: KubeletSim) -> None:
    sim.profile(BUSYBOX, startup_logs=("Frontend is reachable.",), startup_seconds=2.0)
    sim.pod(
        "lg",
        [web(name="main")],
        init=[
            {"name": "frontend-check", "image": BUSYBOX},
            {"name": "second", "image": "example.org/unknown-init:1"},
        ],
    )
    sim.advance(1)
    assert sim.state("lg", "main") == ("waiting", {"reason": "PodInitializing"})
    init = sim.container("lg", "frontend-check", init=True)
    assert init["state"] == {"waiting": {"reason": "PodInitializing"}}
    cond = sim.condition("lg", "Initialized")
    assert cond["status"] == "False"
    assert cond["reason"] == "ContainersNotInitialized"
    assert cond["message"] == "containers with incomplete status: [frontend-check second]"
    assert sim.status("lg")["phase"] == "Pending"

    sim.run_until(
        lambda: (
            sim.container("lg", "frontend-check", init=True)["state"].get("running") is not None
        ),
        60,
    )
    assert sim.state("lg", "main")[0] == "waiting"
    first_done = sim.run_until(
        lambda: "terminated" in sim.container("lg", "frontend-check", init=True)["state"], 10
    )
    term = sim.container("lg", "frontend-check", init=True)["state"]["terminated"]
    assert term["exitCode"] == 0
    assert term["reason"] == "Completed"
    assert sim.container("lg", "frontend-check", init=True)["ready"] is True
    assert sim.logs("lg", "frontend-check") == ["Frontend is reachable."]
    second_start = sim.run_until(
        lambda: "running" in sim.container("lg", "second", init=True)["state"], 60
    )
    assert second_start > first_done
    second_done = sim.run_until(
        lambda: "terminated" in sim.container("lg", "second", init=True)["state"], 10
    )
    # An unknown init image just succeeds after a couple of seconds, silently.
    assert second_done - second_start == 2
    assert sim.logs("lg", "second") == []
    main_start = sim.run_until(running(sim, "lg", "main"), 60)
    assert main_start > second_done
    assert sim.condition("lg", "Initialized")["status"] == "True"
    assert sim.status("lg")["phase"] == "Running"
    fields = [e["involvedObject"].get("fieldPath") for e in sim.events("lg", "Started")]
    assert fields == [
        "spec.initContainers{frontend-check}",
        "spec.initContainers{second}",
        "spec.containers{main}",
    ]


def test_failing_init_container_restarts_and_blocks_the_app(sim: KubeletSim) -> None:
    sim.profile(
        "example.org/migrate:1", start="crash-on-start", on_start_failure=("migration failed",)
    )
    sim.pod("app", [web()], init=[{"name": "migrate", "image": "example.org/migrate:1"}])
    sim.run_until(lambda: sim.container("app", "migrate", init=True)["restartCount"] >= 2, 120)
    st = sim.container("app", "migrate", init=True)
    assert st["lastState"]["terminated"]["exitCode"] == 1
    assert sim.state("app", "server") == ("waiting", {"reason": "PodInitializing"})
    assert sim.status("app")["phase"] == "Pending"


def test_failing_init_container_with_restart_policy_never_fails_the_pod(sim: KubeletSim) -> None:
    sim.profile("example.org/migrate:1", start="crash-on-start")
    sim.pod(
        "job",
        [web()],
        init=[{"name": "migrate", "image": "example.org/migrate:1"}],
        restartPolicy="Never",
    )
    sim.run_until(lambda: sim.status("job").get("phase") == "Failed", 60)
    assert sim.condition("job", "Ready")["reason"] == "PodFailed"
    term = sim.container("job", "migrate", init=True)["state"]["terminated"]
    assert term["exitCode"] == 1
    assert term["reason"] == "Error"
    rv = sim.get("job")["metadata"]["resourceVersion"]
    sim.advance(60)
    assert sim.get("job")["metadata"]["resourceVersion"] == rv


def test_sidecar_init_container_keeps_running(sim: KubeletSim) -> None:
    sim.pod(
        "mesh",
        [web()],
        init=[web(name="proxy", image="example.org/proxy:1", restartPolicy="Always")],
    )
    sim.run_until(running(sim, "mesh", "server"), 60)
    proxy = sim.container("mesh", "proxy", init=True)
    assert "running" in proxy["state"]
    assert proxy["ready"] is True
    assert sim.condition("mesh", "Ready")["status"] == "True"
    assert set(sim.runtime("mesh").containers) == {"proxy", "server"}


def test_same_seed_same_run() -> None:
    def run() -> list[tuple[str, str]]:
        sim = KubeletSim(seed=3)
        sim.profile("example.org/crash:1", start="crash-on-start")
        sim.pod("c", [web(image="example.org/crash:1")])
        sim.pod("w", [web()])
        sim.advance(200)
        return [(e["lastTimestamp"], e["message"]) for e in sim.events("c")] + [
            ("status", json.dumps(sim.status("c"), sort_keys=True))
        ]

    assert run() == run()
