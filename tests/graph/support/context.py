"""AgentContexts over a running twin, for the graph's tests."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.context import AgentContext
from interfaces.clock import TwinClock
from memory.base import IncidentRecord, MemoryStore
from policies.limits import PolicyLimits, load_limits
from settings import Settings
from state import ActionStats, Incident, Recall
from tools.connection import connect
from tools.metrics import TwinMetricsSource
from tools.registry import Toolbox
from tools.traces import JaegerTraceSource
from twin.harness import Twin


class ListMemory:
    """A memory that keeps records in a list: enough for tests that do not test memory."""

    description = "a list (tests)"

    def __init__(self) -> None:
        self.records: builtins.list[IncidentRecord] = []

    async def recall(
        self, incident: Incident, symptoms: builtins.list[str], *, limit: int = 5
    ) -> Recall:
        return Recall(store=self.description)

    async def record(self, record: IncidentRecord) -> None:
        self.records.append(record)

    async def stats(self, cause_kind: str) -> builtins.list[ActionStats]:
        return []

    async def get(self, incident_id: str) -> IncidentRecord | None:
        return next((r for r in self.records if r.incident_id == incident_id), None)

    async def list(self, *, limit: int = 50) -> builtins.list[IncidentRecord]:
        return self.records[-limit:]

    async def aclose(self) -> None:
        return None


@contextmanager
def twin_context(
    twin: Twin,
    settings: Settings | None = None,
    *,
    memory: MemoryStore | None = None,
    limits: PolicyLimits | None = None,
    **extra: Any,
) -> Iterator[AgentContext]:
    """A context whose tools, metrics, traces and clock are the twin's; closes them after."""
    clock = TwinClock(twin)
    conn = connect(str(twin.kubeconfig_path))
    metrics = TwinMetricsSource(twin.url, clock=clock.now)
    traces = JaegerTraceSource.for_twin(twin.url, clock=clock.now)
    ctx = AgentContext(
        settings=settings or Settings(),
        toolbox=Toolbox(cluster=conn, metrics=metrics, traces=traces),
        clock=clock,
        memory=memory or ListMemory(),
        limits=limits or load_limits(),
        **extra,
    )
    try:
        yield ctx
    finally:
        conn.close()
        metrics.close()
        traces.close()
