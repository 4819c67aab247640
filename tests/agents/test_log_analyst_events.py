"""Warning events of pods that are gone (an old ReplicaSet's, replaced by a later release) are
history: they must not make a healthy workload look crash-looping now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agents import signals as sg
from agents.log_analyst import event_evidence

NOW = datetime(2026, 7, 11, 3, 10, tzinfo=UTC)
NS = "app"


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(pod: str, reason: str, message: str, seconds_ago: float = 60) -> dict[str, Any]:
    return {
        "type": "Warning",
        "namespace": NS,
        "object": f"Pod/{pod}",
        "reason": reason,
        "message": message,
        "count": 9,
        "first_seen": stamp(seconds_ago + 120),
        "last_seen": stamp(seconds_ago),
    }


def snapshot(events: list[dict[str, Any]]) -> sg.Snapshot:
    pods = [
        {
            "name": "api-7d9f8c6b5d-x2x9z",
            "namespace": NS,
            "phase": "Running",
            "ready": "1/1",
            "restarts": 0,
            "workload": "Deployment/api",
        }
    ]
    snap = sg.Snapshot(scope=sg.Scope(namespaces=(NS,)), now=NOW, pods=pods, events=events)
    snap.workloads = [{"kind": "Deployment", "namespace": NS, "name": "api"}]
    return snap


def signals(snap: sg.Snapshot) -> dict[str, float]:
    book = sg.EvidenceBook("log", "log_analyst", [])
    event_evidence(snap, book)
    return {e.signal: e.severity for e in book.items}


def test_back_offs_of_a_replaced_pod_are_history() -> None:
    gone = "api-848c758ccc-4c68m"  # the crashing release's pod, deleted by the next rollout
    snap = snapshot(
        [
            event(gone, "BackOff", "Back-off restarting failed container server"),
            event(gone, "Unhealthy", "Liveness probe failed: connection refused"),
        ]
    )
    assert signals(snap) == {}


def test_back_offs_of_a_live_pod_still_count() -> None:
    live = "api-7d9f8c6b5d-x2x9z"
    snap = snapshot([event(live, "BackOff", "Back-off restarting failed container server")])
    assert signals(snap).get("crash_loop", 0.0) >= 0.5


def test_an_eviction_counts_after_the_pod_is_gone() -> None:
    snap = snapshot([event("api-848c758ccc-4c68m", "Evicted", "The node was low on memory.")])
    assert "node_event" in signals(snap)
