"""The twin's metrics and traces: what Prometheus and Jaeger would hold for a real cluster.

Every 15 simulated seconds the `Telemetry` scrapes, as a Prometheus server
would, the exporters a production cluster runs:
- cAdvisor (through the kubelet): `container_memory_working_set_bytes`,
  `container_cpu_usage_seconds_total`, `container_spec_memory_limit_bytes`;
- kube-state-metrics: restarts, waiting and last-terminated reasons,
  resource requests and limits, pod readiness and phase, deployment replicas,
  node conditions, HPA replicas;
- the Istio sidecars: `istio_requests_total` and the
  `istio_request_duration_milliseconds` histogram per edge (source and
  destination workload, service, response code, reporter), and
  `istio_tcp_*` for plain TCP protocols such as Redis.

Samples go into a bounded in-memory history (2 h by default) that the
Prometheus HTTP API subset in twin/telemetry_http.py serves; `collect` gives
the current values for `/metrics`. The traffic model feeds the mesh counters
and sampled traces (twin/telemetry_traces.py) once per period. Nothing
served here reveals hidden state: labels and values are what the real
exporters would show.

`service_window` is the read the scenario oracle and alerts use: a Service's
request rate, error ratio and p99 latency over a window, as its clients saw
them (connection failures included).
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.quantity import parse_cpu, parse_memory
from twin.telemetry_traces import TraceStore
from twin.traffic_errors import mesh_status

if TYPE_CHECKING:
    from twin.cluster import Cluster
    from twin.traffic import Attempt, LegStat, Traffic
    from twin.traffic_net import Leg, Proc, Route

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]

#: Seconds between two scrapes.
SCRAPE_INTERVAL = 15.0
#: Seconds of history kept.
HISTORY_SECONDS = 2 * 3600.0
#: Istio's default request duration buckets, ms.
ISTIO_BUCKETS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
    600000, 1800000, 3600000,
)  # fmt: skip
#: Finer buckets for the per-Service windows (p99 by interpolation), ms.
FINE_BUCKETS = tuple(0.25 * 1.3**i for i in range(58))
#: Spread of one request's latency around the mean (lognormal sigma); timeouts are sharp.
SIGMA = 0.45
SHARP = 0.03
#: Request and response sizes of a plain TCP protocol exchange, bytes.
TCP_SENT = 96
TCP_RECEIVED = 248

#: name -> (type, help), for the exposition format.
METADATA: dict[str, tuple[str, str]] = {
    "container_cpu_usage_seconds_total": (
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
    ),
    "container_memory_working_set_bytes": (
        "gauge",
        "Current working set of the container in bytes",
    ),
    "container_spec_memory_limit_bytes": ("gauge", "Memory limit for the container."),
    "container_spec_cpu_quota": ("gauge", "CPU quota of the container."),
    "kube_pod_container_resource_limits": (
        "gauge",
        "The number of requested limit resource by a container.",
    ),
    "kube_pod_container_resource_requests": (
        "gauge",
        "The number of requested request resource by a container.",
    ),
    "kube_pod_container_status_restarts_total": (
        "counter",
        "The number of container restarts per container.",
    ),
    "kube_pod_container_status_waiting_reason": (
        "gauge",
        "Describes the reason the container is currently in waiting state.",
    ),
    "kube_pod_container_status_last_terminated_reason": (
        "gauge",
        "Describes the last reason the container was in terminated state.",
    ),
    "kube_pod_container_status_ready": (
        "gauge",
        "Describes whether the containers readiness check succeeded.",
    ),
    "kube_pod_status_ready": ("gauge", "Describes whether the pod is ready to serve requests."),
    "kube_pod_status_phase": ("gauge", "The pods current phase."),
    "kube_deployment_spec_replicas": ("gauge", "Number of desired pods for a deployment."),
    "kube_deployment_status_replicas_available": (
        "gauge",
        "The number of available replicas per deployment.",
    ),
    "kube_deployment_status_replicas_unavailable": (
        "gauge",
        "The number of unavailable replicas per deployment.",
    ),
    "kube_node_status_condition": ("gauge", "The condition of a cluster node."),
    "kube_horizontalpodautoscaler_status_current_replicas": (
        "gauge",
        "Current number of replicas of pods managed by this autoscaler.",
    ),
    "kube_horizontalpodautoscaler_spec_max_replicas": (
        "gauge",
        "Upper limit for the number of pods that can be set by the autoscaler; "
        "cannot be smaller than MinReplicas.",
    ),
    "kube_horizontalpodautoscaler_status_desired_replicas": (
        "gauge",
        "Desired number of replicas of pods managed by this autoscaler.",
    ),
    "istio_requests_total": ("counter", "Total requests."),
    "istio_request_duration_milliseconds": ("histogram", "Request duration in milliseconds."),
    "istio_tcp_sent_bytes_total": (
        "counter",
        "Size of total bytes sent during response in case of a TCP connection.",
    ),
    "istio_tcp_received_bytes_total": (
        "counter",
        "Size of total bytes received during request in case of a TCP connection.",
    ),
    "istio_tcp_connections_opened_total": ("counter", "Total TCP connections opened."),
    "istio_tcp_connections_closed_total": ("counter", "Total TCP connections closed."),
}


@dataclass
class Series:
    """One time series' samples, aligned with the scrape index (NaN: absent)."""

    name: str
    labels: Labels
    first: int
    values: array[float] = field(default_factory=lambda: array("d"))

    @property
    def last(self) -> int:
        return self.first + len(self.values) - 1


