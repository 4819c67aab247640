"""Post-mortems, built from an incident's transcript alone.

The learner writes every incident's transcript as `transcript.json` (a
state.IncidentReport) in `settings.incident_dir(id)`. This module turns one
into the post-mortem a team would file, in three formats:
- Markdown, after the Google SRE book's example postmortem (Summary, Impact,
  Root Causes, Trigger, Resolution, Detection, Action Items, Lessons Learned,
  Timeline, Supporting information);
- JSON, a `Postmortem` whose schema is published in docs/postmortem.schema.json;
- HTML, one self-contained page (no script, no external asset, a
  Content-Security-Policy that forbids both) with the timeline and the service
  graph drawn in inline SVG, the failing path from the symptoms to the root
  cause highlighted.

Everything in a transcript that came from the cluster or a person (log lines,
alert annotations, summaries) is untrusted text: it is escaped in every
format, and never interpreted.
"""

from __future__ import annotations

import html
import itertools
import json
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from state import (
    DependencyFindings,
    Evidence,
    ExecutedAction,
    GateDecision,
    Hypothesis,
    IncidentReport,
    ObjectRef,
    format_validation_error,
)
from tools.redact import redact

SCHEMA_VERSION: Literal["1"] = "1"
Format = Literal["md", "json", "html"]
FORMATS: tuple[Format, ...] = ("md", "json", "html")
SUFFIX: dict[Format, str] = {"md": "md", "json": "json", "html": "html"}

#: Availability objective assumed for the error-budget estimate when the alert names none
#: (99.9% over 30 days: 43.2 minutes of total outage).
DEFAULT_SLO = 0.999
SLO_WINDOW_DAYS = 30
#: Evidence at or above this severity counts as a symptom (a service affected): weaker items
#: (a traffic drop downstream of a failure, a quiet log) are context, not impact.
AFFECTED_SEVERITY = 0.5
#: Timeline entries kept in a post-mortem; a longer transcript is cut and says so.
MAX_TIMELINE = 500
#: Time to mitigate above which "it took long" is a lesson (seconds).
SLOW_MITIGATION_S = 30 * 60


# -- the post-mortem, as data ----------------------------------------------------------


class ErrorBudget(BaseModel):
    slo_target: float = Field(description="availability objective assumed, e.g. 0.999")
    window_days: int
    budget_minutes: float = Field(description="minutes of total outage the window allows")
    error_ratio: float | None = Field(description="peak error ratio seen in the evidence")
    bad_minutes: float | None = Field(description="error ratio x duration, in minutes")
    burned_fraction: float | None = Field(description="share of the window's budget burned")
    method: str


class Impact(BaseModel):
    affected_services: list[str]
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    ongoing: bool = Field(description="no recovery was confirmed by the end of the transcript")
    error_budget: ErrorBudget
    description: str


class Detection(BaseModel):
    trigger: str
    alert_name: str | None
    alert_summary: str | None
    alert_started_at: datetime | None
    opened_at: datetime
    detected_at: datetime | None
    time_to_detect_s: float | None
    description: str


class EvidenceRef(BaseModel):
    id: str
    source: str
    signal: str
    subject: str
    summary: str
    severity: float
    onset: datetime | None = None


class RootCause(BaseModel):
    component: str
    cause_kind: str
    system_level: str
    fault_type: str
    confidence: float
    statement: str
    evidence: list[EvidenceRef]


class ActionTaken(BaseModel):
    action: str
    target: str
    params: dict[str, Any]
    status: str
    at: datetime
    decision: str | None = Field(description="the policy gate's decision, when it made one")
    approved_by: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    error: str
    expected_effect: str
    verification: str


class VerificationResult(BaseModel):
    status: str
    checks: list[str]
    window_s: float
    at: datetime


class Resolution(BaseModel):
    actions: list[ActionTaken]
    verifications: list[VerificationResult]
    mitigated_at: datetime | None
    time_to_mitigate_s: float | None
    description: str


class TimelineEvent(BaseModel):
    at: datetime
    offset_s: float = Field(description="seconds since the incident opened (negative: before)")
    node: str
    kind: str
    summary: str


class ActionItem(BaseModel):
    description: str
    type: Literal["mitigate", "prevent", "detect", "process"]
    owner: str
    priority: Literal["P1", "P2", "P3"]


class Lessons(BaseModel):
    went_well: list[str]
    went_wrong: list[str]
    got_lucky: list[str]


class ModelUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cost_usd: float
    model_used: bool
    fallbacks: int = Field(description="times a node fell back to its deterministic result")


class GraphNode(BaseModel):
    id: str
    kind: str
    namespace: str
    name: str
    anomalous: bool
    root_cause: bool
    on_failing_path: bool


class GraphLink(BaseModel):
    source: str
    target: str
    via: str
    on_failing_path: bool


class ServiceGraph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphLink]
    failing_path: list[str] = Field(description="node ids from the symptom to the root cause")


class Timings(BaseModel):
    detect_s: float | None
    localize_s: float | None
    mitigate_s: float | None


class RecalledIncident(BaseModel):
    incident_id: str
    similarity: float
    cause_kind: str
    outcome: str


