"""telemetry.py: the provider the settings ask for, and the graph's events as spans.

Spans go to the SDK's InMemorySpanExporter, and once over the wire to an
OTLP/HTTP receiver started on loopback (aiohttp, decoding the protobuf with
opentelemetry-proto), as a collector would receive them.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from settings import Settings
from telemetry import IncidentSpans, describe, otlp_traces_url, setup_telemetry

SECRET = "hunter2-db-password"


def events() -> list[tuple[str, Any]]:
    """A short run as LangGraph streams it (stream_mode=["tasks", "updates"])."""
    return [
        ("tasks", {"id": "t1", "name": "intake", "input": {}, "triggers": ["start"]}),
        (
            "tasks",
            {
                "id": "t1",
                "name": "intake",
                "error": None,
                "result": {"transcript": [f"line mentioning {SECRET}"], "incident": object()},
                "interrupts": [],
            },
        ),
        ("updates", {"intake": {"transcript": []}}),
        ("tasks", {"id": "t2", "name": "policy_gate", "input": {}, "triggers": []}),
        (
            "tasks",
            {
                "id": "t2",
                "name": "policy_gate",
                "error": None,
                "result": {
                    "decisions": [{"decision": "needs_approval", "reasons": [SECRET]}],
                    "executed": [{"action": {"action": "scale"}, "status": "applied"}],
                    "outcome": "recovered",
                },
                "interrupts": [],
            },
        ),
        ("tasks", {"id": "t3", "name": "approval", "input": {}, "triggers": []}),
        (
            "tasks",
            {
                "id": "t3",
                "name": "approval",
                "error": None,
                "result": {},
                "interrupts": [{"value": {"request_id": "apr-1"}}],
            },
        ),
        (
            "updates",
            {"__interrupt__": [{"value": {"request_id": "apr-1", "actions": [{}, {}]}}]},
        ),
        ("tasks", {"id": "t4", "name": "executor", "input": {}, "triggers": []}),
        (
            "tasks",
            {
                "id": "t4",
                "name": "executor",
                "error": ValueError(f"connection to postgres://app:{SECRET}@db failed"),
                "result": {},
                "interrupts": [],
            },
        ),
    ]


def test_no_provider_when_telemetry_is_off_or_has_nowhere_to_go() -> None:
    assert setup_telemetry(Settings()) is None
    no_endpoint = Settings(telemetry={"enabled": True})
    assert setup_telemetry(no_endpoint) is None
    assert describe(no_endpoint) == "enabled but no otlp_endpoint is set: off"
    assert describe(Settings()) == "off"
    on = Settings(telemetry={"enabled": True, "otlp_endpoint": "http://collector:4318/"})
    assert describe(on) == "OTLP/HTTP to http://collector:4318/v1/traces as 'kubemedic'"
    assert otlp_traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_graph_events_become_one_span_per_node_under_the_incident() -> None:
    exporter = InMemorySpanExporter()
    provider = setup_telemetry(Settings(), exporter=exporter)
    assert provider is not None
    spans = IncidentSpans(provider.get_tracer("test"), "inc-1", trigger="alert", mode="approve")
    for mode, chunk in events():
        spans(mode, chunk)
    spans.finish(status="waiting_approval")
    spans.finish(status="done")  # a second finish changes nothing
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {
        "kubemedic.incident",
        "kubemedic.node intake",
        "kubemedic.node policy_gate",
        "kubemedic.node approval",
        "kubemedic.node executor",
    }
    root = finished["kubemedic.incident"]
    assert dict(root.attributes or {}) == {
        "kubemedic.incident.id": "inc-1",
        "kubemedic.incident.resumed": False,
        "kubemedic.incident.trigger": "alert",
        "kubemedic.incident.mode": "approve",
        "kubemedic.incident.outcome": "recovered",
        "kubemedic.incident.status": "waiting_approval",
        "kubemedic.incident.nodes_run": 4,
    }
    (event,) = root.events
    assert event.name == "approval requested"
    assert dict(event.attributes or {}) == {
        "kubemedic.approval.request_id": "apr-1",
        "kubemedic.approval.actions": 2,
    }
    gate = finished["kubemedic.node policy_gate"]
    assert gate.parent is not None
    assert gate.parent.span_id == root.context.span_id
    attrs = dict(gate.attributes or {})
    assert attrs["kubemedic.gate.decisions"] == ("needs_approval",)
    assert attrs["kubemedic.executed"] == ("scale:applied",)
    assert attrs["kubemedic.node.added.decisions"] == 1
    assert (finished["kubemedic.node approval"].attributes or {})[
        "kubemedic.node.outcome"
    ] == "interrupted"
    failed = finished["kubemedic.node executor"]
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description == "ValueError"
    assert (failed.attributes or {})["kubemedic.node.error_type"] == "ValueError"
    # Nothing of the transcript, the gate's reasons or the error's message is on any span.
    everything = repr(
        [(s.name, dict(s.attributes or {}), s.status.description) for s in finished.values()]
    )
    assert SECRET not in everything


def test_a_node_left_running_is_ended_as_abandoned() -> None:
    exporter = InMemorySpanExporter()
    provider = setup_telemetry(Settings(), exporter=exporter)
    assert provider is not None
    spans = IncidentSpans(provider.get_tracer("test"), "inc-2", resumed=True)
    spans("tasks", {"id": "t1", "name": "verifier", "input": {}, "triggers": []})
    spans.finish(status="error", error=asyncio.CancelledError())
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    assert (by_name["kubemedic.node verifier"].attributes or {})[
        "kubemedic.node.outcome"
    ] == "abandoned"
    root = by_name["kubemedic.incident"]
    assert (root.attributes or {})["kubemedic.incident.error_type"] == "CancelledError"
    assert (root.attributes or {})["kubemedic.incident.resumed"] is True


class OtlpReceiver:
    """A minimal OTLP/HTTP traces endpoint on loopback, in a thread of its own."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.received = threading.Event()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.requests.append(message)
        self.content_types.append(request.headers.get("Content-Type", ""))
        self.received.set()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def start(self) -> None:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    r.start()
    yield r
    r.stop()


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    return getattr(v, kind) if kind else None