@dataclass(slots=True)
class _Hist:
    count: float = 0.0
    total: float = 0.0
    buckets: list[float] = field(default_factory=list)
    #: Series keys per reporter: requests_total, buckets..., +Inf, sum, count (built once).
    keys: list[list[SeriesKey]] | None = None
    refs: list[list[Series]] | None = None


@dataclass(slots=True)
class _ServiceCounters:
    requests: float = 0.0
    errors: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(FINE_BUCKETS))
    #: (elapsed, requests, errors, buckets) after each traffic period.
    history: deque[tuple[float, float, float, tuple[float, ...]]] = field(
        default_factory=lambda: deque(maxlen=int(HISTORY_SECONDS / 5) + 2)
    )


_CDF_CACHE: dict[tuple[int, int, int], tuple[float, ...]] = {}


def _cdf(bounds: tuple[float, ...], mean: float, sigma: float) -> tuple[float, ...]:
    """P(X <= le) for each bucket bound, X lognormal with the given mean (cached, quantised)."""
    q = round(math.log(max(mean, 1e-3)) * 60)
    key = (id(bounds), q, round(sigma * 1000))
    got = _CDF_CACHE.get(key)
    if got is None:
        m = math.exp(q / 60)
        mu = math.log(m) - sigma * sigma / 2
        scale = sigma * math.sqrt(2)
        got = tuple(0.5 * math.erfc(-(math.log(le) - mu) / scale) for le in bounds)
        if len(_CDF_CACHE) > 20000:
            _CDF_CACHE.clear()
        _CDF_CACHE[key] = got
    return got


