"""The policy gate: deterministic code, no model, no I/O, that decides whether an action may run.

`evaluate(action, context, limits)` returns a `Decision`: `allow`,
`needs_approval` or `deny`, each with its reasons. The hard invariants of
SAFETY.md are here, in code, and no policy file can loosen them; the tunable
limits (PolicyLimits, policies/default.yaml) can only add restrictions on
top. The gate runs twice for every action: before approval (the policy_gate
node) and again inside the executor right before the API call, with a fresh
context, because an approval is not an authorization and the cluster may
have changed since.

Everything the gate reads about the world is in the `GateContext`, gathered
from the cluster through read tools (agents/gate_context.py), never from the
plan. An unknown the gate needs for an invariant is a denial: it fails
closed.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from policies.context import (
    HARD_MAX_REPLICAS,
    HARD_PROTECTED_NAMESPACES,
    PROTECTED_NAMESPACE_PREFIX,
    GateContext,
)
from policies.limits import PolicyLimits, in_freeze_window
from state import (
    ACTION_ADAPTER,
    ACTION_NAMES,
    Action,
    CordonAction,
    DeletePodAction,
    EscalateAction,
    GateDecision,
    PatchServiceAction,
    RestartAction,
    RollbackAction,
    ScaleAction,
    SetHpaAction,
    SetImageAction,
    SetResourcesAction,
    ShiftTrafficAction,
    UncordonAction,
    format_validation_error,
    parse_quantity,
)

DecisionKind = Literal["allow", "needs_approval", "deny"]

#: The closed action set: each action's model and the target kinds it may write.
#: A kind outside its set is a denial even if a model object was built around validation.
WRITE_KINDS: dict[str, tuple[type[Any], frozenset[str]]] = {
    "restart": (RestartAction, frozenset({"Deployment", "StatefulSet", "DaemonSet"})),
    "delete_pod": (DeletePodAction, frozenset({"Pod"})),
    "scale": (ScaleAction, frozenset({"Deployment", "StatefulSet"})),
    "rollback": (RollbackAction, frozenset({"Deployment"})),
    "set_resources": (SetResourcesAction, frozenset({"Deployment", "StatefulSet", "DaemonSet"})),
    "set_image": (SetImageAction, frozenset({"Deployment", "StatefulSet", "DaemonSet"})),
    "patch_service": (PatchServiceAction, frozenset({"Service"})),
    "set_hpa": (SetHpaAction, frozenset({"HorizontalPodAutoscaler"})),
    "shift_traffic": (ShiftTrafficAction, frozenset({"HTTPRoute"})),
    "cordon": (CordonAction, frozenset({"Node"})),
    "uncordon": (UncordonAction, frozenset({"Node"})),
}
#: Kinds never written, whatever the action (SAFETY.md): the action models cannot even name
#: them, and the gate says so in words when something tries.
FORBIDDEN_KINDS: frozenset[str] = frozenset(
    {
        "Namespace",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "CustomResourceDefinition",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ServiceAccount",
        "Secret",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
#: How far back "actions per workload per hour" looks.
RATE_WINDOW = timedelta(hours=1)


class Decision(BaseModel):
    """The gate's answer on one action."""

    decision: DecisionKind
    reasons: list[str] = Field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def record(self, action_index: int, action: Any, at: datetime) -> GateDecision:
        """The decision as the incident state keeps it (state.GateDecision)."""
        name = str(getattr(action, "action", type(action).__name__))
        target = getattr(action, "target", None)
        return GateDecision(
            action_index=action_index,
            action=name,
            target=str(target) if target is not None else "?",
            decision=self.decision,
            reasons=list(self.reasons),
            at=at,
        )


def is_protected_namespace(namespace: str, own_namespace: str, extra: Sequence[str]) -> bool:
    """A namespace no write may touch: the hard-coded ones, kubemedic's own, the operator's."""
    return (
        namespace in HARD_PROTECTED_NAMESPACES
        or namespace.startswith(PROTECTED_NAMESPACE_PREFIX)
        or namespace == own_namespace
        or namespace in extra
    )


