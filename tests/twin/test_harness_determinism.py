"""Determinism: one seed replays the same run (names, events, metrics); another seed does not."""

from __future__ import annotations

from typing import Any

from twin.harness import Twin
from twin.scenario import load_scenario


def _run(seed: int | None = None) -> dict[str, Any]:
    scenario = load_scenario("cart-redis-down")
    if seed is not None:
        scenario = scenario.model_copy(
            update={"spec": scenario.spec.model_copy(update={"seed": seed})}
        )
    twin = Twin.build(scenario)
    alert = twin.run_until_alert()
    assert alert is not None
    twin.advance(120)
    cluster = twin.cluster
    pods = sorted(p["metadata"]["name"] for p in cluster.store.list(cluster.rt("Pod")))
    events = [
        (
            e["involvedObject"]["kind"],
            e["involvedObject"]["name"],
            e["reason"],
            e["message"],
            e["count"],
            e["firstTimestamp"],
            e["lastTimestamp"],
        )
        for e in sorted(
            cluster.store.list(cluster.rt("Event")),
            key=lambda e: (e["firstTimestamp"], e["metadata"]["name"]),
        )
    ]
    uids = sorted(p["metadata"]["uid"] for p in cluster.store.list(cluster.rt("Pod")))
    logs = cluster.logs.read(
        next(
            p["metadata"]["uid"]
            for p in cluster.store.list(cluster.rt("Pod"), "shop")
            if p["metadata"]["name"].startswith("frontend-")
        ),
        "server",
        tail_lines=50,
    )
    return {
        "alert": alert.fired_at,
        "pods": pods,
        "uids": uids,
        "events": events,
        "metrics": cluster.telemetry.exposition(cluster),
        "frontend": cluster.telemetry.service_window("shop", "frontend", 60),
        "logs": logs,
    }


def test_the_same_seed_replays_the_same_run() -> None:
    first, second = _run(), _run()
    assert first["pods"] == second["pods"]
    assert first["uids"] == second["uids"]
    assert first["events"] == second["events"]
    assert len(first["events"]) > 50
    assert first["metrics"] == second["metrics"]
    assert "istio_requests_total" in first["metrics"]
    assert first["frontend"] == second["frontend"]
    assert first["logs"] == second["logs"]
    assert first["logs"]
    assert first["alert"] == second["alert"]


def test_another_seed_names_things_differently() -> None:
    a, b = _run(), _run(seed=8)
    assert a["pods"] != b["pods"]
    assert a["uids"] != b["uids"]
