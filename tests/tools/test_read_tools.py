"""Every Kubernetes read tool against a twin cluster, through the official client over HTTP."""

from __future__ import annotations

import json
from typing import Any

from tests.tools.twinworld import CART_V1, CART_V2, DB_PASSWORD, World
from tools.registry import REGISTRY, Toolbox, check_docstrings


def _by(items: list[dict[str, Any]], key: str, value: object) -> dict[str, Any]:
    return next(i for i in items if i[key] == value)


def test_every_tool_documents_exactly_its_arguments() -> None:
    assert check_docstrings() == []
    assert len(REGISTRY) >= 20
    for name, tool in REGISTRY.items():
        schema = tool.schema()
        assert schema["title"] == name
        assert schema["description"]
        for prop, spec in schema.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{prop} has no description"


def test_list_pods_shows_crashloop_with_oomkilled_last_state(box: Toolbox, world: World) -> None:
    result = box.call("list_pods", {"namespace": "shop", "label_selector": "app=cartservice"})
    assert result.status == "success"
    assert result.query is not None
    assert "app=cartservice" in result.query
    pods = result.data
    assert len(pods) == 2
    crashing = _by(pods, "name", world.crashing_pod)
    assert crashing["status"] == "CrashLoopBackOff"
    assert crashing["ready"] == "0/1"
    assert crashing["restarts"] == 3
    assert crashing["workload"] == "Deployment/cartservice"
    container = crashing["containers"][0]
    assert container["waiting_reason"] == "CrashLoopBackOff"
    assert container["last_termination"]["reason"] == "OOMKilled"
    assert container["last_termination"]["exit_code"] == 137
    unhealthy = box.call("list_pods", {"namespace": "shop", "only_unhealthy": True}).data
    assert [p["name"] for p in unhealthy] == [world.crashing_pod]
    by_field = box.call("list_pods", {"field_selector": f"metadata.name={world.healthy_pod}"})
    assert [p["name"] for p in by_field.data] == [world.healthy_pod]
    capped = box.call("list_pods", {"namespace": "shop", "limit": 1})
    assert capped.truncated
    assert capped.truncations[0].total == 3
    assert len(capped.data) == 1