def is_write(action: Any) -> bool:
    """Every action in the closed set except escalate changes the cluster."""
    return getattr(action, "action", None) != "escalate"


def may_execute(decision: Decision, approved: bool) -> bool:
    """Whether the executor may send the action: allowed, or needing approval and approved."""
    return decision.decision == "allow" or (decision.decision == "needs_approval" and approved)


def evaluate(action: Action, context: GateContext, limits: PolicyLimits) -> Decision:
    """Decide one action: allow, needs_approval or deny, with every reason that applies."""
    problems = _well_formed(action)
    if problems:
        return Decision(decision="deny", reasons=problems)
    if isinstance(action, EscalateAction):
        # Escalating pages a person and writes nothing: it is the way out of every other
        # denial, so no mode, budget or freeze may block it.
        return Decision(decision="allow", reasons=["escalate changes nothing in the cluster"])

    deny: list[str] = []
    if context.mode == "observe":
        deny.append("observe mode: kubemedic investigates and recommends, and never writes")
    deny += _protected(action, context, limits)
    deny += _target_state(action, context)
    deny += _invariants(action, context, limits)
    deny += _rates(action, context, limits)
    if deny:
        return Decision(decision="deny", reasons=deny)
    return _approval_needed(action, context, limits)


def evaluate_plan(
    actions: Sequence[Action], contexts: Sequence[GateContext], limits: PolicyLimits
) -> list[Decision]:
    """Decide a whole plan: each action alone, then the rules that span actions.

    One action at a time can look harmless while the plan is not: five
    delete_pods that each take "one pod" of the same workload take them all.
    Across the plan: at most one delete_pod per workload, no action twice, and
    no more writes than the incident and each workload may still make, and
    cordons that leave at least one schedulable node.
    """
    if len(actions) != len(contexts):
        raise ValueError(f"{len(actions)} actions but {len(contexts)} gate contexts")
    decisions = [evaluate(a, c, limits) for a, c in zip(actions, contexts, strict=True)]
    seen: set[str] = set()
    cordons = 0
    pod_deletes: Counter[str] = Counter()
    per_workload: Counter[str] = Counter()
    writes = 0
    for i, (action, context) in enumerate(zip(actions, contexts, strict=True)):
        if decisions[i].decision == "deny" or not is_write(action):
            continue
        extra: list[str] = []
        key = action.model_dump_json()
        if key in seen:
            extra.append(f"the same {action.action} on {action.target} is already in this plan")
        seen.add(key)
        workload = str(context.workload) if context.workload else str(action.target)
        if isinstance(action, DeletePodAction):
            pod_deletes[workload] += 1
            if pod_deletes[workload] > 1:
                extra.append(
                    f"this plan already deletes a pod of {workload}: one pod of a workload "
                    "at a time"
                )
        if isinstance(action, CordonAction):
            cordons += 1
            # Each context counts the nodes schedulable besides its own target, as the
            # cluster is now; the plan's earlier cordons take those away one by one.
            left = (context.schedulable_nodes or 0) - (cordons - 1)
            if left < 1:
                extra.append(
                    f"with this plan's other cordons, cordoning node {action.target.name!r} "
                    "would leave no Ready, schedulable node"
                )
        writes += 1
        if len(context.executed_in_incident) + writes > limits.max_actions_per_incident:
            extra.append(
                f"the plan would take the incident past max_actions_per_incident "
                f"({limits.max_actions_per_incident})"
            )
        per_workload[workload] += 1
        recent = _recent(context)
        if recent + per_workload[workload] > limits.max_actions_per_workload_per_hour:
            extra.append(
                f"the plan would take {workload} past max_actions_per_workload_per_hour "
                f"({limits.max_actions_per_workload_per_hour})"
            )
        if extra:
            decisions[i] = Decision(decision="deny", reasons=decisions[i].reasons + extra)
            writes -= 1
            per_workload[workload] -= 1
            cordons -= isinstance(action, CordonAction)
    return decisions


# -- the checks ----------------------------------------------------------------------------


