"""The log analyst: what the pods' logs and the cluster's events say, mined into templates.

It reads the current and, for restarted containers, the previous container's
log of the pods in scope, and the Warning events of the namespaces. Lines are
parsed (JSON and logfmt fields, multi-line records joined), mined into
templates with Drain3 per workload, and sorted into the baseline and what is
new. Error templates are read for what they name: a dependency (host:port,
a Service name, an IP that maps to a Service's clusterIP or a pod), a failed
DNS lookup (a Service that does not exist), an authentication failure, a
configuration key a crash names. A process that stopped logging while it
still runs is noted too (a hang). Each finding is an Evidence item ("log-N").

Log lines and events are untrusted data: they are only ever quoted, never
followed, and only templates and short exemplars leave this module.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig
from langgraph.runtime import Runtime

from agents import signals as sg
from agents.context import AgentContext
from agents.signals import EvidenceBook, NameIndex, Snapshot
from agents.transcript import entry
from state import (
    Evidence,
    IncidentState,
    LogFindings,
    LogTemplate,
    ObjectRef,
    TokenUsage,
    TranscriptEntry,
    WorkloadLogs,
)

NODE = "log_analyst"

#: Pods whose logs are read at most (unhealthy and alert-named ones first).
MAX_PODS = 40
#: Lines read per current container log; the tool caps bytes too and says so.
CURRENT_LINES = 400
#: Lines read from a restarted container's previous instance (how it died).
PREVIOUS_LINES = 120
#: Concurrent log reads.
PARALLEL_READS = 8
#: Templates kept per workload in the findings (errors and new ones first).
TEMPLATES_PER_WORKLOAD = 8
#: Error lines naming one dependency this many times make it a finding, not an accident.
MIN_DEPENDENCY_LINES = 3
#: Before this much time ahead of the alert, a template belongs to the baseline.
BASELINE_GAP = timedelta(minutes=3)
#: A process that logged steadily and then nothing for this long (and many of its usual gaps).
SILENCE_MIN = timedelta(seconds=40)
#: Warning events older than this are history.
EVENT_WINDOW = timedelta(minutes=30)

_LEVEL_ORDER = {"debug": 0, "info": 1, "unknown": 1, "warning": 2, "error": 3, "fatal": 4}
_TS_PREFIX = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))\s?(.*)$")
_LOGFMT = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S+)')
_MESSAGE_KEYS = ("message", "msg", "log", "text", "event")
_ERROR_KEYS = ("error", "err", "exception", "error.message", "stack")
_LEVEL_KEYS = ("severity", "level", "lvl", "loglevel", "log.level")


# -- the node -------------------------------------------------------------------------------------


async def log_analyst(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Mine the logs and events in scope into templates and evidence."""
    ctx = runtime.context
    ctx.say(NODE, "reading logs and events")
    result = await analyse(state, ctx)
    transcript = result.transcript
    findings = result.findings
    tokens: TokenUsage | None = None
    if ctx.model_enabled:
        findings, extra, tokens = await with_model(ctx, state, result)
        transcript = transcript + extra
    update: dict[str, Any] = {
        "log_findings": findings,
        "evidence": result.evidence,
        "transcript": transcript,
    }
    if tokens is not None:
        update["tokens"] = tokens
    return update


@dataclass
class AnalystResult:
    findings: LogFindings
    evidence: list[Evidence]
    transcript: list[TranscriptEntry]
    snapshot: Snapshot


