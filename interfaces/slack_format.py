"""What kubemedic says in Slack: progress, answers, approval requests, incident summaries.

Everything shown here passes through `safe()` first. The text comes from the
cluster (log lines, events, annotations), from models and from people, so it
is untrusted twice over: secrets are masked with the same redaction the read
tools use (tools.redact), and Slack's control characters (`&`, `<`, `>`) are
escaped, so a log line cannot ping `<!channel>`, mention a user or hide a
link. Lengths stay inside Slack's limits (a section's text is at most 3,000
characters, a message at most 50 blocks, a button's value at most 2,000).

These functions build `(text, blocks)` pairs: `text` is the notification and
accessibility fallback, `blocks` the Block Kit layout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.transcript import clip
from state import IncidentReport, IncidentState
from tools.redact import redact

Blocks = list[dict[str, Any]]

#: Slack's limit on a section block's text.
SECTION_CHARS = 3000
#: Slack's limit on blocks per message; we stay well below it.
MAX_BLOCKS = 45
#: Slack's limit on a button's value.
BUTTON_VALUE_CHARS = 2000
#: The fallback text (notifications); Slack truncates long ones anyway.
FALLBACK_CHARS = 2900
#: Hypotheses, evidence lines and actions shown in an answer.
SHOWN_HYPOTHESES = 3
SHOWN_EVIDENCE = 6
#: Lines of progress kept in the progress message (the oldest scroll away).
PROGRESS_LINES = 18
#: Button action ids (the app's block_actions listeners match these).
APPROVE_ACTION = "kubemedic_approve"
REJECT_ACTION = "kubemedic_reject"


def safe(text: object, limit: int = 500) -> str:
    """Untrusted text made fit to post: secrets masked, Slack's control characters escaped."""
    masked, _ = redact(str(text))
    escaped = masked.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return clip(escaped, limit)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_CHARS)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, 2000)}]}


def _fallback(text: str) -> str:
    return clip(text, FALLBACK_CHARS)


def mention(user_id: str) -> str:
    """A user mention, only for ids that look like Slack's own (never untrusted text)."""
    if user_id and user_id.isalnum() and user_id[:1] in "UW":
        return f"<@{user_id}>"
    return safe(user_id, 40)


# -- progress ---------------------------------------------------------------------------------


@dataclass
class ProgressView:
    """The one progress message of an investigation, rebuilt on every update."""

    question: str
    lines: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    status: str = "investigating"

    def render(self) -> tuple[str, Blocks]:
        head = f":mag: *{self.status}*: _{safe(self.question, 300)}_"
        shown = self.lines[-PROGRESS_LINES:]
        body = list(shown)
        if len(self.lines) > len(shown):
            body.insert(0, f"… {len(self.lines) - len(shown)} earlier steps")
        body.extend(f":hourglass_flowing_sand: {safe(n, 60)}…" for n in self.running)
        blocks: Blocks = [section(head)]
        if body:
            blocks.append(section("\n".join(body)))
        return _fallback(f"kubemedic: {self.status}"), blocks


def node_line(node: str, lines: Sequence[str]) -> str:
    """One progress line for a node that finished: its name and the first thing it found."""
    what = f": {safe(lines[0], 240)}" if lines else ""
    return f":white_check_mark: `{safe(node, 60)}`{what}"


# -- answers ----------------------------------------------------------------------------------


