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

from datetime import datetime
from typing import Any

from evals.episode import Episode
from state import Action, parse_action, parse_quantity
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


def _pods_of(ep: Episode, namespace: str | None, workload: str | None) -> list[dict[str, Any]]:
    """Pods (list_pods rows) in a namespace, or of one workload there (by name)."""
    args: dict[str, Any] = {"namespace": namespace} if namespace else {}
    data = ep.data("list_pods", args)
    pods: list[dict[str, Any]] = data if isinstance(data, list) else []
    if workload is None:
        return pods
    return [p for p in pods if str(p.get("workload") or "").split("/")[-1] == workload]


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


# -- playbook --------------------------------------------------------------------------------

#: A revision younger than this (cluster time) counts as "a recent rollout".
RECENT_ROLLOUT_S = 30 * 60
#: CPU use at or above this share of the limit counts as saturated.
SATURATED_PCT = 90.0
#: Waiting reasons a fresh bad revision shows.
BAD_START = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError")
#: The category a stock rule names for each start failure.
_START_CATEGORY = {
    "CreateContainerConfigError": ("Application", "Misconfiguration"),
    "ErrImagePull": ("Application", "Operation Error"),
    "ImagePullBackOff": ("Application", "Operation Error"),
}
#: Replicas the playbook will not scale beyond.
MAX_SCALE = 10


