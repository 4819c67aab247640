"""The Endpoints controller: which pod IPs stand behind each Service."""

from __future__ import annotations

import pytest

from tests.twin.test_controllers_support import (
    NS,
    container,
    create,
    deployment,
    live,
    make_cluster,
    pods,
    run_pod,
    service,
)
from twin.cluster import Cluster
from twin.store import Obj


@pytest.fixture
def cluster() -> Cluster:
    c = make_cluster(nodes=2)[0]
    create(c, deployment(replicas=2))
    create(c, service())
    c.advance(1)
    return c


def endpoints(cluster: Cluster, name: str = "web") -> Obj:
    return live(cluster, "Endpoints", name)


def test_ready_and_not_ready_addresses(cluster: Cluster) -> None:
    first, second = pods(cluster)
    run_pod(cluster, first)
    run_pod(cluster, second, ready=False)
    cluster.advance(1)
    ep = endpoints(cluster)
    assert ep["metadata"]["labels"] == {"app": "web"}
    (subset,) = ep["subsets"]
    assert subset["addresses"] == [
        {
            "ip": first["status"]["podIP"],
            "nodeName": first["spec"]["nodeName"],
            "targetRef": {
                "kind": "Pod",
                "namespace": NS,
                "name": first["metadata"]["name"],
                "uid": first["metadata"]["uid"],
            },
        }
    ]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == [second["status"]["podIP"]]
    # The named targetPort "http" resolves to the container port.
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_no_matching_pods_leaves_no_subsets(cluster: Cluster) -> None:
    create(cluster, service("ghost"))
    cluster.advance(1)
    ep = endpoints(cluster, "ghost")
    assert "subsets" not in ep
    assert ep["metadata"]["labels"] == {"app": "ghost"}
    # Pods that are scheduled but have no IP yet are not endpoints either.
    assert "subsets" not in endpoints(cluster)


def test_terminating_pods_are_left_out(cluster: Cluster) -> None:
    for p in pods(cluster):
        run_pod(cluster, p)
    cluster.advance(1)
    assert len(endpoints(cluster)["subsets"][0]["addresses"]) == 2
    victim = pods(cluster)[0]
    cluster.delete(cluster.rt("Pod"), NS, victim["metadata"]["name"])
    cluster.advance(1)
    addresses = endpoints(cluster)["subsets"][0]["addresses"]
    assert victim["status"]["podIP"] not in [a["ip"] for a in addresses]
    assert len(addresses) == 1


def test_named_target_port_is_resolved_per_pod() -> None:
    cluster = make_cluster(nodes=1)[0]
    create(
        cluster, deployment("a", replicas=1, containers=[container(port=8080, port_name="http")])
    )
    create(
        cluster, deployment("b", replicas=1, containers=[container(port=9090, port_name="metrics")])
    )
    svc = service("both", selector={"tier": "x"})
    svc["spec"]["ports"].append({"name": "raw", "port": 81, "targetPort": 7000})
    create(cluster, svc)
    cluster.advance(1)
    for p in pods(cluster):
        p["metadata"]["labels"]["tier"] = "x"
        run_pod(cluster, p)
    cluster.advance(1)
    subsets = endpoints(cluster, "both")["subsets"]
    a_ip = next(p for p in pods(cluster) if p["metadata"]["name"].startswith("a-"))["status"][
        "podIP"
    ]
    b_ip = next(p for p in pods(cluster) if p["metadata"]["name"].startswith("b-"))["status"][
        "podIP"
    ]
    by_ports = {
        tuple(p["name"] for p in s["ports"]): sorted(a["ip"] for a in s["addresses"])
        for s in subsets
    }
    # Pod b does not declare "http": it is skipped for that port; the numeric port takes
    # everyone. RepackSubsets groups ports by the set of addresses that serve them.
    assert by_ports == {("http",): [a_ip], ("raw",): sorted([a_ip, b_ip])}
    raw = next(s for s in subsets if s["ports"][0]["name"] == "raw")
    assert raw["ports"] == [{"name": "raw", "port": 7000, "protocol": "TCP"}]


