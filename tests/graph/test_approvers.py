"""The runner's approvers: what a terminal shows and answers, and the non-interactive ones."""

from __future__ import annotations

import asyncio
from typing import Any

from interfaces.runner import approve_all, format_request, reject_all, terminal_approver
from state import Approval

PAYLOAD: dict[str, Any] = {
    "request_id": "apr-0123456789abcdef-a1b2c3",
    "title": "FrontendErrorBudgetBurn (critical) in namespace shop",
    "actions": [
        {
            "index": 1,
            "summary": "patch_service Service/shop/productcatalogservice",
            "gate": ["approve mode: every write waits for a person"],
            "dry_run": {
                "status": "dry_run_passed",
                "message": "dry-run passed; nothing was changed",
                "before": {"selector": {"app": "productcatalog"}},
                "requested": {"selector": {"app": "productcatalogservice"}},
            },
        }
    ],
    "evidence": [{"id": "dep-3", "summary": "Service selects no pods"}],
}


def test_terminal_approver_shows_the_request_and_records_the_person() -> None:
    shown: list[str] = []
    asked: list[str] = []

    def ask(question: str) -> bool:
        asked.append(question)
        return True

    answer = asyncio.run(terminal_approver(ask, shown.append, user="alice")(PAYLOAD))
    approval = Approval.model_validate(answer)
    assert (approval.decision, approval.by, approval.via) == ("approve", "alice", "terminal")
    assert approval.request_id == PAYLOAD["request_id"]
    assert approval.action_indexes == [1]
    (text,) = shown
    assert "[1] patch_service Service/shop/productcatalogservice" in text
    assert "gate: approve mode" in text
    assert "dry-run: dry_run_passed" in text
    assert "evidence dep-3: Service selects no pods" in text
    assert asked == ["Approve these actions?"]


def test_terminal_approver_no_means_reject() -> None:
    answer = asyncio.run(terminal_approver(lambda _q: False, lambda _t: None, user="bob")(PAYLOAD))
    approval = Approval.model_validate(answer)
    assert approval.decision == "reject"
    assert approval.action_indexes == []


def test_non_interactive_approvers() -> None:
    yes = Approval.model_validate(asyncio.run(approve_all(by="ci")(PAYLOAD)))
    assert (yes.decision, yes.by, yes.action_indexes) == ("approve", "ci", [1])
    no = Approval.model_validate(asyncio.run(reject_all("nobody is there")(PAYLOAD)))
    assert (no.decision, no.comment) == ("reject", "nobody is there")
    assert no.request_id == PAYLOAD["request_id"]


def test_format_request_lists_every_action() -> None:
    text = format_request(PAYLOAD)
    assert text.splitlines()[0] == (
        "Approval needed for FrontendErrorBudgetBurn (critical) in namespace shop "
        "(apr-0123456789abcdef-a1b2c3)"
    )
