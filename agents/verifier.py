"""The verifier: after the executor acted, watch the cluster for a recovery window and judge.

It waits on the cluster's clock (instant on the twin in eval mode, where
waiting advances the twin) and re-reads, with the same read tools, the
signals of what the plan acted on, of the root cause, and of the Services
their callers and the alert depend on:

- every workload touched or blamed has all its desired replicas ready (and at
  least one), its rollout complete (every replica on the current template), and
  no container restarted during the window; and, for one that was OOMKilled,
  no container's memory still climbing fast toward its limit (more memory only
  delays a leak's next kill);
- no pod in those namespaces is Pending or crash-looping because of the change;
- the error ratio of the Services on the alerting path is back near the
  baseline the specialists measured before the fault, and their p99 latency too;
- a Service that was patched has ready endpoints; a node that failed has no
  pods of ours left on it that are not ready.

"recovered" needs every check to pass; "worse" means the signals got worse than
before the action (more failing components, a higher error ratio); anything
else is "not yet". While the signals improve the window is extended, up to a
bound. The twin's recovery oracle is never consulted: only the cluster's
signals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from langgraph.runtime import Runtime

from agents import signals as sg
from agents.context import AgentContext
from agents.transcript import entry
from state import Evidence, IncidentState, ObjectRef, TranscriptEntry, Verification

NODE = "verifier"

#: The first look comes after this much cluster time: a rollout, the endpoints and the 1-minute
#: rate windows of the metrics need about that long to reflect a fix.
FIRST_LOOK_S = 60.0
#: Then the verifier looks again every STEP_S while things improve, up to MAX_WINDOW_S.
STEP_S = 30.0
MAX_WINDOW_S = 300.0
#: Without improvement for this long, the verdict is "not yet" (the planner takes over).
PATIENCE_S = 90.0
#: An error ratio counts as back to normal under max(this, baseline x 1.5 + 0.5 points).
ERROR_OK = 0.02
#: A p99 latency counts as back to normal under max(baseline x LATENCY_FACTOR, baseline + 50 ms).
LATENCY_FACTOR = 2.0
#: Worse: the alerting error ratio rose by at least this much over its value before the action.
WORSE_ERROR_DELTA = 0.1
#: A container of a workload that was OOMKilled, whose memory (as a share of its limit) is past
#: LEAK_NEAR and still climbs fast enough to reach the limit within LEAK_HORIZON_MIN minutes, is
#: not recovered: more memory only delayed the next kill (a leak grows into any limit).
LEAK_NEAR = 0.4
LEAK_HORIZON_MIN = 10.0
#: ... and it must have climbed at least this much over the points read (not noise).
LEAK_MIN_RISE = 0.1
#: Fewer memory points than this (15 s apart) say nothing about a trend; the last step must
#: still climb (a new pod's memory rises at start, then levels off).
LEAK_MIN_POINTS = 3

_BAD_WAITING = (
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "CreateContainerConfigError",
)


# -- the node -------------------------------------------------------------------------------------


async def verifier(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Watch the recovery window and say recovered, not_yet or worse."""
    ctx = runtime.context
    targets = targets_of(state)
    ctx.say(NODE, f"watching {', '.join(str(r) for r in targets.workloads[:4]) or 'the scope'}")
    start = sg.now_utc(ctx)
    first = await read(ctx, targets)
    history: list[Reading] = [first]
    waited = 0.0
    verdict: Judgement | None = None
    best_failures = len(first.failures(targets))
    last_progress = 0.0
    while True:
        step = FIRST_LOOK_S if waited == 0 else STEP_S
        await ctx.clock.sleep(step)
        waited += step
        reading = await read(ctx, targets)
        history.append(reading)
        verdict = judge(targets, history)
        if verdict.status in ("recovered", "worse"):
            break
        failures = len(reading.failures(targets))
        if failures < best_failures:
            best_failures = failures
            last_progress = waited
        if waited >= MAX_WINDOW_S or waited - last_progress >= PATIENCE_S:
            break
    now = sg.now_utc(ctx)
    assert verdict is not None
    verification = Verification(
        status=verdict.status, checks=verdict.checks, window_s=waited, at=now
    )
    transcript: list[TranscriptEntry] = [
        entry(
            ctx,
            NODE,
            "verification",
            f"{verdict.status} after {waited:.0f}s of cluster time: "
            + "; ".join(c for c in verdict.checks if c.startswith("FAIL"))[:600]
            if verdict.status != "recovered"
            else f"recovered after {waited:.0f}s of cluster time ({len(verdict.checks)} checks)",
            checks=verdict.checks,
            started=start.isoformat(),
        )
    ]
    update: dict[str, Any] = {"verifications": [verification], "transcript": transcript}
    if verdict.status == "recovered":
        update["mitigated_at"] = now
    return update