class Postmortem(BaseModel):
    """A blameless post-mortem of one incident (schema: docs/postmortem.schema.json)."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    incident_id: str
    title: str
    date: datetime
    authors: list[str]
    status: str
    outcome: str | None
    mode: str
    summary: str
    impact: Impact
    detection: Detection
    root_cause: RootCause | None
    #: More causes of the same incident, each confirmed by its own fix (two faults at once:
    #: the first fixed is `root_cause`, the ones fixed after it are here).
    further_causes: list[RootCause] = Field(default_factory=list)
    other_hypotheses: list[RootCause]
    trigger: str
    resolution: Resolution
    lessons: Lessons
    action_items: list[ActionItem]
    timeline: list[TimelineEvent]
    timeline_truncated: bool
    timings: Timings
    model_usage: ModelUsage
    service_graph: ServiceGraph
    recalled: list[RecalledIncident]
    evidence: list[EvidenceRef]


def postmortem_schema() -> dict[str, Any]:
    """The JSON schema of a post-mortem (published as docs/postmortem.schema.json)."""
    schema = Postmortem.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://kubemedic.dev/schemas/postmortem-v1.json"
    return schema


# -- building it -----------------------------------------------------------------------


class PostmortemError(Exception):
    """The transcript cannot be read or is not one; the message names the file."""


def load_report(path: Path) -> IncidentReport:
    """A transcript.json (or the incident directory holding one) as an IncidentReport."""
    if path.is_dir():
        path = path / "transcript.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PostmortemError(f"no transcript at {path}: {exc.strerror or exc}") from exc
    try:
        return IncidentReport.model_validate_json(text)
    except ValidationError as exc:
        raise PostmortemError(
            f"{path} is not an incident transcript: {format_validation_error(exc)}"
        ) from exc


def _redacted(value: Any) -> Any:
    """Every string with secrets masked (tools.redact): a transcript should hold none, and a
    post-mortem, which travels further, must not be where that fails."""
    if isinstance(value, str):
        return redact(value)[0]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return round((b - a).total_seconds(), 3)


def _ref(e: Evidence) -> EvidenceRef:
    return EvidenceRef(
        id=e.id,
        source=e.source,
        signal=e.signal,
        subject=str(e.subject),
        summary=e.summary,
        severity=e.severity,
        onset=e.onset,
    )


def _cause(h: Hypothesis, evidence: dict[str, Evidence]) -> RootCause:
    return RootCause(
        component=str(h.root_cause),
        cause_kind=h.cause_kind,
        system_level=h.category.system_level,
        fault_type=h.category.fault_type,
        confidence=h.confidence,
        statement=h.statement,
        evidence=[_ref(evidence[i]) for i in h.evidence_ids if i in evidence],
    )


def _confirmed(report: IncidentReport) -> int:
    """How many of the ranked causes were confirmed by a fix: the resolved ones and, when
    the incident recovered after an action of the final plan, that plan's top hypothesis."""
    plan = report.plan
    if plan is None or not plan.resolved:
        return 1
    final_fix = report.outcome == "recovered" and any(
        e.status == "applied" and e.plan_revision == plan.revision for e in report.actions
    )
    return len(plan.resolved) + (1 if final_fix and plan.hypotheses else 0)


def _ratio_of(e: Evidence) -> float | None:
    """The highest error ratio an evidence item reports (its current and recent readings)."""
    values = [
        float(v)
        for key in ("error_ratio", "ratio", "recent", "last", "value", "current")
        if isinstance(v := e.data.get(key), int | float) and 0.0 <= float(v) <= 1.0
    ]
    return max(values) if values else None


def _error_ratio(report: IncidentReport, entry: str | None) -> float | None:
    """The peak error ratio users saw: the reported (or most upstream) component's, else the
    highest in the evidence.

    Internal services can fail at a far higher ratio than users see (retries, fallbacks), so
    the user-facing component's ratio is the better measure of impact.
    """
    ratios = [
        (e.subject.name, str(e.data.get("service") or ""), r)
        for e in report.evidence
        if e.signal == "error_ratio" and (r := _ratio_of(e)) is not None
    ]
    if not ratios:
        return None
    names = _reported_names(report) | ({entry} if entry else set())
    own = [r for name, service, r in ratios if name in names or service in names]
    return max(own or [r for _, _, r in ratios])


def _affected(report: IncidentReport) -> list[str]:
    names: dict[str, None] = {}
    if report.incident.alert is not None:
        for key in ("service", "deployment", "statefulset", "daemonset", "job_name"):
            value = report.incident.alert.labels.get(key)
            if value:
                ns = report.incident.alert.labels.get("namespace") or report.incident.namespace
                names[f"{ns}/{value}" if ns else value] = None
    for e in sorted(report.evidence, key=lambda e: -e.severity):
        if e.severity >= AFFECTED_SEVERITY and e.subject.kind not in ("Node", "Namespace"):
            ns = e.subject.namespace
            names[f"{ns}/{e.subject.name}" if ns else e.subject.name] = None
    return list(names)


def _impact(
    report: IncidentReport, end: datetime | None, ongoing: bool, entry: str | None
) -> Impact:
    inc = report.incident
    onsets = [e.onset for e in report.evidence if e.onset is not None and e.severity >= 0.5]
    start = min(
        [t for t in (inc.alert.starts_at if inc.alert else None, *onsets) if t is not None],
        default=inc.opened_at,
    )
    duration = _seconds(start, end)
    ratio = _error_ratio(report, entry)
    budget_min = (1 - DEFAULT_SLO) * SLO_WINDOW_DAYS * 24 * 60
    bad = round(ratio * duration / 60, 3) if ratio is not None and duration is not None else None
    burned = round(bad / budget_min, 4) if bad is not None else None
    budget = ErrorBudget(
        slo_target=DEFAULT_SLO,
        window_days=SLO_WINDOW_DAYS,
        budget_minutes=round(budget_min, 3),
        error_ratio=ratio,
        bad_minutes=bad,
        burned_fraction=burned,
        method=(
            "peak error ratio where users meet the failure (the reported or most upstream "
            "failing component; else the highest in the evidence) x "
            "duration, against a "
            f"{DEFAULT_SLO:.1%} availability objective over {SLO_WINDOW_DAYS} days "
            "(an upper bound: the ratio was not at its peak throughout)"
            if ratio is not None
            else "no error-ratio evidence: the budget burned could not be estimated"
        ),
    )
    services = _affected(report)
    dur = _human(duration) if duration is not None else "an unknown time"
    desc = (
        f"{', '.join(services) or 'no service'} affected for {dur}"
        + (" (not recovered when the transcript ends)" if ongoing else "")
        + (f"; peak error ratio {ratio:.1%}" if ratio is not None else "")
        + (f", about {burned:.1%} of a 30-day error budget" if burned is not None else "")
        + "."
    )
    return Impact(
        affected_services=services,
        started_at=start,
        ended_at=end,
        duration_s=duration,
        ongoing=ongoing,
        error_budget=budget,
        description=desc,
    )


def _detection(report: IncidentReport) -> Detection:
    inc = report.incident
    alert = inc.alert
    name = alert.labels.get("alertname") if alert else None
    summary = (
        (alert.annotations.get("summary") or alert.annotations.get("description"))
        if alert
        else None
    )
    started = alert.starts_at if alert else None
    first = started or inc.opened_at
    ttd = _seconds(first, report.detected_at)
    how = {
        "alert": f"the alert {name or '(unnamed)'}",
        "slack": f"a Slack message from {inc.requested_by or 'someone'}",
        "cli": f"a question on the command line from {inc.requested_by or 'an operator'}",
        "scenario": "a rehearsal scenario's alert",
    }[inc.trigger]
    confirmed = (
        f"; kubemedic confirmed the fault from evidence {_human(ttd)} later"
        if ttd is not None
        else "; no fault was confirmed by evidence"
        if report.detected_at is None
        else ""
    )
    return Detection(
        trigger=inc.trigger,
        alert_name=name,
        alert_summary=summary,
        alert_started_at=started,
        opened_at=inc.opened_at,
        detected_at=report.detected_at,
        time_to_detect_s=ttd,
        description=f"Reported by {how}{confirmed}.",
    )


