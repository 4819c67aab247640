"""The executor's audit lines for each way an API call can go."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.context import AgentContext
from agents.executor import _call_lines
from memory.inprocess import InProcessMemory
from policies.limits import PolicyLimits
from settings import Settings
from tests.graph.support.scripted import scale
from tools.executor import ActionOutcome
from tools.registry import Toolbox


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 7, 11, 3, 0, tzinfo=UTC)

    async def sleep(self, seconds: float) -> None:
        return None


CTX = AgentContext(
    settings=Settings(),
    toolbox=Toolbox(),
    clock=FixedClock(),
    memory=InProcessMemory(),
    limits=PolicyLimits(),
)
PATCH = "PATCH Deployment/shop/cartservice/scale spec.replicas=2"


def lines(status: str, requests: list[str], message: str = "m") -> list[tuple[str, str]]:
    outcome = ActionOutcome.model_validate(
        {
            "action": scale("cartservice", 2),
            "status": status,
            "message": message,
            "requests": requests,
        }
    )
    return [(line.kind, line.summary) for line in _call_lines(CTX, 0, outcome)]


def test_applied_is_a_dry_run_and_a_call() -> None:
    got = lines("applied", [f"{PATCH} (dryRun=All)", PATCH], "scaled from 1 to 2")
    assert got == [
        ("dry_run", "server-side dry-run of scale Deployment/shop/cartservice: passed"),
        ("api_call", "scale Deployment/shop/cartservice: applied: scaled from 1 to 2"),
    ]


def test_a_failed_dry_run_sends_nothing() -> None:
    got = lines("rejected", [f"{PATCH} (dryRun=All)"], "dry-run failed: quota exceeded")
    assert got == [
        (
            "dry_run",
            "server-side dry-run of scale Deployment/shop/cartservice: failed "
            "(dry-run failed: quota exceeded)",
        )
    ]


def test_a_failed_precondition_and_no_change_are_notes() -> None:
    assert lines("rejected", [], "no container 'x'") == [
        ("note", "scale Deployment/shop/cartservice not sent: rejected: no container 'x'")
    ]
    assert lines("no_change", [], "already has 2 replicas") == [
        ("note", "scale Deployment/shop/cartservice not sent: no_change: already has 2 replicas")
    ]


def test_a_real_call_that_failed() -> None:
    got = lines("failed", [f"{PATCH} (dryRun=All)", PATCH], "server error")
    assert [k for k, _ in got] == ["dry_run", "api_call"]
    assert got[1][1].endswith("failed: server error")