def test_describe_pod_has_owner_chain_probes_resources_and_conditions(
    box: Toolbox, world: World
) -> None:
    result = box.call("describe_pod", {"namespace": "shop", "name": world.crashing_pod})
    assert result.status == "success"
    data = result.data
    assert data["owner_chain"] == ["ReplicaSet/cartservice-7b6c5d4f3", "Deployment/cartservice"]
    assert data["node"] == "node-1"
    container = data["containers"][0]
    assert container["resources"]["limits"]["memory"] == "128Mi"
    assert container["readiness_probe"]["grpc"] == 7070
    assert container["readiness_probe"]["initialDelaySeconds"] == 15
    assert container["liveness_probe"]["failureThreshold"] == 3
    assert container["last_termination"]["reason"] == "OOMKilled"
    ready = _by(data["conditions"], "type", "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"


def test_workloads_list_and_describe(box: Toolbox) -> None:
    listed = box.call("list_workloads", {"namespace": "shop"})
    names = {w["name"] for w in listed.data}
    assert names == {"cartservice", "frontend", "redis-cart", "orders-db"}
    assert _by(listed.data, "name", "orders-db")["kind"] == "StatefulSet"
    cart = _by(listed.data, "name", "cartservice")
    assert cart["revision"] == 2
    assert cart["replicas"]["desired"] == 2
    rs = box.call("list_workloads", {"namespace": "shop", "kind": "ReplicaSet"})
    assert {w["owner"] for w in rs.data} == {
        "Deployment/cartservice",
        "Deployment/frontend",
    }
    described = box.call(
        "describe_workload", {"kind": "Deployment", "namespace": "shop", "name": "frontend"}
    )
    assert described.status == "success"
    env = {e["name"]: e for e in described.data["template"]["containers"][0]["env"]}
    assert env["DB_PASSWORD"]["value"] == "[REDACTED]"
    assert DB_PASSWORD not in json.dumps(described.data)
    assert env["API_TOKEN"]["from"] == "secret frontend-secrets key token"
    assert env["CART_SERVICE_ADDR"]["value"] == "cartservice:7070"
    cart_described = box.call(
        "describe_workload", {"kind": "Deployment", "namespace": "shop", "name": "cartservice"}
    )
    assert [r["revision"] for r in cart_described.data["replica_sets"]] == [1, 2]
    assert len(cart_described.data["pods"]) == 2


def test_events_newest_first_and_merged(box: Toolbox, world: World) -> None:
    result = box.call(
        "list_events", {"namespace": "shop", "kind": "Deployment", "name": "cartservice"}
    )
    assert result.status == "success"
    events = result.data
    stamps = [e["last_seen"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    backoff = _by(events, "reason", "BackOff")
    # Two BackOff events for the same pod and message (from two kubelet hosts) merge: 5 + 2.
    assert backoff["count"] == 7
    assert backoff["object"] == f"Pod/{world.crashing_pod}"
    assert backoff["first_seen"] < backoff["last_seen"]
    assert {e["object"] for e in events} == {f"Pod/{world.crashing_pod}", "Deployment/cartservice"}
    warnings = box.call("list_events", {"namespace": "shop", "type": "Warning"})
    assert {e["reason"] for e in warnings.data} == {"BackOff"}
    only_object = box.call(
        "list_events",
        {
            "namespace": "shop",
            "kind": "Deployment",
            "name": "cartservice",
            "include_related": False,
        },
    )
    assert [e["reason"] for e in only_object.data] == ["ScalingReplicaSet"]


def test_rollout_history_from_replica_sets(box: Toolbox) -> None:
    result = box.call("rollout_history", {"namespace": "shop", "name": "cartservice"})
    assert result.status == "success"
    revisions = result.data["revisions"]
    assert [r["revision"] for r in revisions] == [1, 2]
    assert revisions[0]["images"] == {"server": CART_V1}
    assert revisions[1]["images"] == {"server": CART_V2}
    assert revisions[1]["current"] is True
    assert revisions[1]["change_cause"].startswith("kubectl set image")
    assert revisions[0]["created"] < revisions[1]["created"]


def test_resource_usage_against_requests_and_limits(box: Toolbox) -> None:
    pods = box.call("top_pods", {"namespace": "shop"})
    assert pods.status == "success"
    row = pods.data[0]
    assert row["memory"] == "120Mi"
    assert row["memory_limit"] == "128Mi"
    assert row["memory_pct_of_limit"] == 93.8
    assert row["cpu_pct_of_limit"] == 50.0
    nodes = box.call("top_nodes", {})
    assert nodes.status == "success"
    assert {n["node"] for n in nodes.data} >= {"node-1"}


def test_nodes_conditions_taints_and_requests(box: Toolbox) -> None:
    nodes = box.call("list_nodes", {}).data
    node1, node2 = _by(nodes, "name", "node-1"), _by(nodes, "name", "node-2")
    assert node1["ready"] == "True"
    assert node1["pods"] == 3
    assert node1["requested"]["cpu"] == "600m"
    assert node1["requested"]["cpu_pct"] == 15.0
    assert node2["ready"] == "Unknown"
    assert node2["unschedulable"] is True
    assert node2["taints"][0]["key"] == "node.kubernetes.io/unreachable"


def test_hpa_pdb_quota_netpol(box: Toolbox) -> None:
    hpa = box.call("list_hpas", {"namespace": "shop"}).data[0]
    assert hpa["target"] == "Deployment/frontend"
    assert hpa["at_max"] is True
    pdb = box.call("list_pdbs", {"namespace": "shop"}).data[0]
    assert pdb["disruptions_allowed"] == 0
    quota = box.call("list_resource_quotas", {"namespace": "shop"}).data[0]
    assert quota["exhausted"] == ["limits.memory"]
    assert quota["resources"]["pods"]["pct"] == 40.0
    policy = box.call("list_network_policies", {"namespace": "shop"}).data[0]
    assert policy["pod_selector"] == {"matchLabels": {"app": "redis-cart"}}
    assert policy["policy_types"] == ["Ingress"]


def test_services_endpoints_and_target_port_check(box: Toolbox, world: World) -> None:
    services = box.call("list_services", {"namespace": "shop"}).data
    cart = _by(services, "name", "cartservice")
    assert cart["endpoints"]["ready"] == [{"ip": "10.1.0.6", "pod": world.healthy_pod}]
    assert cart["endpoints"]["not_ready"] == [{"ip": "10.1.0.5", "pod": world.crashing_pod}]
    assert cart["findings"] == []
    canary = _by(services, "name", "cart-canary")
    assert any("targets 9999" in f and "7070" in f for f in canary["findings"])
    typo = _by(services, "name", "typo-svc")
    assert any("matches no pods" in f for f in typo["findings"])
    one = box.call("list_services", {"namespace": "shop", "name": "frontend"})
    assert [s["name"] for s in one.data] == ["frontend"]


def test_configmaps_capped_and_redacted_secrets_keys_only(box: Toolbox) -> None:
    cms = box.call("list_configmaps", {"namespace": "shop"})
    cm = cms.data[0]
    assert cm["keys"] == ["database_url", "password", "settings.yaml"]
    assert cm["data"]["password"] == "[REDACTED]"
    assert "[REDACTED]" in cm["data"]["database_url"]
    assert cms.truncated
    assert cms.truncations[0].what == "value characters"
    assert DB_PASSWORD not in cms.model_dump_json()
    secrets = box.call("list_secrets", {"namespace": "shop"})
    assert secrets.data[0]["keys"] == ["password", "token"]
    dumped = secrets.model_dump_json()
    assert "c2VjcmV0LXRva2Vu" not in dumped
    assert "aHVudGVyMg==" not in dumped


def test_httproutes_with_weights(box: Toolbox) -> None:
    routes = box.call("list_httproutes", {"namespace": "shop"})
    assert routes.status == "success"
    backends = routes.data[0]["rules"][0]["backends"]
    assert [(b["name"], b["weight"], b["share_pct"]) for b in backends] == [
        ("cartservice", 80, 80.0),
        ("cart-canary", 20, 20.0),
    ]
    one = box.call("list_httproutes", {"namespace": "shop", "name": "cart-route"})
    assert one.data[0]["name"] == "cart-route"


def test_service_graph_edges_from_selectors_and_env(box: Toolbox) -> None:
    result = box.call("service_graph", {"namespace": "shop"})
    assert result.status == "success"
    edges = {(e["from"], e["to"]): e for e in result.data["edges"]}
    assert edges[("Deployment/shop/frontend", "Service/shop/cartservice")]["sources"] == ["env"]
    redis_edge = edges[("Deployment/shop/frontend", "Service/shop/redis-cart")]
    assert "REDIS_URL" in redis_edge["env"][0]
    assert DB_PASSWORD not in json.dumps(result.data)
    assert edges[("Service/shop/cartservice", "Deployment/shop/cartservice")]["sources"] == [
        "selector"
    ]
    assert result.data["trace_edges_missing"] == "no trace backend configured"


def test_tools_can_be_awaited_from_graph_nodes(box: Toolbox) -> None:
    import asyncio

    async def both() -> list[str]:
        results = await asyncio.gather(
            box.acall("list_nodes", {}), box.acall("list_pods", {"namespace": "shop"})
        )
        return [r.status for r in results]

    assert asyncio.run(both()) == ["success", "success"]
