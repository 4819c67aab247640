"""The recall node: what memory knows about incidents like this one, before any evidence.

Runs right after intake. It asks the memory store (Redis or in-process) for
the most similar past incidents, by the intake facets of the fingerprint
(alert name and labels, namespace, workload; memory.fingerprint), and for how
each action fared for their kinds of failure. The planner reads the result
from `state.recall` and prefers what worked. A store that cannot answer
(Redis down) is reported in the transcript; the incident goes on without
memory.

For the planner: `advice(state.recall, cause_kind)` says which actions worked
or failed for a kind of failure, with a sentence for its reasoning;
`rank_actions` orders the actions its own rules allow by that; and
`recall_by_evidence` looks again once the evidence is in.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from agents.context import AgentContext
from memory.base import MemoryStoreError
from memory.fingerprint import incident_symptoms, record_fingerprint
from state import ActionStats, IncidentState, PastIncident, Recall, TranscriptEntry

NODE = "recall"
#: Past incidents handed to the planner.
RECALL_LIMIT = 5
#: An action is preferred when at least this share of its tries recovered (smoothed, below),
#: and avoided when at most AVOID_BELOW did and it was tried at least MIN_TRIES times.
PREFER_ABOVE = 0.6
AVOID_BELOW = 0.34
MIN_TRIES = 2


def describe_past(p: PastIncident) -> str:
    cause = f"{p.cause_kind} in {p.root_cause}" if p.root_cause else (p.cause_kind or "unknown")
    ttr = f", recovered in {p.time_to_recover_s:.0f} s" if p.time_to_recover_s is not None else ""
    acts = "; ".join(p.actions) or "no action"
    return (
        f"{p.incident_id} (similarity {p.similarity:.2f}): {cause}; {acts}; "
        f"outcome {p.outcome or 'unknown'}{ttr}"
    )


def describe_stats(s: ActionStats) -> str:
    tried = s.successes + s.failures
    ttr = (
        f", mean time to recover {s.mean_time_to_recover_s:.0f} s"
        if s.mean_time_to_recover_s is not None
        else ""
    )
    return f"for {s.cause_kind}, {s.action} worked {s.successes} of {tried} times{ttr}"


async def recall(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Similar past incidents and per-(cause kind, action) statistics, from memory."""
    ctx = runtime.context
    store = ctx.memory.description
    now = ctx.clock.now()
    incident = state.incident
    if incident is None:
        entry = TranscriptEntry(
            at=now, node=NODE, kind="error", summary="no incident from intake: nothing to recall"
        )
        return {"recall": Recall(store=store), "transcript": [entry]}

    symptoms = incident_symptoms(incident)
    try:
        found = await ctx.memory.recall(incident, symptoms, limit=RECALL_LIMIT)
    except MemoryStoreError as exc:
        ctx.say(NODE, f"memory unavailable: {exc}")
        entry = TranscriptEntry(
            at=now,
            node=NODE,
            kind="error",
            summary=f"memory ({store}) could not answer, going on without it: {exc}",
            data={"store": store, "symptoms": symptoms},
        )
        return {"recall": Recall(store=store), "transcript": [entry]}

    result = found.model_copy(update={"store": store})
    if result.similar:
        summary = (
            f"memory ({store}) answered: {len(result.similar)} similar past incident(s): "
            + " | ".join(describe_past(p) for p in result.similar)
        )
    else:
        summary = f"memory ({store}) answered: no similar past incident"
    lines = [
        TranscriptEntry(
            at=now,
            node=NODE,
            kind="memory",
            summary=summary,
            data={
                "store": store,
                "symptoms": symptoms,
                "similar": [p.model_dump(mode="json") for p in result.similar],
            },
        )
    ]
    if result.stats:
        lines.append(
            TranscriptEntry(
                at=now,
                node=NODE,
                kind="memory",
                summary="; ".join(describe_stats(s) for s in result.stats),
                data={"stats": [s.model_dump(mode="json") for s in result.stats]},
            )
        )
    ctx.say(NODE, summary)
    return {"recall": result, "transcript": lines}


# -- for the planner -------------------------------------------------------------------


