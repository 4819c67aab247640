"""Sampled traces: a few requests per period followed along the call path they actually took.

Each traffic period, a handful of requests per entry operation are sampled
(a seed each). A trace is built from its seed only when asked for, by
walking the period's frozen process graph (twin/traffic_net.py `Proc`s) with
a random generator of its own: which endpoint each call reached, whether it
failed and with what error, how long each span took. So keeping 2,000 traces
costs a few references, and the same seed always gives the same trace.

Spans follow OpenTelemetry's conventions as Jaeger shows them: a server span
per request a process handles, a client span per call it makes (kind,
rpc.* / http.* / db.* tags), `error=true` and an event log with the error
message on failed spans, CHILD_OF references to the parent.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.traffic_errors import (
    GRPC_CODES,
    FailureKind,
    client_error,
    default_code,
    grpc_code,
    http_status,
)

if TYPE_CHECKING:
    from twin.behavior import Call
    from twin.cluster import Cluster
    from twin.traffic import Traffic
    from twin.traffic_net import Leg, Proc, Route

Obj = dict[str, Any]

#: Traces sampled per entry operation and period.
SAMPLES_PER_OPERATION = 1
#: Deepest call chain followed (cycles stop here).
MAX_DEPTH = 12
#: Fully built traces kept for repeated reads.
CACHE_SIZE = 256
SIGMA = 0.45
NETWORK_MS = 0.35
DEFAULT_TIMEOUT_MS = 10_000.0

_LANGUAGE = {
    "logrus": "go",
    "pino": "nodejs",
    "python-json": "python",
    "dotnet": "dotnet",
    "log4j": "java",
    "locust": "python",
}


@dataclass(eq=False)
class TraceSeed:
    trace_id: str
    start_us: int
    proc: Proc
    op: str
    seed: int


@dataclass
class TraceSummary:
    trace_id: str
    start_us: int
    duration_us: int
    services: frozenset[str]
    operations: frozenset[tuple[str, str]]
    error: bool
    #: (parent service, child service) -> calls.
    edges: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (service, tag key, tag value as text) of every span: prunes tag searches.
    facts: frozenset[tuple[str, str, str]] = frozenset()


@dataclass
class _Span:
    span_id: str
    parent: str
    proc: Proc
    operation: str
    start_us: int
    duration_us: int
    kind: str
    tags: list[tuple[str, Any]]
    #: (timestamp us, error message) of the span's error events.
    logs: list[tuple[int, str]]


class TraceStore:
    """The last `max_traces` sampled traces, built on demand in Jaeger's JSON shape."""

    def __init__(self, *, max_traces: int = 2000) -> None:
        self.max_traces = max_traces
        self.seeds: deque[TraceSeed] = deque()
        self.by_id: dict[str, TraceSeed] = {}
        self.summaries: dict[str, TraceSummary] = {}
        self._cache: OrderedDict[str, Obj] = OrderedDict()
        #: service -> {(operation, span kind)} seen in sampled periods.
        self.operations: dict[str, set[tuple[str, str]]] = {}

    # -- sampling ---------------------------------------------------------------------------

    def sample(self, cluster: Cluster, traffic: Traffic, dt: float) -> None:
        rng = cluster.rng
        now_us = int(cluster.clock.now().timestamp() * 1e6)
        for entry in traffic.entries:
            legs = [leg for leg in entry.route.legs if leg.kind == "ok" and leg.proc is not None]
            if not legs:
                continue
            ops: dict[str, float] = {}
            for leg in legs:
                assert leg.proc is not None
                for op, r in leg.proc.rates.items():
                    ops[op] = ops.get(op, 0.0) + r
            for op, rate in sorted(ops.items()):
                expected = rate * dt
                n = SAMPLES_PER_OPERATION if expected >= 1 else int(rng.random() < expected)
                for _ in range(n):
                    leg = _pick(rng, legs)
                    assert leg.proc is not None
                    if leg.proc.rates.get(op, 0.0) <= 0:
                        continue
                    seed = TraceSeed(
                        trace_id=f"{rng.getrandbits(128):032x}",
                        start_us=now_us - int(rng.random() * dt * 1e6),
                        proc=leg.proc,
                        op=op,
                        seed=rng.getrandbits(63),
                    )
                    self._add(seed)
        for p in traffic.procs:
            if not p.rates or p.profile.protocol in ("redis", "postgres", "tcp"):
                continue
            ops_seen = self.operations.setdefault(p.app, set())
            for op in p.rates:
                ops_seen.add((_server_operation(p, op), "server"))
            for call in p.calls:
                ops_seen.add((_client_operation(call), "client"))

    def _add(self, seed: TraceSeed) -> None:
        self.seeds.append(seed)
        self.by_id[seed.trace_id] = seed
        while len(self.seeds) > self.max_traces:
            old = self.seeds.popleft()
            self.by_id.pop(old.trace_id, None)
            self.summaries.pop(old.trace_id, None)
            self._cache.pop(old.trace_id, None)

    # -- reads ------------------------------------------------------------------------------

    def get(self, trace_id: str) -> Obj | None:
        """The trace in Jaeger's JSON shape, or None."""
        trace_id = trace_id.lower().rjust(32, "0")
        seed = self.by_id.get(trace_id)
        if seed is None:
            return None
        cached = self._cache.get(trace_id)
        if cached is not None:
            self._cache.move_to_end(trace_id)
            return cached
        spans, summary = _build(seed)
        self.summaries[trace_id] = summary
        trace = _jaeger(seed, spans)
        self._cache[trace_id] = trace
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return trace

    def summary(self, trace_id: str) -> TraceSummary | None:
        """What a search needs to know of a trace (kept for every stored trace)."""
        got = self.summaries.get(trace_id)
        if got is None:
            seed = self.by_id.get(trace_id)
            if seed is None:
                return None
            got = self.summaries[trace_id] = _build(seed)[1]
        return got

    def services(self) -> list[str]:
        return sorted(self.operations)

    def service_operations(self, service: str) -> list[tuple[str, str]]:
        return sorted(self.operations.get(service, ()))

    def find(
        self,
        *,
        service: str | None = None,
        operation: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        min_duration_us: int | None = None,
        max_duration_us: int | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 20,
    ) -> list[Obj]:
        """Traces matching a Jaeger search, newest first."""
        out: list[Obj] = []
        for seed in sorted(self.seeds, key=lambda s: s.start_us, reverse=True):
            if start_us is not None and seed.start_us < start_us:
                continue
            if end_us is not None and seed.start_us > end_us:
                continue
            summary = self.summary(seed.trace_id)
            if summary is None:
                continue
            if service and service not in summary.services:
                continue
            if operation and service and (service, operation) not in summary.operations:
                continue
            if min_duration_us is not None and summary.duration_us < min_duration_us:
                continue
            if max_duration_us is not None and summary.duration_us > max_duration_us:
                continue
            if tags and not _may_match(summary, service, tags):
                continue
            trace = self.get(seed.trace_id)
            if trace is None:
                continue
            if (tags or (operation and not service)) and not _matches(
                trace, service, operation, tags or {}
            ):
                continue
            out.append(trace)
            if len(out) >= limit:
                break
        return out

    def dependencies(self, end_us: int, lookback_us: int) -> list[Obj]:
        """Jaeger's service dependency links from the traces in the window."""
        counts: dict[tuple[str, str], int] = {}
        for seed in self.seeds:
            if not end_us - lookback_us <= seed.start_us <= end_us:
                continue
            summary = self.summary(seed.trace_id)
            if summary is None:
                continue
            for edge, n in summary.edges.items():
                counts[edge] = counts.get(edge, 0) + n
        return [
            {"parent": parent, "child": child, "callCount": n}
            for (parent, child), n in sorted(counts.items())
        ]


