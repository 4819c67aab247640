"""Traces: the `TraceSource` protocol over Jaeger's query API (which the twin also serves).

Traces show what metrics cannot: which callee a failing request died in, and
the real call graph (Jaeger's dependencies). Traces are summarised and
capped: a model needs the failing span and its path, not ten thousand spans.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self

import httpx
from pydantic import BaseModel, Field

from tools.errors import (
    BackendUnavailable,
    Invalid,
    NotFound,
    ServerError,
    Timeout,
    ToolError,
    retry,
)
from tools.redact import redact

#: Spans kept per trace summary.
MAX_SPANS = 40


class SpanSummary(BaseModel):
    span_id: str
    parent_id: str | None = None
    service: str
    operation: str
    start: str
    duration_ms: float
    error: bool = False
    status: str | None = Field(default=None, description="error message, or http/grpc status")
    kind: str | None = Field(default=None, description="server or client (span.kind)")
    peer: str | None = Field(default=None, description="the host a client span called")


class TraceSummary(BaseModel):
    trace_id: str
    root_service: str
    root_operation: str
    start: str
    duration_ms: float
    span_count: int
    services: list[str]
    error_spans: list[SpanSummary]
    spans: list[SpanSummary]
    spans_truncated: bool = False


class Dependency(BaseModel):
    parent: str
    child: str
    call_count: int


class TraceSource(Protocol):
    """Where traces come from."""

    def services(self) -> list[str]: ...

    def operations(self, service: str) -> list[str]: ...

    def traces(
        self,
        service: str,
        *,
        operation: str | None = None,
        errors_only: bool = False,
        lookback: timedelta = timedelta(hours=1),
        limit: int = 20,
        min_duration_ms: float | None = None,
    ) -> list[TraceSummary]: ...

    def dependencies(self, lookback: timedelta = timedelta(hours=1)) -> list[Dependency]: ...


def _iso_us(us: float) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tags(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {str(t.get("key")): t.get("value") for t in items or []}


def _is_error(tags: dict[str, Any]) -> bool:
    if str(tags.get("error", "")).lower() == "true" or tags.get("error") is True:
        return True
    if str(tags.get("otel.status_code", "")).upper() == "ERROR":
        return True
    code = str(tags.get("http.status_code", ""))
    return code.startswith("5")


def summarize_trace(trace: dict[str, Any]) -> TraceSummary:
    processes = trace.get("processes") or {}
    spans_raw = sorted(trace.get("spans") or [], key=lambda s: s.get("startTime", 0))
    spans: list[SpanSummary] = []
    for s in spans_raw:
        tags = _tags(s.get("tags"))
        parent = next(
            (r.get("spanID") for r in s.get("references") or [] if r.get("refType") == "CHILD_OF"),
            None,
        )
        log_message = next(
            (
                f.get("value")
                for entry in s.get("logs") or []
                for f in entry.get("fields") or []
                if f.get("key") in ("message", "error.message", "exception.message")
            ),
            None,
        )
        status = next(
            (
                v
                for v in (
                    tags.get("error.message"),
                    log_message,
                    tags.get("otel.status_description"),
                    tags.get("grpc.status_code"),
                    tags.get("rpc.grpc.status_code"),
                    tags.get("http.status_code"),
                )
                if v not in (None, "")
            ),
            None,
        )
        peer = tags.get("net.peer.name") or tags.get("peer.service")
        spans.append(
            SpanSummary(
                span_id=str(s.get("spanID")),
                parent_id=str(parent) if parent else None,
                service=str((processes.get(s.get("processID")) or {}).get("serviceName", "?")),
                operation=str(s.get("operationName")),
                start=_iso_us(float(s.get("startTime", 0))),
                duration_ms=round(float(s.get("duration", 0)) / 1000.0, 3),
                error=_is_error(tags),
                status=redact(str(status))[0] if status is not None else None,
                kind=str(tags["span.kind"]) if tags.get("span.kind") else None,
                peer=str(peer) if peer else None,
            )
        )
    root = next((s for s in spans if s.parent_id is None), spans[0] if spans else None)
    return TraceSummary(
        trace_id=str(trace.get("traceID")),
        root_service=root.service if root else "?",
        root_operation=root.operation if root else "?",
        start=root.start if root else "",
        duration_ms=root.duration_ms if root else 0.0,
        span_count=len(spans),
        services=sorted({s.service for s in spans}),
        error_spans=[s for s in spans if s.error][:MAX_SPANS],
        spans=spans[:MAX_SPANS],
        spans_truncated=len(spans) > MAX_SPANS,
    )


class JaegerTraceSource:
    """Jaeger's query HTTP API (/api/services, /api/traces, /api/dependencies)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
        attempts: int = 3,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)
        self.clock = clock
        self.attempts = attempts

    @classmethod
    def for_twin(
        cls, twin_url: str, *, clock: Callable[[], datetime] | None = None
    ) -> JaegerTraceSource:
        """The twin serves the same API under <twin url>/jaeger."""
        return cls(twin_url.rstrip("/") + "/jaeger", clock=clock)

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = f"{self.base_url}{path}"
        request = f"GET {url}" + (f"?{httpx.QueryParams(params)}" if params else "")

        def once() -> Any:
            try:
                response = self.client.get(url, params=params)
            except httpx.TimeoutException as exc:
                raise Timeout(f"{request}: no answer in time", request=request) from exc
            except httpx.HTTPError as exc:
                raise BackendUnavailable(
                    f"cannot reach the trace backend at {self.base_url}: {exc}", request=request
                ) from exc
            try:
                body = response.json()
            except ValueError:
                body = {}
            if response.status_code >= 400:
                errors = body.get("errors") or [{"msg": response.text[:300]}]
                message = "; ".join(str(e.get("msg")) for e in errors)
                cls: type[ToolError] = (
                    ServerError
                    if response.status_code >= 500
                    else NotFound
                    if response.status_code == 404
                    else Invalid
                )
                raise cls(
                    f"{request} failed ({response.status_code}): {message}",
                    request=request,
                    status=response.status_code,
                    api_message=message,
                )
            return body.get("data")

        return retry(once, attempts=self.attempts)

    def services(self) -> list[str]:
        return sorted(str(s) for s in self._get("/api/services") or [])

    def operations(self, service: str) -> list[str]:
        data = self._get(f"/api/services/{service}/operations") or []
        return sorted(str(o.get("name") if isinstance(o, dict) else o) for o in data)

    def traces(
        self,
        service: str,
        *,
        operation: str | None = None,
        errors_only: bool = False,
        lookback: timedelta = timedelta(hours=1),
        limit: int = 20,
        min_duration_ms: float | None = None,
    ) -> list[TraceSummary]:
        params: dict[str, str] = {"service": service, "limit": str(limit)}
        if operation:
            params["operation"] = operation
        if errors_only:
            params["tags"] = json.dumps({"error": "true"})
        if min_duration_ms is not None:
            params["minDuration"] = f"{min_duration_ms:g}ms"
        end = self.clock() if self.clock else datetime.now(UTC)
        params["end"] = str(int(end.timestamp() * 1e6))
        params["start"] = str(int((end - lookback).timestamp() * 1e6))
        data = self._get("/api/traces", params) or []
        return [summarize_trace(t) for t in data][:limit]

    def dependencies(self, lookback: timedelta = timedelta(hours=1)) -> list[Dependency]:
        end = self.clock() if self.clock else datetime.now(UTC)
        params = {
            "endTs": str(int(end.timestamp() * 1000)),
            "lookback": str(int(lookback.total_seconds() * 1000)),
        }
        data = self._get("/api/dependencies", params) or []
        return [
            Dependency(
                parent=str(d.get("parent")),
                child=str(d.get("child")),
                call_count=int(d.get("callCount", 0)),
            )
            for d in data
        ]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
