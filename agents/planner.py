"""The planner: ranked root-cause hypotheses, and a plan of typed actions for the top ones.

It re-runs the localization over all the evidence (the log analyst's and the
dependency tracer's), decides each candidate's cause kind from its evidence
(general rules: an OOM kill, an image that cannot be pulled, a revision that
changed right before the onset, a saturated CPU under more traffic or not, a
Service that selects nothing...), gives it a confidence and an AIOpsLab
category, and plans from the cause kind with preconditions checked against
the evidence:

- roll back only when the workload's revision changed right before the onset;
- raise a memory limit only for an OOM kill, to a value derived from the peak;
  if that does not stop the kills (a leak grows into any limit), roll back to
  the latest revision that ran other images (read from the rollout history,
  however old the release; a revision our own action made is never a trigger);
- fix a Service's targetPort only to a port its pods declare, its selector only
  to labels a workload carries;
- scale up a workload scaled to zero to the replicas it had;
- restart only a process that is up but not serving (or holds stale credentials);
- delete the pods stuck on a NotReady node one at a time;
- shift traffic off a failing canary backend;
- raise an HPA's max when it is pinned under saturation;
- do nothing when the signals are healthy, and escalate when the fix is
  outside the action set. The least invasive action comes first.

It is re-entered after the safety critic asks for a revision (drop what it
objects to, or take the next, less invasive option) and after a failed
verification (fresh evidence, never the same action again, the next option
or hypothesis). Past outcomes from memory (`state.recall`) steer the choice
between options, and the reasoning says so.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, ValidationError

from agents import signals as sg
from agents.context import AgentContext
from agents.dependency_tracer import is_anomaly, localize
from agents.signals import Graph, Scope
from agents.transcript import entry
from policies.limits import PolicyLimits
from state import (
    Action,
    ActionStats,
    Candidate,
    Evidence,
    Hypothesis,
    IncidentState,
    ObjectRef,
    Plan,
    TokenUsage,
    TranscriptEntry,
    format_bytes,
    format_validation_error,
    parse_action,
    parse_quantity,
)

NODE = "planner"

#: A revision created up to this long after the first anomaly still "precedes" it (the
#: rollout itself produces the first failures within moments).
ROLLOUT_SLACK = timedelta(minutes=2)
#: How far back before the onset a revision change still counts as the change that broke it.
ROLLOUT_WINDOW = timedelta(minutes=60)
#: A new memory limit is the peak times this, rounded up to MEMORY_STEP.
MEMORY_HEADROOM = 1.5
MEMORY_STEP = 64 * 2**20
#: ... and never more than this multiple of the old limit in one step.
MEMORY_MAX_FACTOR = 4.0
#: Target CPU utilisation when sizing a scale-out.
TARGET_UTILISATION = 0.6
#: Hypotheses at or above this confidence are acted on; below, they are only reported.
ACT_CONFIDENCE = 0.5
#: Candidates below this score are not worth a hypothesis.
MIN_CANDIDATE = 0.15


# -- the node -------------------------------------------------------------------------------------


async def planner(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Rank root-cause hypotheses and plan typed actions (or none, or an escalation)."""
    ctx = runtime.context
    now = sg.now_utc(ctx)
    transcript: list[TranscriptEntry] = []
    fresh: list[Evidence] = []
    if _after_failed_verification(state):
        fresh = await refresh_evidence(state, ctx)
        transcript.append(
            entry(
                ctx,
                NODE,
                "observation",
                f"re-read the cluster after verification said {state.verifications[-1].status}: "
                f"{len(fresh)} new evidence items",
            )
        )
    # After a failed verification the fresh reading replaces the old one: what was true before
    # the action (a workload at zero replicas, a crash loop) may no longer be.
    evidence = fresh or list(state.evidence)
    oom_killed = deployments_with(evidence, "oom_killed")
    changed = deployments_with(evidence, "rollout_changed")
    read = await read_histories(ctx, [*oom_killed, *changed])
    histories = {s.key: read[s.key] for s in oom_killed if s.key in read}
    rollouts = {s.key: read[s.key] for s in changed if s.key in read}
    releases = release_evidence(histories, len(state.evidence) + len(fresh))
    diagnosis = diagnose(
        state,
        evidence,
        now,
        {k: {**h, "evidence_id": releases[k].id} for k, h in histories.items() if k in releases},
        ctx.limits,
        rollouts,
    )
    plan = make_plan(state, diagnosis, ctx.limits)
    tokens: TokenUsage | None = None
    if ctx.model_enabled:
        plan, extra, tokens = await with_model(ctx, state, diagnosis, plan, evidence)
        transcript += extra
    resolved = resolved_causes(state, plan)
    if resolved:
        plan = plan.model_copy(update={"resolved": resolved})
        fixed = [h for h in resolved if not state.plan or h not in state.plan.resolved]
        for h in fixed:
            transcript.append(
                entry(
                    ctx,
                    NODE,
                    "observation",
                    f"{h.root_cause} ({h.cause_kind}) is resolved: acted on in plan revision "
                    f"{state.plan.revision if state.plan else 0}, and the fresh reading no "
                    "longer shows it; what remains is another fault",
                    hypothesis=h.id,
                )
            )
    ctx.say(NODE, plan.reasoning.split("\n", 1)[0])
    for h in plan.hypotheses[:3]:
        transcript.append(
            entry(
                ctx,
                NODE,
                "hypothesis",
                f"{h.id} ({h.confidence:.2f}) {h.root_cause} [{h.cause_kind}; "
                f"{h.category.system_level} / {h.category.fault_type}]: {h.statement}",
                hypothesis=h.id,
                evidence_ids=h.evidence_ids,
            )
        )
    transcript.append(
        entry(
            ctx,
            NODE,
            "proposal",
            f"plan revision {plan.revision}: "
            + (
                "; ".join(f"{a.action} {a.target}" for a in plan.actions)
                if plan.actions
                else "no action"
            ),
            actions=[a.model_dump(mode="json") for a in plan.actions],
            reasoning=plan.reasoning,
            rejected=plan.rejected,
        )
    )
    update: dict[str, Any] = {"plan": plan, "transcript": transcript}
    if fresh or releases:
        # The release histories are evidence the fallback rollbacks cite (the critic checks).
        update["evidence"] = [*fresh, *releases.values()]
    if diagnosis.detected:
        update["detected_at"] = state.detected_at or now
        if plan.hypotheses:
            update["localized_at"] = state.localized_at or now
    elif state.detected_at is None:
        update["detected_at"] = None
    if tokens is not None:
        update["tokens"] = tokens
    return update


def _after_failed_verification(state: IncidentState) -> bool:
    return bool(state.verifications) and state.verifications[-1].status in ("not_yet", "worse")


def resolved_causes(state: IncidentState, plan: Plan) -> list[Hypothesis]:
    """The incident's causes fixed so far (Plan.resolved), as of `plan`.

    After a verification that found the cluster not yet recovered, a hypothesis of the
    previous plan is resolved when an action for it was applied and the fresh reading no
    longer supports it (no hypothesis of `plan` is about the same object): that fix worked,
    and what still fails is another fault. Earlier resolved causes carry on, unless the
    fault is back.
    """
    previous = state.plan
    if previous is None:
        return []
    still = {h.root_cause.key for h in plan.hypotheses}
    resolved = [h for h in previous.resolved if h.root_cause.key not in still]
    if not _after_failed_verification(state):
        return resolved
    applied = {
        e.action.hypothesis_id
        for e in state.executed
        if e.status == "applied" and e.plan_revision == previous.revision
    }
    known = {h.root_cause.key for h in resolved}
    for h in previous.ranked():
        if h.id in applied and h.root_cause.key not in still | known:
            resolved.append(h.model_copy(update={"resolved_in": previous.revision}))
            known.add(h.root_cause.key)
    return resolved


#: At most this many Deployments' rollout histories are read per planning round.
MAX_HISTORIES = 3


def deployments_with(evidence: Sequence[Evidence], signal: str) -> list[ObjectRef]:
    """The Deployments with evidence of `signal`, in evidence order, at most MAX_HISTORIES."""
    subjects: list[ObjectRef] = []
    for e in evidence:
        if e.signal == signal and e.subject.kind == "Deployment" and e.subject not in subjects:
            subjects.append(e.subject)
    return subjects[:MAX_HISTORIES]


async def read_histories(
    ctx: AgentContext, subjects: Sequence[ObjectRef]
) -> dict[str, dict[str, Any]]:
    """Each Deployment's whole rollout history (by key), read once however often it is asked.

    The specialists only report revisions from the last hour. An OOMKilled Deployment's
    history finds the revision that ran other code (a leak shipped in an older release); a
    Deployment whose revision changed lately needs it to tell whether the revision a rollback
    would return to ran before the trouble began or during it.
    """
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for s in dict.fromkeys(subjects):
        data = await sg.read(
            ctx, "rollout_history", {"namespace": s.namespace, "name": s.name}, problems
        )
        if isinstance(data, dict):
            out[s.key] = data
    return out


async def refresh_evidence(state: IncidentState, ctx: AgentContext) -> list[Evidence]:
    """Re-read the cluster with both specialists' procedures (after an action did not work)."""
    from agents.dependency_tracer import trace
    from agents.log_analyst import analyse

    # Side by side, as in the first round: each numbers its own evidence after state's.
    traced, analysed = await asyncio.gather(trace(state, ctx), analyse(state, ctx))
    return [*traced.evidence, *analysed.evidence]


# -- diagnosis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What an action does, before it is tied to a hypothesis and its evidence."""

    target: ObjectRef
    params: dict[str, Any]
    effect: str
    verification: str


def _spec(target: ObjectRef, params: dict[str, Any], effect: str, verification: str) -> Spec:
    return Spec(target, params, effect, verification)


