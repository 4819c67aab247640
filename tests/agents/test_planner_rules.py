"""The planner's rules for a scale-down under load and a failing canary behind a route.

Hand-made evidence exercises each rule and its bounds; one twin run checks the whole path
(specialists, then the planner) on a Deployment scaled down under load.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.dependency_tracer import localize
from agents.planner import _Ctx, assess, shifted_weights
from agents.signals import Graph, Scope, by_subject
from policies.limits import PolicyLimits
from state import Evidence, ObjectRef
from tests.agents.support import Run

SUITE = Path(__file__).resolve().parents[2] / "evals" / "suite"
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
API = ObjectRef(kind="Deployment", namespace="a", name="api")


def ev(
    i: int,
    signal: str,
    severity: float,
    onset_s_ago: float,
    subject: ObjectRef = API,
    **data: Any,
) -> Evidence:
    return Evidence(
        id=f"e{i}",
        source="metrics",
        signal=signal,
        subject=subject,
        summary=f"{signal} on {subject}",
        severity=severity,
        onset=NOW - timedelta(seconds=onset_s_ago),
        data=data,
    )


def ctx(evidence: list[Evidence], limits: PolicyLimits | None = None) -> _Ctx:
    return _Ctx(
        groups=by_subject(evidence),
        graph=Graph(),
        scope=Scope(namespaces=("a",)),
        now=NOW,
        evidence=evidence,
        limits=limits,
    )


def assess_top(evidence: list[Evidence], limits: PolicyLimits | None = None) -> Any:
    x = ctx(evidence, limits)
    cand = localize(evidence, x.graph, x.scope)[0]
    return assess(cand, x)


def scaled_down_evidence(before: int, after: int, scaled_s_ago: float = 120) -> list[Evidence]:
    return [
        ev(1, "latency", 0.9, 60, recent=20000.0, baseline=50.0),
        ev(2, "error_ratio", 0.6, 60, recent=0.3, baseline=0.0),
        ev(3, "saturation", 0.8, 60, recent=0.8, baseline=0.45, replicas=after, resource="cpu"),
        ev(4, "scaled_down", 0.3, scaled_s_ago, previous_replicas=before, replicas=after),
        ev(
            5,
            "traffic_increase",
            0.3,
            scaled_s_ago,
            factor=before / after,
            per_replica=True,
            previous_replicas=before,
            replicas=after,
        ),
    ]


def test_a_scale_down_before_the_onset_is_scaled_back_as_an_operation_error() -> None:
    a = assess_top(scaled_down_evidence(4, 1))
    assert a.hypothesis.cause_kind == "scaled_down"
    assert a.hypothesis.category.fault_type == "Operation Error"
    assert "e4" in a.hypothesis.evidence_ids
    assert [o.action for o in a.options] == ["scale"]
    built = a.options[0].build("h1", a.hypothesis.evidence_ids)
    assert built["params"] == {"replicas": 4}
    assert built["evidence_ids"][0] == "e4"  # the scale-down itself is cited first


def test_the_scale_back_stays_within_the_policy_limits() -> None:
    limits = PolicyLimits(max_replica_change=2, max_replicas=50)
    a = assess_top(scaled_down_evidence(8, 2), limits)
    assert a.options[0].spec.params == {"replicas": 4}
    capped = assess_top(scaled_down_evidence(8, 2), PolicyLimits(max_replicas=5))
    assert capped.options[0].spec.params == {"replicas": 5}


def test_a_scale_down_without_saturation_is_still_put_back_before_a_restart() -> None:
    """Slow, failing requests right after the replicas were lowered: scale back, not restart."""
    evidence = [e for e in scaled_down_evidence(3, 1) if e.signal not in ("saturation",)]
    evidence = [e for e in evidence if not e.data.get("per_replica")]
    a = assess_top(evidence)
    assert a.hypothesis.cause_kind == "scaled_down"
    assert [o.action for o in a.options] == ["scale"]
    assert a.options[0].spec.params == {"replicas": 3}


def test_a_scale_down_long_before_the_onset_is_no_cause() -> None:
    # Two hours before the trouble: outside the window, plain saturation plans a scale by load.
    a = assess_top(scaled_down_evidence(3, 1, scaled_s_ago=7200))
    assert a.hypothesis.cause_kind != "scaled_down"
    assert all(o.action != "rollback" for o in a.options)


def test_a_scale_down_never_leads_to_a_rollback() -> None:
    a = assess_top(scaled_down_evidence(3, 1))
    assert all(o.action not in ("rollback", "restart") for o in a.options)


def test_the_healthy_backends_take_the_failing_backends_share() -> None:
    assert shifted_weights({"stable": 80, "canary": 20}, ["canary"]) == {"stable": 100, "canary": 0}
    # In proportion to what each carried; the total stays.
    assert shifted_weights({"a": 50, "b": 25, "c": 25}, ["c"]) == {"a": 67, "b": 33, "c": 0}
    assert sum(shifted_weights({"a": 1, "b": 1, "c": 1}, ["a"]).values()) == 3
    # Healthy backends that carried nothing share it evenly.
    assert shifted_weights({"a": 0, "b": 0, "c": 10}, ["c"]) == {"a": 5, "b": 5, "c": 0}
    # Nothing healthy to move to: the weights stay as they are apart from the failing ones.
    assert shifted_weights({"a": 50, "b": 50}, ["a", "b"]) == {"a": 0, "b": 0}


def test_a_failing_canary_gets_its_traffic_shifted_to_the_stable_backend() -> None:
    route = ObjectRef(kind="HTTPRoute", namespace="a", name="api")
    canary = ObjectRef(kind="Deployment", namespace="a", name="api-canary")
    evidence = [
        ev(
            1,
            "canary_failing",
            0.9,
            60,
            subject=route,
            weights={"api": 90, "api-canary": 10},
            failing=["api-canary"],
            failing_workloads=[canary.key],
            rule_index=0,
        ),
        ev(2, "error_ratio", 0.8, 60, subject=canary, recent=0.7, baseline=0.0),
    ]
    x = ctx(evidence)
    cand = next(c for c in localize(evidence, x.graph, x.scope) if c.subject == route)
    a = assess(cand, x)
    assert a is not None
    assert a.hypothesis.cause_kind == "bad_canary"
    assert a.hypothesis.root_cause == canary
    assert [o.action for o in a.options] == ["shift_traffic"]
    assert a.options[0].spec.target == route
    assert a.options[0].spec.params == {"rule_index": 0, "weights": {"api": 100, "api-canary": 0}}


def test_a_deployment_scaled_down_under_load_on_the_twin_is_scaled_back() -> None:
    run = Run.start(SUITE / "stock-api-scaled-down-under-load.yaml")
    try:
        asyncio.run(run.investigate())
    finally:
        run.close()
    plan = run.plans[0]
    top = plan.hypotheses[0]
    assert top.cause_kind == "scaled_down"
    assert top.category.fault_type == "Operation Error"
    writes = [a for a in plan.actions if a.action != "escalate"]
    assert [(a.action, a.target.name) for a in writes] == [("scale", top.root_cause.name)]
    assert writes[0].params.replicas == 3  # type: ignore[union-attr]


# -- rollbacks return only to a revision that ran before the trouble -----------------------------

OLD, BAD, FIX = "app:1.0", "app:1.1", "app:1.2"


def crashing(image: str, crash_s_ago: float, current_s_ago: float) -> list[Evidence]:
    """A Deployment whose pods of `image` crash since crash_s_ago; its current revision 3 was
    created current_s_ago, over revision 2 (which ran BAD)."""
    return [
        ev(1, "crash_loop", 0.85, crash_s_ago, container="app", image=image, exit_code=1),
        ev(
            2,
            "rollout_changed",
            0.3,
            current_s_ago,
            revision=3,
            previous_revision=2,
            previous_images={"app": BAD},
            images={"app": FIX},
            changed_images={"app": BAD},
        ),
    ]


def history(target_s_ago: float) -> dict[str, Any]:
    def at(s_ago: float) -> str:
        return (NOW - timedelta(seconds=s_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        API.key: {
            "current_revision": 3,
            "revisions": [
                {"revision": 1, "images": {"app": OLD}, "created": at(7200)},
                {"revision": 2, "images": {"app": BAD}, "created": at(target_s_ago)},
                {"revision": 3, "images": {"app": FIX}, "created": at(60)},
            ],
        }
    }


def assess_with(evidence: list[Evidence], rollouts: dict[str, Any] | None = None) -> Any:
    x = ctx(evidence)
    x.rollouts = rollouts or {}
    return assess(localize(evidence, x.graph, x.scope)[0], x)


def test_no_rollback_to_a_revision_whose_pods_crashed() -> None:
    # The crashing container ran the image the rollback would return to.
    a = assess_with(crashing(BAD, crash_s_ago=100, current_s_ago=90), history(400))
    assert all(o.action not in ("rollback", "set_image") for o in a.options)
    assert a.hypothesis.cause_kind != "bad_rollout"


def test_no_rollback_to_the_release_the_trouble_followed() -> None:
    # Revision 2 was released 5 s before the crashes began; revision 3 came 115 s after them.
    a = assess_with(crashing(FIX, crash_s_ago=175, current_s_ago=60), history(180))
    assert all(o.action != "rollback" for o in a.options)
    # Without the history nothing says revision 2 ran healthy: no rollback either.
    b = assess_with(crashing(FIX, crash_s_ago=175, current_s_ago=60))
    assert all(o.action != "rollback" for o in b.options)


def test_a_release_right_before_the_trouble_is_still_rolled_back() -> None:
    # Revision 3 came 10 s before the crashes; revision 2 ran for an hour before it.
    a = assess_with(crashing(FIX, crash_s_ago=50, current_s_ago=60), history(3600))
    assert a.hypothesis.cause_kind == "bad_rollout"
    assert a.options[0].action == "rollback"
    assert a.options[0].spec.params == {"to_revision": 2}


# -- a probe set wrong ----------------------------------------------------------------------------


def probe_evidence(with_revision: bool) -> list[Evidence]:
    evidence = [
        ev(1, "crash_loop", 0.85, 50, container="app", image=OLD, exit_code=137),
        ev(
            2,
            "probe_misconfigured",
            0.6,
            50,
            container="app",
            probe="liveness",
            port=9999,
            declared=["8080"],
        ),
    ]
    if with_revision:
        evidence.append(
            ev(
                3,
                "rollout_changed",
                0.3,
                60,
                revision=2,
                previous_revision=1,
                previous_images={"app": OLD},
                images={"app": OLD},
                changed_images={},
            )
        )
    return evidence


def test_a_probe_set_wrong_by_a_change_is_a_misconfiguration_rolled_back() -> None:
    a = assess_with(probe_evidence(with_revision=True))
    assert a.hypothesis.cause_kind == "probe_misconfigured"
    assert a.hypothesis.category.fault_type == "Misconfiguration"
    assert "e2" in a.hypothesis.evidence_ids
    assert [o.action for o in a.options] == ["rollback"]
    assert a.options[0].spec.params == {"to_revision": 1}


def test_a_probe_set_wrong_with_no_revision_to_return_to_escalates() -> None:
    a = assess_with(probe_evidence(with_revision=False))
    assert a.hypothesis.cause_kind == "probe_misconfigured"
    assert a.options == []
    assert "probe" in a.escalate_reason
