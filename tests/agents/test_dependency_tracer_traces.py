"""Slow traces: a failed call the callee never answered (no span of its own) is not "time lost
on the way"; a hung callee looks exactly like that."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents.dependency_tracer import _blame_latency, trace
from state import ObjectRef
from tests.agents.support import Run

SUITE = Path(__file__).resolve().parents[2] / "evals" / "suite"


def span(
    sid: str,
    parent: str | None,
    service: str,
    error: bool,
    kind: str = "server",
    peer: str | None = None,
    ms: float = 5.0,
) -> dict[str, Any]:
    return {
        "span_id": sid,
        "parent_id": parent,
        "service": service,
        "operation": "op",
        "duration_ms": ms,
        "error": error,
        "kind": kind,
        "peer": peer,
    }


def test_a_failed_call_the_callee_never_answered_is_unanswered_not_slow_on_the_way() -> None:
    slow: dict[tuple[str, str], list[float]] = {}
    origin: dict[str, list[float]] = {}
    unanswered: dict[tuple[str, str], list[float]] = {}
    timeout = [
        span("1", None, "api", True, ms=10020),
        span("2", "1", "api", True, kind="client", peer="db", ms=10000),
    ]
    _blame_latency({"spans": timeout, "duration_ms": 10020}, slow, origin, unanswered)
    assert unanswered == {("api", "db"): [10000.0]}
    assert slow == {}


def test_a_slow_answered_call_is_still_time_on_the_way() -> None:
    slow: dict[tuple[str, str], list[float]] = {}
    origin: dict[str, list[float]] = {}
    unanswered: dict[tuple[str, str], list[float]] = {}
    answered = [
        span("1", None, "api", False, ms=820),
        span("2", "1", "api", False, kind="client", peer="db", ms=800),
        span("3", "2", "db", False, ms=20),
    ]
    _blame_latency({"spans": answered, "duration_ms": 820}, slow, origin, unanswered)
    assert slow == {("api", "db"): [780.0]}
    assert unanswered == {}
    # A slow call that succeeded without a span from the callee (an uninstrumented database)
    # says nothing about an answer missing: it stays a slow hop.
    quiet = [
        span("1", None, "api", False, ms=620),
        span("2", "1", "api", False, kind="client", peer="db", ms=600),
    ]
    _blame_latency({"spans": quiet, "duration_ms": 620}, slow, origin, unanswered)
    assert slow[("api", "db")] == [780.0, 600.0]
    assert unanswered == {}


def test_a_hung_database_is_seen_through_its_callers_unanswered_calls() -> None:
    """On the twin: a hung StatefulSet (up, ready, silent, answering nothing) is the origin of
    its callers' timeouts, with their client-side error ratio; no "slow network path"."""
    run = Run.start(SUITE / "news-articles-db-hang.yaml")
    try:
        result = asyncio.run(trace(run.state, run.ctx))
    finally:
        run.close()
    db = ObjectRef(kind="StatefulSet", namespace="news", name="articles-db")
    mine = [e for e in result.evidence if e.subject == db]
    assert not [e for e in mine if e.signal == "edge_latency"]
    origin = [e for e in mine if e.signal == "trace_origin" and e.data.get("unanswered")]
    assert origin
    assert origin[0].data["failure"] == "timeout"
    ratio = [e for e in mine if e.signal == "error_ratio" and e.data.get("client_side")]
    assert ratio
    assert ratio[0].severity >= 0.5
    assert ratio[0].data["calls"] >= 5
    assert result.findings.candidates[0].subject == db
