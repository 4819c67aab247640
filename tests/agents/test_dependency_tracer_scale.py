"""A Deployment scaled down (not to zero) under load: the tracer reports the scale-down and the
load per replica that it raised; a rolling update draining an old ReplicaSet is no scale-down."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agents.dependency_tracer import trace
from state import ObjectRef
from tests.agents.support import Run

SUITE = Path(__file__).resolve().parents[2] / "evals" / "suite"


def test_a_scale_down_under_load_is_reported_with_the_load_per_replica() -> None:
    run = Run.start(SUITE / "stock-api-scaled-down-under-load.yaml")
    try:
        result = asyncio.run(trace(run.state, run.ctx))
    finally:
        run.close()
    api = ObjectRef(kind="Deployment", namespace="stock", name="inventory-api")
    down = [e for e in result.evidence if e.signal == "scaled_down"]
    assert [e.subject for e in down] == [api]
    assert (down[0].data["previous_replicas"], down[0].data["replicas"]) == (3, 1)
    assert down[0].severity < 0.5  # context, not a fault by itself
    per_replica = [
        e for e in result.evidence if e.signal == "traffic_increase" and e.data.get("per_replica")
    ]
    assert [e.subject for e in per_replica] == [api]
    assert per_replica[0].data["factor"] == 3.0


def test_a_rolling_update_is_no_scale_down() -> None:
    run = Run.start("checkout-bad-release")
    try:
        result = asyncio.run(trace(run.state, run.ctx))
    finally:
        run.close()
    assert not [e for e in result.evidence if e.signal == "scaled_down"]
    assert not [e for e in result.evidence if e.data.get("per_replica")]