class Playbook:
    """Static rules of the Robusta kind: a symptom on a workload fires its stock fix there.

    Rules, in order, over the alert's namespace:
    - a container OOMKilled: double its memory limit;
    - a crash-looping, unpullable or unconfigurable pod whose Deployment rolled out
      recently: roll back to the previous revision; crash-looping otherwise: restart;
    - a pod on a NotReady node, or running but not ready for two minutes: delete it;
    - an HPA at its maximum: double the maximum;
    - a container at its CPU limit (no HPA on its workload): double the replicas.
    Each target gets each fix at most once per incident; nothing is ever escalated.
    """

    name = "playbook"

    def __init__(self) -> None:
        self.done: set[tuple[str, str, str]] = set()

    def respond(self, ep: Episode, round_: int) -> None:
        alert = ep.alert
        ns = alert.labels.get("namespace") if alert is not None else None
        pods = _pods_of(ep, ns, None)
        nodes = ep.data("list_nodes") or []
        down = {n["name"] for n in nodes if isinstance(n, dict) and n.get("ready") != "True"}
        for pod in pods:
            self._pod_rules(ep, pod, down)
        for hpa in ep.data("list_hpas", {"namespace": ns} if ns else {}) or []:
            if hpa.get("at_max") and hpa.get("max_replicas"):
                new_max = min(int(hpa["max_replicas"]) * 2, MAX_SCALE * 2)
                self._do(
                    ep,
                    ("HorizontalPodAutoscaler", hpa["namespace"], hpa["name"]),
                    ("Application", "Resource Exhaustion"),
                    "set_hpa",
                    max_replicas=new_max,
                )
        hpa_targets = {
            str(h.get("target", "")).split("/")[-1]
            for h in ep.data("list_hpas", {"namespace": ns} if ns else {}) or []
        }
        for row in ep.data("top_pods", {"namespace": ns} if ns else {}) or []:
            pct = row.get("cpu_pct_of_limit")
            if pct is None or pct < SATURATED_PCT:
                continue
            owner = next((p for p in pods if p.get("name") == row.get("pod")), None)
            if owner is None:
                continue
            pod_ns = str(owner.get("namespace") or "")
            kind, _, name = str(owner.get("workload") or "").partition("/")
            if kind not in ("Deployment", "StatefulSet") or name in hpa_targets:
                continue
            args = {"kind": kind, "namespace": pod_ns, "name": name}
            info = ep.data("describe_workload", args) or {}
            counts = info.get("replicas")
            replicas = int(counts.get("desired") or 1) if isinstance(counts, dict) else 1
            self._do(
                ep,
                (kind, pod_ns, name),
                ("Application", "Resource Exhaustion"),
                "scale",
                replicas=min(max(replicas * 2, replicas + 1), MAX_SCALE),
            )

    def _pod_rules(self, ep: Episode, pod: dict[str, Any], down: set[str]) -> None:
        ns = str(pod.get("namespace") or "")
        kind, _, name = str(pod.get("workload") or "").partition("/")
        containers = pod.get("containers") or []
        waiting = {str(c.get("waiting_reason") or "") for c in containers}
        # Between two crashes a crash-looping container shows as running: count its restarts.
        if any(int(c.get("restarts") or 0) >= 2 and c.get("last_termination") for c in containers):
            waiting.add("CrashLoopBackOff")
        oom = [
            c
            for c in containers
            if (c.get("last_termination") or {}).get("reason") == "OOMKilled"
            or (c.get("terminated") or {}).get("reason") == "OOMKilled"
        ]
        if pod.get("node") in down or pod.get("status") in ("Unknown", "Terminating"):
            self._do(
                ep, ("Pod", ns, pod["name"]), ("Hardware", "Network/Storage Issue"), "delete_pod"
            )
            return
        if not name or kind not in ("Deployment", "StatefulSet", "DaemonSet"):
            return
        if oom:
            limit = self._memory_limit(ep, ns, pod["name"], str(oom[0].get("name")))
            if limit is not None:
                self._do(
                    ep,
                    (kind, ns, name),
                    ("Application", "Resource Exhaustion"),
                    "set_resources",
                    container=str(oom[0].get("name")),
                    limits={"memory": f"{int(limit * 2 / 2**20)}Mi"},
                )
                return
        bad_start = waiting & set(BAD_START)
        if bad_start:
            previous = self._recent_previous_revision(ep, kind, ns, name)
            if previous is not None:
                self._do(
                    ep,
                    (kind, ns, name),
                    _START_CATEGORY.get(sorted(bad_start)[0], ("Application", "Code Defect")),
                    "rollback",
                    to_revision=previous,
                )
            elif "CrashLoopBackOff" in bad_start:
                self._do(ep, (kind, ns, name), ("Application", "Code Defect"), "restart")
            return
        ready, _, total = str(pod.get("ready") or "0/0").partition("/")
        if pod.get("status") == "Running" and ready != total and self._age_s(ep, pod) > 120:
            self._do(ep, ("Pod", ns, pod["name"]), ("Application", "Code Defect"), "delete_pod")

    # -- helpers ---------------------------------------------------------------------

    def _do(
        self,
        ep: Episode,
        target: tuple[str, str, str],
        category: tuple[str, str],
        action: str,
        **params: Any,
    ) -> None:
        kind, ns, name = target
        if (action, kind, f"{ns}/{name}") in self.done:
            return
        self.done.add((action, kind, f"{ns}/{name}"))
        subject = target
        if category[0] == "Hardware" and kind == "Pod":
            node = next(
                (p.get("node") for p in _pods_of(ep, ns, None) if p.get("name") == name), None
            )
            if node:
                subject = ("Node", "", str(node))
        elif kind == "Pod":
            owner = next((p for p in _pods_of(ep, ns, None) if p.get("name") == name), {}).get(
                "workload"
            )
            if owner:
                okind, _, oname = str(owner).partition("/")
                subject = (okind, ns, oname)
        ep.suspect(*subject, confidence=0.5)
        if ep.category is None:
            ep.category = category
        try:
            act = make_action(action, kind, ns or None, name, **params)
        except ValueError as exc:
            ep.notes.append(f"playbook could not build {action} on {kind} {ns}/{name}: {exc}")
            return
        ep.act(act)

    def _memory_limit(self, ep: Episode, ns: str, pod: str, container: str) -> float | None:
        info = ep.data("describe_pod", {"namespace": ns, "name": pod}) or {}
        for c in info.get("containers") or []:
            if c.get("name") == container:
                limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
                return parse_quantity(limit) if limit else None
        return None

    def _recent_previous_revision(self, ep: Episode, kind: str, ns: str, name: str) -> int | None:
        if kind != "Deployment":
            return None
        data = ep.data("rollout_history", {"namespace": ns, "name": name}) or {}
        current = data.get("current_revision")
        revs = data.get("revisions") or []
        now = ep.twin.cluster.clock.now()
        cur = next((r for r in revs if r.get("revision") == current), None)
        if cur is None or not cur.get("created"):
            return None
        created = datetime.fromisoformat(str(cur["created"]).replace("Z", "+00:00"))
        if (now - created).total_seconds() > RECENT_ROLLOUT_S:
            return None
        earlier = [int(r["revision"]) for r in revs if r.get("revision") != current]
        return max(earlier) if earlier else None

    def _age_s(self, ep: Episode, pod: dict[str, Any]) -> float:
        created = pod.get("created")
        if not created:
            return 0.0
        when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        return (ep.twin.cluster.clock.now() - when).total_seconds()
