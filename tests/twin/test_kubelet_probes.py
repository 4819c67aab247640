"""Probes: httpGet, tcpSocket, grpc and exec; readiness, liveness and startup semantics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.twin.test_kubelet import WEB, KubeletSim, running, web
from twin.runtime import Effect

Obj = dict[str, Any]
GRPC = "registry.example.com/grpc-svc:1"


@pytest.fixture
def sim() -> KubeletSim:
    s = KubeletSim()
    s.profile(WEB, startup_seconds=2.0)
    s.profile(GRPC, startup_seconds=2.0, protocol="grpc", port=9555)
    return s


def http(path: str = "/healthz", port: object = 8080, **fields: Any) -> Obj:
    return {"httpGet": {"path": path, "port": port}, **fields}


def ready(sim: KubeletSim, name: str) -> bool:
    return bool(sim.container(name)["ready"])


def unhealthy(sim: KubeletSim, name: str) -> list[tuple[str, str]]:
    return [(e["type"], e["message"]) for e in sim.events(name, "Unhealthy")]


# -- readiness ------------------------------------------------------------------


def test_readiness_waits_for_initial_delay_and_period(sim: KubeletSim) -> None:
    sim.pod("web", [web(readinessProbe=http(initialDelaySeconds=10, periodSeconds=10))])
    started = sim.run_until(running(sim, "web"), 60)
    sim.advance(9)
    assert not ready(sim, "web")
    assert sim.condition("web", "Ready")["message"] == "containers with unready status: [server]"
    became = sim.run_until(lambda: ready(sim, "web"), 30)
    assert became - started == 10
    assert sim.condition("web", "Ready")["status"] == "True"
    assert sim.condition("web", "ContainersReady")["status"] == "True"
    assert sim.runtime("web").containers["server"].ready is True
    assert unhealthy(sim, "web") == []


def test_readiness_probe_before_the_process_listens_is_refused(sim: KubeletSim) -> None:
    sim.profile(WEB, startup_seconds=8.0)
    sim.pod("web", [web(readinessProbe=http(periodSeconds=5))])
    sim.run_until(running(sim, "web"), 60)
    sim.run_until(lambda: bool(unhealthy(sim, "web")), 10)
    ip = sim.status("web")["podIP"]
    assert unhealthy(sim, "web") == [
        (
            "Warning",
            f'Readiness probe failed: Get "http://{ip}:8080/healthz": '
            f"dial tcp {ip}:8080: connect: connection refused",
        )
    ]
    event = sim.events("web", "Unhealthy")[0]
    assert event["involvedObject"]["fieldPath"] == "spec.containers{server}"
    assert event["source"] == {"component": "kubelet", "host": "node-1"}
    sim.run_until(lambda: ready(sim, "web"), 10)


def test_http_path_not_served_is_a_404(sim: KubeletSim) -> None:
    sim.pod("web", [web(readinessProbe=http("/health/deep", periodSeconds=5))])
    sim.run_until(running(sim, "web"), 60)
    sim.advance(30)
    assert not ready(sim, "web")
    assert unhealthy(sim, "web") == [
        ("Warning", "Readiness probe failed: HTTP probe failed with statuscode: 404")
    ]
    assert sim.events("web", "Unhealthy")[0]["count"] == 6
    assert sim.container("web")["restartCount"] == 0  # readiness never restarts


def test_wrong_port_is_connection_refused_and_named_ports_resolve(sim: KubeletSim) -> None:
    named = web(readinessProbe=http(port="http", periodSeconds=5))
    named["ports"] = [{"name": "http", "containerPort": 8080}]
    sim.pod("named", [named])
    sim.pod("wrong", [web(readinessProbe={"tcpSocket": {"port": 8081}, "periodSeconds": 5})])
    sim.run_until(lambda: ready(sim, "named"), 60)
    sim.run_until(lambda: bool(unhealthy(sim, "wrong")), 60)
    ip = sim.status("wrong")["podIP"]
    assert unhealthy(sim, "wrong")[0][1] == (
        f"Readiness probe failed: dial tcp {ip}:8081: connect: connection refused"
    )
    assert not ready(sim, "wrong")


def test_listening_port_falls_back_to_port_env_then_profile(sim: KubeletSim) -> None:
    sim.pod(
        "env",
        [
            {
                "name": "server",
                "image": WEB,
                "env": [{"name": "PORT", "value": "7000"}],
                "readinessProbe": {"tcpSocket": {"port": 7000}, "periodSeconds": 5},
            }
        ],
    )
    sim.pod(
        "prof",
        [
            {
                "name": "server",
                "image": GRPC,
                "readinessProbe": {"grpc": {"port": 9555}, "periodSeconds": 5},
            }
        ],
    )
    sim.run_until(lambda: ready(sim, "env") and ready(sim, "prof"), 60)


def test_slow_responses_time_out(sim: KubeletSim) -> None:
    sim.pod("web", [web(readinessProbe=http(periodSeconds=5, failureThreshold=2))])
    rpc_probe = {"grpc": {"port": 8080}, "periodSeconds": 5, "failureThreshold": 2}
    sim.pod("rpc", [web(image=GRPC, readinessProbe=rpc_probe)])
    sim.run_until(lambda: ready(sim, "web") and ready(sim, "rpc"), 60)
    sim.runtime("web").latency_ms = 1500.0  # over the default 1 s timeout
    sim.runtime("rpc").latency_ms = 1000.0
    sim.advance(5)
    assert ready(sim, "web")  # one failure of two
    sim.advance(5)
    assert not ready(sim, "web")
    assert not ready(sim, "rpc")
    web_ip = sim.status("web")["podIP"]
    rpc_ip = sim.status("rpc")["podIP"]
    assert unhealthy(sim, "web")[0][1] == (
        f'Readiness probe failed: Get "http://{web_ip}:8080/healthz": context deadline '
        "exceeded (Client.Timeout exceeded while awaiting headers)"
    )
    assert unhealthy(sim, "rpc")[0][1] == (
        f'Readiness probe failed: timeout: failed to connect service "{rpc_ip}:8080" within 1s'
    )
    sim.runtime("web").latency_ms = 999.0
    sim.advance(5)
    assert ready(sim, "web")


def test_a_hung_process_still_answers_probes(sim: KubeletSim) -> None:
    owner = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "db",
        "uid": "u-db",
        "controller": True,
    }
    sim.pod("db-0", [web(readinessProbe=http(periodSeconds=5))], owner=owner)
    sim.run_until(lambda: ready(sim, "db-0"), 60)
    prt = sim.runtime("db-0")
    assert prt.workload == ("StatefulSet", "db")
    sim.cluster.effects.append(
        Effect("hang", "demo", "db", started=sim.now, pod_uids=frozenset({prt.uid}))
    )
    prt.latency_ms = 30_000.0  # its request handlers hang
    sim.advance(60)
    assert ready(sim, "db-0")
    assert unhealthy(sim, "db-0") == []


def test_grpc_and_tcp_probes(sim: KubeletSim) -> None:
    sim.pod("grpc", [web(image=GRPC, readinessProbe={"grpc": {"port": 8080}, "periodSeconds": 5})])
    sim.pod("tcp", [web(readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 5})])
    sim.pod("mismatch", [web(image=GRPC, readinessProbe=http("/", periodSeconds=5))])
    sim.run_until(lambda: ready(sim, "grpc") and ready(sim, "tcp"), 60)
    sim.run_until(lambda: bool(unhealthy(sim, "mismatch")), 60)
    ip = sim.status("mismatch")["podIP"]
    assert unhealthy(sim, "mismatch")[0][1] == (
        f'Readiness probe failed: Get "http://{ip}:8080/": net/http: HTTP/1.x transport '
        "connection broken: malformed HTTP response "
        '"\\x00\\x00\\x06\\x04\\x00\\x00\\x00\\x00\\x00\\x00\\x05\\x00\\x00@\\x00"'
    )


def test_http_probes_against_other_protocols(sim: KubeletSim) -> None:
    sim.profile("example.org/kv:7", protocol="redis", startup_seconds=1.0)
    sim.profile("example.org/pg:16", protocol="postgres", startup_seconds=1.0)
    sim.pod("kv", [web(image="example.org/kv:7", readinessProbe=http("/", periodSeconds=5))])
    sim.pod("pg", [web(image="example.org/pg:16", readinessProbe=http("/", periodSeconds=5))])
    sim.run_until(lambda: bool(unhealthy(sim, "kv")) and bool(unhealthy(sim, "pg")), 60)
    kv_ip, pg_ip = sim.status("kv")["podIP"], sim.status("pg")["podIP"]
    assert unhealthy(sim, "kv")[0][1] == (
        f'Readiness probe failed: Get "http://{kv_ip}:8080/": net/http: HTTP/1.x transport '
        "connection broken: malformed HTTP response "
        "\"-ERR wrong number of arguments for 'get' command\""
    )
    assert unhealthy(sim, "pg")[0][1] == f'Readiness probe failed: Get "http://{pg_ip}:8080/": EOF'


def test_exec_probe_succeeds_while_the_process_serves(sim: KubeletSim) -> None:
    probe = {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 5}
    sim.pod("exec", [web(readinessProbe=probe)])
    sim.run_until(lambda: ready(sim, "exec"), 60)
    assert unhealthy(sim, "exec") == []


# -- liveness -----------------------------------------------------------------------


def test_liveness_failure_kills_and_restarts_the_container(sim: KubeletSim) -> None:
    sim.pod(
        "web",
        [web(livenessProbe=http("/nope", periodSeconds=5, failureThreshold=3))],
    )
    started = sim.run_until(running(sim, "web"), 60)
    killed = sim.run_until(lambda: sim.state("web")[0] == "terminated", 60)
    assert killed - started == 15  # failures at 5, 10, 15
    assert len(unhealthy(sim, "web")) == 1
    assert unhealthy(sim, "web")[0] == (
        "Warning",
        "Liveness probe failed: HTTP probe failed with statuscode: 404",
    )
    assert sim.events("web", "Unhealthy")[0]["count"] == 3
    killing = sim.events("web", "Killing")
    assert [(e["type"], e["message"]) for e in killing] == [
        ("Normal", "Container server failed liveness probe, will be restarted")
    ]
    term = sim.state("web")[1]
    assert (term["exitCode"], term["reason"]) == (137, "Error")
    sim.advance(1)
    assert sim.state("web")[0] == "running"
    assert sim.container("web")["restartCount"] == 1
    # The next kill goes into CrashLoopBackOff.
    sim.run_until(lambda: sim.state("web")[1].get("reason") == "CrashLoopBackOff", 60)


def test_liveness_waits_for_initial_delay(sim: KubeletSim) -> None:
    sim.pod(
        "web",
        [
            web(
                livenessProbe=http(
                    "/nope", initialDelaySeconds=30, periodSeconds=10, failureThreshold=1
                )
            )
        ],
    )
    started = sim.run_until(running(sim, "web"), 60)
    killed = sim.run_until(lambda: sim.state("web")[0] == "terminated", 60)
    assert killed - started == 30


def test_readiness_lost_and_regained(sim: KubeletSim) -> None:
    sim.pod(
        "web", [web(readinessProbe=http(periodSeconds=5, failureThreshold=3, successThreshold=2))]
    )
    sim.run_until(lambda: ready(sim, "web"), 60)
    sim.runtime("web").latency_ms = 5000.0
    lost = sim.now
    sim.run_until(lambda: not ready(sim, "web"), 30)
    assert sim.now - lost == 15
    assert sim.condition("web", "Ready")["status"] == "False"
    sim.runtime("web").latency_ms = 10.0
    back = sim.now
    sim.run_until(lambda: ready(sim, "web"), 30)
    assert sim.now - back == 10  # two successes in a row
    assert sim.status("web")["phase"] == "Running"


# -- startup ------------------------------------------------------------------------


def test_startup_probe_gates_liveness_and_readiness(sim: KubeletSim) -> None:
    sim.profile(WEB, startup_seconds=25.0)
    startup = http(periodSeconds=10, failureThreshold=5)
    sim.pod(
        "slow",
        [web(startupProbe=startup, livenessProbe=http(periodSeconds=5, failureThreshold=1))],
    )
    started = sim.run_until(running(sim, "slow"), 60)
    assert sim.container("slow")["started"] is False
    assert not ready(sim, "slow")
    passed = sim.run_until(lambda: sim.container("slow")["started"], 60)
    assert passed - started == 30  # failures at 10 and 20, success at 30
    assert ready(sim, "slow")
    assert [m for _, m in unhealthy(sim, "slow")] == [
        f'Startup probe failed: Get "http://{sim.status("slow")["podIP"]}:8080/healthz": '
        f"dial tcp {sim.status('slow')['podIP']}:8080: connect: connection refused"
    ]
    assert sim.container("slow")["restartCount"] == 0


def test_startup_probe_failure_restarts(sim: KubeletSim) -> None:
    sim.profile(WEB, startup_seconds=500.0)
    sim.pod("never", [web(startupProbe=http(periodSeconds=5, failureThreshold=2))])
    started = sim.run_until(running(sim, "never"), 60)
    killed = sim.run_until(lambda: sim.state("never")[0] == "terminated", 60)
    assert killed - started == 10
    assert sim.messages("never", "Killing") == [
        "Container server failed startup probe, will be restarted"
    ]