def _trigger(report: IncidentReport, top: Hypothesis | None) -> str:
    """What set the failure off: a change right before the onset, when the evidence has one."""
    changes = [
        e
        for e in report.evidence
        if e.signal in ("rollout_changed", "config_changed", "scaled", "deleted")
        and e.severity >= AFFECTED_SEVERITY
    ]
    if top is not None:
        own = [c for c in changes if c.subject == top.root_cause]
        changes = own or changes
    if changes:
        c = min(changes, key=lambda e: e.onset or report.incident.opened_at)
        when = f" at {_ts(c.onset)}" if c.onset else ""
        return f"{c.summary} ({c.subject}{when}; evidence {c.id})"
    if top is not None:
        return (
            f"No change preceding the onset was found in the evidence; the failure began in "
            f"{top.root_cause} ({top.cause_kind})."
        )
    return "Not identified."


def _decision_for(decisions: Sequence[GateDecision], executed: ExecutedAction) -> str | None:
    for d in decisions:
        if d.action_index == executed.action_index:
            return d.decision
    return None


def _resolution(report: IncidentReport) -> Resolution:
    approvers = {}
    for a in report.approvals:
        if a.decision == "approve":
            for i in a.action_indexes or [e.action_index for e in report.actions]:
                approvers[i] = f"{a.by} via {a.via}"
    actions = [
        ActionTaken(
            action=e.action.action,
            target=str(e.action.target),
            params=e.action.params.model_dump(mode="json", exclude_none=True),
            status=e.status,
            at=e.at,
            decision=_decision_for(report.decisions, e),
            approved_by=approvers.get(e.action_index),
            before=e.before,
            after=e.after,
            error=e.error,
            expected_effect=e.action.expected_effect,
            verification=e.action.verification,
        )
        for e in report.actions
    ]
    checks = [
        VerificationResult(status=v.status, checks=v.checks, window_s=v.window_s, at=v.at)
        for v in report.verifications
    ]
    mitigated = report.mitigated_at or min(
        (v.at for v in report.verifications if v.status == "recovered"), default=None
    )
    ttm = _seconds(report.incident.opened_at, mitigated)
    if actions:
        done = "; ".join(f"{a.action} {a.target} ({a.status})" for a in actions)
        desc = f"Actions: {done}."
    elif report.plan is not None and report.plan.actions:
        proposed = "; ".join(f"{a.action} {a.target}" for a in report.plan.actions)
        desc = f"Proposed but not carried out: {proposed} (outcome {report.outcome})."
    else:
        desc = "No action was taken."
    if mitigated is not None:
        desc += f" Recovery confirmed by the verifier {_human(ttm)} after the incident opened."
    elif report.verifications:
        desc += f" The last verification said {report.verifications[-1].status}."
    return Resolution(
        actions=actions,
        verifications=checks,
        mitigated_at=mitigated,
        time_to_mitigate_s=ttm,
        description=desc,
    )


def _lessons(report: IncidentReport, pm_timings: Timings, top: Hypothesis | None) -> Lessons:
    well: list[str] = []
    wrong: list[str] = []
    lucky: list[str] = []
    if report.detected_at is not None:
        well.append(f"The fault was confirmed from evidence {_human(pm_timings.detect_s)} in.")
    if top is not None and report.localized_at is not None:
        well.append(
            f"The root cause ({top.root_cause}, {top.cause_kind}) was localized "
            f"{_human(pm_timings.localize_s)} after the incident opened, "
            f"with confidence {top.confidence:.0%}."
        )
    if report.outcome == "recovered":
        well.append("The verifier confirmed recovery.")
    denied = [d for d in report.decisions if d.decision == "deny"]
    if denied:
        well.append(
            "The policy gate stopped "
            + "; ".join(f"{d.action} {d.target} ({'; '.join(d.reasons)})" for d in denied)
            + "."
        )
    if report.recall is not None and report.recall.similar:
        best = report.recall.similar[0]
        well.append(
            f"Memory recalled a similar incident ({best.incident_id}, {best.cause_kind}, "
            f"{best.outcome or 'unknown outcome'})."
        )
    if top is None:
        wrong.append("No root-cause hypothesis was formed.")
    if report.outcome in ("not_recovered", "failed"):
        wrong.append(f"The incident ended {report.outcome.replace('_', ' ')}.")
    for e in report.actions:
        if e.status in ("failed", "dry_run_failed", "undone"):
            why = f": {e.error}" if e.error else ""
            wrong.append(f"{e.action.action} {e.action.target} {e.status.replace('_', ' ')}{why}.")
    not_yet = [v for v in report.verifications if v.status != "recovered"]
    if not_yet:
        wrong.append(
            f"{len(not_yet)} verification(s) did not see recovery "
            f"({', '.join(v.status for v in not_yet)}), so the plan was revised."
        )
    fallbacks = [t for t in report.transcript if t.kind == "fallback"]
    if fallbacks:
        wrong.append(
            f"{len(fallbacks)} time(s) a model answer was unusable and a node fell back to its "
            "deterministic result."
        )
    errors = [t for t in report.transcript if t.kind == "error"]
    for t in errors[:5]:
        wrong.append(f"{t.node}: {t.summary}")
    if pm_timings.mitigate_s is not None and pm_timings.mitigate_s > SLOW_MITIGATION_S:
        wrong.append(f"Mitigation took {_human(pm_timings.mitigate_s)}.")
    if report.outcome == "no_action" and report.detected_at is None:
        lucky.append("The signals were healthy by the time kubemedic looked: no action needed.")
    return Lessons(went_well=well, went_wrong=wrong, got_lucky=lucky)


