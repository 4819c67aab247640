"""Two faults found one by one: a cause an action fixed is kept as resolved, and ranks first.

After a verification that was not yet recovered, the planner re-reads the cluster. A
hypothesis of the previous plan whose action was applied and that the fresh reading no
longer supports is resolved (Plan.resolved); the incident's root causes (Plan.ranked) list
the resolved causes first, in the order they were fixed, then the open hypotheses.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.learner import action_outcomes, top_hypothesis
from agents.planner import resolved_causes
from interfaces.postmortem import build_postmortem, render_html, render_markdown
from interfaces.runner import run_scenario
from settings import Settings
from state import (
    Category,
    ExecutedAction,
    Hypothesis,
    Incident,
    IncidentInput,
    IncidentReport,
    IncidentState,
    ObjectRef,
    Plan,
    Verification,
    parse_action,
)

AT = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
SUITE = Path(__file__).resolve().parents[2] / "evals" / "suite"


def hyp(
    hid: str, name: str, confidence: float, fault_type: str = "Dependency Problem"
) -> Hypothesis:
    return Hypothesis(
        id=hid,
        root_cause=ObjectRef(kind="Deployment", namespace="a", name=name),
        cause_kind="scaled_to_zero",
        category=Category(system_level="Application", fault_type=fault_type),
        confidence=confidence,
        statement=f"{name} is down",
    )


def applied(h: Hypothesis, revision: int, status: str = "applied") -> ExecutedAction:
    action = parse_action(
        {
            "action": "scale",
            "target": h.root_cause.model_dump(),
            "params": {"replicas": 1},
            "hypothesis_id": h.id,
            "expected_effect": "serves again",
            "verification": "ready",
        }
    )
    return ExecutedAction(
        action_index=0, action=action, status=status, at=AT, plan_revision=revision
    )


def after_round_one(executed: list[ExecutedAction], status: Any = "not_yet") -> IncidentState:
    first = Plan(hypotheses=[hyp("h1", "db", 0.97), hyp("h2", "api", 0.6)], revision=0)
    return IncidentState(
        input=IncidentInput(trigger="alert"),
        plan=first,
        executed=executed,
        verifications=[Verification(status=status, at=AT)],
    )


def test_ranked_lists_resolved_causes_first_then_by_confidence_once_per_object() -> None:
    plan = Plan(
        hypotheses=[hyp("h1", "api", 0.5), hyp("h2", "pay", 0.99), hyp("h3", "db", 0.4)],
        resolved=[hyp("h1", "db", 0.9), hyp("h1", "cache", 0.97)],
    )
    assert [h.root_cause.name for h in plan.ranked()] == ["db", "cache", "pay", "api"]
    assert Plan().ranked() == []


def test_a_fixed_cause_the_fresh_reading_no_longer_shows_is_resolved() -> None:
    state = after_round_one([applied(hyp("h1", "db", 0.97), revision=0)])
    second = Plan(hypotheses=[hyp("h1", "pay", 0.99, "Code Defect")], revision=1)
    (resolved,) = resolved_causes(state, second)
    assert resolved.root_cause.name == "db"
    ranked = second.model_copy(update={"resolved": [resolved]}).ranked()
    assert [h.root_cause.name for h in ranked] == ["db", "pay"]
    # The report (post-mortem, Slack) takes the same order; its category is the first's.
    done = replace(state, plan=second.model_copy(update={"resolved": [resolved]}))
    done = replace(done, incident=_incident())
    report = IncidentReport.from_state(done)
    assert [h.root_cause.name for h in report.hypotheses] == ["db", "pay"]


@pytest.mark.parametrize(
    ("executed", "still", "why"),
    [
        ([], [], "nothing was applied for it"),
        ([applied(hyp("h1", "db", 0.97), revision=0, status="failed")], [], "the action failed"),
        ([applied(hyp("h1", "db", 0.97), revision=0)], ["db"], "the fresh reading still shows it"),
    ],
)
def test_no_resolution_without_a_fix_that_took(
    executed: list[ExecutedAction], still: list[str], why: str
) -> None:
    state = after_round_one(executed)
    second = Plan(hypotheses=[hyp(f"h{i}", n, 0.9) for i, n in enumerate(still, 1)], revision=1)
    assert resolved_causes(state, second) == [], why


def test_resolved_causes_carry_through_revisions_unless_the_fault_is_back() -> None:
    carried = hyp("h1", "db", 0.97)
    previous = Plan(hypotheses=[hyp("h1", "pay", 0.99)], resolved=[carried], revision=1)
    # A critic revision (no new verification since the plan) keeps them.
    state = IncidentState(input=IncidentInput(trigger="alert"), plan=previous)
    revised = Plan(hypotheses=[hyp("h1", "pay", 0.99)], revision=2)
    assert resolved_causes(state, revised) == [carried]
    # The same object failing again is an open hypothesis, not a resolved one.
    back = Plan(hypotheses=[hyp("h1", "db", 0.9), hyp("h2", "pay", 0.99)], revision=2)
    assert resolved_causes(state, back) == []
    assert resolved_causes(IncidentState(input=IncidentInput(trigger="alert")), back) == []


def _incident() -> Incident:
    return Incident(
        id="inc-1", title="t", trigger="alert", fingerprint="f", mode="autonomous", opened_at=AT
    )


def test_two_faults_fixed_one_after_the_other_report_the_first_as_the_top_cause(
    tmp_path: Path,
) -> None:
    """End to end on the twin: a Deployment scaled to zero, then a hang a little later."""
    scenario = SUITE / "shop-two-faults-catalog-and-payment.yaml"
    run = asyncio.run(run_scenario(scenario, settings=Settings(data_dir=tmp_path)))
    report = run.report
    names = [c["name"] for c in report["root_causes"]]
    assert names[:2] == ["productcatalogservice", "paymentservice"]
    assert report["category"] == {"system_level": "Application", "fault_type": "Dependency Problem"}
    assert report["recovered"] is True
    assert run.state.plan is not None
    (fixed,) = run.state.plan.resolved
    assert fixed.root_cause.name == "productcatalogservice"
    assert fixed.resolved_in == 0
    # What memory learns: each action worked, for the kind of cause it served; the incident
    # is remembered by its first cause, and only that cause's action counts for its kind.
    outcomes = {o.action: o for o in action_outcomes(run.state)}
    assert (outcomes["scale"].recovered, outcomes["scale"].cause_kind) == (True, "scaled_to_zero")
    assert (outcomes["restart"].recovered, outcomes["restart"].cause_kind) == (True, "hang")
    top = top_hypothesis(run.state)
    assert top is not None
    assert top.cause_kind == "scaled_to_zero"
    assert [o.action for o in outcomes.values() if o.counts_for(top.cause_kind)] == ["scale"]
    # The post-mortem names both causes, each confirmed by its fix, not one as a mere lead.
    pm = build_postmortem(IncidentReport.from_state(run.state))
    assert pm.root_cause is not None
    assert pm.root_cause.component == "Deployment/shop/productcatalogservice"
    assert [c.component for c in pm.further_causes] == ["Deployment/shop/paymentservice"]
    assert "Deployment/shop/paymentservice" not in {h.component for h in pm.other_hypotheses}
    assert "A further cause, found after the first was fixed" in render_markdown(pm)
    assert "A further cause, found after the first was fixed" in render_html(pm)