@dataclass
class Option:
    """One way to act on a hypothesis, least invasive first."""

    action: str
    spec: Spec
    note: str = ""
    #: Evidence about this action's own target, cited first (a pod's, when the hypothesis
    #: is about its node).
    evidence_ids: list[str] = field(default_factory=list)

    def build(self, hypothesis_id: str, evidence_ids: list[str]) -> dict[str, Any]:
        ids = [*self.evidence_ids, *(e for e in evidence_ids if e not in self.evidence_ids)]
        return _action(
            self.action,
            self.spec.target,
            hypothesis_id,
            ids[:12],
            self.spec.params,
            self.spec.effect,
            self.spec.verification,
        )


@dataclass
class Assessment:
    """A candidate judged: its cause kind, confidence, and the ways to fix it."""

    hypothesis: Hypothesis
    options: list[Option] = field(default_factory=list)
    #: Other objects that share the blame (a network path's two ends, a Secret).
    also: list[ObjectRef] = field(default_factory=list)
    #: Why no write fixes it (then the plan escalates).
    escalate_reason: str = ""
    #: What an escalation names when the root cause is no kind an action takes (a policy's
    #: or a quota's victim).
    escalate_target: ObjectRef | None = None


@dataclass
class Diagnosis:
    assessments: list[Assessment]
    detected: bool
    #: Why the cluster counts as healthy, when it does.
    healthy_reason: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    graph: Graph = field(default_factory=Graph)


def scope_of(state: IncidentState) -> Scope:
    """The scope as the specialists saw it (no tool calls: namespaces from their evidence)."""
    namespaces: list[str] = []
    incident = state.incident
    if incident is not None and incident.namespace:
        namespaces.append(incident.namespace)
    for ev in state.evidence:
        if ev.subject.namespace and ev.subject.namespace not in namespaces:
            namespaces.append(ev.subject.namespace)
    labels = dict(incident.alert.labels) if incident and incident.alert else {}
    annotations = dict(incident.alert.annotations) if incident and incident.alert else {}
    default_ns = namespaces[0] if namespaces else ""
    services = tuple(
        sg.ref("Service", default_ns, labels[k])
        for k in sg.SERVICE_LABELS
        if labels.get(k) and sg.is_dns_label(labels[k])
    )
    workloads = tuple(
        sg.ref(kind or "Deployment", default_ns, labels[k])
        for k, kind in sg.WORKLOAD_LABELS.items()
        if labels.get(k) and sg.is_dns_name(labels[k])
    )
    if incident is not None and incident.workload is not None:
        workloads = (incident.workload, *workloads)
    return Scope(
        namespaces=tuple(namespaces),
        workloads=workloads,
        services=services,
        alert_kind=sg.alert_kind_of(labels, annotations),
        alert_start=incident.alert.starts_at if incident and incident.alert else None,
    )


def graph_of(state: IncidentState) -> Graph:
    g = Graph()
    findings = state.dependency_findings
    if findings is None:
        return g
    for node in findings.nodes:
        g.nodes[node.key] = node
    for edge in findings.edges:
        g.add(edge.source.key, edge.target.key, edge.via)
    return g


