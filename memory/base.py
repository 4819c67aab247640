"""The incident memory's contract: what the recall and learner nodes rely on.

Two implementations share it: Redis (memory/redis_store.py, production and
tests) and an in-process store (memory/inprocess.py, the embedded default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from state import ActionStats, Category, Incident, ObjectRef, Recall


class ActionOutcome(BaseModel):
    """One action taken during an incident and whether it helped."""

    action: str
    target: str
    status: str
    recovered: bool


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
        """The most similar past incidents and the action statistics for their cause kinds."""
        ...

    async def record(self, record: IncidentRecord) -> None:
        """Store a finished incident and update per-(cause kind, action) statistics."""
        ...

    async def stats(self, cause_kind: str) -> list[ActionStats]:
        """Success counts and time to recover of each action for one kind of failure."""
        ...

    async def get(self, incident_id: str) -> IncidentRecord | None: ...

    async def list(self, *, limit: int = 50) -> list[IncidentRecord]: ...
