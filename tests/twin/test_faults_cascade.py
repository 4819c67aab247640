"""Each fault type on the assembled twin: what it breaks, and how that shows where people look.

Every check reads what the API, the logs and the metrics would show (object
status, events, container logs, the mesh's per-service figures), never the
fault's hidden state.
"""

from __future__ import annotations

from typing import Any

import pytest

from twin.cluster import Cluster
from twin.harness import Twin
from twin.store import Obj


def _pods(cluster: Cluster, ns: str, prefix: str) -> list[Obj]:
    return [
        p
        for p in cluster.store.list(cluster.rt("Pod"), ns)
        if p["metadata"]["name"].startswith(prefix)
    ]


def _logs(cluster: Cluster, pod: Obj, *, previous: bool = False, tail: int = 200) -> list[str]:
    container = pod["spec"]["containers"][0]["name"]
    return cluster.logs.read(pod["metadata"]["uid"], container, previous=previous, tail_lines=tail)


def _events(cluster: Cluster, ns: str) -> list[tuple[str, str, str]]:
    return [
        (e["reason"], e["involvedObject"]["name"], e["message"])
        for e in cluster.store.list(cluster.rt("Event"), ns)
    ]


def _window(cluster: Cluster, ns: str, service: str) -> tuple[float, float, float]:
    got = cluster.telemetry.service_window(ns, service, 60)
    assert got is not None, f"no traffic to {ns}/{service}"
    rps, errors, p99 = got
    return float(rps), float(errors), float(p99)


def _status(pod: Obj) -> dict[str, Any]:
    (status,) = pod["status"]["containerStatuses"]
    return dict(status)


@pytest.fixture(scope="module")
def healthy_frontend() -> tuple[float, float, float]:
    twin = Twin.build("healthy")
    twin.advance(60)
    return _window(twin.cluster, "shop", "frontend")


def test_scale_to_zero_cascades_from_redis_to_cart_to_frontend() -> None:
    twin = Twin.build("cart-redis-down")
    c = twin.cluster
    twin.advance(200)
    assert _pods(c, "shop", "redis-cart-") == []
    assert any(r == "ScalingReplicaSet" and "redis-cart" in m for r, _n, m in _events(c, "shop"))
    (cart,) = _pods(c, "shop", "cartservice-")
    assert any("Can't access cart storage" in line for line in _logs(c, cart))
    (frontend,) = _pods(c, "shop", "frontend-")
    assert any("could not retrieve cart" in line for line in _logs(c, frontend))
    assert _window(c, "shop", "frontend")[1] > 0.5


def test_patch_a_selector_typo_empties_the_endpoints() -> None:
    twin = Twin.build("catalog-selector-typo")
    c = twin.cluster
    twin.advance(200)
    svc = c.store.get(c.rt("Service"), "shop", "productcatalogservice")
    assert svc["spec"]["selector"] == {"app": "productcatalog"}
    ep = c.store.get(c.rt("Endpoints"), "shop", "productcatalogservice")
    assert not ep.get("subsets")
    (catalog,) = _pods(c, "shop", "productcatalogservice-")
    assert _status(catalog)["ready"] is True  # the pod is fine; the Service finds nothing
    (frontend,) = _pods(c, "shop", "frontend-")
    assert any("3550: connect: connection refused" in line for line in _logs(c, frontend))