class Advice(BaseModel):
    """What memory says about the actions for one kind of failure, for the planner."""

    cause_kind: str
    #: Action kinds that worked for this kind of failure, best first.
    preferred: list[str] = Field(default_factory=list)
    #: Action kinds that failed for it (tried, rarely recovered).
    avoid: list[str] = Field(default_factory=list)
    #: Each action kind's smoothed success rate, (successes + 1) / (tries + 2).
    scores: dict[str, float] = Field(default_factory=dict)
    #: Similar past incidents with this cause kind.
    precedents: list[str] = Field(default_factory=list)
    #: One sentence for the plan's reasoning ("memory: ...").
    reasoning: str = ""


def success_rate(stat: ActionStats) -> float:
    """Laplace-smoothed: one success in one try is promising, not certain."""
    return (stat.successes + 1) / (stat.successes + stat.failures + 2)


def advice(recall: Recall | None, cause_kind: str) -> Advice:
    """Which actions memory recommends or warns against for `cause_kind`, and why.

    The planner orders the candidate actions that its own rules allow by this (it never adds
    an action because memory liked it: memory only ranks what the evidence already permits).
    """
    if recall is None:
        return Advice(cause_kind=cause_kind, reasoning="memory: nothing recalled")
    stats = [s for s in recall.stats if s.cause_kind == cause_kind]
    scores = {s.action: round(success_rate(s), 3) for s in stats}
    ranked = sorted(stats, key=lambda s: (-success_rate(s), s.mean_time_to_recover_s or 1e12))
    preferred = [s.action for s in ranked if success_rate(s) >= PREFER_ABOVE and s.successes]
    avoid = [
        s.action
        for s in ranked
        if s.successes + s.failures >= MIN_TRIES and success_rate(s) <= AVOID_BELOW
    ]
    precedents = [p.incident_id for p in recall.similar if p.cause_kind == cause_kind]
    parts = []
    if preferred:
        parts.append(
            "prefer "
            + ", ".join(
                f"{s.action} ({describe_stats(s)})" for s in ranked if s.action in preferred
            )
        )
    if avoid:
        parts.append(
            "avoid "
            + ", ".join(f"{s.action} ({describe_stats(s)})" for s in ranked if s.action in avoid)
        )
    if precedents:
        parts.append(f"similar past incidents: {', '.join(precedents)}")
    reasoning = (
        "memory: " + "; ".join(parts)
        if parts
        else f"memory: no record of how actions fared for {cause_kind}"
    )
    return Advice(
        cause_kind=cause_kind,
        preferred=preferred,
        avoid=avoid,
        scores=scores,
        precedents=precedents,
        reasoning=reasoning,
    )


def rank_actions(candidates: list[str], recall: Recall | None, cause_kind: str) -> list[str]:
    """`candidates` (action kinds the planner's rules allow) reordered by what memory says:
    preferred first (best first), then the untried in their given order, then those to avoid.
    """
    adv = advice(recall, cause_kind)
    order = {a: i for i, a in enumerate(candidates)}

    def key(action: str) -> tuple[int, float, int]:
        if action in adv.avoid:
            return (2, 0.0, order[action])
        if action in adv.preferred:
            return (0, -adv.scores[action], order[action])
        return (1, 0.0, order[action])

    return sorted(candidates, key=key)


async def recall_by_evidence(
    state: IncidentState, ctx: AgentContext, *, limit: int = RECALL_LIMIT
) -> tuple[Recall, TranscriptEntry]:
    """A second look in memory once the evidence is in (signals, reasons, log templates):
    finds past incidents of the same kind even when the alert differed. Never raises; a
    store that cannot answer gives an empty Recall and an error line for the transcript.
    """
    store = ctx.memory.description
    now = ctx.clock.now()
    if state.incident is None:
        return Recall(store=store), TranscriptEntry(
            at=now, node=NODE, kind="error", summary="no incident: nothing to recall"
        )
    symptoms = record_fingerprint(state.incident, state.evidence, state.log_findings)
    try:
        found = await ctx.memory.recall(state.incident, symptoms, limit=limit)
    except MemoryStoreError as exc:
        return Recall(store=store), TranscriptEntry(
            at=now,
            node=NODE,
            kind="error",
            summary=f"memory ({store}) could not answer: {exc}",
        )
    found = found.model_copy(update={"store": store})
    summary = f"memory ({store}), by evidence: " + (
        " | ".join(describe_past(p) for p in found.similar) or "no similar past incident"
    )
    return found, TranscriptEntry(
        at=now,
        node=NODE,
        kind="memory",
        summary=summary,
        data={"symptoms": symptoms, "similar": [p.model_dump(mode="json") for p in found.similar]},
    )