# -- building ---------------------------------------------------------------------------------


def _pick(rng: random.Random, legs: list[Leg]) -> Leg:
    total = sum(leg.share for leg in legs)
    x = rng.random() * total
    for leg in legs:
        x -= leg.share
        if x <= 0:
            return leg
    return legs[-1]


def _server_operation(proc: Proc, op: str) -> str:
    for o in proc.profile.operations:
        if o.name == op and o.path:
            return f"{o.method or 'GET'} {o.path}"
    return op or f"{'GET /' if proc.profile.protocol == 'http' else 'request'}"


def _client_operation(call: Call) -> str:
    return call.operation or call.service


def _lognormal(rng: random.Random, mean: float) -> float:
    if mean <= 0:
        return 0.0
    return mean * math.exp(SIGMA * rng.gauss(0.0, 1.0) - SIGMA * SIGMA / 2)


def _tag(key: str, value: Any) -> tuple[str, Any]:
    return (key, value)


def _jaeger_tag(key: str, value: Any) -> Obj:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    return {"key": key, "type": "string", "value": str(value)}


class _Builder:
    def __init__(self, seed: TraceSeed) -> None:
        self.seed = seed
        self.rng = random.Random(seed.seed)
        self.spans: list[_Span] = []
        self.edges: dict[tuple[str, str], int] = {}

    def span_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def server(
        self, proc: Proc, op: str, start: float, parent: str, depth: int
    ) -> tuple[float, bool, str, str, bool]:
        """(duration ms, failed, code, detail, hung) of one request `proc` serves."""
        rng = self.rng
        if proc.hang or (proc.overload > 0 and rng.random() < proc.overload):
            return 0.0, True, "", "", True
        outcome = proc.outcomes.get(op)
        own_mean = outcome.own_ms if outcome is not None else proc.profile.latency_ms
        own = _lognormal(rng, own_mean)
        span_id = self.span_id()
        t = start + own * 0.3
        failed = False
        code = ""
        detail = ""
        own_code = default_code(proc.profile.protocol, proc.profile.error_code)
        if proc.own_fail > 0 and rng.random() < proc.own_fail:
            failed = True
            code = default_code(proc.profile.protocol)
            detail = proc.own_log or "internal error"
        elif depth < MAX_DEPTH:
            for ci, call in enumerate(proc.calls):
                if call.operations and op not in call.operations:
                    continue
                route = proc.routes[ci] if ci < len(proc.routes) else None
                if route is None:
                    continue
                n = int(call.per_request)
                if rng.random() < call.per_request - n:
                    n += 1
                stop = False
                for _ in range(n):
                    dur, call_failed, msg = self.client(proc, call, route, t, span_id, depth)
                    t += dur
                    if call_failed and not call.soft:
                        failed = True
                        code = call.code or own_code
                        detail = _wrap(call.error, msg)
                        stop = True
                        break
                if stop:
                    break
        duration = (t - start) + own * 0.7
        if proc.profile.protocol not in ("redis", "postgres", "tcp"):
            tags = self._server_tags(proc, op, failed, code, detail)
            logs = []
            if failed:
                logs.append(self._error_log(start + duration, detail))
            self.spans.append(
                _Span(
                    span_id,
                    parent,
                    proc,
                    _server_operation(proc, op),
                    _us(start),
                    _dur(duration),
                    "server",
                    tags,
                    logs,
                )
            )
        return duration, failed, code, detail, False

    def client(
        self, caller: Proc, call: Call, route: Route, start: float, parent: str, depth: int
    ) -> tuple[float, bool, str]:
        """(duration ms, failed, message) of one call `caller` makes."""
        rng = self.rng
        timeout = call.timeout_ms or DEFAULT_TIMEOUT_MS
        legs = route.legs
        if not legs:
            return 0.0, False, ""
        leg = _pick(rng, legs)
        span_id = self.span_id()
        protocol = leg.protocol
        local = f"{caller.ip}:{40000 + rng.randrange(20000)}"
        failed = False
        msg = ""
        dur = NETWORK_MS
        callee_app = ""
        if (leg.kind in ("ok", "external")) and (
            route.service in caller.auth_deps or route.host in caller.auth_deps
        ):
            failed = True
            msg = client_error(
                protocol, "auth", host=route.host, port=route.port, local=local, remote=leg.address
            )
            dur = 1.0
        elif leg.kind == "external":
            dur = _lognormal(rng, 20.0)
        elif leg.kind != "ok" or leg.proc is None:
            kind: FailureKind = (
                "dial" if leg.kind in ("nxdomain", "refused", "timeout") else "unavailable"
            )
            failed = True
            msg = client_error(
                protocol,
                kind,
                detail=leg.detail,
                host=route.host,
                port=route.port,
                local=local,
                remote=leg.address,
            )
            dur = timeout if leg.kind == "timeout" else _lognormal(rng, 1.0)
        else:
            callee = leg.proc
            callee_app = callee.app
            op = call.operation or _pick_op(rng, callee)
            extra = caller.extra_to.get(leg.service, 0.0) + NETWORK_MS
            child, child_failed, code, detail, hung = self.server(
                callee, op, start + extra / 2, span_id, depth + 1
            )
            if hung or child + extra > timeout:
                failed = True
                msg = client_error(
                    protocol,
                    "deadline",
                    host=route.host,
                    port=route.port,
                    local=local,
                    remote=leg.address,
                )
                dur = timeout
            elif child_failed:
                failed = True
                msg = client_error(
                    protocol,
                    "status",
                    detail=detail,
                    code=code,
                    host=route.host,
                    port=route.port,
                    local=local,
                    remote=leg.address,
                )
                dur = child + extra
            else:
                dur = child + extra
        if callee_app:
            key = (caller.app, callee_app)
            self.edges[key] = self.edges.get(key, 0) + 1
        tags = self._client_tags(caller, call, route, leg, failed)
        logs = [self._error_log(start + dur, msg)] if failed else []
        self.spans.append(
            _Span(
                span_id,
                parent,
                caller,
                _client_operation(call),
                _us(start),
                _dur(dur),
                "client",
                tags,
                logs,
            )
        )
        return dur, failed, msg

    def _server_tags(
        self, proc: Proc, op: str, failed: bool, code: str, detail: str
    ) -> list[tuple[str, Any]]:
        tags = [_tag("span.kind", "server")]
        if proc.profile.protocol == "grpc":
            service, _, method = op.rpartition("/")
            status = GRPC_CODES.get(grpc_code(code), 2) if failed else 0
            tags += [
                _tag("rpc.system", "grpc"),
                _tag("rpc.service", service),
                _tag("rpc.method", method),
                _tag("rpc.grpc.status_code", status),
            ]
        else:
            opdef = next((o for o in proc.profile.operations if o.name == op), None)
            method = opdef.method if opdef and opdef.method else "GET"
            route = opdef.path if opdef and opdef.path else "/"
            tags += [
                _tag("http.method", method),
                _tag("http.route", route),
                _tag("http.status_code", http_status(code) if failed else 200),
            ]
        if failed:
            tags += [_tag("error", True), _tag("otel.status_code", "ERROR")]
            tags.append(_tag("otel.status_description", detail))
        return tags

    def _client_tags(
        self, caller: Proc, call: Call, route: Route, leg: Leg, failed: bool
    ) -> list[tuple[str, Any]]:
        tags = [_tag("span.kind", "client"), _tag("net.peer.name", route.host)]
        if route.port:
            tags.append(_tag("net.peer.port", route.port))
        if leg.protocol == "grpc":
            service, _, method = (call.operation or "").rpartition("/")
            tags += [
                _tag("rpc.system", "grpc"),
                _tag("rpc.service", service),
                _tag("rpc.method", method),
            ]
        elif leg.protocol in ("redis", "postgres"):
            tags += [_tag("db.system", "redis" if leg.protocol == "redis" else "postgresql")]
            if call.operation:
                tags.append(_tag("db.operation", call.operation))
        else:
            tags.append(_tag("http.method", "GET"))
        if failed:
            tags += [_tag("error", True), _tag("otel.status_code", "ERROR")]
        return tags

    def _error_log(self, at: float, message: str) -> tuple[int, str]:
        return (_us(at), message)


