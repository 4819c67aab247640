"""The twin's telemetry over HTTP: what Prometheus and Jaeger would serve for a real cluster.

`add_routes(app, cluster)` mounts, on the API server's aiohttp application:
- `/metrics`: the current values in the Prometheus text exposition format;
- `/prometheus/api/v1/`: `query`, `query_range`, `series`, `labels` and
  `label/<name>/values` of the Prometheus HTTP API, for plain selectors
  (twin/telemetry_promql.py); anything more is a `bad_data` error;
- `/jaeger/api/`: `services`, `services/<svc>/operations`, `operations`,
  `traces` (search) and `traces/<id>`, `dependencies` of Jaeger's query API.

Times are the simulated clock's. Every read holds the cluster lock.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from twin.telemetry import Telemetry
from twin.telemetry_promql import (
    QueryError,
    instant,
    label_names,
    label_values,
    parse_duration,
    parse_time,
    range_query,
    series,
)

if TYPE_CHECKING:
    from twin.cluster import Cluster

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Jaeger's default number of traces in a search.
DEFAULT_TRACE_LIMIT = 20
#: Jaeger's default search lookback, seconds.
DEFAULT_LOOKBACK = 3600.0


def _telemetry(cluster: Cluster) -> Telemetry:
    tel = cluster.telemetry
    if not isinstance(tel, Telemetry):
        raise web.HTTPServiceUnavailable(
            text=json.dumps(
                {
                    "status": "error",
                    "errorType": "unavailable",
                    "error": "telemetry is not installed",
                }
            ),
            content_type="application/json",
        )
    return tel


async def _params(request: web.Request) -> dict[str, list[str]]:
    """Query string and form parameters, each name with all its values (match[] repeats)."""
    out: dict[str, list[str]] = {}
    for key, value in request.query.items():
        out.setdefault(key, []).append(value)
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        for key, field in form.items():
            if isinstance(field, str):
                out.setdefault(key, []).append(field)
    return out


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _prom_ok(data: Any) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def _prom_error(message: str, status: int = 400, kind: str = "bad_data") -> web.Response:
    return web.json_response(
        {"status": "error", "errorType": kind, "error": message}, status=status
    )


def add_routes(app: web.Application, cluster: Cluster) -> None:
    """Mount /metrics, /prometheus/api/v1/... and /jaeger/api/... for `cluster`."""

    def prom(handler: Callable[[Telemetry, dict[str, list[str]]], Any]) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            params = await _params(request)
            params.update({k: [v] for k, v in request.match_info.items()})
            try:
                with cluster.lock:
                    data = handler(_telemetry(cluster), params)
            except QueryError as exc:
                return _prom_error(str(exc))
            return _prom_ok(data)

        return wrapped

    def _time_range(params: dict[str, list[str]]) -> tuple[float | None, float | None]:
        start = _one(params, "start")
        end = _one(params, "end")
        return (
            parse_time(start) if start else None,
            parse_time(end) if end else None,
        )

    def query(tel: Telemetry, params: dict[str, list[str]]) -> Any:
        q = _one(params, "query")
        if not q:
            raise QueryError("parameter 'query' is required")
        at = _one(params, "time")
        return instant(tel, q, parse_time(at) if at else tel.now())

    def query_range_(tel: Telemetry, params: dict[str, list[str]]) -> Any:
        q = _one(params, "query")
        if not q:
            raise QueryError("parameter 'query' is required")
        start, end, step = _one(params, "start"), _one(params, "end"), _one(params, "step")
        if not start or not end or not step:
            raise QueryError("parameters 'start', 'end' and 'step' are required")
        return range_query(tel, q, parse_time(start), parse_time(end), parse_duration(step))

    def series_(tel: Telemetry, params: dict[str, list[str]]) -> Any:
        matches = params.get("match[]") or []
        if not matches:
            raise QueryError("no match[] parameter provided")
        start, end = _time_range(params)
        return series(tel, matches, start, end)

    def labels_(tel: Telemetry, params: dict[str, list[str]]) -> Any:
        start, end = _time_range(params)
        return label_names(tel, params.get("match[]") or [], start, end)

    def label_values_(tel: Telemetry, params: dict[str, list[str]]) -> Any:
        start, end = _time_range(params)
        name = _one(params, "name") or ""
        return label_values(tel, name, params.get("match[]") or [], start, end)

    async def metrics(_request: web.Request) -> web.StreamResponse:
        with cluster.lock:
            text = _telemetry(cluster).exposition(cluster)
        return web.Response(
            text=text, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    base = "/prometheus/api/v1"
    for path, handler in (
        ("query", query),
        ("query_range", query_range_),
        ("series", series_),
        ("labels", labels_),
        ("label/{name}/values", label_values_),
    ):
        app.router.add_route("GET", f"{base}/{path}", prom(handler))
        app.router.add_route("POST", f"{base}/{path}", prom(handler))
    app.router.add_get("/metrics", metrics)
    _add_jaeger(app, cluster)


# -- Jaeger -----------------------------------------------------------------------------------


def _jaeger(data: Any, *, total: int | None = None, limit: int = 0) -> web.Response:
    if total is None:
        total = len(data) if isinstance(data, list) else 0
    return web.json_response(
        {"data": data, "total": total, "limit": limit, "offset": 0, "errors": None}
    )


def _jaeger_error(message: str, status: int = 400) -> web.Response:
    return web.json_response(
        {
            "data": None,
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": [{"code": status, "msg": message}],
        },
        status=status,
    )


def _micros(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise QueryError(f"unable to parse param '{name}': {text!r} is not an integer") from None


def _jaeger_duration(text: str, name: str) -> int:
    """A Go duration (`1.2s`, `100ms`, `500us`) in microseconds."""
    units = (
        ("us", 1),
        ("µs", 1),
        ("ms", 1000),
        ("s", 1_000_000),
        ("m", 60_000_000),
        ("h", 3_600_000_000),
    )
    raw = text.strip()
    for suffix, scale in sorted(units, key=lambda u: -len(u[0])):
        if raw.endswith(suffix):
            try:
                return round(float(raw[: -len(suffix)]) * scale)
            except ValueError:
                break
    raise QueryError(f"unable to parse param '{name}': time: invalid duration {text!r}")


def _add_jaeger(app: web.Application, cluster: Cluster) -> None:
    async def services(_request: web.Request) -> web.StreamResponse:
        with cluster.lock:
            names = _telemetry(cluster).traces.services()
        return _jaeger(names)

    async def service_operations(request: web.Request) -> web.StreamResponse:
        service = request.match_info["service"]
        with cluster.lock:
            ops = _telemetry(cluster).traces.service_operations(service)
        return _jaeger(sorted({name for name, _kind in ops}))

    async def operations(request: web.Request) -> web.StreamResponse:
        service = request.query.get("service", "")
        kind = request.query.get("spanKind", "")
        if not service:
            return _jaeger_error("parameter 'service' is required")
        with cluster.lock:
            ops = _telemetry(cluster).traces.service_operations(service)
        data = [{"name": n, "spanKind": k} for n, k in ops if not kind or k == kind]
        return _jaeger(data)

    async def trace(request: web.Request) -> web.StreamResponse:
        trace_id = request.match_info["trace_id"]
        with cluster.lock:
            got = _telemetry(cluster).traces.get(trace_id)
        if got is None:
            return _jaeger_error("trace not found", 404)
        return _jaeger([got])

    async def traces(request: web.Request) -> web.StreamResponse:
        q = request.query
        ids = q.getall("traceID", [])
        try:
            with cluster.lock:
                tel = _telemetry(cluster)
                if ids:
                    found = [t for t in (tel.traces.get(i) for i in ids) if t is not None]
                    return _jaeger(found)
                service = q.get("service", "")
                if not service:
                    raise QueryError("parameter 'service' is required")
                now_us = int(tel.now() * 1e6)
                end = _micros(q["end"], "end") if q.get("end") else now_us
                if q.get("start"):
                    start = _micros(q["start"], "start")
                else:
                    lookback = q.get("lookback", "")
                    seconds = (
                        parse_duration(lookback)
                        if lookback and lookback != "custom"
                        else DEFAULT_LOOKBACK
                    )
                    start = end - int(seconds * 1e6)
                limit = int(q.get("limit") or DEFAULT_TRACE_LIMIT)
                min_d = (
                    _jaeger_duration(q["minDuration"], "minDuration")
                    if q.get("minDuration")
                    else None
                )
                max_d = (
                    _jaeger_duration(q["maxDuration"], "maxDuration")
                    if q.get("maxDuration")
                    else None
                )
                tags = _tags(q.get("tags"), q.getall("tag", []))
                found = tel.traces.find(
                    service=service,
                    operation=q.get("operation") or None,
                    start_us=start,
                    end_us=end,
                    min_duration_us=min_d,
                    max_duration_us=max_d,
                    tags=tags,
                    limit=limit,
                )
        except (QueryError, ValueError) as exc:
            return _jaeger_error(str(exc))
        return _jaeger(found, limit=limit)

    async def dependencies(request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            with cluster.lock:
                tel = _telemetry(cluster)
                end_ms = int(q["endTs"]) if q.get("endTs") else int(tel.now() * 1000)
                lookback_ms = int(q["lookback"]) if q.get("lookback") else 86_400_000
                data = tel.traces.dependencies(end_ms * 1000, lookback_ms * 1000)
        except ValueError as exc:
            return _jaeger_error(f"unable to parse param: {exc}")
        return _jaeger(data)

    app.router.add_get("/jaeger/api/services", services)
    app.router.add_get("/jaeger/api/services/{service}/operations", service_operations)
    app.router.add_get("/jaeger/api/operations", operations)
    app.router.add_get("/jaeger/api/traces", traces)
    app.router.add_get("/jaeger/api/traces/{trace_id}", trace)
    app.router.add_get("/jaeger/api/dependencies", dependencies)


def _tags(raw: str | None, pairs: list[str]) -> dict[str, str]:
    """Jaeger's `tags` (a JSON object) and repeated `tag=key:value` parameters."""
    out: dict[str, str] = {}
    if raw:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise QueryError(f"malformed 'tags' parameter: {exc}") from exc
        if not isinstance(data, dict):
            raise QueryError("malformed 'tags' parameter: expected a JSON object")
        out.update({str(k): str(v) for k, v in data.items()})
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep:
            raise QueryError(f"malformed 'tag' parameter {pair!r}: expected key:value")
        out[key] = value
    return out