def answer_message(state: IncidentState, *, thread_id: str) -> tuple[str, Blocks]:
    """An investigation's answer: root causes, evidence, plan, the gate, what was done."""
    hypotheses = state.plan.ranked() if state.plan else []
    by_id = {e.id: e for e in state.evidence}
    blocks: Blocks = []
    if hypotheses:
        top = hypotheses[0]
        headline = (
            f"*Most likely cause:* `{safe(top.root_cause, 200)}` "
            f"({safe(top.cause_kind, 60)}, {top.confidence:.0%} confidence)"
        )
    else:
        headline = "*Nothing looks wrong:* no hypothesis stands on the evidence."
    blocks.append(section(headline))
    if hypotheses:
        rows = [
            f"{i}. *{h.confidence:.0%}* `{safe(h.root_cause, 200)}` "
            f"({safe(h.category.system_level, 40)} / {safe(h.category.fault_type, 40)}): "
            f"{safe(h.statement, 400)}"
            for i, h in enumerate(hypotheses[:SHOWN_HYPOTHESES], 1)
        ]
        blocks.append(section("*Root causes*\n" + "\n".join(rows)))
        cited = [by_id[e] for e in hypotheses[0].evidence_ids if e in by_id]
        if cited:
            ev = [
                f"• `{safe(e.id, 40)}` [{safe(e.signal, 40)}] {safe(e.summary, 300)}"
                for e in cited[:SHOWN_EVIDENCE]
            ]
            more = len(cited) - SHOWN_EVIDENCE
            if more > 0:
                ev.append(f"… and {more} more")
            blocks.append(section("*Evidence*\n" + "\n".join(ev)))
    actions = state.plan.actions if state.plan else []
    decisions = {d.action_index: d for d in state.decisions}
    if actions:
        rows = []
        for i, a in enumerate(actions):
            d = decisions.get(i)
            gate = f" _gate: {d.decision}_" if d else ""
            reasons = f" ({safe('; '.join(d.reasons[:2]), 300)})" if d and d.reasons else ""
            rows.append(
                f"{i}. `{safe(a.action, 30)}` `{safe(a.target, 200)}`"
                f"{_params(a.params.model_dump(mode='json', exclude_none=True))}: "
                f"{safe(a.expected_effect, 300)}{gate}{reasons}"
            )
        blocks.append(section("*Plan*\n" + "\n".join(rows)))
    elif state.plan is not None:
        blocks.append(section("*Plan*\nno action"))
    done = [
        f"• {safe(e.status, 30)}: `{safe(e.action.action, 30)}` `{safe(e.action.target, 200)}`"
        + (f" {safe(_change(e.before, e.after), 300)}" if e.before or e.after else "")
        + (f" ({safe(e.error, 300)})" if e.error else "")
        for e in state.executed
    ]
    done.extend(
        f"• verification: {safe(v.status, 20)} ({safe('; '.join(v.checks[:3]), 400)})"
        for v in state.verifications[-1:]
    )
    done.extend(
        f"• {'approved' if a.decision == 'approve' else 'rejected'} by {mention(a.by)} "
        f"via {safe(a.via, 20)}"
        for a in state.approvals[-2:]
    )
    if done:
        blocks.append(section("*What was done*\n" + "\n".join(done)))
    mode = state.incident.mode if state.incident else state.input.mode
    blocks.append(
        context(
            f"incident `{safe(thread_id, 120)}` · {mode} mode · outcome "
            f"*{safe(state.outcome or 'open', 30)}* · reply in this thread to ask a follow-up"
        )
    )
    text = (
        f"kubemedic: {safe(hypotheses[0].root_cause, 200)} "
        f"({hypotheses[0].confidence:.0%}), outcome {state.outcome or 'open'}"
        if hypotheses
        else f"kubemedic: nothing looks wrong (outcome {state.outcome or 'open'})"
    )
    return _fallback(text), blocks[:MAX_BLOCKS]


def _params(params: Mapping[str, Any]) -> str:
    if not params:
        return ""
    return " " + safe(json.dumps(params, sort_keys=True, separators=(",", ":")), 200)


