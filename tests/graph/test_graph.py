"""The graph's wiring on a live twin: routing, bounded loops, the executor, undo on worse.

The reasoning nodes are scripted stand-ins (tests/graph/support/scripted.py);
intake, recall, the policy gate, approval, the executor and the learner are
the real ones, and every write goes through the twin's API server, whose
write log is the judge of what was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph import compile_graph
from interfaces.checkpoints import open_checkpointer
from interfaces.runner import Approver, GraphRun, approve_all, drive, scenario_input
from policies.limits import PolicyLimits
from settings import Settings
from state import Mode
from tests.graph.support.context import twin_context
from tests.graph.support.scripted import Critic, Planner, Verifier, escalate, scale, stand_ins
from twin.cluster import WriteRecord
from twin.harness import Twin


@pytest.fixture
def twin() -> Iterator[Twin]:
    with Twin.start("cart-redis-down") as t:
        yield t


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def real_writes(twin: Twin) -> list[WriteRecord]:
    return [w for w in twin.write_log if not w.dry_run and w.code < 400]


def run(
    twin: Twin,
    settings: Settings,
    nodes: dict[str, Any],
    *,
    mode: Mode = "autonomous",
    approver: Approver | None = None,
    incident_id: str = "inc-test",
    limits: PolicyLimits | None = None,
) -> GraphRun:
    first, fired = scenario_input(twin, mode, incident_id)
    assert fired

    async def go() -> GraphRun:
        with twin_context(twin, settings, limits=limits) as ctx:
            async with open_checkpointer(settings) as saver:
                graph = compile_graph(saver, nodes)
                return await drive(
                    graph,
                    {"input": first},
                    thread_id=incident_id,
                    ctx=ctx,
                    approver=approver or approve_all(),
                )

    return asyncio.run(go())


def nodes_of(run_: GraphRun) -> list[str]:
    return [line.node for line in run_.state.transcript]


def test_autonomous_run_applies_the_fix_and_learns(twin: Twin, settings: Settings) -> None:
    nodes = stand_ins()
    result = run(twin, settings, nodes)
    state = result.state
    assert state.incident is not None
    assert state.incident.id == "inc-test"
    assert state.incident.namespace == "shop"
    assert state.incident.fingerprint == "frontenderrorbudgetburn|shop|-"
    assert [d.decision for d in state.decisions] == ["allow"]
    assert [e.status for e in state.executed] == ["applied"]
    assert state.executed[0].before == {"replicas": 0}
    assert state.executed[0].inverse is not None
    writes = real_writes(twin)
    assert [(w.verb, w.resource, w.name, w.subresource) for w in writes] == [
        ("patch", "deployments.apps", "redis-cart", "scale")
    ]
    assert state.outcome == "recovered"
    kinds = [line.kind for line in state.transcript if line.node == "executor"]
    assert kinds == ["decision", "dry_run", "api_call"]
    assert nodes_of(result)[-1] == "learner"
    # The learner wrote the transcript where the run reports it.
    assert (settings.incident_dir("inc-test") / "transcript.json").exists()
    assert nodes["verifier"].calls == 1
    assert result.interrupts == 0


def test_critic_revisions_are_bounded(twin: Twin, settings: Settings) -> None:
    nodes = stand_ins(critic=Critic("revise"))
    result = run(twin, settings, nodes)
    # The first plan and MAX_CRITIC_REVISIONS (2) revisions; then report only.
    assert nodes["planner"].calls == 3
    assert nodes["safety_critic"].calls == 3
    assert result.state.plan is not None
    assert result.state.plan.revision == 2
    assert result.state.executed == []
    assert real_writes(twin) == []
    assert "policy_gate" not in nodes_of(result)


def test_critic_revise_then_approve(twin: Twin, settings: Settings) -> None:
    nodes = stand_ins(critic=Critic("revise", "approve"))
    result = run(twin, settings, nodes)
    assert nodes["planner"].calls == 2
    assert [e.status for e in result.state.executed] == ["applied"]
    assert result.state.executed[0].plan_revision == 1


def test_critic_reject_reports_only(twin: Twin, settings: Settings) -> None:
    nodes = stand_ins(critic=Critic("reject"))
    result = run(twin, settings, nodes)
    assert result.state.outcome == "rejected"
    assert result.state.decisions == []
    assert real_writes(twin) == []


def test_replans_are_bounded(twin: Twin, settings: Settings) -> None:
    # Each plan scales cartservice one replica further; the verifier never sees recovery.
    planner = Planner(lambda rev: [scale("cartservice", 2 + rev)])
    nodes = stand_ins(planner=planner, verifier=Verifier("not_yet"))
    result = run(twin, settings, nodes)
    assert planner.calls == 3  # the first plan and MAX_REPLANS (2) re-plans
    assert nodes["verifier"].calls == 3
    assert [(e.plan_revision, e.status) for e in result.state.executed] == [
        (0, "applied"),
        (1, "applied"),
        (2, "applied"),
    ]
    replicas = [w.body for w in real_writes(twin)]
    assert replicas == [{"spec": {"replicas": n}} for n in (2, 3, 4)]
    assert result.state.outcome == "not_recovered"


def test_worse_undoes_reversible_actions(twin: Twin, settings: Settings) -> None:
    planner = Planner(lambda _rev: [scale("cartservice", 3)])
    nodes = stand_ins(planner=planner, verifier=Verifier("worse"))
    result = run(twin, settings, nodes)
    statuses = [(e.action_index, e.action.action, e.status) for e in result.state.executed]
    assert statuses == [(0, "scale", "applied"), (0, "scale", "undone")]
    undo = result.state.executed[1]
    assert undo.before == {"replicas": 3}
    assert undo.after == {"replicas": 1}
    bodies = [w.body for w in real_writes(twin)]
    assert bodies == [{"spec": {"replicas": 3}}, {"spec": {"replicas": 1}}]
    assert nodes["verifier"].calls == 1
    assert nodes_of(result)[-1] == "learner"
    assert result.state.outcome == "not_recovered"


def test_undo_that_the_gate_denies_is_not_sent(twin: Twin, settings: Settings) -> None:
    # Undoing "scale redis-cart 0 -> 1" would scale to zero: the gate refuses, nothing is sent.
    nodes = stand_ins(verifier=Verifier("worse"))
    result = run(twin, settings, nodes)
    statuses = [e.status for e in result.state.executed]
    assert statuses == ["applied", "denied"]
    assert "to zero" in result.state.executed[1].error
    assert len(real_writes(twin)) == 1


def test_observe_mode_never_writes(twin: Twin, settings: Settings) -> None:
    nodes = stand_ins()
    result = run(twin, settings, nodes, mode="observe")
    assert [d.decision for d in result.state.decisions] == ["deny"]
    assert "observe mode" in result.state.decisions[0].reasons[0]
    assert result.state.executed == []
    assert twin.write_log == []  # not even a dry-run
    assert result.state.outcome == "recommended"
    assert result.interrupts == 0


def test_escalation_writes_nothing(twin: Twin, settings: Settings) -> None:
    planner = Planner(lambda _rev: [escalate("redis-cart is down; the fix needs a person")])
    nodes = stand_ins(planner=planner)
    result = run(twin, settings, nodes)
    assert [e.status for e in result.state.executed] == ["escalated"]
    assert result.state.outcome == "escalated"
    assert real_writes(twin) == []
    assert nodes["verifier"].calls == 0


def test_nothing_to_do_ends_quietly(twin: Twin, settings: Settings) -> None:
    nodes = stand_ins(planner=Planner(lambda _rev: []))
    result = run(twin, settings, nodes)
    assert result.state.outcome == "no_action"
    assert twin.write_log == []


def test_a_spent_budget_escalates_instead_of_acting(twin: Twin, settings: Settings) -> None:
    nodes = stand_ins()
    result = run(twin, settings, nodes, limits=PolicyLimits(max_actions_per_incident=0))
    (decision,) = result.state.decisions
    assert decision.decision == "deny"
    assert any("action budget reached" in r for r in decision.reasons)
    assert result.state.outcome == "escalated"
    assert twin.write_log == []
    assert any(
        line.node == "policy_gate" and line.summary.startswith("escalating to a person")
        for line in result.state.transcript
    )