def _labels(**kw: str) -> Labels:
    return tuple(sorted(kw.items()))


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Telemetry:
    """Scraped history, live mesh counters and sampled traces of one cluster."""

    def __init__(
        self,
        *,
        scrape_interval: float = SCRAPE_INTERVAL,
        history_seconds: float = HISTORY_SECONDS,
        max_traces: int = 2000,
    ) -> None:
        self.scrape_interval = scrape_interval
        self.max_scrapes = max(2, int(history_seconds / scrape_interval))
        #: Unix timestamps of the scrapes; index i is `self.base + i`.
        self.times: list[float] = []
        self.base = 0
        self.series: dict[SeriesKey, Series] = {}
        self.by_name: dict[str, list[SeriesKey]] = {}
        self._last_scrape: float | None = None
        self._scrapes = 0
        #: Mesh counters: (labels without reporter, reporters) -> histogram.
        self.requests: dict[tuple[Labels, str], _Hist] = {}
        self.tcp: dict[tuple[Labels, str], list[float]] = {}
        self.services: dict[tuple[str, str], _ServiceCounters] = {}
        self.traces = TraceStore(max_traces=max_traces)
        self.cluster: Cluster | None = None
        self._period_start = 0.0
        self._pending: _Pending = {}
        #: Series of the last scrape that are not mesh counters (those never end).
        self._touched: list[Series] = []
        #: Pod uid -> (resourceVersion, its kube-state-metrics series, its cAdvisor keys).
        self._pod_cache: dict[str, tuple[Any, list[tuple[SeriesKey, float]], _CadvisorKeys]] = {}
        self._plan_version = -1
        self._plan_hists: list[tuple[Any, ...]] = []
        self._plan_services: list[tuple[Any, ...]] = []
        self._plan_tcp: list[tuple[list[float], list[float]]] = []
        self._plan_buckets: list[tuple[list[float], list[float]]] = []
        self._inc_hists: dict[int, list[Any]] = {}
        self._inc_services: dict[int, list[Any]] = {}
        self._inc_tcp: dict[int, list[Any]] = {}
        #: Label sets of mesh edges, by who talks to whom (built once per edge).
        self._bases: dict[tuple[Any, ...], dict[str, str]] = {}
        self._hists: dict[tuple[Any, ...], _Hist] = {}

    # -- time -------------------------------------------------------------------------------

    def step(self, cluster: Cluster) -> None:
        """Scrape when a scrape interval has passed (called by the traffic model each tick)."""
        self.cluster = cluster
        now = cluster.elapsed
        if self._last_scrape is None or now - self._last_scrape >= self.scrape_interval - 1e-9:
            self._last_scrape = now
            self.scrape(cluster)

    def now(self) -> float:
        """Simulated now as a Unix timestamp (what the HTTP APIs default to)."""
        if self.cluster is not None:
            return self.cluster.clock.now().timestamp()
        return self.times[-1] if self.times else 0.0

    # -- scraping ---------------------------------------------------------------------------

    def _series(self, key: SeriesKey, index: int) -> Series:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(key[0], key[1], index)
            self.by_name.setdefault(key[0], []).append(key)
        return s

    def scrape(self, cluster: Cluster) -> None:
        ts = cluster.clock.now().timestamp()
        index = self.base + len(self.times)
        self.times.append(ts)
        out: list[tuple[SeriesKey, float]] = []
        self._collect_pods(cluster, out)
        self._collect_workloads(cluster, out)
        self._collect_tcp(out)
        touched: list[Series] = []
        for key, value in out:
            series = self._series(key, index)
            _append(series, index, value)
            touched.append(series)
        # A series gone from its exporter gets a staleness marker, as Prometheus writes:
        # queries stop returning it at once instead of for the 5-minute lookback.
        for series in self._touched:
            if series.last == index - 1:
                series.values.append(math.nan)
        self._touched = touched
        for (labels, reporters), h in self.requests.items():
            if h.refs is None:
                if h.keys is None:
                    h.keys = self._mesh_keys(labels, reporters)
                h.refs = [[self._series(k, index) for k in keys] for keys in h.keys]
            values = _hist_values(h)
            for refs in h.refs:
                for series, value in zip(refs, values, strict=True):
                    if series.first + len(series.values) == index:
                        series.values.append(value)
                    else:
                        _append(series, index, value)
        self._scrapes += 1
        if len(self.times) > self.max_scrapes:
            drop = len(self.times) - self.max_scrapes
            del self.times[:drop]
            self.base += drop
        if self._scrapes % 40 == 0:
            self._trim()

    def _trim(self) -> None:
        for key, s in list(self.series.items()):
            if s.last < self.base:
                del self.series[key]
                self.by_name[key[0]].remove(key)
                for h in self.requests.values():
                    h.refs = None
                continue
            cut = self.base - s.first
            if cut > 0:
                del s.values[:cut]
                s.first = self.base

    def collect(self, cluster: Cluster) -> list[tuple[SeriesKey, float]]:
        """Every series' current value, as the exporters would report them now."""
        out: list[tuple[SeriesKey, float]] = []
        self._collect_pods(cluster, out)
        self._collect_workloads(cluster, out)
        self._collect_mesh(out)
        return out

    def _collect_pods(self, cluster: Cluster, out: list[tuple[SeriesKey, float]]) -> None:
        seen: set[str] = set()
        for pod in cluster.store.iter_live(cluster.rt("Pod")):
            meta = pod["metadata"]
            uid = meta.get("uid", "")
            seen.add(uid)
            rv = meta.get("resourceVersion")
            cached = self._pod_cache.get(uid)
            if cached is None or cached[0] != rv:
                # kube-state-metrics reads only the object: recompute when it changes.
                cached = self._pod_cache[uid] = (rv, *_pod_series(pod))
            _rv, static, cadvisor = cached
            out.extend(static)
            prt = cluster.pods.get(uid)
            if prt is None or (pod.get("spec") or {}).get("nodeName") in cluster.nodes_down:
                continue
            for cname, (image, cpu_key, memory_key, limit_key, limit) in cadvisor.items():
                crt = prt.containers.get(cname)
                if crt is None or crt.phase != "running" or crt.image != image:
                    continue
                out.append((cpu_key, round(crt.cpu_seconds, 6)))
                out.append((memory_key, float(round(crt.memory))))
                out.append((limit_key, limit))
        if len(self._pod_cache) > len(seen):
            for uid in [u for u in self._pod_cache if u not in seen]:
                del self._pod_cache[uid]

    def _collect_workloads(self, cluster: Cluster, out: list[tuple[SeriesKey, float]]) -> None:
        store = cluster.store
        ksm = "kube-state-metrics"
        for d in store.iter_live(cluster.rt("Deployment")):
            meta = d["metadata"]
            lab = _labels(job=ksm, namespace=meta.get("namespace", ""), deployment=meta["name"])
            spec_replicas = (d.get("spec") or {}).get("replicas")
            status = d.get("status") or {}
            out.append(
                (
                    ("kube_deployment_spec_replicas", lab),
                    float(1 if spec_replicas is None else spec_replicas),
                )
            )
            out.append(
                (
                    ("kube_deployment_status_replicas_available", lab),
                    float(status.get("availableReplicas") or 0),
                )
            )
            out.append(
                (
                    ("kube_deployment_status_replicas_unavailable", lab),
                    float(status.get("unavailableReplicas") or 0),
                )
            )
        for node in store.iter_live(cluster.rt("Node")):
            name = node["metadata"]["name"]
            for cond in (node.get("status") or {}).get("conditions") or []:
                current = str(cond.get("status", "Unknown")).lower()
                for st in ("true", "false", "unknown"):
                    out.append(
                        (
                            (
                                "kube_node_status_condition",
                                _labels(
                                    job=ksm,
                                    node=name,
                                    condition=str(cond.get("type", "")),
                                    status=st,
                                ),
                            ),
                            1.0 if st == current else 0.0,
                        )
                    )
        for hpa in store.iter_live(cluster.rt("HorizontalPodAutoscaler")):
            meta = hpa["metadata"]
            lab = _labels(
                job=ksm, namespace=meta.get("namespace", ""), horizontalpodautoscaler=meta["name"]
            )
            status = hpa.get("status") or {}
            out.append(
                (
                    ("kube_horizontalpodautoscaler_spec_max_replicas", lab),
                    float((hpa.get("spec") or {}).get("maxReplicas") or 0),
                )
            )
            out.append(
                (
                    ("kube_horizontalpodautoscaler_status_current_replicas", lab),
                    float(status.get("currentReplicas") or 0),
                )
            )
            out.append(
                (
                    ("kube_horizontalpodautoscaler_status_desired_replicas", lab),
                    float(status.get("desiredReplicas") or 0),
                )
            )

    def _mesh_keys(self, labels: Labels, reporters: str) -> list[list[SeriesKey]]:
        out = []
        for reporter in ("destination", "source"):
            if reporter not in reporters:
                continue
            lab = tuple(sorted((*labels, ("reporter", reporter))))
            keys: list[SeriesKey] = [("istio_requests_total", lab)]
            for le in (*(_fmt(float(b)) for b in ISTIO_BUCKETS), "+Inf"):
                keys.append(
                    (
                        "istio_request_duration_milliseconds_bucket",
                        tuple(sorted((*lab, ("le", le)))),
                    )
                )
            keys.append(("istio_request_duration_milliseconds_sum", lab))
            keys.append(("istio_request_duration_milliseconds_count", lab))
            out.append(keys)
        return out

    def _collect_mesh(self, out: list[tuple[SeriesKey, float]]) -> None:
        for (labels, reporters), h in self.requests.items():
            if h.keys is None:
                h.keys = self._mesh_keys(labels, reporters)
            values = _hist_values(h)
            for keys in h.keys:
                out.extend(zip(keys, values, strict=True))
        self._collect_tcp(out)

    def _collect_tcp(self, out: list[tuple[SeriesKey, float]]) -> None:
        for (labels, reporters), values in self.tcp.items():
            for reporter in ("destination", "source"):
                if reporter not in reporters:
                    continue
                lab = tuple(sorted((*labels, ("reporter", reporter))))
                for name, v in zip(
                    (
                        "istio_tcp_sent_bytes_total",
                        "istio_tcp_received_bytes_total",
                        "istio_tcp_connections_opened_total",
                        "istio_tcp_connections_closed_total",
                    ),
                    values,
                    strict=True,
                ):
                    out.append(((name, lab), float(math.floor(v + 1e-9))))

    # -- fed by the traffic model -------------------------------------------------------------

    def record_period(self, cluster: Cluster, traffic: Traffic, dt: float) -> None:
        """Add one traffic period's requests to the mesh counters, windows and traces.

        The increments per second are planned once per traffic graph (they only
        change when the traffic model recomputes it) and applied each period.
        """
        self.cluster = cluster
        self._period_start = cluster.elapsed - dt
        if self._plan_version != traffic.version:
            self._plan_version = traffic.version
            self._build_plan(cluster, traffic)
        for h, count, total in self._plan_hists:
            h.count += count * dt
            h.total += total * dt
        for c, requests, errors in self._plan_services:
            c.requests += requests * dt
            c.errors += errors * dt
        for values, deltas in self._plan_tcp:
            for i, d in enumerate(deltas):
                values[i] += d * dt
        for buckets, vec in self._plan_buckets:
            buckets[:] = [b + dt * v for b, v in zip(buckets, vec, strict=True)]
        now = cluster.elapsed
        for counters in self.services.values():
            counters.history.append(
                (now, counters.requests, counters.errors, tuple(counters.buckets))
            )
        self.traces.sample(cluster, traffic, dt)

    def _build_plan(self, cluster: Cluster, traffic: Traffic) -> None:
        self._inc_hists = {}
        self._inc_services = {}
        self._inc_tcp = {}
        for entry in traffic.entries:
            if entry.attempt is not None:
                self._record_call(entry.source, entry.route, entry.attempt, entry.rate)
        for p in traffic.procs:
            if not p.rates:
                continue
            for ci in range(len(p.calls)):
                a = p.attempts[ci] if ci < len(p.attempts) else None
                route = p.routes[ci] if ci < len(p.routes) else None
                if a is None or route is None:
                    continue
                count = p.call_rates[ci] if ci < len(p.call_rates) else 0.0
                if count > 0:
                    self._record_call(p, route, a, count)
        self._plan_hists = [tuple(v) for v in self._inc_hists.values()]
        self._plan_services = [tuple(v) for v in self._inc_services.values()]
        self._plan_tcp = [(v[0], list(v[1])) for v in self._inc_tcp.values()]
        vectors: dict[int, tuple[list[float], list[float]]] = {}
        for buckets, bounds, n, mean, sigma in self._pending.values():
            got = vectors.get(id(buckets))
            if got is None:
                got = vectors[id(buckets)] = (buckets, [0.0] * len(buckets))
            vec = got[1]
            for i, f in enumerate(_cdf(bounds, mean, sigma)):
                vec[i] += n * f
        self._pending.clear()
        self._plan_buckets = list(vectors.values())

    def _inc_hist(self, h: _Hist, count: float, total: float) -> None:
        got = self._inc_hists.get(id(h))
        if got is None:
            self._inc_hists[id(h)] = [h, count, total]
        else:
            got[1] += count
            got[2] += total

    def _inc_service(self, c: _ServiceCounters, requests: float, errors: float) -> None:
        got = self._inc_services.get(id(c))
        if got is None:
            self._inc_services[id(c)] = [c, requests, errors]
        else:
            got[1] += requests
            got[2] += errors

    def _inc_tcp_values(self, values: list[float], deltas: tuple[float, ...]) -> None:
        got = self._inc_tcp.get(id(values))
        if got is None:
            self._inc_tcp[id(values)] = [values, list(deltas)]
        else:
            for i, d in enumerate(deltas):
                got[1][i] += d

    def _record_call(self, source: Proc | None, route: Route, a: Attempt, count: float) -> None:
        if route.service:
            self._record_service(route.namespace, route.service, a, count)
        for stat in a.legs:
            leg = stat.leg
            if leg.service and (leg.service, leg.namespace) != (route.service, route.namespace):
                self._record_service_leg(
                    leg.namespace, leg.service, stat, count * leg.share, a.timeout_ms
                )
            if leg.kind == "nxdomain":
                continue
            self._record_leg(source, route, stat, count * leg.share, a.timeout_ms)

    def _counters(self, ns: str, name: str) -> _ServiceCounters:
        c = self.services.get((ns, name))
        if c is None:
            c = self.services[(ns, name)] = _ServiceCounters()
            # Zero at the start of the period that first reached the Service.
            c.history.append((self._period_start, 0.0, 0.0, tuple(c.buckets)))
        return c

    def _record_service(self, ns: str, name: str, a: Attempt, count: float) -> None:
        c = self._counters(ns, name)
        self._inc_service(c, count, count * a.fail)
        fast = 1.0 - a.slow
        _add(self._pending, c.buckets, FINE_BUCKETS, count * fast, a.lat, SIGMA)
        _add(self._pending, c.buckets, FINE_BUCKETS, count * a.slow, a.slow_lat, SHARP)

    def _record_service_leg(
        self, ns: str, name: str, stat: LegStat, count: float, timeout: float
    ) -> None:
        c = self._counters(ns, name)
        errors = sum(stat.errors.values()) + stat.timeout + stat.auth
        if stat.leg.kind not in ("ok", "external"):
            errors = 1.0
        self._inc_service(c, count, count * min(errors, 1.0))
        _add(
            self._pending,
            c.buckets,
            FINE_BUCKETS,
            count * (1.0 - stat.timeout),
            stat.lat or 1.0,
            SIGMA,
        )
        _add(self._pending, c.buckets, FINE_BUCKETS, count * stat.timeout, timeout, SHARP)

    def _record_leg(
        self, source: Proc | None, route: Route, stat: LegStat, count: float, timeout: float
    ) -> None:
        leg = stat.leg
        reached = leg.kind == "ok" and leg.proc is not None
        dest = leg.proc
        ident = (
            (source.workload, source.namespace, source.app) if source else None,
            (dest.workload, dest.namespace, dest.app) if reached and dest else None,
            leg.service,
            leg.namespace,
            route.host,
        )
        base = self._bases.get(ident)
        if base is None:
            base = self._bases[ident] = self._base_labels(source, route, leg, reached)
        # Traffic from outside the mesh is only seen by the destination's proxy; a
        # connection that never reaches a pod only by the source's.
        if reached:
            reporters = "destination,source" if source is not None else "destination"
        else:
            if source is None:
                return
            reporters = "source"
        self._record_leg_counts(base, reporters, stat, count, timeout, reached)

    def _base_labels(
        self, source: Proc | None, route: Route, leg: Leg, reached: bool
    ) -> dict[str, str]:
        dest = leg.proc
        return {
            "source_workload": source.workload if source else "unknown",
            "source_workload_namespace": source.namespace if source else "unknown",
            "source_app": source.app if source else "unknown",
            "destination_workload": dest.workload if reached and dest else "unknown",
            "destination_workload_namespace": dest.namespace if reached and dest else "unknown",
            "destination_app": dest.app if reached and dest else "unknown",
            "destination_service": (
                f"{leg.service}.{leg.namespace}.svc.cluster.local" if leg.service else route.host
            ),
            "destination_service_name": leg.service or route.host,
            "destination_service_namespace": leg.namespace if leg.service else "unknown",
        }

    def _record_leg_counts(
        self,
        base: dict[str, str],
        reporters: str,
        stat: LegStat,
        count: float,
        timeout: float,
        reached: bool,
    ) -> None:
        leg = stat.leg
        protocol = leg.protocol
        if protocol in ("redis", "postgres", "tcp"):
            self._record_tcp(base, reporters, stat, count, reached)
            return
        request_protocol = "grpc" if protocol == "grpc" else "http"
        outcomes: list[tuple[str, str, float, float, float]] = []
        if reached or leg.kind == "external":
            ok_share = stat.ok
            if leg.kind == "external":
                ok_share = 1.0
            outcomes.append(("ok", "", ok_share, stat.lat, stat.slow))
            for code, frac in stat.errors.items():
                outcomes.append(("error", code, frac, stat.lat, 0.0))
            if stat.timeout > 0:
                outcomes.append(("timeout", "", stat.timeout, timeout, 0.0))
            if stat.auth > 0:
                outcomes.append(("auth", "", stat.auth, 1.0, 0.0))
        elif leg.kind == "timeout":
            outcomes.append(("refused", "", 1.0, timeout, 0.0))
        elif leg.kind == "unavailable":
            outcomes.append(("no-upstream", "", 1.0, 0.5, 0.0))
        else:
            outcomes.append(("refused", "", 1.0, 1.0, 0.0))
        for kind, code, frac, lat, slow in outcomes:
            n = count * frac
            if frac <= 1e-9 or n <= 0:
                continue
            hkey = (id(base), reporters, protocol, kind, code)
            h = self._hists.get(hkey)
            if h is None:
                response_code, grpc_status, flags = mesh_status(protocol, kind, code)
                labels = tuple(
                    sorted(
                        {
                            **base,
                            "request_protocol": request_protocol,
                            "response_code": response_code,
                            "grpc_response_status": grpc_status,
                            "response_flags": flags,
                        }.items()
                    )
                )
                h = self.requests.get((labels, reporters))
                if h is None:
                    h = self.requests[(labels, reporters)] = _Hist(
                        buckets=[0.0] * len(ISTIO_BUCKETS)
                    )
                self._hists[hkey] = h
            sigma = SHARP if kind in ("timeout", "refused") and lat >= timeout else SIGMA
            fast = n * (1.0 - slow)
            self._inc_hist(h, n, fast * lat + n * slow * max(lat, stat.slow_lat))
            _add(self._pending, h.buckets, ISTIO_BUCKETS, fast, lat, sigma)
            if slow > 0:
                _add(
                    self._pending,
                    h.buckets,
                    ISTIO_BUCKETS,
                    n * slow,
                    max(stat.slow_lat, lat),
                    SHARP,
                )

    def _record_tcp(
        self, base: dict[str, str], reporters: str, stat: LegStat, count: float, reached: bool
    ) -> None:
        labels = tuple(sorted({**base, "request_protocol": "tcp", "response_flags": "-"}.items()))
        failed_labels = tuple(
            sorted({**base, "request_protocol": "tcp", "response_flags": "UF"}.items())
        )
        if reached:
            values = self.tcp.get((labels, reporters))
            if values is None:
                # The client's pooled connection, opened when it first connected.
                values = self.tcp[(labels, reporters)] = [0.0, 0.0, 1.0, 0.0]
            ok = count * (stat.ok + sum(stat.errors.values()))
            # A client whose AUTH fails drops the connection and opens a new one.
            reconnects = min(count * stat.auth, 1.0)
            self._inc_tcp_values(values, (ok * TCP_RECEIVED, ok * TCP_SENT, reconnects, reconnects))
            return
        values = self.tcp.get((failed_labels, reporters))
        if values is None:
            values = self.tcp[(failed_labels, reporters)] = [0.0, 0.0, 0.0, 0.0]
        # A client retries its connection about once a second while it fails.
        retries = min(count, 1.0)
        self._inc_tcp_values(values, (0.0, 0.0, retries, retries))

    # -- reads ------------------------------------------------------------------------------

    def service_window(
        self, namespace: str, service: str, window: float = 60.0
    ) -> tuple[float, float, float] | None:
        """(requests/s, error ratio, p99 ms) of a Service over the last `window` seconds.

        As its clients saw it: refused and timed-out connections count as
        errors. None when no request reached or tried to reach the Service.
        """
        c = self.services.get((namespace, service))
        if c is None or not c.history:
            return None
        end = c.history[-1]
        start_at = end[0] - window
        start = c.history[0]
        for snap in reversed(c.history):
            if snap[0] <= start_at + 1e-9:
                start = snap
                break
        span = end[0] - start[0]
        requests = end[1] - start[1]
        if requests <= 1e-9 or span <= 0:
            return None
        errors = end[2] - start[2]
        deltas = [a - b for a, b in zip(end[3], start[3], strict=True)]
        return (
            requests / span,
            min(1.0, max(0.0, errors / requests)),
            _quantile(deltas, requests, 0.99),
        )

    def scrape_times(self) -> list[float]:
        return list(self.times)

    def value_at(self, s: Series, t: float, lookback: float = 300.0) -> float | None:
        """The series' latest sample at or before `t` within `lookback` seconds."""
        i = bisect.bisect_right(self.times, t) - 1 + self.base
        j = min(i, s.last)
        if j < s.first or j < self.base or self.times[j - self.base] < t - lookback:
            return None
        v = s.values[j - s.first]
        # NaN is a staleness marker: the series had ended by then.
        return None if math.isnan(v) else v

    def steps_at(self, steps: list[float], lookback: float = 300.0) -> list[tuple[int, float]]:
        """Per step, (the newest scrape index at or before it, the oldest scrape time its
        lookback accepts): what `values_at` needs, computed once for all series of a query."""
        times, base = self.times, self.base
        return [(bisect.bisect_right(times, t) - 1 + base, t - lookback) for t in steps]

    def values_at(self, s: Series, at: list[tuple[int, float]]) -> list[float | None]:
        """`value_at` at every step of `at` (from `steps_at`), in one pass: a range query
        reads series x steps, and a call per point was most of its time."""
        times, base = self.times, self.base
        first, last, values = s.first, s.last, s.values
        out: list[float | None] = []
        for i, oldest in at:
            j = i if i < last else last
            if j < first or j < base or times[j - base] < oldest:
                out.append(None)
                continue
            v = values[j - first]
            out.append(None if v != v else v)  # NaN: the series had ended by then
        return out

    def samples_between(self, s: Series, start: float, end: float) -> list[tuple[float, float]]:
        """The series' samples with start < t <= end."""
        lo = bisect.bisect_right(self.times, start) + self.base
        hi = bisect.bisect_right(self.times, end) - 1 + self.base
        out = []
        for j in range(max(lo, s.first), min(hi, s.last) + 1):
            v = s.values[j - s.first]
            if not math.isnan(v):
                out.append((self.times[j - self.base], v))
        return out

    def exposition(self, cluster: Cluster) -> str:
        """Prometheus text exposition (format 0.0.4) of the current values."""
        families: dict[str, list[tuple[str, Labels, float]]] = {}
        for (name, labels), value in self.collect(cluster):
            family = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and name[: -len(suffix)] in METADATA:
                    family = name[: -len(suffix)]
            families.setdefault(family, []).append((name, labels, value))
        lines: list[str] = []
        for family in sorted(families):
            kind, help_text = METADATA.get(family, ("untyped", family))
            lines.append(f"# HELP {family} {help_text}")
            lines.append(f"# TYPE {family} {kind}")
            for name, labels, value in families[family]:
                if labels:
                    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{body}}} {_fmt(value)}")
                else:
                    lines.append(f"{name} {_fmt(value)}")
        return "\n".join(lines) + "\n"


