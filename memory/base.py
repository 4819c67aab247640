"""The incident memory's contract: what the recall and learner nodes rely on.

Two implementations share it: Redis (memory/redis_store.py, production and
tests) and an in-process store (memory/inprocess.py, the embedded default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from state import ActionStats, Category, Incident, ObjectRef, PastIncident, Recall


class MemoryStoreError(Exception):
    """The memory could not be read or written (e.g. Redis unreachable after retries).

    The recall and learner nodes report it in the transcript; it never ends an incident.
    """


#: Past incidents less alike than this (memory.fingerprint.similarity) are not recalled.
MIN_SIMILARITY = 0.2


class ActionOutcome(BaseModel):
    """One action taken during an incident and whether it helped."""

    action: str
    target: str
    status: str
    recovered: bool
    #: False when no verification followed the action (it then counts in no statistic).
    verified: bool = True
    #: Cluster seconds from the action to the verification that saw recovery.
    time_to_recover_s: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    at: datetime | None = None
    #: The cause kind of the hypothesis the action served ("": the incident's own).
    cause_kind: str = ""

    def counts_for(self, cause_kind: str) -> bool:
        """Whether it counts in the statistics of `cause_kind` (the incident's cause kind):
        an action for another cause of a many-fault incident says nothing about this one."""
        return self.counts and self.cause_kind in ("", cause_kind)

    @property
    def counts(self) -> bool:
        """Whether this outcome says how well the action works: it was tried on the cluster
        (a skipped, denied or escalated action says nothing) and, if applied, verified."""
        if self.status in ("failed", "dry_run_failed"):
            return True
        # "undone" is the inverse of an earlier action, run because that one made things
        # worse: the earlier action carries the failure.
        return self.status == "applied" and self.verified


class IncidentRecord(BaseModel):
    """A finished incident, as memory keeps it."""

    incident_id: str
    #: Normalised symptoms: alert name, reasons (OOMKilled, CrashLoopBackOff...),
    #: top log templates, workload kind. Used for similarity.
    fingerprint: list[str] = Field(default_factory=list)
    title: str = ""
    root_cause: ObjectRef | None = None
    cause_kind: str = ""
    category: Category | None = None
    actions: list[ActionOutcome] = Field(default_factory=list)
    outcome: str = ""
    time_to_recover_s: float | None = None
    opened_at: datetime
    closed_at: datetime
    transcript_path: str = ""
    postmortem_path: str = ""


class MemoryStore(Protocol):
    """Where kubemedic remembers incidents and how each action fared."""

    #: Said aloud at start: "redis://host:6379/0" or "in-process (not persisted)".
    description: str

    async def recall(self, incident: Incident, symptoms: list[str], *, limit: int = 5) -> Recall:
        """The most similar past incidents and the action statistics for their cause kinds.

        `symptoms` are fingerprint tokens (memory.fingerprint); raises MemoryStoreError.
        """
        ...

    async def record(self, record: IncidentRecord) -> None:
        """Store a finished incident and update per-(cause kind, action) statistics."""
        ...

    async def stats(self, cause_kind: str) -> list[ActionStats]:
        """Success counts and time to recover of each action for one kind of failure."""
        ...

    async def get(self, incident_id: str) -> IncidentRecord | None: ...

    async def list(self, *, limit: int = 50) -> list[IncidentRecord]: ...

    async def aclose(self) -> None:
        """Release connections (a no-op for the in-process store)."""
        ...


def past_incident(record: IncidentRecord, similarity: float) -> PastIncident:
    """What the planner sees of one recalled incident."""
    return PastIncident(
        incident_id=record.incident_id,
        similarity=round(similarity, 3),
        root_cause=record.root_cause,
        cause_kind=record.cause_kind,
        category=record.category,
        actions=[
            f"{a.action} {a.target}: {a.status}{', recovered' if a.recovered else ''}"
            for a in record.actions
        ],
        outcome=record.outcome,
        time_to_recover_s=record.time_to_recover_s,
    )
