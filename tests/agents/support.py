"""Test support for the specialists: a twin-backed AgentContext and the reasoning pipeline.

`Run.start(scenario)` starts a scenario's twin, waits for its alert and builds
the state as intake would (the alert's labels and annotations, untrusted). The
nodes are then called directly, as the graph would call them:
`run.investigate()` (log analyst and dependency tracer in parallel, then the
planner), `run.execute()` (each planned write through tools.executor, the way
the executor node records it), `run.verify()`. The scenario's truth stays on
the twin and is read only by the assertions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agents.context import AgentContext
from agents.dependency_tracer import dependency_tracer
from agents.log_analyst import log_analyst
from agents.planner import planner
from agents.verifier import verifier
from memory.base import IncidentRecord
from policies.limits import load_limits
from settings import Settings
from state import (
    ActionStats,
    AlertInfo,
    ExecutedAction,
    Incident,
    IncidentInput,
    IncidentState,
    Mode,
    ObjectRef,
    Plan,
    Recall,
)
from tools.connection import connect
from tools.executor import execute
from tools.metrics import TwinMetricsSource
from tools.registry import Toolbox
from tools.traces import JaegerTraceSource
from twin.harness import Twin
from twin.scoring import ReportedAction, RootCause, RunResult, Score, owner_resolver, score

#: This repository's own scenarios (an app that is not shop), guarding against over-fitting.
OWN_SCENARIOS = Path(__file__).with_name("scenarios")


class TwinClock:
    """The twin's simulated time; sleeping advances the twin (eval mode)."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.slept = 0.0

    def now(self) -> datetime:
        return self.twin.cluster.clock.now()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.slept += seconds
            await asyncio.to_thread(self.twin.advance, seconds)


@dataclass
class StaticMemory:
    """A MemoryStore double that answers recall with a fixed Recall (for the planner's tests)."""

    answer: Recall = field(default_factory=Recall)
    description: str = "static test memory"
    recorded: list[IncidentRecord] = field(default_factory=list)

    async def recall(self, incident: Incident, symptoms: list[str], *, limit: int = 5) -> Recall:
        return self.answer

    async def record(self, record: IncidentRecord) -> None:
        self.recorded.append(record)

    async def stats(self, cause_kind: str) -> list[ActionStats]:
        return [s for s in self.answer.stats if s.cause_kind == cause_kind]

    async def get(self, incident_id: str) -> IncidentRecord | None:
        return next((r for r in self.recorded if r.incident_id == incident_id), None)

    async def list(self, *, limit: int = 50) -> list[IncidentRecord]:
        return self.recorded[:limit]

    async def aclose(self) -> None:
        return None


def make_context(twin: Twin, memory: Any = None) -> AgentContext:
    conn = connect(kubeconfig=str(twin.kubeconfig_path))
    metrics = TwinMetricsSource(twin.url)
    box = Toolbox(
        cluster=conn,
        metrics=metrics,
        traces=JaegerTraceSource.for_twin(twin.url, clock=metrics.now),
    )
    return AgentContext(
        settings=Settings(),
        toolbox=box,
        clock=TwinClock(twin),
        memory=memory if memory is not None else StaticMemory(),
        limits=load_limits(),
    )


def close_context(ctx: AgentContext) -> None:
    """Close the toolbox's client connections (the suite turns ResourceWarnings into errors)."""
    box = ctx.toolbox
    for backend in (box.metrics, box.traces, box.cluster):
        closer = getattr(backend, "close", None)
        if closer is not None:
            closer()


def make_state(twin: Twin, mode: Mode = "autonomous") -> IncidentState:
    """The state after intake, from the twin's firing alert (or a CLI question without one)."""
    alert = twin.evaluator.active
    now = twin.cluster.clock.now()
    info = (
        AlertInfo(
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.starts_at,
        )
        if alert is not None
        else None
    )
    labels = info.labels if info else {}
    incident = Incident(
        id=f"test-{twin.scenario.name}",
        title=labels.get("alertname", twin.scenario.name),
        trigger="alert",
        namespace=labels.get("namespace") or twin.scenario.default_namespace,
        fingerprint=labels.get("alertname", ""),
        mode=mode,
        alert=info,
        opened_at=now,
    )
    return IncidentState(
        input=IncidentInput(trigger="alert", alert=info, mode=mode),
        incident=incident,
    )


def merge(state: IncidentState, update: dict[str, Any]) -> IncidentState:
    """Apply a node's update the way the graph's reducers would."""
    changes: dict[str, Any] = {}
    for key, value in update.items():
        if key in ("evidence", "transcript", "executed", "verifications", "approvals"):
            changes[key] = [*getattr(state, key), *value]
        elif key == "tokens":
            changes[key] = state.tokens + value
        else:
            changes[key] = value
    return replace(state, **changes)


