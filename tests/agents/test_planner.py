"""The planner's loops: a critic's revision, a failed verification, memory of past outcomes.

Each test runs the specialists on a live twin scenario, then re-enters the
planner the way the graph does (a revise verdict, a "not yet" verification)
or with a recall from memory, and checks the new plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agents.planner import MEMORY_HEADROOM, make_plan, oom_assessment
from state import (
    ActionStats,
    CriticVerdict,
    ExecutedAction,
    Recall,
    Verification,
)
from tests.agents.support import OWN_SCENARIOS, Run, StaticMemory, merge


@pytest.fixture
def bad_tag() -> Iterator[Run]:
    run = Run.start("billing-db-bad-tag")
    asyncio.run(run.investigate())
    yield run
    run.close()


def test_a_revision_drops_the_action_the_critic_objects_to(bad_tag: Run) -> None:
    first = bad_tag.plans[0]
    assert [a.action for a in first.actions] == ["rollback"]
    bad_tag.state = replace(
        bad_tag.state,
        verdict=CriticVerdict(
            verdict="revise",
            reasons=[
                "action 0 (rollback Deployment/pay/postgres): roll back to a named image instead"
            ],
            round=1,
        ),
        critic_rounds=1,
    )
    asyncio.run(bad_tag.plan())
    second = bad_tag.plans[-1]
    assert second.revision == 1
    assert [a.action for a in second.actions] == ["set_image"]
    assert second.actions[0].params.image == "postgres:16.4"  # type: ignore[union-attr]
    assert "safety critic objected" in second.reasoning
    # Hypotheses stay the same: the critic objected to the action, not to the diagnosis.
    assert second.hypotheses[0].root_cause == first.hypotheses[0].root_cause


def test_after_a_failed_verification_the_same_action_is_not_repeated(bad_tag: Run) -> None:
    first = bad_tag.plans[0]
    action = first.actions[0]
    now = bad_tag.ctx.clock.now()
    # As if the rollback had been applied and did not help (it was never sent here).
    bad_tag.state = merge(
        bad_tag.state,
        {
            "executed": [ExecutedAction(action_index=0, action=action, status="applied", at=now)],
            "verifications": [
                Verification(status="not_yet", checks=["FAIL pay/postgres 0/1"], at=now)
            ],
        },
    )
    asyncio.run(bad_tag.plan())
    second = bad_tag.plans[-1]
    assert second.revision == 1
    assert all(not (a.action == "rollback" and a.target == action.target) for a in second.actions)
    assert second.actions[0].action == "set_image"
    assert "already tried" in second.reasoning
    # The planner read the cluster again: fresh evidence with new ids joined the state.
    fresh = [
        e
        for e in bad_tag.state.evidence
        if e.id not in {x for x in first.hypotheses[0].evidence_ids}
    ]
    assert len(bad_tag.state.evidence) > len(fresh) > 0


def test_memory_steers_the_choice_and_the_reasoning_says_so() -> None:
    recall = Recall(
        stats=[
            ActionStats(cause_kind="image_pull", action="rollback", successes=0, failures=3),
            ActionStats(cause_kind="image_pull", action="set_image", successes=4, failures=0),
        ],
        store="static",
    )
    run = Run.start("billing-db-bad-tag", memory=StaticMemory(recall))
    try:
        run.state = replace(run.state, recall=recall)
        asyncio.run(run.investigate())
    finally:
        run.close()
    plan = run.plans[0]
    assert plan.actions[0].action == "set_image"
    assert "rollback failed before" in plan.reasoning
    assert "set_image worked before" in plan.reasoning


def test_a_healthy_cluster_gets_no_action_and_no_detection() -> None:
    run = Run.start("healthy")
    try:
        asyncio.run(run.investigate())
    finally:
        run.close()
    plan = run.plans[0]
    assert plan.actions == []
    assert run.state.detected_at is None
    assert run.state.localized_at is None
    assert plan.reasoning.startswith("No action")


def test_an_oom_limit_is_derived_from_the_peak() -> None:
    """set_resources for an OOM kill without a revision change: peak x headroom, rounded up."""
    from agents.dependency_tracer import localize
    from agents.planner import _Ctx
    from agents.signals import Graph, Scope, category_for
    from state import Evidence, Hypothesis, ObjectRef

    subject = ObjectRef(kind="Deployment", namespace="a", name="worker")

    def ev(i: int, signal: str, **data: object) -> Evidence:
        return Evidence(
            id=f"e{i}",
            source="status",
            signal=signal,
            subject=subject,
            summary=signal,
            severity=0.9,
            data=dict(data),
        )

    evidence = [
        ev(1, "oom_killed", container="main"),
        ev(2, "memory_growth", container="main", peak_ratio=1.0),
        ev(
            3,
            "container_spec",
            containers={"main": {"limits": {"memory": "256Mi"}, "requests": {}}},
        ),
    ]
    evidence[2] = evidence[2].model_copy(update={"severity": 0.0})
    cand = localize(evidence, Graph(), Scope(namespaces=("a",)))[0]
    x = _Ctx(
        groups={subject.key: evidence},
        graph=Graph(),
        scope=Scope(namespaces=("a",)),
        now=datetime.now(UTC),
        evidence=evidence,
    )

    def hyp(
        kind: str, conf: float, statement: str, ids: list[str], root: ObjectRef = subject
    ) -> Hypothesis:
        return Hypothesis(
            id="h",
            root_cause=root,
            cause_kind=kind,
            category=category_for(kind),
            confidence=conf,
            statement=statement,
            evidence_ids=ids,
        )

    a = oom_assessment(cand, x, evidence[0], evidence[1], 0.9, hyp, evidence)
    params = a.options[0].build("h1", ["e1"])["params"]
    assert params == {"container": "main", "limits": {"memory": "384Mi"}}
    assert MEMORY_HEADROOM == 1.5
    assert a.hypothesis.cause_kind == "oom"


def test_plans_validate_and_cite_existing_evidence(bad_tag: Run) -> None:
    plan = bad_tag.plans[0]
    ids = {e.id for e in bad_tag.state.evidence}
    for h in plan.hypotheses:
        assert set(h.evidence_ids) <= ids
    for a in plan.actions:
        assert a.hypothesis_id in {h.id for h in plan.hypotheses}
        assert a.evidence_ids
        assert set(a.evidence_ids) <= ids
        assert a.expected_effect
        assert a.verification
    # The rollback rests on the revision change that preceded the onset.
    cited = {e.signal for e in bad_tag.state.evidence if e.id in plan.actions[0].evidence_ids}
    assert "rollout_changed" in cited
    assert make_plan is not None


def test_two_faults_a_second_action_the_critic_objects_to_waits() -> None:
    """Two independent faults: both are planned; when the critic objects to the second (not the
    top hypothesis), the revision keeps the first and defers the second instead of escalating."""
    run = Run.start(str(OWN_SCENARIOS / "rides-two-faults.yaml"))
    try:
        asyncio.run(run.investigate())
        first = run.plans[0]
        assert [(a.action, a.target.name) for a in first.actions] == [
            ("scale", "surge-cache"),
            ("scale", "users-db"),
        ]
        run.state = replace(
            run.state,
            verdict=CriticVerdict(
                verdict="revise",
                reasons=[
                    "action 1 (scale Deployment/rides/users-db): serves hypothesis 'h2' (0.97), "
                    "not the top one 'h1' (0.97)"
                ],
                round=1,
            ),
        )
        asyncio.run(run.plan())
    finally:
        run.close()
    second = run.plans[-1]
    assert [(a.action, a.target.name) for a in second.actions] == [("scale", "surge-cache")]
    assert "deferred" in second.reasoning
    assert {h.root_cause.name for h in second.hypotheses[:2]} == {"surge-cache", "users-db"}
