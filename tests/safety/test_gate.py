"""The policy gate, rule by rule: every hard invariant and every tunable limit, as a table.

Each row is one action in one situation, the decision the gate must reach and
a phrase its reasons must contain. The hard invariants are also run against
the loosest policy a file can express, to show no configuration opens them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from policies.context import HARD_MAX_REPLICAS, GateContext
from policies.gate import Decision, evaluate, evaluate_plan, may_execute
from policies.limits import FreezeWindow, PolicyLimits
from state import (
    Action,
    ActionRejected,
    NoParams,
    ObjectRef,
    RestartAction,
    ScaleAction,
    ScaleParams,
    Target,
    parse_action,
)
from tests.safety.builders import NOW, PdbInfo, act, ctx, past, pod_ctx, pods

DEFAULT = PolicyLimits()
#: The loosest policy a file can express: every action automatic, every namespace
#: autonomous, no confidence needed, generous rates. Hard invariants must still hold.
LOOSEST = PolicyLimits(
    autonomous_namespaces=["*"],
    auto_actions=[
        "restart",
        "delete_pod",
        "scale",
        "rollback",
        "set_resources",
        "set_image",
        "patch_service",
        "set_hpa",
        "shift_traffic",
        "cordon",
        "uncordon",
    ],
    min_confidence=0.0,
    max_actions_per_incident=10_000,
    max_actions_per_workload_per_hour=10_000,
    max_replica_change=10_000,
    max_replicas=HARD_MAX_REPLICAS,
    max_tokens_per_incident=10**12,
    max_cost_usd_per_incident=10**9,
)

restart = act("restart", "Deployment", "cart")
svc_ctx: dict[str, Any] = {
    "target_kind": "Service",
    "workload": ObjectRef(kind="Service", namespace="shop", name="cart"),
    "service_selected_pods": 2,
    "service_declared_ports": [8080, "http"],
}

# (id, action, context, expected decision, phrase in the reasons)
HARD: list[tuple[str, Action, GateContext, str, str]] = [
    ("observe denies writes", restart, ctx(mode="observe"), "deny", "observe mode"),
    (
        "kube-system",
        act("restart", "Deployment", "coredns", namespace="kube-system"),
        ctx(workload=ObjectRef(kind="Deployment", namespace="kube-system", name="coredns")),
        "deny",
        "'kube-system' is protected",
    ),
    (
        "kube-public",
        act("scale", "Deployment", "x", namespace="kube-public", replicas=2),
        ctx(workload=None),
        "deny",
        "protected",
    ),
    (
        "kube-node-lease",
        act("delete_pod", "Pod", "x-1", namespace="kube-node-lease"),
        pod_ctx(workload=None),
        "deny",
        "protected",
    ),
    (
        "any kube- namespace",
        act("restart", "Deployment", "x", namespace="kube-flannel"),
        ctx(workload=None),
        "deny",
        "protected",
    ),
    (
        "kubemedic's own namespace",
        act("restart", "Deployment", "kubemedic", namespace="kubemedic"),
        ctx(workload=None),
        "deny",
        "protected",
    ),
    (
        "own namespace from settings",
        act("restart", "Deployment", "medic", namespace="ops-medic"),
        ctx(own_namespace="ops-medic", workload=None),
        "deny",
        "protected",
    ),
    (
        "a pod whose workload lives in a protected namespace",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(workload=ObjectRef(kind="Deployment", namespace="kube-system", name="cart")),
        "deny",
        "protected",
    ),
    (
        "scale to zero",
        act("scale", "Deployment", "cart", replicas=0),
        ctx(undoes_own_change=True),
        "deny",
        "to zero",
    ),
    (
        "scale above the hard ceiling",
        act("scale", "Deployment", "cart", replicas=HARD_MAX_REPLICAS + 1),
        ctx(current_replicas=HARD_MAX_REPLICAS),
        "deny",
        "ceiling",
    ),
    (
        "scale with unknown current replicas",
        act("scale", "Deployment", "cart", replicas=3),
        ctx(current_replicas=None),
        "deny",
        "unknown",
    ),
    (
        "HPA max above the hard ceiling",
        act("set_hpa", "HorizontalPodAutoscaler", "cart", max_replicas=HARD_MAX_REPLICAS + 1),
        ctx(target_kind="HorizontalPodAutoscaler"),
        "deny",
        "ceiling",
    ),
    (
        "delete a pod that nothing recreates",
        act("delete_pod", "Pod", "lonely"),
        pod_ctx(workload=None, pods=None),
        "deny",
        "no controller",
    ),
    (
        "delete a ready pod while a sibling terminates",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(pods=pods("cart-abc-1", "cart-abc-2", "cart-abc-3:terminating")),
        "deny",
        "one pod at a time",
    ),
    (
        "delete a pod whose PDB allows no disruption",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(pdbs=[PdbInfo(name="cart-pdb", disruptions_allowed=0)]),
        "deny",
        "would break it",
    ),
    (
        "delete a pod whose PDB status is unknown",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(pdbs=[PdbInfo(name="cart-pdb", disruptions_allowed=None)]),
        "deny",
        "cart-pdb",
    ),
    (
        "delete a pod when PDBs could not be listed",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(pdbs=None),
        "deny",
        "unknown",
    ),
    (
        "delete the last ready pod",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(pods=pods("cart-abc-1", "cart-abc-2:unready")),
        "deny",
        "last ready pod",
    ),
    (
        "delete a pod the workload does not have",
        act("delete_pod", "Pod", "other-1"),
        pod_ctx(),
        "deny",
        "not one of",
    ),
    (
        "delete a pod with unknown siblings",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(pods=None),
        "deny",
        "unknown",
    ),
    (
        "set an image never run",
        act("set_image", "Deployment", "cart", container="server", image="evil.example.com/x:1"),
        ctx(),
        "deny",
        "never run",
    ),
    (
        "set an image another container ran",
        act(
            "set_image",
            "Deployment",
            "cart",
            container="sidecar",
            image="registry.example.com/cart:v1",
        ),
        ctx(),
        "deny",
        "never run",
    ),
    (
        "set an image with unknown history",
        act(
            "set_image",
            "Deployment",
            "cart",
            container="server",
            image="registry.example.com/cart:v1",
        ),
        ctx(images_ran=None),
        "deny",
        "unknown",
    ),
    (
        "roll back to a revision that does not exist",
        act("rollback", "Deployment", "cart", to_revision=7),
        ctx(),
        "deny",
        "no revision 7",
    ),
    (
        "roll back to the current revision",
        act("rollback", "Deployment", "cart", to_revision=2),
        ctx(),
        "deny",
        "already the current",
    ),
    (
        "cordon the last schedulable node",
        act("cordon", "Node", "node-1", namespace=None),
        ctx(target_kind="Node", workload=None, schedulable_nodes=0),
        "deny",
        "no Ready, schedulable node",
    ),
    (
        "point a Service at nothing",
        act("patch_service", "Service", "cart", selector={"app": "typo"}),
        ctx(**{**svc_ctx, "service_selected_pods": 0}),
        "deny",
        "would select no pod",
    ),
    (
        "a Service patch that cannot be checked",
        act("patch_service", "Service", "cart", selector={"app": "cart"}),
        ctx(**{**svc_ctx, "service_selected_pods": None}),
        "deny",
        "unknown",
    ),
    (
        "a targetPort no pod declares",
        act("patch_service", "Service", "cart", ports=[{"port": 80, "target_port": 9999}]),
        ctx(**svc_ctx),
        "deny",
        "declared by no pod",
    ),
    (
        "a route that would serve nothing",
        act("shift_traffic", "HTTPRoute", "front", weights={"stable": 0}),
        ctx(target_kind="HTTPRoute", route_weights={"stable": 100, "canary": 0}),
        "deny",
        "serve nothing",
    ),
    (
        "a backend the route does not have",
        act("shift_traffic", "HTTPRoute", "front", weights={"evil": 100}),
        ctx(target_kind="HTTPRoute", route_weights={"stable": 100, "canary": 0}),
        "deny",
        "no backend evil",
    ),
    (
        "a route whose rule is unknown",
        act("shift_traffic", "HTTPRoute", "front", weights={"stable": 100}),
        ctx(target_kind="HTTPRoute", route_weights=None),
        "deny",
        "unknown",
    ),
    (
        "resources of a container the workload lacks",
        act("set_resources", "Deployment", "cart", container="sidecar", limits={"memory": "1Gi"}),
        ctx(),
        "deny",
        "no container 'sidecar'",
    ),
    (
        "target does not exist",
        restart,
        ctx(target_exists=False),
        "deny",
        "does not exist",
    ),
    (
        "target could not be read",
        restart,
        ctx(target_exists=None, read_errors=["describe_workload: 403 Forbidden"]),
        "deny",
        "fails closed",
    ),
    (
        "target is another kind in the cluster",
        restart,
        ctx(target_kind="StatefulSet"),
        "deny",
        "is a StatefulSet",
    ),
]


@pytest.mark.parametrize(
    ("case", "action", "context", "expected", "phrase"), HARD, ids=[c[0] for c in HARD]
)
@pytest.mark.parametrize("limits", [DEFAULT, LOOSEST], ids=["default", "loosest"])
def test_hard_invariants(
    case: str,
    action: Action,
    context: GateContext,
    expected: str,
    phrase: str,
    limits: PolicyLimits,
) -> None:
    decision = evaluate(action, context, limits)
    assert decision.decision == expected, (case, decision.reasons)
    assert any(phrase in r for r in decision.reasons), decision.reasons
    assert not may_execute(decision, approved=True)


def _limits(**kw: Any) -> PolicyLimits:
    return PolicyLimits(**kw)


# (id, action, context, limits, expected, phrase)
TUNABLE: list[tuple[str, Action, GateContext, PolicyLimits, str, str]] = [
    ("autonomous restart runs", restart, ctx(), DEFAULT, "allow", "auto_actions"),
    ("approve mode waits", restart, ctx(mode="approve"), DEFAULT, "needs_approval", "approve mode"),
    (
        "not in auto_actions",
        act("set_resources", "Deployment", "cart", container="server", limits={"memory": "256Mi"}),
        ctx(),
        DEFAULT,
        "needs_approval",
        "not in auto_actions",
    ),
    (
        "namespace not autonomous",
        restart,
        ctx(),
        _limits(autonomous_namespaces=["staging-*"]),
        "needs_approval",
        "autonomous_namespaces",
    ),
    (
        "namespace matches a pattern",
        restart,
        ctx(),
        _limits(autonomous_namespaces=["sh*"]),
        "allow",
        "autonomous",
    ),
    ("low confidence", restart, ctx(hypothesis_confidence=0.3), DEFAULT, "needs_approval", "below"),
    (
        "unknown hypothesis",
        restart,
        ctx(hypothesis_confidence=None),
        DEFAULT,
        "needs_approval",
        "no known hypothesis",
    ),
    (
        "freeze window",
        restart,
        ctx(),
        _limits(
            freeze_windows=[
                FreezeWindow(days=["wed"], start="09:00", end="17:00", reason="release")
            ]
        ),
        "needs_approval",
        "freeze",
    ),
    (
        "outside the freeze window",
        restart,
        ctx(),
        _limits(freeze_windows=[FreezeWindow(days=["sat", "sun"], reason="weekend")]),
        "allow",
        "auto_actions",
    ),
    (
        "cluster-scoped writes wait for a person",
        act("uncordon", "Node", "node-1", namespace=None),
        ctx(target_kind="Node", workload=None),
        LOOSEST,
        "needs_approval",
        "cluster-scoped",
    ),
    (
        "max_replicas from the file",
        act("scale", "Deployment", "cart", replicas=12),
        ctx(current_replicas=10),
        _limits(max_replicas=11),
        "deny",
        "ceiling of 11",
    ),
    (
        "max_replica_change",
        act("scale", "Deployment", "cart", replicas=9),
        ctx(current_replicas=2),
        _limits(max_replica_change=5),
        "deny",
        "max_replica_change",
    ),
    (
        "scale within bounds",
        act("scale", "Deployment", "cart", replicas=4),
        ctx(current_replicas=2),
        DEFAULT,
        "allow",
        "auto_actions",
    ),
    (
        "actions per incident",
        restart,
        ctx(executed_in_incident=[past("scale", "Deployment/shop/a", 5)] * 5),
        DEFAULT,
        "deny",
        "max_actions_per_incident",
    ),
    (
        "actions per workload per hour",
        restart,
        ctx(executed_on_workload=[past("restart", "Deployment/shop/cart", m) for m in (5, 20, 40)]),
        DEFAULT,
        "deny",
        "max_actions_per_workload_per_hour",
    ),
    (
        "older actions do not count",
        restart,
        ctx(
            executed_on_workload=[past("restart", "Deployment/shop/cart", m) for m in (61, 90, 300)]
        ),
        DEFAULT,
        "allow",
        "auto_actions",
    ),
    (
        "token budget",
        restart,
        ctx(tokens_used=200_001),
        DEFAULT,
        "deny",
        "max_tokens_per_incident",
    ),
    ("cost budget", restart, ctx(cost_usd=5.01), DEFAULT, "deny", "max_cost_usd_per_incident"),
    (
        "an undo is not held back by the budget",
        act("scale", "Deployment", "cart", replicas=2),
        ctx(
            current_replicas=4,
            undoes_own_change=True,
            executed_in_incident=[past("scale", "Deployment/shop/cart", 1)] * 5,
            tokens_used=10**9,
        ),
        DEFAULT,
        "allow",
        "auto_actions",
    ),
    (
        "extra protected namespace",
        restart,
        ctx(),
        _limits(protected_namespaces=["shop"]),
        "deny",
        "protected",
    ),
    (
        "delete an unready pod while another terminates",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(
            pods=pods("cart-abc-1:unready", "cart-abc-2:terminating"),
            pdbs=[PdbInfo(name="p", disruptions_allowed=0)],
        ),
        DEFAULT,
        "allow",
        "auto_actions",
    ),
    (
        "delete a ready pod the PDB allows",
        act("delete_pod", "Pod", "cart-abc-1"),
        pod_ctx(pdbs=[PdbInfo(name="p", disruptions_allowed=1)]),
        DEFAULT,
        "allow",
        "auto_actions",
    ),
    (
        "fix a targetPort to a declared port name",
        act("patch_service", "Service", "cart", ports=[{"port": 80, "target_port": "http"}]),
        ctx(**svc_ctx),
        DEFAULT,
        "needs_approval",
        "not in auto_actions",
    ),
    (
        "move traffic off a canary",
        act("shift_traffic", "HTTPRoute", "front", weights={"canary": 0, "stable": 100}),
        ctx(target_kind="HTTPRoute", route_weights={"stable": 80, "canary": 20}),
        DEFAULT,
        "needs_approval",
        "not in auto_actions",
    ),
    (
        "raising a memory limit runs alone when allowed",
        act("set_resources", "Deployment", "cart", container="server", limits={"memory": "512Mi"}),
        ctx(),
        LOOSEST,
        "allow",
        "auto_actions",
    ),
    (
        "lowering a limit always waits for a person",
        act("set_resources", "Deployment", "cart", container="server", limits={"memory": "8Mi"}),
        ctx(),
        LOOSEST,
        "needs_approval",
        "lowers limits.memory from 256Mi to 8Mi",
    ),
    (
        "patch a Service: approval by default",
        act("patch_service", "Service", "cart", selector={"app": "cart"}),
        ctx(**svc_ctx),
        DEFAULT,
        "needs_approval",
        "not in auto_actions",
    ),
]


@pytest.mark.parametrize(
    ("case", "action", "context", "limits", "expected", "phrase"),
    TUNABLE,
    ids=[c[0] for c in TUNABLE],
)
def test_tunable_limits(
    case: str,
    action: Action,
    context: GateContext,
    limits: PolicyLimits,
    expected: str,
    phrase: str,
) -> None:
    decision = evaluate(action, context, limits)
    assert decision.decision == expected, (case, decision.reasons)
    assert any(phrase in r for r in decision.reasons), decision.reasons


@pytest.mark.parametrize("mode", ["observe", "approve", "autonomous"])
def test_escalate_is_always_allowed(mode: str) -> None:
    action = parse_action(
        {
            "action": "escalate",
            "target": {"kind": "Deployment", "namespace": "kube-system", "name": "coredns"},
            "hypothesis_id": "h1",
            "expected_effect": "a person looks",
            "verification": "acknowledged",
            "params": {"summary": "outside the action set"},
        }
    )
    budget_gone = ctx(
        mode=mode,
        target_exists=None,
        tokens_used=10**9,
        cost_usd=10**6,
        executed_in_incident=[past("restart", "Deployment/shop/cart", 1)] * 50,
    )
    decision = evaluate(action, budget_gone, DEFAULT)
    assert decision.decision == "allow"


@pytest.mark.parametrize(
    "raw",
    [
        {"action": "delete_namespace", "target": {"kind": "Namespace", "name": "shop"}},
        {"action": "delete", "target": {"kind": "Deployment", "namespace": "shop", "name": "cart"}},
        {"action": "exec", "target": {"kind": "Pod", "namespace": "shop", "name": "x"}},
        {"action": "restart", "target": {"kind": "Secret", "namespace": "shop", "name": "db"}},
        {
            "action": "restart",
            "target": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "d"},
        },
        {"action": "restart", "target": {"kind": "ClusterRoleBinding", "name": "admin"}},
        {
            "action": "scale",
            "target": {"kind": "Deployment", "namespace": "shop", "name": "cart"},
            "params": {"replicas": -1},
        },
        {"action": "restart", "target": {"kind": "Node", "name": "node-1"}},
        {"action": "cordon", "target": {"kind": "Node", "namespace": "shop", "name": "node-1"}},
        {"action": "restart", "target": {"kind": "Deployment", "namespace": "Shop!", "name": "x"}},
        {
            "action": "restart",
            "target": {"kind": "Deployment", "namespace": "shop", "name": "cart"},
            "command": "kubectl delete ns shop",
        },
    ],
    ids=lambda raw: f"{raw['action']}-{raw['target']['kind']}",
)
def test_an_action_outside_the_closed_set_never_parses(raw: dict[str, Any]) -> None:
    full = {"hypothesis_id": "h1", "expected_effect": "x", "verification": "y", **raw}
    with pytest.raises(ActionRejected):
        parse_action(full)


def test_an_action_built_around_validation_is_denied() -> None:
    """model_construct() skips validation: the gate re-validates and denies."""
    sneaky = ScaleAction.model_construct(
        target=Target.model_construct(kind="Namespace", namespace=None, name="shop"),  # type: ignore[arg-type]
        hypothesis_id="h1",
        evidence_ids=[],
        expected_effect="x",
        verification="y",
        action="scale",
        params=ScaleParams.model_construct(replicas=0),
    )
    decision = evaluate(sneaky, ctx(), LOOSEST)
    assert decision.decision == "deny"
    assert "does not validate" in decision.reasons[0]

    # Right fields, wrong model: a restart claiming to be a scale.
    liar = RestartAction.model_construct(
        target=Target(kind="Deployment", namespace="shop", name="cart"),
        hypothesis_id="h1",
        evidence_ids=[],
        expected_effect="x",
        verification="y",
        action="scale",  # type: ignore[arg-type]
        params=NoParams(),
    )
    decision = evaluate(liar, ctx(), LOOSEST)
    assert decision.decision == "deny"
    assert "must be a ScaleAction" in decision.reasons[0]


def test_anything_that_is_not_an_action_is_denied() -> None:
    for thing in ({"action": "restart"}, "restart", None, object()):
        decision = evaluate(thing, ctx(), LOOSEST)  # type: ignore[arg-type]
        assert decision.decision == "deny", thing


def test_every_reason_is_given_not_only_the_first() -> None:
    action = act("scale", "Deployment", "cart", namespace="kube-system", replicas=0)
    decision = evaluate(action, ctx(mode="observe", tokens_used=10**9), DEFAULT)
    text = " | ".join(decision.reasons)
    for phrase in ("observe mode", "protected", "to zero", "max_tokens_per_incident"):
        assert phrase in text


def test_approval_is_not_authorization() -> None:
    denied = Decision(decision="deny", reasons=["x"])
    waiting = Decision(decision="needs_approval", reasons=["y"])
    allowed = Decision(decision="allow", reasons=["z"])
    assert not may_execute(denied, approved=True)
    assert not may_execute(waiting, approved=False)
    assert may_execute(waiting, approved=True)
    assert may_execute(allowed, approved=False)


def test_record_keeps_the_decision_for_the_state() -> None:
    d = evaluate(restart, ctx(mode="observe"), DEFAULT)
    rec = d.record(3, restart, NOW)
    assert (rec.action_index, rec.action, rec.target, rec.decision) == (
        3,
        "restart",
        "Deployment/shop/cart",
        "deny",
    )
    assert rec.reasons == d.reasons


# -- plan-level rules ----------------------------------------------------------------------


def test_a_plan_cannot_delete_every_pod_one_at_a_time() -> None:
    names = [f"cart-abc-{i}" for i in range(1, 4)]
    actions = [act("delete_pod", "Pod", n) for n in names]
    contexts = [pod_ctx(pods=pods(*names)) for _ in names]
    decisions = evaluate_plan(actions, contexts, LOOSEST)
    assert [d.decision for d in decisions] == ["allow", "deny", "deny"]
    assert "one pod of a workload at a time" in decisions[1].reasons[-1]


def test_a_plan_cannot_run_past_the_incident_budget() -> None:
    actions = [act("restart", "Deployment", f"svc{i}") for i in range(4)]
    contexts = [
        ctx(
            workload=ObjectRef(kind="Deployment", namespace="shop", name=f"svc{i}"),
            executed_in_incident=[past("restart", "Deployment/shop/x", 1)] * 2,
        )
        for i in range(4)
    ]
    decisions = evaluate_plan(actions, contexts, _limits(max_actions_per_incident=4))
    assert [d.decision for d in decisions] == ["allow", "allow", "deny", "deny"]


def test_a_plan_cannot_run_past_the_workload_rate() -> None:
    actions = [
        act("restart", "Deployment", "cart"),
        act("scale", "Deployment", "cart", replicas=3),
        act("restart", "Deployment", "cart"),
    ]
    decisions = evaluate_plan(actions, [ctx()] * 3, _limits(max_actions_per_workload_per_hour=1))
    assert [d.decision for d in decisions] == ["allow", "deny", "deny"]


def test_a_plan_repeating_an_action_runs_it_once() -> None:
    decisions = evaluate_plan([restart, restart], [ctx(), ctx()], DEFAULT)
    assert [d.decision for d in decisions] == ["allow", "deny"]
    assert "already in this plan" in decisions[1].reasons[-1]


def test_a_plan_cannot_cordon_every_node() -> None:
    actions = [act("cordon", "Node", f"node-{i}", namespace=None) for i in (1, 2, 3)]
    contexts = [ctx(target_kind="Node", workload=None, schedulable_nodes=2)] * 3
    decisions = evaluate_plan(actions, contexts, LOOSEST)
    assert [d.decision for d in decisions] == ["needs_approval", "needs_approval", "deny"]
    assert "no Ready, schedulable node" in decisions[2].reasons[-1]


def test_plan_and_contexts_must_match() -> None:
    with pytest.raises(ValueError, match="1 actions but 2"):
        evaluate_plan([restart], [ctx(), ctx()], DEFAULT)


def test_freeze_window_runs_past_midnight() -> None:
    night = FreezeWindow(days=["fri"], start="22:00", end="06:00")
    friday_late = NOW + timedelta(days=2, hours=11)  # Fri 23:00
    saturday_early = NOW + timedelta(days=2, hours=17)  # Sat 05:00
    saturday_noon = NOW + timedelta(days=3)
    assert night.covers(friday_late)
    assert night.covers(saturday_early)
    assert not night.covers(saturday_noon)
    assert not night.covers(NOW)