def _append(series: Series, index: int, value: float) -> None:
    gap = index - series.last - 1
    if gap > 0:
        series.values.extend([math.nan] * gap)
    elif gap < 0:
        return
    series.values.append(value)


def _hist_values(h: _Hist) -> list[float]:
    """requests_total, the cumulative buckets, +Inf, sum and count of one mesh histogram."""
    count = float(math.floor(h.count + 1e-9))
    values = [count]
    values.extend(min(count, float(math.floor(c + 1e-9))) for c in h.buckets)
    values.append(count)
    values.append(round(h.total, 3))
    values.append(count)
    return values


#: Per container: image, the cAdvisor keys (cpu, memory, memory limit) and the limit.
_CadvisorKeys = dict[str, tuple[str, SeriesKey, SeriesKey, SeriesKey, float]]


def _pod_series(pod: dict[str, Any]) -> tuple[list[tuple[SeriesKey, float]], _CadvisorKeys]:
    """kube-state-metrics series of one pod object, and the keys of its cAdvisor series."""
    ksm = "kube-state-metrics"
    meta = pod["metadata"]
    ns, name, uid = meta.get("namespace", ""), meta["name"], meta.get("uid", "")
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    node = spec.get("nodeName") or ""
    out: list[tuple[SeriesKey, float]] = []
    phase = status.get("phase") or "Pending"
    for p in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
        lab = _labels(job=ksm, namespace=ns, pod=name, uid=uid, phase=p)
        out.append((("kube_pod_status_phase", lab), 1.0 if p == phase else 0.0))
    ready = "unknown"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = str(cond.get("status", "Unknown")).lower()
    for c in ("true", "false", "unknown"):
        lab = _labels(job=ksm, namespace=ns, pod=name, uid=uid, condition=c)
        out.append((("kube_pod_status_ready", lab), 1.0 if c == ready else 0.0))
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    cadvisor: _CadvisorKeys = {}
    for c in spec.get("containers") or []:
        cname = c.get("name", "")
        resources = c.get("resources") or {}
        for kind, metric in (
            ("limits", "kube_pod_container_resource_limits"),
            ("requests", "kube_pod_container_resource_requests"),
        ):
            for res, raw in (resources.get(kind) or {}).items():
                value, unit = _resource_value(res, raw)
                if value is None:
                    continue
                lab = _labels(
                    job=ksm,
                    namespace=ns,
                    pod=name,
                    uid=uid,
                    container=cname,
                    node=node,
                    resource=res,
                    unit=unit,
                )
                out.append(((metric, lab), value))
        cs = statuses.get(cname)
        base = {"job": ksm, "namespace": ns, "pod": name, "uid": uid, "container": cname}
        if cs is not None:
            restarts = float(cs.get("restartCount") or 0)
            out.append((("kube_pod_container_status_restarts_total", _labels(**base)), restarts))
            ready_value = 1.0 if cs.get("ready") else 0.0
            out.append((("kube_pod_container_status_ready", _labels(**base)), ready_value))
            waiting = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            if waiting:
                lab = _labels(**base, reason=waiting)
                out.append((("kube_pod_container_status_waiting_reason", lab), 1.0))
            last = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason")
            if last:
                lab = _labels(**base, reason=last)
                out.append((("kube_pod_container_status_last_terminated_reason", lab), 1.0))
        image = str(c.get("image", ""))
        cad = _labels(
            job="kubelet",
            metrics_path="/metrics/cadvisor",
            namespace=ns,
            pod=name,
            container=cname,
            image=image,
            node=node,
        )
        limit = (resources.get("limits") or {}).get("memory")
        try:
            limit_value = float(parse_memory(limit)) if limit else 0.0
        except ValueError:
            limit_value = 0.0
        cadvisor[cname] = (
            image,
            ("container_cpu_usage_seconds_total", cad),
            ("container_memory_working_set_bytes", cad),
            ("container_spec_memory_limit_bytes", cad),
            limit_value,
        )
    return out, cadvisor


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