# -- what to watch --------------------------------------------------------------------------------


@dataclass
class Targets:
    """What the verdict is about."""

    namespaces: list[str] = field(default_factory=list)
    #: Workloads touched or blamed: ready, rollout complete, no restarts.
    workloads: list[ObjectRef] = field(default_factory=list)
    #: Services whose error ratio and latency must be back near their baselines.
    services: list[ObjectRef] = field(default_factory=list)
    #: Services that must have ready endpoints.
    endpoints: list[ObjectRef] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    #: Baselines measured before the fault: service key -> (error ratio, p99 ms).
    baselines: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: Values just before the action: service key -> error ratio.
    before: dict[str, float] = field(default_factory=dict)
    #: Workloads that were failing before the action.
    failing_before: set[str] = field(default_factory=set)
    #: Workloads that were OOMKilled: their containers' memory trend is watched too.
    memory: list[ObjectRef] = field(default_factory=list)


def targets_of(state: IncidentState) -> Targets:
    t = Targets()
    plan = state.plan
    executed = [e for e in state.executed if e.status in ("applied", "undone")]
    roots: list[ObjectRef] = []
    if plan is not None:
        acted = {a.hypothesis_id for a in plan.actions}
        roots = [h.root_cause for h in plan.hypotheses if h.id in acted] or [
            h.root_cause for h in plan.hypotheses[:1]
        ]
    drained: set[str] = set()
    for ex in executed:
        target = ex.action.target
        if ex.action.action == "shift_traffic":
            weights = getattr(ex.action.params, "weights", {}) or {}
            drained |= {
                sg.ref("Service", target.namespace, name).key
                for name, weight in weights.items()
                if weight == 0
            }
        ref = sg.ref(target.kind, target.namespace, target.name)
        if target.kind in sg.WORKLOAD_KINDS:
            _add(t.workloads, ref)
        elif target.kind == "Service":
            _add(t.endpoints, ref)
            _add(t.services, ref)
        elif target.kind == "Node":
            t.nodes.append(target.name)
        elif target.kind == "Pod":
            owner = _pod_owner(state.evidence, target.namespace or "", target.name)
            if owner is not None:
                _add(t.workloads, owner)
    for r in roots:
        if r.kind in sg.WORKLOAD_KINDS:
            _add(t.workloads, r)
        elif r.kind == "Service":
            _add(t.endpoints, r)
        elif r.kind == "Node" and r.name not in t.nodes:
            t.nodes.append(r.name)
    # The Services of the alerting path: those whose errors or latency the specialists saw,
    # and the ones the alert names.
    for ev in state.evidence:
        if ev.signal in ("error_ratio", "latency") and isinstance(ev.data.get("service"), str):
            key = str(ev.data["service"])
            svc = sg.ref_from_key(key)
            _add(t.services, svc)
            base_err, base_lat = t.baselines.get(key, (None, None))
            if ev.signal == "error_ratio":
                base_err = _num(ev.data.get("baseline"))
                t.before[key] = float(ev.data.get("recent") or 0.0)
            else:
                base_lat = _num(ev.data.get("baseline"))
            t.baselines[key] = (base_err, base_lat)
        if ev.signal in ("replicas_unavailable", "crash_loop", "image_pull_error", "oom_killed"):
            t.failing_before.add(ev.subject.key)
        if ev.signal == "oom_killed" and ev.subject.kind in sg.WORKLOAD_KINDS:
            _add(t.memory, ev.subject)
        if ev.signal == "node_not_ready":
            for w in ev.data.get("workloads") or []:
                _add(t.workloads, sg.ref_from_key(str(w)))
    incident = state.incident
    if incident is not None and incident.alert is not None:
        ns = incident.namespace or ""
        for key in sg.SERVICE_LABELS:
            name = incident.alert.labels.get(key, "")
            if name and sg.is_dns_label(name) and ns:
                _add(t.services, sg.ref("Service", ns, name))
    # A backend the plan took all traffic off is no longer on the path (nor what only it runs).
    t.services = [r for r in t.services if r.key not in drained]
    t.memory = [r for r in t.memory if r in t.workloads]
    for r in [*t.workloads, *t.services, *t.endpoints]:
        if r.namespace and r.namespace not in t.namespaces:
            t.namespaces.append(r.namespace)
    if not t.namespaces and incident is not None and incident.namespace:
        t.namespaces.append(incident.namespace)
    return t


