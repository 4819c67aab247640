"""AgentContexts over a running twin, for the graph's tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.context import AgentContext
from interfaces.clock import TwinClock
from memory.base import MemoryStore
from memory.inprocess import InProcessMemory
from policies.limits import PolicyLimits, load_limits
from settings import Settings
from tools.connection import connect
from tools.metrics import TwinMetricsSource
from tools.registry import Toolbox
from tools.traces import JaegerTraceSource
from twin.harness import Twin


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
        memory=memory or InProcessMemory(),
        limits=limits or load_limits(),
        **extra,
    )
    try:
        yield ctx
    finally:
        conn.close()
        metrics.close()
        traces.close()
