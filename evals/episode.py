"""One baseline run of one scenario on the twin: the harness the non-graph agents share.

A baseline (noop, playbook, the truth replay) sees the cluster the way
kubemedic does: through the twin's Kubernetes API with kubemedic's own read
tools and its executor, never through the twin's hidden state. The episode
starts the twin, waits for the scenario's alert, lets the responder act in
bounded rounds (act, then give the cluster a settle window), runs on until
the recovered oracle holds or the horizon passes, and reports a
`twin.scoring.RunResult` scored against the truth.

The scenario's truth is read by this module only to score, and by the truth
replay (`baselines.TruthReplay`), which is an upper bound, not an agent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from state import Action
from tools import Toolbox
from tools.connection import ClusterConnection
from tools.executor import ActionOutcome, execute
from tools.metrics import TwinMetricsSource
from tools.result import ToolResult
from tools.traces import JaegerTraceSource
from twin.alerts import Alert
from twin.harness import Twin
from twin.scenario import Scenario, load_scenario
from twin.scoring import ReportedAction, RootCause, RunResult, Score, owner_resolver, score

#: Simulated seconds the cluster gets after each round of actions before the next look.
SETTLE_S = 300.0
#: Rounds of (look, act) a baseline gets per incident.
MAX_ROUNDS = 3


class Responder(Protocol):
    """A baseline agent: looks at the cluster through the episode and may act, once per round."""

    name: str

    def respond(self, ep: Episode, round_: int) -> None: ...


@dataclass
class Episode:
    """A running scenario as a baseline sees it: the API, the read tools, and a report to fill."""

    twin: Twin
    conn: ClusterConnection
    box: Toolbox
    alert: Alert | None
    detected: bool = False
    root_causes: list[RootCause] = field(default_factory=list)
    category: tuple[str, str] | None = None
    actions: list[ReportedAction] = field(default_factory=list)
    outcomes: list[ActionOutcome] = field(default_factory=list)
    tool_calls: int = 0
    steps: int = 0
    detect_s: float | None = None
    localize_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def now_s(self) -> float:
        """Scenario seconds now."""
        return self.twin.sim_seconds

    def tool(self, name: str, args: dict[str, Any] | None = None) -> ToolResult:
        """Run one read tool (counted)."""
        self.tool_calls += 1
        return self.box.call(name, args or {})

    def data(self, name: str, args: dict[str, Any] | None = None) -> Any:
        """A read tool's data, or None when it failed or found nothing."""
        result = self.tool(name, args)
        return result.data if result.status == "success" else None

    def suspect(self, kind: str, namespace: str, name: str, confidence: float) -> None:
        """Name a root-cause candidate (kept ranked by confidence)."""
        if not self.detected:
            self.detected = True
            self.detect_s = self.now_s
        if self.localize_s is None:
            self.localize_s = self.now_s
        key = (kind, namespace, name)
        self.root_causes = [r for r in self.root_causes if (r.kind, r.namespace, r.name) != key]
        self.root_causes.append(RootCause(kind, namespace, name, confidence))
        self.root_causes.sort(key=lambda r: -(r.confidence or 0.0))

    def act(self, action: Action) -> ActionOutcome:
        """Carry out one action through kubemedic's executor (dry-run first, then for real)."""
        self.steps += 1
        outcome = execute(self.conn, action)
        t = action.target
        status = {
            "applied": "applied",
            "escalated": "escalated",
            "no_change": "skipped",
            "rejected": "dry_run_failed",
        }.get(outcome.status, "failed")
        self.actions.append(
            ReportedAction(
                action=action.action,
                kind=t.kind,
                namespace=t.namespace or "",
                name=t.name,
                params=action.params.model_dump(mode="json"),
                status=status,
            )
        )
        self.outcomes.append(outcome)
        if outcome.status not in ("applied", "escalated", "no_change"):
            self.notes.append(f"{action.action} {t}: {outcome.status}: {outcome.message}")
        return outcome


@dataclass
class EpisodeResult:
    """The run's report and its score, JSON-ready through `as_dict`."""

    scenario: str
    path: str
    agent: str
    result: RunResult
    score: Score
    notes: list[str]
    alert_s: float | None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "scenario": self.scenario,
            "path": self.path,
            "agent": self.agent,
            "alert_s": self.alert_s,
            "detected": r.detected,
            "root_causes": [rc._asdict() for rc in r.root_causes],
            "category": list(r.category) if r.category else None,
            "actions": [
                {
                    "action": a.action,
                    "target": {"kind": a.kind, "namespace": a.namespace, "name": a.name},
                    "params": dict(a.params),
                    "status": a.status,
                }
                for a in r.actions
            ],
            "recovered": r.recovered,
            "recovered_at_s": r.recovered_at_s,
            "score": self.score.as_dict(),
            "notes": self.notes,
            "error": self.error,
        }


def connect_twin(twin: Twin) -> tuple[ClusterConnection, Toolbox]:
    """kubemedic's connection and read tools for a served twin (metrics and traces on its clock)."""
    conn = ClusterConnection.from_kubeconfig(twin.kubeconfig_path)
    metrics = TwinMetricsSource(twin.url, clock=twin.cluster.clock.now)
    traces = JaegerTraceSource.for_twin(twin.url, clock=twin.cluster.clock.now)
    return conn, Toolbox(cluster=conn, metrics=metrics, traces=traces)


def run_episode(
    scenario: Scenario | str | Path,
    responder: Responder,
    *,
    rounds: int = MAX_ROUNDS,
    settle_s: float = SETTLE_S,
    on_twin: Callable[[Twin], None] | None = None,
) -> EpisodeResult:
    """Run one scenario with one baseline responder and score it."""
    sc = load_scenario(scenario)
    path = str(scenario) if not isinstance(scenario, Scenario) else ""
    wall0 = time.monotonic()
    with Twin.start(sc) as twin:
        if on_twin is not None:
            on_twin(twin)
        conn, box = connect_twin(twin)
        try:
            alert = twin.run_until_alert()
            ep = Episode(twin=twin, conn=conn, box=box, alert=alert)
            horizon = twin.horizon
            if alert is not None:
                for round_ in range(rounds):
                    before = len(ep.actions)
                    responder.respond(ep, round_)
                    acted = len(ep.actions) > before
                    remaining = horizon - twin.sim_seconds
                    if remaining <= 0:
                        break
                    if twin.advance_until(twin.oracle.holds, min(settle_s, remaining)):
                        break
                    if not acted and round_ > 0:
                        break
            remaining = horizon - twin.sim_seconds
            if remaining > 0 and not twin.recovered():
                twin.advance_until(twin.oracle.holds, remaining)
            recovered = twin.recovered()
            since = twin.oracle.recovered_since(twin.cluster) if recovered else None
            result = RunResult(
                detected=ep.detected,
                root_causes=list(ep.root_causes),
                category=ep.category,
                actions=list(ep.actions),
                recovered=recovered,
                recovered_at_s=since,
                sim_detect_s=ep.detect_s,
                sim_localize_s=ep.localize_s,
                sim_mitigate_s=since,
                steps=ep.steps,
                tool_calls=ep.tool_calls,
                wall_s=time.monotonic() - wall0,
            )
            sc_score = score(
                sc, result, write_log=list(twin.write_log), resolver=owner_resolver(twin.cluster)
            )
            return EpisodeResult(
                scenario=sc.name,
                path=path,
                agent=responder.name,
                result=result,
                score=sc_score,
                notes=ep.notes,
                alert_s=(alert.fired_at if alert is not None else None),
            )
        finally:
            conn.close()
