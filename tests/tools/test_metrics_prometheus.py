"""The metrics sources against a real Prometheus loaded with fixture blocks.

The PromQL of PrometheusMetricsSource runs on the real engine; the twin
source's Python computations (rates with counter resets, ratios, histogram
quantiles) run over the same raw series through the same HTTP API, and must
agree with it and with the answers worked out by hand.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tools.promfixture import EXPECTED, RunningPrometheus
from tools.errors import BackendUnavailable, Invalid
from tools.metrics import (
    MAX_POINTS,
    PrometheusMetricsSource,
    SeriesResult,
    TwinMetricsSource,
    Window,
)
from tools.registry import Toolbox
from tools.signals import service_metrics, workload_resource_metrics

pytestmark = pytest.mark.prometheus


def _window(p: RunningPrometheus, minutes: int = 20, step: float = 60.0) -> Window:
    return Window.last(minutes, end=p.fixture.end, step=step, rate_seconds=120.0)


def _last(result: SeriesResult) -> float:
    assert result.series, f"no series for {result.query}"
    return result.series[0].points[-1][1]


@pytest.fixture
def prom(prometheus: RunningPrometheus) -> Iterator[PrometheusMetricsSource]:
    with PrometheusMetricsSource(prometheus.url, clock=lambda: prometheus.fixture.end) as source:
        yield source


@pytest.fixture
def twin_source(prometheus: RunningPrometheus) -> Iterator[TwinMetricsSource]:
    # The twin serves the same API under /prometheus; a real Prometheus serves it at the root.
    with TwinMetricsSource(prometheus.url, prefix="") as source:
        yield source


def test_request_rate_per_service_and_edge(
    prometheus: RunningPrometheus, prom: PrometheusMetricsSource
) -> None:
    window = _window(prometheus)
    service = prom.request_rate("shop", "cartservice", window)
    edge = prom.request_rate("shop", "cartservice", window, source="frontend")
    assert _last(service) == pytest.approx(EXPECTED["request_rate"], rel=1e-3)
    assert _last(edge) == pytest.approx(EXPECTED["edge_request_rate"], rel=1e-3)
    assert 'reporter="destination"' in service.query
    assert 'source_workload="frontend"' in edge.query
    assert 'reporter="source"' in edge.query
    # The caller's view first, the server's where no caller reports.
    assert service.query.startswith("(sum(rate(istio_requests_total{")
    assert service.query.index('reporter="source"') < service.query.index('reporter="destination"')
    external = prom.request_rate("shop", "frontend", window)
    assert _last(external) == pytest.approx(EXPECTED["external_request_rate"], rel=1e-3)


def test_error_ratio_counts_5xx_and_grpc_failures(
    prometheus: RunningPrometheus, prom: PrometheusMetricsSource
) -> None:
    result = prom.error_ratio("shop", "cartservice", _window(prometheus))
    assert _last(result) == pytest.approx(EXPECTED["error_ratio"], rel=1e-3)
    assert 'response_code=~"5.."' in result.query


def test_latency_quantiles(prometheus: RunningPrometheus, prom: PrometheusMetricsSource) -> None:
    window = _window(prometheus)
    p50 = prom.latency_quantile("shop", "cartservice", 0.5, window)
    p99 = prom.latency_quantile("shop", "cartservice", 0.99, window, source="frontend")
    assert _last(p50) == pytest.approx(EXPECTED["p50"], rel=1e-3)
    assert _last(p99) == pytest.approx(EXPECTED["p99"], rel=1e-3)
    assert p50.signal == "latency_p50"
    assert p99.signal == "latency_p99"
    assert "histogram_quantile(0.99" in p99.query


def test_resources_against_limits_match_only_the_workloads_pods(
    prometheus: RunningPrometheus, prom: PrometheusMetricsSource
) -> None:
    window = _window(prometheus)
    memory = prom.memory_vs_limit("shop", "cartservice", window)
    cpu = prom.cpu_vs_limit("shop", "cartservice", window)
    assert [s.labels["pod"] for s in memory.series] == ["cartservice-5d8f7c9b4-x2k9p"]
    assert _last(memory) == pytest.approx(EXPECTED["memory_ratio"], rel=1e-3)
    assert _last(cpu) == pytest.approx(EXPECTED["cpu_ratio"], rel=1e-3)
    restarts = prom.restarts("shop", "cartservice", _window(prometheus, minutes=40))
    values = [v for _t, v in restarts.series[0].points]
    assert values[0] == 0.0
    assert values[-1] == 1.0


def test_twin_source_computes_the_same_answers_from_raw_series(
    prometheus: RunningPrometheus,
    prom: PrometheusMetricsSource,
    twin_source: TwinMetricsSource,
) -> None:
    window = _window(prometheus, minutes=30)
    pairs = [
        (
            prom.request_rate("shop", "cartservice", window),
            twin_source.request_rate("shop", "cartservice", window),
        ),
        (
            prom.request_rate("shop", "frontend", window),
            twin_source.request_rate("shop", "frontend", window),
        ),
        (
            prom.error_ratio("shop", "cartservice", window, source="frontend"),
            twin_source.error_ratio("shop", "cartservice", window, source="frontend"),
        ),
        (
            prom.latency_quantile("shop", "cartservice", 0.99, window),
            twin_source.latency_quantile("shop", "cartservice", 0.99, window),
        ),
        (
            prom.memory_vs_limit("shop", "cartservice", window),
            twin_source.memory_vs_limit("shop", "cartservice", window),
        ),
        (
            prom.cpu_vs_limit("shop", "cartservice", window),
            twin_source.cpu_vs_limit("shop", "cartservice", window),
        ),
    ]
    for promql, computed in pairs:
        assert computed.series, computed.query
        assert computed.signal == promql.signal
        assert _last(computed) == pytest.approx(_last(promql), rel=1e-3), computed.query
        # Point by point, including across the counter reset in the 503 series.
        p_points = dict(promql.series[0].points)
        for t, v in computed.series[0].points:
            if t in p_points:
                assert v == pytest.approx(p_points[t], rel=0.05, abs=1e-6), (computed.signal, t)
    restarts = twin_source.restarts("shop", "cartservice", window)
    assert [s.labels["pod"] for s in restarts.series] == ["cartservice-5d8f7c9b4-x2k9p"]


def test_long_ranges_are_capped_in_points_and_say_so(
    prometheus: RunningPrometheus, prom: PrometheusMetricsSource, twin_source: TwinMetricsSource
) -> None:
    window = Window.last(60, end=prometheus.fixture.end, step=15.0, rate_seconds=60.0)
    for source in (prom, twin_source):
        result = source.request_rate("shop", "cartservice", window)
        assert len(result.series[0].points) <= MAX_POINTS
        assert result.truncations
        assert result.truncations[0].what == "points"
        assert result.truncations[0].total == 241


def test_bad_promql_and_unreachable_backend_are_distinct_errors(
    prometheus: RunningPrometheus,
) -> None:
    with PrometheusMetricsSource(prometheus.url) as prom, pytest.raises(Invalid) as bad:
        prom.http.query_range("sum(rate(", _window(prometheus))
    assert "sum(rate(" in bad.value.request
    assert bad.value.api_message
    closed = PrometheusMetricsSource("http://127.0.0.1:1", timeout=1.0)
    with closed, pytest.raises(BackendUnavailable) as down:
        closed.request_rate("shop", "cartservice", _window(prometheus))
    assert "127.0.0.1:1" in down.value.message


def test_metrics_tools_report_signals_with_queries(
    prometheus: RunningPrometheus, prom: PrometheusMetricsSource
) -> None:
    box = Toolbox(metrics=prom)
    result = service_metrics(
        box, {"namespace": "shop", "service": "cartservice", "source": "frontend", "minutes": 20}
    )
    assert result.status == "success", result.error
    assert result.data["target"] == "frontend -> cartservice"
    assert result.data["error_ratio"]["series"][0]["last"] == pytest.approx(1 / 11, rel=1e-3)
    assert result.data["latency_p50"]["series"][0]["last"] == pytest.approx(12.5, rel=1e-3)
    assert "istio_requests_total" in (result.query or "")
    resources = workload_resource_metrics(
        box, {"namespace": "shop", "workload": "cartservice", "minutes": 20}
    )
    assert resources.status == "success"
    assert resources.data["memory_vs_limit"]["series"][0]["last"] == pytest.approx(0.78125)
    assert "values" not in resources.data["memory_vs_limit"]["series"][0]
    none = service_metrics(box, {"namespace": "shop", "service": "nosuchservice", "minutes": 20})
    assert none.status == "no_data"
    missing = service_metrics(Toolbox(), {"namespace": "shop", "service": "cartservice"})
    assert missing.status == "error"
    assert missing.error_kind == "BackendUnavailable"
    bad = service_metrics(box, {"namespace": "shop", "service": "cart_service", "minutes": -1})
    assert bad.status == "error"
    assert bad.error_kind == "InvalidArguments"
    assert "service" in (bad.error or "")
    assert "minutes" in (bad.error or "")
