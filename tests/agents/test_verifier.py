"""The verifier's judgement: recovered only from the cluster's signals, not yet, and worse.

On the twin: with the fix applied the verifier says recovered (and the twin's
oracle, which it never sees, agrees later); without any fix it says not yet,
after a bounded window. "Worse" is judged on readings built by hand, since a
test should not have to break a cluster on purpose to see it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from agents.verifier import MAX_WINDOW_S, Reading, Targets, judge
from state import ObjectRef
from tests.agents.support import Run, TwinClock


def test_recovered_after_the_fix_and_the_oracle_agrees() -> None:
    run = Run.start("cart-redis-down")
    try:
        asyncio.run(run.investigate())
        done = run.execute()
        assert [e.action.action for e in done] == ["scale"]
        assert asyncio.run(run.verify()) == "recovered"
        v = run.state.verifications[-1]
        assert run.state.mitigated_at == v.at
        assert 60 <= v.window_s <= MAX_WINDOW_S
        assert any("redis-cart: 1/1 replicas ready" in c for c in v.checks)
        assert any("frontend error ratio" in c for c in v.checks)
        assert all(c.startswith("OK") for c in v.checks)
        assert run.settle()
    finally:
        run.close()


def test_not_yet_without_a_fix_after_a_bounded_window() -> None:
    run = Run.start("cart-redis-down")
    try:
        asyncio.run(run.investigate())
        # Nothing is executed: the cluster stays broken.
        status = asyncio.run(run.verify())
        clock = run.ctx.clock
        assert isinstance(clock, TwinClock)
    finally:
        run.close()
    assert status == "not_yet"
    v = run.state.verifications[-1]
    assert v.window_s <= MAX_WINDOW_S
    assert clock.slept == v.window_s
    assert any(c.startswith("FAIL") and "redis-cart" in c for c in v.checks)
    assert run.state.mitigated_at is None


def _reading(err: float, waiting: str | None = None) -> Reading:
    r = Reading(at=datetime(2026, 7, 11, 3, 5, tzinfo=UTC))
    r.golden["Service/shop/frontend"] = (err, 80.0)
    r.workloads["Deployment/shop/cart"] = {
        "kind": "Deployment",
        "namespace": "shop",
        "name": "cart",
        "replicas": {"desired": 1, "ready": 1, "updated": 1, "current": 1, "available": 1},
    }
    r.pods.append(
        {
            "name": "cart-1-a",
            "namespace": "shop",
            "workload": "Deployment/cart",
            "restarts": 0,
            "containers": [{"name": "server", "waiting_reason": waiting}] if waiting else [],
        }
    )
    return r


def _targets() -> Targets:
    t = Targets(namespaces=["shop"])
    t.services.append(ObjectRef(kind="Service", namespace="shop", name="frontend"))
    t.baselines["Service/shop/frontend"] = (0.0, 80.0)
    t.before["Service/shop/frontend"] = 0.2
    return t


def test_worse_needs_a_persistent_rise_over_the_value_before_the_action() -> None:
    t = _targets()
    first = _reading(0.2)
    once = judge(t, [first, _reading(0.6)])
    assert once.status == "not_yet"
    assert any(c.startswith("WORSE") for c in once.checks)
    twice = judge(t, [first, _reading(0.6), _reading(0.7)])
    assert twice.status == "worse"
    # A small rise is no regression; a newly crash-looping workload is.
    assert judge(t, [first, _reading(0.25), _reading(0.26)]).status == "not_yet"
    crashing = judge(
        t, [first, _reading(0.1, "CrashLoopBackOff"), _reading(0.1, "CrashLoopBackOff")]
    )
    assert crashing.status == "worse"
    assert any("newly failing: Deployment/shop/cart" in c for c in crashing.checks)


def test_recovered_needs_every_check_to_pass() -> None:
    t = _targets()
    t.workloads.append(ObjectRef(kind="Deployment", namespace="shop", name="cart"))
    assert judge(t, [_reading(0.2), _reading(0.001)]).status == "recovered"
    slow = _reading(0.001)
    slow.golden["Service/shop/frontend"] = (0.001, 900.0)
    verdict = judge(t, [_reading(0.2), slow])
    assert verdict.status == "not_yet"
    assert any(c.startswith("FAIL") and "p99 latency" in c for c in verdict.checks)