def _pick_op(rng: random.Random, proc: Proc) -> str:
    ops = [(o.name, o.weight) for o in proc.profile.operations if o.weight > 0]
    if not ops:
        return ""
    total = sum(w for _, w in ops)
    x = rng.random() * total
    for name, w in ops:
        x -= w
        if x <= 0:
            return name
    return ops[-1][0]


def _wrap(template: str, cause: str) -> str:
    if not template:
        return cause
    return template.replace("{cause}", cause)


def _us(ms: float) -> int:
    return round(ms * 1000)


def _dur(ms: float) -> int:
    return max(1, round(ms * 1000))


def _build(seed: TraceSeed) -> tuple[list[_Span], TraceSummary]:
    """The trace's spans (in start order) and its summary, from its seed alone."""
    b = _Builder(seed)
    origin = seed.start_us / 1000.0
    b.server(seed.proc, seed.op, origin, "", 0)
    spans = sorted(b.spans, key=lambda s: (s.start_us, s.kind != "server"))
    services: set[str] = set()
    operations: set[tuple[str, str]] = set()
    facts: set[tuple[str, str, str]] = set()
    error = False
    start = min((s.start_us for s in spans), default=seed.start_us)
    end = seed.start_us
    for s in spans:
        app = s.proc.app
        services.add(app)
        operations.add((app, s.operation))
        for key, value in s.tags:
            facts.add((app, key, _text(value)))
            if key == "error":
                error = True
        end = max(end, s.start_us + s.duration_us)
    summary = TraceSummary(
        trace_id=seed.trace_id,
        start_us=start,
        duration_us=end - start,
        services=frozenset(services),
        operations=frozenset(operations),
        error=error,
        edges=dict(b.edges),
        facts=frozenset(facts),
    )
    return spans, summary


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _jaeger(seed: TraceSeed, spans: list[_Span]) -> Obj:
    """The trace in Jaeger's JSON shape."""
    processes: dict[int, str] = {}
    process_objs: dict[str, Obj] = {}
    out: list[Obj] = []
    for s in spans:
        pid = processes.get(id(s.proc))
        if pid is None:
            pid = processes[id(s.proc)] = f"p{len(processes) + 1}"
            language = _LANGUAGE.get(s.proc.profile.log_style, "unknown")
            process_objs[pid] = {
                "serviceName": s.proc.app,
                "tags": [
                    _jaeger_tag("hostname", s.proc.pod),
                    _jaeger_tag("ip", s.proc.ip),
                    _jaeger_tag("k8s.namespace.name", s.proc.namespace),
                    _jaeger_tag("k8s.pod.name", s.proc.pod),
                    _jaeger_tag("telemetry.sdk.language", language),
                ],
            }
        out.append(
            {
                "traceID": seed.trace_id,
                "spanID": s.span_id,
                "flags": 1,
                "operationName": s.operation,
                "references": (
                    [{"refType": "CHILD_OF", "traceID": seed.trace_id, "spanID": s.parent}]
                    if s.parent
                    else []
                ),
                "startTime": s.start_us,
                "duration": s.duration_us,
                "tags": [_jaeger_tag(k, v) for k, v in s.tags],
                "logs": [
                    {
                        "timestamp": at,
                        "fields": [_jaeger_tag("event", "error"), _jaeger_tag("message", msg)],
                    }
                    for at, msg in s.logs
                ],
                "processID": pid,
                "warnings": None,
            }
        )
    return {"traceID": seed.trace_id, "spans": out, "processes": process_objs, "warnings": None}


def _may_match(summary: TraceSummary, service: str | None, tags: dict[str, str]) -> bool:
    """Whether some span of the trace (of `service`, if given) could carry all `tags`."""
    apps = [service] if service else sorted(summary.services)
    facts = summary.facts
    return any(
        all((app, k, v) in facts or (app, k, v.lower()) in facts for k, v in tags.items())
        for app in apps
    )


def _matches(trace: Obj, service: str | None, operation: str | None, tags: dict[str, str]) -> bool:
    processes = trace["processes"]
    for span in trace["spans"]:
        if service and processes[span["processID"]]["serviceName"] != service:
            continue
        if operation and span["operationName"] != operation:
            continue
        values = {t["key"]: t["value"] for t in span["tags"]}
        if all(_tag_equal(values.get(k), v) for k, v in tags.items()):
            return True
    return False


def _tag_equal(actual: Any, wanted: str) -> bool:
    if actual is None:
        return False
    if isinstance(actual, bool):
        return str(actual).lower() == wanted.lower()
    return str(actual) == wanted