def _release_before(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """(the current revision, the latest earlier one that ran other images), if any."""
    revisions = sorted(
        (r for r in data.get("revisions") or [] if isinstance(r, Mapping)),
        key=lambda r: int(r.get("revision") or 0),
    )
    current = int(data.get("current_revision") or 0)
    cur = next((r for r in revisions if int(r.get("revision") or 0) == current), None)
    if cur is None or not cur.get("images"):
        return None
    images = dict(cur.get("images") or {})
    earlier = [
        r
        for r in revisions
        if 0 < int(r.get("revision") or 0) < current
        and r.get("images")
        and dict(r.get("images") or {}) != images
    ]
    return (cur, earlier[-1]) if earlier else None


def _images_text(rev: Mapping[str, Any]) -> str:
    return sg.clip(", ".join(f"{c}={i}" for c, i in dict(rev.get("images") or {}).items()), 200)


def release_evidence(histories: Mapping[str, Mapping[str, Any]], start: int) -> dict[str, Evidence]:
    """One evidence item per workload whose history has an earlier release (by key)."""
    out: dict[str, Evidence] = {}
    for key, data in histories.items():
        found = _release_before(data)
        subject = _ref_or_none(key)
        if found is None or subject is None:
            continue
        cur, prev = found
        out[key] = Evidence(
            id=f"plan-release-{start + len(out) + 1}",
            source="rollout",
            signal="release_history",
            subject=subject,
            summary=f"{subject} runs revision {cur.get('revision')} ({_images_text(cur)}, "
            f"created {cur.get('created')}, "
            f"{sg.clip(str(cur.get('change_cause') or 'no change-cause'), 120)}); revision "
            f"{prev.get('revision')} ran {_images_text(prev)} (created {prev.get('created')})",
            severity=0.2,
            data={
                "revision": cur.get("revision"),
                "release_revision": prev.get("revision"),
                "images": dict(cur.get("images") or {}),
                "release_images": dict(prev.get("images") or {}),
            },
            agent=NODE,
        )
    return out


def diagnose(
    state: IncidentState,
    evidence: Sequence[Evidence],
    now: datetime,
    histories: Mapping[str, Mapping[str, Any]] | None = None,
    limits: PolicyLimits | None = None,
    rollouts: Mapping[str, Mapping[str, Any]] | None = None,
) -> Diagnosis:
    """Hypotheses from all the evidence, best first, and whether there is a fault at all."""
    scope = scope_of(state)
    graph = graph_of(state)
    current = _current_evidence(evidence)
    candidates = localize(current, graph, scope)
    groups = sg.by_subject(current)
    ctx = _Ctx(
        groups=groups,
        graph=graph,
        scope=scope,
        now=now,
        evidence=current,
        histories=histories or {},
        own_writes=_own_writes(state),
        limits=limits,
        rollouts=rollouts or {},
    )
    assessments: list[Assessment] = []
    for c in candidates[:8]:
        if c.score < MIN_CANDIDATE:
            continue
        a = assess(c, ctx)
        if a is not None:
            assessments.append(a)
    assessments = _merge(assessments)
    assessments.sort(key=lambda a: (-a.hypothesis.confidence, a.hypothesis.root_cause.key))
    assessments = _with_accomplices(assessments)
    for i, a in enumerate(assessments, start=1):
        a.hypothesis = a.hypothesis.model_copy(update={"id": f"h{i}"})
    detected = any(a.hypothesis.confidence >= ACT_CONFIDENCE for a in assessments)
    healthy = ""
    if not detected:
        stopped = [e for e in evidence if e.signal in ("errors_stopped", "recovered_anomaly")]
        healthy = (
            "the signals are back within their baselines: "
            + "; ".join(sg.clip(e.summary, 160) for e in stopped[:3])
            if stopped
            else "no component in scope is anomalous: every signal is within its own baseline"
        )
    return Diagnosis(assessments, detected, healthy, candidates, list(current), graph)


def _current_evidence(evidence: Sequence[Evidence]) -> list[Evidence]:
    """The evidence with failures that already ended taken down to history: a service whose
    failing requests stopped (its traces or its logs say so) is no longer anomalous because
    its last minute's error ratio still shows them."""
    stopped = {e.subject.key for e in evidence if e.signal == "errors_stopped"}
    recovering: set[str] = set()
    for key in stopped:
        evs = [e for e in evidence if e.subject.key == key]
        # Only symptoms fade this way; a crash, a missing object, a saturated CPU do not.
        hard = [
            e
            for e in evs
            if e.signal in sg.INTRINSIC_SIGNALS
            and e.signal not in ("trace_origin", "log_silence")
            and e.severity >= 0.45
        ]
        if not hard:
            recovering.add(key)
    if not recovering:
        return list(evidence)
    out = []
    for e in evidence:
        if e.subject.key in recovering and e.signal in (
            "error_ratio",
            "trace_origin",
            "dependency_error",
            "latency",
            "edge_latency",
        ):
            out.append(e.model_copy(update={"severity": min(e.severity, 0.3)}))
        else:
            out.append(e)
    return out


@dataclass
class _Ctx:
    groups: Mapping[str, list[Evidence]]
    graph: Graph
    scope: Scope
    now: datetime
    evidence: Sequence[Evidence]
    #: Rollout histories (the rollout_history tool's data) by workload key.
    histories: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: When this incident first changed each workload (by key): revisions from then on are ours.
    own_writes: Mapping[str, datetime] = field(default_factory=dict)
    #: The policy's limits, to keep a planned scale within what the gate allows.
    limits: PolicyLimits | None = None
    #: Rollout histories of the Deployments whose revision changed lately, by key.
    rollouts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def of(self, key: str, *signals: str) -> list[Evidence]:
        evs = self.groups.get(key, [])
        return [e for e in evs if not signals or e.signal in signals]

    def related(self, subject: ObjectRef, *signals: str) -> list[Evidence]:
        """Evidence on the subject, the Services that front it, and (for a Service) what
        serves it."""
        keys = {subject.key} | self.graph.services_of(subject.key)
        if subject.kind == "Service":
            keys |= self.graph.backs.get(subject.key, set())
        out: list[Evidence] = []
        for k in keys:
            out += self.of(k, *signals)
        return out


#: A revision created this close before our own write's timestamp is still ours (the API
#: server's creation timestamps have whole seconds).
OWN_WRITE_SLACK = timedelta(seconds=2)


def _own_writes(state: IncidentState) -> dict[str, datetime]:
    out: dict[str, datetime] = {}
    for ex in state.executed:
        if ex.status in ("applied", "undone"):
            key = str(ex.action.target)  # the same text as ObjectRef.key
            out[key] = min(out.get(key, ex.at), ex.at)
    return out


def _ref_or_none(key: Any) -> ObjectRef | None:
    return sg.ref_from_key(key) if isinstance(key, str) and "/" in key else None


def _first(evs: Iterable[Evidence]) -> Evidence | None:
    return max(evs, key=lambda e: e.severity, default=None)


def _ids(*groups: Iterable[Evidence]) -> list[str]:
    out: list[str] = []
    for g in groups:
        for e in g:
            if e.id not in out:
                out.append(e.id)
    return out


def assess(c: Candidate, x: _Ctx) -> Assessment | None:
    """Decide a candidate's cause kind, confidence and fix options from its evidence."""
    s = c.subject
    key = s.key
    evs = x.of(key)
    has = {e.signal for e in evs if e.severity >= 0.4 or e.signal in sg.CONTEXT_SIGNALS}
    base = c.score
    support = [e for e in evs if e.severity >= 0.3]

    def hyp(
        kind: str, conf: float, statement: str, ids: list[str], root: ObjectRef = s
    ) -> Hypothesis:
        if c.explained_by:
            conf = min(conf, c.score + 0.1)
        return Hypothesis(
            id="h",
            root_cause=root,
            cause_kind=kind,
            category=sg.category_for(kind),
            confidence=round(max(0.0, min(0.99, conf)), 3),
            statement=statement,
            evidence_ids=ids[:12],
        )

    conf = min(0.97, base + 0.05 * min(3, len({e.source for e in support}) - 1))
    if s.kind == "Node":
        ev = _first(x.of(key, "node_not_ready"))
        if ev is None:
            return None
        return node_failure(
            c,
            ev,
            x,
            hyp(
                "node_failure",
                max(conf, 0.85),
                f"node {s.name} is NotReady; its pods stop serving until they are replaced "
                "elsewhere",
                _ids([ev], support),
            ),
        )
    if s.kind == "Service":
        return assess_service(c, x, evs, has, conf, hyp)
    if s.kind == "HTTPRoute":
        ev = _first(x.of(key, "canary_failing"))
        if ev is None:
            return None
        weights = dict(ev.data.get("weights") or {})
        failing = list(ev.data.get("failing") or [])
        new = shifted_weights(weights, failing)
        workloads = [sg.ref_from_key(str(k)) for k in ev.data.get("failing_workloads") or []]
        # The bad code is the canary's; the route is the lever that takes traffic off it.
        root = workloads[0] if len(workloads) == 1 else s
        backing = x.of(root.key) if root != s else []
        return Assessment(
            hyp(
                "bad_canary",
                max(conf, 0.85),
                f"the canary backend(s) {', '.join(failing)} of HTTPRoute {s.namespace}/{s.name} "
                "fail while the other backends are healthy: the canary's release is bad",
                _ids([ev], support, [e for e in backing if e.severity >= 0.45]),
                root=root,
            ),
            also=[s] if root != s else [],
            options=[
                Option(
                    "shift_traffic",
                    _spec(
                        s,
                        {"rule_index": int(ev.data.get("rule_index") or 0), "weights": new},
                        f"no traffic reaches {', '.join(failing)}; the route's errors stop",
                        f"the route's backends {', '.join(failing)} get 0% and the parent "
                        "Service's error ratio returns to baseline",
                    ),
                )
            ],
        )
    if s.kind == "NetworkPolicy":
        ev = _first(x.of(key, "network_policy_blocks"))
        if ev is None:
            return None
        return Assessment(
            hyp(
                "network_policy",
                max(conf, 0.75),
                f"NetworkPolicy {s.namespace}/{s.name} blocks the callers of "
                f"{ev.data.get('selects')}",
                _ids([ev], support),
            ),
            escalate_reason="changing or deleting a NetworkPolicy is outside the action set",
            escalate_target=_ref_or_none(ev.data.get("selects")),
        )
    if s.kind == "ResourceQuota":
        ev = _first(x.of(key, "quota_exhausted"))
        if ev is None:
            return None
        return Assessment(
            hyp(
                "quota_exhausted",
                max(conf, 0.7),
                f"ResourceQuota {s.namespace}/{s.name} is exhausted; new pods are refused",
                _ids([ev], support),
            ),
            escalate_reason="raising a ResourceQuota is outside the action set",
            escalate_target=_ref_or_none(ev.data.get("blocks")),
        )
    if s.kind == "HorizontalPodAutoscaler":
        ev = _first(x.of(key, "hpa_at_max"))
        if ev is None:
            return None
        return hpa_assessment(
            s,
            ev,
            x,
            hyp(
                "hpa_at_max",
                conf,
                f"HPA {s.namespace}/{s.name} is pinned at its max of {ev.data.get('max_replicas')}",
                _ids([ev], support),
            ),
        )
    if s.kind in sg.WORKLOAD_KINDS:
        return assess_workload(c, x, evs, has, conf, hyp)
    return None


def shifted_weights(weights: Mapping[str, Any], failing: Sequence[str]) -> dict[str, int]:
    """The route's weights with the failing backends at 0 and their share spread over the
    healthy ones in proportion to what they carried (evenly when they carried nothing), so the
    total stays what it was: 80/20 with the 20 failing becomes 100/0."""
    old = {str(b): max(0, int(w or 0)) for b, w in weights.items()}
    healthy = [b for b in old if b not in failing]
    if not healthy:
        return {b: 0 if b in failing else w for b, w in old.items()}
    total = sum(old.values()) or len(healthy)
    kept = sum(old[b] for b in healthy)
    new = {b: 0 for b in old}
    for b in healthy:
        new[b] = (old[b] * total) // kept if kept else total // len(healthy)
    # Integer division leaves a remainder: the largest healthy backend takes it.
    new[max(healthy, key=lambda b: (new[b], b))] += total - sum(new.values())
    return new


# -- Services -------------------------------------------------------------------------------------


def assess_service(
    c: Candidate,
    x: _Ctx,
    evs: list[Evidence],
    has: set[str],
    conf: float,
    hyp: Callable[..., Hypothesis],
) -> Assessment | None:
    s = c.subject
    support = [e for e in evs if e.severity >= 0.3]
    missing = _first(x.of(s.key, "missing_service"))
    if missing is not None:
        callers = sorted(
            {str(cl) for e in x.of(s.key, "missing_service") for cl in e.data.get("callers") or []}
        )
        return Assessment(
            hyp(
                "missing_service",
                max(conf, 0.85),
                f"Service {s.namespace}/{s.name} does not exist, yet "
                f"{', '.join(callers) or 'its callers'} call it: their requests fail to resolve it",
                _ids([missing], support),
            ),
            escalate_reason="recreating a deleted Service is outside the action set",
        )
    sel = _first(x.of(s.key, "selector_mismatch"))
    if sel is not None:
        suggestion = sel.data.get("suggestion") or {}
        h = hyp(
            "selector_mismatch",
            max(conf, 0.85),
            f"Service {s.namespace}/{s.name} selects {sel.data.get('selector')}, which no pod "
            "carries: it has no endpoints",
            _ids([sel], support),
        )
        if suggestion.get("selector"):
            new_sel = {str(k): str(v) for k, v in suggestion["selector"].items()}
            return Assessment(
                h,
                options=[
                    Option(
                        "patch_service",
                        _spec(
                            s,
                            {"selector": new_sel},
                            f"the Service selects {suggestion.get('workload')}'s pods again and "
                            "gets endpoints",
                            f"Service {s.name} has ready endpoints and its callers' error ratio "
                            "returns to baseline",
                        ),
                        note=f"the labels {new_sel} are carried by {suggestion.get('workload')}",
                    )
                ],
            )
        return Assessment(h, escalate_reason="no workload carries labels close to the selector")
    port = _first(x.of(s.key, "target_port_mismatch"))
    if port is not None:
        fixes = [f for f in port.data.get("fixes") or [] if f.get("target_port")]
        h = hyp(
            "service_port_mismatch",
            max(conf, 0.85),
            f"Service {s.namespace}/{s.name} targets a port its pods do not declare",
            _ids([port], support),
        )
        if fixes:
            ports = [{"port": int(f["port"]), "target_port": int(f["target_port"])} for f in fixes]
            return Assessment(
                h,
                options=[
                    Option(
                        "patch_service",
                        _spec(
                            s,
                            {"ports": ports},
                            "requests reach a port the pods listen on",
                            f"Service {s.name}'s callers stop failing; endpoints serve",
                        ),
                        note="only ports the selected pods declare",
                    )
                ],
            )
        return Assessment(h, escalate_reason="no declared container port to point the Service at")
    edge = _first(x.of(s.key, "edge_latency"))
    if edge is not None:
        return network_assessment(c, x, edge, conf, hyp)
    if c.explained_by:
        return None
    # No endpoints or failing calls with nothing wrong behind the Service: say what we see.
    ev = _first(e for e in evs if is_anomaly(e))
    if ev is None:
        return None
    return Assessment(
        hyp(
            "dependency_unavailable",
            min(conf, 0.6),
            f"Service {s.namespace}/{s.name} fails its callers: {sg.clip(ev.summary, 160)}",
            _ids([ev], support),
        ),
        escalate_reason="nothing behind the Service explains it; a person should look",
    )


# -- workloads ------------------------------------------------------------------------------------


def _onset(x: _Ctx, subject: ObjectRef) -> datetime:
    """When this component's trouble began: its anomalies, and those of what depends on it."""
    keys = {subject.key} | x.graph.services_of(subject.key) | x.graph.dependents(subject.key)
    onsets = [
        e.onset
        for k in keys
        for e in x.of(k)
        if e.onset is not None and is_anomaly(e) and e.signal not in sg.CONTEXT_SIGNALS
    ]
    if x.scope.alert_start is not None:
        onsets.append(x.scope.alert_start)
    return min(onsets) if onsets else x.now


def revision_before_onset(x: _Ctx, subject: ObjectRef) -> Evidence | None:
    """The workload's revision change, if it came right before the trouble began."""
    rev = _first(x.of(subject.key, "rollout_changed"))
    if rev is None or rev.onset is None or not rev.data.get("previous_revision"):
        return None
    ours = x.own_writes.get(subject.key)
    if ours is not None and rev.onset >= ours - OWN_WRITE_SLACK:
        # The revision this incident's own action made (more memory, say) is no trigger.
        return None
    onset = _onset(x, subject)
    if onset - ROLLOUT_WINDOW <= rev.onset <= onset + ROLLOUT_SLACK:
        return rev if target_ran_healthy(x, subject, rev, onset) else None
    return None


#: A revision created this long after the trouble began came after it (a fix on top of a bad
#: release), not before it; metrics onsets lead a revision's creation by less than this.
LATE_REVISION = timedelta(seconds=60)

#: Evidence that a container of a given image failed.
FAILED_SIGNALS = ("crash_loop", "oom_killed", "image_pull_error", "config_error")


def target_ran_healthy(x: _Ctx, s: ObjectRef, rev: Evidence, onset: datetime) -> bool:
    """Would the rollback return to a revision that did not fail? No when a container of the
    target's image (one the current revision changed) failed, and no when the current revision
    came well after the trouble began while the target was itself released shortly before it
    (nearer to the onset than the current one): then the trouble followed the target, and the
    current revision is the fix."""
    target = dict(rev.data.get("previous_images") or {})
    current = dict(rev.data.get("images") or {})
    for e in x.of(s.key, *FAILED_SIGNALS):
        container, image = e.data.get("container"), e.data.get("image")
        if image and container and target.get(container) == image != current.get(container):
            return False
    if rev.onset is None or rev.onset <= onset + LATE_REVISION:
        return True
    to = int(rev.data.get("previous_revision") or 0)
    history = x.rollouts.get(s.key) or {}
    entry = next(
        (
            r
            for r in history.get("revisions") or []
            if isinstance(r, Mapping) and int(r.get("revision") or 0) == to
        ),
        None,
    )
    created = sg.parse_time(entry.get("created")) if entry is not None else None
    if created is None:
        # Unknown when the target ran: returning to it is no better founded than staying.
        return False
    # The trouble followed the target's release when it began nearer to it than to the
    # current revision's.
    return not (onset - ROLLOUT_WINDOW <= created <= onset and onset - created < rev.onset - onset)


def assess_workload(
    c: Candidate,
    x: _Ctx,
    evs: list[Evidence],
    has: set[str],
    conf: float,
    hyp: Callable[..., Hypothesis],
) -> Assessment | None:
    s = c.subject
    support = [e for e in evs if e.severity >= 0.3]
    rev = revision_before_onset(x, s)
    rollback = _rollback_options(s, rev) if rev is not None else []
    rev_note = (
        f"; revision {rev.data.get('revision')} "
        f"({sg.clip(str(rev.data.get('change_cause') or ''), 80)}) "
        f"was rolled out at {rev.onset:%H:%M:%S}, right before"
        if rev is not None and rev.onset is not None
        else ""
    )

    zero = _first(x.of(s.key, "scaled_to_zero"))
    if zero is not None and zero.severity >= 0.5:
        previous = _previous_replicas(x, s)
        return Assessment(
            hyp(
                "scaled_to_zero",
                max(conf, 0.85),
                f"{s} is scaled to 0 replicas while "
                f"{', '.join(zero.data.get('callers') or []) or 'its Services'} depend on it",
                _ids([zero], support),
            ),
            options=[
                Option(
                    "scale",
                    _spec(
                        s,
                        {"replicas": previous},
                        f"{previous} replica(s) of {s.name} run again and its Services get "
                        "endpoints",
                        f"{s.name} has {previous}/{previous} ready replicas and its callers' "
                        "error ratio "
                        "returns to baseline",
                    ),
                    note=f"back to {previous} replica(s), what it ran before",
                )
            ],
        )

    pull = _first(x.of(s.key, "image_pull_error"))
    if pull is not None:
        image = pull.data.get("image") or "its image"
        h = hyp(
            "image_pull",
            max(conf, 0.85),
            f"{s} cannot pull {image}{rev_note}",
            _ids([pull], (rev and [rev]) or [], support),
        )
        if rollback:
            return Assessment(h, options=rollback)
        return Assessment(h, escalate_reason=f"no earlier revision ran a pullable image for {s}")

    probe = _first(e for e in x.of(s.key, "probe_misconfigured") if e.severity >= 0.5)
    if probe is not None:
        # The probe is set wrong (a port the container does not declare), not the process: the
        # kubelet kills or unreadies healthy containers. Only the revision before the change
        # had it right; editing the probe is outside the action set.
        h = hyp(
            "probe_misconfigured",
            max(conf, 0.85),
            f"{sg.clip(probe.summary, 240)}{rev_note}",
            _ids([probe], [rev] if rev else [], support),
        )
        if rollback:
            return Assessment(h, options=rollback)
        return Assessment(
            h,
            escalate_reason=f"correcting {s}'s probe is outside the action set and no recent "
            "revision had it right",
        )

    cfg = [e for e in x.of(s.key, "config_error") if e.severity >= 0.5]
    crash = _first(x.of(s.key, "crash_loop", "rollout_stuck", "replicas_unavailable"))
    if cfg and (crash is not None or any(e.data.get("at_start") for e in cfg)):
        key = next((e.data.get("missing_key") for e in cfg if e.data.get("missing_key")), None)
        what = f"configuration {key!r}" if key else "its configuration"
        if rollback:
            return Assessment(
                hyp(
                    "config_error",
                    max(conf, 0.85),
                    f"{s}'s new pods exit because {what} is missing{rev_note}",
                    _ids(cfg, [rev] if rev else [], support),
                ),
                options=rollback,
            )
        return Assessment(
            hyp(
                "missing_config",
                max(conf, 0.8),
                f"{s}'s pods cannot start: {what} is missing and no recent revision changed it",
                _ids(cfg, support),
            ),
            escalate_reason=f"adding the missing {what} is outside the action set",
        )

    pending = _first(x.of(s.key, "pending"))
    if pending is not None and pending.severity >= 0.5:
        message = str(pending.data.get("message") or "")
        quota = pending.data.get("quota") or ("quota" in message.lower() or None)
        if rollback and not quota:
            return Assessment(
                hyp(
                    "bad_rollout",
                    max(conf, 0.8),
                    f"{s}'s new pods cannot be placed ({sg.clip(message, 160)}){rev_note}",
                    _ids([pending], [rev] if rev else [], support),
                ),
                options=rollback,
            )
        kind = "quota_exhausted" if quota else "unschedulable"
        return Assessment(
            hyp(
                kind,
                max(conf, 0.75),
                f"{s}'s pods cannot be "
                + ("created: a ResourceQuota is exhausted" if quota else "scheduled")
                + f" ({sg.clip(message, 200)})",
                _ids([pending], support),
            ),
            escalate_reason="more quota or capacity is outside the action set",
            escalate_target=s,
        )

    oom = _first(x.of(s.key, "oom_killed"))
    growth = _first(x.of(s.key, "memory_growth"))
    if oom is not None:
        if rollback and rev is not None and not rev.data.get("changed_images"):
            # The new revision kept the images: its resources (or config) changed, not its code.
            return Assessment(
                hyp(
                    "oom",
                    max(conf, 0.85),
                    f"{s} is OOMKilled since a change that kept its images (a lower memory "
                    f"limit or a heavier configuration){rev_note}",
                    _ids([oom], [growth] if growth else [], [rev], support),
                ),
                options=rollback,
            )
        if rollback:
            return Assessment(
                hyp(
                    "memory_leak",
                    max(conf, 0.85),
                    f"{s} is OOMKilled: its memory grows until the limit{rev_note}",
                    _ids([oom], [growth] if growth else [], [rev] if rev else [], support),
                ),
                options=rollback,
            )
        return oom_assessment(c, x, oom, growth, conf, hyp, support)

    auth = _first(x.of(s.key, "auth_error"))
    if auth is not None and auth.severity >= 0.45:
        spec = _first(x.of(s.key, "container_spec"))
        secrets = list((spec.data.get("secrets") if spec else None) or [])
        dep = auth.data.get("dependency")
        a = Assessment(
            hyp(
                "auth_failure",
                max(conf, 0.8),
                f"{s} fails to authenticate"
                + (f" to {dep}" if dep else "")
                + (
                    f"; its credentials come from Secret {', '.join(secrets)}, which may have been "
                    "rotated after its pods started"
                    if secrets
                    else ""
                ),
                _ids([auth], support),
            ),
            options=[_restart_option(s, "new pods read the current credentials")],
            also=[sg.ref("Secret", s.namespace, name) for name in secrets[:2]],
        )
        return a

    sat = _first(x.of(s.key, "saturation"))
    if sat is not None:
        traffic = _first(x.related(s, "traffic_increase"))
        if traffic is None:
            # A dependency without its own request metrics (a database): its callers' load.
            traffic = _first(
                e
                for k in x.graph.dependents(s.key)
                for e in x.related(x.graph.nodes.get(k) or sg.ref_from_key(k), "traffic_increase")
            )
        cpu_growth = (sat.data.get("recent") or 0.0) / max(
            float(sat.data.get("baseline") or 0.0), 0.01
        )
        factor = float(traffic.data.get("factor") or 1.0) if traffic else 1.0
        if traffic is not None and factor >= 1.5 and cpu_growth <= 1.5 * factor:
            return load_assessment(c, x, sat, traffic, conf, hyp, support)
        if rollback:
            return Assessment(
                hyp(
                    "bad_rollout",
                    max(conf, 0.8),
                    f"{s} burns CPU since a new revision{rev_note}",
                    _ids([sat], [rev] if rev else [], support),
                ),
                options=rollback,
            )
        return Assessment(
            hyp(
                "cpu_runaway",
                max(conf, 0.8),
                f"{s}'s CPU is pinned at its limit without more traffic "
                f"(x{cpu_growth:.1f} CPU for x{factor:.1f} requests): a runaway process slows "
                "every request it serves",
                _ids([sat], support),
            ),
            options=[_restart_option(s, "new processes start without the runaway work")],
        )

    crash_ev = _first(x.of(s.key, "crash_loop"))
    if crash_ev is not None and crash_ev.severity >= 0.5:
        if rollback:
            return Assessment(
                hyp(
                    "bad_rollout",
                    max(conf, 0.85),
                    f"{s}'s containers keep crashing (exit {crash_ev.data.get('exit_code')})"
                    f"{rev_note}",
                    _ids([crash_ev], [rev] if rev else [], support),
                ),
                options=rollback,
            )
        if not c.explained_by:
            return Assessment(
                hyp(
                    "crash_loop",
                    conf,
                    f"{s}'s containers keep crashing (exit {crash_ev.data.get('exit_code')}) "
                    "and no "
                    "recent revision or dependency explains it",
                    _ids([crash_ev], support),
                ),
                escalate_reason="a crash loop with no earlier revision to return to needs a fix "
                "in code or configuration",
            )

    stuck = _first(x.of(s.key, "pods_on_failed_node"))
    if stuck is not None and not [
        e for e in evs if e.signal not in ("pods_on_failed_node",) and is_anomaly(e)
    ]:
        node = stuck.data.get("node")
        if node:
            nref = sg.ref("Node", None, str(node))
            nev = _first(x.of(nref.key, "node_not_ready"))
            if nev is not None:
                return node_failure(
                    c,
                    nev,
                    x,
                    hyp(
                        "node_failure",
                        max(conf, 0.8),
                        f"{s}'s pods sit on NotReady node {node}",
                        _ids([nev, stuck]),
                        root=nref,
                    ),
                )

    edge = _first(x.of(s.key, "edge_latency"))
    symptoms = [
        e for e in evs if e.signal in ("error_ratio", "latency", "trace_origin") and is_anomaly(e)
    ]
    if edge is not None and not symptoms_inside(x, s):
        return network_assessment(c, x, edge, conf, hyp)

    if symptoms or has & {"probe_failure", "not_ready", "rollout_stuck", "replicas_unavailable"}:
        if c.explained_by:
            return None
        if rollback:
            return Assessment(
                hyp(
                    "bad_rollout",
                    max(conf, 0.8),
                    f"{s} fails requests since a new revision"
                    f": {sg.clip((_first(symptoms) or evs[0]).summary, 140)}{rev_note}",
                    _ids(symptoms, [rev] if rev else [], support),
                ),
                options=rollback,
            )
        down = scaled_down_before_onset(x, s)
        if down is not None and not x.of(s.key, "crash_loop", "oom_killed", "image_pull_error"):
            # Fewer replicas right before the trouble: put them back before anything bolder.
            return scaled_down_assessment(c, x, down, conf, hyp, [*symptoms, *support])
        if hung(x, s, evs):
            lat = _first(x.of(s.key, "latency"))
            return Assessment(
                hyp(
                    "hang",
                    max(conf + 0.1, 0.7),
                    f"{s}'s pods are up but do not answer: requests time out"
                    + (f" (p99 {sg.fmt_ms(lat.data.get('recent'))})" if lat else "")
                    + ", nothing it depends on fails, and it stopped logging",
                    _ids(symptoms, x.of(s.key, "log_silence", "probe_failure"), support),
                ),
                options=[_restart_option(s, "fresh processes serve requests again")],
            )
        lat = _first(x.of(s.key, "latency"))
        if lat is not None and not any(e.signal == "error_ratio" for e in symptoms):
            return Assessment(
                hyp(
                    "network_latency",
                    max(conf, 0.7),
                    f"{s} answers, but slowly (p99 {sg.fmt_ms(lat.data.get('recent'))}, baseline "
                    f"{sg.fmt_ms(lat.data.get('baseline'))}) with no errors, no saturation, no "
                    "crash and no recent revision: time is lost on its path, not in a process a "
                    "restart would fix",
                    _ids([lat], symptoms, support),
                ),
                escalate_reason="no action in the set makes a slow path fast",
            )
        return Assessment(
            hyp(
                "error_rate",
                conf,
                f"{s} fails requests itself ({sg.clip((_first(symptoms) or evs[0]).summary, 160)}) "
                "and no recent revision or dependency explains it",
                _ids(symptoms, support),
            ),
            escalate_reason="errors that originate in the code with no earlier revision to roll "
            "back to need a person",
        )
    return None


def symptoms_inside(x: _Ctx, s: ObjectRef) -> bool:
    """Does the callee itself show trouble (so slow calls to it are its fault, not the path's)?"""
    for e in x.of(s.key):
        if e.severity < 0.45:
            continue
        if e.signal in ("saturation", "crash_loop", "oom_killed", "not_ready", "log_silence"):
            return True
        if e.signal == "trace_origin" and e.data.get("failure") == "slow":
            return True
        if e.signal in ("latency", "error_ratio") and e.data.get("service"):
            # The callee's own (server-side) metrics show it: it is slow, not the network.
            return True
    return False


def hung(x: _Ctx, s: ObjectRef, evs: Sequence[Evidence]) -> bool:
    """Up but not serving: requests time out, pods run without crashing, CPU is not the cause."""
    if x.of(s.key, "crash_loop", "oom_killed", "image_pull_error"):
        return False
    lat = _first(x.of(s.key, "latency"))
    slow = lat is not None and float(lat.data.get("recent") or 0) >= 5 * max(
        float(lat.data.get("baseline") or 0), 1.0
    )
    timeouts = any(e.data.get("failure") == "timeout" for e in evs if is_anomaly(e))
    failing = any(e.signal == "error_ratio" and is_anomaly(e) for e in evs)
    quiet = bool(x.of(s.key, "log_silence"))
    probes = any(e.data.get("failure") == "timeout" for e in x.of(s.key, "probe_failure"))
    # Slow but answering (no failed requests, still logging) is not a hang: a restart would
    # not make a slow path fast.
    return (slow or timeouts or probes) and (failing or quiet or probes)


def _previous_replicas(x: _Ctx, s: ObjectRef) -> int:
    for e in x.of(s.key, "scaled_to_zero"):
        n = e.data.get("previous_replicas")
        if isinstance(n, int) and n > 0:
            return n
    return 1


def scaled_down_before_onset(x: _Ctx, s: ObjectRef) -> Evidence | None:
    """The operator's scale-down of the workload (not to zero), if it came before the trouble
    began (within the rollout window) and the workload still runs that few replicas."""
    down = _first(x.of(s.key, "scaled_down"))
    if down is None or down.onset is None:
        return None
    before = down.data.get("previous_replicas")
    after = down.data.get("replicas")
    if not isinstance(before, int) or not isinstance(after, int) or not 0 < after < before:
        return None
    ours = x.own_writes.get(s.key)
    if ours is not None and down.onset >= ours - OWN_WRITE_SLACK:
        return None  # our own scale is no trigger
    onset = _onset(x, s)
    if onset - ROLLOUT_WINDOW <= down.onset <= onset + ROLLOUT_SLACK:
        return down
    return None


def scaled_down_assessment(
    c: Candidate,
    x: _Ctx,
    down: Evidence,
    conf: float,
    hyp: Callable[..., Hypothesis],
    support: Sequence[Evidence],
) -> Assessment:
    """Scale back to the replicas it ran before the scale-down, within the policy's limits."""
    s = c.subject
    before = int(down.data["previous_replicas"])
    after = int(down.data["replicas"])
    target = before
    if x.limits is not None:
        target = min(target, x.limits.max_replicas, after + x.limits.max_replica_change)
    target = max(target, after + 1)
    per = _first(e for e in x.of(s.key, "traffic_increase") if e.data.get("per_replica"))
    load = (
        f"; each replica serves x{float(per.data.get('factor') or 1.0):.1f} the requests it did"
        if per is not None
        else ""
    )
    when = f" at {down.onset:%H:%M:%S}" if down.onset is not None else ""
    return Assessment(
        hyp(
            "scaled_down",
            max(conf, 0.8),
            f"{s} was scaled down from {before} to {after} replica(s){when}, right before its "
            f"trouble began, and the rest cannot carry the load{load}",
            _ids([down], [per] if per else [], support),
        ),
        options=[
            Option(
                "scale",
                _spec(
                    s,
                    {"replicas": target},
                    f"{target} replicas of {s.name} share the load again, as before the scale-down",
                    f"{s.name} has {target}/{target} ready replicas and its p99 latency and "
                    "error ratio are back to baseline",
                ),
                note=f"back to {target} replica(s) (it ran {before} before the scale-down)",
                evidence_ids=[down.id],
            )
        ],
    )


def _rollback_options(s: ObjectRef, rev: Evidence) -> list[Option]:
    to = int(rev.data.get("previous_revision") or 0)
    if s.kind != "Deployment" or to < 1:
        return []
    options = [
        Option(
            "rollback",
            _spec(
                s,
                {"to_revision": to},
                f"{s.name} runs revision {to} again, the one that worked before the change",
                f"{s.name}'s rollout completes on revision {to}'s template, all replicas ready, "
                "no new restarts, its error ratio back to baseline",
            ),
            note=f"revision {to} ran before the change",
        )
    ]
    changed = dict(rev.data.get("changed_images") or {})
    for container, image in list(changed.items())[:1]:
        if image:
            options.append(
                Option(
                    "set_image",
                    _spec(
                        s,
                        {"container": container, "image": image},
                        f"container {container} runs {image} again",
                        f"{s.name}'s pods run {image}, ready, with no new restarts",
                    ),
                    note=f"the image revision {to} ran",
                )
            )
    return options


def _restart_option(s: ObjectRef, why: str) -> Option:
    return Option(
        "restart",
        _spec(
            s,
            {},
            f"{s.name}'s pods are replaced one by one: {why}",
            f"{s.name} has all replicas ready on new pods and its error ratio and latency are "
            "back to baseline",
        ),
        note="a rolling restart keeps serving while it replaces pods",
    )


def oom_assessment(
    c: Candidate,
    x: _Ctx,
    oom: Evidence,
    growth: Evidence | None,
    conf: float,
    hyp: Callable[..., Hypothesis],
    support: list[Evidence],
) -> Assessment:
    s = c.subject
    container = str(oom.data.get("container") or "")
    spec = _first(x.of(s.key, "container_spec"))
    limits = (
        ((spec.data.get("containers") or {}).get(container) or {}).get("limits") if spec else None
    )
    requests = (
        ((spec.data.get("containers") or {}).get(container) or {}).get("requests") if spec else None
    )
    h = hyp(
        "oom",
        max(conf, 0.85),
        f"{s} container {container} is OOMKilled: it needs more memory than its limit"
        + (f" of {limits.get('memory')}" if limits and limits.get("memory") else ""),
        _ids([oom], [growth] if growth else [], support),
    )
    old = None
    try:
        old = parse_quantity(str(limits.get("memory"))) if limits and limits.get("memory") else None
    except ValueError:
        old = None
    if old is None or not container:
        return Assessment(h, escalate_reason="the container's memory limit is not known")
    peak_ratio = float(growth.data.get("peak_ratio") or 1.0) if growth else 1.0
    peak = max(peak_ratio, 1.0) * old
    new = max(peak * MEMORY_HEADROOM, old * MEMORY_HEADROOM)
    new = min(new, old * MEMORY_MAX_FACTOR)
    new = math.ceil(new / MEMORY_STEP) * MEMORY_STEP
    new_text = format_bytes(new)
    params: dict[str, Any] = {"container": container, "limits": {"memory": new_text}}
    if requests and requests.get("memory"):
        try:
            if parse_quantity(str(requests["memory"])) > new:
                params["requests"] = {"memory": new_text}
        except ValueError:
            pass
    note = (
        f"peak {format_bytes(peak)} against the limit {format_bytes(old)}: "
        f"x{MEMORY_HEADROOM} headroom, at most x{MEMORY_MAX_FACTOR:g} the old limit"
    )
    return Assessment(
        h,
        options=[
            Option(
                "set_resources",
                _spec(
                    s,
                    params,
                    f"container {container} gets {new_text} of memory and stops being OOMKilled",
                    f"{s.name} has all replicas ready and no new OOMKilled restarts in the window",
                ),
                note=note,
            ),
            *_earlier_release(s, x),
        ],
    )


def _earlier_release(s: ObjectRef, x: _Ctx) -> list[Option]:
    """The rollback to the latest revision that ran other images than the current one: the
    fallback when more memory does not stop the kills (a leak shipped in the current release
    only grows into any limit). Never the first choice on its own evidence: more memory is the
    less invasive fix for an undersized limit; memory of past incidents may put it first."""
    data = x.histories.get(s.key)
    found = _release_before(data) if s.kind == "Deployment" and data else None
    if data is None or found is None:
        return []
    prev = found[1]
    to = int(prev.get("revision") or 0)
    ran = _images_text(prev)
    cite = [str(data["evidence_id"])] if data.get("evidence_id") else []
    return [
        Option(
            "rollback",
            _spec(
                s,
                {"to_revision": to},
                f"{s.name} runs revision {to} again, the release before its current images",
                f"{s.name}'s rollout completes on revision {to}'s template, all replicas ready, "
                "no new OOMKilled restarts",
            ),
            note=f"revision {to} ran {ran}: if the current release leaks, more memory only "
            "delays the next kill",
            evidence_ids=cite,
        )
    ]


def load_assessment(
    c: Candidate,
    x: _Ctx,
    sat: Evidence,
    traffic: Evidence,
    conf: float,
    hyp: Callable[..., Hypothesis],
    support: list[Evidence],
) -> Assessment:
    s = c.subject
    factor = float(traffic.data.get("factor") or 1.0)
    replicas = int(sat.data.get("replicas") or 1)
    baseline_util = max(float(sat.data.get("baseline") or 0.0), 0.05)
    needed = math.ceil(replicas * baseline_util * factor / TARGET_UTILISATION)
    needed = max(replicas + 1, needed)
    h = hyp(
        "saturation",
        max(conf, 0.8),
        f"{s} is saturated: requests grew x{factor:.1f} and its CPU is at its limit with "
        f"{replicas} replica(s)",
        _ids([sat, traffic], support),
    )
    hpa = next(
        (e for e in x.evidence if e.signal == "hpa_at_max" and e.data.get("target") == s.key),
        None,
    )
    if hpa is not None:
        top = max(needed, int(hpa.data.get("max_replicas") or 1) + 1)
        return hpa_assessment(hpa.subject, hpa, x, h, top)
    managed = next(
        (e for e in x.evidence if e.signal == "hpa_present" and e.data.get("target") == s.key),
        None,
    )
    down = scaled_down_before_onset(x, s)
    if managed is None and down is not None:
        return scaled_down_assessment(c, x, down, conf, hyp, [sat, traffic, *support])
    if managed is not None:
        # An autoscaler would undo a manual scale: raise its floor (and its ceiling if needed).
        low = max(needed, int(managed.data.get("min_replicas") or 1))
        high = max(low, int(managed.data.get("max_replicas") or low))
        return Assessment(
            h,
            options=[
                Option(
                    "set_hpa",
                    _spec(
                        managed.subject,
                        {"min_replicas": low, "max_replicas": high},
                        f"the autoscaler keeps at least {low} replicas of {s.name}",
                        f"{s.name} has {low} ready replicas and its p99 latency is back to "
                        "baseline",
                    ),
                    note=f"min {managed.data.get('min_replicas')} -> {low}",
                    evidence_ids=[managed.id],
                )
            ],
        )
    return Assessment(
        h,
        options=[
            Option(
                "scale",
                _spec(
                    s,
                    {"replicas": needed},
                    f"{needed} replicas share the load at about "
                    f"{int(100 * TARGET_UTILISATION)}% CPU",
                    f"{s.name} has {needed}/{needed} ready replicas and its p99 latency is back "
                    "to baseline",
                ),
                note=f"{replicas} replicas at {100 * baseline_util:.0f}% CPU before a "
                f"x{factor:.1f} "
                f"load -> {needed} at {int(100 * TARGET_UTILISATION)}%",
            )
        ],
    )


def hpa_assessment(
    s: ObjectRef, ev: Evidence, x: _Ctx, h: Hypothesis, top: int | None = None
) -> Assessment:
    current_max = int(ev.data.get("max_replicas") or 1)
    new_max = top or max(current_max + 1, math.ceil(current_max * 1.5))
    return Assessment(
        h,
        options=[
            Option(
                "set_hpa",
                _spec(
                    s,
                    {"max_replicas": new_max},
                    f"the autoscaler may add replicas up to {new_max}",
                    "the HPA is no longer at its max and the workload's latency returns to "
                    "baseline",
                ),
                note=f"max {current_max} -> {new_max}",
            )
        ],
    )


def network_assessment(
    c: Candidate, x: _Ctx, edge: Evidence, conf: float, hyp: Callable[..., Hypothesis]
) -> Assessment:
    s = c.subject
    caller = str(edge.data.get("caller") or "")
    also = [sg.ref_from_key(caller)] if "/" in caller else []
    return Assessment(
        hyp(
            "network_latency",
            max(conf, 0.7),
            f"calls from {caller or 'its callers'} to {s} are slow on the way "
            f"({edge.data.get('wait_ms', 0):.0f} ms) while {s} itself is healthy: the network "
            "path between them",
            _ids([edge]),
        ),
        also=also,
        escalate_reason="no action in the set fixes a slow network path",
    )


def node_failure(c: Candidate, ev: Evidence, x: _Ctx, h: Hypothesis) -> Assessment:
    node = h.root_cause.name
    pods = [p for p in ev.data.get("pods") or [] if not p.get("deleting")]
    # Pods on the alerting path first, one per workload (never two pods of one workload at once).
    focus = {r.name for r in x.scope.focus}
    seen: set[str] = set()
    ordered = []
    for p in sorted(
        pods,
        key=lambda p: (p.get("workload", "").rsplit("/", 1)[-1] not in focus, str(p.get("pod"))),
    ):
        w = str(p.get("workload"))
        if w in seen or w.split("/")[0] not in sg.WORKLOAD_KINDS:
            continue
        seen.add(w)
        ordered.append(p)
    options: list[Option] = []
    for p in ordered:
        target = sg.ref("Pod", str(p.get("namespace")), str(p.get("pod")))
        options.append(
            Option(
                "delete_pod",
                _spec(
                    target,
                    {},
                    f"{p.get('workload')} gets a replacement pod on a healthy node now instead "
                    "of after the "
                    "eviction timeout",
                    f"{p.get('workload')} has all replicas ready on other nodes",
                ),
                note="one pod per workload",
                evidence_ids=[
                    e.id
                    for e in x.of(str(p.get("workload")), "pods_on_failed_node")
                    if e.data.get("pod") == p.get("pod")
                ]
                + [e.id for e in x.of(str(p.get("workload"))) if is_anomaly(e)][:3],
            )
        )
    taints = [str(t) for t in ev.data.get("taints") or []]
    if not ev.data.get("unschedulable") and not any(
        "unreachable" in t or "not-ready" in t for t in taints
    ):
        nref = sg.ref("Node", None, node)
        options.append(
            Option(
                "cordon",
                _spec(
                    nref,
                    {},
                    f"no new pod lands on {nref.name}",
                    f"{nref.name} is unschedulable",
                ),
                note="the node carries no NoSchedule taint yet",
            )
        )
    return Assessment(
        h,
        options=options,
        escalate_reason="" if options else f"the pods on {node} are already being replaced",
    )


# -- merging and planning -------------------------------------------------------------------------


def _with_accomplices(assessments: list[Assessment]) -> list[Assessment]:
    """Objects that share a hypothesis's blame (a network path's other end, the Secret behind
    a failed login) become hypotheses of their own, just below it, with nothing to act on."""
    out: list[Assessment] = []
    named = {a.hypothesis.root_cause.key for a in assessments}
    for a in assessments:
        out.append(a)
        for other in a.also:
            if other.key in named:
                continue
            named.add(other.key)
            h = a.hypothesis
            out.append(
                Assessment(
                    h.model_copy(
                        update={
                            "root_cause": other,
                            "confidence": round(max(0.0, h.confidence - 0.05), 3),
                            "statement": f"shares the blame with {h.root_cause}: {h.statement}",
                        }
                    ),
                    escalate_reason=a.escalate_reason or "acted on through the main hypothesis",
                )
            )
    return out


def _merge(assessments: list[Assessment]) -> list[Assessment]:
    """One hypothesis per root cause (the most confident)."""
    best: dict[str, Assessment] = {}
    for a in assessments:
        k = a.hypothesis.root_cause.key
        if k not in best or a.hypothesis.confidence > best[k].hypothesis.confidence:
            best[k] = a
    return list(best.values())


def _action(
    name: str,
    target: ObjectRef,
    hypothesis_id: str,
    evidence_ids: list[str],
    params: dict[str, Any],
    effect: str,
    verification: str,
) -> dict[str, Any]:
    t: dict[str, Any] = {"kind": target.kind, "name": target.name}
    if target.kind != "Node":
        t["namespace"] = target.namespace
    return {
        "action": name,
        "target": t,
        "hypothesis_id": hypothesis_id,
        "evidence_ids": evidence_ids,
        "params": params,
        "expected_effect": effect,
        "verification": verification,
    }


#: Kinds an action's target may have (state.Target).
TARGET_KINDS = (
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Pod",
    "Service",
    "HorizontalPodAutoscaler",
    "HTTPRoute",
    "Node",
)


def _escalation(a: Assessment, reason: str, all_ids: list[str]) -> dict[str, Any]:
    h = a.hypothesis
    root = h.root_cause
    target = root if root.kind in TARGET_KINDS else a.escalate_target
    if target is None or target.kind not in TARGET_KINDS:
        target = sg.ref("Service", root.namespace or "default", root.name)
    findings = [f"{h.id} ({h.confidence:.2f}) {root} [{h.cause_kind}]: {h.statement}"]
    findings += [f"also implicated: {o}" for o in a.also]
    return _action(
        "escalate",
        target,
        h.id,
        h.evidence_ids or all_ids[:5],
        {
            "summary": sg.clip(
                f"{h.category.system_level} / {h.category.fault_type}: {h.statement}. "
                f"Why a person: {reason}.",
                1500,
            ),
            "findings": [sg.clip(f, 1500) for f in findings],
            "severity": "critical",
        },
        "a person is paged with the root cause and the evidence; nothing in the cluster changes",
        "the escalation is delivered; recovery is up to the person",
    )


@dataclass(frozen=True)
class _Tried:
    action: str
    target: str


def _tried(state: IncidentState) -> set[_Tried]:
    """Writes already made that did not recover the cluster (never repeat them)."""
    out = set()
    for ex in state.executed:
        if ex.status in ("applied", "undone", "failed", "dry_run_failed"):
            out.add(_Tried(ex.action.action, str(ex.action.target)))
    return out


def _objections(state: IncidentState) -> list[str]:
    if state.verdict is not None and state.verdict.verdict == "revise" and state.plan is not None:
        return [r.lower() for r in state.verdict.reasons]
    return []


_ACTION_INDEX = re.compile(r"\baction (\d+)\b")


def _objected(
    option_json: Mapping[str, Any], reasons: Sequence[str], previous: Plan | None
) -> bool:
    """Does the critic's revise verdict object to this action? A reason that names an action
    by its index ("action 1 (scale ...): ...") objects to that action only; one without an
    index objects to an action whose name and target it both mentions."""
    if not reasons or previous is None:
        return False
    target = option_json.get("target") or {}
    text = _target_text(option_json).lower()
    name = str(option_json.get("action") or "")
    for r in reasons:
        m = _ACTION_INDEX.search(r)
        if m is not None:
            i = int(m.group(1))
            if i < len(previous.actions):
                a = previous.actions[i]
                if (
                    a.action == name
                    and a.target.name == target.get("name")
                    and a.target.kind == target.get("kind")
                ):
                    return True
            continue
        if name in r and (text in r or str(target.get("name") or "?") in r):
            return True
    return False


def _stats_for(state: IncidentState, cause_kind: str) -> dict[str, ActionStats]:
    if state.recall is None:
        return {}
    return {st.action: st for st in state.recall.stats if st.cause_kind == cause_kind}


def _order_by_memory(
    options: list[Option], stats: Mapping[str, ActionStats]
) -> tuple[list[Option], str]:
    """Options that failed before for this cause kind go last; ones that worked, first (ties
    keep the least-invasive order)."""
    if not stats:
        return options, ""

    def weight(o: Option) -> int:
        st = stats.get(o.action)
        if st is None:
            return 0
        if st.failures > st.successes:
            return 1
        if st.successes > st.failures:
            return -1
        return 0

    ordered = sorted(options, key=weight)
    notes = []
    for o in options:
        st = stats.get(o.action)
        if st is not None:
            verdict = (
                "worked"
                if st.successes > st.failures
                else "failed"
                if st.failures > st.successes
                else "was mixed"
            )
            notes.append(
                f"{o.action} {verdict} before for this kind of failure "
                f"({st.successes} recovered, {st.failures} not)"
            )
    return ordered, "; ".join(notes)


def make_plan(state: IncidentState, d: Diagnosis, limits: PolicyLimits) -> Plan:
    """Actions for the hypotheses worth acting on, least invasive first."""
    revision = 0
    if state.plan is not None and (_objections(state) or _after_failed_verification(state)):
        revision = state.plan.revision + 1
    hypotheses = [a.hypothesis for a in d.assessments][:6]
    if not d.detected:
        return Plan(
            hypotheses=hypotheses,
            actions=[],
            reasoning=f"No action: {d.healthy_reason}. "
            + (
                "Weaker leads, not acted on: "
                + "; ".join(
                    f"{h.root_cause} ({h.confidence:.2f}, {h.cause_kind})" for h in hypotheses[:3]
                )
                if hypotheses
                else ""
            ),
            revision=revision,
        )
    tried = _tried(state)
    objections = _objections(state)
    all_ids = [e.id for e in d.evidence if e.severity >= 0.45]
    actions: list[dict[str, Any]] = []
    lines: list[str] = []
    max_actions = max(
        1,
        limits.max_actions_per_incident - len([e for e in state.executed if e.status == "applied"]),
    )
    acted_roots: list[str] = []
    for a in d.assessments:
        h = a.hypothesis
        if h.confidence < ACT_CONFIDENCE:
            continue
        if acted_roots and not _independent(a, d, acted_roots, d.graph):
            continue
        options, memory_note = _order_by_memory(a.options, _stats_for(state, h.cause_kind))
        chosen: list[dict[str, Any]] = []
        skipped: list[str] = []
        for o in options:
            data = o.build(h.id, h.evidence_ids or all_ids[:5])
            label = _Tried(o.action, _target_text(data))
            if label in tried:
                skipped.append(
                    f"{o.action} {label.target} was already tried and did not recover it"
                )
                continue
            if _objected(data, objections, state.plan):
                skipped.append(f"{o.action} {label.target}: the safety critic objected")
                continue
            chosen.append(data)
            if o.action != "delete_pod":
                # One change per hypothesis at a time; deleting stuck pods goes one per workload.
                break
        objected_only = bool(skipped) and all("critic objected" in x for x in skipped)
        if not chosen and objected_only and acted_roots:
            # A second fault whose action the critic objects to waits for the next round
            # (after verification) rather than being escalated now.
            lines.append(
                f"{h.id} {h.root_cause} ({h.cause_kind}, confidence {h.confidence:.2f}): "
                "deferred: " + "; ".join(skipped) + "."
            )
            continue
        line = (
            f"{h.id} {h.root_cause} ({h.cause_kind}, confidence {h.confidence:.2f}): {h.statement}."
        )
        if memory_note:
            line += f" Memory: {memory_note}."
        if skipped:
            line += " Skipped: " + "; ".join(skipped) + "."
        if chosen:
            notes = [o.note for o in options if o.note and o.action == chosen[0]["action"]]
            line += f" Plan: {chosen[0]['action']} {_target_text(chosen[0])}" + (
                f" ({notes[0]})" if notes else ""
            )
            if len(chosen) > 1:
                line += f" and {len(chosen) - 1} more of the same kind"
            line += "."
            actions += chosen
        else:
            reason = a.escalate_reason or (
                "every option was tried or objected to"
                if a.options
                else "no action in the set fixes it"
            )
            line += f" Escalate: {reason}."
            actions.append(_escalation(a, reason, all_ids))
        lines.append(line)
        acted_roots.append(h.root_cause.key)
        if len(acted_roots) >= 2:
            break
    parsed, rejected = _validate(actions[:max_actions])
    header = (
        f"Fault detected; {len(hypotheses)} hypotheses, acting on {len(acted_roots)}."
        if acted_roots
        else "Fault detected, but no hypothesis is confident enough to act on; escalating."
    )
    if not acted_roots and d.assessments:
        top = d.assessments[0]
        esc, rej = _validate([_escalation(top, "the evidence is not conclusive", all_ids)])
        parsed += esc
        rejected += rej
    return Plan(
        hypotheses=hypotheses,
        actions=parsed,
        reasoning=header + "\n" + "\n".join(lines),
        revision=revision,
        rejected=rejected,
    )


#: Cause kinds that are faults in their own right wherever they sit on a call chain (a second
#: fault at once); load and latency kinds on one chain are usually one fault's echo.
SELF_EVIDENT = frozenset(
    {
        "scaled_to_zero",
        "image_pull",
        "config_error",
        "missing_config",
        "memory_leak",
        "oom",
        "bad_rollout",
        "selector_mismatch",
        "service_port_mismatch",
        "missing_service",
        "node_failure",
        "bad_canary",
        "auth_failure",
        "crash_loop",
    }
)


def _independent(a: Assessment, d: Diagnosis, acted: Sequence[str], graph: Graph) -> bool:
    """A second fault at once: confident, not explained by one already acted on, and either
    self-evident or on another branch of the call graph."""
    h = a.hypothesis
    if h.confidence < 0.7 or h.statement.startswith("shares the blame"):
        return False
    cand = next((c for c in d.candidates if c.subject == h.root_cause), None)
    if cand is not None and any(e.key in acted for e in cand.explained_by):
        return False
    if h.cause_kind in SELF_EVIDENT:
        return True
    key = h.root_cause.key
    related = graph.dependencies(key) | graph.dependents(key) | graph.services_of(key)
    return not any(k in related for k in acted)


def _target_text(data: Mapping[str, Any]) -> str:
    t = data.get("target") or {}
    ns = t.get("namespace")
    return f"{t.get('kind')}/{ns + '/' if ns else ''}{t.get('name')}"


def _validate(actions: Sequence[Mapping[str, Any]]) -> tuple[list[Action], list[str]]:
    parsed: list[Action] = []
    rejected: list[str] = []
    for data in actions:
        try:
            parsed.append(parse_action(dict(data)))
        except ValueError as exc:
            rejected.append(str(exc))
        except ValidationError as exc:  # pragma: no cover - parse_action wraps these
            rejected.append(format_validation_error(exc))
    return parsed, rejected


class PlanProposal(BaseModel):
    """What the model answers; each action is checked on its own (one bad action must not
    sink the others), so actions arrive as plain objects and are validated here."""

    hypotheses: list[Hypothesis] = Field(default_factory=list, max_length=8)
    actions: list[dict[str, Any]] = Field(default_factory=list, max_length=10)
    reasoning: str = Field(default="", max_length=4000)


#: The read tools the model may call.
MODEL_TOOLS = (
    "describe_workload",
    "rollout_history",
    "list_services",
    "list_pods",
    "list_hpas",
    "list_httproutes",
    "service_metrics",
    "workload_resource_metrics",
)


def model_prompt(
    state: IncidentState, diagnosis: Diagnosis, plan: Plan, evidence: Sequence[Evidence]
) -> str:
    lines = [
        f"Incident: {sg.quote_untrusted(state.incident.title if state.incident else '', 200)}",
        f"Mode: {state.incident.mode if state.incident else 'observe'}.",
        "",
        "Evidence (ids you may cite):",
        sg.evidence_digest(evidence),
        "",
        "Ranked candidates: "
        + ("; ".join(f"{c.subject} ({c.score:.2f})" for c in diagnosis.candidates[:6]) or "none"),
    ]
    if state.recall is not None and (state.recall.similar or state.recall.stats):
        lines.append("Memory:")
        for p in state.recall.similar[:3]:
            lines.append(
                f"  similar incident {p.incident_id} ({p.similarity:.2f}): {p.cause_kind} at "
                f"{p.root_cause}; actions {', '.join(p.actions[:3])}; outcome {p.outcome}"
            )
        for st in state.recall.stats[:10]:
            lines.append(
                f"  {st.cause_kind} / {st.action}: {st.successes} recovered, {st.failures} not"
            )
    if state.plan is not None and state.verdict is not None and state.verdict.verdict == "revise":
        lines.append(
            "The safety critic asked for a revision of the previous plan: "
            + "; ".join(sg.quote_untrusted(r, 300) for r in state.verdict.reasons)
        )
    if state.verifications:
        v = state.verifications[-1]
        lines.append(
            f"The last verification said {v.status}: "
            + "; ".join(c for c in v.checks if not c.startswith("OK"))[:800]
        )
    tried = sorted({f"{t.action} {t.target}" for t in _tried(state)})
    if tried:
        lines.append("Already tried (do not repeat): " + ", ".join(tried))
    lines += [
        "",
        "Deterministic proposal (a baseline you may improve on):",
        plan.model_dump_json(include={"hypotheses", "actions", "reasoning"})[:6000],
    ]
    return "\n".join(lines)


def validate_proposal(
    answer: PlanProposal,
    deterministic: Plan,
    diagnosis: Diagnosis,
    evidence: Sequence[Evidence],
    state: IncidentState,
) -> tuple[Plan | None, list[str]]:
    """The model's plan, keeping only what the evidence supports and what validates."""
    known_ids = {e.id for e in evidence}
    known = sg.named_objects(evidence)
    if state.dependency_findings is not None:
        known |= {n.key for n in state.dependency_findings.nodes}
    dropped: list[str] = []
    hypotheses: list[Hypothesis] = []
    for h in answer.hypotheses:
        if h.root_cause.key not in known:
            dropped.append(f"hypothesis {h.id}: {h.root_cause} is no object the evidence names")
            continue
        if any(x.id == h.id for x in hypotheses):
            dropped.append(f"hypothesis {h.id}: duplicate id")
            continue
        bad = [i for i in h.evidence_ids if i not in known_ids]
        if bad:
            dropped.append(f"hypothesis {h.id}: evidence ids {', '.join(bad)} do not exist")
        hypotheses.append(
            h.model_copy(
                update={
                    "evidence_ids": [i for i in h.evidence_ids if i in known_ids],
                    "statement": sg.clip(h.statement, 1000),
                }
            )
        )
    if not hypotheses:
        return None, [*dropped, "no hypothesis of the model's is supported by the evidence"]
    hyp_ids = {h.id for h in hypotheses}
    tried = _tried(state)
    actions: list[Action] = []
    rejected = list(deterministic.rejected)
    for i, raw in enumerate(answer.actions):
        try:
            action = parse_action(raw)
        except ValueError as exc:
            rejected.append(f"model action {i}: {exc}")
            dropped.append(f"action {i} does not validate")
            continue
        why = _unsupported(action, hyp_ids, known_ids, known, tried, diagnosis)
        if why:
            rejected.append(f"model action {i} ({action.action} {action.target}): {why}")
            dropped.append(f"action {i}: {why}")
            continue
        actions.append(action)
    plan = Plan(
        hypotheses=hypotheses,
        actions=actions,
        reasoning=sg.clip(answer.reasoning, 4000) or deterministic.reasoning,
        revision=deterministic.revision,
        rejected=rejected,
    )
    return plan, dropped


def _unsupported(
    action: Action,
    hyp_ids: set[str],
    known_ids: set[str],
    known: set[str],
    tried: set[_Tried],
    diagnosis: Diagnosis,
) -> str:
    if action.hypothesis_id not in hyp_ids:
        return f"serves hypothesis {action.hypothesis_id!r}, which is not among the valid ones"
    bad = [i for i in action.evidence_ids if i not in known_ids]
    if bad or not action.evidence_ids:
        return f"cites evidence that does not exist ({', '.join(bad) or 'none cited'})"
    if action.action == "escalate":
        return ""
    t = action.target
    key = str(t)
    owner = None
    if t.kind == "Pod":
        parts = t.name.rsplit("-", 2)
        owner = f"Deployment/{t.namespace}/{parts[0]}" if len(parts) == 3 else None
    named = (
        key in known
        or (owner is not None and owner in known)
        or any(e.data.get("pod") == t.name for e in diagnosis.evidence)
        or any(
            isinstance(p, dict) and p.get("pod") == t.name
            for e in diagnosis.evidence
            for p in e.data.get("pods") or []
        )
    )
    if not named:
        return f"{t} is no object the evidence names"
    if _Tried(action.action, key) in tried:
        return "it was already tried and did not recover the cluster"
    if not diagnosis.detected:
        return "the signals are healthy: no write is warranted"
    return ""


async def with_model(
    ctx: AgentContext,
    state: IncidentState,
    diagnosis: Diagnosis,
    plan: Plan,
    evidence: Sequence[Evidence],
) -> tuple[Plan, list[TranscriptEntry], TokenUsage]:
    """The model's plan, validated against the evidence and the action models; else the
    deterministic plan."""
    from agents.llm import run_specialist

    fallback = PlanProposal(
        hypotheses=plan.hypotheses,
        actions=[a.model_dump(mode="json") for a in plan.actions],
        reasoning=plan.reasoning,
    )
    run = await run_specialist(
        ctx,
        node=NODE,
        system_prompt=sg.load_prompt("planner"),
        user_prompt=model_prompt(state, diagnosis, plan, evidence),
        tool_names=MODEL_TOOLS,
        output_type=PlanProposal,
        fallback=fallback,
    )
    transcript = list(run.transcript)
    if run.fell_back:
        return plan, transcript, run.tokens
    proposed, dropped = validate_proposal(run.result, plan, diagnosis, evidence, state)
    if dropped:
        transcript.append(
            entry(
                ctx,
                NODE,
                "note",
                f"dropped {len(dropped)} part(s) of the model's plan the evidence does not "
                "support: " + "; ".join(dropped[:8]),
                dropped=dropped,
            )
        )
    if proposed is None:
        transcript.append(
            entry(
                ctx,
                NODE,
                "fallback",
                "planner: using the deterministic plan: the model's hypotheses are not supported "
                "by the evidence",
            )
        )
        return plan, transcript, run.tokens
    return proposed, transcript, run.tokens
