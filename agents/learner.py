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
    """The incident's first root cause (Plan.ranked): the first fixed along the way, else the
    final plan's most confident hypothesis (the first among equals)."""
    ranked = state.plan.ranked() if state.plan else []
    return ranked[0] if ranked else None


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


def _window(executed: ExecutedAction, state: IncidentState) -> tuple[list[Verification], bool]:
    """The verifier's readings that judge one action, and whether a later plan followed.

    Actions of one plan revision are judged together: by the readings from the first of
    them until the next revision's first action (a re-plan says the earlier one did not
    recover the service in time).
    """
    starts: dict[int, datetime] = {}
    for e in state.executed:
        if e.status != "undone":
            starts[e.plan_revision] = min(e.at, starts.get(e.plan_revision, e.at))
    begin = starts.get(executed.plan_revision, executed.at)
    later = [t for rev, t in starts.items() if rev > executed.plan_revision and t >= begin]
    end = min(later) if later else None
    readings = [
        v
        for v in sorted(state.verifications, key=lambda v: v.at)
        if v.at >= begin and (end is None or v.at < end)
    ]
    return readings, end is not None


def action_outcomes(state: IncidentState) -> list[ActionOutcome]:
    """Each executed action with whether the verifier saw recovery before any re-plan.

    An undo (status "undone") is the inverse of an earlier action: it is listed, but the
    failure is the original action's (its reading said "worse"). An action whose cause was
    later found resolved (Plan.resolved) worked, though another fault kept the incident
    open; each outcome names the cause kind of the hypothesis it served, so that statistics
    count it only for that kind.
    """
    plan = state.plan
    # The hypothesis each action served: a resolved cause by the revision that fixed it.
    served = {(h.resolved_in, h.id): h for h in plan.resolved} if plan else {}
    if plan:
        served.update({(plan.revision, h.id): h for h in plan.hypotheses})
    outcomes = []
    for executed in state.executed:
        act = executed.action
        readings, replanned = _window(executed, state)
        recovered_at = next((v.at for v in readings if v.status == "recovered"), None)
        cause = served.get((executed.plan_revision, act.hypothesis_id))
        # A cause later found resolved was fixed by this action, though another fault kept
        # the incident open: the action worked.
        fixed = cause is not None and cause.resolved_in == executed.plan_revision
        recovered = executed.status == "applied" and (recovered_at is not None or fixed)
        ttr = (
            max(0.0, (recovered_at - executed.at).total_seconds())
            if recovered and recovered_at is not None
            else None
        )
        params = {} if act.action == "escalate" else act.params.model_dump(exclude_none=True)
        outcomes.append(
            ActionOutcome(
                action=act.action,
                target=str(act.target),
                status=executed.status,
                recovered=recovered,
                verified=bool(readings) or replanned,
                time_to_recover_s=ttr,
                params=params,
                at=executed.at,
                cause_kind=cause.cause_kind if cause else "",
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
    counted = [a for a in record.actions if a.counts_for(record.cause_kind)]
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
