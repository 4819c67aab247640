"""ResourceQuota: admission messages, status, and how the ReplicaSet controller meets refusals."""

from __future__ import annotations

import pytest

from tests.twin.test_controllers_support import (
    NS,
    container,
    create,
    deployment,
    events,
    live,
    make_cluster,
    messages,
    pods,
    replica_sets,
    run_all,
    service,
)
from twin.cluster import Cluster
from twin.controllers import quantities
from twin.errors import ApiError
from twin.store import Obj


def quota(name: str, hard: dict[str, str], namespace: str = NS) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hard": hard},
    }


def limited_pod(name: str, *, cpu: str = "1", memory: str = "2Gi", containers: int = 1) -> Obj:
    cs = []
    for i in range(containers):
        c = container(f"c{i}" if containers > 1 else "app", cpu=cpu, memory=memory)
        c["resources"]["limits"] = {"cpu": cpu, "memory": memory}
        cs.append(c)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"containers": cs},
    }


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster(nodes=3, cpu="16", memory="64Gi")[0]


def test_quantity_canonical_strings() -> None:
    assert str(quantities.parse("1500m")) == "1500m"
    assert str(quantities.parse("1000m")) == "1"
    assert str(quantities.parse("0.1")) == "100m"
    assert str(quantities.parse("2048Mi")) == "2Gi"
    assert str(quantities.parse("1536Mi")) == "1536Mi"
    assert str(quantities.parse("1000Ki")) == "1000Ki"
    assert str(quantities.parse("2000")) == "2k"
    assert str(quantities.parse("1e3")) == "1e3"
    assert str(quantities.parse("512")) == "512"
    total = quantities.parse("6Gi") + quantities.parse("6144Mi")
    assert str(total) == "12Gi"


def test_exceeded_quota_message(cluster: Cluster) -> None:
    create(cluster, quota("ns-quota", {"limits.cpu": "6", "limits.memory": "12Gi"}))
    for i in range(6):
        create(cluster, limited_pod(f"web-{i}"))
    with pytest.raises(ApiError) as info:
        create(cluster, limited_pod("web-6"))
    err = info.value
    assert err.code == 403
    assert err.reason == "Forbidden"
    assert err.message == (
        'pods "web-6" is forbidden: exceeded quota: ns-quota, '
        "requested: limits.cpu=1,limits.memory=2Gi, "
        "used: limits.cpu=6,limits.memory=12Gi, limited: limits.cpu=6,limits.memory=12Gi"
    )
    assert err.status()["details"] == {"name": "web-6", "kind": "pods"}


def test_only_exceeded_resources_are_listed(cluster: Cluster) -> None:
    create(cluster, quota("q", {"requests.cpu": "10", "requests.memory": "3Gi", "pods": "10"}))
    create(cluster, limited_pod("a"))
    with pytest.raises(ApiError) as info:
        create(cluster, limited_pod("b"))
    assert info.value.message == (
        'pods "b" is forbidden: exceeded quota: q, requested: requests.memory=2Gi, '
        "used: requests.memory=2Gi, limited: requests.memory=3Gi"
    )