def _well_formed(action: Any) -> list[str]:
    """The action is one of the closed set and validates as such (even if built around it)."""
    name = getattr(action, "action", None)
    if name not in ACTION_NAMES:
        return [
            f"{name!r} is not in the closed action set ({', '.join(ACTION_NAMES)})"
            if name is not None
            else f"a {type(action).__name__} is not an action of the closed set"
        ]
    if name == "escalate":
        expected: type[Any] = EscalateAction
    else:
        expected = WRITE_KINDS[name][0]
    if type(action) is not expected:
        return [f"{name} must be a {expected.__name__}, not a {type(action).__name__}"]
    try:
        # model_construct() skips validation; re-validating the dump catches what it let by.
        ACTION_ADAPTER.validate_python(action.model_dump(mode="json"))
    except ValidationError as exc:
        return [f"{name} does not validate: {format_validation_error(exc)}"]
    kind = action.target.kind
    if kind in FORBIDDEN_KINDS:
        return [f"{kind} objects are never written"]
    if name != "escalate" and kind not in WRITE_KINDS[name][1]:
        allowed = ", ".join(sorted(WRITE_KINDS[name][1]))
        return [f"{name} acts on {allowed}, not on a {kind}"]
    return []


def _protected(action: Action, context: GateContext, limits: PolicyLimits) -> list[str]:
    namespaces = {action.target.namespace} if action.target.namespace else set()
    if context.workload is not None and context.workload.namespace:
        namespaces.add(context.workload.namespace)
    return [
        f"namespace {ns!r} is protected: never written"
        for ns in sorted(namespaces)
        if is_protected_namespace(ns, context.own_namespace, limits.protected_namespaces)
    ]


def _target_state(action: Action, context: GateContext) -> list[str]:
    t = action.target
    if context.target_exists is None:
        why = "; ".join(context.read_errors) or "no reading was made"
        return [f"the state of {t} could not be read ({why}): the gate fails closed"]
    if not context.target_exists:
        return [f"{t} does not exist"]
    if context.target_kind is not None and context.target_kind != t.kind:
        return [f"{t} is a {context.target_kind} in the cluster, not a {t.kind}"]
    return []


def _invariants(action: Action, context: GateContext, limits: PolicyLimits) -> list[str]:
    t = action.target
    ceiling = min(HARD_MAX_REPLICAS, limits.max_replicas)
    out: list[str] = []
    if isinstance(action, ScaleAction):
        wanted = action.params.replicas
        if wanted <= 0:
            out.append(f"scaling {t} to zero takes it down: never")
        if wanted > ceiling:
            out.append(f"{wanted} replicas is above the ceiling of {ceiling}")
        if context.current_replicas is None:
            out.append(f"the current replicas of {t} are unknown: the change cannot be bounded")
        elif abs(wanted - context.current_replicas) > limits.max_replica_change:
            out.append(
                f"scaling {t} from {context.current_replicas} to {wanted} changes more than "
                f"max_replica_change ({limits.max_replica_change})"
            )
    elif isinstance(action, SetHpaAction):
        for label, value in (
            ("min_replicas", action.params.min_replicas),
            ("max_replicas", action.params.max_replicas),
        ):
            if value is not None and value > ceiling:
                out.append(f"HPA {label} {value} is above the ceiling of {ceiling}")
    elif isinstance(action, DeletePodAction):
        out += _pod_deletion(action, context)
    elif isinstance(action, SetImageAction):
        container, image = action.params.container, action.params.image
        if context.images_ran is None:
            out.append(f"the images {t} ran are unknown: set_image only to an image it already ran")
        elif image not in context.images_ran.get(container, []):
            known = ", ".join(context.images_ran.get(container, [])) or "none known"
            out.append(
                f"image {image!r} was never run by container {container!r} of {t} "
                f"(images it ran: {known})"
            )
    elif isinstance(action, RollbackAction):
        wanted_rev = action.params.to_revision
        if context.revisions is None:
            out.append(f"the revisions of {t} are unknown: nothing to roll back to")
        elif wanted_rev not in context.revisions:
            known = ", ".join(str(r) for r in context.revisions) or "none"
            out.append(f"{t} has no revision {wanted_rev} (revisions: {known})")
        elif wanted_rev == context.current_revision:
            out.append(f"revision {wanted_rev} is already the current revision of {t}")
    elif isinstance(action, PatchServiceAction):
        out += _service_patch(action, context)
    elif isinstance(action, ShiftTrafficAction):
        out += _traffic_shift(action, context)
    elif isinstance(action, SetResourcesAction):
        if context.container_resources is None:
            out.append(f"the containers of {t} are unknown")
        elif action.params.container not in context.container_resources:
            have = ", ".join(sorted(context.container_resources)) or "none"
            out.append(f"{t} has no container {action.params.container!r} (containers: {have})")
    elif isinstance(action, CordonAction) and (
        context.schedulable_nodes is None or context.schedulable_nodes < 1
    ):
        out.append(
            f"cordoning node {t.name!r} would leave no Ready, schedulable node"
            if context.schedulable_nodes is not None
            else "how many nodes stay schedulable is unknown: cordon fails closed"
        )
    return out


