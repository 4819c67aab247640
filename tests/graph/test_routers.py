"""Every branch of every router, on hand-built states."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from langgraph.runtime import Runtime

from agents.context import AgentContext
from graph import (
    MAX_CRITIC_REVISIONS,
    MAX_REPLANS,
    NODES,
    build_graph,
    route_after_approval,
    route_after_critic,
    route_after_executor,
    route_after_gate,
    route_after_verifier,
)
from memory.inprocess import InProcessMemory
from policies.limits import PolicyLimits
from settings import Settings
from state import (
    CriticVerdict,
    ExecutedAction,
    GateDecision,
    IncidentInput,
    IncidentState,
    Plan,
    TokenUsage,
    Verification,
)
from tests.graph.support.scripted import scale
from tools.clock import WallClock
from tools.registry import Toolbox

NOW = datetime(2026, 7, 11, 3, 0, tzinfo=UTC)


def state(mode: str = "autonomous", **fields: Any) -> IncidentState:
    return IncidentState(input=IncidentInput(trigger="cli", mode=mode), **fields)


def decision(i: int, kind: str) -> GateDecision:
    return GateDecision.model_validate(
        {"action_index": i, "action": "scale", "target": "x", "decision": kind, "at": NOW}
    )


def verification(status: str) -> Verification:
    return Verification.model_validate({"status": status, "at": NOW})


def executed(status: str, revision: int = 0) -> ExecutedAction:
    return ExecutedAction.model_validate(
        {
            "action_index": 0,
            "action": scale("cartservice", 2),
            "status": status,
            "at": NOW,
            "plan_revision": revision,
        }
    )


def runtime(limits: PolicyLimits | None = None) -> Runtime[AgentContext]:
    ctx = AgentContext(
        settings=Settings(),
        toolbox=Toolbox(),
        clock=WallClock(),
        memory=InProcessMemory(),
        limits=limits or PolicyLimits(),
    )
    return Runtime(context=ctx)


def verdict(kind: str) -> CriticVerdict:
    return CriticVerdict.model_validate({"verdict": kind})


@pytest.mark.parametrize(
    ("kind", "rounds", "failed", "expected"),
    [
        ("approve", 1, 0, "policy_gate"),
        ("revise", 1, 0, "planner"),
        ("revise", MAX_CRITIC_REVISIONS, 0, "planner"),
        ("revise", MAX_CRITIC_REVISIONS + 1, 0, "learner"),
        # A re-plan after a failed verification gets a new allowance of revisions.
        ("revise", MAX_CRITIC_REVISIONS + 1, 1, "planner"),
        ("reject", 1, 0, "learner"),
    ],
)
def test_after_critic(kind: str, rounds: int, failed: int, expected: str) -> None:
    s = state(
        verdict=verdict(kind),
        critic_rounds=rounds,
        verifications=[verification("not_yet")] * failed,
    )
    assert route_after_critic(s) == expected


def test_after_critic_without_a_verdict_reports_only() -> None:
    assert route_after_critic(state()) == "learner"


@pytest.mark.parametrize(
    ("mode", "decisions", "pending", "expected"),
    [
        ("autonomous", [], "", "learner"),
        ("observe", ["deny"], "", "learner"),
        ("autonomous", ["deny", "deny"], "", "learner"),
        ("autonomous", ["allow", "deny"], "", "executor"),
        ("autonomous", ["allow", "needs_approval"], "apr-x", "approval"),
        ("approve", ["needs_approval"], "apr-x", "approval"),
        # No request was prepared (budget spent): nothing needing a person runs.
        ("approve", ["needs_approval"], "", "learner"),
    ],
)
def test_after_gate(mode: str, decisions: list[str], pending: str, expected: str) -> None:
    s = state(
        mode,
        decisions=[decision(i, d) for i, d in enumerate(decisions)],
        pending_approval=pending,
    )
    assert route_after_gate(s) == expected


@pytest.mark.parametrize(
    ("decisions", "approved", "expected"),
    [
        (["needs_approval"], [0], "executor"),
        (["needs_approval"], [], "learner"),
        (["allow", "needs_approval"], [], "executor"),
        (["deny"], [0], "learner"),
    ],
)
def test_after_approval(decisions: list[str], approved: list[int], expected: str) -> None:
    s = state(
        decisions=[decision(i, d) for i, d in enumerate(decisions)], approved_actions=approved
    )
    assert route_after_approval(s) == expected


def test_after_executor() -> None:
    plan0 = Plan(actions=[scale("cartservice", 2)], revision=0)
    plan1 = Plan(actions=[scale("cartservice", 2)], revision=1)
    assert route_after_executor(state(plan=plan0, executed=[executed("applied")])) == "verifier"
    assert route_after_executor(state(plan=plan0, executed=[executed("escalated")])) == "learner"
    assert route_after_executor(state(plan=plan0, executed=[executed("denied")])) == "learner"
    # Only what this plan revision applied is verified.
    assert route_after_executor(state(plan=plan1, executed=[executed("applied", 0)])) == "learner"
    after_undo = state(
        plan=plan0,
        executed=[executed("applied"), executed("undone")],
        verifications=[verification("worse")],
    )
    assert route_after_executor(after_undo) == "learner"


def test_after_verifier() -> None:
    rt = runtime()
    assert route_after_verifier(state(verifications=[verification("recovered")]), rt) == "learner"
    assert route_after_verifier(state(verifications=[verification("worse")]), rt) == "executor"
    assert route_after_verifier(state(verifications=[verification("not_yet")]), rt) == "planner"
    spent = [verification("not_yet")] * (MAX_REPLANS + 1)
    assert route_after_verifier(state(verifications=spent), rt) == "learner"


def test_after_verifier_stops_replanning_when_the_budget_is_spent() -> None:
    rt = runtime(PolicyLimits(max_tokens_per_incident=1000))
    s = state(verifications=[verification("not_yet")], tokens=TokenUsage(input=900, output=200))
    assert route_after_verifier(s, rt) == "learner"


def test_graph_has_every_node_and_rejects_unknown_overrides() -> None:
    g = build_graph()
    assert set(NODES) <= set(g.nodes)
    with pytest.raises(ValueError, match="no such nodes: plannr"):
        build_graph({"plannr": g.nodes["planner"].runnable})  # type: ignore[dict-item]