def test_must_specify_message(cluster: Cluster) -> None:
    create(cluster, quota("compute", {"limits.cpu": "10", "limits.memory": "10Gi"}))
    obj = limited_pod("p", containers=2)
    obj["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    obj["spec"]["containers"][0]["name"] = "app"
    obj["spec"]["containers"][1]["name"] = "sidecar"
    del obj["spec"]["containers"][1]["resources"]["limits"]["cpu"]
    with pytest.raises(ApiError) as info:
        create(cluster, obj)
    assert info.value.code == 403
    assert info.value.message == (
        'pods "p" is forbidden: failed quota: compute: '
        "must specify limits.cpu for: app,sidecar; limits.memory for: app"
    )


def test_pod_count_and_object_counts(cluster: Cluster) -> None:
    create(cluster, quota("counts", {"pods": "2", "count/services": "1", "configmaps": "2"}))
    create(cluster, limited_pod("a"))
    create(cluster, limited_pod("b"))
    with pytest.raises(
        ApiError, match=r"exceeded quota: counts, requested: pods=1, used: pods=2, limited: pods=2"
    ):
        create(cluster, limited_pod("c"))
    create(cluster, service("one"))
    with pytest.raises(ApiError) as info:
        create(cluster, service("two"))
    assert info.value.message == (
        'services "two" is forbidden: exceeded quota: counts, requested: count/services=1, '
        "used: count/services=1, limited: count/services=1"
    )
    # The namespace controller's kube-root-ca.crt is created on the first step and counts too.
    cluster.advance(1)
    create(
        cluster,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": NS}},
    )
    with pytest.raises(
        ApiError, match=r"requested: configmaps=1, used: configmaps=2, limited: configmaps=2"
    ):
        create(
            cluster,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2", "namespace": NS}},
        )


def test_node_port_quota(cluster: Cluster) -> None:
    create(cluster, quota("lb", {"services.loadbalancers": "0"}))
    create(cluster, service("internal"))
    edge = service("edge")
    edge["spec"]["type"] = "LoadBalancer"
    with pytest.raises(ApiError, match=r"requested: services\.loadbalancers=1"):
        create(cluster, edge)


def test_terminal_and_long_terminating_pods_are_not_charged(cluster: Cluster) -> None:
    create(cluster, quota("q", {"pods": "1"}))
    create(cluster, limited_pod("a"))
    with pytest.raises(ApiError):
        create(cluster, limited_pod("b"))
    live(cluster, "Pod", "a")["status"]["phase"] = "Failed"
    create(cluster, limited_pod("b"))
    rt = cluster.rt("Pod")
    cluster.delete(rt, NS, "b")
    with pytest.raises(ApiError):
        create(cluster, limited_pod("c"))
    cluster.advance(31)  # past deletionGracePeriodSeconds
    create(cluster, limited_pod("c"))


def test_quota_status(cluster: Cluster) -> None:
    create(cluster, quota("q", {"requests.cpu": "4", "requests.memory": "8192Mi", "pods": "10"}))
    create(cluster, limited_pod("a", cpu="500m", memory="1Gi"))
    create(cluster, limited_pod("b", cpu="1500m", memory="512Mi"))
    cluster.advance(1)
    status = live(cluster, "ResourceQuota", "q")["status"]
    assert status == {
        "hard": {"pods": "10", "requests.cpu": "4", "requests.memory": "8Gi"},
        "used": {"pods": "2", "requests.cpu": "2", "requests.memory": "1536Mi"},
    }
    assert live(cluster, "ResourceQuota", "q")["spec"]["hard"]["requests.memory"] == "8Gi"
    cluster.store.delete(cluster.rt("Pod"), NS, "a")
    cluster.advance(1)
    assert live(cluster, "ResourceQuota", "q")["status"]["used"] == {
        "pods": "1",
        "requests.cpu": "1500m",
        "requests.memory": "512Mi",
    }


def test_replicaset_reports_quota_refusals(cluster: Cluster) -> None:
    create(cluster, quota("ns-quota", {"limits.cpu": "2", "limits.memory": "4Gi"}))
    c = container(cpu="1", memory="2Gi")
    c["resources"]["limits"] = {"cpu": "1", "memory": "2Gi"}
    create(cluster, deployment(replicas=3, containers=[c]))
    cluster.advance(2)
    assert len(pods(cluster)) == 2
    rs = replica_sets(cluster)[0]
    failed = events(cluster, reason="FailedCreate")
    assert failed, "no FailedCreate event"
    first = failed[0]
    assert first["type"] == "Warning"
    assert first["source"]["component"] == "replicaset-controller"
    assert first["involvedObject"]["name"] == rs["metadata"]["name"]
    prefix = f'Error creating: pods "{rs["metadata"]["name"]}-'
    assert first["message"].startswith(prefix)
    assert first["message"].endswith(
        "is forbidden: exceeded quota: ns-quota, requested: limits.cpu=1,limits.memory=2Gi, "
        "used: limits.cpu=2,limits.memory=4Gi, limited: limits.cpu=2,limits.memory=4Gi"
    )
    condition = next(c for c in rs["status"]["conditions"] if c["type"] == "ReplicaFailure")
    assert condition["status"] == "True"
    assert condition["reason"] == "FailedCreate"
    assert condition["message"] == first["message"].removeprefix("Error creating: ")
    cluster.advance(1)
    d = live(cluster, "Deployment", "web")
    copied = next(c for c in d["status"]["conditions"] if c["type"] == "ReplicaFailure")
    assert copied["reason"] == "FailedCreate"
    assert copied["message"] == condition["message"]


def test_refused_creates_back_off_and_aggregate(cluster: Cluster) -> None:
    create(cluster, quota("q", {"pods": "1"}))
    create(cluster, deployment(replicas=2))
    cluster.advance(600)
    attempts = sum(e["count"] for e in events(cluster, reason="FailedCreate"))
    # Exponential back-off from 5 ms to 1000 s: about 18 attempts in ten minutes, not 600.
    assert 10 <= attempts <= 30
    failed = messages(cluster, "FailedCreate")
    combined = [
        m for m in failed if m.startswith("(combined from similar events): Error creating: ")
    ]
    assert combined, "ten distinct messages within 600 s should aggregate"
    assert len(failed) == 10  # nine distinct events, then the combined one counting up


def test_raising_the_quota_lets_the_replicaset_recover(cluster: Cluster) -> None:
    create(cluster, quota("q", {"pods": "1"}))
    create(cluster, deployment(replicas=2))
    cluster.advance(30)
    assert len(pods(cluster)) == 1
    rt = cluster.rt("ResourceQuota")
    q = cluster.store.get(rt, NS, "q")
    q["spec"]["hard"]["pods"] = "5"
    cluster.replace(rt, q)
    cluster.advance(120)
    assert len(pods(cluster)) == 2
    run_all(cluster)
    cluster.advance(2)
    rs = replica_sets(cluster)[0]
    assert not [c for c in rs["status"].get("conditions", []) if c["type"] == "ReplicaFailure"]
    d = live(cluster, "Deployment", "web")
    assert not [c for c in d["status"]["conditions"] if c["type"] == "ReplicaFailure"]
