"""The in-process incident memory: the embedded default when no Redis is configured.

Same contract as the Redis store (memory.base.MemoryStore), kept in this
process's memory: it forgets everything when kubemedic stops, and replicas do
not share it, which is why kubemedic says so at start. Similarity is computed
exactly over every remembered incident (memory.fingerprint.similarity); the
store is bounded by the same retention settings as Redis.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from memory.base import MIN_SIMILARITY, IncidentRecord, past_incident
from memory.fingerprint import similarity
from state import ActionStats, Incident, Recall


@dataclass
class _Tally:
    successes: int = 0
    failures: int = 0
    ttr_sum: float = 0.0
    ttr_count: int = 0

    def stats(self, cause_kind: str, action: str) -> ActionStats:
        return ActionStats(
            cause_kind=cause_kind,
            action=action,
            successes=self.successes,
            failures=self.failures,
            mean_time_to_recover_s=(
                round(self.ttr_sum / self.ttr_count, 3) if self.ttr_count else None
            ),
        )


class InProcessMemory:
    """Incident memory in a dict: not persisted, not shared between replicas."""

    def __init__(self, *, retention_days: int = 90, max_incidents: int = 10_000) -> None:
        self.description = "in-process (not persisted, not shared between replicas)"
        self.retention = timedelta(days=retention_days)
        self.max_incidents = max_incidents
        self._records: dict[str, IncidentRecord] = {}
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._lock = asyncio.Lock()

    async def recall(self, incident: Incident, symptoms: list[str], *, limit: int = 5) -> Recall:
        scored = [
            (similarity(symptoms, r.fingerprint), r)
            for r in self._records.values()
            if r.incident_id != incident.id
        ]
        scored = [(s, r) for s, r in scored if s >= MIN_SIMILARITY]
        # Most alike first; among equals, the most recent.
        scored.sort(key=lambda sr: (-sr[0], -sr[1].closed_at.timestamp()))
        similar = [past_incident(r, s) for s, r in scored[:limit]]
        kinds = list(dict.fromkeys(p.cause_kind for p in similar if p.cause_kind))
        stats = [s for kind in kinds for s in await self.stats(kind)]
        return Recall(similar=similar, stats=stats, store=self.description)

    async def record(self, record: IncidentRecord) -> None:
        async with self._lock:
            first_time = record.incident_id not in self._records
            self._records[record.incident_id] = record
            # Recording the same incident again (a resumed run) replaces it but counts once.
            if first_time and record.cause_kind:
                for outcome in record.actions:
                    if not outcome.counts_for(record.cause_kind):
                        continue
                    tally = self._tallies.setdefault((record.cause_kind, outcome.action), _Tally())
                    if outcome.recovered:
                        tally.successes += 1
                        if outcome.time_to_recover_s is not None:
                            tally.ttr_sum += outcome.time_to_recover_s
                            tally.ttr_count += 1
                    else:
                        tally.failures += 1
            self._trim(record.closed_at)

    def _trim(self, now: datetime) -> None:
        cutoff = now - self.retention
        for rid in [rid for rid, r in self._records.items() if r.closed_at < cutoff]:
            del self._records[rid]
        if len(self._records) > self.max_incidents:
            oldest = sorted(self._records.values(), key=lambda r: r.closed_at)
            for r in oldest[: len(self._records) - self.max_incidents]:
                del self._records[r.incident_id]

    async def stats(self, cause_kind: str) -> list[ActionStats]:
        return [
            tally.stats(kind, action)
            for (kind, action), tally in sorted(self._tallies.items())
            if kind == cause_kind
        ]

    async def get(self, incident_id: str) -> IncidentRecord | None:
        return self._records.get(incident_id)

    async def list(self, *, limit: int = 50) -> list[IncidentRecord]:
        newest = sorted(self._records.values(), key=lambda r: r.closed_at, reverse=True)
        return newest[:limit]

    async def aclose(self) -> None:
        return None
