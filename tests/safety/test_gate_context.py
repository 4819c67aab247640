"""The gate's context is read from a running cluster (the twin over HTTP), not taken from the plan.

Each test gathers a GateContext for an action through the read tools, lets
the gate judge it, and where the gate allows, runs the executor: the twin's
write log shows what reached the API server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.context import AgentContext
from agents.gate_context import gather_gate_context
from memory.base import ActionOutcome, IncidentRecord
from memory.inprocess import InProcessMemory
from policies.gate import evaluate
from policies.limits import PolicyLimits
from settings import Settings
from state import (
    Action,
    Category,
    ExecutedAction,
    Hypothesis,
    Incident,
    IncidentInput,
    IncidentState,
    ObjectRef,
    Plan,
    TokenUsage,
)
from tests.graph.support.context import twin_context
from tests.safety.builders import act
from tools.executor import execute
from twin.harness import Twin

NS = "shop"
OPENED = datetime(2026, 1, 1, tzinfo=UTC)
OLD_IMAGE = "us-central1-docker.pkg.dev/online-boutique-ci/microservices-demo/cartservice:v0.10.6"


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    """cart-memory-leak at 2.5 min: cartservice rolled out a second revision, then leaks."""
    with Twin.start("cart-memory-leak") as t:
        t.advance(150)
        yield t


def state_for(mode: str = "autonomous", confidence: float = 0.9, **kw: Any) -> IncidentState:
    incident = Incident(
        id="inc-gate",
        title="cart errors",
        trigger="cli",
        namespace=NS,
        fingerprint="x",
        mode=mode,
        opened_at=OPENED,
    )
    plan = Plan(
        hypotheses=[
            Hypothesis(
                id="h1",
                root_cause=ObjectRef(kind="Deployment", namespace=NS, name="cartservice"),
                cause_kind="oom",
                category=Category(system_level="Application", fault_type="Resource Exhaustion"),
                confidence=confidence,
                statement="cartservice leaks memory",
            )
        ]
    )
    return IncidentState(
        input=IncidentInput(trigger="cli", mode=mode),
        incident=incident,
        plan=plan,
        **kw,
    )


def gather(ctx: AgentContext, state: IncidentState, action: Action) -> Any:
    return asyncio.run(gather_gate_context(ctx, state, action))


@pytest.fixture
def ctx(twin: Twin) -> Iterator[AgentContext]:
    with twin_context(twin, Settings()) as c:
        yield c


def cart_pod(twin: Twin) -> str:
    pods = [
        p
        for p in twin.cluster.store.list(twin.cluster.rt("Pod"), NS)
        if p["metadata"]["name"].startswith("cartservice-")
        and not p["metadata"].get("deletionTimestamp")
    ]
    assert pods, "cartservice has no pod"
    return str(pods[0]["metadata"]["name"])


def test_a_deployment_is_read_from_the_cluster(twin: Twin, ctx: AgentContext) -> None:
    gc = gather(ctx, state_for(), act("restart", "Deployment", "cartservice"))
    assert gc.target_exists is True
    assert gc.target_kind == "Deployment"
    assert gc.workload == ObjectRef(kind="Deployment", namespace=NS, name="cartservice")
    assert gc.current_replicas == 1
    assert gc.revisions == [1, 2]
    assert gc.current_revision == 2
    assert gc.images_ran is not None
    assert OLD_IMAGE in gc.images_ran["server"]
    assert gc.container_resources is not None
    assert gc.container_resources["server"]["limits"] == {"cpu": "300m", "memory": "128Mi"}
    assert gc.pods is not None
    assert [p.name for p in gc.pods] == [cart_pod(twin)]
    assert gc.mode == "autonomous"
    assert gc.now == twin.cluster.clock.now()
    assert gc.hypothesis_confidence == 0.9
    assert evaluate(act("restart", "Deployment", "cartservice"), gc, ctx.limits).decision == "allow"


def test_what_the_plan_claims_is_not_what_the_gate_reads(ctx: AgentContext) -> None:
    """An image the plan says ran before, but that the cluster never ran, is refused."""
    action = act(
        "set_image", "Deployment", "cartservice", container="server", image="evil.example/cart:1"
    )
    gc = gather(ctx, state_for(), action)
    decision = evaluate(action, gc, ctx.limits)
    assert decision.decision == "deny"
    assert "never run" in decision.reasons[0]
    earlier = act("set_image", "Deployment", "cartservice", container="server", image=OLD_IMAGE)
    assert evaluate(earlier, gather(ctx, state_for(), earlier), ctx.limits).decision != "deny"


def test_a_missing_target_is_denied(ctx: AgentContext) -> None:
    for action in (
        act("restart", "Deployment", "no-such-thing"),
        act("delete_pod", "Pod", "no-such-pod"),
        act("patch_service", "Service", "no-such-svc", selector={"app": "x"}),
        act("set_hpa", "HorizontalPodAutoscaler", "no-such-hpa", max_replicas=3),
        act("cordon", "Node", "node-99", namespace=None),
    ):
        gc = gather(ctx, state_for(), action)
        assert gc.target_exists is False, (action.action, gc.read_errors)
        decision = evaluate(action, gc, ctx.limits)
        assert decision.decision == "deny"
        assert "does not exist" in decision.reasons[0]


def test_an_unreadable_cluster_fails_closed(twin: Twin) -> None:
    """A toolbox whose API server is gone cannot vouch for anything: every write is denied."""
    with Twin.start("healthy") as gone, twin_context(gone, Settings()) as c:
        gone.stop()
        action = act("restart", "Deployment", "cartservice")
        gc = gather(c, state_for(), action)
    assert gc.target_exists is None
    assert gc.read_errors
    decision = evaluate(action, gc, PolicyLimits())
    assert decision.decision == "deny"
    assert "fails closed" in decision.reasons[0]


def test_a_pod_is_judged_with_its_workload_and_pdbs(twin: Twin, ctx: AgentContext) -> None:
    pod = cart_pod(twin)
    action = act("delete_pod", "Pod", pod)
    gc = gather(ctx, state_for(), action)
    assert gc.target_kind == "Pod"
    assert gc.workload == ObjectRef(kind="Deployment", namespace=NS, name="cartservice")
    assert gc.pdbs == []
    assert gc.pods is not None
    assert [p.name for p in gc.pods] == [pod]

    # A PDB that wants the one pod kept: its loss would break the budget.
    cluster = twin.cluster
    cluster.create(
        cluster.rt("PodDisruptionBudget"),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "cart-pdb", "namespace": NS},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "cartservice"}}},
        },
    )
    try:
        twin.advance(5)
        gc = gather(ctx, state_for(), action)
        assert gc.pdbs is not None
        assert [p.name for p in gc.pdbs] == ["cart-pdb"]
        assert gc.pods is not None
        assert gc.pods[0].ready
        decision = evaluate(action, gc, ctx.limits)
        assert decision.decision == "deny"
        assert any("cart-pdb" in r and "would break it" in r for r in decision.reasons)
    finally:
        cluster.delete(cluster.rt("PodDisruptionBudget"), NS, "cart-pdb")


def test_a_service_patch_is_judged_by_what_it_would_select(ctx: AgentContext) -> None:
    typo = act("patch_service", "Service", "cartservice", selector={"app": "cartservize"})
    gc = gather(ctx, state_for(), typo)
    assert gc.service_selected_pods == 0
    assert evaluate(typo, gc, ctx.limits).decision == "deny"
    right = act("patch_service", "Service", "cartservice", selector={"app": "cartservice"})
    gc = gather(ctx, state_for(), right)
    assert gc.service_selected_pods == 1
    assert evaluate(right, gc, ctx.limits).decision == "needs_approval"
    port = act(
        "patch_service", "Service", "cartservice", ports=[{"port": 7070, "target_port": 7071}]
    )
    gc = gather(ctx, state_for(), port)
    assert gc.service_declared_ports == [7070]
    decision = evaluate(port, gc, ctx.limits)
    assert decision.decision == "deny"
    assert "7071 is declared by no pod" in decision.reasons[0]


def test_a_traffic_shift_is_judged_by_the_routes_backends(twin: Twin, ctx: AgentContext) -> None:
    cluster = twin.cluster
    rt = cluster.rt("HTTPRoute", "gateway.networking.k8s.io/v1")
    cluster.create(
        rt,
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "cart-route", "namespace": NS},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "cartservice"}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "cartservice", "port": 7070, "weight": 80},
                            {"name": "cart-canary", "port": 7070, "weight": 20},
                        ]
                    }
                ],
            },
        },
    )
    try:
        off = act("shift_traffic", "HTTPRoute", "cart-route", weights={"cart-canary": 0})
        gc = gather(ctx, state_for(), off)
        assert gc.route_weights == {"cartservice": 80, "cart-canary": 20}
        assert evaluate(off, gc, ctx.limits).decision == "needs_approval"
        dark = act(
            "shift_traffic", "HTTPRoute", "cart-route", weights={"cartservice": 0, "cart-canary": 0}
        )
        decision = evaluate(dark, gather(ctx, state_for(), dark), ctx.limits)
        assert decision.decision == "deny"
        assert "serve nothing" in decision.reasons[0]
    finally:
        cluster.delete(rt, NS, "cart-route")


def test_a_node_is_judged_with_the_others(ctx: AgentContext) -> None:
    action = act("cordon", "Node", "node-1", namespace=None)
    gc = gather(ctx, state_for(), action)
    assert gc.target_exists is True
    assert gc.schedulable_nodes == 2  # node-2 and node-3
    assert evaluate(action, gc, ctx.limits).decision == "needs_approval"


def test_what_kubemedic_did_counts_against_the_limits(twin: Twin) -> None:
    now = twin.cluster.clock.now()
    pod = cart_pod(twin)
    memory = InProcessMemory()
    record = IncidentRecord(
        incident_id="inc-earlier",
        actions=[
            ActionOutcome(
                action="restart",
                target="Deployment/shop/cartservice",
                status="applied",
                recovered=False,
            ),
            ActionOutcome(
                action="restart",
                target="Deployment/shop/frontend",
                status="applied",
                recovered=True,
            ),
        ],
        opened_at=now - timedelta(minutes=30),
        closed_at=now - timedelta(minutes=20),
    )
    asyncio.run(memory.record(record))
    mine = [
        ExecutedAction(
            action_index=0,
            action=act("delete_pod", "Pod", "cartservice-59df8598bd-zzzzz"),
            status="applied",
            at=now - timedelta(minutes=2),
        ),
        ExecutedAction(
            action_index=1,
            action=act("scale", "Deployment", "cartservice", replicas=2),
            status="dry_run_failed",
            at=now - timedelta(minutes=1),
        ),
    ]
    state = state_for(executed=mine, tokens=TokenUsage(input=10, output=5, cost_usd=0.5))
    with twin_context(twin, Settings(), memory=memory) as c:
        gc = gather(c, state, act("delete_pod", "Pod", pod))
    assert [p.action for p in gc.executed_in_incident] == ["delete_pod"]
    assert sorted(p.incident_id for p in gc.executed_on_workload) == ["inc-earlier", "inc-gate"]
    assert (gc.tokens_used, gc.cost_usd) == (15, 0.5)
    tight = PolicyLimits(max_actions_per_workload_per_hour=2)
    decision = evaluate(act("delete_pod", "Pod", pod), gc, tight)
    assert decision.decision == "deny"
    assert any("max_actions_per_workload_per_hour" in r for r in decision.reasons)


def test_allowed_runs_and_denied_never_reaches_the_api_server(
    twin: Twin, ctx: AgentContext
) -> None:
    start = len(twin.write_log)
    denied = act("scale", "Deployment", "cartservice", replicas=0)
    allowed = act("scale", "Deployment", "cartservice", replicas=2)
    conn = ctx.toolbox.kube()
    undo: Action | None = None
    try:
        for action in (denied, allowed):
            gc = gather(ctx, state_for(), action)
            decision = evaluate(action, gc, ctx.limits)
            if decision.allowed:
                outcome = execute(conn, action)
                assert outcome.status == "applied", outcome.message
                undo = outcome.inverse
            else:
                assert action is denied
        writes = [w for w in twin.write_log[start:] if not w.dry_run]
    finally:
        if undo is not None:  # the module's twin goes back to one replica for the others
            execute(conn, undo)
    assert [(w.verb, w.name, w.body.get("spec", {}).get("replicas")) for w in writes] == [
        ("patch", "cartservice", 2)
    ]


@pytest.mark.parametrize("mode", ["observe", "approve"])
def test_the_mode_comes_from_the_incident(ctx: AgentContext, mode: str) -> None:
    action = act("restart", "Deployment", "cartservice")
    gc = gather(ctx, state_for(mode=mode), action)
    assert gc.mode == mode
    expected = "deny" if mode == "observe" else "needs_approval"
    assert evaluate(action, gc, ctx.limits).decision == expected
