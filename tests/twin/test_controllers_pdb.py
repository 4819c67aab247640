"""PodDisruptionBudget status, and the namespace controller's per-namespace objects."""

from __future__ import annotations

from typing import Any

import pytest

from tests.twin.test_controllers_support import (
    NS,
    create,
    deployment,
    live,
    make_cluster,
    messages,
    pods,
    run_pod,
    settle,
)
from twin.cluster import Cluster
from twin.store import Obj


def pdb(name: str = "web", **spec: Any) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }


@pytest.fixture
def cluster() -> Cluster:
    c = make_cluster(nodes=2)[0]
    create(c, deployment(replicas=4))
    settle(c, 5)
    return c


def test_min_available_integer(cluster: Cluster) -> None:
    create(cluster, pdb(minAvailable=3))
    cluster.advance(1)
    status = live(cluster, "PodDisruptionBudget", "web")["status"]
    condition = status.pop("conditions")
    assert status == {
        "observedGeneration": 1,
        "disruptionsAllowed": 1,
        "currentHealthy": 4,
        "desiredHealthy": 3,
        "expectedPods": 4,
    }
    assert condition[0]["type"] == "DisruptionAllowed"
    assert condition[0]["status"] == "True"
    assert condition[0]["reason"] == "SufficientPods"
    assert condition[0]["message"] == ""
    assert condition[0]["observedGeneration"] == 1


def test_max_unavailable_percentage_and_unready_pods(cluster: Cluster) -> None:
    create(cluster, pdb(maxUnavailable="50%"))
    cluster.advance(1)
    status = live(cluster, "PodDisruptionBudget", "web")["status"]
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (
        4,
        2,
        2,
    )
    for pod in pods(cluster)[:2]:
        run_pod(cluster, pod, ready=False)
    cluster.advance(1)
    status = live(cluster, "PodDisruptionBudget", "web")["status"]
    assert (status["currentHealthy"], status["disruptionsAllowed"]) == (2, 0)
    cond = status["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "InsufficientPods")


def test_min_available_percentage_uses_the_deployment_scale(cluster: Cluster) -> None:
    create(cluster, pdb(minAvailable="75%"))
    cluster.advance(1)
    rt = cluster.rt("Deployment")
    d = cluster.store.get(rt, NS, "web")
    d["spec"]["replicas"] = 8
    cluster.replace(rt, d)
    cluster.advance(2)
    status = live(cluster, "PodDisruptionBudget", "web")["status"]
    assert status["expectedPods"] == 8
    assert status["desiredHealthy"] == 6


def test_no_matching_pods(cluster: Cluster) -> None:
    create(cluster, pdb("other", minAvailable=1, selector={"matchLabels": {"app": "nothing"}}))
    cluster.advance(1)
    assert messages(cluster, "NoPods") == ["No matching pods found"]
    status = live(cluster, "PodDisruptionBudget", "other")["status"]
    assert status["disruptionsAllowed"] == 0
    assert status["expectedPods"] == 0


def test_namespace_gets_default_account_and_root_ca(cluster: Cluster) -> None:
    account = live(cluster, "ServiceAccount", "default")
    assert account["metadata"]["namespace"] == NS
    ca = live(cluster, "ConfigMap", "kube-root-ca.crt")
    assert ca["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----\n")
    assert "kube-apiserver" in ca["metadata"]["annotations"]["kubernetes.io/description"]
    for system in ("default", "kube-system"):
        assert cluster.store.find(cluster.rt("ServiceAccount"), system, "default") is not None


def test_deleting_a_namespace_deletes_its_content(cluster: Cluster) -> None:
    cluster.delete(cluster.rt("Namespace"), "", NS)
    cluster.advance(1)
    assert cluster.store.list(cluster.rt("Deployment"), NS) == []
    assert cluster.store.list(cluster.rt("ConfigMap"), NS) == []
    assert all(p["metadata"].get("deletionTimestamp") for p in pods(cluster))
