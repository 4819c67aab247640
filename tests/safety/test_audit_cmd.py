"""`kubemedic audit INCIDENT_ID`: the audit trail printed from an incident's transcript file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from interfaces.audit_cmd import audit, transcript_path
from state import (
    Approval,
    ExecutedAction,
    GateDecision,
    Incident,
    IncidentReport,
    TokenUsage,
    TranscriptEntry,
)
from tests.safety.builders import act

T0 = datetime(2026, 7, 11, 3, 3, tzinfo=UTC)
INCIDENT = "inc-audit-1"
LEAK = "hunter2-do-not-print"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def app() -> typer.Typer:
    """How the lead mounts it: `app.command("audit")(audit)`."""
    a = typer.Typer()
    a.command("audit")(audit)
    a.command("noop", hidden=True)(lambda: None)  # a group, so "audit" is a subcommand
    return a


def report() -> IncidentReport:
    scale = act("scale", "Deployment", "redis-cart", replicas=1)
    line = TranscriptEntry
    return IncidentReport(
        incident=Incident(
            id=INCIDENT,
            title="FrontendErrorBudgetBurn in shop",
            trigger="alert",
            namespace="shop",
            fingerprint="f",
            mode="approve",
            opened_at=T0,
        ),
        outcome="recovered",
        hypotheses=[],
        actions=[ExecutedAction(action_index=0, action=scale, status="applied", at=at(40))],
        decisions=[
            GateDecision(
                action_index=0,
                action="scale",
                target="Deployment/shop/redis-cart",
                decision="needs_approval",
                reasons=["approve mode: every write waits"],
                at=at(20),
            )
        ],
        verifications=[],
        tokens=TokenUsage(),
        detected_at=T0,
        localized_at=at(10),
        mitigated_at=at(120),
        # Deliberately out of order: the trail sorts by time.
        transcript=[
            line(at=at(40), node="executor", kind="api_call", summary="scale ...: applied"),
            line(at=at(0), node="intake", kind="intake", summary="alert FrontendErrorBudgetBurn"),
            line(at=at(5), node="log_analyst", kind="evidence", summary="redis refused"),
            line(at=at(12), node="planner", kind="proposal", summary="scale redis-cart to 1"),
            line(
                at=at(15), node="safety_critic", kind="verdict", summary="critic round 1: approve"
            ),
            line(at=at(20), node="policy_gate", kind="decision", summary="needs_approval: scale"),
            line(
                at=at(30),
                node="approval",
                kind="approval",
                summary=f"approved by alice via slack (password={LEAK})",
            ),
            line(at=at(39), node="executor", kind="dry_run", summary="dry-run passed"),
            line(at=at(41), node="executor", kind="note", summary="a note"),
        ],
        approvals=[
            Approval(
                decision="approve",
                action_indexes=[0],
                by="alice",
                via="slack",
                at=at(30),
                request_id="apr-0123456789abcdef-a1b2c3",
            )
        ],
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = transcript_path(tmp_path, INCIDENT)
    path.parent.mkdir(parents=True)
    path.write_text(report().model_dump_json())
    return tmp_path


def test_the_trail_is_printed_in_order_with_who_when_and_where(data_dir: Path) -> None:
    result = CliRunner().invoke(app(), ["audit", INCIDENT, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    out = result.output
    kinds = ["intake", "proposal", "verdict", "decision", "approval", "dry_run", "api_call"]
    positions = [out.index(f" {k} ") for k in kinds]
    assert positions == sorted(positions)
    assert "evidence" not in out.split("gate decisions:")[0]  # not an audit line
    assert "a note" not in out
    assert "2026-07-11T03:03:30+00:00  approve by alice via slack for #0" in out
    assert "request apr-0123456789abcdef-a1b2c3" in out
    assert "#0 scale Deployment/shop/redis-cart: applied" in out
    assert "needs_approval (approve mode: every write waits)" in out
    assert LEAK not in out


def test_all_and_json(data_dir: Path) -> None:
    runner = CliRunner()
    everything = runner.invoke(app(), ["audit", INCIDENT, "--data-dir", str(data_dir), "--all"])
    assert "a note" in everything.output
    assert "redis refused" in everything.output
    as_json = runner.invoke(app(), ["audit", INCIDENT, "--data-dir", str(data_dir), "--json"])
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert [r["kind"] for r in rows] == [
        "intake",
        "proposal",
        "verdict",
        "decision",
        "approval",
        "dry_run",
        "api_call",
    ]
    assert LEAK not in as_json.output


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b", "..", "", "-rf"])
def test_an_incident_id_is_a_name_not_a_path(tmp_path: Path, bad: str) -> None:
    result = CliRunner().invoke(app(), ["audit", "--data-dir", str(tmp_path), "--", bad])
    assert result.exit_code == 1
    assert "is not an incident id" in result.output


def test_a_missing_or_broken_transcript_is_named(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app(), ["audit", "inc-nope", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1
    assert "no transcript at" in missing.output
    assert "inc-nope" in missing.output
    path = transcript_path(tmp_path, "inc-broken")
    path.parent.mkdir(parents=True)
    path.write_text('{"incident": 3}')
    broken = CliRunner().invoke(app(), ["audit", "inc-broken", "--data-dir", str(tmp_path)])
    assert broken.exit_code == 1
    assert "is not an incident transcript" in broken.output