def _action_items(report: IncidentReport, top: Hypothesis | None) -> list[ActionItem]:
    items: list[ActionItem] = []
    owner = report.incident.namespace or "service owners"
    if report.outcome not in ("recovered", "no_action"):
        items.append(
            ActionItem(
                description=(
                    f"Finish the recovery by hand: {top.statement}"
                    if top
                    else "Investigate and recover by hand: kubemedic found no root cause."
                ),
                type="mitigate",
                owner="on-call",
                priority="P1",
            )
        )
    if top is not None:
        items.append(
            ActionItem(
                description=(
                    f"Remove the cause of {top.cause_kind} in {top.root_cause} for good "
                    f"({top.category.fault_type}): {top.statement}"
                ),
                type="prevent",
                owner=owner,
                priority="P2",
            )
        )
        alerted = set(_affected(report)[:1])
        cause = (
            f"{top.root_cause.namespace}/{top.root_cause.name}"
            if top.root_cause.namespace
            else top.root_cause.name
        )
        if alerted and cause not in alerted:
            items.append(
                ActionItem(
                    description=(
                        f"Alert on {top.root_cause} itself ({top.cause_kind}): this incident "
                        f"was noticed only through its symptom on {', '.join(alerted)}."
                    ),
                    type="detect",
                    owner=owner,
                    priority="P2",
                )
            )
    for e in report.actions:
        if e.status == "applied" and e.action.action not in ("restart", "delete_pod", "escalate"):
            items.append(
                ActionItem(
                    description=(
                        f"Carry the live change ({e.action.action} on {e.action.target}) into "
                        "the manifests in source control, or the next deploy reverts it."
                    ),
                    type="prevent",
                    owner=owner,
                    priority="P2",
                )
            )
    if any(t.kind == "fallback" for t in report.transcript):
        items.append(
            ActionItem(
                description="Check the model endpoint: some answers were unusable.",
                type="process",
                owner="kubemedic operators",
                priority="P3",
            )
        )
    if any(t.kind == "error" and t.node in ("recall", "learner") for t in report.transcript):
        items.append(
            ActionItem(
                description="Restore the incident memory (Redis): this incident was not learned.",
                type="process",
                owner="kubemedic operators",
                priority="P3",
            )
        )
    return items


def _graph(report: IncidentReport, top: Hypothesis | None) -> ServiceGraph:
    deps: DependencyFindings = report.dependency_findings or DependencyFindings()
    refs: dict[str, ObjectRef] = {}
    for ref in deps.nodes:
        refs[ref.key] = ref
    for edge in deps.edges:
        refs.setdefault(edge.source.key, edge.source)
        refs.setdefault(edge.target.key, edge.target)
    anomalous = {r.key for r in deps.anomalous}
    anomalous |= {
        e.subject.key for e in report.evidence if e.severity >= 0.5 and e.subject.key in refs
    }
    root = top.root_cause.key if top is not None else None
    if top is not None:
        refs.setdefault(root or "", top.root_cause)
    adjacency: dict[str, list[str]] = {}
    for edge in deps.edges:
        adjacency.setdefault(edge.source.key, []).append(edge.target.key)

    path_nodes: set[str] = set()
    path_edges: set[tuple[str, str]] = set()
    # The path drawn in words: from where the incident was reported (the alert's service or
    # workload) when it reaches the cause, else the longest path from a symptom.
    reported = _reported_names(report)
    best: list[str] = []
    if root is not None:
        # Every symptom (anomalous component) to the root cause, along the call direction.
        for start in sorted(anomalous - {root}):
            path = _shortest_path(adjacency, start, root)
            if path:
                path_nodes.update(path)
                path_edges.update(itertools.pairwise(path))
                rank = _path_rank(path, reported, anomalous, adjacency, refs)
                if not best or rank > _path_rank(best, reported, anomalous, adjacency, refs):
                    best = path
        path_nodes.add(root)
    longest = best
    nodes = [
        GraphNode(
            id=key,
            kind=ref.kind,
            namespace=ref.namespace,
            name=ref.name,
            anomalous=key in anomalous,
            root_cause=key == root,
            on_failing_path=key in path_nodes,
        )
        for key, ref in sorted(refs.items())
    ]
    # One link per pair, naming every way it was found (env, trace, selector...).
    vias: dict[tuple[str, str], list[str]] = {}
    for e in deps.edges:
        found = vias.setdefault((e.source.key, e.target.key), [])
        if e.via not in found:
            found.append(e.via)
    edges = [
        GraphLink(
            source=source,
            target=target,
            via=", ".join(how),
            on_failing_path=(source, target) in path_edges,
        )
        for (source, target), how in vias.items()
    ]
    return ServiceGraph(nodes=nodes, edges=edges, failing_path=longest or ([root] if root else []))


def _path_rank(
    path: list[str],
    reported: set[str],
    anomalous: set[str],
    adjacency: dict[str, list[str]],
    refs: dict[str, ObjectRef],
) -> tuple[bool, bool, int]:
    """Which symptom's path to the cause to tell: the reported component's, else the most
    upstream symptom's (no other anomalous component calls it), else the longest."""
    start = path[0]
    upstream = not any(
        _shortest_path(adjacency, other, start) for other in anomalous if other != start
    )
    return (refs[start].name in reported, upstream, len(path))


def _reported_names(report: IncidentReport) -> set[str]:
    names = set()
    alert = report.incident.alert
    if alert is not None:
        for key in ("service", "deployment", "statefulset", "daemonset"):
            if alert.labels.get(key):
                names.add(alert.labels[key])
    if report.incident.workload is not None:
        names.add(report.incident.workload.name)
    return names


def _shortest_path(adjacency: dict[str, list[str]], start: str, goal: str) -> list[str]:
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while (p := previous[path[-1]]) is not None:
                path.append(p)
            return path[::-1]
        for nxt in adjacency.get(node, []):
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return []


def build_postmortem(report: IncidentReport) -> Postmortem:
    """The post-mortem of one incident, from its transcript alone, secrets masked."""
    pm = _build(report)
    return Postmortem.model_validate(_redacted(pm.model_dump(mode="json")))