def test_spans_reach_an_otlp_http_collector(receiver: OtlpReceiver, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        telemetry={"enabled": True, "otlp_endpoint": receiver.url, "service_name": "km-test"},
    )
    provider = setup_telemetry(settings)
    assert provider is not None
    spans = IncidentSpans(provider.get_tracer("kubemedic"), "inc-otlp", trigger="alert")
    for mode, chunk in events():
        spans(mode, chunk)
    spans.finish(status="done", outcome="recovered")
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert receiver.received.wait(10)
    assert set(receiver.content_types) == {"application/x-protobuf"}
    exported: dict[str, dict[str, Any]] = {}
    services = set()
    for request in receiver.requests:
        for rs in request.resource_spans:
            services |= {_value(a.value) for a in rs.resource.attributes if a.key == "service.name"}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    exported[span.name] = {a.key: _value(a.value) for a in span.attributes}
    assert services == {"km-test"}
    assert exported["kubemedic.incident"]["kubemedic.incident.id"] == "inc-otlp"
    assert exported["kubemedic.incident"]["kubemedic.incident.outcome"] == "recovered"
    assert exported["kubemedic.node policy_gate"]["kubemedic.executed"] == ("scale:applied",)
    assert exported["kubemedic.node executor"]["kubemedic.node.error_type"] == "ValueError"
    assert all(a["kubemedic.incident.id"] == "inc-otlp" for a in exported.values())
    raw = b"".join(r.SerializeToString() for r in receiver.requests)
    assert SECRET.encode() not in raw
