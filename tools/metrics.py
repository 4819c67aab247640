"""Metrics: the `MetricsSource` protocol, over Prometheus (PromQL) and over the twin's raw series.

The signals an SRE reads first, per Service and per edge (caller workload ->
Service): request rate, error ratio, latency quantiles; per workload: memory
and CPU against limits, and restarts. Names are the ones real exporters use:
Istio's `istio_requests_total` and `istio_request_duration_milliseconds_bucket`,
cAdvisor's `container_memory_working_set_bytes` and
`container_cpu_usage_seconds_total`, kube-state-metrics'
`kube_pod_container_status_restarts_total` and `kube_pod_container_resource_limits`.

`PrometheusMetricsSource` runs PromQL (query_range) against a real Prometheus.
`TwinMetricsSource` reads raw series with plain equality selectors from the
twin's Prometheus-API subset and computes rates, ratios and histogram
quantiles here, with the same semantics. Every result carries the query it
ran and says when series or points were capped.
"""

from __future__ import annotations

import math
import re
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self

import httpx
from pydantic import BaseModel, Field

from tools.errors import BackendUnavailable, Invalid, ServerError, Timeout, ToolError, retry
from tools.result import Truncation

REQUESTS = "istio_requests_total"
DURATION_BUCKET = "istio_request_duration_milliseconds_bucket"
MEMORY = "container_memory_working_set_bytes"
CPU = "container_cpu_usage_seconds_total"
RESTARTS = "kube_pod_container_status_restarts_total"
LIMITS = "kube_pod_container_resource_limits"

#: Points per series at most; a longer range gets a coarser step.
MAX_POINTS = 120
#: Raw samples are read at least this finely (seconds): a scrape interval. Coarser sampling
#: would miss counter resets between samples and disagree with PromQL's rate().
RAW_RESOLUTION = 15.0
#: How long (wall seconds) and how many raw range reads TwinMetricsSource keeps: one
#: service_metrics call reads the same requests and duration series twice (rate and errors,
#: p50 and p99), and the agents ask about the same edges within a moment.
RAW_MEMO_SECONDS = 2.0
RAW_MEMO_SIZE = 64
#: Series per result at most.
MAX_SERIES = 20

Point = tuple[float, float]


def workload_pod_regex(workload: str) -> str:
    """Pods of a Deployment (name-hash-xxxxx), StatefulSet (name-N) or DaemonSet (name-xxxxx)."""
    name = re.escape(workload)
    return f"{name}-([a-z0-9]{{1,10}}-)?[a-z0-9]{{5}}|{name}-[0-9]+"


