"""Running the incident graph: on a twin scenario (`run`, `demo`) or on any cluster (`investigate`).

`run_scenario` starts a twin for the scenario in eval mode, runs it until its
alert fires (or, with no alert, for a while or to the horizon: then the
incident is an alert-less "investigate the namespace"), builds the agents'
context over the twin's API, metrics, traces and clock, runs the graph with
a checkpointer, answers approval interrupts through an `Approver`, and
reports the result. After the graph ends it advances the twin, up to the
scenario's horizon, while the recovered oracle's window runs, and scores the
run against the scenario's truth (twin.scoring). The truth and the oracle
are read here, after the agents are done; nothing of them reaches a node.

`investigate` runs the same graph against a real cluster from a kubeconfig,
read-only (observe mode) unless told otherwise; the same thread id continues
a conversation.
"""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph.types import Command

import tools
from agents.context import AgentContext
from agents.intake import new_incident_id
from agents.llm import aclose_chat_model, make_chat_model
from graph import compile_graph
from interfaces.checkpoints import open_checkpointer
from interfaces.clock import TwinClock
from memory import MemoryStore, make_memory
from policies.limits import load_limits
from settings import Settings
from state import AlertInfo, IncidentInput, IncidentState, Mode
from tools.clock import ClusterClock, WallClock
from tools.connection import connect, load_client
from tools.errors import ToolError
from tools.metrics import MetricsSource, PrometheusMetricsSource, TwinMetricsSource
from tools.registry import Toolbox
from tools.result import ToolResult
from tools.traces import JaegerTraceSource, TraceSource
from twin.harness import Twin
from twin.scenario import Scenario, load_scenario
from twin.scoring import ReportedAction, RootCause, RunResult, owner_resolver, score

_ = tools  # importing the package registers every read tool

#: Receives an approval request (the interrupt's payload) and returns the resume answer.
Approver = Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]
#: Receives every streamed graph event: ("tasks" | "updates", chunk).
EventSink = Callable[[str, Any], None]
#: With no alert in the scenario, how long after its last fault the incident starts.
NO_ALERT_DELAY_S = 180.0
#: Interrupts answered before the runner gives up on a thread (a misbehaving approver).
MAX_RESUMES = 20


class CountingToolbox(Toolbox):
    """A Toolbox that counts read-tool calls, for the run's report."""

    calls: int = 0

    def call(self, name: str, args: Mapping[str, Any] | None = None) -> ToolResult:
        self.calls += 1
        return super().call(name, args)


# -- approvers ---------------------------------------------------------------------------


def approve_all(by: str = "cli", via: str = "api") -> Approver:
    """Approve every pending action of every request (non-interactive runs)."""

    async def answer(payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "decision": "approve",
            "by": by,
            "via": via,
            "at": datetime.now(UTC).isoformat(),
            "request_id": payload.get("request_id", ""),
            "action_indexes": [a["index"] for a in payload.get("actions", [])],
        }

    return answer


def reject_all(reason: str) -> Approver:
    """Reject every request (no person can be asked), saying why."""

    async def answer(payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "decision": "reject",
            "by": "kubemedic",
            "via": "api",
            "at": datetime.now(UTC).isoformat(),
            "request_id": payload.get("request_id", ""),
            "comment": reason,
        }

    return answer


def terminal_approver(
    ask: Callable[[str], bool], show: Callable[[str], None], *, user: str | None = None
) -> Approver:
    """Ask a person at the terminal: show each action with its dry-run and the gate's reasons."""
    who = user or getpass.getuser()

    async def answer(payload: dict[str, Any]) -> dict[str, Any]:
        show(format_request(payload))
        yes = ask("Approve these actions?")
        return {
            "decision": "approve" if yes else "reject",
            "by": who,
            "via": "terminal",
            "at": datetime.now(UTC).isoformat(),
            "request_id": payload.get("request_id", ""),
            "action_indexes": [a["index"] for a in payload.get("actions", [])] if yes else [],
        }

    return answer


def format_request(payload: Mapping[str, Any]) -> str:
    """An approval request as text for a terminal."""
    lines = [f"Approval needed for {payload.get('title', '')} ({payload.get('request_id', '')})"]
    for a in payload.get("actions", []):
        lines.append(f"  [{a['index']}] {a['summary']}")
        for reason in a.get("gate", []):
            lines.append(f"      gate: {reason}")
        dry = a.get("dry_run") or {}
        if dry:
            lines.append(f"      dry-run: {dry.get('status')}: {dry.get('message', '')}")
            if dry.get("before"):
                lines.append(f"      now: {dry['before']}  requested: {dry.get('requested')}")
    for e in payload.get("evidence", [])[:10]:
        lines.append(f"  evidence {e['id']}: {e['summary']}")
    return "\n".join(lines)