def _build(report: IncidentReport) -> Postmortem:
    inc = report.incident
    ranked = report.ranked()
    top = ranked[0] if ranked else None
    evidence = {e.id: e for e in report.evidence}
    resolution = _resolution(report)
    last_seen = max((t.at for t in report.transcript), default=inc.opened_at)
    ongoing = resolution.mitigated_at is None and report.outcome not in ("no_action",)
    end = resolution.mitigated_at or last_seen
    timings = Timings(
        detect_s=_seconds(inc.opened_at, report.detected_at),
        localize_s=_seconds(inc.opened_at, report.localized_at),
        mitigate_s=resolution.time_to_mitigate_s,
    )
    graph = _graph(report, top)
    entry = next((n.name for n in graph.nodes if graph.failing_path[:1] == [n.id]), None)
    impact = _impact(report, end, ongoing, entry if len(graph.failing_path) > 1 else None)
    entries = sorted(report.transcript, key=lambda t: t.at)
    timeline = [
        TimelineEvent(
            at=t.at,
            offset_s=round((t.at - inc.opened_at).total_seconds(), 3),
            node=t.node,
            kind=t.kind,
            summary=t.summary,
        )
        for t in entries[:MAX_TIMELINE]
    ]
    fallbacks = sum(1 for t in report.transcript if t.kind == "fallback")
    cause = (
        f"The root cause was {top.cause_kind} in {top.root_cause} "
        f"({top.category.system_level} / {top.category.fault_type}, "
        f"confidence {top.confidence:.0%})."
        if top
        else "No root cause was established."
    )
    confirmed = _confirmed(report)
    for h in ranked[1:confirmed]:
        cause += f" A further cause, found after it was fixed: {h.cause_kind} in {h.root_cause}."
    summary = (
        f"{inc.title}. {impact.description} {cause} "
        f"{resolution.description} Outcome: {report.outcome or 'unfinished'}."
    )
    return Postmortem(
        incident_id=inc.id,
        title=inc.title,
        date=inc.opened_at,
        authors=["kubemedic (automated draft)"],
        status=(
            "draft: recovered, for review"
            if report.outcome == "recovered"
            else f"draft: {report.outcome or 'unfinished'}, needs follow-up"
        ),
        outcome=report.outcome,
        mode=inc.mode,
        summary=summary,
        impact=impact,
        detection=_detection(report),
        root_cause=_cause(top, evidence) if top else None,
        further_causes=[_cause(h, evidence) for h in ranked[1:confirmed]],
        other_hypotheses=[_cause(h, evidence) for h in ranked[max(1, confirmed) :]],
        trigger=_trigger(report, top),
        resolution=resolution,
        lessons=_lessons(report, timings, top),
        action_items=_action_items(report, top),
        timeline=timeline,
        timeline_truncated=len(entries) > MAX_TIMELINE,
        timings=timings,
        model_usage=ModelUsage(
            input_tokens=report.tokens.input,
            output_tokens=report.tokens.output,
            cost_usd=round(report.tokens.cost_usd, 6),
            model_used=report.tokens.input + report.tokens.output > 0,
            fallbacks=fallbacks,
        ),
        service_graph=graph,
        recalled=[
            RecalledIncident(
                incident_id=p.incident_id,
                similarity=p.similarity,
                cause_kind=p.cause_kind,
                outcome=p.outcome,
            )
            for p in (report.recall.similar if report.recall else [])
        ],
        evidence=[_ref(e) for e in sorted(report.evidence, key=lambda e: -e.severity)],
    )


# -- formatting helpers ----------------------------------------------------------------


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    s = abs(seconds)
    if s < 90:
        text = f"{s:.0f} s"
    elif s < 90 * 60:
        text = f"{s / 60:.1f} min"
    else:
        text = f"{s / 3600:.1f} h"
    return f"-{text}" if seconds < 0 else text


