"""Pod logs through the official client: capped in lines and bytes, redacted, fast."""

from __future__ import annotations

from datetime import timedelta

from tests.tools.bench_tools import LINES, bench_logs, seed_lines
from tests.tools.twinworld import World
from tools.logs import MAX_LINE_CHARS
from tools.registry import Toolbox

SECRET_LINES = [
    "GET /cart Authorization: Bearer abcdefghijklmnop.qrstuv-token",
    "connecting to postgres://app:s3cr3t-pw@db.shop:5432/cart",
    'config loaded {"db_password": "hunter2", "user": "app"}',
    "aws key AKIAIOSFODNN7EXAMPLE in use",
    "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl refreshed",
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEAxyz",
    "-----END RSA PRIVATE KEY-----",
    "api_key=sk-live-1234567890abcdef ok",
    "request served in 12ms",
]
SECRETS = [
    "abcdefghijklmnop",
    "s3cr3t-pw",
    "hunter2",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGci",
    "MIIEowIBAAKCAQEAxyz",
    "sk-live-1234567890abcdef",
]


def _seed(world: World, pod: str, lines: list[str], age: float = 0.0) -> None:
    cluster = world.cluster
    uid = cluster.store.get(cluster.rt("Pod"), "shop", pod)["metadata"]["uid"]
    ts = cluster.clock.now() - timedelta(seconds=age)
    with cluster.lock:
        for line in lines:
            cluster.logs.append(uid, "server", ts, line)


def test_logs_are_redacted(fresh_world: World) -> None:
    from tools.connection import connect

    _seed(fresh_world, fresh_world.healthy_pod, SECRET_LINES)
    conn = connect(fresh_world.kubeconfig)
    result = Toolbox(cluster=conn).call(
        "get_pod_logs", {"namespace": "shop", "pod": fresh_world.healthy_pod}
    )
    conn.close()
    assert result.status == "success"
    text = "\n".join(result.data["lines"])
    for secret in SECRETS:
        assert secret not in text, secret
    assert result.data["redactions"] >= 8
    assert result.data["lines"][-1] == "request served in 12ms"
    assert "postgres://app:[REDACTED]@db.shop:5432/cart" in text
    assert result.data["container"] == "server"
    assert not result.truncated


def test_tail_since_and_caps(fresh_world: World) -> None:
    from tools.connection import connect

    pod = fresh_world.healthy_pod
    _seed(fresh_world, pod, [f"old line {i}" for i in range(50)], age=3600)
    _seed(fresh_world, pod, [f"new line {i}" for i in range(50)] + ["x" * (MAX_LINE_CHARS + 500)])
    conn = connect(fresh_world.kubeconfig)
    box = Toolbox(cluster=conn)
    tail = box.call("get_pod_logs", {"namespace": "shop", "pod": pod, "tail_lines": 3})
    assert tail.data["lines"][:2] == ["new line 48", "new line 49"]
    assert [t.what for t in tail.truncations] == ["line length"]
    assert "chars cut" in tail.data["lines"][-1]
    recent = box.call("get_pod_logs", {"namespace": "shop", "pod": pod, "since_seconds": 600})
    assert recent.data["line_count"] == 51
    assert all(not line.startswith("old") for line in recent.data["lines"])
    lines_cap = box.call("get_pod_logs", {"namespace": "shop", "pod": pod, "max_lines": 10})
    assert lines_cap.data["line_count"] == 10
    cut = next(t for t in lines_cap.truncations if t.what == "lines")
    assert cut.limit == 10
    assert "more than 10 lines" in cut.note
    bytes_cap = box.call(
        "get_pod_logs", {"namespace": "shop", "pod": pod, "max_bytes": 300, "tail_lines": 40}
    )
    byte_cut = next(t for t in bytes_cap.truncations if t.what == "bytes")
    assert byte_cut.limit == 300
    assert sum(len(x) + 1 for x in bytes_cap.data["lines"]) <= 300
    assert bytes_cap.data["lines"][-1].startswith("xxxx")
    conn.close()


def test_previous_container(fresh_world: World, box: Toolbox) -> None:
    from tools.connection import connect

    conn = connect(fresh_world.kubeconfig)
    own = Toolbox(cluster=conn)
    missing = own.call(
        "get_pod_logs", {"namespace": "shop", "pod": fresh_world.healthy_pod, "previous": True}
    )
    assert missing.status == "error"
    assert missing.error_kind == "Invalid"
    assert "previous terminated container" in (missing.error or "")
    cluster = fresh_world.cluster
    uid = cluster.store.get(cluster.rt("Pod"), "shop", fresh_world.crashing_pod)["metadata"]["uid"]
    with cluster.lock:
        cluster.logs.append(uid, "server", cluster.clock.now(), "panic: out of memory")
    crashed = own.call(
        "get_pod_logs", {"namespace": "shop", "pod": fresh_world.crashing_pod, "previous": True}
    )
    assert crashed.status == "success"
    assert crashed.data["previous"] is True
    assert crashed.data["lines"] == ["panic: out of memory"]
    assert "previous=true" in (crashed.query or "")
    conn.close()


def test_hundred_thousand_lines_come_back_capped() -> None:
    figures = bench_logs(repeat=1)
    assert figures["lines_in_container"] == LINES
    assert figures["lines_returned"] == 200
    assert figures["truncated"] is True
    assert figures["caps"][0]["what"] == "lines"
    assert figures["caps"][0]["limit"] == 200


def test_seed_helper_writes_where_the_api_reads(fresh_world: World) -> None:
    from tools.connection import connect

    seed_lines(fresh_world, fresh_world.healthy_pod, 5)
    conn = connect(fresh_world.kubeconfig)
    result = Toolbox(cluster=conn).call(
        "get_pod_logs", {"namespace": "shop", "pod": fresh_world.healthy_pod, "timestamps": True}
    )
    conn.close()
    assert result.data["line_count"] == 5
    assert result.data["lines"][0].startswith("2026-")
    assert '"seq":4' in result.data["lines"][-1]