def _change(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    return f"{json.dumps(dict(before), default=str)} → {json.dumps(dict(after), default=str)}"


def failure_message(problem: str) -> tuple[str, Blocks]:
    text = f":warning: The investigation stopped: {safe(problem, 600)}"
    return _fallback(text), [section(text)]


# -- approvals --------------------------------------------------------------------------------


def button_value(request_id: str, incident_id: str, action_indexes: Sequence[int]) -> str:
    """What an Approve / Reject button carries: the request, the incident, the actions."""
    value = json.dumps(
        {"request_id": request_id, "incident_id": incident_id, "actions": list(action_indexes)},
        separators=(",", ":"),
    )
    if len(value) > BUTTON_VALUE_CHARS:
        raise ValueError(f"button value for request {request_id!r} exceeds Slack's 2000 chars")
    return value


def approval_message(payload: Mapping[str, Any], *, thread_id: str) -> tuple[str, Blocks]:
    """An interactive approval request: each action, its dry-run and the gate's reasons."""
    request_id = str(payload.get("request_id", ""))
    actions: list[Mapping[str, Any]] = list(payload.get("actions") or [])
    attempt = int(payload.get("attempt") or 1)
    title = safe(payload.get("title", ""), 200)
    head = f":raising_hand: *Approval needed* for _{title}_ (`{safe(request_id, 80)}`)"
    if attempt > 1:
        head += f"\nAsked again (attempt {attempt}): the previous answer was refused."
    blocks: Blocks = [section(head)]
    for a in actions[:10]:
        rows = [f"*[{int(a.get('index', 0))}] {safe(a.get('summary', ''), 200)}*"]
        data = a.get("action") or {}
        params = data.get("params") if isinstance(data, Mapping) else None
        if params:
            rows.append(f"params: {_params(params).strip()}")
        if isinstance(data, Mapping) and data.get("expected_effect"):
            rows.append(f"expected: {safe(data['expected_effect'], 300)}")
        for reason in list(a.get("gate") or [])[:4]:
            rows.append(f"gate: {safe(reason, 300)}")
        dry = a.get("dry_run") or {}
        if dry:
            rows.append(
                f"dry-run: *{safe(dry.get('status'), 40)}* {safe(dry.get('message', ''), 300)}"
            )
            if dry.get("before") or dry.get("requested"):
                rows.append(
                    f"now: {safe(json.dumps(dry.get('before'), default=str), 300)} → requested: "
                    f"{safe(json.dumps(dry.get('requested'), default=str), 300)}"
                )
        blocks.append(section("\n".join(rows)))
    hypotheses = list(payload.get("hypotheses") or [])[:2]
    if hypotheses:
        blocks.append(
            section(
                "*Why*\n"
                + "\n".join(
                    f"• {float(h.get('confidence', 0)):.0%} {safe(h.get('statement', ''), 400)}"
                    for h in hypotheses
                )
            )
        )
    evidence = list(payload.get("evidence") or [])
    if evidence:
        blocks.append(
            section(
                "*Evidence*\n"
                + "\n".join(
                    f"• `{safe(e.get('id'), 40)}` [{safe(e.get('signal'), 40)}] "
                    f"{safe(e.get('summary'), 300)}"
                    for e in evidence[:SHOWN_EVIDENCE]
                )
            )
        )
    indexes = [int(a.get("index", 0)) for a in actions]
    value = button_value(request_id, thread_id, indexes)
    blocks.append(
        {
            "type": "actions",
            "block_id": "kubemedic_approval",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": REJECT_ACTION,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Reject"},
                    "value": value,
                },
            ],
        }
    )
    summary = ", ".join(str(a.get("summary", "")) for a in actions)
    return _fallback(f"kubemedic asks approval: {safe(summary, 500)}"), blocks[:MAX_BLOCKS]


def decided_message(
    payload: Mapping[str, Any], *, decision: str, user_id: str, at: str, note: str = ""
) -> tuple[str, Blocks]:
    """The approval request after the answer: the buttons gone, who decided and when."""
    actions = ", ".join(safe(a.get("summary", ""), 200) for a in payload.get("actions") or [])
    icon = ":white_check_mark:" if decision == "approve" else ":no_entry_sign:"
    verb = "Approved" if decision == "approve" else "Rejected"
    who = mention(user_id) if user_id != "kubemedic" else "kubemedic"
    text = (
        f"{icon} *{verb}* by {who} at {safe(at.replace('T', ' '), 40)}: {actions} "
        f"(`{safe(payload.get('request_id', ''), 80)}`)"
    )
    if note:
        text += f"\n{safe(note, 500)}"
    return _fallback(text), [section(text)]


