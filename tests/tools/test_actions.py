"""The closed action set: validation, and every executor function against a twin over HTTP.

Each write must be sent first with dryRun=All and then for real (the twin's
write log shows both, in order), report before and after, and carry the
inverse that puts things back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.tools.twinworld import CART_V1, CART_V2, World, serve_world
from tools.actions import ACTION_NAMES, ActionRejected, action_schema, parse_action
from tools.connection import ClusterConnection, connect
from tools.executor import ActionOutcome, execute

BASE = {
    "hypothesis_id": "h1",
    "evidence_ids": ["ev-1", "ev-2"],
    "expected_effect": "the error ratio of cartservice falls below 1%",
    "verification": "cartservice pods Ready and no new restarts for 2m",
}


def action(
    name: str,
    kind: str,
    target: str,
    params: dict[str, Any] | None = None,
    namespace: str | None = "shop",
) -> Any:
    body: dict[str, Any] = {
        "action": name,
        "target": {"kind": kind, "name": target, **({"namespace": namespace} if namespace else {})},
        **BASE,
    }
    if params is not None:
        body["params"] = params
    return parse_action(body)


@pytest.fixture
def conn(fresh_world: World) -> Iterator[ClusterConnection]:
    c = connect(fresh_world.kubeconfig)
    yield c
    c.close()


def _writes(world: World) -> list[tuple[str, str, str, bool]]:
    return [(w.verb, w.resource, w.name, w.dry_run) for w in world.cluster.write_log]


def _get(world: World, kind: str, name: str, namespace: str | None = "shop") -> dict[str, Any]:
    cluster = world.cluster
    rt = cluster.rt(kind, "gateway.networking.k8s.io/v1" if kind == "HTTPRoute" else None)
    return cluster.store.get(rt, namespace or "", name)


def _assert_dry_run_then_real(world: World, outcome: ActionOutcome) -> None:
    writes = _writes(world)
    assert len(writes) == 2, writes
    assert writes[0][3] is True
    assert writes[1][3] is False
    assert writes[0][:3] == writes[1][:3]
    assert outcome.requests[0].endswith("(dryRun=All)")


# -- validation ----------------------------------------------------------------------


def test_actions_are_validated_never_repaired() -> None:
    ok = action("scale", "Deployment", "cartservice", {"replicas": 3})
    assert ok.action == "scale"
    bad_cases = [
        (
            {"action": "delete_namespace", "target": {"kind": "Namespace", "name": "shop"}, **BASE},
            "does not match any of the expected tags",
        ),
        (
            {
                "action": "scale",
                "target": {"kind": "Node", "name": "node-1"},
                "params": {"replicas": 2},
                **BASE,
            },
            "scale acts on Deployment, StatefulSet",
        ),
        (
            {
                "action": "scale",
                "target": {"kind": "Deployment", "namespace": "shop", "name": "x"},
                "params": {"replicas": -1},
                **BASE,
            },
            "greater than or equal to 0",
        ),
        (
            {
                "action": "scale",
                "target": {"kind": "Deployment", "namespace": "shop", "name": "x"},
                "params": {"replicas": 2},
                "force": True,
                **BASE,
            },
            "Extra inputs are not permitted",
        ),
        (
            {
                "action": "cordon",
                "target": {"kind": "Node", "namespace": "shop", "name": "n"},
                **BASE,
            },
            "cluster-scoped",
        ),
        (
            {
                "action": "set_resources",
                "target": {"kind": "Deployment", "namespace": "shop", "name": "x"},
                "params": {
                    "container": "server",
                    "requests": {"memory": "1Gi"},
                    "limits": {"memory": "512Mi"},
                },
                **BASE,
            },
            "above limits.memory",
        ),
        (
            {
                "action": "set_resources",
                "target": {"kind": "Deployment", "namespace": "shop", "name": "x"},
                "params": {"container": "server", "limits": {"memory": "lots"}},
                **BASE,
            },
            "not a Kubernetes quantity",
        ),
        (
            {
                "action": "rollback",
                "target": {"kind": "Deployment", "namespace": "Shop", "name": "x"},
                "params": {"to_revision": 1},
                **BASE,
            },
            "DNS-1123 label",
        ),
        (
            {
                "action": "restart",
                "target": {"kind": "Deployment", "namespace": "shop", "name": "x"},
                "hypothesis_id": "h1",
            },
            "expected_effect",
        ),
    ]
    for body, expected in bad_cases:
        with pytest.raises(ActionRejected) as exc:
            parse_action(body)
        assert expected in str(exc.value), (body, str(exc.value))
    with pytest.raises(ActionRejected):
        parse_action('{"action": "scale", ')
    schema = json.dumps(action_schema())
    for name in ACTION_NAMES:
        assert f'"{name}"' in schema


# -- each action ------------------------------------------------------------------------


def test_scale_dry_run_then_real_with_inverse(fresh_world: World, conn: ClusterConnection) -> None:
    act = action("scale", "Deployment", "cartservice", {"replicas": 3})
    dry = execute(conn, act, dry_run_only=True)
    assert dry.status == "dry_run_passed"
    assert _get(fresh_world, "Deployment", "cartservice")["spec"]["replicas"] == 2
    assert [w[3] for w in _writes(fresh_world)] == [True]
    fresh_world.cluster.write_log.clear()
    outcome = execute(conn, act)
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    record = fresh_world.cluster.write_log[1]
    assert (record.resource, record.subresource, record.name) == (
        "deployments.apps",
        "scale",
        "cartservice",
    )
    assert outcome.before == {"replicas": 2}
    assert outcome.after == {"replicas": 3}
    assert _get(fresh_world, "Deployment", "cartservice")["spec"]["replicas"] == 3
    assert outcome.inverse is not None
    assert outcome.inverse.params.replicas == 2  # type: ignore[union-attr]
    assert outcome.inverse.hypothesis_id == "h1"
    back = execute(conn, outcome.inverse)
    assert back.status == "applied"
    assert _get(fresh_world, "Deployment", "cartservice")["spec"]["replicas"] == 2
    same = execute(
        conn, act.model_copy(update={"params": act.params.model_copy(update={"replicas": 2})})
    )
    assert same.status == "no_change"


def test_restart_sets_restarted_at(fresh_world: World, conn: ClusterConnection) -> None:
    outcome = execute(conn, action("restart", "Deployment", "cartservice"))
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    template = _get(fresh_world, "Deployment", "cartservice")["spec"]["template"]
    stamp = template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert outcome.after["restartedAt"] == stamp
    assert outcome.before["restartedAt"] is None
    assert outcome.inverse is None
    assert template["spec"]["containers"][0]["image"] == CART_V2


def test_delete_pod(fresh_world: World, conn: ClusterConnection) -> None:
    pod = fresh_world.crashing_pod
    outcome = execute(conn, action("delete_pod", "Pod", pod))
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    cluster = fresh_world.cluster
    live = cluster.store.find(cluster.rt("Pod"), "shop", pod)
    assert live is None or live["metadata"].get("deletionTimestamp")
    assert "ReplicaSet cartservice-7b6c5d4f3 will recreate it" in outcome.message
    missing = execute(conn, action("delete_pod", "Pod", "no-such-pod"))
    assert missing.status == "failed"
    assert missing.error_kind == "NotFound"


def test_rollback_to_a_named_revision(fresh_world: World, conn: ClusterConnection) -> None:
    outcome = execute(conn, action("rollback", "Deployment", "cartservice", {"to_revision": 1}))
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    deployment = _get(fresh_world, "Deployment", "cartservice")
    template = deployment["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == CART_V1
    assert "pod-template-hash" not in template["metadata"]["labels"]
    annotations = deployment["metadata"]["annotations"]
    assert annotations["kubernetes.io/change-cause"] == "initial release"
    assert annotations["deployment.kubernetes.io/revision"] == "2"
    assert outcome.before["images"] == {"server": CART_V2}
    assert outcome.after["images"] == {"server": CART_V1}
    assert outcome.inverse is not None
    assert outcome.inverse.params.to_revision == 2  # type: ignore[union-attr]
    unknown = execute(conn, action("rollback", "Deployment", "cartservice", {"to_revision": 7}))
    assert unknown.status == "rejected"
    assert "revisions: 1, 2" in unknown.message
    again = execute(conn, action("rollback", "Deployment", "cartservice", {"to_revision": 1}))
    assert again.status == "no_change"
    assert "already matches revision 1" in again.message


def test_set_resources_with_inverse(fresh_world: World, conn: ClusterConnection) -> None:
    act = action(
        "set_resources",
        "Deployment",
        "cartservice",
        {"container": "server", "limits": {"memory": "256Mi"}},
    )
    outcome = execute(conn, act)
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    resources = _get(fresh_world, "Deployment", "cartservice")["spec"]["template"]["spec"][
        "containers"
    ][0]["resources"]
    assert resources["limits"] == {"cpu": "300m", "memory": "256Mi"}
    assert resources["requests"] == {"cpu": "200m", "memory": "64Mi"}
    assert [c.model_dump() for c in outcome.changes] == [
        {"field": "limits.memory", "before": "128Mi", "after": "256Mi"}
    ]
    assert outcome.inverse is not None
    assert outcome.inverse.params.limits.memory == "128Mi"  # type: ignore[union-attr]
    wrong = execute(
        conn,
        action(
            "set_resources",
            "Deployment",
            "cartservice",
            {"container": "sidecar", "limits": {"memory": "1Gi"}},
        ),
    )
    assert wrong.status == "rejected"
    assert "containers: server" in wrong.message


def test_set_image_only_to_an_earlier_revisions_image(
    fresh_world: World, conn: ClusterConnection
) -> None:
    evil = execute(
        conn,
        action(
            "set_image",
            "Deployment",
            "cartservice",
            {"container": "server", "image": "evil.example.com/miner:latest"},
        ),
    )
    assert evil.status == "rejected"
    assert CART_V1 in evil.message
    assert _writes(fresh_world) == []
    outcome = execute(
        conn,
        action("set_image", "Deployment", "cartservice", {"container": "server", "image": CART_V1}),
    )
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    container = _get(fresh_world, "Deployment", "cartservice")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == CART_V1
    assert container["resources"]["limits"]["memory"] == "128Mi"
    assert outcome.before == {"image": CART_V2}
    assert outcome.inverse is not None
    assert outcome.inverse.params.image == CART_V2  # type: ignore[union-attr]


def test_patch_service_target_port_and_selector(
    fresh_world: World, conn: ClusterConnection
) -> None:
    outcome = execute(
        conn,
        action(
            "patch_service",
            "Service",
            "cart-canary",
            {"ports": [{"port": 7070, "target_port": 7070}]},
        ),
    )
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    assert _get(fresh_world, "Service", "cart-canary")["spec"]["ports"][0]["targetPort"] == 7070
    assert outcome.before == {"port 7070 targetPort": 9999}
    assert outcome.inverse is not None
    assert outcome.inverse.params.ports[0].target_port == 9999  # type: ignore[union-attr,index]
    selector = execute(
        conn, action("patch_service", "Service", "typo-svc", {"selector": {"app": "frontend"}})
    )
    assert selector.status == "applied", selector.message
    assert _get(fresh_world, "Service", "typo-svc")["spec"]["selector"] == {"app": "frontend"}
    assert selector.inverse.params.selector == {"app": "frontendd"}  # type: ignore[union-attr]
    no_port = execute(
        conn,
        action(
            "patch_service", "Service", "typo-svc", {"ports": [{"port": 81, "target_port": 8080}]}
        ),
    )
    assert no_port.status == "rejected"


def test_set_hpa(fresh_world: World, conn: ClusterConnection) -> None:
    outcome = execute(
        conn, action("set_hpa", "HorizontalPodAutoscaler", "frontend", {"max_replicas": 6})
    )
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    spec = _get(fresh_world, "HorizontalPodAutoscaler", "frontend")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 6)
    assert outcome.inverse is not None
    assert outcome.inverse.params.max_replicas == 3  # type: ignore[union-attr]
    crossing = execute(
        conn, action("set_hpa", "HorizontalPodAutoscaler", "frontend", {"min_replicas": 9})
    )
    assert crossing.status == "rejected"


def test_shift_traffic(fresh_world: World, conn: ClusterConnection) -> None:
    outcome = execute(
        conn,
        action(
            "shift_traffic",
            "HTTPRoute",
            "cart-route",
            {"weights": {"cart-canary": 0, "cartservice": 100}},
        ),
    )
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    backends = _get(fresh_world, "HTTPRoute", "cart-route")["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in backends] == [
        ("cartservice", 100),
        ("cart-canary", 0),
    ]
    assert outcome.before == {"cartservice": 80, "cart-canary": 20}
    assert outcome.inverse is not None
    assert outcome.inverse.params.weights == {"cartservice": 80, "cart-canary": 20}  # type: ignore[union-attr]
    unknown = execute(
        conn, action("shift_traffic", "HTTPRoute", "cart-route", {"weights": {"cart-v3": 10}})
    )
    assert unknown.status == "rejected"
    assert "backends: cartservice, cart-canary" in unknown.message
    nothing = execute(
        conn,
        action(
            "shift_traffic",
            "HTTPRoute",
            "cart-route",
            {"weights": {"cart-canary": 0, "cartservice": 0}},
        ),
    )
    assert nothing.status == "rejected"


def test_cordon_and_uncordon(fresh_world: World, conn: ClusterConnection) -> None:
    outcome = execute(conn, action("cordon", "Node", "node-1", namespace=None))
    assert outcome.status == "applied", outcome.message
    _assert_dry_run_then_real(fresh_world, outcome)
    assert _get(fresh_world, "Node", "node-1", None)["spec"]["unschedulable"] is True
    assert outcome.inverse is not None
    assert outcome.inverse.action == "uncordon"
    back = execute(conn, outcome.inverse)
    assert back.status == "applied"
    assert not _get(fresh_world, "Node", "node-1", None)["spec"].get("unschedulable")
    already = execute(conn, action("cordon", "Node", "node-2", namespace=None))
    assert already.status == "no_change"


def test_escalate_writes_nothing(fresh_world: World, conn: ClusterConnection) -> None:
    act = action(
        "escalate",
        "Deployment",
        "cartservice",
        {"summary": "cartservice OOMKilled; limit change needs an owner", "findings": ["x"]},
    )
    outcome = execute(conn, act)
    assert outcome.status == "escalated"
    assert outcome.requests == []
    assert _writes(fresh_world) == []


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def test_a_failing_dry_run_stops_the_write() -> None:
    seen: list[tuple[str, str]] = []

    def install(app: web.Application) -> None:
        @web.middleware
        async def webhook(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method == "PATCH":
                seen.append((request.path, request.query.get("dryRun", "")))
                body = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 403,
                    "reason": "Forbidden",
                    "message": 'admission webhook "policy.example.com" denied the request: '
                    "replicas above 2 need a ticket",
                }
                return web.json_response(body, status=403)
            return await handler(request)

        app.middlewares.append(webhook)

    with serve_world(extra_routes=[install]) as world:
        c = connect(world.kubeconfig)
        outcome = execute(c, action("scale", "Deployment", "cartservice", {"replicas": 3}))
        c.close()
        assert outcome.status == "rejected"
        assert outcome.error_kind == "Forbidden"
        assert outcome.message.startswith("dry-run failed: ")
        assert "replicas above 2 need a ticket" in outcome.message
        assert seen == [("/apis/apps/v1/namespaces/shop/deployments/cartservice/scale", "All")]
        assert (
            world.cluster.store.get(world.cluster.rt("Deployment"), "shop", "cartservice")["spec"][
                "replicas"
            ]
            == 2
        )


def test_statefulsets_scale_and_restart(fresh_world: World, conn: ClusterConnection) -> None:
    scaled = execute(conn, action("scale", "StatefulSet", "orders-db", {"replicas": 2}))
    assert scaled.status == "applied", scaled.message
    _assert_dry_run_then_real(fresh_world, scaled)
    assert fresh_world.cluster.write_log[1].subresource == "scale"
    assert _get(fresh_world, "StatefulSet", "orders-db")["spec"]["replicas"] == 2
    restarted = execute(conn, action("restart", "StatefulSet", "orders-db"))
    assert restarted.status == "applied", restarted.message
    template = _get(fresh_world, "StatefulSet", "orders-db")["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    not_run = execute(
        conn,
        action(
            "set_image", "StatefulSet", "orders-db", {"container": "server", "image": "postgres:15"}
        ),
    )
    assert not_run.status == "rejected"
    assert "earlier images: none" in not_run.message
