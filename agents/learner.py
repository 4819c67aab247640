"""The learner node: remember what broke, what was done and whether it worked.

The last node of every incident. It builds the memory's record of the incident
(fingerprint from the evidence, root cause and category from the top
hypothesis, each action with its outcome and time to recover from the
verifier's readings), stores it, which also updates the per-(cause kind,
action) statistics that recall hands to the next planner, and writes the
incident's transcript (a state.IncidentReport) to
`settings.incident_dir(id)/transcript.json`, the file post-mortems are built
from. Neither a memory failure (Redis down) nor a failed file write ends the
incident: both are reported in the transcript.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agents.context import AgentContext
from memory.base import ActionOutcome, IncidentRecord, MemoryStoreError
from memory.fingerprint import record_fingerprint
from state import (
    ExecutedAction,
    Hypothesis,
    IncidentReport,
    IncidentState,
    Outcome,
    TranscriptEntry,
    Verification,
)

NODE = "learner"
TRANSCRIPT_FILE = "transcript.json"
POSTMORTEM_FILE = "postmortem.md"


def top_hypothesis(state: IncidentState) -> Hypothesis | None:
    """The most confident hypothesis of the final plan (the first among equals)."""
    if state.plan is None or not state.plan.hypotheses:
        return None
    return max(state.plan.hypotheses, key=lambda h: h.confidence)


def derive_outcome(state: IncidentState) -> Outcome:
    """How the incident ended, from what happened, when no node has said so."""
    if any(v.status == "recovered" for v in state.verifications):
        return "recovered"
    statuses = {e.status for e in state.executed}
    if "escalated" in statuses and not statuses & {"applied", "undone"}:
        return "escalated"
    if statuses & {"applied", "undone"}:
        return "not_recovered"
    if statuses & {"failed", "dry_run_failed"}:
        return "failed"
    if any(a.decision == "reject" for a in state.approvals):
        return "rejected"
    if state.verdict is not None and state.verdict.verdict == "reject":
        return "rejected"
    actions = state.plan.actions if state.plan else []
    if not actions:
        return "no_action"
    if state.decisions and all(d.decision == "deny" for d in state.decisions):
        return "denied"
    return "recommended"


def _verification_after(
    action: ExecutedAction, verifications: list[Verification]
) -> Verification | None:
    later = [v for v in verifications if v.at >= action.at]
    return min(later, key=lambda v: v.at) if later else None


def action_outcomes(state: IncidentState) -> list[ActionOutcome]:
    """Each executed action with whether the first verification after it saw recovery."""
    outcomes = []
    for executed in state.executed:
        act = executed.action
        check = _verification_after(executed, state.verifications)
        recovered = (
            executed.status == "applied" and check is not None and check.status == "recovered"
        )
        ttr = (check.at - executed.at).total_seconds() if recovered and check else None
        params = {} if act.action == "escalate" else act.params.model_dump(exclude_none=True)
        outcomes.append(
            ActionOutcome(
                action=act.action,
                target=str(act.target),
                status=executed.status,
                recovered=recovered,
                verified=check is not None,
                time_to_recover_s=ttr,
                params=params,
                at=executed.at,
            )
        )
    return outcomes


def time_to_recover(state: IncidentState) -> float | None:
    """Cluster seconds from intake to the confirmed recovery, when it recovered."""
    if state.incident is None:
        return None
    end: datetime | None = state.mitigated_at
    if end is None:
        recovered = [v.at for v in state.verifications if v.status == "recovered"]
        end = min(recovered) if recovered else None
    if end is None:
        return None
    return max(0.0, (end - state.incident.opened_at).total_seconds())


def build_record(
    state: IncidentState, *, outcome: str, closed_at: datetime, incident_dir: Path
) -> IncidentRecord:
    """The memory's record of a finished incident."""
    if state.incident is None:
        raise ValueError("the incident has no intake yet: nothing to remember")
    top = top_hypothesis(state)
    return IncidentRecord(
        incident_id=state.incident.id,
        fingerprint=record_fingerprint(state.incident, state.evidence, state.log_findings),
        title=state.incident.title,
        root_cause=top.root_cause if top else None,
        cause_kind=top.cause_kind if top else "",
        category=top.category if top else None,
        actions=action_outcomes(state),
        outcome=outcome,
        time_to_recover_s=time_to_recover(state),
        opened_at=state.incident.opened_at,
        closed_at=closed_at,
        transcript_path=str(incident_dir / TRANSCRIPT_FILE),
        postmortem_path=str(incident_dir / POSTMORTEM_FILE),
    )


def _stored_summary(record: IncidentRecord, store: str) -> str:
    counted = [a for a in record.actions if a.counts]
    learned = (
        "; ".join(
            f"{record.cause_kind}/{a.action}: {'success' if a.recovered else 'failure'}"
            for a in counted
        )
        if record.cause_kind and counted
        else "no action statistics to update"
    )
    return (
        f"remembered incident {record.incident_id} in {store} "
        f"(cause {record.cause_kind or 'unknown'}, outcome {record.outcome}, "
        f"{len(record.fingerprint)} fingerprint tokens); {learned}"
    )


async def learner(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Store the incident in memory, update the action statistics, write the transcript."""
    ctx = runtime.context
    store = ctx.memory.description
    now = ctx.clock.now()
    if state.incident is None:
        entry = TranscriptEntry(
            at=now, node=NODE, kind="error", summary="no incident from intake: nothing to learn"
        )
        return {"transcript": [entry]}

    update: dict[str, Any] = {}
    lines: list[TranscriptEntry] = []
    outcome: Outcome = state.outcome or derive_outcome(state)
    if state.outcome is None:
        update["outcome"] = outcome
        lines.append(
            TranscriptEntry(at=now, node=NODE, kind="outcome", summary=f"outcome: {outcome}")
        )

    incident_dir = ctx.settings.incident_dir(state.incident.id)
    record = build_record(state, outcome=outcome, closed_at=now, incident_dir=incident_dir)
    try:
        await ctx.memory.record(record)
    except MemoryStoreError as exc:
        lines.append(
            TranscriptEntry(
                at=now,
                node=NODE,
                kind="error",
                summary=f"memory ({store}) write failed, the incident is not remembered: {exc}",
                data={"store": store, "record": record.model_dump(mode="json")},
            )
        )
    else:
        lines.append(
            TranscriptEntry(
                at=now,
                node=NODE,
                kind="memory",
                summary=_stored_summary(record, store),
                data={
                    "store": store,
                    "fingerprint": record.fingerprint,
                    "actions": [a.model_dump(mode="json") for a in record.actions],
                    "time_to_recover_s": record.time_to_recover_s,
                },
            )
        )

    path = incident_dir / TRANSCRIPT_FILE
    lines.append(
        TranscriptEntry(at=now, node=NODE, kind="note", summary=f"transcript written to {path}")
    )
    final = dataclasses.replace(state, outcome=outcome, transcript=[*state.transcript, *lines])
    text = IncidentReport.from_state(final).model_dump_json(indent=2)
    try:
        await asyncio.to_thread(_write, path, text)
    except OSError as exc:
        lines[-1] = TranscriptEntry(
            at=now,
            node=NODE,
            kind="error",
            summary=f"could not write the transcript to {path}: {exc}",
        )
    for line in lines:
        ctx.say(NODE, line.summary)
    update["transcript"] = lines
    return update


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
