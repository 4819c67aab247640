"""The policy file, approvals (replayed, forged, late, stray) and per-incident budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policies.approvals import (
    approved_indexes,
    check_approval,
    new_request_id,
    plan_digest,
    request_digest,
)
from policies.budgets import budget_exceeded, writes_done
from policies.context import HARD_MAX_REPLICAS
from policies.limits import DEFAULT_FILE, PolicyFileError, PolicyLimits, load_limits
from state import Approval, ExecutedAction, TokenUsage
from tests.safety.builders import NOW, act

# -- the policy file ------------------------------------------------------------------


def test_the_default_file_is_valid_and_matches_the_model_defaults() -> None:
    assert load_limits(DEFAULT_FILE) == PolicyLimits()


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("auto_actions: [restart, delete_namespace]\n", "auto_actions.1"),
        ("min_confidence: 1.5\n", "min_confidence"),
        ("max_replicas: 5000\n", "max_replicas"),
        ("freeze_windows: [{days: [someday]}]\n", "freeze_windows.0.days"),
        ("freeze_windows: [{start: '25:00'}]\n", "freeze_windows.0.start"),
        ("allow_everything: true\n", "allow_everything"),
        ("- just\n- a list\n", "mapping at the top level"),
        ("max_actions_per_incident: [\n", "not valid YAML"),
        ("approval_ttl_s: 0\n", "approval_ttl_s"),
        ("protected_namespaces: [Prod_DB]\n", "protected_namespaces"),
        ("autonomous_namespaces: ['shop/*']\n", "autonomous_namespaces"),
        ("approvers: ['']\n", "approvers"),
    ],
)
def test_an_invalid_policy_file_stops_start_up_naming_the_field(
    tmp_path: Path, text: str, phrase: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as err:
        load_limits(path)
    assert phrase in str(err.value)
    assert str(path) in str(err.value)


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read policy file"):
        load_limits(tmp_path / "nope.yaml")


def test_a_file_may_only_lower_the_hard_ceiling(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"max_replicas: {HARD_MAX_REPLICAS}\nfreeze_windows: [{{days: [Saturday]}}]\n")
    limits = load_limits(path)
    assert limits.max_replicas == HARD_MAX_REPLICAS
    assert limits.freeze_windows[0].days == ["sat"]


# -- approvals ---------------------------------------------------------------------------

PLAN = [act("restart", "Deployment", "cart"), act("scale", "Deployment", "cart", replicas=3)]
PENDING = [0, 1]
LIMITS = PolicyLimits(approvers=["alice", "U024BE7LH"], approval_ttl_s=600)


def _answer(request_id: str, **kw: object) -> Approval:
    base: dict[str, object] = {
        "decision": "approve",
        "by": "alice",
        "via": "terminal",
        "at": datetime.now(UTC),
        "request_id": request_id,
    }
    base.update(kw)
    return Approval.model_validate(base)


def test_a_fresh_answer_to_the_pending_request_counts() -> None:
    rid = new_request_id(PLAN, PENDING)
    assert (
        check_approval(_answer(rid), rid, PENDING, NOW, issued_at=NOW, actions=PLAN, limits=LIMITS)
        == []
    )
    assert approved_indexes(_answer(rid), PENDING) == {0, 1}
    assert approved_indexes(_answer(rid, action_indexes=[1]), PENDING) == {1}
    assert approved_indexes(_answer(rid, decision="reject"), PENDING) == set()


def test_request_ids_are_bound_to_the_actions_and_unique() -> None:
    a, b = new_request_id(PLAN, PENDING), new_request_id(PLAN, PENDING)
    assert a != b
    assert request_digest(a) == request_digest(b) == plan_digest(PLAN, PENDING)
    assert plan_digest(PLAN, [0]) != plan_digest(PLAN, PENDING)
    assert request_digest("made-up") is None


@pytest.mark.parametrize(
    ("case", "answer", "phrase"),
    [
        ("forged: no request id", lambda rid: _answer(""), "names no request id"),
        (
            "forged: another id",
            lambda rid: _answer("apr-0000000000000000-abc"),
            "replayed or forged",
        ),
        ("no approver", lambda rid: _answer(rid, by="  "), "names no approver"),
        ("not an approver", lambda rid: _answer(rid, by="mallory"), "not one of the approvers"),
        ("claims to be the policy", lambda rid: _answer(rid, via="policy"), "policy"),
        ("stray actions", lambda rid: _answer(rid, action_indexes=[0, 5]), "not pending"),
    ],
)
def test_a_bad_answer_is_refused(case: str, answer: object, phrase: str) -> None:
    rid = new_request_id(PLAN, PENDING)
    given = answer(rid)  # type: ignore[operator]
    reasons = check_approval(given, rid, PENDING, NOW, issued_at=NOW, actions=PLAN, limits=LIMITS)
    assert any(phrase in r for r in reasons), (case, reasons)


def test_a_replayed_answer_is_refused() -> None:
    rid = new_request_id(PLAN, PENDING)
    first = _answer(rid)
    assert check_approval(first, rid, PENDING, NOW, previous=[]) == []
    reasons = check_approval(first, rid, PENDING, NOW, previous=[first])
    assert any("already answered (replay)" in r for r in reasons)


def test_an_answer_to_an_old_request_is_refused_after_a_new_one() -> None:
    old = new_request_id(PLAN, PENDING)
    new = new_request_id(PLAN, PENDING)
    reasons = check_approval(_answer(old), new, PENDING, NOW)
    assert any("replayed or forged" in r for r in reasons)


def test_a_late_answer_is_refused() -> None:
    rid = new_request_id(PLAN, PENDING)
    later = NOW + timedelta(seconds=601)
    reasons = check_approval(_answer(rid), rid, PENDING, later, issued_at=NOW, limits=LIMITS)
    assert any("gate the plan again" in r for r in reasons)


def test_an_answer_after_the_plan_changed_is_refused() -> None:
    rid = new_request_id(PLAN, PENDING)
    revised = [PLAN[0], act("scale", "Deployment", "cart", replicas=9)]
    reasons = check_approval(_answer(rid), rid, PENDING, NOW, actions=revised)
    assert any("the plan changed" in r for r in reasons)


def test_nothing_pending_nothing_to_answer() -> None:
    reasons = check_approval(_answer("apr-x"), "", [], NOW)
    assert any("no approval request is pending" in r for r in reasons)
    assert any("no action is pending" in r for r in reasons)


# -- budgets -------------------------------------------------------------------------------


def _executed(status: str, action_name: str = "restart") -> ExecutedAction:
    action = (
        act("restart", "Deployment", "cart")
        if action_name == "restart"
        else act("escalate", "Deployment", "cart", summary="help")
    )
    return ExecutedAction(action_index=0, action=action, status=status, at=NOW)


def test_writes_done_counts_only_what_reached_the_cluster() -> None:
    executed = [
        _executed("applied"),
        _executed("failed"),
        _executed("undone"),
        _executed("denied"),
        _executed("dry_run_failed"),
        _executed("skipped"),
        _executed("escalated", "escalate"),
    ]
    assert writes_done(executed) == 3


@pytest.mark.parametrize(
    ("tokens", "done", "phrase"),
    [
        (TokenUsage(input=150_000, output=50_001), 0, "token budget"),
        (TokenUsage(cost_usd=5.5), 0, "cost budget"),
        (TokenUsage(), 5, "action budget"),
        (TokenUsage(input=100, output=100, cost_usd=0.01), 4, None),
    ],
)
def test_budget_exceeded(tokens: TokenUsage, done: int, phrase: str | None) -> None:
    reason = budget_exceeded(tokens, done, PolicyLimits())
    if phrase is None:
        assert reason is None
    else:
        assert reason is not None
        assert phrase in reason


def test_a_zero_token_budget_still_lets_the_deterministic_mode_work() -> None:
    assert budget_exceeded(TokenUsage(), 0, PolicyLimits(max_tokens_per_incident=0)) is None