def test_apply_with_a_missing_tag_and_recreate_takes_the_database_away() -> None:
    twin = Twin.build("billing-db-bad-tag")
    c = twin.cluster
    twin.advance(200)
    dep = c.store.get(c.rt("Deployment"), "pay", "postgres")
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    (pg,) = _pods(c, "pay", "postgres-")
    waiting = _status(pg)["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    reasons = {(r, m.split(":")[0]) for r, _n, m in _events(c, "pay")}
    assert ("Failed", 'Failed to pull image "postgres') in reasons
    assert _window(c, "pay", "billing")[1] > 0.9


def test_delete_a_service_and_its_callers_cannot_resolve_it() -> None:
    twin = Twin.build("currency-service-deleted")
    c = twin.cluster
    twin.advance(200)
    assert c.store.find(c.rt("Service"), "shop", "currencyservice") is None
    assert c.store.find(c.rt("Endpoints"), "shop", "currencyservice") is None
    (frontend,) = _pods(c, "shop", "frontend-")
    text = "\n".join(_logs(c, frontend, tail=500))
    assert "currencyservice" in text
    assert "no such host" in text


def test_rollout_config_error_crash_loops_the_new_pods_and_stalls() -> None:
    twin = Twin.build("billing-config-error")
    c = twin.cluster
    twin.advance(200)
    dep = c.store.get(c.rt("Deployment"), "pay", "billing")
    assert dep["metadata"]["annotations"]["kubernetes.io/change-cause"].startswith("ci: deploy")
    new = [p for p in _pods(c, "pay", "billing-") if "1.5" in p["spec"]["containers"][0]["image"]]
    old = [p for p in _pods(c, "pay", "billing-") if "1.4" in p["spec"]["containers"][0]["image"]]
    assert len(old) == 2  # maxUnavailable rounds down to 0: the old pods keep serving
    assert new
    status = _status(new[0])
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] != 0
    assert any("DATABASE_URL" in line for line in _logs(c, new[0], previous=True))
    rs = [
        r
        for r in c.store.list(c.rt("ReplicaSet"), "pay")
        if r["metadata"]["name"].startswith("billing-")
        and "1.5" in r["spec"]["template"]["spec"]["containers"][0]["image"]
    ]
    assert rs[0]["metadata"]["annotations"]["kubernetes.io/change-cause"].startswith("ci: deploy")
    assert _window(c, "pay", "billing")[1] < 0.01


def test_rollout_crash_after_requests_passes_probes_then_restarts() -> None:
    twin = Twin.build("checkout-bad-release")
    c = twin.cluster
    twin.advance(600)
    (pod,) = [
        p
        for p in _pods(c, "shop", "checkoutservice-")
        if p["spec"]["containers"][0]["image"].endswith(":v0.10.7")
    ]
    status = _status(pod)
    assert status["restartCount"] >= 2
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert not _pods(c, "shop", "checkoutservice-6")  # the old ReplicaSet's pod is gone