# -- driving the graph -----------------------------------------------------------------------


@dataclass
class GraphRun:
    """A finished (or abandoned) graph run."""

    state: IncidentState
    steps: int = 0
    interrupts: int = 0
    #: A request left unanswered (the approver gave up), if any.
    pending: dict[str, Any] | None = None


async def drive(
    graph: Any,
    first: Any,
    *,
    thread_id: str,
    ctx: AgentContext,
    approver: Approver,
    on_event: EventSink | None = None,
    checkpoint_id: str | None = None,
) -> GraphRun:
    """Run the graph on one thread to its end, answering each approval interrupt.

    `first` is the input, or None to continue the thread (from `checkpoint_id`, when given:
    a replay from an earlier checkpoint, as after a crash).
    """
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    config: dict[str, Any] = {"configurable": configurable, "recursion_limit": 100}
    steps = 0
    interrupts = 0
    payload: Any = first
    while True:
        pending: dict[str, Any] | None = None
        # durability="sync": each step's checkpoint is written before the next step starts,
        # so a process that dies mid-incident resumes from the step it was in.
        async for mode, chunk in graph.astream(
            payload, config, context=ctx, stream_mode=["tasks", "updates"], durability="sync"
        ):
            if on_event is not None:
                on_event(mode, chunk)
            if mode == "updates" and isinstance(chunk, dict):
                if "__interrupt__" in chunk:
                    pending = chunk["__interrupt__"][0].value
                else:
                    steps += len(chunk)
        if pending is None or interrupts >= MAX_RESUMES:
            break
        interrupts += 1
        payload = Command(resume=await approver(pending))
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 100}
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    return GraphRun(
        state=IncidentState(**snapshot.values),
        steps=steps,
        interrupts=interrupts,
        pending=pending,
    )


# -- contexts ------------------------------------------------------------------------------------


@asynccontextmanager
async def agent_context(
    settings: Settings,
    box: Toolbox,
    clock: ClusterClock,
    *,
    progress: Callable[[str, str], None] | None = None,
    memory: MemoryStore | None = None,
) -> AsyncIterator[AgentContext]:
    """The context every node gets; closes the model's and memory's connections after.

    A long-lived caller (the webhook worker, the Slack app) passes its own `memory`, so
    that incidents learn from each other even with the in-process store; the caller
    closes it. Otherwise each run opens the store the settings name and closes it.
    """
    owned = memory is None
    memory = memory if memory is not None else make_memory(settings)
    ctx = AgentContext(
        settings=settings,
        toolbox=box,
        clock=clock,
        memory=memory,
        limits=load_limits(settings.policy.file),
        chat_model=make_chat_model(settings),
        progress=progress,
    )
    try:
        yield ctx
    finally:
        await aclose_chat_model(ctx.chat_model)
        if owned:
            await memory.aclose()


def twin_toolbox(twin: Twin, clock: TwinClock) -> CountingToolbox:
    """Read tools over the twin's API, metrics and traces, on its clock."""
    metrics = TwinMetricsSource(twin.url, clock=clock.now)
    traces = JaegerTraceSource.for_twin(twin.url, clock=clock.now)
    return CountingToolbox(
        cluster=connect(str(twin.kubeconfig_path)), metrics=metrics, traces=traces
    )


def close_toolbox(box: Toolbox) -> None:
    for backend in (box.cluster, box.metrics, box.traces):
        close = getattr(backend, "close", None)
        if close is not None:
            close()


# -- kubemedic run --scenario ----------------------------------------------------------------


@dataclass
class ScenarioRun:
    """Everything `kubemedic run` reports."""

    report: dict[str, Any]
    state: IncidentState
    graph: GraphRun
    alert_fired: bool
    notes: list[str] = field(default_factory=list)


def scenario_input(twin: Twin, mode: Mode, incident_id: str) -> tuple[IncidentInput, bool]:
    """Run the twin to the scenario's alert and make the trigger; (input, whether it fired)."""
    sc = twin.scenario
    alert = twin.run_until_alert()
    if alert is None and sc.spec.alert is None:
        last_fault = max((f.at or 0.0 for f in sc.spec.faults), default=0.0)
        wait = min(last_fault + NO_ALERT_DELAY_S, twin.horizon) - twin.sim_seconds
        if wait > 0:
            twin.advance(wait)
    if alert is not None:
        info = AlertInfo(
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.starts_at,
            status="firing",
            fingerprint=alert.fingerprint,
            generator_url=alert.generator_url,
        )
        return (
            IncidentInput(
                trigger="alert",
                alert=info,
                namespace=alert.labels.get("namespace"),
                mode=mode,
                requested_by="alertmanager",
                incident_id=incident_id,
            ),
            True,
        )
    namespace = sc.default_namespace
    return (
        IncidentInput(
            trigger="scenario",
            question=f"Is anything wrong in namespace {namespace}? Investigate it.",
            namespace=namespace,
            mode=mode,
            requested_by="kubemedic run",
            incident_id=incident_id,
        ),
        False,
    )