@dataclass
class Run:
    """One scenario under test: its twin, the agents' context and the state so far."""

    twin: Twin
    ctx: AgentContext
    state: IncidentState
    #: Every plan the planner made, in order.
    plans: list[Plan] = field(default_factory=list)

    @classmethod
    def start(cls, scenario: str | Path, memory: Any = None) -> Run:
        twin = Twin.start(scenario)
        try:
            twin.run_until_alert()
            return cls(twin, make_context(twin, memory), make_state(twin))
        except BaseException:
            twin.stop()
            raise

    def close(self) -> None:
        close_context(self.ctx)
        self.twin.stop()

    @property
    def runtime(self) -> Runtime[AgentContext]:
        return Runtime(context=self.ctx)

    async def specialists(self) -> None:
        logs, deps = await asyncio.gather(
            log_analyst(self.state, self.runtime), dependency_tracer(self.state, self.runtime)
        )
        self.state = merge(merge(self.state, logs), deps)

    async def plan(self) -> None:
        self.state = merge(self.state, await planner(self.state, self.runtime))
        assert self.state.plan is not None
        self.plans.append(self.state.plan)

    async def investigate(self) -> None:
        await self.specialists()
        await self.plan()

    def execute(self) -> list[ExecutedAction]:
        """Every planned write, through the tools' executor (escalations write nothing)."""
        assert self.state.plan is not None
        done: list[ExecutedAction] = []
        offset = len(self.state.executed)
        for i, action in enumerate(self.state.plan.actions):
            if action.action == "escalate":
                continue
            out = execute(self.ctx.toolbox.kube(), action)
            done.append(
                ExecutedAction(
                    action_index=offset + i,
                    action=action,
                    status="applied" if out.status in ("applied", "no_change") else "failed",
                    before=out.before,
                    after=out.after,
                    inverse=out.inverse,
                    error="" if out.ok else out.message,
                    at=self.ctx.clock.now(),
                )
            )
        self.state = merge(self.state, {"executed": done})
        return done

    async def verify(self) -> str:
        self.state = merge(self.state, await verifier(self.state, self.runtime))
        self.state = replace(self.state, replans=self.state.replans + 1)
        return self.state.verifications[-1].status

    async def respond(self, rounds: int = 3) -> None:
        """Investigate, act, verify; re-plan while not recovered (bounded, like the graph)."""
        await self.investigate()
        for _ in range(rounds):
            assert self.state.plan is not None
            writes = [a for a in self.state.plan.actions if a.action != "escalate"]
            if not writes:
                return
            self.execute()
            if await self.verify() == "recovered":
                return
            await self.plan()

    def settle(self) -> bool:
        """Let the twin run to its horizon (or until the oracle holds): the scorer's mitigation."""
        remaining = max(0.0, self.twin.horizon - self.twin.sim_seconds)
        return self.twin.advance_until(lambda c: self.twin.oracle.holds(c), remaining)

    def result(self) -> RunResult:
        st = self.state
        plan = st.plan
        hyps = plan.hypotheses if plan else []
        top = hyps[0] if hyps else None
        actions = [
            ReportedAction(
                action=e.action.action,
                kind=e.action.target.kind,
                namespace=e.action.target.namespace or "",
                name=e.action.target.name,
                params=e.action.params.model_dump(exclude_none=True),
                status=e.status,
            )
            for e in st.executed
        ]
        if plan is not None:
            actions += [
                ReportedAction(
                    action="escalate",
                    kind=a.target.kind,
                    namespace=a.target.namespace or "",
                    name=a.target.name,
                    status="escalated",
                )
                for a in plan.actions
                if a.action == "escalate"
            ]
        t0 = self.twin.t0
        clock = self.twin.cluster.clock

        def sim(at: datetime | None) -> float | None:
            if at is None:
                return None
            return (at - clock.now()).total_seconds() + self.twin.cluster.elapsed - t0

        return RunResult(
            detected=st.detected_at is not None,
            root_causes=[
                RootCause(
                    h.root_cause.kind, h.root_cause.namespace, h.root_cause.name, h.confidence
                )
                for h in hyps
            ],
            category=(top.category.system_level, top.category.fault_type) if top else None,
            actions=actions,
            recovered=self.twin.recovered(),
            recovered_at_s=self.twin.oracle.recovered_since(self.twin.cluster),
            sim_detect_s=sim(st.detected_at),
            sim_localize_s=sim(st.localized_at),
            sim_mitigate_s=sim(st.mitigated_at),
        )

    def score(self) -> Score:
        return score(
            self.twin.scenario,
            self.result(),
            write_log=self.twin.write_log,
            resolver=owner_resolver(self.twin.cluster),
        )


def first_write(actions: Sequence[Any]) -> Any | None:
    return next((a for a in actions if a.action != "escalate"), None)


def refs(items: Sequence[Any]) -> list[ObjectRef]:
    return [ObjectRef(kind=i.kind, namespace=i.namespace or "", name=i.name) for i in items]
