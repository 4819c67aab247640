"""The executor: the only node that changes the cluster.

For each action the gate allowed (or that a person approved) it asks the
gate again, with a context read from the cluster right now, because an
approval is not an authorization and the cluster may have changed since.
Only then does it call `tools.executor.execute`: a server-side dry-run, and
the real API call if the dry-run passed. It records what changed (before,
after, the inverse action) and writes a transcript line for the dry-run and
one for the API call.

It is idempotent per incident and action: the key is (incident id, plan
revision, action index). The state says what this run already did, and a
ledger file in the incident's directory, written before and after each API
call, covers a run that stopped between sending a write and saving its
checkpoint: a resumed graph never sends the same action twice.

On "worse" (the verifier saw the cluster get worse after the actions) it runs
the inverse of its own reversible actions, newest first, through the gate.

This is the one place that catches broadly: a failure of one action is
recorded as that action's failure and stops the actions after it;
cancellation passes through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agents.context import AgentContext
from agents.gate_context import gather_gate_context
from agents.transcript import clip, entry
from policies.gate import evaluate, may_execute
from state import Action, ExecutedAction, IncidentState, TranscriptEntry
from tools.errors import ToolError
from tools.executor import ActionOutcome, execute

NODE = "executor"
LEDGER_FILE = "executor-ledger.jsonl"

#: tools.executor's outcome status -> the state's ExecutedAction status.
_STATUS = {
    "applied": "applied",
    "no_change": "skipped",
    "rejected": "dry_run_failed",
    "failed": "failed",
    "escalated": "escalated",
    "dry_run_passed": "skipped",
}


async def executor(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Carry out the allowed and approved actions of the current plan, or undo on "worse"."""
    ctx = runtime.context
    if undo_pending(state):
        return await _undo(state, ctx)
    plan = state.plan
    if plan is None or state.incident is None:
        return {"transcript": [entry(ctx, NODE, "note", "no plan: nothing to execute")]}
    decisions = {d.action_index: d for d in state.decisions}
    approved = set(state.approved_actions)
    done = {(e.plan_revision, e.action_index) for e in state.executed}
    ledger = Ledger(ctx.settings.incident_dir(state.incident.id) / LEDGER_FILE)
    results: list[ExecutedAction] = []
    lines: list[TranscriptEntry] = []
    stopped = ""
    for i, action in enumerate(plan.actions):
        decision = decisions.get(i)
        if decision is None or decision.decision == "deny":
            continue
        if decision.decision == "needs_approval" and i not in approved:
            lines.append(
                entry(
                    ctx,
                    NODE,
                    "note",
                    f"not executed: {action.action} {action.target} needs a person's approval "
                    "and has none",
                    action_index=i,
                )
            )
            continue
        key = f"{state.incident.id}/{plan.revision}/{i}"
        if (plan.revision, i) in done:
            lines.append(
                entry(ctx, NODE, "note", f"already executed ({key}): not sent again", key=key)
            )
            continue
        earlier = ledger.get(key)
        if earlier is not None:
            results.append(earlier)
            lines.append(
                entry(
                    ctx,
                    NODE,
                    "note",
                    f"{action.action} {action.target} was already sent by an earlier run "
                    f"({key}: {earlier.status}): not sent again",
                    key=key,
                )
            )
            continue
        if stopped:
            results.append(_record(ctx, i, action, plan.revision, "skipped", error=stopped))
            continue
        now_state = dataclasses.replace(state, executed=[*state.executed, *results])
        record, more = await _run_one(
            ctx, now_state, i, action, plan.revision, approved=i in approved, ledger=ledger, key=key
        )
        results.append(record)
        lines.extend(more)
        if record.status in ("failed", "dry_run_failed"):
            stopped = f"not sent: action {i} ({action.action} {action.target}) {record.status}"
    update: dict[str, Any] = {"executed": results, "transcript": lines}
    statuses = {r.status for r in results}
    if statuses == {"escalated"}:
        update["outcome"] = "escalated"
    return update


def undo_pending(state: IncidentState) -> bool:
    """The latest verification says "worse" and the executor has not undone since."""
    if not state.verifications or state.verifications[-1].status != "worse":
        return False
    worse_at = state.verifications[-1].at
    return not any(e.status == "undone" and e.at >= worse_at for e in state.executed)