async def run_scenario(
    scenario: str | Path | Scenario,
    *,
    mode: Mode = "autonomous",
    settings: Settings | None = None,
    approver: Approver | None = None,
    progress: Callable[[str, str], None] | None = None,
    on_event: EventSink | None = None,
    on_twin: Callable[[Twin], None] | None = None,
    nodes: Mapping[str, Any] | None = None,
) -> ScenarioRun:
    """Run one scenario end to end and score it (see the module docstring).

    `nodes` replaces graph nodes by name (graph.build_graph), for ablations and tests.
    """
    settings = settings or Settings()
    sc = load_scenario(scenario)
    load_client()  # a one-time import, not part of the incident's time
    wall0 = time.monotonic()
    approver = approver or reject_all("no person is available to approve (non-interactive run)")
    with Twin.start(sc) as twin:
        if on_twin is not None:
            on_twin(twin)
        clock = TwinClock(twin)
        incident_id = new_incident_id(f"{sc.name}-{clock.now().strftime('%H%M%S')}")
        first, fired = scenario_input(twin, mode, incident_id)
        box = twin_toolbox(twin, clock)
        try:
            async with (
                agent_context(settings, box, clock, progress=progress) as ctx,
                open_checkpointer(settings) as saver,
            ):
                graph = compile_graph(saver, nodes)
                run = await drive(
                    graph,
                    {"input": first},
                    thread_id=incident_id,
                    ctx=ctx,
                    approver=approver,
                    on_event=on_event,
                )
        finally:
            close_toolbox(box)
        remaining = twin.horizon - twin.sim_seconds
        if remaining > 0 and not twin.recovered():
            twin.advance_until(twin.oracle.holds, remaining)
        recovered = twin.recovered()
        since = twin.oracle.recovered_since(twin.cluster) if recovered else None
        report = build_report(
            twin,
            run,
            scenario_name=sc.name,
            mode=mode,
            recovered=recovered,
            recovered_at_s=since,
            tool_calls=box.calls,
            wall_s=time.monotonic() - wall0,
            settings=settings,
        )
        return ScenarioRun(report=report, state=run.state, graph=run, alert_fired=fired)


def _scenario_seconds(twin: Twin, at: datetime | None) -> float | None:
    if at is None:
        return None
    return round((at - twin.cluster.clock.at(twin.t0)).total_seconds(), 1)


def ranked_root_causes(state: IncidentState) -> list[dict[str, Any]]:
    """The incident's root causes, best first, one per object (Plan.ranked: the causes fixed
    along the way, then the final plan's hypotheses by confidence)."""
    return [
        {
            "kind": h.root_cause.kind,
            "namespace": h.root_cause.namespace,
            "name": h.root_cause.name,
            "confidence": round(h.confidence, 3),
            "cause_kind": h.cause_kind,
        }
        for h in (state.plan.ranked() if state.plan else [])
    ]


def reported_actions(state: IncidentState) -> list[dict[str, Any]]:
    """What was done (every executed record) and what was only proposed (the final plan)."""
    decisions = {d.action_index: d.decision for d in state.decisions}
    revision = state.plan.revision if state.plan else 0
    out: list[dict[str, Any]] = []
    executed = set()
    for e in state.executed:
        same = e.plan_revision == revision
        if same:
            executed.add(e.action_index)
        decision = "deny" if e.status == "denied" else decisions.get(e.action_index, "allow")
        out.append(_action_row(e.action, decision if same else "allow", e.status, e.error))
    for i, action in enumerate(state.plan.actions if state.plan else []):
        if i not in executed:
            out.append(_action_row(action, decisions.get(i, "none"), "not_executed", ""))
    return out


def _action_row(action: Any, decision: str, status: str, error: str) -> dict[str, Any]:
    t = action.target
    return {
        "action": action.action,
        "target": {"kind": t.kind, "namespace": t.namespace or "", "name": t.name},
        "params": action.params.model_dump(mode="json", exclude_none=True),
        "decision": decision,
        "status": status,
        **({"error": error} if error else {}),
    }