def refusal_message(user_id: str, request_id: str, reasons: Sequence[str]) -> tuple[str, Blocks]:
    """Why a button click did not count."""
    text = (
        f":no_entry: {mention(user_id)}'s answer to `{safe(request_id, 80)}` was refused:\n"
        + "\n".join(f"• {safe(r, 400)}" for r in reasons)
    )
    return _fallback(text), [section(text)]


# -- incident summaries (alert-started incidents) ------------------------------------------------


def summary_message(report: IncidentReport | Mapping[str, Any]) -> tuple[str, Blocks]:
    """A finished incident, for the channel: what fired, the cause, what was done, the outcome.

    `report` is an IncidentReport (or its JSON, the transcript.json file) or the
    `kubemedic run --json` object.
    """
    if isinstance(report, Mapping) and "incident" not in report:
        return _run_report_summary(report)
    rep = report if isinstance(report, IncidentReport) else IncidentReport.model_validate(report)
    inc = rep.incident
    hypotheses = rep.ranked()
    causes = [
        f"• *{h.confidence:.0%}* `{safe(h.root_cause, 200)}` ({safe(h.cause_kind, 60)}): "
        f"{safe(h.statement, 300)}"
        for h in hypotheses[:SHOWN_HYPOTHESES]
    ]
    done = [
        f"• {safe(e.status, 30)}: `{safe(e.action.action, 30)}` `{safe(e.action.target, 200)}`"
        for e in rep.actions
    ]
    if not done and rep.plan is not None:
        done = [
            f"• proposed: `{safe(a.action, 30)}` `{safe(a.target, 200)}`" for a in rep.plan.actions
        ]
    return _summary(
        title=inc.title,
        incident_id=inc.id,
        mode=inc.mode,
        outcome=rep.outcome,
        causes=causes,
        done=done,
        extra=(f"verification: {rep.verifications[-1].status}" if rep.verifications else ""),
    )


def _run_report_summary(report: Mapping[str, Any]) -> tuple[str, Blocks]:
    causes = [
        f"• *{float(c.get('confidence', 0)):.0%}* "
        f"`{safe(c.get('kind'), 40)}/{safe(c.get('namespace'), 63)}/{safe(c.get('name'), 253)}`"
        for c in list(report.get("root_causes") or [])[:SHOWN_HYPOTHESES]
    ]
    done = []
    for a in report.get("actions") or []:
        t = a.get("target") or {}
        done.append(
            f"• {safe(a.get('status'), 30)}: `{safe(a.get('action'), 30)}` "
            f"`{safe(t.get('kind'), 40)}/{safe(t.get('namespace'), 63)}/{safe(t.get('name'), 253)}`"
        )
    recovered = report.get("recovered")
    return _summary(
        title=str(report.get("scenario") or report.get("incident_id") or "incident"),
        incident_id=str(report.get("incident_id", "")),
        mode=str(report.get("mode", "")),
        outcome=report.get("outcome"),
        causes=causes,
        done=done,
        extra=f"recovered: {'yes' if recovered else 'no'}" if recovered is not None else "",
    )


def _summary(
    *,
    title: str,
    incident_id: str,
    mode: str,
    outcome: object,
    causes: list[str],
    done: list[str],
    extra: str,
) -> tuple[str, Blocks]:
    head = f":rotating_light: *{safe(title, 200)}*"
    blocks: Blocks = [section(head)]
    blocks.append(section("*Root causes*\n" + ("\n".join(causes) or "none found")))
    blocks.append(section("*Actions*\n" + ("\n".join(done) or "none")))
    foot = (
        f"incident `{safe(incident_id, 120)}` · {safe(mode, 20)} mode · "
        f"outcome *{safe(outcome, 30)}*"
    )
    if extra:
        foot += f" · {safe(extra, 200)}"
    blocks.append(context(foot))
    first = causes[0].removeprefix("• ") if causes else "no root cause found"
    return _fallback(f"kubemedic incident: {safe(title, 200)}: {first}"), blocks
