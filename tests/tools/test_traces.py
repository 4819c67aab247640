"""The Jaeger trace source over HTTP, against recorded Jaeger query API responses.

The responses below have the shape Jaeger's query service returns (v1 HTTP
API: /api/services, /api/services/{s}/operations, /api/traces,
/api/dependencies); a small loopback server replays them and records the
queries it was sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.tools.twinworld import World
from tools.connection import connect
from tools.errors import BackendUnavailable
from tools.registry import Toolbox
from tools.traces import JaegerTraceSource

T0 = 1_783_738_800_000_000  # microseconds


def _span(
    span_id: str,
    parent: str | None,
    process: str,
    op: str,
    start: int,
    dur: int,
    tags: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "traceID": "4bf92f3577b34da6",
        "spanID": span_id,
        "operationName": op,
        "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6", "spanID": parent}]
        if parent
        else [],
        "startTime": T0 + start,
        "duration": dur,
        "tags": tags,
        "logs": [],
        "processID": process,
        "warnings": None,
    }


TRACE = {
    "traceID": "4bf92f3577b34da6",
    "spans": [
        _span(
            "a1",
            None,
            "p1",
            "GET /cart",
            0,
            250_000,
            [
                {"key": "http.status_code", "type": "int64", "value": 500},
                {"key": "error", "type": "bool", "value": True},
            ],
        ),
        _span(
            "b2",
            "a1",
            "p2",
            "hipstershop.CartService/GetCart",
            2_000,
            240_000,
            [
                {"key": "rpc.grpc.status_code", "type": "int64", "value": 14},
                {"key": "error", "type": "bool", "value": True},
            ],
        ),
        {
            **_span(
                "c3",
                "b2",
                "p2",
                "GET",
                3_000,
                1_000,
                [
                    {"key": "span.kind", "type": "string", "value": "client"},
                    {"key": "net.peer.name", "type": "string", "value": "redis-cart"},
                    {"key": "error", "type": "bool", "value": True},
                ],
            ),
            # The error message as OpenTelemetry exporters put it: an event on the span.
            "logs": [
                {
                    "timestamp": T0 + 4_000,
                    "fields": [
                        {"key": "event", "type": "string", "value": "error"},
                        {
                            "key": "message",
                            "type": "string",
                            "value": "dial tcp 10.0.3.7:6379: connect: connection refused",
                        },
                    ],
                }
            ],
        },
        _span(
            "d4",
            "a1",
            "p4",
            "hipstershop.CurrencyService/Convert",
            1_000,
            800,
            [{"key": "rpc.grpc.status_code", "type": "int64", "value": 0}],
        ),
    ],
    "processes": {
        "p1": {"serviceName": "frontend", "tags": []},
        "p2": {"serviceName": "cartservice", "tags": []},
        "p3": {"serviceName": "redis-cart", "tags": []},
        "p4": {"serviceName": "currencyservice", "tags": []},
    },
    "warnings": None,
}
DEPENDENCIES = [
    {"parent": "frontend", "child": "cartservice", "callCount": 1200},
    {"parent": "cartservice", "child": "redis-cart", "callCount": 1180},
    {"parent": "frontend", "child": "currencyservice", "callCount": 900},
]


class Recorded:
    def __init__(self) -> None:
        self.queries: list[tuple[str, dict[str, list[str]]]] = []

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        self.queries.append((path, query))
        if path == "/api/services":
            return 200, {
                "data": ["cartservice", "currencyservice", "frontend", "redis-cart"],
                "total": 4,
                "limit": 0,
                "offset": 0,
                "errors": None,
            }
        if path == "/api/services/cartservice/operations":
            return 200, {
                "data": ["hipstershop.CartService/GetCart", "hipstershop.CartService/AddItem"],
                "total": 2,
                "limit": 0,
                "offset": 0,
                "errors": None,
            }
        if path == "/api/traces":
            if "service" not in query:
                return 400, {
                    "data": None,
                    "total": 0,
                    "limit": 0,
                    "offset": 0,
                    "errors": [{"code": 400, "msg": "parameter 'service' is required"}],
                }
            return 200, {"data": [TRACE], "total": 1, "limit": 0, "offset": 0, "errors": None}
        if path == "/api/dependencies":
            return 200, {"data": DEPENDENCIES, "total": 3, "limit": 0, "offset": 0, "errors": None}
        return 404, {"data": None, "errors": [{"code": 404, "msg": "404 page not found"}]}


@pytest.fixture(scope="module")
def jaeger() -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            status, body = recorded.answer(parts.path, parse_qs(parts.query))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    server.shutdown()
    server.server_close()
    thread.join()


def test_services_operations_and_trace_summaries(jaeger: tuple[str, Recorded]) -> None:
    url, recorded = jaeger
    now = datetime.fromtimestamp(T0 / 1e6 + 60, UTC)
    with JaegerTraceSource(url, clock=lambda: now) as source:
        assert source.services() == ["cartservice", "currencyservice", "frontend", "redis-cart"]
        assert "hipstershop.CartService/GetCart" in source.operations("cartservice")
        traces = source.traces("frontend", errors_only=True, limit=5)
    path, query = recorded.queries[-1]
    assert path == "/api/traces"
    assert query["tags"] == ['{"error": "true"}']
    assert query["end"] == [str(int(now.timestamp() * 1e6))]
    trace = traces[0]
    assert trace.root_service == "frontend"
    assert trace.root_operation == "GET /cart"
    assert trace.duration_ms == 250.0
    assert trace.services == ["cartservice", "currencyservice", "frontend"]
    assert [s.service for s in trace.error_spans] == ["frontend", "cartservice", "cartservice"]
    deepest = trace.error_spans[-1]
    assert deepest.parent_id == "b2"
    assert deepest.kind == "client"
    assert deepest.peer == "redis-cart"
    assert deepest.status == "dial tcp 10.0.3.7:6379: connect: connection refused"


def test_trace_tools_and_errors(jaeger: tuple[str, Recorded]) -> None:
    url, _recorded = jaeger
    with JaegerTraceSource(url) as source:
        box = Toolbox(traces=source)
        found = box.call("find_traces", {"service": "frontend"})
        assert found.status == "success"
        assert found.data[0]["error_spans"][2]["peer"] == "redis-cart"
        deps = box.call("trace_dependencies", {"minutes": 30})
        assert {(d["parent"], d["child"]) for d in deps.data} >= {("cartservice", "redis-cart")}
        services = box.call("list_trace_services", {})
        assert "frontend" in services.data
        bad = box.call("find_traces", {"service": "front end"})
        assert bad.error_kind == "InvalidArguments"
    with (
        JaegerTraceSource("http://127.0.0.1:1", timeout=1.0) as down,
        pytest.raises(BackendUnavailable),
    ):
        down.services()
    missing = Toolbox().call("find_traces", {"service": "frontend"})
    assert missing.error_kind == "BackendUnavailable"


def test_service_graph_merges_trace_edges(jaeger: tuple[str, Recorded], world: World) -> None:
    url, _recorded = jaeger
    conn = connect(world.kubeconfig)
    with JaegerTraceSource(url) as source:
        result = Toolbox(cluster=conn, traces=source).call("service_graph", {"namespace": "shop"})
    conn.close()
    edges = {(e["from"], e["to"]): e for e in result.data["edges"]}
    both = edges[("Deployment/shop/frontend", "Service/shop/cartservice")]
    assert both["sources"] == ["env", "trace"]
    assert both["trace_calls"] == 1200
    traced = edges[("Deployment/shop/cartservice", "Service/shop/redis-cart")]
    assert traced["sources"] == ["trace"]
    assert "trace_edges_missing" not in result.data
