"""The baselines kubemedic must beat, and the truth replay that bounds them from above.

- `Noop`: the cluster's own self-healing alone (controllers, back-off, eviction);
  no look, no write, it just lets the scenario run to its horizon.
- `Playbook`: a static rule-based responder of the Robusta kind. It uses
  kubemedic's read tools and executor directly, without the graph, the
  specialists or any reasoning about the service graph: each rule matches one
  symptom on the workload it sees it on and fires that symptom's stock fix
  (restart on CrashLoopBackOff, roll back a crash-looping fresh revision,
  scale up on saturation or an HPA at its max, delete a stuck pod, ...).
  It never escalates and does nothing when no rule matches.
- `TruthReplay`: reads the scenario's truth and applies its first accepted
  action by hand through the executor (or escalates). Not an agent: it shows
  that every scenario is fixable by its own accepted actions, and is the upper
  bound in the report.
"""

from __future__ import annotations

from typing import Any

from evals.episode import Episode
from state import Action, parse_action
from twin.scenario import ActionRule
from twin.scoring import RootCause

_WHY = {
    "hypothesis_id": "baseline",
    "evidence_ids": [],
    "expected_effect": "the symptom clears",
    "verification": "the workload's pods are ready and its error rate falls",
}


def make_action(action: str, kind: str, namespace: str | None, name: str, **params: Any) -> Action:
    """A validated action with the baselines' boilerplate justification."""
    target: dict[str, Any] = {"kind": kind, "name": name}
    if kind != "Node":
        target["namespace"] = namespace
    return parse_action({"action": action, "target": target, "params": params, **_WHY})


# -- noop --------------------------------------------------------------------------------


class Noop:
    """The cluster left alone."""

    name = "noop"

    def respond(self, ep: Episode, round_: int) -> None:
        return None


# -- truth replay -------------------------------------------------------------------------


def _pods_of(ep: Episode, namespace: str, workload: str | None) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"namespace": namespace}
    data = ep.data("list_pods", args) or {}
    pods: list[dict[str, Any]] = data.get("pods", []) if isinstance(data, dict) else []
    if workload is None:
        return pods
    return [p for p in pods if (p.get("workload") or {}).get("name") == workload]


def _previous_revision(ep: Episode, namespace: str, name: str) -> int | None:
    data = ep.data("rollout_history", {"namespace": namespace, "name": name}) or {}
    current = data.get("current_revision")
    earlier = [r["revision"] for r in data.get("revisions", []) if r["revision"] != current]
    return max(earlier) if earlier else None


def rule_actions(ep: Episode, rule: ActionRule, default_ns: str) -> list[Action]:
    """Concrete actions for one accepted-action rule of a truth (what a person would type)."""
    params = dict(rule.params)
    if rule.action == "escalate":
        return [
            make_action(
                "escalate", "Deployment", default_ns, "escalation", summary="needs a person"
            )
        ]
    target = rule.target
    ns = (target.namespace if target else rule.namespace) or default_ns
    if rule.action == "delete_pod":
        workload = target.name if target is not None and target.kind != "Pod" else None
        if target is not None and target.kind == "Pod":
            return [make_action("delete_pod", "Pod", ns, target.name)]
        unhealthy = [p for p in _pods_of(ep, ns, workload) if not p.get("ready")]
        return [make_action("delete_pod", "Pod", ns, p["name"]) for p in unhealthy]
    if target is None:
        return []
    kind, name = target.kind, target.name
    if rule.action == "rollback":
        rev = params.get("to_revision") or _previous_revision(ep, ns, name)
        return [make_action("rollback", kind, ns, name, to_revision=rev)] if rev else []
    if rule.action == "scale" and "replicas" not in params:
        params["replicas"] = 2
    return [make_action(rule.action, kind, ns, name, **params)]


class TruthReplay:
    """Applies the truth's accepted actions, first to last, one rule per round."""

    name = "truth"

    def respond(self, ep: Episode, round_: int) -> None:
        truth = ep.twin.truth
        dns = ep.twin.scenario.default_namespace
        if round_ == 0:
            ep.detected = truth.detection
            ep.detect_s = ep.localize_s = ep.now_s if truth.detection else None
            for rc in truth.root_cause:
                ns = "" if rc.kind == "Node" else rc.namespace or dns
                ep.root_causes.append(RootCause(rc.kind, ns, rc.name, 1.0))
            if truth.category is not None:
                ep.category = (truth.category.system_level, truth.category.fault_type)
        if truth.expect == "nothing" or round_ >= len(truth.accepted_actions):
            return
        if round_ > 0 and ep.twin.oracle_report().recovered_now:
            return  # the fix is working; the oracle is only waiting out its `for`
        for action in rule_actions(ep, truth.accepted_actions[round_], dns):
            ep.act(action)