def _service_patch(action: PatchServiceAction, context: GateContext) -> list[str]:
    """A Service is never pointed at nothing: its selector selects pods, its ports exist."""
    t = action.target
    if context.service_selected_pods is None:
        return [f"which pods {t} would select is unknown: the patch cannot be checked"]
    if context.service_selected_pods == 0:
        selector = action.params.selector
        return [
            f"{t} would select no pod"
            + (f" with selector {dict(selector)}" if selector is not None else "")
        ]
    declared = context.service_declared_ports
    if action.params.selector is None and declared:
        # The ports the selected pods declare are known only for the pods selected now; with
        # a new selector, a person checks the ports against the dry-run.
        missing = [
            str(fix.target_port)
            for fix in action.params.ports or []
            if fix.target_port not in declared
        ]
        if missing:
            have = ", ".join(str(p) for p in declared)
            return [f"targetPort {', '.join(missing)} is declared by no pod {t} selects ({have})"]
    return []


def _traffic_shift(action: ShiftTrafficAction, context: GateContext) -> list[str]:
    """A route keeps serving: the weights name its backends and do not all drop to zero."""
    t = action.target
    now = context.route_weights
    if now is None:
        return [f"the backends of rule {action.params.rule_index} of {t} are unknown"]
    unknown = sorted(set(action.params.weights) - set(now))
    if unknown:
        return [f"rule {action.params.rule_index} of {t} has no backend {', '.join(unknown)}"]
    after = {**now, **action.params.weights}
    if sum(after.values()) <= 0:
        return [f"every backend of {t} would get weight 0: the route would serve nothing"]
    return []


def _pod_deletion(action: DeletePodAction, context: GateContext) -> list[str]:
    t = action.target
    if context.workload is None:
        return [f"pod {t.name!r} has no controller: nothing would recreate it"]
    if context.pods is None:
        return [f"the pods of {context.workload} are unknown: one pod at a time cannot be checked"]
    me = next((p for p in context.pods if p.name == t.name), None)
    if me is None:
        return [f"pod {t.name!r} is not one of {context.workload}'s pods"]
    out: list[str] = []
    others_terminating = [p.name for p in context.pods if p.terminating and p.name != t.name]
    # A pod that is not ready serves nothing: deleting it takes no capacity away. A ready one
    # is a disruption, so it waits for the workload's other disruptions to finish, and for
    # its PDBs to allow one.
    if me.ready and not me.terminating:
        if others_terminating:
            out.append(
                f"{len(others_terminating)} other pod(s) of {context.workload} are already "
                f"terminating ({', '.join(sorted(others_terminating))}): one pod at a time"
            )
        ready_others = [p for p in context.pods if p.ready and not p.terminating and p != me]
        if not ready_others and len(context.pods) > 1:
            out.append(f"pod {t.name!r} is the last ready pod of {context.workload}")
        if context.pdbs is None:
            out.append(f"the PodDisruptionBudgets of pod {t.name!r} are unknown")
        else:
            for pdb in context.pdbs:
                if pdb.disruptions_allowed is None or pdb.disruptions_allowed < 1:
                    allowed = "no known" if pdb.disruptions_allowed is None else "0"
                    out.append(
                        f"PodDisruptionBudget {pdb.name!r} allows {allowed} disruptions: "
                        f"deleting ready pod {t.name!r} would break it"
                    )
    return out


