"""Telemetry over real HTTP: /metrics, the Prometheus API subset and Jaeger's query API."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web

from twin.cluster import Cluster
from twin.runtime import Effect
from twin.telemetry import ISTIO_BUCKETS, Telemetry
from twin.telemetry_http import add_routes
from twin.telemetry_promql import QueryError, parse, parse_duration

from .test_traffic_support import pods_of, runtime_of, shop_world, stop_pod, sync_endpoints

Obj = dict[str, Any]


@contextmanager
def serve(cluster: Cluster) -> Iterator[httpx.Client]:
    """A real aiohttp server on 127.0.0.1 with only the telemetry routes, and a client for it."""
    app = web.Application()
    add_routes(app, cluster)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{state['port']}", timeout=30) as client:
            yield client
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Cluster, httpx.Client]]:
    cluster, _traffic = shop_world(seed=21)
    cluster.advance(120)
    (redis,) = pods_of(cluster, "redis-cart")
    stop_pod(cluster, redis)
    sync_endpoints(cluster)
    cluster.advance(60)
    with serve(cluster) as client:
        yield cluster, client


def prom(client: httpx.Client, path: str, **params: Any) -> Any:
    r = client.get(f"/prometheus/api/v1/{path}", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    return body["data"]


def metric_lines(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        got: dict[str, str] = {}
        if "{" in head:
            body = head[head.index("{") + 1 : -1]
            for part in body.split('",'):
                k, _, v = part.partition('="')
                got[k] = v.rstrip('"')
        if all(got.get(k) == v for k, v in labels.items()):
            out.append((got, float(value)))
    return out


def test_metrics_exposition(world: tuple[Cluster, httpx.Client]) -> None:
    cluster, client = world
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert "# TYPE container_memory_working_set_bytes gauge" in text
    assert "# TYPE istio_request_duration_milliseconds histogram" in text
    assert "# TYPE kube_pod_container_status_restarts_total counter" in text
    (frontend,) = runtime_of(cluster, "frontend")
    ((labels, memory),) = metric_lines(
        text, "container_memory_working_set_bytes", pod=frontend.name, container="server"
    )
    assert labels["namespace"] == "shop"
    assert labels["image"].endswith("/frontend:v0.10.6")
    assert labels["job"] == "kubelet"
    assert memory == round(frontend.containers["server"].memory)
    ((_l, limit),) = metric_lines(text, "container_spec_memory_limit_bytes", pod=frontend.name)
    assert limit == 128 * 2**20
    ((_l, cpu_limit),) = metric_lines(
        text, "kube_pod_container_resource_limits", pod=frontend.name, resource="cpu"
    )
    assert cpu_limit == 0.2
    assert metric_lines(text, "kube_pod_container_resource_limits", resource="memory", unit="byte")
    ((_l, restarts),) = metric_lines(
        text, "kube_pod_container_status_restarts_total", pod=frontend.name
    )
    assert restarts == 0
    ((_l, replicas),) = metric_lines(text, "kube_deployment_spec_replicas", deployment="frontend")
    assert replicas == 1
    ready = metric_lines(text, "kube_node_status_condition", node="node-1", condition="Ready")
    assert {lab["status"]: v for lab, v in ready} == {"true": 1.0, "false": 0.0, "unknown": 0.0}
    entry = metric_lines(
        text,
        "istio_requests_total",
        reporter="destination",
        source_workload="loadgenerator",
        destination_service_name="frontend",
        response_code="200",
    )
    assert entry
    assert entry[0][1] > 0
    assert entry[0][0]["destination_workload"] == "frontend"
    assert entry[0][0]["request_protocol"] == "http"


def test_histograms_are_cumulative(world: tuple[Cluster, httpx.Client]) -> None:
    _cluster, client = world
    text = client.get("/metrics").text
    buckets = metric_lines(
        text,
        "istio_request_duration_milliseconds_bucket",
        reporter="source",
        destination_service_name="productcatalogservice",
        source_workload="frontend",
    )
    assert len(buckets) == len(ISTIO_BUCKETS) + 1
    by_le = sorted(buckets, key=lambda b: math.inf if b[0]["le"] == "+Inf" else float(b[0]["le"]))
    counts = [v for _l, v in by_le]
    assert counts == sorted(counts)
    ((_l, total),) = metric_lines(
        text,
        "istio_request_duration_milliseconds_count",
        reporter="source",
        destination_service_name="productcatalogservice",
        source_workload="frontend",
    )
    assert counts[-1] == total
    # Most catalog calls answer within 5 ms.
    assert dict((b[0]["le"], b[1]) for b in by_le)["5"] > 0.9 * total


def test_mesh_metrics_show_the_failure(world: tuple[Cluster, httpx.Client]) -> None:
    _cluster, client = world
    text = client.get("/metrics").text
    cart = metric_lines(
        text,
        "istio_requests_total",
        reporter="destination",
        source_workload="frontend",
        destination_service_name="cartservice",
    )
    statuses = {lab["grpc_response_status"]: v for lab, v in cart if v > 0}
    assert "9" in statuses  # FailedPrecondition
    assert all(lab["response_code"] == "200" for lab, _v in cart)
    entry = metric_lines(
        text, "istio_requests_total", destination_service_name="frontend", response_code="500"
    )
    assert entry
    assert entry[0][1] > 100
    refused = metric_lines(
        text,
        "istio_tcp_connections_opened_total",
        source_workload="cartservice",
        destination_service_name="redis-cart",
        response_flags="UF",
    )
    assert refused
    assert refused[0][1] > 0
    assert refused[0][0]["reporter"] == "source"
    assert refused[0][0]["destination_workload"] == "unknown"


def test_instant_query(world: tuple[Cluster, httpx.Client]) -> None:
    cluster, client = world
    (frontend,) = runtime_of(cluster, "frontend")
    data = prom(
        client,
        "query",
        query='container_memory_working_set_bytes{namespace="shop",pod=~"frontend-.*",container!="POD"}',
    )
    assert data["resultType"] == "vector"
    (result,) = data["result"]
    assert result["metric"]["__name__"] == "container_memory_working_set_bytes"
    assert result["metric"]["pod"] == frontend.name
    ts, value = result["value"]
    assert ts == pytest.approx(cluster.clock.now().timestamp())
    assert float(value) == pytest.approx(frontend.containers["server"].memory, rel=0.05)
    at = cluster.clock.now().timestamp() - 120
    older = prom(client, "query", query="kube_deployment_spec_replicas", time=str(at))
    assert {r["metric"]["deployment"] for r in older["result"]} >= {"frontend", "redis-cart"}
    assert all(r["value"][0] == pytest.approx(at) for r in older["result"])
    nothing = prom(client, "query", query='up{job="nope"}')
    assert nothing == {"resultType": "vector", "result": []}


def test_range_selector_returns_a_matrix(world: tuple[Cluster, httpx.Client]) -> None:
    _cluster, client = world
    data = prom(
        client,
        "query",
        query='container_cpu_usage_seconds_total{pod=~"cartservice-.*"}[1m]',
    )
    assert data["resultType"] == "matrix"
    (result,) = data["result"]
    samples = result["values"]
    assert len(samples) == 4  # scraped every 15 s
    times = [t for t, _v in samples]
    assert [b - a for a, b in itertools.pairwise(times)] == [15, 15, 15]
    values = [float(v) for _t, v in samples]
    assert values == sorted(values)  # a counter


def test_query_range(world: tuple[Cluster, httpx.Client]) -> None:
    cluster, client = world
    end = cluster.clock.now().timestamp()
    start = end - 150
    ok = prom(
        client,
        "query_range",
        query='istio_requests_total{reporter="destination",destination_service_name="frontend",'
        'response_code="200"}',
        start=str(start),
        end=str(end),
        step="30s",
    )
    assert ok["resultType"] == "matrix"
    (result,) = ok["result"]
    assert [t for t, _v in result["values"]] == [start + 30 * i for i in range(6)]
    counts = [float(v) for _t, v in result["values"]]
    assert counts == sorted(counts)
    # The 500s only exist since redis went away, a minute ago.
    failed = prom(
        client,
        "query_range",
        query='istio_requests_total{reporter="destination",destination_service_name="frontend",'
        'response_code="500"}',
        start=str(start),
        end=str(end),
        step="30s",
    )
    (series_500,) = failed["result"]
    times = [t for t, _v in series_500["values"]]
    assert times[0] >= end - 60
    assert times[-1] == end
    iso = prom(
        client,
        "query_range",
        query="kube_deployment_spec_replicas",
        start=cluster.clock.at(cluster.elapsed - 60).isoformat().replace("+00:00", "Z"),
        end=cluster.clock.now().isoformat().replace("+00:00", "Z"),
        step="1m",
    )
    assert all(len(r["values"]) == 2 for r in iso["result"])


def test_query_range_reads_each_step_as_an_instant_query_would(
    world: tuple[Cluster, httpx.Client],
) -> None:
    """range_query reads series x steps in one pass; every point must be value_at's answer,
    including steps before a series began, between scrapes, and a series gone stale."""
    cluster, client = world
    tel = cluster.telemetry
    assert isinstance(tel, Telemetry)
    end = cluster.clock.now().timestamp()
    start = end - 500  # before the world began: the first steps have no scrape at all
    step = 7.0
    data = prom(
        client,
        "query_range",
        query='istio_requests_total{reporter="destination"}',
        start=str(start),
        end=str(end),
        step="7s",
    )
    got = {
        tuple(sorted(r["metric"].items())): {float(t): float(v) for t, v in r["values"]}
        for r in data["result"]
    }
    steps = [start + step * i for i in range(int((end - start) // step) + 1)]
    want: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    for key in tel.by_name["istio_requests_total"]:
        s = tel.series[key]
        if dict(s.labels).get("reporter") != "destination":
            continue
        points = {}
        for t in steps:
            v = tel.value_at(s, t, 300.0)
            if v is not None:
                points[round(t, 3)] = v
        if points:
            want[tuple(sorted({"__name__": s.name, **dict(s.labels)}.items()))] = points
    assert len(want) > 5
    assert got == want


def test_series_labels_and_values(world: tuple[Cluster, httpx.Client]) -> None:
    _cluster, client = world
    found = prom(
        client, "series", **{"match[]": 'kube_deployment_spec_replicas{deployment="cartservice"}'}
    )
    assert found == [
        {
            "__name__": "kube_deployment_spec_replicas",
            "deployment": "cartservice",
            "job": "kube-state-metrics",
            "namespace": "shop",
        }
    ]
    names = prom(client, "labels")
    assert {"__name__", "namespace", "pod", "destination_service_name", "le"} <= set(names)
    assert names == sorted(names)
    metrics = prom(client, "label/__name__/values")
    assert {
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_spec_memory_limit_bytes",
        "kube_pod_container_resource_limits",
        "kube_pod_container_status_restarts_total",
        "kube_pod_status_ready",
        "kube_deployment_status_replicas_available",
        "kube_deployment_spec_replicas",
        "kube_node_status_condition",
        "istio_requests_total",
        "istio_request_duration_milliseconds_bucket",
        "istio_request_duration_milliseconds_sum",
        "istio_request_duration_milliseconds_count",
        "istio_tcp_sent_bytes_total",
    } <= set(metrics)
    services = prom(
        client, "label/destination_service_name/values", **{"match[]": "istio_requests_total"}
    )
    assert {"frontend", "cartservice", "currencyservice", "productcatalogservice"} <= set(services)
    posted = client.post(
        "/prometheus/api/v1/query",
        data={"query": 'kube_deployment_spec_replicas{deployment="frontend"}'},
    ).json()
    assert posted["status"] == "success"
    assert len(posted["data"]["result"]) == 1


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("rate(istio_requests_total[5m])", "the function rate()"),
        ("sum by (pod) (container_memory_working_set_bytes)", "the aggregation sum()"),
        ("sum(container_memory_working_set_bytes)", "the aggregation sum()"),
        ("container_memory_working_set_bytes / container_spec_memory_limit_bytes", "operator '/'"),
        ("container_memory_working_set_bytes offset 5m", "the modifier 'offset'"),
        ("container_memory_working_set_bytes[5m:1m]", "a subquery"),
        (
            "histogram_quantile(0.99, istio_request_duration_milliseconds_bucket)",
            "histogram_quantile()",
        ),
    ],
)
def test_anything_beyond_selectors_is_bad_data(
    world: tuple[Cluster, httpx.Client], query: str, found: str
) -> None:
    _cluster, client = world
    r = client.get("/prometheus/api/v1/query", params={"query": query})
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"
    assert found in body["error"]
    assert "plain vector selectors" in body["error"]


def test_query_errors(world: tuple[Cluster, httpx.Client]) -> None:
    cluster, client = world
    now = cluster.clock.now().timestamp()
    r = client.get(
        "/prometheus/api/v1/query_range",
        params={"query": "kube_pod_status_ready", "start": now - 86400, "end": now, "step": "1s"},
    )
    assert r.status_code == 400
    assert "exceeded maximum resolution of 11,000 points per timeseries" in r.json()["error"]
    r = client.get(
        "/prometheus/api/v1/query_range",
        params={"query": "kube_pod_status_ready[5m]", "start": now - 60, "end": now, "step": "15"},
    )
    assert 'invalid expression type "range vector" for range query' in r.json()["error"]
    r = client.get("/prometheus/api/v1/query", params={"query": '{job=~".*"}'})
    assert r.json()["error"] == "vector selector must contain at least one non-empty matcher"
    r = client.get("/prometheus/api/v1/query", params={"query": 'x{a="b"'})
    assert r.status_code == 400
    r = client.get("/prometheus/api/v1/series")
    assert r.json()["error"] == "no match[] parameter provided"


def test_selector_parser() -> None:
    sel = parse('m{a="x", b!="y",c=~"z.*",d!~\'w\'}[90s]')
    assert sel.name == "m"
    assert sel.range == 90
    assert sel.matches({"__name__": "m", "a": "x", "b": "q", "c": "zz", "d": "v"})
    assert not sel.matches({"__name__": "m", "a": "x", "b": "y", "c": "zz"})
    assert not sel.matches({"__name__": "m", "a": "x", "c": "az"})  # anchored
    assert parse('{__name__="up"}').name == "up"
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2.5") == 2.5
    with pytest.raises(QueryError, match="invalid duration"):
        parse_duration("5 minutes")


def test_jaeger_services_and_operations(world: tuple[Cluster, httpx.Client]) -> None:
    _cluster, client = world
    body = client.get("/jaeger/api/services").json()
    assert body["errors"] is None
    assert {"frontend", "cartservice", "checkoutservice", "productcatalogservice"} <= set(
        body["data"]
    )
    assert body["total"] == len(body["data"])
    ops = client.get("/jaeger/api/services/frontend/operations").json()["data"]
    assert {"GET /", "GET /product/{id}", "POST /cart/checkout"} <= set(ops)
    assert "hipstershop.CartService/GetCart" in ops  # the client span
    kinds = client.get(
        "/jaeger/api/operations", params={"service": "cartservice", "spanKind": "server"}
    ).json()
    assert {"name": "hipstershop.CartService/GetCart", "spanKind": "server"} in kinds["data"]


def _check_trace_shape(trace: Obj) -> None:
    assert set(trace) >= {"traceID", "spans", "processes"}
    ids = {s["spanID"] for s in trace["spans"]}
    roots = [s for s in trace["spans"] if not s["references"]]
    assert len(roots) == 1
    for span in trace["spans"]:
        assert set(span) >= {
            "traceID",
            "spanID",
            "operationName",
            "references",
            "startTime",
            "duration",
            "tags",
            "logs",
            "processID",
            "warnings",
        }
        assert span["traceID"] == trace["traceID"]
        assert span["processID"] in trace["processes"]
        assert isinstance(span["startTime"], int)
        assert span["duration"] >= 1
        for ref in span["references"]:
            assert ref["refType"] == "CHILD_OF"
            assert ref["spanID"] in ids
    for process in trace["processes"].values():
        assert set(process) == {"serviceName", "tags"}


def test_jaeger_traces_follow_the_call_path(world: tuple[Cluster, httpx.Client]) -> None:
    cluster, client = world
    body = client.get("/jaeger/api/traces", params={"service": "frontend", "limit": 5}).json()
    assert body["errors"] is None
    traces = body["data"]
    assert len(traces) == 5
    for trace in traces:
        _check_trace_shape(trace)
    starts = [min(s["startTime"] for s in t["spans"]) for t in traces]
    assert starts == sorted(starts, reverse=True)
    now_us = cluster.clock.now().timestamp() * 1e6
    assert all(now_us - 60e6 < s <= now_us for s in starts)
    # A failing checkout: frontend -> checkoutservice -> cartservice -> redis (refused).
    found = client.get(
        "/jaeger/api/traces",
        params={
            "service": "frontend",
            "operation": "POST /cart/checkout",
            "tags": json.dumps({"error": "true"}),
        },
    ).json()["data"]
    assert found
    trace = found[0]
    procs = trace["processes"]
    by_service: dict[str, list[Obj]] = {}
    for span in trace["spans"]:
        by_service.setdefault(procs[span["processID"]]["serviceName"], []).append(span)
    assert {"frontend", "checkoutservice", "cartservice"} <= set(by_service)
    redis_calls = [s for s in by_service["cartservice"] if s["operationName"] in ("HMGET", "HSET")]
    assert redis_calls
    messages = [
        f["value"]
        for s in redis_calls
        for log in s["logs"]
        for f in log["fields"]
        if f["key"] == "message"
    ]
    assert any("connect: connection refused" in m for m in messages)
    root = next(s for s in trace["spans"] if not s["references"])
    tags = {t["key"]: t["value"] for t in root["tags"]}
    assert tags["span.kind"] == "server"
    assert tags["http.status_code"] == 500
    assert tags["error"] is True
    by_id = client.get(f"/jaeger/api/traces/{trace['traceID']}").json()
    assert by_id["data"] == [trace]


def test_jaeger_search_filters_and_errors(world: tuple[Cluster, httpx.Client]) -> None:
    _cluster, client = world
    slow = client.get(
        "/jaeger/api/traces", params={"service": "frontend", "minDuration": "10s", "limit": 50}
    ).json()["data"]
    assert slow == []
    fast = client.get(
        "/jaeger/api/traces", params={"service": "frontend", "maxDuration": "1s", "limit": 3}
    ).json()["data"]
    assert len(fast) == 3
    r = client.get("/jaeger/api/traces", params={"limit": 3})
    assert r.status_code == 400
    assert r.json()["errors"] == [{"code": 400, "msg": "parameter 'service' is required"}]
    r = client.get("/jaeger/api/traces/00000000000000000000000000000bad")
    assert r.status_code == 404
    assert r.json()["errors"] == [{"code": 404, "msg": "trace not found"}]
    deps = client.get("/jaeger/api/dependencies", params={"lookback": 3_600_000}).json()["data"]
    links = {(d["parent"], d["child"]) for d in deps}
    assert {("frontend", "cartservice"), ("checkoutservice", "paymentservice")} <= links
    assert all(d["callCount"] > 0 for d in deps)


def test_nothing_served_reveals_hidden_state() -> None:
    cluster, _traffic = shop_world(seed=8)
    cluster.advance(20)
    (cart,) = pods_of(cluster, "cartservice")
    cluster.effects.append(
        Effect("hang", "shop", "cartservice", pod_uids=frozenset({cart["metadata"]["uid"]}))
    )
    cluster.advance(30)
    with serve(cluster) as client:
        text = client.get("/metrics").text
        traces = client.get("/jaeger/api/traces", params={"service": "frontend", "limit": 50}).text
    for word in ("hang", "effect", "truth", "fault"):
        assert word not in text
        assert word not in traces
    assert "context deadline exceeded" in traces


def test_history_and_traces_are_bounded() -> None:
    cluster, traffic = shop_world(seed=4)
    small = Telemetry(history_seconds=60, max_traces=25)
    cluster.telemetry = small
    traffic.telemetry = small
    cluster.advance(900)
    assert len(small.times) == 4
    assert small.times[-1] - small.times[0] == 45
    assert small.times[-1] > cluster.clock.at(cluster.elapsed - 15).timestamp()
    # Old samples are trimmed in batches (every 40 scrapes).
    assert all(len(s.values) <= 4 + 40 for s in small.series.values())
    data = small.samples_between(next(iter(small.series.values())), 0, 1e12)
    assert len(data) <= 4
    assert len(small.traces.seeds) == 25
    assert len(small.traces.by_id) == 25


def test_service_window() -> None:
    cluster, _traffic = shop_world(seed=6)
    cluster.advance(60)
    tel = cluster.telemetry
    rps, errors, p99 = tel.service_window("shop", "cartservice", 30)
    assert rps == pytest.approx(38.26, rel=0.01)
    assert errors == 0.0
    assert 2 < p99 < 20
    assert tel.service_window("shop", "nothing-here", 30) is None
    (redis,) = pods_of(cluster, "redis-cart")
    stop_pod(cluster, redis)
    cluster.advance(30)
    assert tel.service_window("shop", "cartservice", 10)[1] == pytest.approx(1.0)
    # A window reaching back before the outage mixes both.
    assert 0.2 < tel.service_window("shop", "cartservice", 60)[1] < 0.8


def test_routes_mount_on_the_api_server() -> None:
    apiserver = pytest.importorskip(
        "twin.apiserver", reason="the API server helper is not there yet"
    )
    cluster, _traffic = shop_world(seed=2)
    cluster.advance(30)
    with (
        apiserver.serve_in_thread(
            cluster, extra_routes=[lambda app: add_routes(app, cluster)]
        ) as handle,
        httpx.Client(base_url=handle.url, timeout=30) as client,
    ):
        data = client.get(
            "/prometheus/api/v1/query", params={"query": "kube_deployment_spec_replicas"}
        ).json()
        assert data["status"] == "success"
        assert len(data["data"]["result"]) == 12
        assert "frontend" in client.get("/jaeger/api/services").json()["data"]
        assert client.get("/api/v1/namespaces/shop/services/frontend").json()["kind"] == "Service"


def test_series_of_a_deleted_pod_go_stale_at_once() -> None:
    cluster, _traffic = shop_world(seed=10)
    cluster.advance(60)
    (pod,) = pods_of(cluster, "emailservice")
    name = pod["metadata"]["name"]
    query = f'container_memory_working_set_bytes{{pod="{name}"}}'
    with serve(cluster) as client:
        assert len(prom(client, "query", query=query)["result"]) == 1
        del cluster.pods[pod["metadata"]["uid"]]
        cluster.store.delete(cluster.rt("Pod"), "shop", name)
        cluster.advance(30)
        assert prom(client, "query", query=query)["result"] == []
        # Its past stays queryable.
        earlier = cluster.clock.now().timestamp() - 40
        assert len(prom(client, "query", query=query, time=str(earlier))["result"]) == 1
        assert len(prom(client, "query", query=query + "[2m]")["result"][0]["values"]) >= 3


def test_load_from_outside_the_mesh_has_an_unknown_source() -> None:
    cluster, _traffic = shop_world(seed=12)
    (lg,) = pods_of(cluster, "loadgenerator")
    del cluster.pods[lg["metadata"]["uid"]]
    cluster.store.delete(cluster.rt("Pod"), "shop", lg["metadata"]["name"])
    cluster.advance(30)
    text = cluster.telemetry.exposition(cluster)
    entry = metric_lines(text, "istio_requests_total", destination_service_name="frontend")
    assert entry
    # Only the destination's proxy sees traffic that comes from outside the mesh.
    assert {(lab["source_workload"], lab["reporter"]) for lab, _v in entry} == {
        ("unknown", "destination")
    }
    assert cluster.telemetry.service_window("shop", "frontend", 20)[0] == pytest.approx(40.0)


def test_kube_state_metrics_follow_the_objects() -> None:
    cluster, _traffic = shop_world(seed=16)
    cluster.create(
        cluster.rt("HorizontalPodAutoscaler"),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "frontend", "namespace": "shop"},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "frontend",
                },
                "minReplicas": 1,
                "maxReplicas": 5,
            },
            "status": {"currentReplicas": 2, "desiredReplicas": 3},
        },
    )
    (pod,) = pods_of(cluster, "cartservice")
    live = cluster.store.find(cluster.rt("Pod"), "shop", pod["metadata"]["name"])
    assert live is not None
    live["status"]["containerStatuses"][0].update(
        restartCount=4,
        ready=False,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"reason": "Error", "exitCode": 1}},
    )
    live["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    cluster.store.commit(cluster.rt("Pod"), live)
    cluster.advance(20)
    text = cluster.telemetry.exposition(cluster)
    name = pod["metadata"]["name"]
    ((_l, current),) = metric_lines(
        text,
        "kube_horizontalpodautoscaler_status_current_replicas",
        horizontalpodautoscaler="frontend",
    )
    ((_l, maximum),) = metric_lines(
        text, "kube_horizontalpodautoscaler_spec_max_replicas", horizontalpodautoscaler="frontend"
    )
    assert (current, maximum) == (2, 5)
    ((_l, waiting),) = metric_lines(
        text, "kube_pod_container_status_waiting_reason", pod=name, reason="CrashLoopBackOff"
    )
    assert waiting == 1
    assert metric_lines(
        text, "kube_pod_container_status_last_terminated_reason", pod=name, reason="Error"
    )
    ((_l, restarts),) = metric_lines(text, "kube_pod_container_status_restarts_total", pod=name)
    assert restarts == 4
    ready = {
        lab["condition"]: v for lab, v in metric_lines(text, "kube_pod_status_ready", pod=name)
    }
    assert ready == {"true": 0.0, "false": 1.0, "unknown": 0.0}
    # The object changes again: the series follow at the next scrape.
    live["status"]["containerStatuses"][0]["state"] = {"running": {}}
    cluster.store.commit(cluster.rt("Pod"), live)
    cluster.advance(15)
    query = f'kube_pod_container_status_waiting_reason{{pod="{name}"}}'
    data = cluster.telemetry
    matched = [
        s
        for (n, lab), s in data.series.items()
        if n == "kube_pod_container_status_waiting_reason" and ("pod", name) in lab
    ]
    assert matched
    assert data.value_at(matched[0], data.now()) is None, query
