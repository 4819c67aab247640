"""The tools on a running twin scenario: metrics, traces and the service graph of an incident.

`cart-redis-down` scales redis-cart to zero: cartservice cannot reach its
store, and frontend and checkout fail through it. The tools must show that
from the twin's own telemetry (its Prometheus-API subset and Jaeger API)
and its Kubernetes API, the way they would show it on a real cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from interfaces.tools_cmd import tools_app
from tools.connection import connect
from tools.metrics import TwinMetricsSource, Window
from tools.registry import Toolbox
from tools.traces import JaegerTraceSource
from twin.harness import Twin


@dataclass
class Incident:
    twin: Twin
    box: Toolbox
    metrics: TwinMetricsSource


@pytest.fixture(scope="module")
def incident() -> Iterator[Incident]:
    with Twin.start("cart-redis-down") as twin:
        alert = twin.run_until_alert()
        assert alert is not None
        metrics = TwinMetricsSource(twin.url)
        traces = JaegerTraceSource.for_twin(twin.url, clock=metrics.now)
        conn = connect(twin.kubeconfig_path)
        yield Incident(twin, Toolbox(cluster=conn, metrics=metrics, traces=traces), metrics)
        conn.close()
        metrics.close()
        traces.close()


def test_twin_metrics_show_the_failure_where_it_is(incident: Incident) -> None:
    metrics = incident.metrics
    now = metrics.now()
    sim_now = incident.twin.cluster.clock.now()
    assert abs((sim_now - now).total_seconds()) <= 15
    window = Window.last(3, end=now, step=15.0, rate_seconds=60.0)
    frontend = metrics.error_ratio("shop", "frontend", window)
    assert frontend.series[0].points[-1][1] > 0.05  # what fired the alert
    rate = metrics.request_rate("shop", "frontend", window)
    assert rate.series[0].points[-1][1] > 1.0
    edge = metrics.error_ratio("shop", "cartservice", window, source="checkoutservice")
    assert edge.series[0].points[-1][1] > 0.0
    healthy = metrics.error_ratio("shop", "currencyservice", window)
    assert healthy.series[0].points[-1][1] == 0.0
    p99 = metrics.latency_quantile("shop", "frontend", 0.99, window)
    assert p99.series[0].points[-1][1] > 0.0
    memory = metrics.memory_vs_limit("shop", "cartservice", window)
    assert 0.0 < memory.series[0].points[-1][1] < 1.0
    assert memory.series[0].labels["container"] == "server"


def test_twin_traces_name_the_dead_dependency(incident: Incident) -> None:
    result = incident.box.call("find_traces", {"service": "frontend", "minutes": 5, "limit": 5})
    assert result.status == "success"
    messages = [s["status"] or "" for t in result.data for s in t["error_spans"]]
    assert any("6379" in m and "connection refused" in m for m in messages)
    deps = incident.box.call("trace_dependencies", {"minutes": 10})
    assert ("cartservice", "redis-cart") in {(d["parent"], d["child"]) for d in deps.data}


def test_service_graph_on_the_shop(incident: Incident) -> None:
    graph = incident.box.call("service_graph", {"namespace": "shop"}).data
    edges = {(e["from"], e["to"]): e["sources"] for e in graph["edges"]}
    assert edges[("Deployment/shop/cartservice", "Service/shop/redis-cart")] == ["env", "trace"]
    assert "env" in edges[("Deployment/shop/frontend", "Service/shop/checkoutservice")]
    assert edges[("Service/shop/redis-cart", "Deployment/shop/redis-cart")] == ["selector"]
    services = incident.box.call("list_services", {"namespace": "shop", "name": "redis-cart"})
    assert any("matches no pods" in f for f in services.data[0]["findings"])
    history = incident.box.call(
        "list_events", {"namespace": "shop", "kind": "Deployment", "name": "redis-cart"}
    )
    assert history.status == "success"


def test_cli_reads_the_twins_metrics(incident: Incident) -> None:
    result = CliRunner().invoke(
        tools_app,
        [
            "call",
            "service_metrics",
            '{"namespace": "shop", "service": "frontend", "minutes": 3, "include_points": false}',
            "--kubeconfig",
            str(incident.twin.kubeconfig_path),
            "--twin",
            incident.twin.url,
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["data"]
    assert data["error_ratio"]["series"][0]["last"] > 0.05
