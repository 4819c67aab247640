"""Per-incident budgets: how many writes, model tokens and dollars one incident may spend.

When one is reached the graph escalates to a person instead of planning,
re-planning or acting again (`budget_exceeded` says why). The gate enforces
the same limits on every write (policies/gate.py), so a graph that forgot to
ask would still be stopped.
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.limits import PolicyLimits
from state import ExecutedAction, TokenUsage

#: Executed statuses that sent a real write to the API server (an attempt counts, even one
#: that failed after its dry-run passed); denied, skipped, dry-run failures and escalations
#: changed nothing.
WRITE_STATUSES = frozenset({"applied", "failed", "undone"})


def writes_done(executed: Iterable[ExecutedAction]) -> int:
    """How many writes the incident has sent to the cluster."""
    return sum(1 for e in executed if e.status in WRITE_STATUSES and e.action.action != "escalate")


def budget_exceeded(
    state_tokens: TokenUsage, actions_done: int, limits: PolicyLimits
) -> str | None:
    """Why the incident must stop and escalate, or None while it is within every budget.

    Args:
        state_tokens: the incident's model usage so far (state.tokens).
        actions_done: writes already sent (`writes_done(state.executed)`).
        limits: the policy limits.
    """
    spent = state_tokens.input + state_tokens.output
    if spent > limits.max_tokens_per_incident:
        return (
            f"model token budget reached: {spent} tokens used, "
            f"max_tokens_per_incident is {limits.max_tokens_per_incident}"
        )
    if state_tokens.cost_usd > limits.max_cost_usd_per_incident:
        return (
            f"cost budget reached: ${state_tokens.cost_usd:.4f} spent, "
            f"max_cost_usd_per_incident is ${limits.max_cost_usd_per_incident:.2f}"
        )
    if actions_done >= limits.max_actions_per_incident:
        return (
            f"action budget reached: {actions_done} writes made, "
            f"max_actions_per_incident is {limits.max_actions_per_incident}"
        )
    return None