def test_memory_leak_ends_in_oomkilled_and_crash_loop() -> None:
    twin = Twin.build("cart-memory-leak")
    c = twin.cluster
    twin.advance(420)
    (cart,) = _pods(c, "shop", "cartservice-")
    status = _status(cart)
    assert status["restartCount"] >= 2
    last = status["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137)
    metrics = c.telemetry.exposition(c)
    assert "container_memory_working_set_bytes" in metrics


def test_cpu_hog_slows_the_callers_and_a_new_pod_is_clean(
    healthy_frontend: tuple[float, float, float],
) -> None:
    twin = Twin.build("catalog-cpu-hog")
    c = twin.cluster
    twin.advance(200)
    (pod,) = _pods(c, "shop", "productcatalogservice-")
    runtime = c.pods[pod["metadata"]["uid"]]
    assert runtime.containers["server"].cpu == pytest.approx(0.2, abs=0.02)  # throttled at 200m
    assert _window(c, "shop", "frontend")[2] > 5 * healthy_frontend[2]


def test_hang_times_requests_out_without_a_crash() -> None:
    twin = Twin.build("billing-api-hang")
    c = twin.cluster
    twin.advance(200)
    for pod in _pods(c, "pay", "billing-"):
        assert _status(pod)["restartCount"] == 0
        assert pod["status"]["phase"] == "Running"
    _rps, errors, p99 = _window(c, "pay", "billing")
    assert errors == pytest.approx(1.0)
    assert p99 > 5000


def test_error_rate_logs_its_line_and_fails_a_share_of_requests() -> None:
    twin = Twin.build("catalog-error-rate")
    c = twin.cluster
    twin.advance(200)
    (pod,) = _pods(c, "shop", "productcatalogservice-")
    assert any("catalog index corrupt" in line for line in _logs(c, pod))
    assert _window(c, "shop", "productcatalogservice")[1] == pytest.approx(0.3, abs=0.05)
    assert _window(c, "shop", "frontend")[1] > 0.1


def test_error_rate_with_a_duration_ends_by_itself() -> None:
    twin = Twin.build("catalog-blip-recovered")
    c = twin.cluster
    twin.advance(120)
    assert _window(c, "shop", "frontend")[1] > 0.05
    twin.advance(180)
    assert _window(c, "shop", "frontend")[1] == 0.0


def test_latency_on_one_edge_shows_at_the_callers(
    healthy_frontend: tuple[float, float, float],
) -> None:
    twin = Twin.build("cart-redis-latency")
    c = twin.cluster
    twin.advance(200)
    assert _window(c, "shop", "cartservice")[2] > 500
    assert _window(c, "shop", "frontend")[2] > 1000 > healthy_frontend[2]
    assert _window(c, "shop", "productcatalogservice")[2] < 50
    assert _window(c, "shop", "frontend")[1] < 0.01


def test_node_down_goes_not_ready_then_evicts() -> None:
    twin = Twin.build("node-down")
    c = twin.cluster
    on_node = {
        p["metadata"]["name"]
        for p in c.store.list(c.rt("Pod"), "shop")
        if p["spec"].get("nodeName") == "node-1"
    }
    assert on_node
    twin.advance(200)
    node = c.store.get(c.rt("Node"), "", "node-1")
    ready = next(x for x in node["status"]["conditions"] if x["type"] == "Ready")
    assert ready["status"] == "Unknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in taints
    for pod in c.store.list(c.rt("Pod"), "shop"):
        if pod["metadata"]["name"] in on_node:
            cond = next(x for x in pod["status"]["conditions"] if x["type"] == "Ready")
            assert cond["status"] == "False"
    # After the 300 s toleration the pods are evicted and recreated elsewhere.
    twin.advance(400)
    assert any(r == "TaintManagerEviction" for r, _n, _m in _events(c, "shop"))
    for pod in c.store.list(c.rt("Pod"), "shop"):
        if not pod["metadata"].get("deletionTimestamp"):
            assert pod["spec"].get("nodeName") != "node-1"


def test_secret_rotated_fails_authentication_until_a_restart() -> None:
    twin = Twin.build("billing-db-credentials-rotated")
    c = twin.cluster
    before = c.store.get(c.rt("Secret"), "pay", "billing-db")["data"]
    twin.advance(200)
    assert c.store.get(c.rt("Secret"), "pay", "billing-db")["data"] != before
    for pod in _pods(c, "pay", "billing-"):
        assert any("password authentication failed" in line for line in _logs(c, pod))
    assert _window(c, "pay", "billing")[1] == pytest.approx(1.0)


def test_traffic_spike_multiplies_the_load_and_saturates() -> None:
    twin = Twin.build("billing-traffic-spike")
    c = twin.cluster
    base_rps, _e, base_p99 = _window(c, "pay", "billing")
    twin.advance(200)
    rps, _errors, p99 = _window(c, "pay", "billing")
    assert rps == pytest.approx(6 * base_rps, rel=0.05)
    assert p99 > 10 * base_p99


def test_noise_logs_errors_while_every_request_succeeds() -> None:
    twin = Twin.build("currency-noisy-logs")
    c = twin.cluster
    twin.advance(120)
    (pod,) = _pods(c, "shop", "currencyservice-")
    noise = [line for line in _logs(c, pod, tail=2000) if "cache refresh failed" in line]
    assert len(noise) >= 60  # 2 lines/s for the last minute at least
    assert '"severity":"error"' in noise[0]
    assert _window(c, "shop", "currencyservice")[1] == 0.0
    assert _window(c, "shop", "frontend")[1] == 0.0