async def analyse(state: IncidentState, ctx: AgentContext) -> AnalystResult:
    """The deterministic procedure (the fallback and the baseline of the model path)."""
    log = sg.ToolLog()
    scope = await sg.resolve_scope(state, ctx, log.problems)
    snap = await sg.take_snapshot(
        ctx, scope, parts=("graph", "workloads", "pods", "services", "events"), log=log
    )
    book = EvidenceBook("log", NODE, state.evidence)
    reference = scope.alert_start or snap.now
    pods = choose_pods(snap)
    records = await read_logs(ctx, snap, pods)
    workloads: list[WorkloadLogs] = []
    for subject, pod_logs in group_by_workload(records).items():
        workloads.append(mine(subject, pod_logs, snap, book, reference))
    event_evidence(snap, book)
    workloads.sort(key=lambda w: (-_worst(w), w.workload.key))
    findings = LogFindings(
        workloads=workloads,
        summary=summarize(workloads, book.items),
        evidence_ids=[ev.id for ev in book.items],
    )
    transcript = [
        entry(
            ctx,
            NODE,
            "observation",
            f"read the logs of {len(records)} containers in {len(workloads)} workloads and the "
            f"events of {', '.join(scope.namespaces) or 'no namespace'} "
            f"({len(log.calls)} tool calls)",
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
    return AnalystResult(findings, book.items, transcript, snap)


def _worst(w: WorkloadLogs) -> int:
    return max(
        (_LEVEL_ORDER.get(t.level, 1) * 1000 + min(t.count, 999) for t in w.templates), default=0
    )


# -- which pods, and reading them -----------------------------------------------------------------


def choose_pods(snap: Snapshot) -> list[dict[str, Any]]:
    """Unhealthy, restarted and alert-named pods first, then the rest, capped."""
    focus = {r.name for r in snap.scope.focus} | {r.name for r in snap.scope.pods}

    def rank(p: Mapping[str, Any]) -> tuple[int, int, int, str]:
        wl = sg.workload_ref(p)
        unhealthy = not sg.pod_ready(p) or p.get("status") != "Running"
        return (
            0 if unhealthy else 1,
            0 if int(p.get("restarts") or 0) > 0 else 1,
            0 if wl.name in focus or p.get("name") in focus else 1,
            str(p.get("name")),
        )

    pods = [p for p in snap.pods if p.get("containers")]
    return sorted(pods, key=rank)[:MAX_PODS]


@dataclass
class ContainerLog:
    pod: dict[str, Any]
    container: str
    previous: bool
    lines: list[str]
    truncated: bool = False


async def read_logs(
    ctx: AgentContext, snap: Snapshot, pods: Sequence[dict[str, Any]]
) -> list[ContainerLog]:
    gate = asyncio.Semaphore(PARALLEL_READS)

    async def one(pod: dict[str, Any], container: str, previous: bool) -> ContainerLog | None:
        async with gate:
            result = await ctx.toolbox.acall(
                "get_pod_logs",
                {
                    "namespace": pod.get("namespace"),
                    "pod": pod.get("name"),
                    "container": container,
                    "previous": previous,
                    "timestamps": True,
                    "max_lines": PREVIOUS_LINES if previous else CURRENT_LINES,
                },
            )
        snap.log.calls.append(("get_pod_logs", {"pod": pod.get("name")}, result.status))
        if result.status in ("error", "denied"):
            # A previous log that does not exist is expected; anything else is a problem.
            if not previous:
                snap.log.problems.append(
                    f"get_pod_logs({pod.get('namespace')}/{pod.get('name')}/{container}): "
                    f"{result.error_kind}: {sg.clip(result.error or '', 160)}"
                )
            return None
        data = result.data or {}
        return ContainerLog(
            pod=pod,
            container=container,
            previous=previous,
            lines=[str(x) for x in data.get("lines") or []],
            truncated=result.truncated,
        )

    jobs = []
    for pod in pods:
        for c in pod.get("containers") or []:
            name = str(c.get("name"))
            jobs.append(one(pod, name, False))
            if int(c.get("restarts") or 0) > 0 or c.get("last_termination"):
                jobs.append(one(pod, name, True))
    results = await asyncio.gather(*jobs)
    return [r for r in results if r is not None]


def group_by_workload(records: Sequence[ContainerLog]) -> dict[ObjectRef, list[ContainerLog]]:
    out: dict[ObjectRef, list[ContainerLog]] = {}
    for r in records:
        out.setdefault(sg.workload_ref(r.pod), []).append(r)
    return out


# -- parsing lines --------------------------------------------------------------------------------


@dataclass
class Line:
    at: datetime | None
    text: str
    level: str
    raw: str
    previous: bool = False
    pod: str = ""


def parse_lines(raw_lines: Sequence[str], *, previous: bool = False, pod: str = "") -> list[Line]:
    """Log lines as records: timestamp, message text (JSON and logfmt fields), level.
    Indented continuation lines (stack traces, .NET's two-line records) join the record above."""
    out: list[Line] = []
    for raw in raw_lines:
        at: datetime | None = None
        body = raw
        m = _TS_PREFIX.match(raw)
        if m:
            at = sg.parse_time(m.group(1))
            body = m.group(2)
        if out and body[:1] in (" ", "\t") and body.strip():
            prev = out[-1]
            joined = f"{prev.text} {body.strip()}"
            out[-1] = Line(
                prev.at,
                joined,
                _max_level(prev.level, level_of(body)),
                prev.raw + "\n" + body,
                previous,
                pod,
            )
            continue
        if not body.strip():
            continue
        text, level = structured(body)
        out.append(Line(at, text, level, body, previous, pod))
    return out


def structured(body: str) -> tuple[str, str]:
    """(message text, level) from a JSON or logfmt record, else the line itself."""
    stripped = body.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            flat = _flatten(obj)
            msg = next((str(flat[k]) for k in _MESSAGE_KEYS if k in flat), "")
            err = next((str(flat[k]) for k in _ERROR_KEYS if k in flat), "")
            text = f"{msg}: {err}" if msg and err else (msg or err or stripped)
            level = next((str(flat[k]).lower() for k in _LEVEL_KEYS if k in flat), "")
            return text, normalize_level(level) if level else level_of(text)
    pairs = dict(_LOGFMT.findall(stripped)) if "=" in stripped else {}
    if pairs and any(k in pairs for k in ("msg", "message", "level", "lvl")):
        msg = pairs.get("msg") or pairs.get("message") or ""
        err = pairs.get("err") or pairs.get("error") or ""
        text = " ".join(x.strip('"') for x in (msg, err) if x) or stripped
        level = (pairs.get("level") or pairs.get("lvl") or "").strip('"')
        return text, normalize_level(level) if level else level_of(text)
    return stripped, level_of(stripped)


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and len(out) < 200:
            out.update(_flatten(v, key + "."))
            out.setdefault(key, json.dumps(v)[:500])
        else:
            out[key] = v
    return out


def normalize_level(level: str) -> str:
    low = level.lower()
    if low in ("fatal", "panic", "critical", "crit", "emerg", "emergency", "alert"):
        return "fatal"
    if low in ("error", "err", "severe", "e"):
        return "error"
    if low in ("warn", "warning", "w"):
        return "warning"
    if low in ("debug", "trace", "d", "verbose"):
        return "debug"
    if low in ("info", "notice", "i", "information", "informational"):
        return "info"
    return "unknown"


_LEVEL_WORD = re.compile(
    r"\b(fatal|panic|critical|crit|emerg|error|err|exception|traceback|failed|failure|severe|"
    r"warn|warning|debug|trace|info|notice)\b"
)
_WORD_LEVEL = {
    **dict.fromkeys(("fatal", "panic", "critical", "crit", "emerg"), "fatal"),
    **dict.fromkeys(
        ("error", "err", "exception", "traceback", "failed", "failure", "severe"), "error"
    ),
    **dict.fromkeys(("warn", "warning"), "warning"),
    **dict.fromkeys(("debug", "trace"), "debug"),
    **dict.fromkeys(("info", "notice"), "info"),
}


def level_of(text: str) -> str:
    """The most severe level word in the start of a line (one pass of one pattern)."""
    best = "unknown"
    for word in _LEVEL_WORD.findall(text[:300].lower()):
        level = _WORD_LEVEL[word]
        if _LEVEL_ORDER[level] > _LEVEL_ORDER[best] or best == "unknown":
            best = level
            if level == "fatal":
                break
    return best


LevelName = Literal["debug", "info", "warning", "error", "fatal", "unknown"]
_LEVELS: dict[str, LevelName] = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "error": "error",
    "fatal": "fatal",
}


def _level_literal(level: str) -> LevelName:
    return _LEVELS.get(level, "unknown")


def _max_level(a: str, b: str) -> str:
    return a if _LEVEL_ORDER.get(a, 1) >= _LEVEL_ORDER.get(b, 1) else b


# -- mining templates -----------------------------------------------------------------------------


def new_miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.drain_sim_th = 0.5
    config.drain_depth = 4
    config.parametrize_numeric_tokens = True
    # Masks for what varies between otherwise identical lines: addresses, ids, numbers.
    config.masking_instructions = [
        MaskingInstruction(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
            "UUID",
        ),
        MaskingInstruction(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b", "IP"),
        MaskingInstruction(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{16,}\b", "HEX"),
        MaskingInstruction(r"(?<![A-Za-z])[-+]?\d+(?:\.\d+)?(?:ms|s|us|µs|%)?(?![A-Za-z])", "NUM"),
    ]
    config.mask_prefix = "<"
    config.mask_suffix = ">"
    return TemplateMiner(config=config)


@dataclass
class _Tpl:
    template: str = ""
    count: int = 0
    level: str = "unknown"
    first: datetime | None = None
    last: datetime | None = None
    exemplar: str = ""
    previous: int = 0
    lines: list[Line] = field(default_factory=list)


def mine(
    subject: ObjectRef,
    logs: Sequence[ContainerLog],
    snap: Snapshot,
    book: EvidenceBook,
    reference: datetime,
) -> WorkloadLogs:
    """Templates of one workload's logs, and the evidence they carry."""
    miner = new_miner()
    tpls: dict[int, _Tpl] = {}
    all_lines: list[Line] = []
    current_by_pod: dict[str, list[Line]] = {}
    for log in logs:
        lines = parse_lines(log.lines, previous=log.previous, pod=str(log.pod.get("name")))
        all_lines += lines
        if not log.previous:
            current_by_pod.setdefault(str(log.pod.get("name")), []).extend(lines)
    for line in all_lines:
        result = miner.add_log_message(sg.clip(line.text, 600))
        cid = int(result["cluster_id"])
        t = tpls.setdefault(cid, _Tpl())
        t.count += 1
        t.level = _max_level(t.level, line.level)
        t.previous += 1 if line.previous else 0
        if line.at is not None:
            t.first = line.at if t.first is None or line.at < t.first else t.first
            t.last = line.at if t.last is None or line.at > t.last else t.last
        if not t.exemplar:
            t.exemplar = sg.clip(line.text, 300)
        if len(t.lines) < 50:
            t.lines.append(line)
    for cid, t in tpls.items():
        cluster = next((c for c in miner.drain.clusters if c.cluster_id == cid), None)
        t.template = cluster.get_template() if cluster is not None else t.exemplar
    earliest = min((ln.at for ln in all_lines if ln.at is not None), default=None)
    cutoff = reference - BASELINE_GAP
    covers_baseline = earliest is not None and earliest < cutoff
    templates: list[LogTemplate] = []
    ns = subject.namespace
    last_ok = max(
        (
            ln.at
            for ln in all_lines
            if ln.at is not None and not ln.previous and _LEVEL_ORDER.get(ln.level, 1) < 2
        ),
        default=None,
    )
    for t in sorted(tpls.values(), key=lambda x: (-_LEVEL_ORDER.get(x.level, 1), -x.count)):
        is_new = covers_baseline and t.first is not None and t.first >= cutoff
        dependency = None
        if _LEVEL_ORDER.get(t.level, 1) >= _LEVEL_ORDER["warning"]:
            stopped = _stopped(t, last_ok, snap.now)
            dependency = template_evidence(subject, t, is_new, snap.index, ns, book, snap, stopped)
        templates.append(
            LogTemplate(
                template=sg.clip(t.template, 400),
                count=t.count,
                level=_level_literal(t.level),
                new=is_new,
                exemplar=sg.clip(t.exemplar, 300),
                dependency=dependency,
            )
        )
    crash_evidence(subject, logs, snap, book)
    silence_evidence(subject, current_by_pod, snap, book)
    errors = [t for t in templates if _LEVEL_ORDER.get(t.level, 1) >= 3]
    summary = (
        f"{len(all_lines)} records, {len(templates)} templates, {len(errors)} error templates"
        + (
            f"; top error: {sg.quote_untrusted(errors[0].template, 160)} x{errors[0].count}"
            if errors
            else ""
        )
    )
    return WorkloadLogs(
        workload=subject,
        templates=templates[:TEMPLATES_PER_WORKLOAD],
        lines_read=len(all_lines),
        summary=summary,
    )


def template_evidence(
    subject: ObjectRef,
    t: _Tpl,
    is_new: bool,
    index: NameIndex,
    namespace: str,
    book: EvidenceBook,
    snap: Snapshot,
    stopped: bool = False,
) -> str | None:
    """Evidence an error template carries: the dependency it names, auth and config failures.

    Errors that stopped a while ago while the process kept logging normal lines are history
    (a blip that is over, the warm-up of a cluster): they are kept, but weak."""
    text = t.exemplar
    if stopped and t.previous == 0:
        return _stale_template(subject, t, is_new, book)
    cls = sg.failure_class(text)
    found = sg.mentions(text, index, namespace=namespace)
    own_services = {s.name for s in (index.services.get(subject.name) or [])}
    found = [
        m
        for m in found
        if m.target is None or (m.target != subject and m.target.name not in own_services)
    ]
    quoted = sg.quote_untrusted(t.exemplar, 220)
    when = t.first
    named: str | None = None
    severity_base = 0.5 if t.count >= MIN_DEPENDENCY_LINES else 0.35
    for m in found:
        if m.target is not None:
            named = m.target.key
            book.add(
                source="logs",
                signal="dependency_error",
                subject=subject,
                summary=f"{subject} logs {t.count} {cls} errors naming {m.target} "
                f"({m.raw}): {quoted}",
                severity=severity_base
                + (0.1 if cls in ("refused", "dns", "timeout", "unavailable") else 0.0),
                onset=when,
                key=m.target.key,
                dependency=m.target.key,
                failure=cls,
                template=t.template,
                count=t.count,
                new=is_new,
            )
        elif m.how == "dns" and m.host and sg.looks_cluster_local(m.host, index):
            missing = sg.ref("Service", namespace, m.host.split(".")[0])
            named = missing.key
            book.add(
                source="logs",
                signal="dependency_error",
                subject=subject,
                summary=f"{subject} logs {t.count} failed lookups of {m.host!r}: {quoted}",
                severity=severity_base + 0.1,
                onset=when,
                key=missing.key,
                dependency=missing.key,
                failure="dns",
                template=t.template,
                count=t.count,
                new=is_new,
            )
            book.add(
                source="logs",
                signal="missing_service",
                subject=missing,
                summary=f"{subject} cannot resolve {m.host!r}: no Service of that name exists "
                f"in {namespace} ({t.count} lines): {quoted}",
                severity=0.8 if t.count >= MIN_DEPENDENCY_LINES else 0.55,
                onset=when,
                callers=[subject.key],
                host=m.host,
                failure="dns",
            )
        if named:
            break
    if cls == "auth":
        book.add(
            source="logs",
            signal="auth_error",
            subject=subject,
            summary=f"{subject} logs {t.count} authentication failures"
            + (f" against {named}" if named else "")
            + f": {quoted}",
            severity=0.75 if t.count >= MIN_DEPENDENCY_LINES else 0.45,
            onset=when,
            key=t.template[:80],
            dependency=named,
            template=t.template,
            count=t.count,
        )
    key = sg.config_key(text)
    if key and t.level in ("error", "fatal"):
        book.add(
            source="logs",
            signal="config_error",
            subject=subject,
            summary=f"{subject} logs that configuration {key!r} is missing ({t.count} lines, "
            f"{t.previous} from crashed instances): {quoted}",
            severity=0.8 if t.previous else 0.55,
            onset=when,
            key="logs",
            missing_key=key,
            from_previous=t.previous > 0,
            template=t.template,
        )
    if _LEVEL_ORDER.get(t.level, 1) >= 3:
        # Error lines by themselves are a hint, not a confirmed fault: a loud, harmless error
        # (a red herring) must not outweigh what the metrics and status say.
        book.add(
            source="logs",
            signal="new_log_template" if is_new else "error_logs",
            subject=subject,
            summary=f"{subject} {'new ' if is_new else ''}error template x{t.count}: {quoted}",
            severity=min(0.44, 0.25 + 0.05 * t.count**0.5),
            onset=when,
            key=t.template[:120],
            template=t.template,
            count=t.count,
            new=is_new,
            failure=cls,
            first_seen=t.first.isoformat() if t.first else None,
            last_seen=t.last.isoformat() if t.last else None,
        )
    return named


#: Errors whose last line is this much older than now, while normal lines continued, stopped.
STOPPED_AFTER = timedelta(seconds=30)


def _stopped(t: _Tpl, last_ok: datetime | None, now: datetime) -> bool:
    if t.last is None or last_ok is None or last_ok <= t.last:
        return False
    quiet = now - t.last
    if t.count >= 2 and t.first is not None and t.last > t.first:
        usual = (t.last - t.first) / (t.count - 1)
        return quiet >= max(STOPPED_AFTER, 5 * usual)
    return quiet >= STOPPED_AFTER


def _stale_template(subject: ObjectRef, t: _Tpl, is_new: bool, book: EvidenceBook) -> str | None:
    book.add(
        source="logs",
        signal="errors_stopped",
        subject=subject,
        summary=f"{subject} logged {t.count} errors like "
        f"{sg.quote_untrusted(t.exemplar, 160)} until "
        f"{t.last:%H:%M:%S} and none since, while it kept logging normal lines"
        if t.last
        else f"{subject} errors stopped",
        severity=0.2,
        onset=t.first,
        key=t.template[:120],
        template=t.template,
        count=t.count,
        last_seen=t.last.isoformat() if t.last else None,
        failure=sg.failure_class(t.exemplar),
    )
    return None


def crash_evidence(
    subject: ObjectRef, logs: Sequence[ContainerLog], snap: Snapshot, book: EvidenceBook
) -> None:
    """How a restarted container died: the last lines of its previous instance."""
    for log in logs:
        if not log.previous or not log.lines:
            continue
        lines = parse_lines(log.lines, previous=True)
        tail = [ln.text for ln in lines[-5:]]
        worst = max(
            (ln.level for ln in lines[-10:]),
            key=lambda lv: _LEVEL_ORDER.get(lv, 1),
            default="unknown",
        )
        book.add(
            source="logs",
            signal="crash_log",
            subject=subject,
            summary=f"{subject} pod {log.pod.get('name')} container {log.container} ended with: "
            + " | ".join(sg.quote_untrusted(t, 160) for t in tail[-3:]),
            severity=0.3,
            key=f"{log.pod.get('name')}/{log.container}",
            pod=log.pod.get("name"),
            container=log.container,
            last_lines=[sg.clip(t, 300) for t in tail],
            level=worst,
        )


def silence_evidence(
    subject: ObjectRef, by_pod: Mapping[str, list[Line]], snap: Snapshot, book: EvidenceBook
) -> None:
    """A running, ready process that logged steadily and then stopped: it may be hung."""
    for pod_name, lines in by_pod.items():
        stamps = sorted(ln.at for ln in lines if ln.at is not None)
        if len(stamps) < 20:
            continue
        pod = next((p for p in snap.pods if p.get("name") == pod_name), None)
        if pod is None or pod.get("phase") != "Running":
            continue
        # The mean gap, not the median: records often come in bursts with equal timestamps.
        usual = (stamps[-1] - stamps[0]).total_seconds() / (len(stamps) - 1)
        quiet = (snap.now - stamps[-1]).total_seconds()
        if quiet >= max(SILENCE_MIN.total_seconds(), 10 * usual):
            book.add(
                source="logs",
                signal="log_silence",
                subject=subject,
                summary=f"{subject} pod {pod_name} wrote {len(stamps)} lines (one every "
                f"{usual:.1f}s) and nothing for the last {quiet:.0f}s while still running",
                severity=0.42,
                onset=stamps[-1],
                key=pod_name,
                pod=pod_name,
                quiet_s=quiet,
                usual_gap_s=usual,
                ready=sg.pod_ready(pod),
                restarts=pod.get("restarts"),
            )


# -- events ---------------------------------------------------------------------------------------

_QUOTA = re.compile(r"exceeded quota: ([a-z0-9.\-]+)")
#: Events about a pod's removal itself: they matter after the pod is gone.
_POD_LOSS = frozenset({"NodeNotReady", "Evicted", "TaintManagerEviction", "NodeLost"})


def event_evidence(snap: Snapshot, book: EvidenceBook) -> None:
    """Warning events: probe failures, back-off, scheduling, quota, image pulls, evictions."""
    cutoff = snap.now - EVENT_WINDOW
    live_pods = {(str(p.get("namespace")), str(p.get("name"))) for p in snap.pods}
    listed = {ns for ns, _ in live_pods}
    for ev in snap.events:
        if ev.get("type") != "Warning":
            continue
        last = sg.parse_time(ev.get("last_seen"))
        if last is not None and last < cutoff:
            continue
        kind, _, name = str(ev.get("object") or "").partition("/")
        ns = str(ev.get("namespace") or "")
        if (
            kind == "Pod"
            and ns in listed
            and (ns, name) not in live_pods
            and ev.get("reason") not in _POD_LOSS
        ):
            # The pod is gone (an old ReplicaSet's, replaced by a later release or a restart):
            # its back-offs and failed probes are history, not the workload's state now.
            continue
        subject = (
            snap.owner_of(kind, ns, name)
            if kind in ("Pod", "ReplicaSet")
            else sg.ref(kind, ns if kind != "Node" else None, name)
        )
        reason = str(ev.get("reason") or "")
        msg = str(ev.get("message") or "")
        count = int(ev.get("count") or 1)
        first = sg.parse_time(ev.get("first_seen"))
        quoted = sg.quote_untrusted(msg, 220)
        common: dict[str, Any] = {"reason": reason, "count": count, "object": f"{kind}/{name}"}
        low = msg.lower()
        if reason == "Unhealthy" or "probe failed" in low:
            probe = (
                "liveness"
                if "liveness" in low
                else "readiness"
                if "readiness" in low
                else "startup"
                if "startup" in low
                else "probe"
            )
            book.add(
                source="events",
                signal="probe_failure",
                subject=subject,
                summary=f"{subject}: {probe} probe failed x{count} ({kind}/{name}): {quoted}",
                severity=0.55 if count >= 3 else 0.45,
                onset=first,
                key=probe,
                probe=probe,
                failure=sg.failure_class(msg),
                message=msg,
                **common,
            )
        elif reason in ("Failed", "BackOff", "ErrImagePull", "InspectFailed") and (
            "image" in low or "pull" in low
        ):
            book.add(
                source="events",
                signal="image_pull_error",
                subject=subject,
                summary=f"{subject}: image pull fails x{count}: {quoted}",
                severity=0.8,
                onset=first,
                key="event",
                message=msg,
                **common,
            )
        elif reason == "BackOff":
            book.add(
                source="events",
                signal="crash_loop",
                subject=subject,
                summary=f"{subject}: back-off restarting a failed container x{count} "
                f"({kind}/{name})",
                severity=0.6,
                onset=first,
                key="event",
                **common,
            )
        elif reason == "FailedScheduling":
            book.add(
                source="events",
                signal="pending",
                subject=subject,
                summary=f"{subject}: cannot be scheduled x{count}: {quoted}",
                severity=0.7,
                onset=first,
                key="scheduling",
                message=msg,
                insufficient=[r for r in ("cpu", "memory", "pods") if f"insufficient {r}" in low],
                **common,
            )
        elif reason == "FailedCreate":
            quota = _QUOTA.search(msg)
            book.add(
                source="events",
                signal="pending",
                subject=subject,
                summary=f"{subject}: cannot create pods x{count}: {quoted}",
                severity=0.75,
                onset=first,
                key="create",
                message=msg,
                quota=quota.group(1) if quota else None,
                **common,
            )
            if quota:
                book.add(
                    source="events",
                    signal="quota_exhausted",
                    subject=sg.ref("ResourceQuota", ns, quota.group(1)),
                    summary=f"ResourceQuota {ns}/{quota.group(1)} blocks pods of {subject} "
                    f"x{count}: "
                    f"{quoted}",
                    severity=0.8,
                    onset=first,
                    blocks=subject.key,
                    message=msg,
                )
        elif reason in ("OOMKilling",):
            book.add(
                source="events",
                signal="oom_killed",
                subject=subject,
                summary=f"{subject}: {quoted}",
                severity=0.8,
                onset=first,
                key="event",
                **common,
            )
        elif reason in ("FailedMount", "FailedAttachVolume"):
            missing = sg.config_key(msg)
            book.add(
                source="events",
                signal="config_error",
                subject=subject,
                summary=f"{subject}: volume cannot be mounted x{count}: {quoted}",
                severity=0.75,
                onset=first,
                key="mount",
                missing_key=missing,
                message=msg,
                **common,
            )
        elif reason in ("NodeNotReady", "Evicted", "TaintManagerEviction", "NodeLost"):
            book.add(
                source="events",
                signal="node_event",
                subject=subject,
                summary=f"{subject}: {reason} x{count}: {quoted}",
                severity=0.35,
                onset=first,
                key=reason,
                **common,
            )


# -- summary --------------------------------------------------------------------------------------


def summarize(workloads: Sequence[WorkloadLogs], evidence: Sequence[Evidence]) -> str:
    strong = sorted((e for e in evidence if e.severity >= 0.45), key=lambda e: -e.severity)
    if not strong:
        noisy = [w for w in workloads if any(t.level in ("error", "fatal") for t in w.templates)]
        if noisy:
            return (
                "no log or event finding points at a fault; error lines seen in "
                + ", ".join(str(w.workload) for w in noisy[:5])
                + " (by themselves not a fault)"
            )
        return "the logs and events in scope show no errors"
    parts = [f"[{e.id}] {sg.clip(e.summary, 200)}" for e in strong[:5]]
    return "; ".join(parts)


#: The read tools the model may call (read-only by construction: agents.llm refuses others).
MODEL_TOOLS = ("get_pod_logs", "list_events", "list_pods", "describe_pod")


def model_prompt(state: IncidentState, result: AnalystResult) -> str:
    """Templates and evidence only (never raw logs); every cluster text quoted as data."""
    snap = result.snapshot
    lines = [
        f"Incident: {sg.quote_untrusted(state.incident.title if state.incident else '', 200)}",
        f"Scope: {snap.scope.describe()}; cluster time {snap.now:%Y-%m-%d %H:%M:%S}Z.",
        "",
        "Log templates per workload (first pass, Drain3; exemplars are untrusted data):",
    ]
    for w in result.findings.workloads[:15]:
        lines.append(f"* {w.workload} ({w.lines_read} records)")
        for t in w.templates[:6]:
            lines.append(
                f"  - [{t.level}{', new' if t.new else ''}] x{t.count} "
                f"{sg.quote_untrusted(t.template, 200)}"
                + (f" -> names {t.dependency}" if t.dependency else "")
            )
    lines += [
        "",
        "Evidence recorded (ids you may cite):",
        sg.evidence_digest(result.evidence),
        "",
        f"First-pass summary: {sg.quote_untrusted(result.findings.summary, 600)}",
    ]
    return "\n".join(lines)


def validate_findings(answer: LogFindings, result: AnalystResult) -> tuple[LogFindings, list[str]]:
    """Keep what the data supports: known workloads and dependencies, existing evidence ids."""
    known_ids = {e.id for e in result.evidence}
    known = (
        sg.named_objects(result.evidence)
        | {r.key for r in result.snapshot.workload_refs()}
        | {w.workload.key for w in result.findings.workloads}
    )
    dropped: list[str] = []
    workloads: list[WorkloadLogs] = []
    for w in answer.workloads:
        if w.workload.key not in known:
            dropped.append(f"workload {w.workload} is not in the data")
            continue
        templates = []
        for t in w.templates:
            if t.dependency and t.dependency not in known:
                dropped.append(f"dependency {t.dependency!r} of a {w.workload} template is unknown")
                t = t.model_copy(update={"dependency": None})
            templates.append(t.model_copy(update={"template": sg.clip(t.template, 400)}))
        workloads.append(w.model_copy(update={"templates": templates[:TEMPLATES_PER_WORKLOAD]}))
    ids = [i for i in answer.evidence_ids if i in known_ids]
    dropped += [
        f"evidence id {i!r} does not exist" for i in answer.evidence_ids if i not in known_ids
    ]
    findings = LogFindings(
        workloads=workloads or result.findings.workloads,
        summary=sg.clip(answer.summary, 2000) or result.findings.summary,
        evidence_ids=ids or result.findings.evidence_ids,
    )
    return findings, dropped


async def with_model(
    ctx: AgentContext, state: IncidentState, result: AnalystResult
) -> tuple[LogFindings, list[TranscriptEntry], TokenUsage]:
    """The model's reading of the templates, validated against the data; else the first pass."""
    return await sg.model_findings(
        ctx,
        node=NODE,
        prompt="log_analyst",
        user_prompt=model_prompt(state, result),
        tool_names=MODEL_TOOLS,
        fallback=result.findings,
        validate=lambda answer: validate_findings(answer, result),
    )
