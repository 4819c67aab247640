"""The approval node: a person approves or rejects the actions the gate would not run alone.

It pauses the graph with LangGraph's `interrupt()`. The payload carries what a
person needs to decide: the request id, each proposed action with its
dry-run diff and the gate's reasons, the hypotheses and the evidence the
actions rest on. The graph is resumed with
`Command(resume={"decision": "approve"|"reject", "by", "via", "at", "request_id",
"action_indexes"})`, from a terminal prompt, Slack or the API.

An answer is data from outside and is checked (policies/approvals.py) before
it counts: an answer to another request (replayed or forged), a second answer
to the same request, an answer for actions that are not pending, or an
answer that names no approver is refused, recorded in the transcript, and
the question is asked again (a bounded number of times). An accepted
approval is still not an authorization: the executor asks the gate again
right before each API call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from agents.context import AgentContext
from agents.transcript import clip, entry
from policies.approvals import approved_indexes, check_approval
from state import Approval, IncidentState, TranscriptEntry, format_validation_error

NODE = "approval"
#: Answers refused before the node stops asking and nothing is approved.
MAX_ATTEMPTS = 3
#: Evidence items shown with a request (those the actions cite come first).
MAX_EVIDENCE = 30


async def approval(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Ask a person about the pending actions; record the answer that passes the checks."""
    ctx = runtime.context
    request_id = state.pending_approval
    pending = [d.action_index for d in state.decisions if d.decision == "needs_approval"]
    mode = state.incident.mode if state.incident else state.input.mode
    if mode == "observe" or not request_id or not pending or state.plan is None:
        return {
            "pending_approval": "",
            "approved_actions": [],
            "transcript": [entry(ctx, NODE, "note", "nothing awaits approval")],
        }
    request = _request_line(state, request_id)
    issued_at = _issued_at(request)
    payload = approval_payload(state, request_id, pending, request)
    lines: list[TranscriptEntry] = []
    refused: list[Approval] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt == 1:
            ctx.say(NODE, f"waiting for a person to approve actions {pending} ({request_id})")
        answer = interrupt({**payload, "attempt": attempt})
        parsed, problem = _parse(answer, ctx.clock.now())
        reasons = [problem] if problem else []
        if parsed is not None:
            reasons = check_approval(
                parsed,
                request_id,
                pending,
                ctx.clock.now(),
                issued_at=issued_at,
                previous=state.approvals,
                actions=state.plan.actions,
                limits=ctx.limits,
            )
        if reasons:
            if parsed is not None:
                refused.append(parsed)
            lines.append(
                entry(
                    ctx,
                    NODE,
                    "approval",
                    f"answer refused (attempt {attempt}): {'; '.join(reasons)}",
                    refused=True,
                    reasons=reasons,
                    answer=_safe(answer),
                )
            )
            ctx.say(NODE, f"answer refused: {'; '.join(reasons)}")
            continue
        assert parsed is not None
        covered = sorted(approved_indexes(parsed, pending))
        if parsed.decision == "approve":
            summary = f"approved by {parsed.by} via {parsed.via}: actions {covered}"
        else:
            summary = f"rejected by {parsed.by} via {parsed.via}"
        if parsed.comment:
            summary += f" ({clip(parsed.comment, 300)})"
        lines.append(
            entry(
                ctx,
                NODE,
                "approval",
                summary,
                request_id=request_id,
                decision=parsed.decision,
                by=parsed.by,
                via=parsed.via,
                answered_at=parsed.at.isoformat(),
                action_indexes=covered,
            )
        )
        ctx.say(NODE, summary)
        recorded = parsed.model_copy(update={"action_indexes": covered or list(pending)})
        return {
            "approvals": [recorded],
            "approved_actions": covered,
            "pending_approval": "",
            "transcript": lines,
        }
    lines.append(
        entry(
            ctx,
            NODE,
            "approval",
            f"no acceptable answer after {MAX_ATTEMPTS} attempts: nothing is approved",
        )
    )
    return {"approved_actions": [], "pending_approval": "", "transcript": lines}


def approval_payload(
    state: IncidentState, request_id: str, pending: list[int], request: TranscriptEntry | None
) -> dict[str, Any]:
    """What the interrupt shows a person: the actions, their dry-runs and reasons, the evidence."""
    assert state.plan is not None
    actions = state.plan.actions
    decisions = {d.action_index: d for d in state.decisions}
    dry_runs: dict[str, Any] = (request.data.get("dry_runs") if request else None) or {}
    cited: list[str] = []
    hypotheses = {a.hypothesis_id for i, a in enumerate(actions) if i in pending}
    for i in pending:
        cited.extend(e for e in actions[i].evidence_ids if e not in cited)
    by_id = {e.id: e for e in state.evidence}
    evidence = [by_id[e] for e in cited if e in by_id][:MAX_EVIDENCE]
    return {
        "request_id": request_id,
        "incident_id": state.incident.id if state.incident else "",
        "title": state.incident.title if state.incident else "",
        "mode": state.incident.mode if state.incident else state.input.mode,
        "actions": [
            {
                "index": i,
                "action": actions[i].model_dump(mode="json"),
                "summary": f"{actions[i].action} {actions[i].target}",
                "gate": decisions[i].reasons if i in decisions else [],
                "dry_run": dry_runs.get(str(i), {}),
            }
            for i in pending
        ],
        "hypotheses": [
            h.model_dump(mode="json") for h in state.plan.hypotheses if h.id in hypotheses
        ],
        "evidence": [
            {
                "id": e.id,
                "signal": e.signal,
                "subject": str(e.subject),
                "summary": clip(e.summary, 400),
            }
            for e in evidence
        ],
        "answer_with": {
            "decision": "approve | reject",
            "by": "who answers",
            "via": "terminal | slack | api",
            "at": "when (ISO 8601)",
            "request_id": request_id,
            "action_indexes": "the indexes approved (all pending when empty)",
        },
    }


def _request_line(state: IncidentState, request_id: str) -> TranscriptEntry | None:
    for line in reversed(state.transcript):
        if line.kind == "approval" and line.data.get("request_id") == request_id:
            return line
    return None


def _issued_at(request: TranscriptEntry | None) -> datetime | None:
    raw = request.data.get("issued_at") if request else None
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            return None
    return request.at if request else None


def _parse(answer: Any, now: datetime) -> tuple[Approval | None, str]:
    """The answer as an Approval, or why it is not one."""
    if isinstance(answer, Approval):
        return answer, ""
    if not isinstance(answer, dict):
        return None, f"the answer is not an approval object: {clip(repr(answer), 200)}"
    data = dict(answer)
    data.setdefault("at", now)
    try:
        return Approval.model_validate(data), ""
    except ValidationError as exc:
        return None, f"the answer is malformed: {format_validation_error(exc)}"


def _safe(answer: Any) -> Any:
    """An answer as JSON-shaped data for the transcript, cut to a sane size."""
    if isinstance(answer, Approval):
        return answer.model_dump(mode="json")
    if isinstance(answer, dict):
        return {clip(str(k), 60): clip(str(v), 300) for k, v in list(answer.items())[:20]}
    return clip(repr(answer), 300)
