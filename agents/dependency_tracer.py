"""The dependency tracer: builds the service graph, reads every component's signals, and
localizes the fault along the graph.

It reads the objects in scope (workloads, pods, Services and their endpoints,
nodes, HPAs, quotas, NetworkPolicies, HTTPRoutes), the golden signals of every
Service and the resource use of every workload against their own recent
baselines, the rollout history of Deployments that changed, and the traces
of the failing or slow Services. Each finding is an Evidence item ("dep-N").

Localization (`localize`, which the planner re-runs over all evidence,
the log analyst's included): a component is a root-cause candidate when it
is anomalous and its own dependencies do not explain it. A caller that fails
only because a callee fails (its errors name the callee, its traces fail in
the callee) is a symptom; the most upstream anomalous component wins, not
the loudest. Config-level objects (a Service with no endpoints or a wrong
targetPort, a missing Service, a node, a quota, a NetworkPolicy, an
HTTPRoute) are candidates too.
"""

from __future__ import annotations

import asyncio
import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from langgraph.runtime import Runtime

from agents import signals as sg
from agents.context import AgentContext
from agents.signals import EvidenceBook, Graph, NameIndex, Scope, Snapshot
from agents.transcript import entry
from state import (
    Candidate,
    DependencyFindings,
    Evidence,
    GraphEdge,
    IncidentState,
    ObjectRef,
    TokenUsage,
    TranscriptEntry,
)

NODE = "dependency_tracer"

EdgeVia = Literal["env", "trace", "endpoints", "route", "selector"]
_EDGE_VIAS = ("env", "trace", "endpoints", "route", "selector")

#: How far back the metrics look; the baseline is everything before the recent window.
METRICS_MINUTES = 30
#: Metric resolution: fine enough to date an onset within a quarter minute.
METRICS_STEP_S = 30
#: Services and workloads whose metrics are read at most (focus and its graph first).
MAX_METRIC_TARGETS = 60
#: A Deployment revision created this long before the onset still counts as "right before".
ROLLOUT_LOOKBACK = timedelta(minutes=60)
#: A container termination older than this is history, not the current incident.
RECENT_TERMINATION = timedelta(minutes=30)
#: Traces older than this are not the current failure (a warm-up, an earlier blip).
TRACE_MINUTES = 2
#: CPU at this share of its limit is saturated (throttling starts to bite).
CPU_SATURATED = 0.85

#: Signals that no callee can explain: the component itself is broken.
STRONG_INTRINSIC = frozenset(
    {
        "oom_killed",
        "image_pull_error",
        "config_error",
        "scaled_to_zero",
        "selector_mismatch",
        "target_port_mismatch",
        "missing_service",
        "node_not_ready",
        "quota_exhausted",
        "auth_error",
        "saturation",
        "canary_failing",
        "network_policy_blocks",
        "hpa_at_max",
        "edge_latency",
    }
)


# -- the node -------------------------------------------------------------------------------------