def _add(items: list[ObjectRef], r: ObjectRef) -> None:
    if r not in items:
        items.append(r)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def _pod_owner(evidence: Sequence[Evidence], namespace: str, pod: str) -> ObjectRef | None:
    for ev in evidence:
        if ev.data.get("pod") == pod and ev.subject.kind in sg.WORKLOAD_KINDS:
            return ev.subject
        for p in ev.data.get("pods") or []:
            if isinstance(p, Mapping) and p.get("pod") == pod and p.get("workload"):
                return sg.ref_from_key(str(p["workload"]))
    # Controllers name pods `<workload>-<hash>-<suffix>`: the Deployment is the name minus two.
    parts = pod.rsplit("-", 2)
    return sg.ref("Deployment", namespace, parts[0]) if len(parts) == 3 else None


# -- reading --------------------------------------------------------------------------------------


@dataclass
class Reading:
    at: datetime
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: service key -> (error ratio, p99 ms) over the last minute.
    golden: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: workload key -> [(pod, container, [(time, memory / limit)])] over the last minutes.
    memory: dict[str, list[tuple[str, str, list[tuple[datetime, float]]]]] = field(
        default_factory=dict
    )
    problems: list[str] = field(default_factory=list)

    def restarts(self, workload: ObjectRef) -> dict[str, int]:
        return {
            str(p.get("name")): int(p.get("restarts") or 0)
            for p in self.pods
            if sg.workload_ref(p) == workload
        }

    def failures(self, t: Targets) -> list[str]:
        return [c for c in check(t, self, None) if c.startswith("FAIL")]


async def read(ctx: AgentContext, t: Targets) -> Reading:
    r = Reading(at=sg.now_utc(ctx))
    jobs: list[Any] = []
    for ns in t.namespaces:
        jobs.append(sg.read(ctx, "list_workloads", {"namespace": ns, "limit": 500}, r.problems))
        jobs.append(sg.read(ctx, "list_pods", {"namespace": ns, "limit": 500}, r.problems))
        jobs.append(sg.read(ctx, "list_services", {"namespace": ns, "limit": 500}, r.problems))
    for svc in t.services:
        jobs.append(
            sg.read(
                ctx,
                "service_metrics",
                {
                    "namespace": svc.namespace,
                    "service": svc.name,
                    "minutes": 5,
                    "step_seconds": 15,
                    "include_points": True,
                },
                r.problems,
            )
        )
    if t.nodes:
        jobs.append(sg.read(ctx, "list_nodes", {"limit": 500}, r.problems))
    for wref in t.memory:
        jobs.append(
            sg.read(
                ctx,
                "workload_resource_metrics",
                {
                    "namespace": wref.namespace,
                    "workload": wref.name,
                    "minutes": 5,
                    "step_seconds": 15,
                    "include_points": True,
                },
                r.problems,
            )
        )
    results = await asyncio.gather(*jobs)
    i = 0
    for _ns in t.namespaces:
        for w in results[i] or []:
            r.workloads[_wkey(w)] = w
        r.pods += list(results[i + 1] or [])
        for s in results[i + 2] or []:
            r.services[sg.ref("Service", str(s.get("namespace")), str(s.get("name"))).key] = s
        i += 3
    for svc in t.services:
        data = results[i]
        i += 1
        if not data:
            continue
        err = sg.series_points(data.get("error_ratio"))
        lat = sg.series_points(data.get("latency_p99"))
        r.golden[svc.key] = (err[-1][1] if err else None, lat[-1][1] if lat else None)
    if t.nodes:
        for n in results[i] or []:
            r.nodes[str(n.get("name"))] = n
        i += 1
    for wref in t.memory:
        data = results[i]
        i += 1
        block = data.get("memory_vs_limit") if isinstance(data, Mapping) else None
        series = []
        for s in (block or {}).get("series") or [] if isinstance(block, Mapping) else []:
            labels = s.get("labels") or {}
            series.append(
                (
                    str(labels.get("pod") or ""),
                    str(labels.get("container") or ""),
                    sg.series_points({"series": [s]}),
                )
            )
        r.memory[wref.key] = series
    return r