def build_report(
    twin: Twin,
    run: GraphRun,
    *,
    scenario_name: str,
    mode: Mode,
    recovered: bool,
    recovered_at_s: float | None,
    tool_calls: int,
    wall_s: float,
    settings: Settings,
) -> dict[str, Any]:
    """The `kubemedic run --json` object, scored against the scenario's truth."""
    state = run.state
    ranked = state.plan.ranked() if state.plan else []
    top = ranked[0] if ranked else None
    causes = ranked_root_causes(state)
    actions = reported_actions(state)
    incident_id = state.incident.id if state.incident else state.input.incident_id
    sim = {
        "detect": _scenario_seconds(twin, state.detected_at),
        "localize": _scenario_seconds(twin, state.localized_at),
        "mitigate": recovered_at_s,
    }
    result = RunResult(
        detected=state.detected_at is not None,
        root_causes=[
            RootCause(c["kind"], c["namespace"], c["name"], c["confidence"]) for c in causes
        ],
        category=(top.category.system_level, top.category.fault_type) if top else None,
        actions=[
            ReportedAction(
                action=a["action"],
                kind=a["target"]["kind"],
                namespace=a["target"]["namespace"],
                name=a["target"]["name"],
                params=a["params"],
                status=a["status"],
            )
            for a in actions
        ],
        recovered=recovered,
        recovered_at_s=recovered_at_s,
        sim_detect_s=sim["detect"],
        sim_localize_s=sim["localize"],
        sim_mitigate_s=sim["mitigate"],
        steps=run.steps,
        tool_calls=tool_calls,
        tokens_in=state.tokens.input,
        tokens_out=state.tokens.output,
        wall_s=wall_s,
    )
    scored = score(
        twin.scenario,
        result,
        write_log=list(twin.write_log),
        resolver=owner_resolver(twin.cluster),
    )
    transcript = settings.incident_dir(incident_id) / "transcript.json"
    return {
        "incident_id": incident_id,
        "scenario": scenario_name,
        "mode": mode,
        "detected": result.detected,
        "root_causes": causes,
        "category": (
            {"system_level": top.category.system_level, "fault_type": top.category.fault_type}
            if top
            else None
        ),
        "actions": actions,
        "outcome": state.outcome,
        "recovered": recovered,
        "recovered_at_s": recovered_at_s,
        "score": scored.as_dict(),
        "sim_seconds": sim,
        "wall_seconds": round(wall_s, 3),
        "tokens": {"input": state.tokens.input, "output": state.tokens.output},
        "steps": run.steps,
        "tool_calls": tool_calls,
        "approvals_requested": run.interrupts,
        "transcript_path": str(transcript) if transcript.exists() else None,
    }


# -- kubemedic investigate ---------------------------------------------------------------------


def cluster_toolbox(
    settings: Settings, kubeconfig: str | None, context: str | None
) -> CountingToolbox:
    """Read tools over a real cluster (and Prometheus/Jaeger when settings name them)."""
    box = CountingToolbox()
    try:
        box.cluster = connect(kubeconfig, context)
    except ToolError as exc:
        box.cluster_problem = exc.message
    metrics: MetricsSource | None = None
    traces: TraceSource | None = None
    if settings.sources.prometheus_url:
        metrics = PrometheusMetricsSource(settings.sources.prometheus_url)
    if settings.sources.jaeger_url:
        traces = JaegerTraceSource(settings.sources.jaeger_url)
    box.metrics, box.traces = metrics, traces
    return box


async def investigate(
    question: str,
    *,
    settings: Settings,
    box: Toolbox,
    namespace: str | None = None,
    mode: Mode = "observe",
    thread: str | None = None,
    clock: ClusterClock | None = None,
    approver: Approver | None = None,
    progress: Callable[[str, str], None] | None = None,
    on_event: EventSink | None = None,
) -> GraphRun:
    """Answer a question about a cluster; the same `thread` continues the conversation."""
    clock = clock or WallClock()
    thread_id = thread or new_incident_id(clock.now().strftime("%Y%m%d-%H%M%S"))
    first = IncidentInput(
        trigger="cli",
        question=question,
        namespace=namespace,
        mode=mode,
        requested_by=getpass.getuser(),
        incident_id=thread_id,
    )
    async with (
        agent_context(settings, box, clock, progress=progress) as ctx,
        open_checkpointer(settings) as saver,
    ):
        graph = compile_graph(saver)
        return await drive(
            graph,
            {"input": first},
            thread_id=thread_id,
            ctx=ctx,
            approver=approver or reject_all("no person is available to approve"),
            on_event=on_event,
        )


def interactive() -> bool:
    """Whether a person can be asked at this terminal."""
    return sys.stdin.isatty()