async def dependency_tracer(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Map the service graph, read every component's signals, and rank root-cause candidates."""
    ctx = runtime.context
    ctx.say(NODE, "mapping the service graph and reading signals")
    result = await trace(state, ctx)
    transcript = result.transcript
    tokens: TokenUsage | None = None
    findings = result.findings
    if ctx.model_enabled:
        findings, extra, tokens = await with_model(ctx, state, result)
        transcript += extra
    update: dict[str, Any] = {
        "dependency_findings": findings,
        "evidence": result.evidence,
        "transcript": transcript,
    }
    if tokens is not None:
        update["tokens"] = tokens
    return update


@dataclass
class TracerResult:
    findings: DependencyFindings
    evidence: list[Evidence]
    transcript: list[TranscriptEntry]
    snapshot: Snapshot


async def trace(state: IncidentState, ctx: AgentContext) -> TracerResult:
    """The deterministic procedure (the fallback and the baseline of the model path)."""
    log = sg.ToolLog()
    scope = await sg.resolve_scope(state, ctx, log.problems)
    snap = await sg.take_snapshot(ctx, scope, log=log)
    book = EvidenceBook("dep", NODE, state.evidence)
    await collect(ctx, snap, book)
    candidates = localize(book.items, snap.graph, scope)
    findings = findings_from(snap, book.items, candidates)
    transcript = [
        entry(
            ctx,
            NODE,
            "observation",
            f"read {len(log.calls)} tools over {scope.describe()}; "
            f"{len(snap.workloads)} workloads, {len(snap.services)} Services, "
            f"{len(snap.graph.via)} graph edges",
            tools=[f"{t}:{s}" for t, _, s in log.calls][:80],
        )
    ]
    for problem in log.problems[:20]:
        transcript.append(entry(ctx, NODE, "error", f"tool failed: {problem}"))
    for ev in book.items:
        if ev.severity >= 0.4:
            transcript.append(
                entry(ctx, NODE, "evidence", f"[{ev.id}] {ev.summary}", id=ev.id, signal=ev.signal)
            )
    transcript.append(entry(ctx, NODE, "hypothesis", findings.summary))
    return TracerResult(findings, book.items, transcript, snap)


def findings_from(
    snap: Snapshot, evidence: Sequence[Evidence], candidates: list[Candidate]
) -> DependencyFindings:
    edges = [
        GraphEdge(
            source=snap.graph.nodes[src],
            target=snap.graph.nodes[dst],
            via=cast(EdgeVia, how if how in _EDGE_VIAS else "env"),
        )
        for src, dst, how in snap.graph.edges()
    ]
    anomalous = sorted({ev.subject for ev in evidence if is_anomaly(ev)}, key=lambda r: r.key)
    if candidates:
        top = candidates[0]
        why = "; ".join(top.reasons[:3])
        summary = f"most likely origin: {top.subject} (score {top.score:.2f}: {why})"
        others = [f"{c.subject} ({c.score:.2f})" for c in candidates[1:4]]
        if others:
            summary += f"; also: {', '.join(others)}"
    else:
        summary = "no anomalous component: the signals in scope are within their baselines"
    return DependencyFindings(
        nodes=list(snap.graph.nodes.values()),
        edges=edges,
        anomalous=anomalous,
        candidates=candidates,
        summary=summary,
        evidence_ids=[ev.id for ev in evidence],
    )


# -- evidence collection --------------------------------------------------------------------------


async def collect(ctx: AgentContext, snap: Snapshot, book: EvidenceBook) -> None:
    """Every signal the tracer reads: status, config, rollouts, metrics, traces."""
    pod_status(snap, book)
    workload_status(snap, book)
    service_status(snap, book)
    node_status(snap, book)
    object_status(snap, book)
    await asyncio.gather(
        scale_history(ctx, snap, book),
        rollout_changes(ctx, snap, book),
        service_metrics(ctx, snap, book),
        resource_metrics(ctx, snap, book),
    )
    await asyncio.gather(traces(ctx, snap, book), scale_downs(ctx, snap, book))
    await container_details(ctx, snap, book)
    route_health(snap, book)
    network_policies(snap, book)


def _reps(w: Mapping[str, Any]) -> dict[str, int]:
    r = w.get("replicas") or w.get("pods") or {}
    return {k: int(v or 0) for k, v in r.items() if isinstance(v, int | float)}


def workload_status(snap: Snapshot, book: EvidenceBook) -> None:
    for w in snap.workloads:
        kind = str(w.get("kind") or "Deployment")
        subject = sg.ref(kind, str(w.get("namespace")), str(w.get("name")))
        reps = _reps(w)
        desired = reps.get("desired", 0)
        ready = reps.get("ready", 0)
        services = snap.graph.services_of(subject.key)
        if desired == 0 and kind in ("Deployment", "StatefulSet"):
            callers = snap.graph.callers(subject.key)
            severity = 0.9 if callers else (0.75 if services else 0.3)
            book.add(
                source="status",
                signal="scaled_to_zero",
                subject=subject,
                summary=f"{subject} is scaled to 0 replicas"
                + (
                    f"; Services {', '.join(sorted(services))} have nothing behind them"
                    if services
                    else ""
                )
                + (f"; called by {', '.join(sorted(callers))}" if callers else ""),
                severity=severity,
                services=sorted(services),
                callers=sorted(callers),
            )
            continue
        if desired > 0 and ready < desired:
            missing = (desired - ready) / desired
            # New pods of a rollout or a scale-up that are still starting, with nothing wrong
            # with any of them, are no fault (yet).
            pods_in_trouble = any(
                e.subject == subject and e.signal in _POD_TROUBLE for e in book.items
            )
            starting = not pods_in_trouble and any(
                _young(p, snap.now) for p in snap.pods if sg.workload_ref(p) == subject
            )
            book.add(
                source="status",
                signal="replicas_unavailable",
                subject=subject,
                summary=f"{subject}: {ready}/{desired} replicas ready"
                + ("; its newest pods are still starting" if starting else ""),
                severity=0.35 if starting else 0.45 + 0.4 * missing,
                desired=desired,
                ready=ready,
                updated=reps.get("updated"),
                available=reps.get("available"),
            )
        for cond in w.get("conditions") or []:
            if (
                cond.get("type") == "Progressing"
                and cond.get("reason") == "ProgressDeadlineExceeded"
            ):
                book.add(
                    source="status",
                    signal="rollout_stuck",
                    subject=subject,
                    summary=f"{subject} rollout is stuck: {sg.clip(str(cond.get('message')), 200)}",
                    severity=0.7,
                    onset=sg.parse_time(cond.get("since")),
                    message=cond.get("message"),
                )
            if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
                msg = str(cond.get("message") or "")
                book.add(
                    source="status",
                    signal="pending",
                    subject=subject,
                    summary=f"{subject} cannot create pods: {sg.clip(msg, 200)}",
                    severity=0.75,
                    onset=sg.parse_time(cond.get("since")),
                    key="replica_failure",
                    message=msg,
                    quota="quota" in msg.lower(),
                )
        updated = reps.get("updated")
        if (
            kind == "Deployment"
            and desired > 0
            and updated is not None
            and updated < desired
            and reps.get("unavailable", 0) > 0
            and int(w.get("revision") or 1) > 1
        ):
            book.add(
                source="rollout",
                signal="rollout_stuck",
                subject=subject,
                summary=f"{subject} rollout has not completed: {updated}/{desired} replicas "
                f"updated, {reps.get('unavailable')} unavailable",
                severity=0.55,
                updated=updated,
                desired=desired,
            )


def pod_status(snap: Snapshot, book: EvidenceBook) -> None:
    not_ready_nodes = {str(n.get("name")) for n in snap.nodes if n.get("ready") != "True"}
    cutoff = snap.now - RECENT_TERMINATION
    for pod in snap.pods:
        subject = sg.workload_ref(pod)
        name = str(pod.get("name"))
        node = pod.get("node")
        base: dict[str, Any] = {"pod": name, "node": node}
        if pod.get("phase") in ("Succeeded",):
            continue
        on_bad_node = bool(node) and node in not_ready_nodes
        if on_bad_node:
            book.add(
                source="status",
                signal="pods_on_failed_node",
                subject=subject,
                summary=f"pod {name} of {subject} runs on NotReady node {node} "
                f"(status {pod.get('status')}, ready {pod.get('ready')})",
                severity=0.6 if sg.pod_ready(pod) else 0.75,
                key=name,
                **base,
                ready=sg.pod_ready(pod),
                deleting=bool(pod.get("deleting_since")),
                status=pod.get("status"),
            )
        if pod.get("phase") == "Pending" and not pod.get("containers"):
            msg = str(pod.get("message") or "")
            for cond in pod.get("failing_conditions") or []:
                if cond.get("type") == "PodScheduled" and cond.get("message"):
                    msg = str(cond.get("message"))
            book.add(
                source="status",
                signal="pending",
                subject=subject,
                summary=f"pod {name} of {subject} is Pending: "
                f"{sg.clip(msg or 'not scheduled', 200)}",
                severity=0.75,
                onset=sg.parse_time(pod.get("created")),
                key="pod",
                **base,
                message=msg,
            )
        for c in pod.get("containers") or []:
            cname = str(c.get("name"))
            reason = str(c.get("waiting_reason") or "")
            wmsg = str(c.get("waiting_message") or "")
            last = c.get("last_termination") or {}
            finished = sg.parse_time(last.get("finished_at"))
            recent_term = bool(last) and (finished is None or finished >= cutoff)
            common: dict[str, Any] = {
                **base,
                "container": cname,
                "image": c.get("image"),
                "restarts": c.get("restarts"),
            }
            if reason in (
                "ErrImagePull",
                "ImagePullBackOff",
                "InvalidImageName",
                "ErrImageNeverPull",
            ):
                book.add(
                    source="status",
                    signal="image_pull_error",
                    subject=subject,
                    summary=f"{subject} pod {name} container {cname} cannot pull image "
                    f"{c.get('image')}: {reason} {sg.clip(wmsg, 160)}",
                    severity=0.9,
                    onset=sg.parse_time(pod.get("created")),
                    **common,
                    reason=reason,
                    message=wmsg,
                )
            elif reason in (
                "CreateContainerConfigError",
                "CreateContainerError",
                "RunContainerError",
            ):
                book.add(
                    source="status",
                    signal="config_error",
                    subject=subject,
                    summary=f"{subject} pod {name} container {cname}: {reason}: "
                    f"{sg.clip(wmsg, 200)}",
                    severity=0.9,
                    onset=sg.parse_time(pod.get("created")),
                    key="create",
                    **common,
                    reason=reason,
                    message=wmsg,
                    missing_key=sg.config_key(wmsg),
                    at_start=True,
                )
            if last and recent_term:
                term_reason = str(last.get("reason") or "")
                exit_code = last.get("exit_code")
                if term_reason == "OOMKilled" or (exit_code == 137 and "OOM" in term_reason):
                    book.add(
                        source="status",
                        signal="oom_killed",
                        subject=subject,
                        summary=f"{subject} pod {name} container {cname} was OOMKilled "
                        f"(exit {exit_code}, {c.get('restarts')} restarts)",
                        severity=0.9,
                        onset=finished,
                        **common,
                        finished_at=last.get("finished_at"),
                    )
                elif reason == "CrashLoopBackOff" or (
                    exit_code not in (None, 0) and int(c.get("restarts") or 0) > 0
                ):
                    book.add(
                        source="status",
                        signal="crash_loop",
                        subject=subject,
                        summary=f"{subject} pod {name} container {cname} "
                        + (
                            "is in CrashLoopBackOff"
                            if reason == "CrashLoopBackOff"
                            else "restarted"
                        )
                        + f": last exit {term_reason or 'Error'} code {exit_code}, "
                        f"{c.get('restarts')} restarts",
                        severity=0.85 if reason == "CrashLoopBackOff" else 0.7,
                        onset=sg.parse_time(last.get("started_at")) or finished,
                        **common,
                        exit_code=exit_code,
                        term_reason=term_reason,
                        message=last.get("message"),
                        started_at=last.get("started_at"),
                        finished_at=last.get("finished_at"),
                    )
            elif reason == "CrashLoopBackOff":
                book.add(
                    source="status",
                    signal="crash_loop",
                    subject=subject,
                    summary=f"{subject} pod {name} container {cname} is in CrashLoopBackOff",
                    severity=0.85,
                    **common,
                )
            started = sg.parse_time(c.get("started_at"))
            if (
                c.get("state") == "running"
                and not c.get("ready")
                and not on_bad_node
                and pod.get("phase") == "Running"
                and (started is None or snap.now - started >= STARTUP_GRACE)
            ):
                book.add(
                    source="status",
                    signal="not_ready",
                    subject=subject,
                    summary=f"{subject} pod {name} container {cname} is running but not ready",
                    severity=0.6,
                    key=name,
                    **common,
                )


#: A container running but unready for less than this may still be warming up (probes'
#: initial delay and first periods).
STARTUP_GRACE = timedelta(seconds=60)
_POD_TROUBLE = frozenset(
    {"crash_loop", "oom_killed", "image_pull_error", "config_error", "pending", "not_ready"}
)


def _young(pod: Mapping[str, Any], now: datetime) -> bool:
    """A pod created within the startup grace (or whose containers all started within it)."""
    created = sg.parse_time(pod.get("created"))
    return created is not None and now - created < STARTUP_GRACE


def _workload_matches(w: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = w.get("selector") or {}
    return (
        bool(selector)
        and isinstance(labels, dict)
        and all(labels.get(k) == v for k, v in selector.items())
    )


def service_status(snap: Snapshot, book: EvidenceBook) -> None:
    for svc in snap.services:
        ns, name = str(svc.get("namespace")), str(svc.get("name"))
        subject = sg.ref("Service", ns, name)
        selector: dict[str, str] = dict(svc.get("selector") or {})
        if not selector:
            continue
        backers = [
            sg.ref(str(b.kind), b.namespace, b.name)
            for b in (snap.graph.nodes.get(k) for k in snap.graph.backs.get(subject.key, set()))
            if b is not None and b.kind in sg.WORKLOAD_KINDS
        ]
        findings = [str(f) for f in svc.get("findings") or []]
        ready_eps = (svc.get("endpoints") or {}).get("ready") or []
        selected = int(svc.get("selected_pods") or 0)
        callers = sorted(snap.graph.callers(subject.key))
        weight = 0.1 if callers else 0.0
        if selected == 0:
            matching = [
                w
                for w in snap.workloads
                if w.get("namespace") == ns and _workload_matches(w, selector)
            ]
            if backers or matching:
                names = sorted({b.key for b in backers} | {_wkey(w) for w in matching})
                book.add(
                    source="status",
                    signal="no_endpoints",
                    subject=subject,
                    summary=f"Service {ns}/{name} selects {selector} but no pod is running "
                    f"for {', '.join(names)}",
                    severity=0.6 + weight,
                    selector=selector,
                    backers=names,
                    callers=callers,
                )
            else:
                suggestion = suggest_selector(snap, ns, selector, svc)
                book.add(
                    source="config",
                    signal="selector_mismatch",
                    subject=subject,
                    summary=f"Service {ns}/{name} selector {selector} matches no pod and no "
                    "workload's labels"
                    + (
                        f"; {suggestion['workload']} carries {suggestion['selector']}"
                        if suggestion
                        else ""
                    ),
                    severity=0.85 + weight,
                    selector=selector,
                    suggestion=suggestion,
                    callers=callers,
                )
            continue
        port_findings = [f for f in findings if "targets" in f and "declares" in f]
        if port_findings:
            fixes = suggest_ports(svc)
            book.add(
                source="config",
                signal="target_port_mismatch",
                subject=subject,
                summary=f"Service {ns}/{name}: {'; '.join(port_findings)}",
                severity=0.85 + weight,
                fixes=fixes,
                declared=svc.get("declared_container_ports") or [],
                ports=svc.get("ports") or [],
                callers=callers,
            )
        if not ready_eps:
            book.add(
                source="status",
                signal="no_endpoints",
                subject=subject,
                summary=f"Service {ns}/{name} has no ready endpoints ({selected} selected pods, "
                "none ready)",
                severity=0.6 + weight,
                selector=selector,
                backers=[b.key for b in backers],
                callers=callers,
            )


def _wkey(w: Mapping[str, Any]) -> str:
    return sg.ref(
        str(w.get("kind") or "Deployment"), str(w.get("namespace")), str(w.get("name"))
    ).key


def suggest_selector(
    snap: Snapshot, namespace: str, selector: Mapping[str, str], svc: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The workload the Service most likely meant, by label similarity, name and ports."""
    target_ports = {str(p.get("targetPort", p.get("port"))) for p in svc.get("ports") or [] if p}
    best: tuple[float, dict[str, Any]] | None = None
    for w in snap.workloads:
        if w.get("namespace") != namespace:
            continue
        labels = w.get("selector") or {}
        if not isinstance(labels, dict) or not all(k in labels for k in selector):
            continue
        label_sim = min(
            difflib.SequenceMatcher(None, str(v), str(labels[k])).ratio()
            for k, v in selector.items()
        )
        name_sim = difflib.SequenceMatcher(None, str(svc.get("name")), str(w.get("name"))).ratio()
        # Another Service already selecting this workload with the same key set makes it less
        # likely to be the one this Service lost (but frontends often have two Services).
        score = 0.6 * label_sim + 0.4 * name_sim
        if best is None or score > best[0]:
            best = (
                score,
                {
                    "workload": _wkey(w),
                    "selector": {k: str(labels[k]) for k in selector},
                    "similarity": round(score, 3),
                    "target_ports": sorted(target_ports),
                },
            )
    if best is None or best[0] < 0.5:
        return None
    return best[1]


def suggest_ports(svc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For each Service port whose targetPort no selected pod declares: the declared port it
    most likely meant (the only one, the same name, or the nearest number)."""
    declared = list(svc.get("declared_container_ports") or [])
    fixes: list[dict[str, Any]] = []
    for p in svc.get("ports") or []:
        target = p.get("targetPort", p.get("port"))
        ok = any(
            (isinstance(target, str) and not target.isdigit() and d.get("name") == target)
            or str(d.get("containerPort")) == str(target)
            for d in declared
        )
        if ok or not declared:
            continue
        choice: dict[str, Any] | None = None
        named = [d for d in declared if p.get("name") and d.get("name") == p.get("name")]
        if len(declared) == 1:
            choice = declared[0]
        elif named:
            choice = named[0]
        else:
            try:
                want = int(str(target))
                choice = min(declared, key=lambda d: abs(int(d.get("containerPort") or 0) - want))
            except ValueError:
                choice = None
        if choice is not None:
            fixes.append(
                {
                    "port": int(p.get("port")),
                    "target_port": int(choice.get("containerPort") or 0),
                    "was": target,
                    "declared_by": choice.get("container"),
                }
            )
    return fixes


def node_status(snap: Snapshot, book: EvidenceBook) -> None:
    for n in snap.nodes:
        name = str(n.get("name"))
        subject = sg.ref("Node", None, name)
        pods_here = [p for p in snap.pods if p.get("node") == name]
        if n.get("ready") != "True":
            since = None
            for cond in n.get("conditions") or []:
                if cond.get("type") == "Ready":
                    since = sg.parse_time(cond.get("since"))
            affected = sorted({sg.workload_ref(p).key for p in pods_here})
            stuck = [
                {
                    "pod": p.get("name"),
                    "namespace": p.get("namespace"),
                    "workload": sg.workload_ref(p).key,
                    "ready": sg.pod_ready(p),
                    "deleting": bool(p.get("deleting_since")),
                }
                for p in pods_here
            ]
            taints = [t.get("key") for t in n.get("taints") or []]
            book.add(
                source="status",
                signal="node_not_ready",
                subject=subject,
                summary=f"node {name} is NotReady (Ready={n.get('ready')}) with "
                f"{len(pods_here)} pods in scope on it: {', '.join(affected) or 'none'}",
                severity=0.9 if pods_here else 0.6,
                onset=since,
                pods=stuck,
                workloads=affected,
                taints=taints,
                unschedulable=bool(n.get("unschedulable")),
            )
        for cond in n.get("conditions") or []:
            if (
                cond.get("type") in ("MemoryPressure", "DiskPressure", "PIDPressure")
                and cond.get("status") == "True"
            ):
                book.add(
                    source="status",
                    signal="node_pressure",
                    subject=subject,
                    summary=f"node {name} has {cond.get('type')}",
                    severity=0.5,
                    key=str(cond.get("type")),
                    condition=cond.get("type"),
                )


def object_status(snap: Snapshot, book: EvidenceBook) -> None:
    for h in snap.hpas:
        subject = sg.ref("HorizontalPodAutoscaler", str(h.get("namespace")), str(h.get("name")))
        kind, _, tname = str(h.get("target") or "").partition("/")
        target = sg.ref(kind or "Deployment", str(h.get("namespace")), tname).key
        # Every autoscaler is context for a plan: scaling its target by hand would be undone.
        book.add(
            source="status",
            signal="hpa_present",
            subject=subject,
            summary=f"HPA {h.get('namespace')}/{h.get('name')} scales {h.get('target')} between "
            f"{h.get('min_replicas')} and {h.get('max_replicas')} "
            f"(now {h.get('current_replicas')})",
            severity=0.0,
            target=target,
            max_replicas=h.get("max_replicas"),
            min_replicas=h.get("min_replicas"),
            current=h.get("current_replicas"),
        )
        if not h.get("at_max"):
            continue
        book.add(
            source="status",
            signal="hpa_at_max",
            subject=subject,
            summary=f"HPA {h.get('namespace')}/{h.get('name')} wants "
            f"{h.get('desired_replicas')} replicas of {h.get('target')} but its max is "
            f"{h.get('max_replicas')}",
            severity=0.5,
            target=sg.ref(kind or "Deployment", str(h.get("namespace")), tname).key,
            max_replicas=h.get("max_replicas"),
            min_replicas=h.get("min_replicas"),
            current=h.get("current_replicas"),
            desired=h.get("desired_replicas"),
        )
    for q in snap.quotas:
        exhausted = list(q.get("exhausted") or [])
        if not exhausted:
            continue
        subject = sg.ref("ResourceQuota", str(q.get("namespace")), str(q.get("name")))
        book.add(
            source="config",
            signal="quota_exhausted",
            subject=subject,
            summary=f"ResourceQuota {q.get('namespace')}/{q.get('name')} is exhausted: "
            + ", ".join(
                f"{r} {q['resources'][r].get('used')}/{q['resources'][r].get('hard')}"
                for r in exhausted
                if r in (q.get("resources") or {})
            ),
            severity=0.55,
            exhausted=exhausted,
        )


async def scale_history(ctx: AgentContext, snap: Snapshot, book: EvidenceBook) -> None:
    """For a workload scaled to zero: how many replicas it had (its scaling events)."""
    for ev in list(book.items):
        if ev.signal != "scaled_to_zero" or ev.severity < 0.5:
            continue
        data = await sg.read(
            ctx,
            "list_events",
            {
                "namespace": ev.subject.namespace,
                "kind": ev.subject.kind,
                "name": ev.subject.name,
                "include_related": False,
                "limit": 50,
            },
            snap.log.problems,
            snap.log,
        )
        previous: int | None = None
        when = None
        for item in data or []:
            msg = str(item.get("message") or "")
            # "Scaled down replica set redis-cart-5fd5bb78c9 from 1 to 0" (deployment controller)
            m = _SCALED.search(msg)
            if m and int(m.group(2)) == 0 and int(m.group(1)) > 0:
                previous = int(m.group(1))
                when = sg.parse_time(item.get("last_seen"))
                break
        for h in snap.hpas:
            if str(h.get("target", "")).endswith(f"/{ev.subject.name}") and previous is None:
                previous = int(h.get("min_replicas") or 1)
        book.add(
            source="events",
            signal="scaled_to_zero",
            subject=ev.subject,
            summary=ev.summary
            + (f"; it ran {previous} replicas until {when:%H:%M:%S}" if previous and when else ""),
            severity=ev.severity + 0.001,
            onset=when,
            previous_replicas=previous,
        )


_SCALED = __import__("re").compile(r"from (\d+) to (\d+)")
_SCALED_RS = __import__("re").compile(r"Scaled down replica set (\S+) from (\d+) to (\d+)")

#: At most this many struggling Deployments have their scaling events read.
MAX_SCALE_DOWN_CHECKS = 4


async def scale_downs(ctx: AgentContext, snap: Snapshot, book: EvidenceBook) -> None:
    """A struggling Deployment whose replicas someone lowered (not to zero) recently: each
    remaining replica now carries the share of the ones taken away. Reported as the scale-down
    itself (context) and, when the workload saturates, as the rise of the load per replica."""
    struggling: list[ObjectRef] = []
    for ev in book.items:
        if (
            ev.subject.kind == "Deployment"
            and ev.signal in ("saturation", "latency", "error_ratio")
            and ev.severity >= 0.5
            and ev.subject not in struggling
        ):
            struggling.append(ev.subject)

    async def one(subject: ObjectRef) -> None:
        w = snap.workload(subject)
        reps = _reps(w or {})
        desired = reps.get("desired", 0)
        if w is None or desired <= 0 or reps.get("updated", desired) != desired:
            return  # scaled to zero is its own signal; a rollout scales old ReplicaSets down
        data = await sg.read(
            ctx,
            "list_events",
            {
                "namespace": subject.namespace,
                "kind": subject.kind,
                "name": subject.name,
                "include_related": False,
                "limit": 50,
            },
            snap.log.problems,
            snap.log,
        )
        pods = [str(p.get("name") or "") for p in snap.pods_of(subject)]
        latest: tuple[datetime, int, int] | None = None
        for item in data or []:
            # "Scaled down replica set api-5fd5bb78c9 from 3 to 1" (deployment controller)
            m = _SCALED_RS.search(str(item.get("message") or ""))
            when = sg.parse_time(item.get("last_seen"))
            if m is None or when is None or when < snap.now - ROLLOUT_LOOKBACK:
                continue
            rs, before, after = m.group(1), int(m.group(2)), int(m.group(3))
            # Only the ReplicaSet that runs the pods now, down to what the Deployment still
            # asks for: the operator's scale, not a rolling update draining an old ReplicaSet.
            if after != desired or before <= after or not any(p.startswith(rs + "-") for p in pods):
                continue
            if latest is None or when > latest[0]:
                latest = (when, before, after)
        if latest is None:
            return
        when, before, after = latest
        book.add(
            source="events",
            signal="scaled_down",
            subject=subject,
            summary=f"{subject} was scaled down from {before} to {after} replicas at "
            f"{when:%H:%M:%S}",
            severity=0.3,
            onset=when,
            previous_replicas=before,
            replicas=after,
        )
        sat = next(
            (e for e in book.items if e.subject == subject and e.signal == "saturation"), None
        )
        if sat is None:
            return
        factor = before / after
        book.add(
            source="events",
            signal="traffic_increase",
            subject=subject,
            summary=f"each replica of {subject} serves x{factor:.1f} the requests it did: it was "
            f"scaled down from {before} to {after} replicas at {when:%H:%M:%S} (the total "
            "request rate did not change)",
            severity=0.3,
            onset=when,
            key="per_replica",
            factor=factor,
            per_replica=True,
            previous_replicas=before,
            replicas=after,
        )

    await asyncio.gather(*(one(s) for s in struggling[:MAX_SCALE_DOWN_CHECKS]))


async def rollout_changes(ctx: AgentContext, snap: Snapshot, book: EvidenceBook) -> None:
    """Revisions created within the lookback: the candidates for a roll back."""
    deployments = [
        w
        for w in snap.workloads
        if w.get("kind") == "Deployment" and int(w.get("revision") or 1) > 1
    ]

    async def one(w: Mapping[str, Any]) -> None:
        subject = sg.ref("Deployment", str(w.get("namespace")), str(w.get("name")))
        data = await sg.read(
            ctx,
            "rollout_history",
            {"namespace": subject.namespace, "name": subject.name},
            snap.log.problems,
            snap.log,
        )
        if not data:
            return
        revisions = sorted(data.get("revisions") or [], key=lambda r: int(r.get("revision") or 0))
        current = int(data.get("current_revision") or 0)
        cur = next((r for r in revisions if int(r.get("revision") or 0) == current), None)
        earlier = [r for r in revisions if int(r.get("revision") or 0) < current]
        if cur is None or not earlier:
            return
        created = sg.parse_time(cur.get("created"))
        if created is None or created < snap.now - ROLLOUT_LOOKBACK:
            return
        prev = earlier[-1]
        changed = {
            c: (prev.get("images") or {}).get(c)
            for c, img in (cur.get("images") or {}).items()
            if (prev.get("images") or {}).get(c) != img
        }
        book.add(
            source="rollout",
            signal="rollout_changed",
            subject=subject,
            summary=f"{subject} moved to revision {current} at {created:%H:%M:%S} "
            f"({sg.clip(str(cur.get('change_cause') or 'no change-cause'), 120)}); "
            f"revision {prev.get('revision')} ran "
            + (
                ", ".join(f"{c}={img}" for c, img in (prev.get("images") or {}).items())
                or "the same images"
            ),
            severity=0.3,
            onset=created,
            revision=current,
            previous_revision=int(prev.get("revision") or 0),
            previous_images=prev.get("images") or {},
            images=cur.get("images") or {},
            changed_images=changed,
            change_cause=cur.get("change_cause"),
            created=cur.get("created"),
        )

    await asyncio.gather(*(one(w) for w in deployments))


def _targets(snap: Snapshot) -> list[dict[str, Any]]:
    """Services to read metrics for: the focus and its dependencies first, capped."""
    focus_keys = {r.key for r in snap.scope.focus}
    near: set[str] = set(focus_keys)
    for key in list(focus_keys):
        near |= snap.graph.dependencies(key)
        for svc in snap.graph.services_of(key):
            near |= snap.graph.dependencies(svc)
    ordered = sorted(
        snap.services,
        key=lambda s: (
            sg.ref("Service", str(s.get("namespace")), str(s.get("name"))).key not in near,
            str(s.get("name")),
        ),
    )
    return ordered[:MAX_METRIC_TARGETS]


def metric_subject(snap: Snapshot, service: ObjectRef) -> ObjectRef:
    """The component a Service's golden signals describe: its one backing workload, else itself
    (also when an HTTPRoute splits the Service's traffic across other Services)."""
    routed = any(
        k.startswith("Service/") and k != service.key
        for k in snap.graph.backs.get(service.key, set())
    )
    if routed:
        return service
    return snap.index.serving_workload(service) or service


async def service_metrics(ctx: AgentContext, snap: Snapshot, book: EvidenceBook) -> None:
    async def one(svc: Mapping[str, Any]) -> None:
        service = sg.ref("Service", str(svc.get("namespace")), str(svc.get("name")))
        data = await sg.read(
            ctx,
            "service_metrics",
            {
                "namespace": service.namespace,
                "service": service.name,
                "minutes": METRICS_MINUTES,
                "step_seconds": METRICS_STEP_S,
                "include_points": True,
            },
            snap.log.problems,
            snap.log,
        )
        if not data:
            return
        subject = metric_subject(snap, service)
        rate = sg.trend(
            sg.series_points(data.get("request_rate")), now=snap.now, anomalous=sg.rate_increased
        )
        err = sg.trend(
            sg.series_points(data.get("error_ratio")), now=snap.now, anomalous=sg.error_anomalous
        )
        lat = sg.trend(
            sg.series_points(data.get("latency_p99")), now=snap.now, anomalous=sg.latency_anomalous
        )
        common: dict[str, Any] = {"service": service.key, "key": service.key}
        if err.recent is not None and err.baseline is not None:
            if sg.error_anomalous(err.recent, err.baseline):
                book.add(
                    source="metrics",
                    signal="error_ratio",
                    subject=subject,
                    summary=f"{service.namespace}/{service.name} error ratio "
                    f"{sg.fmt_ratio(err.recent)} (baseline {sg.fmt_ratio(err.baseline)})",
                    severity=0.5 + 0.45 * min(1.0, err.recent),
                    onset=err.onset,
                    baseline=err.baseline,
                    recent=err.recent,
                    last=err.last,
                    **common,
                )
            elif err.window_max is not None and sg.error_anomalous(err.window_max, err.baseline):
                book.add(
                    source="metrics",
                    signal="recovered_anomaly",
                    subject=subject,
                    summary=f"{service.namespace}/{service.name} error ratio peaked at "
                    f"{sg.fmt_ratio(err.window_max)} earlier and is back to "
                    f"{sg.fmt_ratio(err.recent)} (baseline {sg.fmt_ratio(err.baseline)})",
                    severity=0.2,
                    metric="error_ratio",
                    peak=err.window_max,
                    recent=err.recent,
                    baseline=err.baseline,
                    **common,
                )
        if (
            lat.recent is not None
            and lat.baseline is not None
            and sg.latency_anomalous(lat.recent, lat.baseline)
        ):
            ratio = lat.recent / max(lat.baseline, 1e-3)
            book.add(
                source="metrics",
                signal="latency",
                subject=subject,
                summary=f"{service.namespace}/{service.name} p99 latency "
                f"{sg.fmt_ms(lat.recent)} (baseline {sg.fmt_ms(lat.baseline)})",
                severity=min(0.9, 0.5 + 0.08 * math.log2(max(ratio, 1.0))),
                onset=lat.onset,
                baseline=lat.baseline,
                recent=lat.recent,
                **common,
            )
        if rate.recent is not None and rate.baseline is not None:
            if sg.rate_increased(rate.recent, rate.baseline):
                book.add(
                    source="metrics",
                    signal="traffic_increase",
                    subject=subject,
                    summary=f"{service.namespace}/{service.name} request rate "
                    f"{rate.recent:.1f}/s (baseline {rate.baseline:.1f}/s, "
                    f"x{rate.recent / rate.baseline:.1f})",
                    severity=0.3,
                    onset=rate.onset,
                    baseline=rate.baseline,
                    recent=rate.recent,
                    factor=rate.recent / rate.baseline,
                    **common,
                )
            elif rate.baseline > 1.0 and rate.recent <= 0.3 * rate.baseline:
                book.add(
                    source="metrics",
                    signal="traffic_drop",
                    subject=subject,
                    summary=f"{service.namespace}/{service.name} request rate fell to "
                    f"{rate.recent:.1f}/s (baseline {rate.baseline:.1f}/s)",
                    severity=0.3,
                    baseline=rate.baseline,
                    recent=rate.recent,
                    **common,
                )

    await asyncio.gather(*(one(s) for s in _targets(snap)))


def _pod_series(
    block: Mapping[str, Any] | None,
) -> list[tuple[str, str, list[tuple[datetime, float]]]]:
    out = []
    for s in (block or {}).get("series") or []:
        labels = s.get("labels") or {}
        points = sg.series_points({"series": [s]})
        out.append((str(labels.get("pod") or ""), str(labels.get("container") or ""), points))
    return out


#: A container using this share of its CPU or memory limit now gets its history read.
HOT_CPU_PCT = 45.0
HOT_MEMORY_PCT = 70.0


async def hot_workloads(ctx: AgentContext, snap: Snapshot) -> set[str] | None:
    """Workloads whose containers run hot now (metrics.k8s.io), or None when it cannot say:
    the history of every container is expensive to read; the cold ones need none."""
    hot: set[str] = set()
    for ns in snap.scope.namespaces:
        data = await sg.read(ctx, "top_pods", {"namespace": ns, "limit": 500}, [], snap.log)
        if data is None:
            return None
        for row in data:
            cpu = float(row.get("cpu_pct_of_limit") or 0.0)
            mem = float(row.get("memory_pct_of_limit") or 0.0)
            if cpu >= HOT_CPU_PCT or mem >= HOT_MEMORY_PCT:
                hot.add(snap.owner_of("Pod", ns, str(row.get("pod"))).key)
    for pod in snap.pods:
        if int(pod.get("restarts") or 0) > 0:
            hot.add(sg.workload_ref(pod).key)
    return hot


async def resource_metrics(ctx: AgentContext, snap: Snapshot, book: EvidenceBook) -> None:
    hot = await hot_workloads(ctx, snap)

    async def one(w: Mapping[str, Any]) -> None:
        subject = sg.ref(
            str(w.get("kind") or "Deployment"), str(w.get("namespace")), str(w.get("name"))
        )
        if _reps(w).get("desired", 1) == 0:
            return
        data = await sg.read(
            ctx,
            "workload_resource_metrics",
            {
                "namespace": subject.namespace,
                "workload": subject.name,
                "minutes": METRICS_MINUTES,
                "step_seconds": METRICS_STEP_S,
                "include_points": True,
            },
            snap.log.problems,
            snap.log,
        )
        if not data:
            return
        # CPU: the pods' mean share of their limit, recent against baseline.
        cpu_series = _pod_series(data.get("cpu_vs_limit"))
        if cpu_series:
            merged = _merge_mean([pts for _, _, pts in cpu_series])
            t = sg.trend(
                merged, now=snap.now, anomalous=lambda v, b: v >= max(CPU_SATURATED, 1.8 * b)
            )
            recent_max = max(
                (sg.trend(pts, now=snap.now).recent or 0.0) for _, _, pts in cpu_series
            )
            if t.recent is not None and t.baseline is not None:
                saturated = recent_max >= CPU_SATURATED or (
                    t.recent >= 0.5 and t.recent >= 1.8 * max(t.baseline, 0.01)
                )
                if saturated:
                    book.add(
                        source="metrics",
                        signal="saturation",
                        subject=subject,
                        summary=f"{subject} CPU at {100 * t.recent:.0f}% of its limit "
                        f"(busiest pod {100 * recent_max:.0f}%, baseline {100 * t.baseline:.0f}%)",
                        severity=0.55 + 0.3 * min(1.0, recent_max),
                        onset=t.onset,
                        resource="cpu",
                        recent=t.recent,
                        busiest=recent_max,
                        baseline=t.baseline,
                        replicas=_reps(w).get("desired"),
                    )
                book.add(
                    source="metrics",
                    signal="cpu_usage",
                    subject=subject,
                    summary=f"{subject} CPU {100 * t.recent:.0f}% of limit "
                    f"(baseline {100 * t.baseline:.0f}%)",
                    severity=0.05,
                    recent=t.recent,
                    baseline=t.baseline,
                    busiest=recent_max,
                    replicas=_reps(w).get("desired"),
                )
        mem_series = _pod_series(data.get("memory_vs_limit"))
        for pod, container, pts in mem_series:
            if len(pts) < 4:
                continue
            t = sg.trend(pts, now=snap.now)
            peak = max(v for _, v in pts)
            # A working set that climbs steadily toward the limit is a leak (or a too-small
            # limit): growth over the window, ending near the limit.
            first, last = pts[0][1], pts[-1][1]
            slope = _slope(pts)
            if (peak >= 0.85 and slope > 0 and (last - first) >= 0.2) or peak >= 0.97:
                book.add(
                    source="metrics",
                    signal="memory_growth",
                    subject=subject,
                    summary=f"{subject} pod {pod} container {container} memory reached "
                    f"{100 * peak:.0f}% of its limit (now {100 * last:.0f}%, "
                    f"{100 * slope * 60:.1f} points/min)",
                    severity=0.45,
                    key=f"{pod}/{container}",
                    pod=pod,
                    container=container,
                    peak_ratio=peak,
                    last_ratio=last,
                    slope_per_min=slope * 60,
                    recent=t.recent,
                )

    wanted = [w for w in snap.workloads if hot is None or _wkey(w) in hot]
    await asyncio.gather(*(one(w) for w in wanted[:MAX_METRIC_TARGETS]))


def _merge_mean(series: Sequence[Sequence[tuple[datetime, float]]]) -> list[tuple[datetime, float]]:
    acc: dict[datetime, list[float]] = {}
    for pts in series:
        for t, v in pts:
            acc.setdefault(t, []).append(v)
    return [(t, sum(vs) / len(vs)) for t, vs in sorted(acc.items())]


def _slope(points: Sequence[tuple[datetime, float]]) -> float:
    """Least-squares slope per second."""
    if len(points) < 2:
        return 0.0
    t0 = points[0][0]
    xs = [(t - t0).total_seconds() for t, _ in points]
    ys = [v for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


async def container_details(ctx: AgentContext, snap: Snapshot, book: EvidenceBook) -> None:
    """For workloads with an OOM kill, a saturation or a port problem: their containers'
    resources, ports and credentials (what the planner's actions must name)."""
    wanted: dict[str, ObjectRef] = {}
    for ev in book.items:
        if (
            ev.signal in ("oom_killed", "saturation", "memory_growth", "auth_error")
            and ev.subject.kind in sg.WORKLOAD_KINDS
        ):
            wanted[ev.subject.key] = ev.subject
    # Containers the kubelet kills (SIGKILL without an OOM) or keeps unready: their probes.
    killed = {
        ev.subject.key
        for ev in book.items
        if ev.signal == "crash_loop" and ev.data.get("exit_code") == 137
    }
    unready = {ev.subject.key for ev in book.items if ev.signal == "not_ready"}
    for ev in book.items:
        if ev.subject.key in killed | unready and ev.subject.kind in sg.WORKLOAD_KINDS:
            wanted[ev.subject.key] = ev.subject

    async def one(subject: ObjectRef) -> None:
        data = await sg.read(
            ctx,
            "describe_workload",
            {"kind": subject.kind, "namespace": subject.namespace, "name": subject.name},
            snap.log.problems,
            snap.log,
        )
        if not data:
            return
        containers = (data.get("template") or {}).get("containers") or []
        specs = {
            str(c.get("name")): {
                "limits": (c.get("resources") or {}).get("limits") or {},
                "requests": (c.get("resources") or {}).get("requests") or {},
                "image": c.get("image"),
            }
            for c in containers
        }
        secrets = sorted(
            {
                str(e.get("from", "")).split()[1]
                for c in containers
                for e in c.get("env") or []
                if str(e.get("from", "")).startswith("secret ")
            }
            | {
                str(x).split()[-1]
                for c in containers
                for x in c.get("env_from") or []
                if str(x).startswith("secretRef")
            }
        )
        for c in containers:
            for probe, hit in (("liveness", killed), ("readiness", unready)):
                if subject.key in hit:
                    _probe_port_check(book, subject, c, probe)
        book.add(
            source="config",
            signal="container_spec",
            subject=subject,
            summary=f"{subject} containers: "
            + "; ".join(
                f"{n} limits {s['limits'] or 'none'} requests {s['requests'] or 'none'}"
                for n, s in specs.items()
            ),
            severity=0.0,
            containers=specs,
            secrets=secrets,
        )

    await asyncio.gather(*(one(s) for s in wanted.values()))


def _probe_port_check(
    book: EvidenceBook, subject: ObjectRef, container: Mapping[str, Any], probe: str
) -> None:
    """A probe aimed at a port its container does not declare, on a container the kubelet
    kills (liveness) or keeps unready (readiness): the probe is set wrong, not the process."""
    spec = container.get(f"{probe}_probe") or {}
    target: Any = None
    for handler in ("grpc", "tcp_socket"):
        if spec.get(handler) is not None:
            target = spec[handler]
    if target is None and isinstance(spec.get("http_get"), str):
        target = str(spec["http_get"]).rsplit(":", 1)[-1]
    ports = [p for p in container.get("ports") or [] if isinstance(p, Mapping)]
    if target is None or not ports:
        return  # no port to compare (exec probe), or nothing declared to compare it with
    numbers = {str(p.get("containerPort")) for p in ports}
    names = {str(p.get("name")) for p in ports if p.get("name")}
    if str(target) in numbers or str(target) in names:
        return
    book.add(
        source="config",
        signal="probe_misconfigured",
        subject=subject,
        summary=f"{subject} container {container.get('name')}'s {probe} probe checks port "
        f"{target}, which it does not declare (it declares {', '.join(sorted(numbers))}); "
        + (
            "the kubelet kills the container when the probe fails"
            if probe == "liveness"
            else "its pods stay unready while the probe fails"
        ),
        severity=0.6,
        key=f"{container.get('name')}:{probe}",
        container=container.get("name"),
        probe=probe,
        port=target,
        declared=sorted(numbers),
    )


# -- traces ---------------------------------------------------------------------------------------


#: Calls a caller must have made to a peer before their failed share counts as its error ratio.
MIN_CLIENT_CALLS = 5
#: At most this many unanswered caller -> callee edges get their error ratio read.
MAX_UNANSWERED_EDGES = 3


async def _unanswered_ratio(
    ctx: AgentContext,
    snap: Snapshot,
    book: EvidenceBook,
    unanswered: Mapping[tuple[str, str], list[float]],
) -> None:
    """A callee that answers none of the calls (no span of its own, the caller times out) and
    reports no request metrics of its own (a database): its error ratio as its callers' client
    spans see it, over all recent traces through the caller (not only the failing ones)."""
    edges = sorted(unanswered, key=lambda e: -len(unanswered[e]))[:MAX_UNANSWERED_EDGES]
    edges = [e for e in edges if len(unanswered[e]) >= 3]
    results = await asyncio.gather(
        *(
            sg.read(
                ctx,
                "find_traces",
                {"service": caller, "errors_only": False, "minutes": TRACE_MINUTES, "limit": 50},
                snap.log.problems,
                snap.log,
            )
            for caller, _ in edges
        )
    )
    for (caller, peer), data in zip(edges, results, strict=True):
        callee = snap.index.trace_service(peer)
        if callee is None:
            continue
        if any(e.signal == "error_ratio" and e.subject == callee for e in book.items):
            continue  # its own metrics say it already
        total = failed = 0
        for t in data or []:
            for span in t.get("spans") or []:
                if span.get("kind") == "client" and str(span.get("peer")) == peer:
                    total += 1
                    failed += bool(span.get("error"))
        if total < MIN_CLIENT_CALLS or failed / total < 0.2:
            continue
        ratio = failed / total
        book.add(
            source="traces",
            signal="error_ratio",
            subject=callee,
            summary=f"{ratio:.0%} of {total} recent calls from {caller} to {peer} fail "
            f"unanswered (the callers' client spans; {peer} reports no requests of its own)",
            severity=min(0.9, 0.5 + 0.4 * ratio),
            key="client_side",
            recent=ratio,
            client_side=True,
            calls=total,
        )


@dataclass
class _Blame:
    count: int = 0
    messages: list[str] = field(default_factory=list)
    callers: set[str] = field(default_factory=set)
    classes: dict[str, int] = field(default_factory=dict)


async def traces(ctx: AgentContext, snap: Snapshot, book: EvidenceBook) -> None:
    """Where failing and slow requests fail: the deepest failing span, the slowest hop."""
    anomalous_services: list[str] = []
    slow_services: list[str] = []
    for ev in book.items:
        svc = ev.data.get("service")
        if not isinstance(svc, str):
            continue
        name = sg.ref_from_key(svc).name
        if ev.signal == "error_ratio" and name not in anomalous_services:
            anomalous_services.append(name)
        if ev.signal == "latency" and name not in slow_services:
            slow_services.append(name)
    for r in snap.scope.services:
        if r.name not in anomalous_services:
            anomalous_services.insert(0, r.name)
    if not anomalous_services and not slow_services:
        return
    blames: dict[str, _Blame] = {}
    slow: dict[tuple[str, str], list[float]] = {}
    origin_slow: dict[str, list[float]] = {}
    unanswered: dict[tuple[str, str], list[float]] = {}
    calls = [
        sg.read(
            ctx,
            "find_traces",
            {"service": s, "errors_only": True, "minutes": TRACE_MINUTES, "limit": 20},
            snap.log.problems,
            snap.log,
        )
        for s in anomalous_services[:6]
    ]
    slow_calls = [
        sg.read(
            ctx,
            "find_traces",
            {
                "service": s,
                "errors_only": False,
                "minutes": TRACE_MINUTES,
                "limit": 10,
                "min_duration_ms": 250,
            },
            snap.log.problems,
            snap.log,
        )
        for s in slow_services[:4]
    ]
    results = await asyncio.gather(*calls, *slow_calls)
    stopped: list[tuple[str, datetime]] = []
    for service, data in zip(anomalous_services[:6], results[: len(calls)], strict=False):
        newest: datetime | None = None
        for t in data or []:
            _blame_errors(t, blames, snap.index)
            start = sg.parse_time(t.get("start"))
            if start is not None and (newest is None or start > newest):
                newest = start
        if newest is not None and snap.now - newest >= ERRORS_STOPPED_AFTER:
            stopped.append((service, newest))
    await _errors_stopped(ctx, snap, book, stopped)
    for data in results[len(calls) :]:
        for t in data or []:
            _blame_latency(t, slow, origin_slow, unanswered)
    for key, b in blames.items():
        subject = _trace_subject(key, snap.index)
        cls = max(b.classes, key=lambda c: b.classes[c]) if b.classes else "other"
        if subject is None:
            # A peer no Service or workload is called: a missing Service when it looks like one.
            host = key.removeprefix("?")
            if cls == "dns" or sg.looks_cluster_local(host, snap.index):
                ns = snap.scope.namespaces[0] if snap.scope.namespaces else ""
                callers = sorted(b.callers)
                book.add(
                    source="traces",
                    signal="missing_service",
                    subject=sg.ref("Service", ns, host.split(".")[0]),
                    summary=f"{', '.join(callers) or 'callers'} call {host!r}, which no Service "
                    f"in the cluster is called ({b.count} failing traces): "
                    f"{sg.quote_untrusted(b.messages[0] if b.messages else '', 200)}",
                    severity=0.85,
                    callers=callers,
                    host=host,
                    failure=cls,
                )
            continue
        book.add(
            source="traces",
            signal="trace_origin" if cls != "auth" else "auth_error",
            subject=subject,
            summary=f"{b.count} failing traces fail in {subject} "
            f"({cls}; called by {', '.join(sorted(b.callers)) or 'the entry'}): "
            f"{sg.quote_untrusted(b.messages[0] if b.messages else '', 200)}",
            severity=min(0.8, 0.45 + 0.03 * b.count) if cls != "auth" else 0.75,
            key="errors",
            count=b.count,
            failure=cls,
            callers=sorted(b.callers),
            exemplar=b.messages[0] if b.messages else "",
        )
    for (caller, peer), waits in slow.items():
        callee = snap.index.trace_service(peer)
        caller_ref = snap.index.trace_service(caller)
        if callee is None or caller_ref is None:
            continue
        avg = sum(waits) / len(waits)
        book.add(
            source="traces",
            signal="edge_latency",
            subject=callee,
            summary=f"calls from {caller_ref} to {peer} spend {avg:.0f} ms on the way "
            f"(no time inside {peer} accounts for it; {len(waits)} slow spans)",
            severity=0.65 if len(waits) >= 3 else 0.5,
            key=caller_ref.key,
            caller=caller_ref.key,
            peer=peer,
            wait_ms=avg,
        )
    await _unanswered_ratio(ctx, snap, book, unanswered)
    for (caller, peer), waits in unanswered.items():
        callee = snap.index.trace_service(peer)
        caller_ref = snap.index.trace_service(caller)
        if callee is None or caller_ref is None:
            continue
        avg = sum(waits) / len(waits)
        book.add(
            source="traces",
            signal="trace_origin",
            subject=callee,
            summary=f"calls from {caller_ref} to {peer} get no answer: they fail after "
            f"{avg:.0f} ms and {peer} records no span for them ({len(waits)} calls)",
            severity=0.6 if len(waits) >= 3 else 0.45,
            key=f"unanswered:{caller_ref.key}",
            count=len(waits),
            failure="timeout",
            unanswered=True,
            callers=[caller_ref.key],
            wait_ms=avg,
        )
    for service, selfs in origin_slow.items():
        subject = snap.index.trace_service(service)
        if subject is None:
            continue
        book.add(
            source="traces",
            signal="trace_origin",
            subject=subject,
            summary=f"slow traces spend {sum(selfs) / len(selfs):.0f} ms inside {subject} itself "
            f"({len(selfs)} slow spans)",
            severity=0.55 if len(selfs) >= 3 else 0.45,
            key="latency",
            count=len(selfs),
            failure="slow",
            self_ms=sum(selfs) / len(selfs),
        )


#: The newest failing trace this old, with successful ones after it: the errors stopped.
ERRORS_STOPPED_AFTER = timedelta(seconds=30)


async def _errors_stopped(
    ctx: AgentContext, snap: Snapshot, book: EvidenceBook, stopped: Sequence[tuple[str, datetime]]
) -> None:
    """A Service whose failing traces ended a while ago and whose requests succeed since: the
    error ratio still shows the last minute's failures, but the failure is over."""
    for service, newest in stopped:
        data = await sg.read(
            ctx,
            "find_traces",
            {"service": service, "errors_only": False, "minutes": 1, "limit": 10},
            snap.log.problems,
            snap.log,
        )
        ok_after = [
            t
            for t in data or []
            if not t.get("error_spans") and (sg.parse_time(t.get("start")) or newest) > newest
        ]
        if not ok_after:
            continue
        svc = snap.index.service(service)
        subject = metric_subject(snap, svc) if svc else snap.index.trace_service(service)
        if subject is None:
            continue
        book.add(
            source="traces",
            signal="errors_stopped",
            subject=subject,
            summary=f"the newest failing trace through {service} started at {newest:%H:%M:%S} "
            f"({(snap.now - newest).total_seconds():.0f}s ago); {len(ok_after)} requests "
            "since succeeded",
            severity=0.2,
            key="traces",
            service=service,
            last_error=newest.isoformat(),
            ok_after=len(ok_after),
        )


def _trace_subject(key: str, index: NameIndex) -> ObjectRef | None:
    if key.startswith("?"):
        return None
    if key.startswith("svc:"):
        return index.service(key.removeprefix("svc:"))
    return index.trace_service(key)


def _blame_errors(t: Mapping[str, Any], blames: dict[str, _Blame], index: NameIndex) -> None:
    spans = list(t.get("spans") or [])
    errors = [s for s in t.get("error_spans") or spans if s.get("error")]
    if not errors:
        return
    by_parent: dict[str, list[Mapping[str, Any]]] = {}
    for s in spans:
        by_parent.setdefault(str(s.get("parent_id")), []).append(s)
    error_ids = {str(s.get("span_id")) for s in errors}
    leaves = [
        s
        for s in errors
        if not any(
            str(c.get("span_id")) in error_ids for c in by_parent.get(str(s.get("span_id")), [])
        )
    ]
    seen: set[str] = set()
    for leaf in leaves:
        message = str(leaf.get("status") or "")
        cls = sg.failure_class(message)
        service = str(leaf.get("service") or "")
        peer = leaf.get("peer")
        caller: str | None
        if leaf.get("kind") == "client" and peer and cls != "auth":
            # The call to `peer` failed: blame what the caller reached for, its Service when
            # one has that name (the Service's own candidates then say what is behind it).
            target = str(peer)
            if index.service(target.split(".")[0]) is not None:
                target = "svc:" + target.split(".")[0]
            elif cls == "dns" or index.trace_service(target) is None:
                target = "?" + target
            caller = service
        else:
            target, caller = service, None
            parent = next((s for s in spans if s.get("span_id") == leaf.get("parent_id")), None)
            if parent is not None and parent.get("service") != service:
                caller = str(parent.get("service"))
        if target in seen:
            continue
        seen.add(target)
        b = blames.setdefault(target, _Blame())
        b.count += 1
        if len(b.messages) < 3 and message and message not in b.messages:
            b.messages.append(message)
        if caller:
            b.callers.add(caller)
        b.classes[cls] = b.classes.get(cls, 0) + 1


def _blame_latency(
    t: Mapping[str, Any],
    slow: dict[tuple[str, str], list[float]],
    origin: dict[str, list[float]],
    unanswered: dict[tuple[str, str], list[float]] | None = None,
) -> None:
    spans = list(t.get("spans") or [])
    if not spans:
        return
    children: dict[str, list[Mapping[str, Any]]] = {}
    for s in spans:
        children.setdefault(str(s.get("parent_id")), []).append(s)
    best: tuple[float, Mapping[str, Any]] | None = None
    for s in spans:
        kids = children.get(str(s.get("span_id")), [])
        self_ms = float(s.get("duration_ms") or 0.0) - sum(
            float(k.get("duration_ms") or 0.0) for k in kids
        )
        if best is None or self_ms > best[0]:
            best = (self_ms, s)
    if best is None or best[0] < 100.0:
        return
    self_ms, span = best
    total = float(t.get("duration_ms") or 0.0)
    if total > 0 and self_ms < 0.3 * total:
        return
    if span.get("kind") == "client" and span.get("peer"):
        if (
            unanswered is not None
            and span.get("error")
            and not children.get(str(span.get("span_id")))
        ):
            # The call failed and the callee recorded no span for it: nothing answered. That is
            # no proof the time went "on the way"; a hung callee looks exactly like this.
            unanswered.setdefault((str(span.get("service")), str(span.get("peer"))), []).append(
                self_ms
            )
            return
        slow.setdefault((str(span.get("service")), str(span.get("peer"))), []).append(self_ms)
    else:
        origin.setdefault(str(span.get("service")), []).append(self_ms)


def route_health(snap: Snapshot, book: EvidenceBook) -> None:
    """An HTTPRoute that splits traffic across backends where one backend fails: a canary."""
    bad: dict[str, Evidence] = {}
    for ev in book.items:
        if ev.severity < 0.5 or ev.signal in sg.CONTEXT_SIGNALS:
            continue
        svc = ev.data.get("service")
        keys = {ev.subject.key}
        if isinstance(svc, str):
            keys.add(svc)
        for k in keys:
            bad.setdefault(k, ev)
    for route in snap.routes:
        ns = str(route.get("namespace"))
        for rule in route.get("rules") or []:
            backends = [
                b for b in rule.get("backends") or [] if (b.get("kind") or "Service") == "Service"
            ]
            if len(backends) < 2:
                continue
            failing: list[tuple[dict[str, Any], Evidence]] = []
            healthy: list[dict[str, Any]] = []
            for b in backends:
                svc = sg.ref("Service", str(b.get("namespace") or ns), str(b.get("name")))
                workload = snap.index.serving_workload(svc)
                hit = bad.get(svc.key) or (bad.get(workload.key) if workload else None)
                if hit is not None:
                    failing.append((b, hit))
                else:
                    healthy.append(b)
            if not failing or not healthy:
                continue
            subject = sg.ref("HTTPRoute", ns, str(route.get("name")))
            weights = {str(b.get("name")): int(b.get("weight") or 0) for b in backends}
            book.add(
                source="config",
                signal="canary_failing",
                subject=subject,
                summary=f"HTTPRoute {ns}/{route.get('name')} rule {rule.get('index')} sends "
                + ", ".join(f"{b.get('share_pct')}% to {b.get('name')}" for b, _ in failing)
                + f", which fails ([{failing[0][1].id}] {sg.clip(failing[0][1].summary, 120)}); "
                + ", ".join(f"{b.get('name')} is healthy" for b in healthy),
                severity=0.85,
                key=str(rule.get("index")),
                rule_index=int(rule.get("index") or 0),
                weights=weights,
                failing=[str(b.get("name")) for b, _ in failing],
                failing_workloads=[
                    w.key
                    for b, _ in failing
                    if (
                        w := snap.index.serving_workload(
                            sg.ref("Service", str(b.get("namespace") or ns), str(b.get("name")))
                        )
                    )
                    is not None
                ],
                healthy=[str(b.get("name")) for b in healthy],
                failing_evidence=[ev.id for _, ev in failing],
            )


def network_policies(snap: Snapshot, book: EvidenceBook) -> None:
    """A NetworkPolicy that selects a failing callee and admits none of its failing callers."""
    failing_callees: dict[str, Evidence] = {}
    for ev in book.items:
        if ev.signal in ("trace_origin", "error_ratio", "latency") and ev.severity >= 0.5:
            failing_callees.setdefault(ev.subject.key, ev)
    for ev in book.items:
        # A caller's calls that time out on the way to a callee: the egress side's trouble.
        if ev.signal == "edge_latency" and ev.severity >= 0.5:
            failing_callees.setdefault(ev.subject.key, ev)
    for pol in snap.netpols:
        ns = str(pol.get("namespace"))
        sel = (pol.get("pod_selector") or {}).get("matchLabels") or {}
        types = pol.get("policy_types") or []
        if "Egress" in types:
            _egress_policy(snap, book, pol, failing_callees)
        if "Ingress" not in types:
            continue
        selected = [
            w
            for w in snap.workloads
            if w.get("namespace") == ns
            and all((w.get("selector") or {}).get(k) == v for k, v in sel.items())
        ]
        for w in selected:
            wref = sg.ref(str(w.get("kind") or "Deployment"), ns, str(w.get("name")))
            callers = snap.graph.callers(wref.key)
            blocked = [c for c in callers if not _admits(pol, snap, c)]
            if not blocked:
                continue
            trouble: Evidence | None = failing_callees.get(wref.key) or next(
                (failing_callees[c] for c in blocked if c in failing_callees), None
            )
            book.add(
                source="config",
                signal="network_policy_blocks",
                subject=sg.ref("NetworkPolicy", ns, str(pol.get("name"))),
                summary=f"NetworkPolicy {ns}/{pol.get('name')} selects {wref} and admits none of "
                f"its callers {', '.join(sorted(blocked))}"
                + (f"; they fail ([{trouble.id}])" if trouble else ""),
                severity=0.85 if trouble else 0.4,
                onset=sg.parse_time(pol.get("created")),
                key=wref.key,
                selects=wref.key,
                blocked=sorted(blocked),
            )


def _egress_policy(
    snap: Snapshot, book: EvidenceBook, pol: Mapping[str, Any], failing: Mapping[str, Evidence]
) -> None:
    """An egress NetworkPolicy that selects a caller and lets none of its calls reach one of
    its dependencies (a default-deny egress that forgot a callee)."""
    ns = str(pol.get("namespace"))
    sel = (pol.get("pod_selector") or {}).get("matchLabels") or {}
    for w in snap.workloads:
        if w.get("namespace") != ns or not all(
            (w.get("selector") or {}).get(k) == v for k, v in sel.items()
        ):
            continue
        wref = sg.ref(str(w.get("kind") or "Deployment"), ns, str(w.get("name")))
        blocked: set[str] = set()
        for svc in snap.graph.calls.get(wref.key, set()):
            backends = snap.graph.backs.get(svc, set())
            if not backends:
                continue
            if not any(_egress_admits(pol, snap, b) for b in backends):
                blocked |= {svc, *backends}
        if not blocked:
            continue
        trouble = failing.get(wref.key) or next(
            (failing[k] for k in sorted(blocked) if k in failing), None
        )
        callees = sorted(k for k in blocked if sg.ref_from_key(k).kind == "Service")
        book.add(
            source="config",
            signal="network_policy_blocks",
            subject=sg.ref("NetworkPolicy", ns, str(pol.get("name"))),
            summary=f"egress NetworkPolicy {ns}/{pol.get('name')} selects {wref} and lets none "
            f"of its calls reach {', '.join(callees)}"
            + (f"; they fail ([{trouble.id}])" if trouble else ""),
            severity=0.85 if trouble else 0.4,
            onset=sg.parse_time(pol.get("created")),
            key=f"egress:{wref.key}",
            selects=wref.key,
            blocked=sorted(blocked),
            direction="egress",
        )


def _egress_admits(pol: Mapping[str, Any], snap: Snapshot, callee_key: str) -> bool:
    """Does some egress rule of `pol` let traffic reach the workload `callee_key`? What cannot
    be judged from here (IP blocks, namespace labels) counts as admitted: no false blame."""
    callee = snap.graph.nodes.get(callee_key)
    if callee is None:
        return True
    labels = (snap.workload(callee) or {}).get("selector") or {}
    for rule in pol.get("egress") or []:
        tos = rule.get("to") or []
        if not tos:
            return True
        for t in tos:
            ps = t.get("podSelector")
            nss = t.get("namespaceSelector")
            if ps is None and nss is None:
                # An ipBlock: pod IPs may fall in it.
                return True
            if nss is None and callee.namespace != pol.get("namespace"):
                continue  # a bare podSelector means the policy's own namespace
            labelled = nss is not None and (nss.get("matchLabels") or nss.get("matchExpressions"))
            if labelled and callee.namespace != pol.get("namespace"):
                return True  # namespace labels are not read here
            if ps is None or ps.get("matchExpressions"):
                return True
            match = ps.get("matchLabels") or {}
            if all(labels.get(k) == v for k, v in match.items()):
                return True
    return False


def _admits(pol: Mapping[str, Any], snap: Snapshot, caller_key: str) -> bool:
    caller = snap.graph.nodes.get(caller_key)
    if caller is None:
        return True
    w = snap.workload(caller)
    labels = (w or {}).get("selector") or {}
    for rule in pol.get("ingress") or []:
        froms = rule.get("from") or []
        if not froms:
            return True
        for f in froms:
            ps = f.get("podSelector")
            nss = f.get("namespaceSelector")
            if ps is None and nss is None:
                continue
            if nss is not None and caller.namespace != pol.get("namespace"):
                return True
            match = (ps or {}).get("matchLabels") or {}
            if ps is not None and all(labels.get(k) == v for k, v in match.items()):
                return True
    return False


# -- localization ---------------------------------------------------------------------------------


#: Signals of trouble on the way between components (a NetworkPolicy can explain them).
_PATH_SIGNALS = frozenset({"edge_latency", "trace_origin"})

#: A Service's own configuration faults (its callers never reach what is behind it).
_SERVICE_FAULTS = frozenset({"target_port_mismatch", "selector_mismatch", "missing_service"})


def is_anomaly(ev: Evidence) -> bool:
    """Evidence that the component misbehaves now (not context, not a weak hint)."""
    return ev.severity >= 0.45 and (
        ev.signal in sg.INTRINSIC_SIGNALS or ev.signal in sg.SYMPTOM_SIGNALS
    )


def _named_dependencies(evs: Iterable[Evidence]) -> dict[str, str]:
    """Dependencies a component's own errors name: key -> failure class."""
    out: dict[str, str] = {}
    for ev in evs:
        dep = ev.data.get("dependency")
        if ev.signal == "dependency_error" and isinstance(dep, str):
            out[dep] = str(ev.data.get("failure") or "other")
    return out


def localize(
    evidence: Sequence[Evidence], graph: Graph, scope: Scope | None = None
) -> list[Candidate]:
    """Rank root-cause candidates: anomalous components their dependencies do not explain."""
    groups = sg.by_subject(evidence)
    anomalous = {k for k, evs in groups.items() if any(is_anomaly(e) for e in evs)}
    # Who blames whom: trace origins and missing Services name the failing side; the callers
    # they list are symptoms of it.
    blamed_by: dict[str, set[str]] = {}
    for ev in evidence:
        if ev.signal in ("trace_origin", "missing_service", "edge_latency") and is_anomaly(ev):
            for c in ev.data.get("callers") or (
                [ev.data["caller"]] if ev.data.get("caller") else []
            ):
                for k in _keys_for(str(c), groups, graph):
                    blamed_by.setdefault(k, set()).add(ev.subject.key)
    # Components a NetworkPolicy cuts off: their timeouts on the way are the policy's doing.
    policy_blamed: dict[str, set[str]] = {}
    # A node that is down explains the pods on it.
    for ev in evidence:
        if ev.signal == "node_not_ready":
            for w in ev.data.get("workloads") or []:
                blamed_by.setdefault(str(w), set()).add(ev.subject.key)
        if ev.signal in ("canary_failing",):
            for sid in ev.data.get("failing") or []:
                blamed_by.setdefault(
                    sg.ref("Service", ev.subject.namespace, str(sid)).key, set()
                ).add(ev.subject.key)
            # The canary's workload too: its errors are the bad release the route exposes,
            # and the route (its lever) is where the fix goes.
            for wk in ev.data.get("failing_workloads") or []:
                blamed_by.setdefault(str(wk), set()).add(ev.subject.key)
        # A workload's symptoms measured at a Service in front of it are the Service's when
        # the Service itself is misconfigured (callers never reach the workload).
        svc = ev.data.get("service")
        if (
            isinstance(svc, str)
            and svc != ev.subject.key
            and ev.signal in sg.SYMPTOM_SIGNALS
            and any(e.signal in _SERVICE_FAULTS and is_anomaly(e) for e in groups.get(svc, []))
        ):
            blamed_by.setdefault(ev.subject.key, set()).add(svc)
        if ev.signal == "quota_exhausted" and isinstance(ev.data.get("blocks"), str):
            blamed_by.setdefault(str(ev.data["blocks"]), set()).add(ev.subject.key)
        if ev.signal == "network_policy_blocks" and ev.severity >= 0.5:
            blamed_by.setdefault(str(ev.data.get("selects")), set()).add(ev.subject.key)
            policy_blamed.setdefault(str(ev.data.get("selects")), set()).add(ev.subject.key)
            for c in ev.data.get("blocked") or []:
                blamed_by.setdefault(str(c), set()).add(ev.subject.key)
                policy_blamed.setdefault(str(c), set()).add(ev.subject.key)
    # Only focus objects that exist count: an alert label naming something else (an app's
    # name, a typo) must not push every real candidate off "the alerting path".
    focus_keys: set[str] = set()
    for r in scope.focus if scope else ():
        if r.key in graph.nodes or r.key in groups:
            focus_keys.add(r.key)
        else:
            # A label guessed the kind (a "workload" that is a StatefulSet): match by name.
            focus_keys |= {
                k
                for k, n in graph.nodes.items()
                if n.name == r.name and n.namespace == r.namespace and n.kind != "Service"
            }
    on_path: set[str] = set()
    for k in focus_keys:
        on_path |= {k} | graph.dependencies(k)
        for svc in graph.services_of(k):
            on_path |= {svc} | graph.dependencies(svc)
        node = graph.nodes.get(k)
        if node is not None and node.kind == "Service":
            on_path |= graph.dependencies(k)
    explains: dict[str, set[str]] = {}
    candidates: list[Candidate] = []
    for key in anomalous:
        evs = [e for e in groups[key] if is_anomaly(e)]
        subject = evs[0].subject
        strong = [e for e in evs if e.signal in STRONG_INTRINSIC]
        if policy_blamed.get(key, set()) & anomalous:
            # Calls that die on the way to (or from) a component a NetworkPolicy cuts off are
            # the policy's doing, not the component's own fault.
            strong = [e for e in strong if e.signal not in _PATH_SIGNALS]
        intrinsic = [e for e in evs if e.signal in sg.INTRINSIC_SIGNALS]
        auth = any(e.signal == "auth_error" for e in evs)
        deps = graph.dependencies(key)
        named = _named_dependencies(groups[key])
        explainers: set[str] = set()
        for d in deps | set(named) | blamed_by.get(key, set()):
            if d == key or d not in anomalous:
                continue
            if named.get(d) == "auth":
                continue
            explainers.add(d)
        # The Service in front of a workload is explained by the workload; a workload is not
        # explained by the Services that front it (they are upstream of it).
        explainers -= graph.services_of(key) - blamed_by.get(key, set())
        explainers = {
            d
            for d in explainers
            if key not in graph.dependencies(d) or d in blamed_by.get(key, set())
        }
        explained = bool(explainers) and not strong and not auth
        base = max((e.severity for e in intrinsic), default=0.0)
        if not intrinsic:
            base = 0.6 * max(e.severity for e in evs)
        signals = {e.signal for e in evs}
        sources = {e.source for e in evs}
        score = base + min(0.15, 0.05 * (len(signals) - 1)) + (0.05 if len(sources) > 1 else 0.0)
        reasons = [
            f"{e.signal}: {sg.clip(e.summary, 140)}"
            for e in sorted(evs, key=lambda e: -e.severity)[:4]
        ]
        if explained:
            score *= 0.35
            reasons.insert(0, f"explained by {', '.join(sorted(explainers))}")
        if focus_keys and key not in on_path and not _reaches(key, on_path, graph, blamed_by):
            score *= 0.5
            reasons.append("not on the alerting path")
        for d in explainers:
            explains.setdefault(d, set()).add(key)
        candidates.append(
            Candidate(
                subject=subject,
                score=max(0.0, min(1.0, round(score, 3))),
                reasons=reasons,
                evidence_ids=[e.id for e in sorted(groups[key], key=lambda e: -e.severity)][:12],
                explained_by=[graph.nodes.get(d) or sg.ref_from_key(d) for d in sorted(explainers)],
            )
        )
    # Explaining other anomalies (being upstream of the symptoms) strengthens a candidate.
    out: list[Candidate] = []
    for c in candidates:
        n = len(explains.get(c.subject.key, set()))
        if n and not c.explained_by:
            c = c.model_copy(
                update={
                    "score": round(min(1.0, c.score + min(0.15, 0.05 * n)), 3),
                    "reasons": [*c.reasons, f"explains {n} anomalous dependents"],
                }
            )
        out.append(c)
    out.sort(key=lambda c: (-c.score, c.subject.key))
    return out


def _keys_for(name: str, groups: Mapping[str, list[Evidence]], graph: Graph) -> set[str]:
    """Component keys a caller name (a key or a traced service name) may stand for."""
    if "/" in name:
        return {name}
    out = set()
    for key, node in graph.nodes.items():
        if node.name == name.split(".")[0]:
            out.add(key)
    for key in groups:
        if key.rsplit("/", 1)[-1] == name.split(".")[0]:
            out.add(key)
    return out


def _reaches(key: str, on_path: set[str], graph: Graph, blamed_by: Mapping[str, set[str]]) -> bool:
    """Does this component's trouble reach the alerting path? Config objects (nodes, routes,
    policies, missing Services) are not on the call edges: they reach it through what they
    are blamed for."""
    return any(key in blamers for victim, blamers in blamed_by.items() if victim in on_path)


#: The read tools the model may call.
MODEL_TOOLS = (
    "service_graph",
    "list_services",
    "list_workloads",
    "list_pods",
    "list_nodes",
    "service_metrics",
    "workload_resource_metrics",
    "find_traces",
    "rollout_history",
    "describe_workload",
)


def model_prompt(state: IncidentState, result: TracerResult) -> str:
    snap = result.snapshot
    f = result.findings
    edges = [f"  {e.source} -> {e.target} ({e.via})" for e in f.edges[:80]]
    lines = [
        f"Incident: {sg.quote_untrusted(state.incident.title if state.incident else '', 200)}",
        f"Scope: {snap.scope.describe()}; cluster time {snap.now:%Y-%m-%d %H:%M:%S}Z.",
        "",
        "Service graph edges (a caller workload -> the Service it calls; a Service -> the "
        "workload it selects):",
        *edges,
        "",
        "Anomalous components: " + (", ".join(str(r) for r in f.anomalous) or "none"),
        "",
        "Evidence recorded (ids you may cite):",
        sg.evidence_digest(result.evidence),
        "",
        "Deterministic ranking:",
        *[
            f"  {c.subject} score {c.score:.2f}"
            + (
                f", explained by {', '.join(str(x) for x in c.explained_by)}"
                if c.explained_by
                else ""
            )
            for c in f.candidates[:8]
        ],
    ]
    return "\n".join(lines)


def validate_findings(
    answer: DependencyFindings, result: TracerResult
) -> tuple[DependencyFindings, list[str]]:
    """Candidates must be objects the evidence or the graph names, citing existing evidence."""
    known_ids = {e.id for e in result.evidence}
    known = sg.named_objects(result.evidence) | set(result.snapshot.graph.nodes)
    dropped: list[str] = []
    candidates: list[Candidate] = []
    for c in answer.candidates:
        if c.subject.key not in known:
            dropped.append(f"candidate {c.subject} is no object the evidence or the graph names")
            continue
        bad_ids = [i for i in c.evidence_ids if i not in known_ids]
        if bad_ids:
            dropped.append(f"evidence ids {', '.join(bad_ids)} of {c.subject} do not exist")
        candidates.append(
            c.model_copy(
                update={
                    "evidence_ids": [i for i in c.evidence_ids if i in known_ids],
                    "explained_by": [r for r in c.explained_by if r.key in known],
                    "reasons": [sg.clip(r, 300) for r in c.reasons[:6]],
                }
            )
        )
    base = result.findings
    findings = base.model_copy(
        update={
            "candidates": candidates or base.candidates,
            "summary": sg.clip(answer.summary, 2000) or base.summary,
        }
    )
    return findings, dropped


async def with_model(
    ctx: AgentContext, state: IncidentState, result: TracerResult
) -> tuple[DependencyFindings, list[TranscriptEntry], TokenUsage]:
    """The model's localization, validated against the evidence; else the deterministic one."""
    return await sg.model_findings(
        ctx,
        node=NODE,
        prompt="dependency_tracer",
        user_prompt=model_prompt(state, result),
        tool_names=MODEL_TOOLS,
        fallback=result.findings,
        validate=lambda answer: validate_findings(answer, result),
    )
