"""The recall node: what memory knows about incidents like this one, before any evidence.

Runs right after intake. It asks the memory store (Redis or in-process) for
the most similar past incidents, by the intake facets of the fingerprint
(alert name and labels, namespace, workload; memory.fingerprint), and for how
each action fared for their kinds of failure. The planner reads the result
from `state.recall` and prefers what worked. A store that cannot answer
(Redis down) is reported in the transcript; the incident goes on without
memory.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import AgentContext
from memory.base import MemoryStoreError
from memory.fingerprint import incident_symptoms
from state import ActionStats, IncidentState, PastIncident, Recall, TranscriptEntry

NODE = "recall"
#: Past incidents handed to the planner.
RECALL_LIMIT = 5


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