def _lowered(action: SetResourcesAction, context: GateContext) -> list[str]:
    """The requests/limits the action sets below their current values."""
    now = (context.container_resources or {}).get(action.params.container) or {}
    out = []
    for section, values in (("requests", action.params.requests), ("limits", action.params.limits)):
        for key, value in (values.as_dict() if values else {}).items():
            current = (now.get(section) or {}).get(key)
            if current is None:
                continue
            try:
                if parse_quantity(value) < parse_quantity(current):
                    out.append(f"{section}.{key} from {current} to {value}")
            except ValueError:
                out.append(f"{section}.{key} (current value {current!r} unreadable)")
    return out


def _recent(context: GateContext) -> int:
    """Writes on the action's workload within the rate window before now."""
    since = context.now - RATE_WINDOW
    return sum(1 for a in context.executed_on_workload if a.at >= since)


def _rates(action: Action, context: GateContext, limits: PolicyLimits) -> list[str]:
    out: list[str] = []
    if context.undoes_own_change:
        return out
    done = len(context.executed_in_incident)
    if done >= limits.max_actions_per_incident:
        out.append(
            f"{done} writes already in this incident: max_actions_per_incident is "
            f"{limits.max_actions_per_incident}"
        )
    recent = _recent(context)
    if recent >= limits.max_actions_per_workload_per_hour:
        workload = context.workload or action.target
        out.append(
            f"{recent} writes on {workload} in the last hour: "
            f"max_actions_per_workload_per_hour is {limits.max_actions_per_workload_per_hour}"
        )
    if context.tokens_used > limits.max_tokens_per_incident:
        out.append(
            f"model budget spent: {context.tokens_used} tokens, above "
            f"max_tokens_per_incident ({limits.max_tokens_per_incident})"
        )
    if context.cost_usd > limits.max_cost_usd_per_incident:
        out.append(
            f"cost budget spent: ${context.cost_usd:.2f}, above max_cost_usd_per_incident "
            f"(${limits.max_cost_usd_per_incident:.2f})"
        )
    return out


def _approval_needed(action: Action, context: GateContext, limits: PolicyLimits) -> Decision:
    """Past every invariant and limit: does it run on its own, or wait for a person?"""
    if context.mode == "approve":
        return Decision(decision="needs_approval", reasons=["approve mode: every write waits"])
    why: list[str] = []
    if action.action not in limits.auto_actions:
        why.append(f"{action.action} is not in auto_actions")
    ns = action.target.namespace
    if ns is None:
        why.append(f"{action.target} is cluster-scoped: a person decides")
    elif not any(fnmatch.fnmatchcase(ns, pattern) for pattern in limits.autonomous_namespaces):
        why.append(f"namespace {ns!r} is not in autonomous_namespaces")
    conf = context.hypothesis_confidence
    if conf is None:
        why.append(f"the action serves no known hypothesis ({action.hypothesis_id!r})")
    elif conf < limits.min_confidence:
        why.append(
            f"hypothesis confidence {conf:.2f} is below min_confidence {limits.min_confidence}"
        )
    if isinstance(action, SetResourcesAction):
        lowered = _lowered(action, context)
        if lowered:
            why.append(f"it lowers {', '.join(lowered)}: less room can starve or kill the pods")
    window = in_freeze_window(limits.freeze_windows, context.now)
    if window is not None:
        why.append(f"change freeze in effect{': ' + window.reason if window.reason else ''}")
    if why:
        return Decision(decision="needs_approval", reasons=why)
    return Decision(
        decision="allow",
        reasons=[
            f"autonomous: {action.action} is in auto_actions, namespace {ns!r} is autonomous, "
            f"confidence {conf:.2f} >= {limits.min_confidence}"
        ],
    )
