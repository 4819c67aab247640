"""Redis under stress: replicas learning at once, and the server going away mid-incident."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agents.learner import learner
from agents.recall import recall
from memory.base import MemoryStoreError
from memory.redis_store import RedisMemory
from state import IncidentReport
from tests.memory.conftest import OwnRedis, unique_prefix
from tests.memory.factory import T0, FixedClock, oom_state, runtime
from tests.memory.test_store import oom_record

#: Incidents each replica records in the concurrency test.
PER_REPLICA = 60


def _replica(
    url: str, prefix: str, name: str, start: threading.Barrier, errors: list[BaseException]
) -> None:
    """One kubemedic replica: its own thread, event loop and Redis connections."""

    async def learn() -> None:
        store = RedisMemory(url, prefix=prefix)
        try:
            start.wait(10)
            for i in range(PER_REPLICA):
                # Alternate outcomes so both counters and the float sum are contended.
                await store.record(oom_record(f"{name}-{i}", recovered=i % 3 != 0, hours=i / 60))
        finally:
            await store.aclose()

    try:
        asyncio.run(learn())
    except BaseException as exc:  # reported to the test thread
        errors.append(exc)


def test_two_replicas_learning_at_once_lose_no_update(redis_url: str) -> None:
    prefix = unique_prefix()
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_replica, args=(redis_url, prefix, name, start, errors))
        for name in ("replica-a", "replica-b")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors

    async def check() -> None:
        store = RedisMemory(redis_url, prefix=prefix)
        try:
            [stat] = await store.stats("oom")
            wins = sum(1 for i in range(PER_REPLICA) if i % 3 != 0) * 2
            assert stat.successes == wins
            assert stat.failures == 2 * PER_REPLICA - wins
            # Every success took 120 s: the summed float and its count agree exactly.
            assert stat.mean_time_to_recover_s == 120.0
            assert len(await store.list(limit=1000)) == 2 * PER_REPLICA
        finally:
            await store.delete_all()
            await store.aclose()

    asyncio.run(check())


@pytest.mark.anyio
async def test_redis_going_away_mid_incident(own_redis: OwnRedis, tmp_path: Path) -> None:
    store = RedisMemory(own_redis.url, prefix=unique_prefix(), retries=2)
    try:
        await store.record(oom_record("earlier", workload="checkoutservice"))
        state = oom_state("now")
        # Recall works while Redis is up...
        out = await recall(state, runtime(store, tmp_path))
        assert [p.incident_id for p in out["recall"].similar] == ["earlier"]
        state.recall = out["recall"]
        state.transcript = [*state.transcript, *out["transcript"]]

        own_redis.kill()
        # ...and the learner, with Redis gone, reports the lost write and finishes.
        began = time.monotonic()
        clock = FixedClock(T0 + timedelta(minutes=5))
        update = await learner(state, runtime(store, tmp_path, clock))
        assert time.monotonic() - began < 15
        errors = [e for e in update["transcript"] if e.kind == "error"]
        assert len(errors) == 1
        assert "write failed" in errors[0].summary
        assert own_redis.url.removesuffix("/0") in errors[0].summary
        assert update["outcome"] == "recovered"
        path = tmp_path / "incidents" / "now" / "transcript.json"
        report = IncidentReport.model_validate_json(path.read_text())
        assert any(e.kind == "error" and e.node == "learner" for e in report.transcript)

        # The next incident's recall, with Redis still gone, goes on without memory.
        out = await recall(oom_state("later"), runtime(store, tmp_path))
        assert out["recall"].similar == []
        assert out["transcript"][0].kind == "error"
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_a_write_is_retried_until_redis_is_back(own_redis: OwnRedis) -> None:
    store = RedisMemory(own_redis.url, prefix=unique_prefix(), retries=8)
    try:
        await store.ping()
        own_redis.kill()
        # Redis comes back while the client is retrying (back-off 0.05 s doubling to 1 s).
        restart = threading.Timer(0.3, own_redis.start)
        restart.start()
        try:
            await store.record(oom_record("during-restart"))
        finally:
            restart.join()
        got = await store.get("during-restart")
        assert got is not None
        [stat] = await store.stats("oom")
        assert stat.successes == 1
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_every_operation_names_the_server_when_it_is_gone(own_redis: OwnRedis) -> None:
    store = RedisMemory(own_redis.url, prefix=unique_prefix(), retries=1)
    own_redis.kill()
    try:
        for call in (store.ping(), store.get("x"), store.list(), store.stats("oom")):
            with pytest.raises(MemoryStoreError, match=r"redis at redis://127\.0\.0\.1:\d+"):
                await call
    finally:
        await store.aclose()
