"""Approvals as interrupts, resumed from a checkpoint by a new process; the executor on resume.

Each test pauses the graph at the approval interrupt, closes the checkpointer
(as a process that stops would), opens it again with a fresh graph and a
fresh context, and resumes. SQLite (the default) and the machine's
PostgreSQL are both real.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from graph import compile_graph
from interfaces.checkpoints import open_checkpointer
from interfaces.runner import drive, scenario_input
from settings import Settings
from state import IncidentState, Mode
from tests.graph.support.context import twin_context
from tests.graph.support.scripted import Planner, Verifier, scale, stand_ins
from twin.cluster import WriteRecord
from twin.harness import Twin

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
THREAD = "inc-approve"


@pytest.fixture
def twin() -> Iterator[Twin]:
    with Twin.start("cart-redis-down") as t:
        yield t


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings whose checkpoints go to a schema of their own in the machine's PostgreSQL."""
    schema = f"km_graph_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (db test) is not reachable: {exc}")
    dsn = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    try:
        yield Settings(data_dir=tmp_path, checkpoint={"postgres_dsn": dsn})
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def real_writes(twin: Twin) -> list[WriteRecord]:
    return [w for w in twin.write_log if not w.dry_run and w.code < 400]


def answer(payload: dict[str, Any], decision: str = "approve", **over: Any) -> dict[str, Any]:
    return {
        "decision": decision,
        "by": "alice",
        "via": "terminal",
        "at": datetime.now(UTC).isoformat(),
        "request_id": payload["request_id"],
        "action_indexes": [a["index"] for a in payload["actions"]],
        **over,
    }


class Session:
    """One 'process': a checkpointer opened on the settings' store, a graph, a context."""

    def __init__(self, twin: Twin, settings: Settings, nodes: dict[str, Any]) -> None:
        self.twin = twin
        self.settings = settings
        self.nodes = nodes

    async def stream(self, payload: Any, config: RunnableConfig) -> tuple[Any, IncidentState]:
        """Run until the graph ends or interrupts: (the interrupt's payload or None, the state)."""
        with twin_context(self.twin, self.settings) as ctx:
            async with open_checkpointer(self.settings) as saver:
                graph = compile_graph(saver, self.nodes)
                pending = None
                async for chunk in graph.astream(
                    payload, config, context=ctx, stream_mode="updates"
                ):
                    if "__interrupt__" in chunk:
                        pending = chunk["__interrupt__"][0].value
                snapshot = await graph.aget_state(config)
                return pending, IncidentState(**snapshot.values)


def start(twin: Twin, mode: Mode = "approve") -> dict[str, Any]:
    first, _ = scenario_input(twin, mode, THREAD)
    return {"input": first}


CONFIG: RunnableConfig = {"configurable": {"thread_id": THREAD}}


def _approve_across_restarts(twin: Twin, settings: Settings) -> IncidentState:
    nodes = stand_ins()

    async def go() -> IncidentState:
        payload, state = await Session(twin, settings, nodes).stream(start(twin), CONFIG)
        assert payload is not None
        assert state.pending_approval == payload["request_id"]
        assert payload["request_id"].startswith("apr-")
        (action,) = payload["actions"]
        assert action["summary"] == "scale Deployment/shop/redis-cart"
        assert any("approve mode" in r for r in action["gate"])
        assert action["dry_run"]["status"] == "dry_run_passed"
        assert action["dry_run"]["before"] == {"replicas": 0}
        assert action["dry_run"]["requested"] == {"replicas": 1}
        assert [e["id"] for e in payload["evidence"]] == ["dep-1"]
        assert payload["hypotheses"][0]["root_cause"]["name"] == "redis-cart"
        # Waiting for a person: only the dry-run reached the server.
        assert real_writes(twin) == []
        assert [w.dry_run for w in twin.write_log] == [True]
        # A new process resumes the thread from the checkpoint.
        again, final = await Session(twin, settings, nodes).stream(
            Command(resume=answer(payload)), CONFIG
        )
        assert again is None
        return final

    return asyncio.run(go())