def _wkey(w: Mapping[str, Any]) -> str:
    return sg.ref(
        str(w.get("kind") or "Deployment"), str(w.get("namespace")), str(w.get("name"))
    ).key


# -- judging --------------------------------------------------------------------------------------


@dataclass
class Judgement:
    status: str
    checks: list[str]


def check(t: Targets, now: Reading, first: Reading | None) -> list[str]:
    """Every check, each "OK ..." or "FAIL ..."."""
    out: list[str] = []
    for wref in t.workloads:
        w = now.workloads.get(wref.key)
        if w is None:
            out.append(f"FAIL {wref} not found")
            continue
        reps = w.get("replicas") or w.get("pods") or {}
        desired = int(reps.get("desired") or 0)
        ready = int(reps.get("ready") or 0)
        if desired < 1 or ready < desired:
            out.append(f"FAIL {wref}: {ready}/{desired} replicas ready")
        else:
            out.append(f"OK {wref}: {ready}/{desired} replicas ready")
        if wref.kind == "Deployment":
            updated = int(reps.get("updated") or 0)
            current = int(reps.get("current") or 0)
            available = int(reps.get("available") or 0)
            if w.get("rollout") or updated < desired or current > desired or available < desired:
                out.append(
                    f"FAIL {wref}: rollout not complete ({updated} updated, {available} "
                    f"available, {current} current of {desired})"
                )
            else:
                out.append(f"OK {wref}: rollout complete")
        if first is not None:
            before = first.restarts(wref)
            after = now.restarts(wref)
            grew = [p for p, n in after.items() if n > before.get(p, 0)]
            if grew:
                out.append(
                    f"FAIL {wref}: containers restarted during the window ({', '.join(grew)})"
                )
            else:
                out.append(f"OK {wref}: no restarts during the window")
        bad = [
            f"{p.get('name')} {c.get('waiting_reason')}"
            for p in now.pods
            if sg.workload_ref(p) == wref
            for c in p.get("containers") or []
            if c.get("waiting_reason") in _BAD_WAITING
        ]
        if bad:
            out.append(f"FAIL {wref}: {', '.join(bad)}")
        if wref in t.memory:
            out += _memory_checks(wref, now)
    pending = [
        str(p.get("name"))
        for p in now.pods
        if p.get("phase") == "Pending" and sg.workload_ref(p) in t.workloads
    ]
    if pending:
        out.append(f"FAIL pods Pending: {', '.join(pending[:5])}")
    for sref in t.endpoints:
        s = now.services.get(sref.key)
        if s is None:
            out.append(f"FAIL {sref} does not exist")
            continue
        addresses = (s.get("endpoints") or {}).get("ready") or []
        if not addresses:
            out.append(f"FAIL {sref} has no ready endpoints")
        else:
            out.append(f"OK {sref} has {len(addresses)} ready endpoint(s)")
    for sref in t.services:
        err, lat = now.golden.get(sref.key, (None, None))
        base_err, base_lat = t.baselines.get(sref.key, (None, None))
        if err is not None:
            limit = max(ERROR_OK, (base_err or 0.0) * 1.5 + 0.005)
            verdict = "OK" if err <= limit else "FAIL"
            out.append(
                f"{verdict} {sref} error ratio {sg.fmt_ratio(err)} (normal below "
                f"{sg.fmt_ratio(limit)})"
            )
        elif sref in t.endpoints:
            out.append(f"FAIL {sref} serves no traffic yet")
        if lat is not None and base_lat is not None:
            limit_ms = max(base_lat * LATENCY_FACTOR, base_lat + 50.0)
            verdict = "OK" if lat <= limit_ms else "FAIL"
            out.append(
                f"{verdict} {sref} p99 latency {sg.fmt_ms(lat)} "
                f"(normal below {sg.fmt_ms(limit_ms)})"
            )
    for node in t.nodes:
        stuck = [
            str(p.get("name"))
            for p in now.pods
            if p.get("node") == node and not sg.pod_ready(p) and not p.get("deleting_since")
        ]
        if stuck:
            out.append(f"FAIL pods still stuck on node {node}: {', '.join(stuck[:5])}")
        else:
            out.append(f"OK no pod of ours is stuck on node {node}")
    return out


