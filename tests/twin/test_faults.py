"""Each fault type applied to a hand-built cluster: what it changes, and where effects attach."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import TypeAdapter

from twin.behavior import BehaviorProfile
from twin.cluster import Cluster
from twin.faults import FaultError, FaultInjector, apply_fault, install
from twin.scenario import Fault
from twin.store import Obj

_FAULT = TypeAdapter(Fault)
IMAGE = "registry.example.com/billing-api:1.4"


def fault(**data: Any) -> Fault:
    return _FAULT.validate_python(data)


def _cluster() -> Cluster:
    cluster = Cluster(seed=5)
    store = cluster.store
    store.create(
        cluster.rt("Secret"),
        {"metadata": {"name": "db", "namespace": "pay"}, "data": {"password": "b2xk"}},
    )
    for name, image, env in (
        ("billing", IMAGE, []),
        (
            "postgres",
            "postgres:16.4",
            [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
        ),
    ):
        store.create(
            cluster.rt("Deployment"),
            {
                "metadata": {"name": name, "namespace": "pay"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "main", "image": image, "env": env}]},
                    },
                },
            },
        )
        store.create(
            cluster.rt("Service"),
            {
                "metadata": {"name": name, "namespace": "pay"},
                "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
            },
        )
        for i in range(2):
            store.create(
                cluster.rt("Pod"),
                {
                    "metadata": {
                        "name": f"{name}-{i}",
                        "namespace": "pay",
                        "labels": {"app": name},
                    },
                    "spec": {"containers": [{"name": "main", "image": image}]},
                },
            )
    store.create(cluster.rt("Node"), {"metadata": {"name": "node-1"}})
    return cluster


def _get(cluster: Cluster, kind: str, name: str, ns: str = "pay") -> Obj:
    return cluster.store.get(cluster.rt(kind), ns, name)


def _uids(cluster: Cluster, app: str) -> frozenset[str]:
    pods = cluster.store.list(cluster.rt("Pod"), "pay", label_selector=f"app={app}")
    return frozenset(p["metadata"]["uid"] for p in pods)


BILLING = {"kind": "Deployment", "namespace": "pay", "name": "billing"}


def test_patch_is_a_strategic_merge_that_keeps_other_containers_fields() -> None:
    cluster = _cluster()
    f = fault(
        type="patch",
        target=BILLING,
        params={
            "patch": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "main", "resources": {"limits": {"memory": "32Mi"}}}
                            ]
                        }
                    }
                }
            }
        },
    )
    before = _get(cluster, "Deployment", "billing")
    assert apply_fault(cluster, f, "pay") == "patched Deployment pay/billing"
    after = _get(cluster, "Deployment", "billing")
    (container,) = after["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["resources"] == {"limits": {"memory": "32Mi"}}
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    # A fault is not an API request: nothing in the write log, nothing labelled.
    assert cluster.write_log == []
    assert "fault" not in str(after["metadata"])


def test_apply_creates_then_replaces() -> None:
    cluster = _cluster()
    cm: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "flags", "namespace": "pay"},
        "data": {"mode": "fast"},
    }
    assert apply_fault(cluster, fault(type="apply", params={"object": cm})).startswith("created")
    cm["data"] = {"mode": "safe"}
    assert apply_fault(cluster, fault(type="apply", params={"object": cm})).startswith("replaced")
    assert _get(cluster, "ConfigMap", "flags")["data"] == {"mode": "safe"}


def test_apply_of_an_unknown_kind_registers_it() -> None:
    cluster = _cluster()
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "pay"},
        "spec": {"size": 3},
    }
    apply_fault(cluster, fault(type="apply", params={"object": obj}))
    rt = cluster.rt("Widget", "example.com/v1")
    assert cluster.store.get(rt, "pay", "w")["spec"] == {"size": 3}


def test_delete_and_scale() -> None:
    cluster = _cluster()
    apply_fault(cluster, fault(type="scale", target=BILLING, params={"replicas": 0}), "pay")
    assert _get(cluster, "Deployment", "billing")["spec"]["replicas"] == 0
    svc = {"kind": "Service", "namespace": "pay", "name": "postgres"}
    apply_fault(cluster, fault(type="delete", target=svc))
    assert cluster.store.find(cluster.rt("Service"), "pay", "postgres") is None
    with pytest.raises(FaultError, match="Service pay/postgres not found"):
        apply_fault(cluster, fault(type="delete", target=svc))


def test_rollout_sets_the_image_a_change_cause_and_a_derived_profile() -> None:
    cluster = _cluster()
    cluster.behaviors.register(IMAGE, BehaviorProfile(latency_ms=33, required_env=("DB",)))
    f = fault(
        type="rollout",
        target=BILLING,
        params={"image": "registry.example.com/billing-api:1.5", "behavior": "config-error"},
    )
    apply_fault(cluster, f)
    dep = _get(cluster, "Deployment", "billing")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.5")
    assert dep["metadata"]["annotations"]["kubernetes.io/change-cause"] == (
        "ci: deploy main=registry.example.com/billing-api:1.5"
    )
    profile = cluster.behaviors.get("registry.example.com/billing-api:1.5")
    assert profile.start == "config-error"
    assert profile.latency_ms == 33
    assert profile.required_env == ("DB",)
    # The old image keeps its own behaviour.
    assert cluster.behaviors.get(IMAGE).start == "healthy"


def test_effects_attach_by_the_runtime_rules() -> None:
    cluster = _cluster()
    cluster.clock.advance(42)
    billing = _uids(cluster, "billing")
    faults = [
        fault(type="hang", target=BILLING),
        fault(type="cpu-hog", target=BILLING, params={"cores": "1500m"}),
        fault(type="memory-leak", target=BILLING, params={"rate": "60Mi/min"}),
        fault(type="error-rate", target=BILLING, params={"rate": 0.2, "duration": "2m"}),
        fault(type="latency", target=BILLING, params={"ms": 200, "to": "postgres"}),
        fault(type="noise", target=BILLING, params={"log": "loud", "rate": 3}),
    ]
    for f in faults:
        apply_fault(cluster, f)
    by_kind = {e.kind: e for e in cluster.effects}
    assert set(by_kind) == {"hang", "cpu-hog", "memory-leak", "error-rate", "latency", "noise"}
    assert all(e.workload == "billing" and e.namespace == "pay" for e in cluster.effects)
    assert all(e.started == 42 for e in cluster.effects)
    # hang and cpu-hog: the pods running now.
    assert by_kind["hang"].pod_uids == billing
    assert by_kind["cpu-hog"].pod_uids == billing
    assert by_kind["cpu-hog"].params == {"cores": 1.5}
    # memory-leak and error-rate: the image running now.
    assert by_kind["memory-leak"].image == IMAGE
    assert by_kind["memory-leak"].params["bytes_per_second"] == pytest.approx(60 * 2**20 / 60)
    assert by_kind["error-rate"].image == IMAGE
    assert by_kind["error-rate"].until == 42 + 120
    # latency and noise: the workload.
    assert by_kind["latency"].pod_uids is None
    assert by_kind["latency"].image is None
    assert by_kind["latency"].params == {"ms": 200.0, "to": "postgres"}
    assert by_kind["noise"].params == {"log": "loud", "rate": 3.0}


def test_an_effect_on_a_service_attaches_to_its_workloads() -> None:
    cluster = _cluster()
    svc = {"kind": "Service", "namespace": "pay", "name": "postgres"}
    apply_fault(cluster, fault(type="latency", target=svc, params={"ms": 100}))
    (effect,) = cluster.effects
    assert effect.workload == "postgres"


def test_secret_rotated_rewrites_the_dependencys_secret_and_stales_the_clients_pods() -> None:
    cluster = _cluster()
    before = _get(cluster, "Secret", "db")
    detail = apply_fault(
        cluster, fault(type="secret-rotated", target=BILLING, params={"dependency": "postgres"})
    )
    after = _get(cluster, "Secret", "db")
    assert after["data"]["password"] != before["data"]["password"]
    base64.b64decode(after["data"]["password"], validate=True)
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    (effect,) = cluster.effects
    assert effect.kind == "auth-failure"
    assert effect.pod_uids == _uids(cluster, "billing")
    assert effect.params == {"dependency": "postgres"}
    assert detail.startswith("Secret db rotated; 2 pods of Deployment pay/billing")


def test_node_down_and_traffic_spike() -> None:
    cluster = _cluster()
    apply_fault(cluster, fault(type="node-down", target={"kind": "Node", "name": "node-1"}))
    assert cluster.nodes_down == {"node-1"}
    cluster.traffic.namespace, cluster.traffic.service = "pay", "billing"
    apply_fault(cluster, fault(type="traffic-spike", params={"factor": 3}))
    assert cluster.traffic.factor == 3.0


def test_the_injector_applies_each_fault_once_at_its_time_after_t0() -> None:
    cluster = _cluster()
    cluster.clock.advance(100)
    injector = install(
        cluster,
        FaultInjector(
            [
                fault(at="30s", type="scale", target=BILLING, params={"replicas": 1}),
                fault(at="10s", type="hang", target=BILLING),
                fault(at="20s", type="delete", target={"kind": "Node", "name": "node-9"}),
            ],
            default_namespace="pay",
            t0=100.0,
        ),
    )
    cluster.advance(9)
    assert injector.applied == []
    cluster.advance(1)
    assert [a.type for a in injector.applied] == ["hang"]
    assert injector.applied[0].at == 10.0
    cluster.advance(30)
    assert [a.type for a in injector.applied] == ["hang", "scale"]
    assert injector.failed == [(2, "Node node-9 not found")]
    assert injector.pending == []
    assert len(cluster.effects) == 1
