"""The builder: what a scenario's cluster holds at t=0, healthy, and what it never holds."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from twin.builder import BuildError, build_cluster, workloads_ready
from twin.harness import Twin
from twin.quantity import parse_memory
from twin.scenario import Scenario, default_scenario, parse_scenario, validate_text

PLAIN = """\
apiVersion: kubemedic.dev/v1
kind: Scenario
metadata: {name: plain}
spec:
  seed: 4
  nodes: {count: 2, cpu: 2500m, memory: 8Gi}
  manifests:
    - apiVersion: v1
      kind: Namespace
      metadata: {name: web, labels: {team: storefront}}
    - apiVersion: apps/v1
      kind: Deployment
      metadata: {name: api, namespace: web}
      spec:
        replicas: 2
        selector: {matchLabels: {app: api}}
        template:
          metadata: {labels: {app: api}}
          spec:
            containers:
              - {name: api, image: "registry.example.com/api:2.0", ports: [{containerPort: 9000}]}
    - apiVersion: v1
      kind: Service
      metadata: {name: api, namespace: web}
      spec: {selector: {app: api}, ports: [{port: 80, targetPort: 9000}]}
    - apiVersion: monitoring.coreos.com/v1
      kind: ServiceMonitor
      metadata: {name: api, namespace: web}
      spec: {endpoints: [{port: http, interval: 30s}]}
  behaviors:
    registry.example.com/api:2.0: {cpu: 30m, memory: 80Mi, latency_ms: 12, port: 9000}
  traffic: {rps: 15}
  entry: {service: api, namespace: web}
truth:
  expect: nothing
  recovered: {ready: [web/api], error_rate_below: {service: api, value: 0.01}}
"""


def test_nodes_namespaces_manifests_behaviours_and_traffic() -> None:
    cluster = build_cluster(parse_scenario(PLAIN))
    nodes = cluster.store.list(cluster.rt("Node"))
    assert [n["metadata"]["name"] for n in nodes] == ["node-1", "node-2"]
    assert {n["status"]["capacity"]["cpu"] for n in nodes} == {"2500m"}
    assert {parse_memory(n["status"]["capacity"]["memory"]) for n in nodes} == {8 * 2**30}
    namespaces = {n["metadata"]["name"] for n in cluster.store.list(cluster.rt("Namespace"))}
    assert {"default", "kube-system", "kube-public", "kube-node-lease", "web"} <= namespaces
    web = cluster.store.get(cluster.rt("Namespace"), "", "web")
    assert web["metadata"]["labels"]["team"] == "storefront"
    assert cluster.behaviors.get("registry.example.com/api:2.0").latency_ms == 12
    assert (cluster.traffic.rps, cluster.traffic.namespace, cluster.traffic.service) == (
        15.0,
        "web",
        "api",
    )
    # Warmed up: everything available, traffic flowing without errors.
    assert workloads_ready(cluster)
    assert cluster.elapsed > 0
    rps, errors, _p99 = cluster.telemetry.service_window("web", "api", 60)
    assert rps == pytest.approx(15.0)
    assert errors == 0.0


def test_an_unknown_kind_is_stored_and_served_as_given() -> None:
    with Twin.start(parse_scenario(PLAIN)) as twin:
        url = f"{twin.url}/apis/monitoring.coreos.com/v1/namespaces/web/servicemonitors/api"
        got = httpx.get(url, timeout=5)
        assert got.status_code == 200
        assert got.json()["spec"] == {"endpoints": [{"port": "http", "interval": "30s"}]}


def test_the_app_is_healthy_at_t0() -> None:
    twin = Twin.build("cart-redis-down")
    cluster = twin.cluster
    assert twin.t0 == cluster.elapsed > 0
    for dep in cluster.store.list(cluster.rt("Deployment"), "shop"):
        assert dep["status"]["availableReplicas"] == dep["spec"].get("replicas", 1)
    assert twin.oracle.recovered_now(cluster)
    rps, errors, _ = cluster.telemetry.service_window("shop", "frontend", 60)
    assert rps > 0
    assert errors == 0.0


def test_the_truth_never_reaches_the_cluster() -> None:
    twin = Twin.build("cart-redis-down")
    cluster = twin.cluster
    for value in vars(cluster).values():
        assert not isinstance(value, Scenario)
        assert "truth" not in type(value).__name__.lower()
    stored = json.dumps(
        [
            obj
            for rt in cluster.store.registry.all()
            if rt.group != "metrics.k8s.io"
            for obj in cluster.store.list(rt)
        ]
    )
    for secret in ("Dependency Problem", "accepted_actions", "root_cause", "FrontendErrorBudget"):
        assert secret not in stored


def test_the_serve_default_is_a_healthy_shop() -> None:
    sc = default_scenario("shop")
    assert sc.spec.app == "shop"
    assert sc.spec.faults == []
    assert sc.spec.alert is None
    cluster = build_cluster(sc)
    assert len(cluster.store.list(cluster.rt("Pod"), "shop")) == 12
    assert workloads_ready(cluster)


def test_a_duplicated_manifest_is_a_validation_error_and_a_build_error() -> None:
    text = PLAIN.replace(
        "    - apiVersion: monitoring.coreos.com/v1",
        """    - apiVersion: v1
      kind: Service
      metadata: {name: api, namespace: web}
      spec: {selector: {app: api}, ports: [{port: 81}]}
    - apiVersion: monitoring.coreos.com/v1""",
    )
    assert [str(e) for e in validate_text(text)] == [
        "spec.manifests[3]: Service web/api duplicates spec.manifests[2]"
    ]
    unchecked = Scenario.model_validate(yaml.safe_load(text))
    with pytest.raises(BuildError, match=r"spec.manifests\[3\]: Service 'api': .*already exists"):
        build_cluster(unchecked)