def _memory_checks(wref: ObjectRef, now: Reading) -> list[str]:
    """The running pods' memory must not be on course for the limit again."""
    alive = {str(p.get("name")) for p in now.pods if sg.workload_ref(p) == wref}
    out: list[str] = []
    for pod, container, pts in now.memory.get(wref.key, []):
        if pod not in alive or len(pts) < LEAK_MIN_POINTS:
            continue
        last = pts[-1][1]
        rise = last - min(v for _, v in pts)
        per_min = _slope(pts) * 60
        climbing = pts[-1][1] > pts[-2][1]
        if last >= LEAK_NEAR and rise >= LEAK_MIN_RISE and per_min > 0 and climbing:
            eta = max(0.0, 1.0 - last) / per_min
            if eta <= LEAK_HORIZON_MIN:
                out.append(
                    f"FAIL {wref}: pod {pod} container {container} memory at "
                    f"{100 * last:.0f}% of its limit and climbing {100 * per_min:.0f} points/min: "
                    f"OOMKilled again in about {eta:.1f} min"
                )
                continue
        out.append(f"OK {wref}: pod {pod} container {container} memory steady")
    return out


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


def judge(t: Targets, history: Sequence[Reading]) -> Judgement:
    first, now = history[0], history[-1]
    checks = check(t, now, first)
    for p in now.problems[:3]:
        checks.append(f"FAIL could not read: {p}")
    failures = [c for c in checks if c.startswith("FAIL")]
    if not failures and checks:
        return Judgement("recovered", checks)
    # Worse only when it persists over two readings: a rollout's or a rescheduling's first
    # minute can look bad before it looks better.
    worse = worse_than_before(t, now)
    if worse and len(history) >= 3 and worse_than_before(t, history[-2]):
        return Judgement("worse", [*worse, *checks])
    return Judgement("not_yet", [*worse, *checks])


def worse_than_before(t: Targets, now: Reading) -> list[str]:
    """Signals worse than before the action: new failing workloads, a higher error ratio."""
    out: list[str] = []
    for key, before in t.before.items():
        err, _ = now.golden.get(key, (None, None))
        if err is not None and err >= before + WORSE_ERROR_DELTA and err >= 1.5 * before:
            out.append(
                f"WORSE {key} error ratio {sg.fmt_ratio(err)}, was {sg.fmt_ratio(before)} before "
                "the action"
            )
    new_failures = []
    for key in now.workloads:
        if key in t.failing_before:
            continue
        bad = [
            f"{p.get('name')} {c.get('waiting_reason')}"
            for p in now.pods
            if _wkey_of_pod(p) == key
            for c in p.get("containers") or []
            if c.get("waiting_reason") in _BAD_WAITING
        ]
        if bad:
            new_failures.append(f"{key} ({', '.join(bad[:2])})")
    if new_failures:
        out.append("WORSE newly failing: " + "; ".join(new_failures[:5]))
    return out


def _wkey_of_pod(p: Mapping[str, Any]) -> str:
    return sg.workload_ref(p).key
