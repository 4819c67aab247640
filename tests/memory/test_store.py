"""The MemoryStore contract, on both stores: the machine's Redis and the in-process one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agents.learner import build_record
from memory.base import IncidentRecord, MemoryStore
from memory.fingerprint import incident_symptoms
from memory.inprocess import InProcessMemory
from memory.redis_store import RedisMemory
from tests.memory.factory import T0, incident, oom_state

pytestmark = pytest.mark.anyio


def oom_record(
    incident_id: str,
    *,
    workload: str = "cartservice",
    recovered: bool = True,
    action: str = "set_resources",
    hours: float = 0,
    cause_kind: str = "oom",
) -> IncidentRecord:
    opened = T0 + timedelta(hours=hours)
    state = oom_state(
        incident_id,
        workload=workload,
        recovered=recovered,
        action=action,
        opened_at=opened,
        cause_kind=cause_kind,
    )
    return build_record(
        state,
        outcome="recovered" if recovered else "not_recovered",
        closed_at=opened + timedelta(minutes=5),
        incident_dir=Path("/data/incidents") / incident_id,
    )


def unrelated_record(incident_id: str, hours: float = 0) -> IncidentRecord:
    """A latency alert in another namespace, with no evidence in common with an OOM."""
    opened = T0 + timedelta(hours=hours)
    inc = incident(
        incident_id,
        alertname="IngressLatencyHigh",
        namespace="edge",
        workload="gateway",
        labels={"severity": "info", "route": "checkout"},
        summary="p99 latency above 2s",
    )
    return IncidentRecord(
        incident_id=incident_id,
        fingerprint=[*incident_symptoms(inc), "signal:latency", "subject_kind:HTTPRoute"],
        cause_kind="bad_canary",
        opened_at=opened,
        closed_at=opened + timedelta(minutes=3),
    )


async def test_store_get_and_list(store: MemoryStore) -> None:
    first = oom_record("inc-a", hours=0)
    second = oom_record("inc-b", workload="checkoutservice", hours=1)
    await store.record(first)
    await store.record(second)
    assert await store.get("inc-a") == first
    assert await store.get("missing") is None
    assert [r.incident_id for r in await store.list()] == ["inc-b", "inc-a"]
    assert [r.incident_id for r in await store.list(limit=1)] == ["inc-b"]


async def test_recall_ranks_the_same_failure_above_an_unrelated_one(store: MemoryStore) -> None:
    await store.record(oom_record("oom-cart", workload="cartservice"))
    await store.record(unrelated_record("latency-edge", hours=1))
    await store.record(oom_record("oom-ship", workload="shippingservice", hours=2))

    # A new crash loop on a third service: at intake only the alert is known.
    new = incident("new", workload="adservice")
    found = await store.recall(new, incident_symptoms(new))
    ids = [p.incident_id for p in found.similar]
    assert set(ids) == {"oom-cart", "oom-ship"}
    # Equally alike: the most recent first.
    assert ids == ["oom-ship", "oom-cart"]
    assert all(0.2 <= p.similarity < 1.0 for p in found.similar)
    assert found.similar[0].cause_kind == "oom"
    assert found.similar[0].actions == [
        "set_resources Deployment/shop/shippingservice: applied, recovered"
    ]
    assert [(s.cause_kind, s.action, s.successes) for s in found.stats] == [
        ("oom", "set_resources", 2)
    ]

    # With evidence (the full fingerprint) the same incident is found and nearly identical.
    full = oom_record("probe", workload="adservice").fingerprint
    again = await store.recall(new, full, limit=1)
    assert again.similar[0].incident_id in {"oom-cart", "oom-ship"}
    assert again.similar[0].similarity > 0.7


async def test_recall_never_returns_the_incident_itself(store: MemoryStore) -> None:
    record = oom_record("self")
    await store.record(record)
    inc = incident("self")
    assert (await store.recall(inc, incident_symptoms(inc))).similar == []


async def test_recall_on_an_empty_store(store: MemoryStore) -> None:
    inc = incident("first-ever")
    found = await store.recall(inc, incident_symptoms(inc))
    assert found.similar == []
    assert found.stats == []


async def test_statistics_per_cause_and_action(store: MemoryStore) -> None:
    await store.record(oom_record("a", action="restart", recovered=False))
    await store.record(oom_record("b", action="set_resources"))
    await store.record(oom_record("c", action="set_resources", hours=1))
    await store.record(oom_record("d", action="restart", cause_kind="crash_loop"))
    stats = {s.action: s for s in await store.stats("oom")}
    assert set(stats) == {"restart", "set_resources"}
    assert (stats["restart"].successes, stats["restart"].failures) == (0, 1)
    assert stats["restart"].mean_time_to_recover_s is None
    assert (stats["set_resources"].successes, stats["set_resources"].failures) == (2, 0)
    assert stats["set_resources"].mean_time_to_recover_s == 120.0
    [crash] = await store.stats("crash_loop")
    assert (crash.action, crash.successes) == ("restart", 1)
    assert await store.stats("never-seen") == []


async def test_recording_an_incident_again_counts_it_once(store: MemoryStore) -> None:
    record = oom_record("twice")
    await store.record(record)
    await store.record(record.model_copy(update={"title": "renamed"}))
    got = await store.get("twice")
    assert got is not None
    assert got.title == "renamed"
    [stat] = await store.stats("oom")
    assert stat.successes == 1


async def test_retention_by_count(store: MemoryStore) -> None:
    if isinstance(store, InProcessMemory):
        store.max_incidents = 3
    else:
        assert isinstance(store, RedisMemory)
        store.max_incidents = 3
    for i in range(5):
        await store.record(oom_record(f"n{i}", hours=i))
    assert [r.incident_id for r in await store.list()] == ["n4", "n3", "n2"]
    assert await store.get("n0") is None
    inc = incident("new")
    found = await store.recall(inc, incident_symptoms(inc), limit=10)
    assert {p.incident_id for p in found.similar} == {"n2", "n3", "n4"}
    # Statistics are aggregates: forgetting an incident does not forget what was learned.
    [stat] = await store.stats("oom")
    assert stat.successes == 5


async def test_retention_by_age(store: MemoryStore) -> None:
    await store.record(oom_record("old", hours=0))
    await store.record(oom_record("recent", hours=24 * 80))
    assert {r.incident_id for r in await store.list()} == {"old", "recent"}
    # 91 days after the first: the first is past the 90-day retention.
    await store.record(unrelated_record("today", hours=24 * 91))
    assert {r.incident_id for r in await store.list()} == {"recent", "today"}
