"""Small builders for actions and gate contexts, so the tables read as the rules they test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from policies.context import GateContext, PastAction, PdbInfo, PodInfo
from state import Action, ObjectRef, parse_action

NOW = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)  # a Wednesday
NS = "shop"


def act(name: str, kind: str, target: str, namespace: str | None = NS, **params: Any) -> Action:
    """An action as the planner would emit it, validated like the planner's."""
    t: dict[str, Any] = {"kind": kind, "name": target}
    if namespace is not None:
        t["namespace"] = namespace
    data: dict[str, Any] = {
        "action": name,
        "target": t,
        "hypothesis_id": "h1",
        "evidence_ids": ["e1"],
        "expected_effect": "the service recovers",
        "verification": "error ratio below 1%",
    }
    if params:
        data["params"] = params
    return parse_action(data)


def pods(*specs: str) -> list[PodInfo]:
    """Pods from short specs: "name" ready, "name:unready", "name:terminating"."""
    out = []
    for spec in specs:
        name, _, state = spec.partition(":")
        out.append(
            PodInfo(
                name=name,
                ready=state == "",
                terminating=state == "terminating",
            )
        )
    return out


def past(action: str, target: str, minutes_ago: float, workload: str | None = None) -> PastAction:
    from datetime import timedelta

    return PastAction(
        action=action,
        target=target,
        workload=workload or target,
        status="applied",
        at=NOW - timedelta(minutes=minutes_ago),
    )


def ctx(**fields: Any) -> GateContext:
    """A context for a healthy, existing Deployment `shop/cart` in autonomous mode."""
    base: dict[str, Any] = {
        "mode": "autonomous",
        "incident_id": "inc-1",
        "now": NOW,
        "target_exists": True,
        "target_kind": "Deployment",
        "workload": ObjectRef(kind="Deployment", namespace=NS, name="cart"),
        "current_replicas": 2,
        "pods": pods("cart-abc-1", "cart-abc-2"),
        "pdbs": [],
        "images_ran": {"server": ["registry.example.com/cart:v1", "registry.example.com/cart:v2"]},
        "revisions": [1, 2],
        "current_revision": 2,
        "schedulable_nodes": 2,
        "container_resources": {
            "server": {"requests": {"memory": "128Mi"}, "limits": {"memory": "256Mi"}}
        },
        "hypothesis_confidence": 0.9,
    }
    base.update(fields)
    return GateContext(**base)


def pod_ctx(**fields: Any) -> GateContext:
    """A context for pod `shop/cart-abc-1` of Deployment cart (two ready pods, no PDB)."""
    base: dict[str, Any] = {"target_kind": "Pod"}
    base.update(fields)
    return ctx(**base)


__all__ = ["NOW", "NS", "PdbInfo", "act", "ctx", "past", "pod_ctx", "pods"]
