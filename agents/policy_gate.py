"""The policy gate node: deterministic decisions on every planned action, no model involved.

For each action it gathers the gate's context from the cluster (never from
the plan: agents/gate_context.py) and lets policies/gate.py decide: allow,
needs_approval or deny, with reasons. Each decision goes into the state and
the transcript. When a person must approve something, this node also
prepares the request: a server-side dry-run of each such action (what would
change) and a request id bound to exactly those actions, so that the
approval node can ask, and re-ask after a resume, about the same thing.

When the incident's budget (writes, tokens, cost) is spent, every write is
denied and the incident escalates to a person instead of acting again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from agents.context import AgentContext
from agents.executor import dry_run
from agents.gate_context import gather_gate_context
from agents.transcript import entry
from policies.approvals import new_request_id
from policies.budgets import budget_exceeded, writes_done
from policies.gate import Decision, evaluate_plan, is_write
from state import GateDecision, IncidentState, TranscriptEntry

NODE = "policy_gate"


async def policy_gate(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Decide every action of the current plan; prepare an approval request where one is needed."""
    ctx = runtime.context
    actions = list(state.plan.actions) if state.plan else []
    update: dict[str, Any] = {"decisions": [], "approved_actions": [], "pending_approval": ""}
    if not actions:
        update["transcript"] = [entry(ctx, NODE, "decision", "the plan has no actions to gate")]
        return update

    contexts = await asyncio.gather(*(gather_gate_context(ctx, state, a) for a in actions))
    decisions = evaluate_plan(actions, contexts, ctx.limits)
    lines: list[TranscriptEntry] = []
    budget = budget_exceeded(state.tokens, writes_done(state.executed), ctx.limits)
    if budget is not None:
        decisions = [
            Decision(decision="deny", reasons=[*d.reasons, budget]) if is_write(a) else d
            for a, d in zip(actions, decisions, strict=True)
        ]
        update["outcome"] = "escalated"
        lines.append(
            entry(ctx, NODE, "outcome", f"escalating to a person: {budget}", reason=budget)
        )
        ctx.say(NODE, f"budget reached, escalating: {budget}")

    now = ctx.clock.now()
    records = [d.record(i, a, now) for i, (a, d) in enumerate(zip(actions, decisions, strict=True))]
    for record, action in zip(records, actions, strict=True):
        lines.append(_line(ctx, record, action.model_dump(mode="json")))
        ctx.say(NODE, f"{record.action} {record.target}: {record.decision}")
    update["decisions"] = records

    mode = state.incident.mode if state.incident else state.input.mode
    if mode == "observe" and budget is None:
        # Observe mode ends here: the plan is the answer, as a recommendation.
        update["outcome"] = "recommended"
    pending = [r.action_index for r in records if r.decision == "needs_approval"]
    if pending and mode != "observe" and budget is None:
        diffs: dict[str, Any] = {}
        for i in pending:
            outcome = await dry_run(ctx, actions[i])
            diffs[str(i)] = outcome
            lines.append(
                entry(
                    ctx,
                    NODE,
                    "dry_run",
                    f"dry-run of {actions[i].action} {actions[i].target} for the approval "
                    f"request: {outcome['status']} ({outcome['message']})",
                    action_index=i,
                    **outcome,
                )
            )
        request_id = new_request_id(actions, pending)
        update["pending_approval"] = request_id
        lines.append(
            entry(
                ctx,
                NODE,
                "approval",
                f"approval requested for actions {pending} (request {request_id})",
                request_id=request_id,
                action_indexes=pending,
                issued_at=ctx.clock.now().isoformat(),
                dry_runs=diffs,
            )
        )
    update["transcript"] = lines
    return update


def _line(ctx: AgentContext, record: GateDecision, action: dict[str, Any]) -> TranscriptEntry:
    reasons = "; ".join(record.reasons) or "no reason given"
    return entry(
        ctx,
        NODE,
        "decision",
        f"{record.decision}: {record.action} {record.target} ({reasons})",
        action_index=record.action_index,
        decision=record.decision,
        reasons=record.reasons,
        action=action,
    )