def _check_approved_run(twin: Twin, state: IncidentState) -> None:
    assert [e.status for e in state.executed] == ["applied"]
    (approval,) = state.approvals
    assert (approval.decision, approval.by, approval.via) == ("approve", "alice", "terminal")
    assert state.pending_approval == ""
    lines = [line.summary for line in state.transcript if line.node == "approval"]
    assert lines == ["approved by alice via terminal: actions [0]"]
    assert len(real_writes(twin)) == 1
    assert state.outcome == "recovered"


def test_approval_resumed_from_sqlite(
    twin: Twin, sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    state = _approve_across_restarts(twin, sqlite_settings)
    _check_approved_run(twin, state)
    assert sqlite_settings.sqlite_path.exists()
    # kubemedic's types come back from the checkpoint as themselves, with no warnings.
    assert not [r for r in caplog.records if "eserializ" in r.getMessage()]


def test_approval_resumed_from_postgres(
    twin: Twin, pg_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    state = _approve_across_restarts(twin, pg_settings)
    _check_approved_run(twin, state)
    assert not pg_settings.sqlite_path.exists()
    assert not [r for r in caplog.records if "eserializ" in r.getMessage()]


def test_a_person_rejects(twin: Twin, sqlite_settings: Settings) -> None:
    session = Session(twin, sqlite_settings, stand_ins())

    async def go() -> IncidentState:
        payload, _ = await session.stream(start(twin), CONFIG)
        _, state = await session.stream(Command(resume=answer(payload, "reject")), CONFIG)
        return state

    state = asyncio.run(go())
    assert state.executed == []
    assert real_writes(twin) == []
    assert state.outcome == "rejected"
    assert state.approvals[0].decision == "reject"


def test_forged_answers_are_refused_and_the_question_asked_again(
    twin: Twin, sqlite_settings: Settings
) -> None:
    session = Session(twin, sqlite_settings, stand_ins())

    async def go() -> IncidentState:
        payload, _ = await session.stream(start(twin), CONFIG)
        forged = answer(payload, request_id="apr-0123456789abcdef-000000")
        second, _ = await session.stream(Command(resume=forged), CONFIG)
        assert second is not None
        assert second["request_id"] == payload["request_id"]
        assert second["attempt"] == 2
        nobody = answer(payload, by=" ")
        third, _ = await session.stream(Command(resume=nobody), CONFIG)
        assert third is not None
        assert third["attempt"] == 3
        assert real_writes(twin) == []
        _, state = await session.stream(Command(resume=answer(payload)), CONFIG)
        return state

    state = asyncio.run(go())
    refusals = [
        line.summary
        for line in state.transcript
        if line.node == "approval" and line.data.get("refused")
    ]
    assert len(refusals) == 2
    assert "replayed or forged" in refusals[0]
    assert "names no approver" in refusals[1]
    assert [e.status for e in state.executed] == ["applied"]


def test_bad_answers_exhaust_the_attempts(twin: Twin, sqlite_settings: Settings) -> None:
    session = Session(twin, sqlite_settings, stand_ins())

    async def go() -> IncidentState:
        await session.stream(start(twin), CONFIG)
        for _ in range(3):
            payload_or_none, state = await session.stream(Command(resume="yes please"), CONFIG)
        assert payload_or_none is None
        return state

    state = asyncio.run(go())
    assert state.executed == []
    assert real_writes(twin) == []
    assert state.approvals == []
    assert any("no acceptable answer after 3 attempts" in line.summary for line in state.transcript)


def test_a_replayed_answer_to_an_earlier_request_is_refused(
    twin: Twin, sqlite_settings: Settings
) -> None:
    # The first plan is approved and applied but does not recover; the re-plan asks again.
    planner = Planner(lambda rev: [scale("cartservice", 2 + rev)])
    session = Session(
        twin, sqlite_settings, stand_ins(planner=planner, verifier=Verifier("not_yet"))
    )

    async def go() -> IncidentState:
        first, _ = await session.stream(start(twin), CONFIG)
        old = answer(first)
        second, _ = await session.stream(Command(resume=old), CONFIG)
        assert second is not None
        assert second["request_id"] != first["request_id"]
        again, _ = await session.stream(Command(resume=old), CONFIG)  # the replay
        assert again is not None
        assert again["request_id"] == second["request_id"]
        assert again["attempt"] == 2
        _, state = await session.stream(Command(resume=answer(second, "reject")), CONFIG)
        return state

    state = asyncio.run(go())
    refused = [line for line in state.transcript if line.data.get("refused")]
    assert len(refused) == 1
    assert "replayed or forged" in refused[0].summary
    assert [w.body for w in real_writes(twin)] == [{"spec": {"replicas": 2}}]


def test_executor_does_not_apply_twice_when_replayed_from_a_checkpoint(
    twin: Twin, sqlite_settings: Settings
) -> None:
    """A run resumed from before the executor (the process died mid-way) sends nothing twice."""
    nodes = stand_ins()
    session = Session(twin, sqlite_settings, nodes)

    async def go() -> tuple[IncidentState, IncidentState]:
        _, done = await session.stream(start(twin, "autonomous"), CONFIG)
        with twin_context(twin, sqlite_settings) as ctx:
            async with open_checkpointer(sqlite_settings) as saver:
                graph = compile_graph(saver, nodes)
                before_executor = None
                async for snap in graph.aget_state_history(CONFIG):
                    if snap.next == ("executor",):
                        before_executor = snap
                        break
                assert before_executor is not None
                assert IncidentState(**before_executor.values).executed == []
                # Re-run from that checkpoint, as a resumed graph would.
                run = await drive(
                    graph,
                    None,
                    thread_id=THREAD,
                    ctx=ctx,
                    approver=_never,
                    checkpoint_id=before_executor.config["configurable"]["checkpoint_id"],
                )
                return done, run.state

    done, replayed = asyncio.run(go())
    assert [e.status for e in done.executed] == ["applied"]
    assert len(real_writes(twin)) == 1  # the replay sent nothing
    assert [e.status for e in replayed.executed] == ["applied"]
    notes = [line.summary for line in replayed.transcript if line.node == "executor"]
    assert any("already sent by an earlier run" in n for n in notes)


def test_a_write_cut_off_before_its_result_is_not_sent_again(
    twin: Twin, sqlite_settings: Settings
) -> None:
    """An intent in the ledger with no result: the write may have landed; it is not resent."""
    from agents.executor import LEDGER_FILE

    nodes = stand_ins()
    session = Session(twin, sqlite_settings, nodes)

    async def go() -> IncidentState:
        await session.stream(start(twin, "autonomous"), CONFIG)
        ledger = sqlite_settings.incident_dir(THREAD) / LEDGER_FILE
        intents = [line for line in ledger.read_text().splitlines() if '"intent"' in line]
        ledger.write_text("\n".join(intents) + "\n")
        with twin_context(twin, sqlite_settings) as ctx:
            async with open_checkpointer(sqlite_settings) as saver:
                graph = compile_graph(saver, nodes)
                snap = None
                async for s in graph.aget_state_history(CONFIG):
                    if s.next == ("executor",):
                        snap = s
                        break
                assert snap is not None
                run = await drive(
                    graph,
                    None,
                    thread_id=THREAD,
                    ctx=ctx,
                    approver=_never,
                    checkpoint_id=snap.config["configurable"]["checkpoint_id"],
                )
                return run.state

    state = asyncio.run(go())
    assert len(real_writes(twin)) == 1
    (record,) = state.executed
    assert record.status == "skipped"
    assert "not sent twice" in record.error


async def _never(payload: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError(f"no approval expected: {payload}")