def _ts(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if at else "-"


def _md(text: object) -> str:
    """Untrusted text made inert in Markdown: one line, no HTML, no table breaks, no links."""
    s = " ".join(str(text).split())
    s = html.escape(s, quote=False)
    for ch in "\\`*_[]|#!":
        s = s.replace(ch, "\\" + ch)
    return s


def render_json(pm: Postmortem) -> str:
    return pm.model_dump_json(indent=2)


def render_markdown(pm: Postmortem) -> str:
    """Markdown after the Google SRE book's example postmortem."""
    out: list[str] = []
    add = out.append
    add(f"# Postmortem: {_md(pm.title)} (incident {_md(pm.incident_id)})")
    add("")
    add(f"**Date**: {_ts(pm.date)}  ")
    add(f"**Authors**: {_md(', '.join(pm.authors))}  ")
    add(f"**Status**: {_md(pm.status)}  ")
    add(f"**Mode**: {_md(pm.mode)}  ")
    add(f"**Summary**: {_md(pm.summary)}")
    add("")
    add("## Impact")
    add("")
    add(_md(pm.impact.description))
    add("")
    add(f"- Affected services: {_md(', '.join(pm.impact.affected_services) or 'none found')}")
    add(
        f"- Started: {_ts(pm.impact.started_at)}; ended: {_ts(pm.impact.ended_at)}"
        + (" (ongoing at the end of the transcript)" if pm.impact.ongoing else "")
    )
    add(f"- Duration: {_human(pm.impact.duration_s)}")
    b = pm.impact.error_budget
    burned = f"{b.burned_fraction:.2%}" if b.burned_fraction is not None else "not estimated"
    add(f"- Error budget burned: {burned} ({_md(b.method)})")
    add("")
    add("## Root Causes")
    add("")
    if pm.root_cause:
        rc = pm.root_cause
        add(
            f"{_md(rc.statement)} (component {_md(rc.component)}, kind {_md(rc.cause_kind)}, "
            f"{_md(rc.system_level)} / {_md(rc.fault_type)}, confidence {rc.confidence:.0%})"
        )
        add("")
        for ev in rc.evidence:
            add(f"- {_md(ev.id)}: {_md(ev.signal)} on {_md(ev.subject)}: {_md(ev.summary)}")
        for fc in pm.further_causes:
            add("")
            add(
                f"A further cause, found after the first was fixed: {_md(fc.statement)} "
                f"(component {_md(fc.component)}, kind {_md(fc.cause_kind)}, "
                f"{_md(fc.system_level)} / {_md(fc.fault_type)}, confidence {fc.confidence:.0%})"
            )
            add("")
            for ev in fc.evidence:
                add(f"- {_md(ev.id)}: {_md(ev.signal)} on {_md(ev.subject)}: {_md(ev.summary)}")
        if pm.other_hypotheses:
            add("")
            add("Other hypotheses considered:")
            add("")
            for h in pm.other_hypotheses:
                add(
                    f"- {_md(h.component)} ({_md(h.cause_kind)}, {h.confidence:.0%}): "
                    f"{_md(h.statement)}"
                )
    else:
        add("No root cause was established.")
    add("")
    add("## Trigger")
    add("")
    add(_md(pm.trigger))
    add("")
    add("## Resolution")
    add("")
    add(_md(pm.resolution.description))
    add("")
    if pm.resolution.actions:
        add("| Time | Action | Target | Gate | Approved by | Status | Before | After |")
        add("|---|---|---|---|---|---|---|---|")
        for a in pm.resolution.actions:
            add(
                f"| {_ts(a.at)} | {_md(a.action)} {_md(json.dumps(a.params))} | "
                f"{_md(a.target)} | {_md(a.decision or '-')} | {_md(a.approved_by or '-')} | "
                f"{_md(a.status)}{(': ' + _md(a.error)) if a.error else ''} | "
                f"{_md(json.dumps(a.before))} | {_md(json.dumps(a.after))} |"
            )
        add("")
    if pm.resolution.verifications:
        add("Verification:")
        add("")
        for v in pm.resolution.verifications:
            add(
                f"- {_ts(v.at)}: **{_md(v.status)}** after a {v.window_s:.0f} s window; "
                f"{_md('; '.join(v.checks))}"
            )
        add("")
    add("## Detection")
    add("")
    add(_md(pm.detection.description))
    if pm.detection.alert_summary:
        add("")
        add(f"Alert summary (as sent): {_md(pm.detection.alert_summary)}")
    add("")
    add("## Action Items")
    add("")
    if pm.action_items:
        add("| Action Item | Type | Owner | Priority |")
        add("|---|---|---|---|")
        for item in pm.action_items:
            add(f"| {_md(item.description)} | {item.type} | {_md(item.owner)} | {item.priority} |")
    else:
        add("None.")
    add("")
    add("## Lessons Learned")
    add("")
    for title, items in (
        ("What went well", pm.lessons.went_well),
        ("What went wrong", pm.lessons.went_wrong),
        ("Where we got lucky", pm.lessons.got_lucky),
    ):
        add(f"### {title}")
        add("")
        add("\n".join(f"- {_md(i)}" for i in items) if items else "- Nothing noted.")
        add("")
    add("## Timeline")
    add("")
    add("| Time | +offset | Node | Kind | What happened |")
    add("|---|---|---|---|---|")
    for t in pm.timeline:
        add(
            f"| {_ts(t.at)} | {_human(t.offset_s)} | {_md(t.node)} | {_md(t.kind)} | "
            f"{_md(t.summary)} |"
        )
    if pm.timeline_truncated:
        add("")
        add(f"(timeline cut at {MAX_TIMELINE} entries; the transcript has them all)")
    add("")
    add("## Supporting information")
    add("")
    tm = pm.timings
    add(
        f"- Time to detect: {_human(tm.detect_s)}; to localize: {_human(tm.localize_s)}; "
        f"to mitigate: {_human(tm.mitigate_s)}"
    )
    mu = pm.model_usage
    add(
        f"- Model usage: {mu.input_tokens} input and {mu.output_tokens} output tokens, "
        f"${mu.cost_usd:.4f}"
        + ("" if mu.model_used else " (deterministic mode: no model)")
        + (f"; {mu.fallbacks} fallback(s)" if mu.fallbacks else "")
    )
    if pm.recalled:
        add(
            "- Similar past incidents: "
            + ", ".join(
                f"{_md(r.incident_id)} ({r.similarity:.2f}, {_md(r.cause_kind)}, {_md(r.outcome)})"
                for r in pm.recalled
            )
        )
    if pm.service_graph.failing_path:
        add("- Failing path: " + " → ".join(_md(n) for n in pm.service_graph.failing_path))
    add("")
    if pm.evidence:
        add("### Evidence")
        add("")
        add("| Id | Source | Signal | Subject | Severity | Summary |")
        add("|---|---|---|---|---|---|")
        for ev in pm.evidence:
            add(
                f"| {_md(ev.id)} | {_md(ev.source)} | {_md(ev.signal)} | {_md(ev.subject)} | "
                f"{ev.severity:.2f} | {_md(ev.summary)} |"
            )
        add("")
    return "\n".join(out)


# -- HTML ----------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#1d232a;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.6em 0}
td,th{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f5f7}.meta td:first-child{font-weight:600;width:12em}
.k-error,.k-fallback{color:#b42318}.k-verification{color:#067647}.k-api_call{font-weight:600}
svg{max-width:100%;height:auto}svg text{font:12px system-ui,sans-serif}.muted{color:#59636e}
.legend span{display:inline-block;margin-right:1.2em}
.sw{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin-right:.3em;
border:1px solid #888}
"""

#: No script, no external anything: the page is inert even if escaping ever failed.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_KIND_COLOUR = {
    "intake": "#6b7280",
    "observation": "#2563eb",
    "evidence": "#2563eb",
    "hypothesis": "#7c3aed",
    "proposal": "#7c3aed",
    "verdict": "#a16207",
    "decision": "#a16207",
    "approval": "#a16207",
    "dry_run": "#0e7490",
    "api_call": "#b45309",
    "verification": "#15803d",
    "memory": "#475569",
    "fallback": "#b91c1c",
    "error": "#b91c1c",
    "note": "#6b7280",
    "outcome": "#15803d",
}


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _layers(graph: ServiceGraph) -> dict[str, int]:
    """A layer per node: callers left, callees right (longest path from a source)."""
    incoming: dict[str, int] = {n.id: 0 for n in graph.nodes}
    out: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        if e.source in out and e.target in incoming and e.source != e.target:
            out[e.source].append(e.target)
            incoming[e.target] += 1
    layer = {n: 0 for n in incoming}
    # Kahn's order; nodes left in a cycle keep the layer they reached.
    queue = deque(sorted(n for n, k in incoming.items() if k == 0))
    remaining = dict(incoming)
    seen = 0
    while queue:
        node = queue.popleft()
        seen += 1
        for nxt in out[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                queue.append(nxt)
    return layer


def render_graph_svg(graph: ServiceGraph) -> str:
    """The service graph as inline SVG: the failing path red, the root cause outlined."""
    if not graph.nodes:
        return (
            '<svg id="service-graph" role="img" xmlns="http://www.w3.org/2000/svg" '
            'width="420" height="40" aria-label="no service graph">'
            '<text x="8" y="24">No dependency findings in the transcript.</text></svg>'
        )
    layer = _layers(graph)
    columns: dict[int, list[str | None]] = {}
    # The failing path runs along the top row, so no other box sits on its straight edges:
    # a column without a node of the path leaves its first row empty.
    reserved = any(n.on_failing_path for n in graph.nodes)
    for node in sorted(graph.nodes, key=lambda n: not n.on_failing_path):
        column = columns.setdefault(layer[node.id], [])
        if reserved and not column and not node.on_failing_path:
            column.append(None)
        column.append(node.id)
    w, h, gap_x, gap_y, pad = 190, 40, 70, 22, 20
    pos: dict[str, tuple[float, float]] = {}
    for col, ids in columns.items():
        for row, nid in enumerate(ids):
            if nid is not None:
                pos[nid] = (pad + col * (w + gap_x), pad + row * (h + gap_y))
    width = pad * 2 + (max(columns) + 1) * (w + gap_x) - gap_x
    height = pad * 2 + max(len(ids) for ids in columns.values()) * (h + gap_y) - gap_y
    parts = [
        f'<svg id="service-graph" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'aria-label="service graph with the failing path highlighted">',
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="#8c959f"/></marker>'
        '<marker id="arrow-fail" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="#d92d20"/></marker></defs>',
    ]
    for e in sorted(graph.edges, key=lambda e: e.on_failing_path):
        if e.source not in pos or e.target not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
        if x2 > x1:
            sx, sy, tx, ty = x1 + w, y1 + h / 2, x2, y2 + h / 2
        elif x2 < x1:
            sx, sy, tx, ty = x1, y1 + h / 2, x2 + w, y2 + h / 2
        else:
            sx, sy, tx, ty = (
                x1 + w / 2,
                y1 + (h if y2 > y1 else 0),
                x2 + w / 2,
                y2 + (0 if y2 > y1 else h),
            )
        cls = "edge failing" if e.on_failing_path else "edge"
        colour, marker, stroke = (
            ("#d92d20", "arrow-fail", 3) if e.on_failing_path else ("#8c959f", "arrow", 1.2)
        )
        parts.append(
            f'<line class="{cls}" x1="{sx:.1f}" y1="{sy:.1f}" x2="{tx:.1f}" y2="{ty:.1f}" '
            f'stroke="{colour}" stroke-width="{stroke}" marker-end="url(#{marker})">'
            f"<title>{_h(e.source)} → {_h(e.target)} ({_h(e.via)})</title></line>"
        )
    for node in graph.nodes:
        x, y = pos[node.id]
        fill = "#fee4e2" if node.root_cause else "#fef0c7" if node.anomalous else "#f6f8fa"
        border = "#d92d20" if node.on_failing_path else "#8c959f"
        sw = 3 if node.root_cause else 2 if node.on_failing_path else 1
        classes = " ".join(
            c
            for c, on in (
                ("node", True),
                ("root-cause", node.root_cause),
                ("anomalous", node.anomalous),
                ("failing", node.on_failing_path),
            )
            if on
        )
        label = node.name if len(node.name) <= 24 else node.name[:23] + "…"
        parts.append(
            f'<g class="{classes}" data-id="{_h(node.id)}">'
            f"<title>{_h(node.id)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w}" height="{h}" rx="6" fill="{fill}" '
            f'stroke="{border}" stroke-width="{sw}"/>'
            f'<text x="{x + 8:.1f}" y="{y + 16:.1f}" font-weight="600">{_h(label)}</text>'
            f'<text x="{x + 8:.1f}" y="{y + 31:.1f}" fill="#59636e">{_h(node.kind)}'
            f"{' · ' + _h(node.namespace) if node.namespace else ''}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_timeline_svg(pm: Postmortem) -> str:
    """The incident on a time axis: each transcript entry a tick, milestones labelled."""
    events = pm.timeline
    width, height, pad = 1000, 110, 40
    if not events:
        return (
            '<svg id="timeline" role="img" xmlns="http://www.w3.org/2000/svg" width="300" '
            'height="30"><text x="4" y="20">No transcript entries.</text></svg>'
        )
    lo = min(e.offset_s for e in events)
    hi = max(e.offset_s for e in events)
    span = (hi - lo) or 1.0

    def x(offset: float) -> float:
        return pad + (offset - lo) / span * (width - 2 * pad)

    parts = [
        f'<svg id="timeline" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="incident timeline">',
        f'<line x1="{pad}" y1="60" x2="{width - pad}" y2="60" stroke="#8c959f"/>',
    ]
    for e in events:
        colour = _KIND_COLOUR.get(e.kind, "#6b7280")
        parts.append(
            f'<circle class="event k-{_h(e.kind)}" cx="{x(e.offset_s):.1f}" cy="60" r="4" '
            f'fill="{colour}"><title>+{_h(_human(e.offset_s))} {_h(e.node)} {_h(e.kind)}: '
            f"{_h(e.summary[:300])}</title></circle>"
        )
    milestones = [
        ("opened", 0.0),
        ("detected", pm.timings.detect_s),
        ("localized", pm.timings.localize_s),
        ("mitigated", pm.timings.mitigate_s),
    ]
    for i, (label, offset) in enumerate(milestones):
        if offset is None:
            continue
        mx = x(min(max(offset, lo), hi))
        y = 30 if i % 2 else 95
        parts.append(
            f'<line x1="{mx:.1f}" y1="52" x2="{mx:.1f}" y2="68" stroke="#1d232a" '
            f'stroke-width="2"/><text class="milestone" x="{mx:.1f}" y="{y}" '
            f'text-anchor="middle">{label} +{_h(_human(offset))}</text>'
        )
    parts.append(
        f'<text x="{pad}" y="14" fill="#59636e">{_h(_ts(events[0].at))}</text>'
        f'<text x="{width - pad}" y="14" fill="#59636e" text-anchor="end">'
        f"{_h(_ts(events[-1].at))}</text></svg>"
    )
    return "".join(parts)


def _ul(items: Sequence[str]) -> str:
    if not items:
        return "<ul><li class='muted'>Nothing noted.</li></ul>"
    return "<ul>" + "".join(f"<li>{_h(i)}</li>" for i in items) + "</ul>"


def _cause_html(rc: RootCause) -> str:
    return (
        f"<p>{_h(rc.statement)}</p><table class='meta'>"
        f"<tr><td>Component</td><td>{_h(rc.component)}</td></tr>"
        f"<tr><td>Kind</td><td>{_h(rc.cause_kind)}</td></tr>"
        f"<tr><td>Category</td><td>{_h(rc.system_level)} / {_h(rc.fault_type)}</td></tr>"
        f"<tr><td>Confidence</td><td>{rc.confidence:.0%}</td></tr></table>"
        + _ul([f"{e.id}: {e.signal} on {e.subject}: {e.summary}" for e in rc.evidence])
    )


def render_html(pm: Postmortem) -> str:
    """One self-contained page: no script, no external asset, a CSP that allows neither."""
    b = pm.impact.error_budget
    burned = f"{b.burned_fraction:.2%}" if b.burned_fraction is not None else "not estimated"
    rc = pm.root_cause
    cause_html = (
        "".join(
            ("<p>A further cause, found after the first was fixed:</p>" if i else "")
            + _cause_html(c)
            for i, c in enumerate([rc, *pm.further_causes])
        )
        if rc
        else "<p>No root cause was established.</p>"
    )
    actions = "".join(
        f"<tr><td>{_h(_ts(a.at))}</td><td>{_h(a.action)} <code>{_h(json.dumps(a.params))}</code>"
        f"</td><td>{_h(a.target)}</td><td>{_h(a.decision or '-')}</td>"
        f"<td>{_h(a.approved_by or '-')}</td><td>{_h(a.status)}"
        f"{(': ' + _h(a.error)) if a.error else ''}</td></tr>"
        for a in pm.resolution.actions
    )
    actions_html = (
        "<table><tr><th>Time</th><th>Action</th><th>Target</th><th>Gate</th>"
        f"<th>Approved by</th><th>Status</th></tr>{actions}</table>"
        if actions
        else ""
    )
    checks = _ul(
        [
            f"{_ts(v.at)}: {v.status} after {v.window_s:.0f} s; {'; '.join(v.checks)}"
            for v in pm.resolution.verifications
        ]
    )
    items = "".join(
        f"<tr><td>{_h(i.description)}</td><td>{i.type}</td><td>{_h(i.owner)}</td>"
        f"<td>{i.priority}</td></tr>"
        for i in pm.action_items
    )
    timeline_rows = "".join(
        f"<tr class='k-{_h(t.kind)}'><td>{_h(_ts(t.at))}</td><td>+{_h(_human(t.offset_s))}</td>"
        f"<td>{_h(t.node)}</td><td>{_h(t.kind)}</td><td>{_h(t.summary)}</td></tr>"
        for t in pm.timeline
    )
    mu = pm.model_usage
    path = " → ".join(pm.service_graph.failing_path) or "none found"
    affected = ", ".join(pm.impact.affected_services) or "none found"
    recalled = ", ".join(f"{r.incident_id} ({r.similarity:.2f})" for r in pm.recalled) or "none"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Postmortem: {_h(pm.title)} ({_h(pm.incident_id)})</title>
<style>{_CSS}</style></head>
<body>
<h1>Postmortem: {_h(pm.title)}</h1>
<table class="meta">
<tr><td>Incident</td><td>{_h(pm.incident_id)}</td></tr>
<tr><td>Date</td><td>{_h(_ts(pm.date))}</td></tr>
<tr><td>Authors</td><td>{_h(", ".join(pm.authors))}</td></tr>
<tr><td>Status</td><td>{_h(pm.status)}</td></tr>
<tr><td>Outcome</td><td>{_h(pm.outcome or "unfinished")}</td></tr>
</table>
<h2>Summary</h2><p>{_h(pm.summary)}</p>
<h2>Impact</h2><p>{_h(pm.impact.description)}</p>
<table class="meta">
<tr><td>Affected services</td><td>{_h(affected)}</td></tr>
<tr><td>Duration</td><td>{_h(_human(pm.impact.duration_s))}</td></tr>
<tr><td>Error budget burned</td>
<td>{_h(burned)} <span class="muted">({_h(b.method)})</span></td></tr>
</table>
<h2>Service graph</h2>
<p class="legend">
<span><i class="sw" style="background:#fee4e2;border-color:#d92d20"></i>root cause</span>
<span><i class="sw" style="background:#fef0c7"></i>anomalous</span>
<span><i class="sw" style="background:#fff;border-color:#d92d20"></i>failing path:
{_h(path)}</span></p>
{render_graph_svg(pm.service_graph)}
<h2>Root Causes</h2>{cause_html}
<h2>Trigger</h2><p>{_h(pm.trigger)}</p>
<h2>Resolution</h2><p>{_h(pm.resolution.description)}</p>{actions_html}
<h3>Verification</h3>{checks}
<h2>Detection</h2><p>{_h(pm.detection.description)}</p>
<h2>Action Items</h2>
<table><tr><th>Action item</th><th>Type</th><th>Owner</th><th>Priority</th></tr>{items}</table>
<h2>Lessons Learned</h2>
<h3>What went well</h3>{_ul(pm.lessons.went_well)}
<h3>What went wrong</h3>{_ul(pm.lessons.went_wrong)}
<h3>Where we got lucky</h3>{_ul(pm.lessons.got_lucky)}
<h2>Timeline</h2>
{render_timeline_svg(pm)}
<table id="timeline-table">
<tr><th>Time</th><th>Offset</th><th>Node</th><th>Kind</th><th>What happened</th></tr>
{timeline_rows}</table>
<h2>Supporting information</h2>
<ul><li>Time to detect {_h(_human(pm.timings.detect_s))},
to localize {_h(_human(pm.timings.localize_s))},
to mitigate {_h(_human(pm.timings.mitigate_s))}</li>
<li>Model usage: {mu.input_tokens} input and {mu.output_tokens} output tokens, ${mu.cost_usd:.4f}
{"" if mu.model_used else "(deterministic mode: no model)"}</li>
<li>Similar past incidents: {_h(recalled)}</li></ul>
</body></html>
"""


def render(pm: Postmortem, fmt: Format) -> str:
    if fmt == "md":
        return render_markdown(pm)
    if fmt == "json":
        return render_json(pm)
    return render_html(pm)


def write_postmortems(incident_dir: Path, formats: Iterable[Format] = FORMATS) -> list[Path]:
    """Render every format next to the incident's transcript.json; returns the files written.

    For the interfaces that run the graph (the runner, the webhook worker): call it after the
    learner, which wrote the transcript.
    """
    pm = build_postmortem(load_report(incident_dir))
    written = []
    for fmt in formats:
        path = incident_dir / f"postmortem.{SUFFIX[fmt]}"
        path.write_text(render(pm, fmt), encoding="utf-8")
        written.append(path)
    return written