#: Histogram additions of the current period, merged before they are applied:
#: (id(buckets), quantised mean, sigma) -> [buckets, bounds, n, mean, sigma].
_Pending = dict[tuple[int, int, int], list[Any]]


def _add(
    pending: _Pending,
    buckets: list[float],
    bounds: tuple[float, ...],
    n: float,
    mean: float,
    sigma: float,
) -> None:
    if n <= 0:
        return
    key = (id(buckets), round(math.log(max(mean, 1e-3)) * 60), round(sigma * 1000))
    got = pending.get(key)
    if got is None:
        pending[key] = [buckets, bounds, n, mean, sigma]
    else:
        got[2] += n


def _quantile(buckets: list[float], total: float, q: float) -> float:
    """histogram_quantile over cumulative FINE_BUCKETS counts."""
    rank = q * total
    prev_bound = 0.0
    prev_count = 0.0
    for bound, count in zip(FINE_BUCKETS, buckets, strict=True):
        if count >= rank:
            if count - prev_count <= 0:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return FINE_BUCKETS[-1]


def _resource_value(resource: str, raw: Any) -> tuple[float | None, str]:
    try:
        if resource == "cpu":
            return parse_cpu(raw), "core"
        if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
            return float(parse_memory(raw)), "byte"
        return float(parse_cpu(raw)), "integer"
    except (ValueError, TypeError):
        return None, ""


def series_labels(name: str, labels: Labels) -> dict[str, str]:
    """A series' labels as the Prometheus API returns them (with __name__)."""
    return {"__name__": name, **dict(labels)}


__all__ = ["ISTIO_BUCKETS", "SCRAPE_INTERVAL", "Series", "Telemetry", "series_labels"]