async def _run_one(
    ctx: AgentContext,
    state: IncidentState,
    index: int,
    action: Action,
    revision: int,
    *,
    approved: bool,
    ledger: Ledger,
    key: str,
) -> tuple[ExecutedAction, list[TranscriptEntry]]:
    """Gate again, then dry-run and apply one action; every failure becomes the record."""
    lines: list[TranscriptEntry] = []
    try:
        gate_ctx = await gather_gate_context(ctx, state, action)
        decision = evaluate(action, gate_ctx, ctx.limits)
        reasons = "; ".join(decision.reasons) or "no reason given"
        lines.append(
            entry(
                ctx,
                NODE,
                "decision",
                f"gate re-check right before the call: {decision.decision}: {action.action} "
                f"{action.target} ({reasons})",
                action_index=index,
                decision=decision.decision,
                reasons=decision.reasons,
                approved=approved,
            )
        )
        if not may_execute(decision, approved):
            ctx.say(NODE, f"{action.action} {action.target}: refused by the gate ({reasons})")
            return _record(ctx, index, action, revision, "denied", error=reasons), lines
        if action.action == "escalate":
            summary = getattr(action.params, "summary", "")
            lines.append(
                entry(
                    ctx,
                    NODE,
                    "outcome",
                    f"escalated to a person: {clip(summary, 500)}",
                    action_index=index,
                    action=action.model_dump(mode="json"),
                )
            )
            ctx.say(NODE, f"escalated: {clip(summary, 200)}")
            return _record(ctx, index, action, revision, "escalated"), lines
        ledger.intent(key, index, revision, action, ctx.clock.now())
        outcome = await asyncio.to_thread(execute, ctx.toolbox.kube(), action)
        record = _record(
            ctx,
            index,
            action,
            revision,
            _STATUS[outcome.status],
            outcome=outcome,
            error="" if outcome.ok else outcome.message,
        )
        ledger.done(key, record)
        lines.extend(_call_lines(ctx, index, outcome))
        ctx.say(NODE, f"{action.action} {action.target}: {outcome.status} ({outcome.message})")
        return record, lines
    except Exception as exc:  # the executor's boundary: one action's failure is its record
        error = f"{type(exc).__name__}: {clip(str(exc), 500)}"
        lines.append(
            entry(
                ctx,
                NODE,
                "error",
                f"{action.action} {action.target} failed: {error}",
                action_index=index,
            )
        )
        ctx.say(NODE, f"{action.action} {action.target} failed: {error}")
        record = _record(ctx, index, action, revision, "failed", error=error)
        ledger.done(key, record)
        return record, lines


def _call_lines(ctx: AgentContext, index: int, outcome: ActionOutcome) -> list[TranscriptEntry]:
    """One transcript line for the dry-run and one for the real call (when one was sent)."""
    action = outcome.action
    dry = [r for r in outcome.requests if r.endswith("(dryRun=All)")]
    real = [r for r in outcome.requests if not r.endswith("(dryRun=All)")]
    lines: list[TranscriptEntry] = []
    if dry:
        passed = bool(real) or outcome.status in ("applied", "dry_run_passed")
        lines.append(
            entry(
                ctx,
                NODE,
                "dry_run",
                f"server-side dry-run of {action.action} {action.target}: "
                + ("passed" if passed else f"failed ({outcome.message})"),
                action_index=index,
                requests=dry,
            )
        )
    if not real:
        # Nothing was sent for real: a precondition or the dry-run stopped it, or the
        # cluster already is as the action wants.
        if not dry or outcome.status == "no_change":
            lines.append(
                entry(
                    ctx,
                    NODE,
                    "note",
                    f"{action.action} {action.target} not sent: {outcome.status}: "
                    f"{outcome.message}",
                    action_index=index,
                    status=outcome.status,
                    error_kind=outcome.error_kind,
                )
            )
    else:
        lines.append(
            entry(
                ctx,
                NODE,
                "api_call",
                f"{action.action} {action.target}: {outcome.status}: {outcome.message}",
                action_index=index,
                status=outcome.status,
                requests=real,
                changes=[c.model_dump(mode="json") for c in outcome.changes],
                error_kind=outcome.error_kind,
            )
        )
    return lines