@dataclass(frozen=True)
class Window:
    """A range query: [start, end] every `step` seconds; rates over `rate_seconds`."""

    start: datetime
    end: datetime
    step: float = 60.0
    rate_seconds: float = 120.0

    @classmethod
    def last(
        cls, minutes: float, *, end: datetime, step: float = 60.0, rate_seconds: float = 120.0
    ) -> Window:
        return cls(end - timedelta(minutes=minutes), end, step, rate_seconds)

    def capped(self, max_points: int = MAX_POINTS) -> tuple[Window, Truncation | None]:
        """The same window with a step coarse enough for `max_points` points."""
        span = (self.end - self.start).total_seconds()
        points = int(span // self.step) + 1
        if points <= max_points:
            return self, None
        step = math.ceil(span / (max_points - 1))
        kept = int(span // step) + 1
        cut = Truncation(
            what="points",
            limit=max_points,
            kept=kept,
            total=points,
            note=f"step raised from {self.step:g}s to {step}s to fit {max_points} points",
        )
        return Window(self.start, self.end, float(step), self.rate_seconds), cut


class Series(BaseModel):
    labels: dict[str, str]
    points: list[tuple[float, float]] = Field(description="(unix seconds, value), oldest first")

    def summary(self) -> dict[str, Any]:
        values = [v for _t, v in self.points if not math.isnan(v)]
        if not values:
            return {"labels": self.labels, "points": 0}
        return {
            "labels": self.labels,
            "points": len(values),
            "last": round(values[-1], 6),
            "min": round(min(values), 6),
            "max": round(max(values), 6),
            "mean": round(sum(values) / len(values), 6),
        }


class SeriesResult(BaseModel):
    """What a metrics query returns: the series, the query that made them, and any caps."""

    signal: str
    unit: str
    query: str
    step: float
    series: list[Series] = Field(default_factory=list)
    truncations: list[Truncation] = Field(default_factory=list)

    def as_data(self, *, points: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "signal": self.signal,
            "unit": self.unit,
            "step_seconds": self.step,
            "series": [
                {
                    **s.summary(),
                    **({"values": [[_iso(t), _round(v)] for t, v in s.points]} if points else {}),
                }
                for s in self.series
            ],
        }
        return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _round(v: float) -> float | None:
    return None if math.isnan(v) else round(v, 6)


class MetricsSource(Protocol):
    """Where metrics come from. `source` set means the edge source workload -> `service`."""

    def now(self) -> datetime: ...

    def request_rate(
        self, namespace: str, service: str, window: Window, *, source: str | None = None
    ) -> SeriesResult: ...

    def error_ratio(
        self, namespace: str, service: str, window: Window, *, source: str | None = None
    ) -> SeriesResult: ...

    def latency_quantile(
        self,
        namespace: str,
        service: str,
        quantile: float,
        window: Window,
        *,
        source: str | None = None,
    ) -> SeriesResult: ...

    def memory_vs_limit(self, namespace: str, workload: str, window: Window) -> SeriesResult: ...

    def cpu_vs_limit(self, namespace: str, workload: str, window: Window) -> SeriesResult: ...

    def restarts(self, namespace: str, workload: str, window: Window) -> SeriesResult: ...


# -- selectors shared by both sources ------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """The reporter convention of the mesh metrics (Istio's by default)."""

    #: Istio reports each request twice, reporter="source" (the caller's sidecar) and
    #: "destination" (the server's). False: the metrics carry no reporter label.
    reporter: bool = True


#: Reporters in order of preference: the caller's view first, since it includes the requests
#: that never reached a dead or unreachable server; the server's view where no caller reports
#: (traffic from outside the mesh).
REPORTERS = ("source", "destination")


def mesh_matchers(namespace: str, service: str, source: str | None) -> list[tuple[str, str]]:
    matchers = [("destination_service_namespace", namespace), ("destination_service_name", service)]
    if source is not None:
        matchers += [("source_workload_namespace", namespace), ("source_workload", source)]
    return matchers


def render(metric: str, matchers: Iterable[tuple[str, str]], extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in matchers]
    if extra:
        parts.append(extra)
    return f"{metric}{{{','.join(parts)}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


_ERROR_CODE = re.compile(r"^5\d\d$")
_GRPC_ERROR = re.compile(r"^[1-9][0-9]*$")


def is_error(labels: dict[str, str]) -> bool:
    """An HTTP 5xx, or a gRPC status other than OK (Istio records those with response_code 200)."""
    code = labels.get("response_code", "")
    return bool(
        _ERROR_CODE.match(code) or _GRPC_ERROR.match(labels.get("grpc_response_status", ""))
    )


# -- HTTP ----------------------------------------------------------------------------


class _PromHttp:
    """The Prometheus HTTP API (query, query_range, series), errors wrapped as ToolErrors."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, attempts: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)
        self.attempts = attempts

    def get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.base_url}{path}"
        request = f"GET {url} {params.get('query', '')}".strip()

        def once() -> Any:
            try:
                response = self.client.get(url, params=params)
            except httpx.TimeoutException as exc:
                raise Timeout(f"{request}: no answer in time", request=request) from exc
            except httpx.HTTPError as exc:
                raise BackendUnavailable(
                    f"cannot reach the metrics backend at {self.base_url}: {exc}", request=request
                ) from exc
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text[:300]}
            if response.status_code >= 400 or body.get("status") == "error":
                message = str(body.get("error") or response.text[:300])
                cls: type[ToolError] = ServerError if response.status_code >= 500 else Invalid
                if response.status_code == 404:
                    cls = BackendUnavailable
                raise cls(
                    f"query failed ({response.status_code} {body.get('errorType', '')}): {message}",
                    request=request,
                    status=response.status_code,
                    api_message=message,
                )
            return body.get("data")

        return retry(once, attempts=self.attempts)

    def query_range(self, query: str, window: Window) -> list[dict[str, Any]]:
        data = self.get(
            "/api/v1/query_range",
            {
                "query": query,
                "start": f"{window.start.timestamp():.3f}",
                "end": f"{window.end.timestamp():.3f}",
                "step": f"{window.step:g}",
            },
        )
        return list((data or {}).get("result") or [])

    def latest_time(self, metric: str) -> datetime | None:
        data = self.get("/api/v1/query", {"query": metric})
        stamps = [float(r["value"][0]) for r in (data or {}).get("result") or [] if r.get("value")]
        return datetime.fromtimestamp(max(stamps), UTC) if stamps else None

    def close(self) -> None:
        self.client.close()


def _to_series(result: list[dict[str, Any]]) -> list[Series]:
    out = []
    for r in result:
        points = [(float(t), float(v)) for t, v in r.get("values") or []]
        out.append(Series(labels=dict(r.get("metric") or {}), points=points))
    return out


def _cap_series(
    series: list[Series], key: Callable[[Series], float]
) -> tuple[list[Series], list[Truncation]]:
    if len(series) <= MAX_SERIES:
        return series, []
    series = sorted(series, key=key, reverse=True)
    return series[:MAX_SERIES], [
        Truncation(
            what="series",
            limit=MAX_SERIES,
            kept=MAX_SERIES,
            total=len(series),
            note="kept the series with the highest latest value",
        )
    ]


def _last(s: Series) -> float:
    values = [v for _t, v in s.points if not math.isnan(v)]
    return values[-1] if values else -math.inf


# -- Prometheus ------------------------------------------------------------------------


class PrometheusMetricsSource:
    """PromQL over a real Prometheus's HTTP API."""

    def __init__(
        self,
        url: str,
        *,
        labels: Labels | None = None,
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.http = _PromHttp(url, timeout=timeout)
        self.labels = labels or Labels()
        self._clock = clock

    def now(self) -> datetime:
        return self._clock() if self._clock else datetime.now(UTC)

    def _run(self, signal: str, unit: str, query: str, window: Window) -> SeriesResult:
        capped, cut = window.capped()
        series, cuts = _cap_series(_to_series(self.http.query_range(query, capped)), _last)
        return SeriesResult(
            signal=signal,
            unit=unit,
            query=query,
            step=capped.step,
            series=series,
            truncations=([cut] if cut else []) + cuts,
        )

    def _prefer(self, expr: Callable[[str | None], str]) -> str:
        """`expr` for the source reporter, falling back to the destination's where it is empty."""
        if not self.labels.reporter:
            return expr(None)
        return " or ".join(f"({expr(r)})" for r in REPORTERS)

    @staticmethod
    def _sel(
        metric: str,
        namespace: str,
        service: str,
        source: str | None,
        reporter: str | None,
        extra: str = "",
    ) -> str:
        matchers = mesh_matchers(namespace, service, source)
        if reporter:
            matchers.append(("reporter", reporter))
        return render(metric, matchers, extra)

    def request_rate(
        self, namespace: str, service: str, window: Window, *, source: str | None = None
    ) -> SeriesResult:
        w = f"{int(window.rate_seconds)}s"
        query = self._prefer(
            lambda r: f"sum(rate({self._sel(REQUESTS, namespace, service, source, r)}[{w}]))"
        )
        return self._run("request_rate", "requests/s", query, window)

    def error_ratio(
        self, namespace: str, service: str, window: Window, *, source: str | None = None
    ) -> SeriesResult:
        w = f"{int(window.rate_seconds)}s"

        def ratio(r: str | None) -> str:
            http_err = self._sel(REQUESTS, namespace, service, source, r, 'response_code=~"5.."')
            grpc_err = self._sel(
                REQUESTS,
                namespace,
                service,
                source,
                r,
                'response_code!~"5..",grpc_response_status=~"[1-9][0-9]*"',
            )
            total = self._sel(REQUESTS, namespace, service, source, r)
            return (
                f"((sum(rate({http_err}[{w}])) or vector(0))"
                f" + (sum(rate({grpc_err}[{w}])) or vector(0)))"
                f" / sum(rate({total}[{w}]))"
            )

        return self._run("error_ratio", "ratio", self._prefer(ratio), window)

    def latency_quantile(
        self,
        namespace: str,
        service: str,
        quantile: float,
        window: Window,
        *,
        source: str | None = None,
    ) -> SeriesResult:
        w = f"{int(window.rate_seconds)}s"
        query = self._prefer(
            lambda r: (
                f"histogram_quantile({quantile:g}, sum by (le) "
                f"(rate({self._sel(DURATION_BUCKET, namespace, service, source, r)}[{w}])))"
            )
        )
        return self._run(f"latency_p{quantile * 100:g}", "ms", query, window)

    def _pods(self, namespace: str, workload: str) -> str:
        return f'namespace="{_escape(namespace)}",pod=~"{workload_pod_regex(workload)}"'

    def memory_vs_limit(self, namespace: str, workload: str, window: Window) -> SeriesResult:
        pods = self._pods(namespace, workload)
        query = (
            f'sum by (pod, container) ({MEMORY}{{{pods},container!="",container!="POD"}})'
            f' / sum by (pod, container) ({LIMITS}{{{pods},resource="memory"}})'
        )
        return self._run("memory_vs_limit", "ratio of limit", query, window)

    def cpu_vs_limit(self, namespace: str, workload: str, window: Window) -> SeriesResult:
        pods = self._pods(namespace, workload)
        w = f"{int(window.rate_seconds)}s"
        query = (
            f'sum by (pod, container) (rate({CPU}{{{pods},container!="",container!="POD"}}[{w}]))'
            f' / sum by (pod, container) ({LIMITS}{{{pods},resource="cpu"}})'
        )
        return self._run("cpu_vs_limit", "ratio of limit", query, window)

    def restarts(self, namespace: str, workload: str, window: Window) -> SeriesResult:
        query = f"sum by (pod, container) ({RESTARTS}{{{self._pods(namespace, workload)}}})"
        return self._run("restarts", "restarts (cumulative)", query, window)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the twin (raw series, computed here) ----------------------------------------------


def counter_rates(
    points: list[Point], steps: list[float], rate_seconds: float
) -> list[float | None]:
    """A counter's per-second rate over (t - rate_seconds, t] at every step, from raw samples.

    As Prometheus' rate(): resets count from zero, and the increase between the first and
    last sample inside the window is extrapolated to the whole window (None: fewer than
    two samples). Prefix sums of the increments make each window O(log n), which matters:
    the twin's metrics are computed here for every series x step.
    """
    times = [t for t, _v in points]
    prefix = [0.0]
    for k in range(1, len(points)):
        prev, v = points[k - 1][1], points[k][1]
        prefix.append(prefix[-1] + (v - prev if v >= prev else v))
    out: list[float | None] = []
    for t in steps:
        start = t - rate_seconds
        lo = bisect_left(times, start - 1e-6)
        hi = bisect_right(times, t + 1e-6) - 1
        span = times[hi] - times[lo] if hi > lo else 0.0
        if span <= 0:
            out.append(None)
            continue
        out.append((prefix[hi] - prefix[lo]) * (t - start) / span / rate_seconds)
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs."""
    if not buckets:
        return math.nan
    buckets = sorted(buckets)
    if buckets[-1][0] != math.inf:
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for i, (bound, count) in enumerate(buckets):
        if count >= rank:
            if bound == math.inf:
                return buckets[i - 1][0] if i > 0 else math.nan
            if i == 0 and bound <= 0:
                return bound
            lower = prev_bound if i > 0 else 0.0
            in_bucket = count - prev_count
            if in_bucket <= 0:
                return bound
            return lower + (bound - lower) * (rank - prev_count) / in_bucket
        prev_bound, prev_count = bound, count
    return math.nan


class TwinMetricsSource:
    """The twin's raw series (plain selectors over its /prometheus API), computed in Python."""

    def __init__(
        self,
        twin_url: str,
        *,
        labels: Labels | None = None,
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
        prefix: str = "/prometheus",
    ) -> None:
        self.http = _PromHttp(twin_url.rstrip("/") + prefix, timeout=timeout)
        self.labels = labels or Labels()
        self._clock = clock
        #: (selector, start, end, step) -> (when read, series); the samples of a window
        #: that has passed do not change, and the entries expire quickly anyway.
        self._memo: dict[tuple[str, float, float, float], tuple[float, list[Series]]] = {}
        self._memo_lock = threading.Lock()

    def now(self) -> datetime:
        """Simulated time runs on the twin: the newest sample's time is its now."""
        if self._clock:
            return self._clock()
        return (
            self.http.latest_time(RESTARTS) or self.http.latest_time(REQUESTS) or datetime.now(UTC)
        )

    def _raw(self, selector: str, window: Window) -> tuple[list[Series], Window, float]:
        """Raw samples from rate_seconds before start to end, at a step dividing rate_seconds."""
        k = max(
            1,
            math.ceil(window.rate_seconds / window.step),
            math.ceil(window.rate_seconds / RAW_RESOLUTION),
        )
        raw_step = window.rate_seconds / k
        raw = Window(
            window.start - timedelta(seconds=window.rate_seconds),
            window.end,
            raw_step,
            window.rate_seconds,
        )
        key = (selector, raw.start.timestamp(), raw.end.timestamp(), raw_step)
        now = time.monotonic()
        with self._memo_lock:
            hit = self._memo.get(key)
        if hit is not None and now - hit[0] < RAW_MEMO_SECONDS:
            return hit[1], raw, raw_step
        series = _to_series(self.http.query_range(selector, raw))
        with self._memo_lock:
            self._memo[key] = (now, series)
            if len(self._memo) > RAW_MEMO_SIZE:
                oldest = min(self._memo, key=lambda k: self._memo[k][0])
                del self._memo[oldest]
        return series, raw, raw_step

    def _steps(self, window: Window) -> list[float]:
        start, end = window.start.timestamp(), window.end.timestamp()
        n = int((end - start) // window.step + 1e-9) + 1
        return [start + i * window.step for i in range(n)]

    def _rates(
        self, series: list[Series], steps: list[float], rate_seconds: float
    ) -> list[list[float | None]]:
        return [counter_rates(s.points, steps, rate_seconds) for s in series]

    def _result(
        self,
        signal: str,
        unit: str,
        query: str,
        window: Window,
        series: list[Series],
        cuts: list[Truncation],
    ) -> SeriesResult:
        kept, more = _cap_series(series, _last)
        return SeriesResult(
            signal=signal,
            unit=unit,
            query=query,
            step=window.step,
            series=kept,
            truncations=cuts + more,
        )

    def _mesh_steps(
        self,
        metric: str,
        namespace: str,
        service: str,
        source: str | None,
        window: Window,
        at_step: Callable[[list[tuple[Series, float]]], float | None],
    ) -> tuple[list[Point], str]:
        """Per step, `at_step` over (series, rate) of the preferred reporter that has data."""
        selector = render(metric, mesh_matchers(namespace, service, source))
        raw, _rw, _rs = self._raw(selector, window)
        steps = self._steps(window)
        rates = self._rates(raw, steps, window.rate_seconds)
        groups: list[list[int]] = (
            [[i for i, s in enumerate(raw) if s.labels.get("reporter") == r] for r in REPORTERS]
            if self.labels.reporter
            else [list(range(len(raw)))]
        )
        points: list[Point] = []
        for step, t in enumerate(steps):
            for group in groups:
                present = [(raw[i], r) for i in group if (r := rates[i][step]) is not None]
                if present:
                    value = at_step(present)
                    if value is not None and not math.isnan(value):
                        points.append((t, value))
                    break
        return points, selector

    def request_rate(
        self, namespace: str, service: str, window: Window, *, source: str | None = None
    ) -> SeriesResult:
        window, cut = window.capped()
        points, selector = self._mesh_steps(
            REQUESTS, namespace, service, source, window, lambda xs: sum(r for _s, r in xs)
        )
        series = [Series(labels={}, points=points)] if points else []
        query = (
            f"sum(rate({selector}[{int(window.rate_seconds)}s])), reporter source else "
            "destination (computed from raw series)"
        )
        return self._result(
            "request_rate", "requests/s", query, window, series, [cut] if cut else []
        )

    def error_ratio(
        self, namespace: str, service: str, window: Window, *, source: str | None = None
    ) -> SeriesResult:
        window, cut = window.capped()

        def ratio(xs: list[tuple[Series, float]]) -> float | None:
            total = sum(r for _s, r in xs)
            return sum(r for s, r in xs if is_error(s.labels)) / total if total > 0 else None

        points, selector = self._mesh_steps(REQUESTS, namespace, service, source, window, ratio)
        series = [Series(labels={}, points=points)] if points else []
        query = (
            f"errors/total of rate({selector}[{int(window.rate_seconds)}s]), reporter source "
            'else destination; errors: response_code=~"5.." or grpc_response_status not "0" '
            "(computed from raw series)"
        )
        return self._result("error_ratio", "ratio", query, window, series, [cut] if cut else [])

    def latency_quantile(
        self,
        namespace: str,
        service: str,
        quantile: float,
        window: Window,
        *,
        source: str | None = None,
    ) -> SeriesResult:
        window, cut = window.capped()

        def quantile_of(xs: list[tuple[Series, float]]) -> float | None:
            by_le: dict[float, float] = {}
            for s, r in xs:
                if "le" not in s.labels:
                    continue
                le = math.inf if s.labels["le"] in ("+Inf", "Inf", "inf") else float(s.labels["le"])
                by_le[le] = by_le.get(le, 0.0) + r
            return histogram_quantile(quantile, list(by_le.items()))

        points, selector = self._mesh_steps(
            DURATION_BUCKET, namespace, service, source, window, quantile_of
        )
        series = [Series(labels={}, points=points)] if points else []
        query = (
            f"histogram_quantile({quantile:g}, sum by (le) (rate({selector}"
            f"[{int(window.rate_seconds)}s]))), reporter source else destination "
            "(computed from raw series)"
        )
        return self._result(
            f"latency_p{quantile * 100:g}", "ms", query, window, series, [cut] if cut else []
        )

    def _pod_series(
        self, metric: str, namespace: str, workload: str, window: Window, extra: dict[str, str]
    ) -> tuple[list[Series], str]:
        selector = render(metric, [("namespace", namespace), *extra.items()])
        raw, _rw, _rs = self._raw(selector, window)
        pattern = re.compile(f"^(?:{workload_pod_regex(workload)})$")
        kept = [
            s
            for s in raw
            if pattern.match(s.labels.get("pod", ""))
            and s.labels.get("container", "") not in ("", "POD")
        ]
        return kept, selector

    @staticmethod
    def _at(points: list[Point], t: float, lookback: float = 300.0) -> float | None:
        """The newest point at or before `t` within `lookback` seconds (points oldest first)."""
        i = bisect_right(points, t + 1e-6, key=lambda p: p[0]) - 1
        return points[i][1] if i >= 0 and points[i][0] >= t - lookback else None

    def _ratio_to_limit(
        self,
        signal: str,
        metric: str,
        resource: str,
        namespace: str,
        workload: str,
        window: Window,
        *,
        counter: bool,
    ) -> SeriesResult:
        window, cut = window.capped()
        usage, usage_sel = self._pod_series(metric, namespace, workload, window, {})
        limits, limit_sel = self._pod_series(
            LIMITS, namespace, workload, window, {"resource": resource}
        )
        steps = self._steps(window)
        limit_by = {(s.labels.get("pod"), s.labels.get("container")): s for s in limits}
        grouped: dict[tuple[str, str], list[Series]] = {}
        for s in usage:
            grouped.setdefault((s.labels.get("pod", ""), s.labels.get("container", "")), []).append(
                s
            )
        out = []
        for (pod, container), group in sorted(grouped.items()):
            lim = limit_by.get((pod, container))
            if lim is None:
                continue
            points = []
            rates = (
                [counter_rates(s.points, steps, window.rate_seconds) for s in group]
                if counter
                else []
            )
            for k, t in enumerate(steps):
                if counter:
                    vals = [r for per_series in rates if (r := per_series[k]) is not None]
                else:
                    vals = [v for s in group if (v := self._at(s.points, t)) is not None]
                limit = self._at(lim.points, t)
                if vals and limit:
                    points.append((t, sum(vals) / limit))
            if points:
                out.append(Series(labels={"pod": pod, "container": container}, points=points))
        query = f"{usage_sel} / {limit_sel} by (pod, container) (computed from raw series)"
        if counter:
            rate = f"rate({usage_sel}[{int(window.rate_seconds)}s])"
            query = f"{rate} / {limit_sel} by (pod, container) (computed from raw series)"
        return self._result(signal, "ratio of limit", query, window, out, [cut] if cut else [])

    def memory_vs_limit(self, namespace: str, workload: str, window: Window) -> SeriesResult:
        return self._ratio_to_limit(
            "memory_vs_limit", MEMORY, "memory", namespace, workload, window, counter=False
        )

    def cpu_vs_limit(self, namespace: str, workload: str, window: Window) -> SeriesResult:
        return self._ratio_to_limit(
            "cpu_vs_limit", CPU, "cpu", namespace, workload, window, counter=True
        )

    def restarts(self, namespace: str, workload: str, window: Window) -> SeriesResult:
        window, cut = window.capped()
        raw, selector = self._pod_series(RESTARTS, namespace, workload, window, {})
        steps = self._steps(window)
        out = []
        for s in raw:
            points = [(t, v) for t in steps if (v := self._at(s.points, t)) is not None]
            if points:
                labels = {
                    "pod": s.labels.get("pod", ""),
                    "container": s.labels.get("container", ""),
                }
                out.append(Series(labels=labels, points=points))
        return self._result(
            "restarts",
            "restarts (cumulative)",
            f"{selector} (filtered to {workload}'s pods)",
            window,
            out,
            [cut] if cut else [],
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