def test_wrong_target_port_number_still_gives_endpoints(cluster: Cluster) -> None:
    for p in pods(cluster):
        run_pod(cluster, p)
    rt = cluster.rt("Service")
    svc = cluster.store.get(rt, NS, "web")
    svc["spec"]["ports"][0]["targetPort"] = 9999
    cluster.replace(rt, svc)
    cluster.advance(1)
    (subset,) = endpoints(cluster)["subsets"]
    assert subset["ports"] == [{"name": "http", "port": 9999, "protocol": "TCP"}]
    assert len(subset["addresses"]) == 2


def test_selector_typo_empties_the_endpoints(cluster: Cluster) -> None:
    for p in pods(cluster):
        run_pod(cluster, p)
    cluster.advance(1)
    rt = cluster.rt("Service")
    svc = cluster.store.get(rt, NS, "web")
    svc["spec"]["selector"] = {"app": "wbe"}
    cluster.replace(rt, svc)
    cluster.advance(1)
    assert "subsets" not in endpoints(cluster)


def test_written_only_when_content_changes(cluster: Cluster) -> None:
    for p in pods(cluster):
        run_pod(cluster, p)
    cluster.advance(1)
    version = endpoints(cluster)["metadata"]["resourceVersion"]
    first = pods(cluster)[0]
    first["status"]["containerStatuses"][0]["restartCount"] = 1  # not something endpoints show
    cluster.store.commit(cluster.rt("Pod"), first)
    cluster.advance(30)
    assert endpoints(cluster)["metadata"]["resourceVersion"] == version


def test_trigger_time_annotation(cluster: Cluster) -> None:
    ep = endpoints(cluster)
    created = live(cluster, "Service", "web")["metadata"]["creationTimestamp"]
    assert ep["metadata"]["annotations"] == {
        "endpoints.kubernetes.io/last-change-trigger-time": created
    }
    cluster.advance(5)
    first = pods(cluster)[0]
    run_pod(cluster, first)
    ready_at = next(c for c in first["status"]["conditions"] if c["type"] == "Ready")[
        "lastTransitionTime"
    ]
    cluster.advance(1)
    assert (
        endpoints(cluster)["metadata"]["annotations"][
            "endpoints.kubernetes.io/last-change-trigger-time"
        ]
        == ready_at
    )


def test_publish_not_ready_addresses(cluster: Cluster) -> None:
    rt = cluster.rt("Service")
    svc = cluster.store.get(rt, NS, "web")
    svc["spec"]["publishNotReadyAddresses"] = True
    cluster.replace(rt, svc)
    for p in pods(cluster):
        run_pod(cluster, p, ready=False)
    cluster.advance(1)
    (subset,) = endpoints(cluster)["subsets"]
    assert len(subset["addresses"]) == 2
    assert "notReadyAddresses" not in subset


def test_service_without_selector_is_left_alone_and_deletion_cleans_up(cluster: Cluster) -> None:
    manual = service("external", selector={})
    create(cluster, manual)
    cluster.advance(1)
    assert cluster.store.find(cluster.rt("Endpoints"), NS, "external") is None
    cluster.delete(cluster.rt("Service"), NS, "web")
    cluster.advance(1)
    assert cluster.store.find(cluster.rt("Endpoints"), NS, "web") is None


def test_headless_service_label_and_hostnames() -> None:
    cluster = make_cluster(nodes=1)[0]
    svc = service("db")
    svc["spec"]["clusterIP"] = "None"
    create(cluster, svc)
    create(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "db-0", "namespace": NS, "labels": {"app": "db"}},
            "spec": {"hostname": "db-0", "subdomain": "db", "containers": [container()]},
        },
    )
    cluster.advance(1)
    run_pod(cluster, live(cluster, "Pod", "db-0"))
    cluster.advance(1)
    ep = endpoints(cluster, "db")
    assert ep["metadata"]["labels"] == {"app": "db", "service.kubernetes.io/headless": ""}
    assert ep["subsets"][0]["addresses"][0]["hostname"] == "db-0"