def _record(
    ctx: AgentContext,
    index: int,
    action: Action,
    revision: int,
    status: str,
    *,
    outcome: ActionOutcome | None = None,
    error: str = "",
) -> ExecutedAction:
    return ExecutedAction.model_validate(
        {
            "action_index": index,
            "action": action,
            "status": status,
            "before": outcome.before if outcome else {},
            "after": outcome.after if outcome else {},
            "inverse": outcome.inverse if outcome else None,
            "error": error,
            "at": ctx.clock.now(),
            "plan_revision": revision,
        }
    )


async def _undo(state: IncidentState, ctx: AgentContext) -> dict[str, Any]:
    """Run the inverse of each applied, reversible action, newest first, through the gate."""
    incident_id = state.incident.id if state.incident else state.input.incident_id
    ledger = Ledger(ctx.settings.incident_dir(incident_id) / LEDGER_FILE)
    undone = {(e.plan_revision, e.action_index) for e in state.executed if e.status == "undone"}
    todo = [
        e
        for e in reversed(state.executed)
        if e.status == "applied"
        and e.inverse is not None
        and (e.plan_revision, e.action_index) not in undone
    ]
    lines = [
        entry(
            ctx,
            NODE,
            "note",
            f"the cluster got worse after the actions: undoing {len(todo)} reversible action(s)"
            if todo
            else "the cluster got worse, and none of the actions taken can be undone",
        )
    ]
    results: list[ExecutedAction] = []
    for original in todo:
        inverse = original.inverse
        assert inverse is not None  # filtered above
        key = f"{incident_id}/{original.plan_revision}/{original.action_index}/undo"
        earlier = ledger.get(key)
        if earlier is not None:
            results.append(earlier)
            continue
        now_state = dataclasses.replace(state, executed=[*state.executed, *results])
        # An undo restores what the cluster was before kubemedic changed it; it runs unless
        # the gate denies it outright (a person approved the change and its reversal).
        record, more = await _run_one(
            ctx,
            now_state,
            original.action_index,
            inverse,
            original.plan_revision,
            approved=True,
            ledger=ledger,
            key=key,
        )
        if record.status == "applied":
            record = record.model_copy(update={"status": "undone"})
            ledger.done(key, record)
        results.append(record)
        lines.extend(more)
    return {"executed": results, "transcript": lines}


async def dry_run(ctx: AgentContext, action: Action) -> dict[str, Any]:
    """What an action would change, from a server-side dry-run (nothing is written)."""
    requested = action.params.model_dump(mode="json", exclude_none=True)
    if action.action == "escalate":
        return {"status": "no_write", "message": "escalate writes nothing", "requested": requested}
    try:
        conn = ctx.toolbox.kube()
    except ToolError as exc:
        return {"status": "unavailable", "message": exc.describe(), "requested": requested}
    outcome = await asyncio.to_thread(execute, conn, action, dry_run_only=True)
    return {
        "status": outcome.status,
        "message": outcome.message,
        "before": outcome.before,
        "requested": requested,
        "requests": outcome.requests,
    }


class Ledger:
    """The executor's record of sent writes, one JSON line per event, in the incident's directory.

    `intent` is written before an API call and `done` after it. A key with an
    intent and no result means the run stopped in between: the write may have
    reached the server, so it is reported as such and never sent again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _events(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash
        return events

    def get(self, key: str) -> ExecutedAction | None:
        """What an earlier run did under `key`, or None when it never got there."""
        mine = [e for e in self._events() if e.get("key") == key]
        done = [e for e in mine if e.get("event") == "done"]
        if done:
            return ExecutedAction.model_validate(done[-1]["record"])
        if mine:
            intent = mine[-1]
            return ExecutedAction.model_validate(
                {
                    "action_index": intent["action_index"],
                    "action": intent["action"],
                    "status": "skipped",
                    "error": "an earlier run sent this action and stopped before recording "
                    "the result: it may have been applied, and is not sent twice",
                    "at": intent["at"],
                    "plan_revision": intent["plan_revision"],
                }
            )
        return None

    def intent(self, key: str, index: int, revision: int, action: Action, at: datetime) -> None:
        self._append(
            {
                "event": "intent",
                "key": key,
                "action_index": index,
                "plan_revision": revision,
                "action": action.model_dump(mode="json"),
                "at": at.isoformat(),
            }
        )

    def done(self, key: str, record: ExecutedAction) -> None:
        self._append({"event": "done", "key": key, "record": record.model_dump(mode="json")})

    def _append(self, event: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()
