"""The recovered oracle on hand-driven clusters: each condition, continuity, the breakdown."""

from __future__ import annotations

from typing import Any

from twin.cluster import Cluster
from twin.oracle import Oracle
from twin.runtime import PodRuntime
from twin.scenario import RecoveredSpec
from twin.store import Obj


def _deployment(cluster: Cluster, name: str, *, replicas: int = 2, ns: str = "shop") -> Obj:
    return cluster.store.create(
        cluster.rt("Deployment"),
        {
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}},
            },
        },
    )


def _set_status(cluster: Cluster, name: str, *, ns: str = "shop", **status: Any) -> None:
    rt = cluster.rt("Deployment")
    obj = cluster.store.find(rt, ns, name)
    assert obj is not None
    status.setdefault("observedGeneration", obj["metadata"].get("generation", 1))
    obj["status"] = status
    cluster.store.commit(rt, obj)


def _pod(
    cluster: Cluster, name: str, app: str, *, phase: str = "Running", restarts: int = 0
) -> Obj:
    return cluster.store.create(
        cluster.rt("Pod"),
        {
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
            "spec": {"containers": [{"name": "main", "image": "x"}]},
            "status": {
                "phase": phase,
                "containerStatuses": [{"name": "main", "restartCount": restarts}],
            },
        },
    )


def _set_restarts(cluster: Cluster, name: str, restarts: int) -> None:
    rt = cluster.rt("Pod")
    pod = cluster.store.find(rt, "shop", name)
    assert pod is not None
    pod["status"]["containerStatuses"][0]["restartCount"] = restarts
    cluster.store.commit(rt, pod)


def _spec(**kwargs: Any) -> RecoveredSpec:
    return RecoveredSpec.model_validate(kwargs)


def test_ready_needs_every_desired_replica_and_at_least_one() -> None:
    cluster = Cluster(seed=1)
    _deployment(cluster, "cart", replicas=2)
    _set_status(cluster, "cart", readyReplicas=1, replicas=2)
    oracle = Oracle(_spec(ready=["shop/cart"], **{"for": "0s"}))
    report = oracle.report(cluster)
    assert not report.holds
    assert [(c.name, c.ok, c.detail) for c in report.conditions] == [
        ("ready shop/cart", False, "1/2 ready")
    ]
    cluster.clock.advance(1)
    _set_status(cluster, "cart", readyReplicas=2, replicas=2)
    assert oracle.holds(cluster)
    # Scaled to zero serves nothing: not ready.
    dep = cluster.store.find(cluster.rt("Deployment"), "shop", "cart")
    assert dep is not None
    dep["spec"]["replicas"] = 0
    cluster.clock.advance(1)
    _set_status(cluster, "cart", readyReplicas=0, replicas=0)
    report = oracle.report(cluster)
    assert not report.holds
    assert report.conditions[0].detail == "Deployment shop/cart has 0 desired replicas"


def test_a_missing_workload_fails_with_its_name() -> None:
    cluster = Cluster()
    oracle = Oracle(_spec(ready=["gone"]), default_namespace="shop")
    (cond,) = oracle.conditions(cluster)
    assert not cond.ok
    assert cond.detail == "no Deployment or StatefulSet shop/gone"


def test_conditions_must_hold_continuously_for_the_duration() -> None:
    cluster = Cluster()
    _deployment(cluster, "cart", replicas=1)
    _set_status(cluster, "cart", readyReplicas=1)
    oracle = Oracle(_spec(ready=["shop/cart"], **{"for": "2m"}), t0=0.0)
    oracle.sample(cluster)
    assert oracle.recovered_now(cluster)
    assert oracle.recovered_since(cluster) == 0.0
    cluster.clock.advance(90)
    assert not oracle.holds(cluster)
    # A break resets the streak.
    cluster.clock.advance(1)
    _set_status(cluster, "cart", readyReplicas=0)
    oracle.sample(cluster)
    assert oracle.recovered_since(cluster) is None
    cluster.clock.advance(9)
    _set_status(cluster, "cart", readyReplicas=1)
    assert oracle.recovered_since(cluster) == 100.0
    cluster.clock.advance(119)
    assert not oracle.holds(cluster)
    cluster.clock.advance(1)
    assert oracle.holds(cluster)
    report = oracle.report(cluster)
    assert report.holds
    assert report.since == 100.0
    assert "holds" in str(report)


def test_times_are_scenario_seconds_after_t0() -> None:
    cluster = Cluster()
    cluster.clock.advance(500)
    oracle = Oracle(_spec(), t0=500.0)
    assert oracle.recovered_since(cluster) == 0.0
    assert oracle.holds(cluster) is False  # the default `for` is 1m
    cluster.clock.advance(60)
    assert oracle.holds(cluster)


