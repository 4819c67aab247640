"""The traffic model with the real control plane and kubelet: the shop runs, breaks, recovers."""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

import pytest

from twin.apps import shop
from twin.cluster import Cluster
from twin.nodes import make_node
from twin.traffic import install as install_traffic

Obj = dict[str, Any]


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        pytest.skip(f"{name} is not there yet (another part of the twin)")


def _available(cluster: Cluster) -> bool:
    for d in cluster.store.list(cluster.rt("Deployment"), "shop"):
        want = d["spec"].get("replicas", 1)
        if (d.get("status") or {}).get("availableReplicas", 0) < want:
            return False
    return True


def _running_shop(seed: int = 13) -> Cluster:
    controllers = _module("twin.controllers")
    kubelet = _module("twin.kubelet")
    cluster = Cluster(seed=seed)
    controllers.install(cluster)
    kubelet.install(cluster)
    install_traffic(cluster)
    for ns in ("default", "kube-system", "shop"):
        if cluster.store.find(cluster.rt("Namespace"), "", ns) is None:
            cluster.create(cluster.rt("Namespace"), {"metadata": {"name": ns}})
    for i in range(1, 4):
        node = make_node(f"node-{i}", index=i, now=cluster.now_str())
        cluster.create(cluster.rt("Node"), node)
    shop.register_behaviors(cluster.behaviors)
    for obj in shop.manifests("shop"):
        cluster.create(cluster.rt(obj["kind"], obj["apiVersion"]), obj)
    for _ in range(60):
        cluster.advance(5)
        if _available(cluster):
            break
    assert _available(cluster), "the shop did not come up"
    cluster.advance(60)
    return cluster


def _window(cluster: Cluster, seconds: float = 30) -> tuple[float, float, float]:
    got = cluster.telemetry.service_window("shop", "frontend", seconds)
    assert got is not None
    return got  # type: ignore[no-any-return]


def _scale(cluster: Cluster, name: str, replicas: int) -> None:
    rt = cluster.rt("Deployment")
    d = cluster.store.get(rt, "shop", name)
    d["spec"]["replicas"] = replicas
    cluster.replace(rt, d)


def _frontend_errors(cluster: Cluster) -> list[str]:
    out = []
    for prt in cluster.pods.values():
        if prt.workload == ("Deployment", "frontend"):
            for line in cluster.logs.read(prt.uid, "server"):
                if '"request error"' in line:
                    out.append(json.loads(line)["error"])
    return out


def test_shop_serves_through_the_real_control_plane() -> None:
    cluster = _running_shop()
    rps, errors, p99 = _window(cluster)
    assert rps == pytest.approx(40.0)
    assert errors == 0.0
    assert p99 < 250
    for prt in cluster.pods.values():
        for c in prt.containers.values():
            if c.phase == "running":
                limit = next(
                    pc["resources"]["limits"]["memory"]
                    for d in shop.manifests()
                    if d["kind"] == "Deployment"
                    for pc in d["spec"]["template"]["spec"]["containers"]
                    if pc["image"] == c.image
                )
                assert c.memory < 0.8 * float(limit.rstrip("Mi")) * 2**20, prt.name
    # Endpoints written by the endpoints controller route the calls.
    ep = cluster.store.get(cluster.rt("Endpoints"), "shop", "emailservice")
    assert ep["subsets"][0]["ports"][0]["port"] == 8080


def test_scaled_to_zero_dependency_cascades_and_recovers() -> None:
    cluster = _running_shop(seed=14)
    _scale(cluster, "redis-cart", 0)
    cluster.advance(60)
    _rps, errors, _p99 = _window(cluster)
    assert errors == pytest.approx(21 / 23, abs=0.03)
    ip = cluster.store.get(cluster.rt("Service"), "shop", "redis-cart")["spec"]["clusterIP"]
    assert any(
        f"dial tcp {ip}:6379: connect: connection refused" in e for e in _frontend_errors(cluster)
    )
    _scale(cluster, "redis-cart", 1)
    cluster.advance(90)
    assert _window(cluster, 20)[1] == 0.0


def test_memory_leak_ends_in_oomkilled_restarts_that_metrics_show() -> None:
    from twin.runtime import Effect

    cluster = _running_shop(seed=15)
    image = shop.image("cartservice")
    cluster.effects.append(
        Effect(
            "memory-leak",
            "shop",
            "cartservice",
            params={"bytes_per_second": 2 * 2**20},
            image=image,
        )
    )
    cluster.advance(120)
    (pod,) = [
        p
        for p in cluster.store.list(cluster.rt("Pod"), "shop")
        if p["metadata"]["name"].startswith("cartservice-")
    ]
    (status,) = pod["status"]["containerStatuses"]
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["reason"] == "OOMKilled"
    text = cluster.telemetry.exposition(cluster)
    name = pod["metadata"]["name"]
    assert (
        f'kube_pod_container_status_last_terminated_reason{{container="server",job="kube-state-metrics",namespace="shop",pod="{name}",reason="OOMKilled"'
        in text
    )
    restarts = [
        line
        for line in text.splitlines()
        if line.startswith("kube_pod_container_status_restarts_total{") and f'pod="{name}"' in line
    ]
    assert restarts
    assert float(restarts[0].rsplit(" ", 1)[1]) == status["restartCount"]
    # The working set climbed to the limit before each kill.
    series = [
        s
        for (n, labels), s in cluster.telemetry.series.items()
        if n == "container_memory_working_set_bytes" and ("pod", name) in labels
    ]
    assert series
    assert max(v for s in series for v in s.values if v == v) > 100 * 2**20
