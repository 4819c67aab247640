"""kubemedic's own telemetry: OpenTelemetry traces of each incident, node by node.

`setup_telemetry(settings)` builds a TracerProvider from `settings.telemetry`:
nothing when telemetry is disabled, an OTLP/HTTP exporter when an endpoint is
set (`KUBEMEDIC_TELEMETRY__OTLP_ENDPOINT=http://otel-collector:4318`, the
collector's base URL as OTEL_EXPORTER_OTLP_ENDPOINT takes it), or the exporter
a caller passes (tests use the SDK's InMemorySpanExporter).

`IncidentSpans` turns the graph's stream events (the `on_event(mode, chunk)`
callback of interfaces.runner.drive) into spans: one `kubemedic.incident`
span per run of an incident, with a child span per node run. Spans carry
identifiers, node names, counts and enumerated outcomes (gate decisions,
action statuses, verification statuses) and nothing else: no evidence text,
no log line, no alert annotation, no error message (only its type), so no
secret or untrusted text reaches the collector (SAFETY.md, "Audit").

This module imports nothing of kubemedic's but settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from settings import Settings

#: The instrumentation scope every kubemedic span is recorded under.
SCOPE = "kubemedic"
#: OTLP/HTTP's path for traces, appended to a collector's base URL.
OTLP_TRACES_PATH = "/v1/traces"
#: Most items of one list attribute (action statuses, decisions) kept on a span.
MAX_LIST_ATTRIBUTE = 20
#: Node-update keys summarised by one enumerated field of their items: key -> (attribute, field).
_ENUM_FIELDS = {
    "decisions": ("kubemedic.gate.decisions", "decision"),
    "verifications": ("kubemedic.verifications", "status"),
    "approvals": ("kubemedic.approvals", "decision"),
}


def otlp_traces_url(endpoint: str) -> str:
    """The traces URL for a collector endpoint given as a base URL (or already as /v1/traces)."""
    endpoint = endpoint.rstrip("/")
    if endpoint.endswith(OTLP_TRACES_PATH):
        return endpoint
    return endpoint + OTLP_TRACES_PATH


def setup_telemetry(
    settings: Settings,
    *,
    exporter: SpanExporter | None = None,
    install_global: bool = False,
) -> TracerProvider | None:
    """A TracerProvider as `settings.telemetry` asks, or None when telemetry is off.

    Args:
        settings: kubemedic's settings; `telemetry.enabled`, `otlp_endpoint`, `service_name`.
        exporter: export here instead (spans are sent one by one, as they end); telemetry is
            then on whatever `enabled` says.
        install_global: also make it OpenTelemetry's global provider (once per process).
    """
    cfg = settings.telemetry
    if exporter is None and not (cfg.enabled and cfg.otlp_endpoint):
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": cfg.service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        # Imported here: the exporter pulls in protobuf and requests, which a run without
        # telemetry does not need loaded.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert cfg.otlp_endpoint is not None
        otlp = OTLPSpanExporter(endpoint=otlp_traces_url(cfg.otlp_endpoint))
        provider.add_span_processor(BatchSpanProcessor(otlp))
    if install_global:
        trace.set_tracer_provider(provider)
    return provider


def describe(settings: Settings) -> str:
    """Where telemetry goes, said aloud at start."""
    cfg = settings.telemetry
    if not cfg.enabled:
        return "off"
    if not cfg.otlp_endpoint:
        return "enabled but no otlp_endpoint is set: off"
    return f"OTLP/HTTP to {otlp_traces_url(cfg.otlp_endpoint)} as {cfg.service_name!r}"


class IncidentSpans:
    """One incident run as spans: feed it runner.drive's events, then call `finish`."""

    def __init__(
        self,
        tracer: Tracer,
        incident_id: str,
        *,
        trigger: str = "",
        mode: str = "",
        resumed: bool = False,
    ) -> None:
        self.incident_id = incident_id
        self._tracer = tracer
        attributes: dict[str, Any] = {
            "kubemedic.incident.id": incident_id,
            "kubemedic.incident.resumed": resumed,
        }
        if trigger:
            attributes["kubemedic.incident.trigger"] = trigger
        if mode:
            attributes["kubemedic.incident.mode"] = mode
        self.root: Span = tracer.start_span("kubemedic.incident", attributes=attributes)
        self._context = trace.set_span_in_context(self.root)
        #: Node spans still running, by LangGraph task id.
        self._open: dict[str, Span] = {}
        self.nodes_run = 0
        self._finished = False

    def __call__(self, mode: str, chunk: Any) -> None:
        """The `on_event` callback: ("tasks", start or result) and ("updates", ...)."""
        if self._finished or not isinstance(chunk, dict):
            return
        if mode == "tasks":
            task_id = str(chunk.get("id", ""))
            name = str(chunk.get("name", "")) or "node"
            if "input" in chunk:
                self._start_node(task_id, name)
            elif "result" in chunk or "error" in chunk:
                self._end_node(task_id, name, chunk)
        elif mode == "updates" and "__interrupt__" in chunk:
            self.root.add_event("approval requested", _interrupt_attributes(chunk))

    def _start_node(self, task_id: str, name: str) -> None:
        span = self._tracer.start_span(
            f"kubemedic.node {name}",
            context=self._context,
            attributes={"kubemedic.incident.id": self.incident_id, "kubemedic.node": name},
        )
        self._open[task_id] = span

    def _end_node(self, task_id: str, name: str, chunk: Mapping[str, Any]) -> None:
        span = self._open.pop(task_id, None)
        if span is None:
            # A result without a start (the stream began mid-task): a span of its own.
            self._start_node(task_id, name)
            span = self._open.pop(task_id)
        self.nodes_run += 1
        error = chunk.get("error")
        if chunk.get("interrupts"):
            span.set_attribute("kubemedic.node.outcome", "interrupted")
        elif error is not None:
            span.set_attribute("kubemedic.node.outcome", "error")
            # The type only: an error's message may quote a log line or a secret.
            span.set_attribute("kubemedic.node.error_type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        else:
            span.set_attribute("kubemedic.node.outcome", "ok")
        result = chunk.get("result")
        if isinstance(result, Mapping):
            span.set_attributes(update_attributes(result))
            outcome = result.get("outcome")
            if isinstance(outcome, str):
                self.root.set_attribute("kubemedic.incident.outcome", outcome)
        span.end()

    def finish(
        self,
        *,
        status: str,
        outcome: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End the incident span (and any node span left open by an interruption)."""
        if self._finished:
            return
        self._finished = True
        for span in self._open.values():
            span.set_attribute("kubemedic.node.outcome", "abandoned")
            span.end()
        self._open.clear()
        self.root.set_attribute("kubemedic.incident.status", status)
        self.root.set_attribute("kubemedic.incident.nodes_run", self.nodes_run)
        if outcome:
            self.root.set_attribute("kubemedic.incident.outcome", outcome)
        if error is not None:
            self.root.set_attribute("kubemedic.incident.error_type", type(error).__name__)
            self.root.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.root.end()


def update_attributes(update: Mapping[str, Any]) -> dict[str, Any]:
    """Safe span attributes for one node's state update: key names, counts, enumerations."""
    attrs: dict[str, Any] = {"kubemedic.node.updated": sorted(str(k) for k in update)}
    for key, value in update.items():
        if isinstance(value, list | tuple):
            attrs[f"kubemedic.node.added.{key}"] = len(value)
        enum = _ENUM_FIELDS.get(str(key))
        if enum is not None and isinstance(value, Sequence):
            attrs[enum[0]] = _enums(value, enum[1])
    executed = update.get("executed")
    if isinstance(executed, Sequence):
        attrs["kubemedic.executed"] = [
            f"{_get(_get(e, 'action'), 'action')}:{_get(e, 'status')}"
            for e in executed[:MAX_LIST_ATTRIBUTE]
        ]
    plan = update.get("plan")
    if plan is not None:
        actions = _get(plan, "actions")
        hypotheses = _get(plan, "hypotheses")
        attrs["kubemedic.plan.actions"] = len(actions) if isinstance(actions, Sequence) else 0
        attrs["kubemedic.plan.hypotheses"] = (
            len(hypotheses) if isinstance(hypotheses, Sequence) else 0
        )
        revision = _get(plan, "revision")
        if isinstance(revision, int):
            attrs["kubemedic.plan.revision"] = revision
    verdict = update.get("verdict")
    if verdict is not None and isinstance(_get(verdict, "verdict"), str):
        attrs["kubemedic.critic.verdict"] = _get(verdict, "verdict")
    tokens = update.get("tokens")
    if tokens is not None:
        for part in ("input", "output"):
            count = _get(tokens, part)
            if isinstance(count, int):
                attrs[f"kubemedic.tokens.{part}"] = count
    outcome = update.get("outcome")
    if isinstance(outcome, str):
        attrs["kubemedic.incident.outcome"] = outcome
    return attrs


def _interrupt_attributes(chunk: Mapping[str, Any]) -> dict[str, Any]:
    interrupts = chunk.get("__interrupt__") or ()
    value = _get(interrupts[0], "value") if interrupts else None
    attrs: dict[str, Any] = {}
    request_id = _get(value, "request_id")
    if isinstance(request_id, str):
        attrs["kubemedic.approval.request_id"] = request_id
    actions = _get(value, "actions")
    if isinstance(actions, Sequence):
        attrs["kubemedic.approval.actions"] = len(actions)
    return attrs


def _enums(items: Sequence[Any], field: str) -> list[str]:
    return [str(_get(item, field)) for item in items[:MAX_LIST_ATTRIBUTE]]


def _get(obj: Any, name: str) -> Any:
    """A field of a pydantic object or of its JSON form (checkpoints hand back either)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)