def test_rollout_complete_waits_for_old_replicas_and_the_observed_generation() -> None:
    cluster = Cluster()
    _deployment(cluster, "web", replicas=3)
    oracle = Oracle(_spec(rollout_complete=["shop/web"], **{"for": 0}))
    steps: list[tuple[dict[str, Any], str]] = [
        (
            {"observedGeneration": 0, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3},
            "the controller has not observed the latest spec",
        ),
        ({"updatedReplicas": 1, "replicas": 4, "availableReplicas": 3}, "1 of 3 new replicas"),
        ({"updatedReplicas": 3, "replicas": 4, "availableReplicas": 3}, "1 old replicas"),
        ({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}, "2 of 3 updated"),
    ]
    for status, detail in steps:
        cluster.clock.advance(1)
        _set_status(cluster, "web", **status)
        (cond,) = oracle.conditions(cluster)
        assert not cond.ok
        assert detail in cond.detail
    cluster.clock.advance(1)
    _set_status(cluster, "web", updatedReplicas=3, replicas=3, availableReplicas=3)
    assert oracle.holds(cluster)


def test_no_pending_ignores_terminating_pods() -> None:
    cluster = Cluster()
    _pod(cluster, "a", "web")
    pending = _pod(cluster, "b", "web", phase="Pending")
    oracle = Oracle(_spec(no_pending=["shop"], **{"for": 0}))
    (cond,) = oracle.conditions(cluster)
    assert not cond.ok
    assert cond.detail == "1 Pending: b"
    cluster.clock.advance(1)
    live = cluster.store.find(cluster.rt("Pod"), "shop", pending["metadata"]["name"])
    assert live is not None
    live["metadata"]["deletionTimestamp"] = cluster.now_str()
    assert oracle.holds(cluster)


def test_restarts_stable_breaks_on_a_new_restart_only() -> None:
    cluster = Cluster()
    _deployment(cluster, "cart", replicas=1)
    _pod(cluster, "cart-1", "cart", restarts=4)
    oracle = Oracle(_spec(restarts_stable=["shop/cart"], **{"for": "1m"}))
    oracle.sample(cluster)
    # Old restarts do not count.
    assert oracle.recovered_now(cluster)
    cluster.clock.advance(30)
    _set_restarts(cluster, "cart-1", 5)
    oracle.sample(cluster)
    assert not oracle.recovered_now(cluster)
    assert "restarted at t=30s" in oracle.report(cluster).conditions[0].detail
    cluster.clock.advance(5)
    assert oracle.recovered_since(cluster) == 35.0
    cluster.clock.advance(60)
    assert oracle.holds(cluster)


def _runtime(cluster: Cluster, pod: Obj, *, rps: float, errors: float, latency: float) -> None:
    uid = pod["metadata"]["uid"]
    cluster.pods[uid] = PodRuntime(
        uid, "shop", pod["metadata"]["name"], rps=rps, error_ratio=errors, latency_ms=latency
    )


def test_error_rate_and_latency_from_the_service_pods() -> None:
    cluster = Cluster()
    cluster.store.create(
        cluster.rt("Service"),
        {"metadata": {"name": "front", "namespace": "shop"}, "spec": {"selector": {"app": "fe"}}},
    )
    a = _pod(cluster, "fe-a", "fe")
    b = _pod(cluster, "fe-b", "fe")
    _runtime(cluster, a, rps=10, errors=0.2, latency=300)
    _runtime(cluster, b, rps=30, errors=0.0, latency=40)
    oracle = Oracle(
        _spec(
            error_rate_below={"service": "front", "value": 0.01},
            latency_p99_below={"service": "front", "ms": 250},
            **{"for": 0},
        ),
        default_namespace="shop",
    )
    report = oracle.report(cluster)
    assert [(c.ok, c.detail) for c in report.conditions] == [
        (False, "error rate 0.0500"),
        (False, "p99 300.0ms"),
    ]
    assert [c.name for c in report.failing()] == [
        "error_rate_below shop/front 0.01",
        "latency_p99_below shop/front 250ms",
    ]
    cluster.clock.advance(1)
    _runtime(cluster, a, rps=10, errors=0.0, latency=45)
    assert oracle.holds(cluster)
    assert oracle.as_dict(cluster)["holds"] is True


def test_no_traffic_and_no_endpoints_is_not_recovered() -> None:
    cluster = Cluster()
    cluster.store.create(
        cluster.rt("Service"),
        {"metadata": {"name": "front", "namespace": "shop"}, "spec": {"selector": {"app": "fe"}}},
    )
    oracle = Oracle(
        _spec(error_rate_below={"service": "front", "value": 0.01}, **{"for": 0}),
        default_namespace="shop",
    )
    (cond,) = oracle.conditions(cluster)
    assert not cond.ok
    assert cond.detail == "no traffic served: no ready endpoint"
