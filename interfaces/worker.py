"""The incident queue and the worker that runs incidents when alerts fire (`kubemedic serve`).

The webhook (interfaces/webhook.py) turns each firing alert into a job and a
tracked incident; the worker runs each job with the graph on the cluster,
through the graph engineer's runner (agent_context, open_checkpointer,
compile_graph, drive): one thread per incident in the checkpointer.

Nothing accepted is lost. The queue is durable:
- with `settings.redis.url`, a Redis list in the reliable-queue pattern: a
  worker moves a job atomically (BLMOVE) from the ready list to its own
  processing list, and removes it only when the job is done; a worker that
  dies stops renewing its lease key, and any worker that sees the lease gone
  moves that worker's jobs back to the ready list;
- without Redis, a SQLite file under `settings.data_dir` (one server process;
  `kubemedic approve` in another process writes to the same file), with the
  same claim, lease and requeue rules.
A job that was running when its process died runs again and continues the
incident from its last checkpoint; the executor is idempotent per incident
and action, so nothing is applied twice. If the queue cannot be reached (Redis
down) the webhook answers 503 naming it and Alertmanager sends again: nothing
is accepted that is not stored.

Duplicates: an alert (by Alertmanager's fingerprint) whose incident is still
open (queued, running or waiting for approval), or closed less than
`webhook.dedup_cooldown_s` ago, starts no second incident. A resolved alert
cancels its incident while it is still queued, and is noted otherwise.

Approvals: when the graph stops at an approval interrupt, the incident waits
(status `waiting_approval`, with the request id and the actions asked about)
and the worker moves on. `answer_approval` (used by `kubemedic approve`, and
by the Slack app) checks the answer against the record, marks the incident
queued and enqueues a resume job in one atomic step; a worker then resumes
the same thread from the checkpointer with the answer, which the approval
node checks again (policies/approvals.py) before anything counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from pydantic import BaseModel, Field, ValidationError

from agents.intake import new_incident_id
from graph import Node, compile_graph
from interfaces.checkpoints import open_checkpointer
from interfaces.runner import agent_context, close_toolbox, cluster_toolbox, drive
from memory import MemoryStore, make_memory
from settings import Settings
from state import AlertInfo, IncidentInput, Mode
from telemetry import IncidentSpans
from tools.clock import ClusterClock, WallClock
from tools.errors import ToolError
from tools.registry import Toolbox

log = logging.getLogger("kubemedic.worker")

IncidentStatus = Literal["queued", "running", "waiting_approval", "done", "failed", "cancelled"]
#: An incident in one of these is open: a firing alert with its fingerprint is a duplicate.
OPEN_STATUSES: frozenset[str] = frozenset({"queued", "running", "waiting_approval"})
CLOSED_STATUSES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
#: Runs of one incident that end in an unexpected error before it is marked failed (a
#: transient failure, such as the checkpoint database restarting, gets this many tries).
MAX_RUNS = 3
#: Seconds a worker waits before retrying after an unexpected error or an unreachable queue.
RETRY_DELAY_S = 2.0
#: How long one claim blocks for a job before the worker checks whether it should stop.
CLAIM_TIMEOUT_S = 1.0
#: How often the SQLite queue looks for jobs another process added (`kubemedic approve`).
SQLITE_POLL_S = 0.2
#: Longest error text kept on a record.
MAX_ERROR_CHARS = 1_000


class QueueUnavailable(Exception):
    """The queue's store (Redis, the SQLite file) cannot be reached; the message names it."""


class AnswerRefused(ValueError):
    """An approval answer that does not fit the incident's record; the message says why."""


# -- records and jobs --------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


class TrackedIncident(BaseModel):
    """What the queue knows of one incident the webhook started (not the graph's state)."""

    id: str
    #: The alert's fingerprint (Alertmanager's), the key for duplicates.
    fingerprint: str
    alertname: str = ""
    mode: Mode = "observe"
    status: IncidentStatus = "queued"
    #: The graph's outcome (state.Outcome), or why it never ran ("alert resolved before start").
    outcome: str = ""
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    closed_at: datetime | None = None
    #: The alert's resolution, when Alertmanager sent it.
    resolved_at: datetime | None = None
    #: Runs of the graph for this incident (starts, resumes after approval, retries).
    runs: int = 0
    #: Runs that ended in an unexpected error.
    errors: int = 0
    #: The approval request the incident waits on, when waiting_approval.
    request_id: str = ""
    #: The actions asked about: [{index, summary, params, gate}], for `kubemedic pending`.
    approval_actions: list[dict[str, Any]] = Field(default_factory=list)
    error: str = ""

    def evolve(self, **changes: Any) -> TrackedIncident:
        """A copy with `changes` and a fresh updated_at (closed_at set when it closes)."""
        now = utcnow()
        changes.setdefault("updated_at", now)
        if changes.get("status") in CLOSED_STATUSES and self.closed_at is None:
            changes.setdefault("closed_at", now)
        return self.model_copy(update=changes)

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


class Job(BaseModel):
    """One unit of work: start (or continue) an incident, or resume it with an answer."""

    kind: Literal["incident", "resume"]
    incident_id: str
    #: The trigger, for `incident` jobs.
    input: IncidentInput | None = None
    #: The approval answer, for `resume` jobs (checked again by the approval node).
    answer: dict[str, Any] | None = None
    job_id: str = Field(default_factory=lambda: secrets.token_hex(8))
    enqueued_at: datetime = Field(default_factory=utcnow)


@dataclass
class Claimed:
    """A job a worker holds: acknowledge it when done, release it to give it back."""

    job: Job
    #: The stored form (the Redis list item, the SQLite row id).
    raw: str
    #: The stored job was unreadable: acknowledge and drop it (it was logged).
    broken: bool = False


def alert_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable fingerprint of a label set, for alerts that arrive without Alertmanager's."""
    body = json.dumps(sorted(labels.items()), separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def _consumer_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


# -- the queue -----------------------------------------------------------------------------------


class IncidentQueue(Protocol):
    """A durable job queue with the incidents' records (Redis, or a SQLite file)."""

    #: Said aloud at start and in errors ("Redis at redis:6379", "SQLite file ...").
    description: str
    #: This process's name among the workers (its processing list, its lease).
    consumer: str

    async def submit(self, record: TrackedIncident, job: Job, cooldown_s: float) -> str:
        """Store the record and enqueue the job, unless an incident with the same fingerprint
        is open or closed within `cooldown_s`: then nothing is stored. Returns the id of the
        incident that handles the alert (the new one, or the existing one)."""
        ...

    async def transition(
        self,
        record: TrackedIncident,
        allowed_from: Collection[str],
        job: Job | None = None,
        cooldown_s: float = 0.0,
    ) -> bool:
        """Write `record` if the stored status is one of `allowed_from` (and enqueue `job`
        with it, atomically). A record that closes frees its fingerprint after `cooldown_s`."""
        ...

    async def get(self, incident_id: str) -> TrackedIncident | None: ...

    async def open_incident(self, fingerprint: str) -> TrackedIncident | None:
        """The open incident of this fingerprint, if any."""
        ...

    async def list(self, limit: int = 100) -> list[TrackedIncident]:
        """The most recent incidents, newest first."""
        ...

    async def claim(self, timeout_s: float) -> Claimed | None:
        """The next job, moved to this consumer's processing list; None after `timeout_s`."""
        ...

    async def ack(self, claimed: Claimed) -> None: ...

    async def release(self, claimed: Claimed) -> None:
        """Give a job back to the front of the queue (a worker stopping mid-job)."""
        ...

    async def heartbeat(self) -> None:
        """Renew this consumer's lease."""
        ...

    async def recover(self) -> int:
        """Requeue the jobs of consumers whose lease ran out; returns how many."""
        ...

    async def release_all(self) -> int:
        """Give back every job this consumer holds and drop its lease (a clean stop)."""
        ...

    async def depth(self) -> dict[str, int]:
        """Jobs by state: ready, processing."""
        ...

    async def ping(self) -> None:
        """Raise QueueUnavailable when the store does not answer."""
        ...

    async def aclose(self) -> None: ...


def open_queue(settings: Settings, *, consumer: str | None = None) -> IncidentQueue:
    """The queue the settings ask for: Redis when a URL is set, else the SQLite file."""
    lease = settings.webhook.lease_s
    if settings.redis.url is not None:
        return RedisQueue(
            settings.redis.url.get_secret_value(),
            prefix=f"{settings.redis.key_prefix}:queue",
            lease_s=lease,
            consumer=consumer,
        )
    return SqliteQueue(settings.queue_path, lease_s=lease, consumer=consumer)


# -- SQLite -------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    closed_at REAL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_fingerprint ON incidents (fingerprint, created_at);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    consumer TEXT,
    claimed_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE TABLE IF NOT EXISTS consumers (
    id TEXT PRIMARY KEY,
    alive_at REAL NOT NULL
);
"""


class SqliteQueue:
    """The queue in one SQLite file: for a single server (and `kubemedic approve` beside it).

    Every call runs in a thread with the connection's lock held; a write is one
    `BEGIN IMMEDIATE` transaction, so another process (the approve command) sees
    it whole. A job is claimed by marking its row `processing` with the consumer's
    name, and deleted when acknowledged.
    """

    def __init__(self, path: Path, *, lease_s: float = 30.0, consumer: str | None = None) -> None:
        self.path = Path(path)
        self.lease_s = lease_s
        self.consumer = consumer or _consumer_id()
        self.description = f"SQLite file {self.path}"
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise QueueUnavailable(f"cannot open the queue's {self.description}: {exc}") from exc

    async def _run(self, fn: Callable[[sqlite3.Connection], Any], *, write: bool = False) -> Any:
        def call() -> Any:
            with self._lock:
                conn = self._conn
                try:
                    if not write:
                        return fn(conn)
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(conn)
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                    return result
                except sqlite3.Error as exc:
                    raise QueueUnavailable(f"the queue's {self.description} failed: {exc}") from exc

        return await asyncio.to_thread(call)

    @staticmethod
    def _insert_job(conn: sqlite3.Connection, job: Job) -> None:
        conn.execute(
            "INSERT INTO jobs (incident_id, body, state) VALUES (?, ?, 'ready')",
            (job.incident_id, job.model_dump_json()),
        )

    @staticmethod
    def _write_record(conn: sqlite3.Connection, record: TrackedIncident) -> None:
        conn.execute(
            "INSERT INTO incidents (id, fingerprint, status, created_at, closed_at, record) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET status = excluded.status, "
            "closed_at = excluded.closed_at, record = excluded.record",
            (
                record.id,
                record.fingerprint,
                record.status,
                record.created_at.timestamp(),
                record.closed_at.timestamp() if record.closed_at else None,
                record.model_dump_json(),
            ),
        )

    async def submit(self, record: TrackedIncident, job: Job, cooldown_s: float) -> str:
        def go(conn: sqlite3.Connection) -> str:
            since = time.time() - cooldown_s
            row = conn.execute(
                "SELECT id FROM incidents WHERE fingerprint = ? AND (status IN (?, ?, ?) "
                "OR closed_at >= ?) ORDER BY created_at DESC LIMIT 1",
                (record.fingerprint, *sorted(OPEN_STATUSES), since),
            ).fetchone()
            if row is not None:
                return str(row[0])
            self._write_record(conn, record)
            self._insert_job(conn, job)
            return record.id

        incident_id: str = await self._run(go, write=True)
        self._wake.set()
        return incident_id

    async def transition(
        self,
        record: TrackedIncident,
        allowed_from: Collection[str],
        job: Job | None = None,
        cooldown_s: float = 0.0,
    ) -> bool:
        # The cooldown is read at submit time from closed_at; nothing to do here.
        del cooldown_s

        def go(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT status FROM incidents WHERE id = ?", (record.id,)).fetchone()
            if row is None or row[0] not in allowed_from:
                return False
            self._write_record(conn, record)
            if job is not None:
                self._insert_job(conn, job)
            return True

        done: bool = await self._run(go, write=True)
        if done and job is not None:
            self._wake.set()
        return done

    async def get(self, incident_id: str) -> TrackedIncident | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT record FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
        )
        return TrackedIncident.model_validate_json(row[0]) if row else None

    async def open_incident(self, fingerprint: str) -> TrackedIncident | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT record FROM incidents WHERE fingerprint = ? AND status IN (?, ?, ?) "
                "ORDER BY created_at DESC LIMIT 1",
                (fingerprint, *sorted(OPEN_STATUSES)),
            ).fetchone()
        )
        return TrackedIncident.model_validate_json(row[0]) if row else None

    async def list(self, limit: int = 100) -> list[TrackedIncident]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT record FROM incidents ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [TrackedIncident.model_validate_json(r[0]) for r in rows]

    async def claim(self, timeout_s: float) -> Claimed | None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._wake.clear()

            def go(conn: sqlite3.Connection) -> tuple[int, str] | None:
                row = conn.execute(
                    "SELECT seq, body FROM jobs WHERE state = 'ready' ORDER BY seq LIMIT 1"
                ).fetchone()
                if row is None:
                    return None
                conn.execute(
                    "UPDATE jobs SET state = 'processing', consumer = ?, claimed_at = ? "
                    "WHERE seq = ?",
                    (self.consumer, time.time(), row[0]),
                )
                return int(row[0]), str(row[1])

            found: tuple[int, str] | None = await self._run(go, write=True)
            if found is not None:
                seq, body = found
                return _claimed(body, str(seq))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(SQLITE_POLL_S, left))

    async def ack(self, claimed: Claimed) -> None:
        await self._run(lambda c: c.execute("DELETE FROM jobs WHERE seq = ?", (int(claimed.raw),)))

    async def release(self, claimed: Claimed) -> None:
        await self._run(
            lambda c: c.execute(
                "UPDATE jobs SET state = 'ready', consumer = NULL WHERE seq = ?",
                (int(claimed.raw),),
            )
        )
        self._wake.set()

    async def heartbeat(self) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO consumers (id, alive_at) VALUES (?, ?) "
                "ON CONFLICT(id) DO UPDATE SET alive_at = excluded.alive_at",
                (self.consumer, time.time()),
            )
        )

    async def recover(self) -> int:
        def go(conn: sqlite3.Connection) -> int:
            stale = time.time() - self.lease_s
            moved = conn.execute(
                "UPDATE jobs SET state = 'ready', consumer = NULL WHERE state = 'processing' "
                "AND consumer != ? AND consumer NOT IN "
                "(SELECT id FROM consumers WHERE alive_at >= ?)",
                (self.consumer, stale),
            ).rowcount
            conn.execute("DELETE FROM consumers WHERE alive_at < ?", (stale,))
            return int(moved)

        moved: int = await self._run(go, write=True)
        if moved:
            self._wake.set()
        return moved

    async def release_all(self) -> int:
        def go(conn: sqlite3.Connection) -> int:
            moved = conn.execute(
                "UPDATE jobs SET state = 'ready', consumer = NULL "
                "WHERE state = 'processing' AND consumer = ?",
                (self.consumer,),
            ).rowcount
            conn.execute("DELETE FROM consumers WHERE id = ?", (self.consumer,))
            return int(moved)

        moved: int = await self._run(go, write=True)
        return moved

    async def depth(self) -> dict[str, int]:
        rows = await self._run(
            lambda c: c.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        )
        counts = {"ready": 0, "processing": 0}
        counts.update({str(state): int(n) for state, n in rows})
        return counts

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        with self._lock:
            self._conn.close()


def _claimed(body: str, raw: str) -> Claimed:
    try:
        return Claimed(job=Job.model_validate_json(body), raw=raw)
    except ValidationError as exc:
        log.error("dropping an unreadable job from the queue: %s", exc)
        return Claimed(job=Job(kind="incident", incident_id=""), raw=raw, broken=True)


# -- Redis ------------------------------------------------------------------------------------

# KEYS: 1 open:<fp>, 2 incident:<id>, 3 ready list, 4 incidents zset.
# ARGV: 1 id, 2 status, 3 record JSON, 4 job JSON, 5 created (epoch seconds).
_SUBMIT = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'status', ARGV[2], 'record', ARGV[3])
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
return ARGV[1]
"""

# KEYS: 1 incident:<id>, 2 ready list, 3 open:<fp>.
# ARGV: 1 id, 2 new status, 3 record JSON, 4 job JSON or '', 5 closes ('1'/'0'),
#       6 cooldown ms, 7.. allowed statuses.
_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local allowed = false
for i = 7, #ARGV do
  if ARGV[i] == status then allowed = true end
end
if not allowed then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'record', ARGV[3])
if ARGV[4] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[4]) end
if ARGV[5] == '1' and redis.call('GET', KEYS[3]) == ARGV[1] then
  local cooldown = tonumber(ARGV[6])
  if cooldown > 0 then
    redis.call('PEXPIRE', KEYS[3], cooldown)
  else
    redis.call('DEL', KEYS[3])
  end
end
return 1
"""


class RedisQueue:
    """The queue in Redis (6.2+, Valkey): the reliable-queue pattern with BLMOVE.

    Keys under the prefix P (`<redis.key_prefix>:queue`):
    - `P:ready`, a list: jobs as JSON, pushed on the left, taken from the right;
    - `P:processing:<consumer>`, a list per worker process: the jobs it holds;
    - `P:consumers`, a set of worker names; `P:alive:<consumer>`, a key whose TTL is the lease;
    - `P:incident:<id>`, a hash: `status` and `record` (TrackedIncident JSON);
    - `P:incidents`, a sorted set of incident ids by creation time;
    - `P:open:<fingerprint>`: the id of the fingerprint's open incident (expiring after the
      cooldown once it closes).
    Submitting and every status change are one Lua script each, so two replicas never
    start the same alert twice.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "kubemedic:queue",
        lease_s: float = 30.0,
        consumer: str | None = None,
    ) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        from memory.redis_store import redact_url

        self.prefix = prefix
        self.lease_s = lease_s
        self.consumer = consumer or _consumer_id()
        self.description = f"Redis at {redact_url(url)}"
        self._client: Any = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=3.0,
            # Above the blocking claim's timeout, so BLMOVE is never cut by the socket.
            socket_timeout=CLAIM_TIMEOUT_S + 10.0,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
        )
        self._submit = self._client.register_script(_SUBMIT)
        self._transition = self._client.register_script(_TRANSITION)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def _processing(self) -> str:
        return self._key("processing", self.consumer)

    async def _do(self, what: str, call: Callable[[], Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            return await call()
        except RedisError as exc:
            raise QueueUnavailable(f"{self.description}: {what} failed: {exc}") from exc

    async def submit(self, record: TrackedIncident, job: Job, cooldown_s: float) -> str:
        del cooldown_s  # a closed incident's open key expires after the cooldown
        result = await self._do(
            "submitting an incident",
            lambda: self._submit(
                keys=[
                    self._key("open", record.fingerprint),
                    self._key("incident", record.id),
                    self._key("ready"),
                    self._key("incidents"),
                ],
                args=[
                    record.id,
                    record.status,
                    record.model_dump_json(),
                    job.model_dump_json(),
                    record.created_at.timestamp(),
                ],
            ),
        )
        return str(result)

    async def transition(
        self,
        record: TrackedIncident,
        allowed_from: Collection[str],
        job: Job | None = None,
        cooldown_s: float = 0.0,
    ) -> bool:
        closes = record.status in CLOSED_STATUSES
        result = await self._do(
            f"updating incident {record.id}",
            lambda: self._transition(
                keys=[
                    self._key("incident", record.id),
                    self._key("ready"),
                    self._key("open", record.fingerprint),
                ],
                args=[
                    record.id,
                    record.status,
                    record.model_dump_json(),
                    job.model_dump_json() if job is not None else "",
                    "1" if closes else "0",
                    int(cooldown_s * 1000),
                    *sorted(allowed_from),
                ],
            ),
        )
        return bool(int(result))

    async def get(self, incident_id: str) -> TrackedIncident | None:
        raw = await self._do(
            f"reading incident {incident_id}",
            lambda: self._client.hget(self._key("incident", incident_id), "record"),
        )
        return TrackedIncident.model_validate_json(raw) if raw else None

    async def open_incident(self, fingerprint: str) -> TrackedIncident | None:
        incident_id = await self._do(
            "reading an open incident",
            lambda: self._client.get(self._key("open", fingerprint)),
        )
        if not incident_id:
            return None
        record = await self.get(str(incident_id))
        return record if record is not None and record.open else None

    async def list(self, limit: int = 100) -> list[TrackedIncident]:
        ids = await self._do(
            "listing incidents",
            lambda: self._client.zrevrange(self._key("incidents"), 0, limit - 1),
        )
        records = []
        for incident_id in ids:
            record = await self.get(str(incident_id))
            if record is not None:
                records.append(record)
        return records

    async def claim(self, timeout_s: float) -> Claimed | None:
        raw = await self._do(
            "claiming a job",
            lambda: self._client.blmove(
                self._key("ready"), self._processing, timeout_s, "RIGHT", "LEFT"
            ),
        )
        if raw is None:
            return None
        return _claimed(str(raw), str(raw))

    async def ack(self, claimed: Claimed) -> None:
        await self._do(
            "acknowledging a job", lambda: self._client.lrem(self._processing, 1, claimed.raw)
        )

    async def release(self, claimed: Claimed) -> None:
        async def go() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.lrem(self._processing, 1, claimed.raw)
            # The right end is where claims take from: a released job runs next.
            pipe.rpush(self._key("ready"), claimed.raw)
            await pipe.execute()

        await self._do("releasing a job", go)

    async def heartbeat(self) -> None:
        async def go() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.sadd(self._key("consumers"), self.consumer)
            pipe.set(self._key("alive", self.consumer), "1", px=int(self.lease_s * 1000))
            await pipe.execute()

        await self._do("renewing the lease", go)

    async def recover(self) -> int:
        async def go() -> int:
            moved = 0
            for consumer in await self._client.smembers(self._key("consumers")):
                if consumer == self.consumer or await self._client.exists(
                    self._key("alive", consumer)
                ):
                    continue
                source = self._key("processing", consumer)
                while await self._client.lmove(source, self._key("ready"), "LEFT", "RIGHT"):
                    moved += 1
                await self._client.srem(self._key("consumers"), consumer)
            return moved

        moved: int = await self._do("requeueing the jobs of stopped workers", go)
        return moved

    async def release_all(self) -> int:
        async def go() -> int:
            moved = 0
            while await self._client.lmove(self._processing, self._key("ready"), "LEFT", "RIGHT"):
                moved += 1
            await self._client.delete(self._key("alive", self.consumer))
            await self._client.srem(self._key("consumers"), self.consumer)
            return moved

        moved: int = await self._do("giving back this worker's jobs", go)
        return moved

    async def depth(self) -> dict[str, int]:
        async def go() -> dict[str, int]:
            ready = int(await self._client.llen(self._key("ready")))
            processing = 0
            for consumer in await self._client.smembers(self._key("consumers")):
                processing += int(await self._client.llen(self._key("processing", consumer)))
            return {"ready": ready, "processing": processing}

        counts: dict[str, int] = await self._do("counting jobs", go)
        return counts

    async def ping(self) -> None:
        await self._do("PING", lambda: self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()


# -- taking alerts and answers in ------------------------------------------------------------


@dataclass
class AlertResult:
    """What happened to one alert of a webhook payload."""

    fingerprint: str
    status: Literal["accepted", "duplicate", "resolved"]
    incident_id: str | None = None
    #: For resolved alerts: cancelled (its incident had not started), noted, or none.
    effect: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fingerprint": self.fingerprint, "status": self.status}
        if self.incident_id:
            out["incident_id"] = self.incident_id
        if self.effect:
            out["effect"] = self.effect
        return out


async def accept_alert(queue: IncidentQueue, settings: Settings, alert: AlertInfo) -> AlertResult:
    """A firing alert becomes a queued incident, unless its fingerprint already has one."""
    fingerprint = alert.fingerprint or alert_fingerprint(alert.labels)
    now = utcnow()
    incident_id = new_incident_id(now.strftime("%Y%m%d-%H%M%S"))
    mode = settings.policy.mode
    record = TrackedIncident(
        id=incident_id,
        fingerprint=fingerprint,
        alertname=alert.labels.get("alertname", "")[:200],
        mode=mode,
        created_at=now,
        updated_at=now,
    )
    first = IncidentInput(
        trigger="alert",
        alert=alert.model_copy(update={"fingerprint": fingerprint}),
        mode=mode,
        requested_by="alertmanager",
        incident_id=incident_id,
    )
    job = Job(kind="incident", incident_id=incident_id, input=first)
    handled_by = await queue.submit(record, job, settings.webhook.dedup_cooldown_s)
    if handled_by != incident_id:
        return AlertResult(fingerprint, "duplicate", handled_by)
    return AlertResult(fingerprint, "accepted", incident_id)


async def resolve_alert(
    queue: IncidentQueue, alert: AlertInfo, *, cooldown_s: float
) -> AlertResult:
    """A resolved alert cancels its incident while queued, and is noted on it otherwise."""
    fingerprint = alert.fingerprint or alert_fingerprint(alert.labels)
    record = await queue.open_incident(fingerprint)
    if record is None:
        return AlertResult(fingerprint, "resolved", effect="no open incident")
    resolved_at = alert.ends_at or utcnow()
    if record.status == "queued" and record.runs == 0:
        cancelled = record.evolve(
            status="cancelled", outcome="alert resolved before start", resolved_at=resolved_at
        )
        if await queue.transition(cancelled, {"queued"}, cooldown_s=cooldown_s):
            return AlertResult(fingerprint, "resolved", record.id, "cancelled")
        record = await queue.get(record.id) or record
    noted = record.evolve(resolved_at=resolved_at)
    await queue.transition(noted, {record.status})
    return AlertResult(fingerprint, "resolved", record.id, f"noted ({record.status})")


async def answer_approval(
    queue: IncidentQueue,
    incident_id: str,
    *,
    request_id: str,
    decision: Literal["approve", "reject"],
    by: str,
    via: Literal["terminal", "slack", "api"] = "terminal",
    action_indexes: Collection[int] = (),
    comment: str = "",
) -> TrackedIncident:
    """Answer the approval request an incident waits on; a worker resumes it.

    Raises AnswerRefused naming the problem: no such incident, it waits on nothing or on
    another request, an action index it did not ask about, no approver named. The
    approval node checks the answer again when the thread resumes.
    """
    record = await queue.get(incident_id)
    if record is None:
        raise AnswerRefused(f"no incident {incident_id!r} in the queue's {queue.description}")
    if record.status != "waiting_approval":
        raise AnswerRefused(
            f"incident {incident_id!r} is not waiting for approval (it is {record.status}"
            + (f", outcome {record.outcome}" if record.outcome else "")
            + ")"
        )
    if request_id != record.request_id:
        raise AnswerRefused(
            f"incident {incident_id!r} waits on request {record.request_id!r}, not {request_id!r}"
        )
    asked = {int(a["index"]) for a in record.approval_actions if "index" in a}
    stray = sorted(set(action_indexes) - asked)
    if stray:
        raise AnswerRefused(
            f"request {request_id!r} does not ask about actions {stray} "
            f"(it asks about {sorted(asked)})"
        )
    if not by.strip():
        raise AnswerRefused("the answer names no approver")
    answer = {
        "decision": decision,
        "by": by,
        "via": via,
        "at": utcnow().isoformat(),
        "request_id": request_id,
        "action_indexes": sorted(action_indexes),
        "comment": comment,
    }
    resumed = record.evolve(status="queued", request_id="", approval_actions=[])
    job = Job(kind="resume", incident_id=incident_id, answer=answer)
    if not await queue.transition(resumed, {"waiting_approval"}, job):
        current = await queue.get(incident_id)
        raise AnswerRefused(
            f"incident {incident_id!r} was answered or changed meanwhile "
            f"(it is {current.status if current else 'gone'})"
        )
    return resumed


# -- counters -------------------------------------------------------------------------------


class Counters:
    """The server's own counters, rendered in Prometheus' text format at /metrics."""

    HELP: dict[str, tuple[str, str]] = {
        "kubemedic_alerts_received_total": ("counter", "Alerts received, by alert status."),
        "kubemedic_alerts_rejected_total": (
            "counter",
            "Webhook requests refused, by reason (nothing of them was queued).",
        ),
        "kubemedic_alerts_duplicate_total": (
            "counter",
            "Firing alerts whose fingerprint already had an open incident.",
        ),
        "kubemedic_incidents_started_total": ("counter", "Incidents the worker started."),
        "kubemedic_incidents_finished_total": ("counter", "Incidents that ended, by outcome."),
        "kubemedic_approvals_requested_total": (
            "counter",
            "Times an incident stopped to wait for a person's approval.",
        ),
        "kubemedic_queue_jobs": ("gauge", "Jobs in the queue, by state."),
        "kubemedic_incidents_running": ("gauge", "Incidents running in this process."),
    }

    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        if name not in self.HELP:
            raise KeyError(f"unknown counter {name!r}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        if name not in self.HELP:
            raise KeyError(f"unknown gauge {name!r}")
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        with self._lock:
            values = dict(self._values)
        lines: list[str] = []
        for name, (kind, help_text) in self.HELP.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            series = sorted((k, v) for k, v in values.items() if k[0] == name)
            if not series and kind == "counter":
                lines.append(f"{name} 0")
            for (_, labels), value in series:
                shown = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                lines.append(
                    f"{name}{{{shown}}} {_number(value)}" if shown else f"{name} {_number(value)}"
                )
        return "\n".join(lines) + "\n"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


# -- the worker -------------------------------------------------------------------------------


class Backend(Protocol):
    """Where incidents run: read tools over a cluster, and the cluster's clock."""

    clock: ClusterClock

    def toolbox(self) -> Toolbox:
        """A fresh toolbox for one incident (closed with runner.close_toolbox after)."""
        ...


@dataclass
class ClusterBackend:
    """A real cluster from a kubeconfig or the in-cluster service account, on wall time."""

    settings: Settings
    kubeconfig: str | None = None
    context: str | None = None
    clock: ClusterClock = field(default_factory=WallClock)

    def toolbox(self) -> Toolbox:
        return cluster_toolbox(self.settings, self.kubeconfig, self.context)

    async def check(self) -> None:
        """Raise ToolError naming the API server when it does not answer (for /readyz)."""
        box = self.toolbox()
        try:
            if box.cluster is None:
                raise ToolError(box.cluster_problem or "no cluster configured")
            await asyncio.to_thread(box.cluster.version)
        finally:
            close_toolbox(box)


class Notifier(Protocol):
    """Tells people about the incidents alerts started (Slack: serve_cmd.SlackNotifier)."""

    async def approval_requested(self, incident_id: str, payload: Mapping[str, Any]) -> None:
        """An incident waits for a person; `payload` is the approval node's request."""
        ...

    async def finished(self, incident_id: str, transcript: Path) -> None:
        """An incident ended; `transcript` is its transcript.json (a state.IncidentReport)."""
        ...


class AwaitingApproval(Exception):
    """The graph stopped at an approval interrupt: the incident waits for a person."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        super().__init__(f"waiting for approval of request {payload.get('request_id', '')!r}")
        self.payload = dict(payload)


async def _defer(payload: dict[str, Any]) -> dict[str, Any]:
    """The worker's approver: nobody answers now; the incident waits (see Worker._run)."""
    raise AwaitingApproval(payload)


@dataclass
class RunResult:
    status: IncidentStatus
    outcome: str = ""
    request_id: str = ""
    approval_actions: list[dict[str, Any]] = field(default_factory=list)
    #: The approval node's request, when waiting.
    payload: dict[str, Any] = field(default_factory=dict)


class Worker:
    """Runs queued incidents, at most `settings.webhook.max_concurrent_incidents` at once."""

    def __init__(
        self,
        settings: Settings,
        queue: IncidentQueue,
        backend: Backend,
        *,
        counters: Counters | None = None,
        tracer: Any = None,
        nodes: Mapping[str, Node] | None = None,
        concurrency: int | None = None,
        postmortems: bool = True,
        retry_delay_s: float = RETRY_DELAY_S,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.backend = backend
        self.counters = counters or Counters()
        #: An OpenTelemetry Tracer (telemetry.setup_telemetry(...).get_tracer(...)), or None.
        self.tracer = tracer
        #: Graph nodes to replace by name (graph.build_graph), for tests.
        self.nodes = nodes
        self.concurrency = concurrency or settings.webhook.max_concurrent_incidents
        self.postmortems = postmortems
        self.retry_delay_s = retry_delay_s
        self.notifier = notifier
        self.running: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        #: Jobs finished since start (for tests and the log).
        self.jobs_done = 0
        self._idle = asyncio.Condition()
        self.queue_problem = ""
        #: One memory store for the worker's life: incidents learn from earlier ones even
        #: when the store is the in-process one.
        self.memory: MemoryStore = make_memory(settings)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Requeue the jobs of dead workers and start the claim loops and the lease renewal."""
        try:
            await self.queue.heartbeat()
            moved = await self.queue.recover()
            if moved:
                log.info(
                    "requeued %d job(s) of a stopped worker from %s", moved, self.queue.description
                )
        except QueueUnavailable as exc:
            self.queue_problem = str(exc)
            log.warning("queue unavailable at start (will retry): %s", exc)
        self._tasks = [
            asyncio.create_task(self._loop(i), name=f"kubemedic-worker-{i}")
            for i in range(self.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._lease(), name="kubemedic-lease"))

    async def stop(self) -> None:
        """Stop claiming; cancel running incidents (their jobs go back to the queue, to
        continue from their checkpoints at the next start); give back every held job."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            moved = await self.queue.release_all()
            if moved:
                log.info("gave back %d job(s) to %s", moved, self.queue.description)
        except QueueUnavailable as exc:
            log.warning("could not give back jobs (they return after the lease): %s", exc)
        await self.memory.aclose()

    async def wait_idle(self, timeout_s: float) -> None:
        """Wait until no job is being processed and the queue has none ready (tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            depth = await self.queue.depth()
            if not self.running and depth.get("ready", 0) == 0 and depth.get("processing", 0) == 0:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the worker was still busy after {timeout_s}s")

    async def _lease(self) -> None:
        # Renew three times per lease, so one slow round trip does not let it lapse.
        interval = max(0.2, self.settings.webhook.lease_s / 3)
        while not self._stopping.is_set():
            try:
                await self.queue.heartbeat()
                moved = await self.queue.recover()
                if moved:
                    log.info("requeued %d job(s) of a stopped worker", moved)
                self.queue_problem = ""
            except QueueUnavailable as exc:
                self.queue_problem = str(exc)
            await asyncio.sleep(interval)

    async def _loop(self, number: int) -> None:
        warned = False
        while not self._stopping.is_set():
            try:
                claimed = await self.queue.claim(CLAIM_TIMEOUT_S)
                warned = False
            except QueueUnavailable as exc:
                self.queue_problem = str(exc)
                if not warned:
                    log.warning("worker %d cannot claim jobs: %s", number, exc)
                    warned = True
                await asyncio.sleep(self.retry_delay_s)
                continue
            if claimed is None:
                continue
            if claimed.broken:
                await self.queue.ack(claimed)
                continue
            try:
                await self._process(claimed)
            except asyncio.CancelledError:
                # Stopping mid-job: the job goes back; its incident continues from its last
                # checkpoint when a worker takes it again.
                with contextlib.suppress(QueueUnavailable):
                    await asyncio.shield(self.queue.release(claimed))
                raise
            except QueueUnavailable as exc:
                log.warning(
                    "queue failed while handling incident %s: %s", claimed.job.incident_id, exc
                )
                await self._give_back(claimed)
                continue
            self.jobs_done += 1

    async def _give_back(self, claimed: Claimed) -> None:
        """Return a job whose bookkeeping failed, once the queue answers again: taken again, it
        continues its incident from the checkpoint (or only records the end, if the graph had
        finished). This worker's lease is alive, so nobody else would requeue it."""
        while not self._stopping.is_set():
            await asyncio.sleep(self.retry_delay_s)
            try:
                await self.queue.release(claimed)
                return
            except QueueUnavailable:
                continue

    # -- one job -------------------------------------------------------------------------------

    async def _process(self, claimed: Claimed) -> None:
        job = claimed.job
        record = await self.queue.get(job.incident_id)
        if record is None:
            log.error("job for unknown incident %s dropped", job.incident_id)
            await self.queue.ack(claimed)
            return
        if record.status not in ("queued", "running"):
            # Cancelled by its resolved alert, or a redelivered job of an incident that has
            # since paused or closed.
            log.info("incident %s is %s: job %s skipped", record.id, record.status, job.kind)
            await self.queue.ack(claimed)
            return
        first_run = record.runs == 0
        running = record.evolve(
            status="running", runs=record.runs + 1, started_at=record.started_at or utcnow()
        )
        if not await self.queue.transition(running, {"queued", "running"}):
            await self.queue.ack(claimed)
            return
        if first_run:
            self.counters.inc("kubemedic_incidents_started_total")
        log.info(
            "incident %s: %s (run %d, mode %s)", record.id, job.kind, running.runs, record.mode
        )
        task = asyncio.current_task()
        assert task is not None
        self.running[record.id] = task
        self.counters.set("kubemedic_incidents_running", len(self.running))
        try:
            result = await self._run(job, running)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the one broad catch: a failed run is recorded, never lost
            log.exception("incident %s: run %d failed", record.id, running.runs)
            await self._failed(claimed, running, exc)
            return
        finally:
            self.running.pop(record.id, None)
            self.counters.set("kubemedic_incidents_running", len(self.running))
        cooldown = self.settings.webhook.dedup_cooldown_s
        if result.status == "waiting_approval":
            self.counters.inc("kubemedic_approvals_requested_total")
            final = running.evolve(
                status="waiting_approval",
                request_id=result.request_id,
                approval_actions=result.approval_actions,
            )
            log.info("incident %s waits for approval of request %s", record.id, result.request_id)
            if self.notifier is not None:
                await self._notify(
                    record.id, self.notifier.approval_requested(record.id, result.payload)
                )
        else:
            final = running.evolve(status=result.status, outcome=result.outcome)
            self.counters.inc(
                "kubemedic_incidents_finished_total", outcome=result.outcome or result.status
            )
            log.info("incident %s finished: %s", record.id, result.outcome or result.status)
        await self.queue.transition(final, {"running"}, cooldown_s=cooldown)
        await self.queue.ack(claimed)
        transcript = self.settings.incident_dir(record.id) / "transcript.json"
        if self.notifier is not None and final.status == "done" and transcript.exists():
            await self._notify(record.id, self.notifier.finished(record.id, transcript))

    async def _notify(self, incident_id: str, call: Awaitable[None]) -> None:
        """A notification that fails is logged; it never fails or repeats the incident."""
        try:
            await call
        except Exception as exc:  # whatever the notifier raises, the incident stands
            log.warning(
                "incident %s: notification failed: %s: %s", incident_id, type(exc).__name__, exc
            )

    async def _failed(self, claimed: Claimed, record: TrackedIncident, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        errors = record.errors + 1
        if errors < MAX_RUNS:
            retry = record.evolve(status="queued", errors=errors, error=error)
            await self.queue.transition(retry, {"running"})
            await asyncio.sleep(self.retry_delay_s)
            await self.queue.release(claimed)
            return
        failed = record.evolve(status="failed", errors=errors, error=error, outcome="failed")
        await self.queue.transition(
            failed, {"running"}, cooldown_s=self.settings.webhook.dedup_cooldown_s
        )
        self.counters.inc("kubemedic_incidents_finished_total", outcome="failed")
        await self.queue.ack(claimed)

    async def _run(self, job: Job, record: TrackedIncident) -> RunResult:
        """Run (or continue, or resume) the incident's graph thread until it ends or waits."""
        settings = self.settings
        spans = (
            IncidentSpans(
                self.tracer,
                record.id,
                trigger="alert",
                mode=record.mode,
                resumed=job.kind == "resume" or record.runs > 1,
            )
            if self.tracer is not None
            else None
        )
        box = self.backend.toolbox()
        result: RunResult | None = None
        error: BaseException | None = None
        try:
            async with (
                agent_context(settings, box, self.backend.clock, memory=self.memory) as ctx,
                open_checkpointer(settings) as saver,
            ):
                graph = compile_graph(saver, self.nodes)
                config: RunnableConfig = {"configurable": {"thread_id": record.id}}
                snapshot = await graph.aget_state(config)
                first: Any
                if job.kind == "resume":
                    first = Command(resume=job.answer)
                elif snapshot.values and not snapshot.next:
                    # The graph had ended before the process stopped: only the bookkeeping
                    # was left to do.
                    first = _FINISHED
                elif snapshot.values:
                    first = None  # continue the thread from its last checkpoint
                else:
                    if job.input is None:
                        raise ValueError(f"job for incident {record.id} carries no input")
                    first = {"input": job.input}
                if first is _FINISHED:
                    outcome = snapshot.values.get("outcome") or ""
                else:
                    try:
                        run = await drive(
                            graph,
                            first,
                            thread_id=record.id,
                            ctx=ctx,
                            approver=_defer,
                            on_event=spans,
                        )
                    except AwaitingApproval as waiting:
                        result = _waiting(waiting.payload)
                        return result
                    outcome = run.state.outcome or ""
            if self.postmortems:
                await self._write_postmortems(record.id)
            result = RunResult(status="done", outcome=str(outcome))
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            close_toolbox(box)
            if spans is not None:
                spans.finish(
                    status=result.status if result else "error",
                    outcome=result.outcome if result else None,
                    error=error if not isinstance(error, asyncio.CancelledError) else None,
                )

    async def _write_postmortems(self, incident_id: str) -> None:
        # Imported here: rendering pulls in the post-mortem module only when it is used.
        from interfaces.postmortem import PostmortemError, write_postmortems

        directory = self.settings.incident_dir(incident_id)
        try:
            paths = await asyncio.to_thread(write_postmortems, directory)
        except (PostmortemError, OSError, ValueError) as exc:
            log.warning(
                "incident %s: no post-mortem written to %s: %s", incident_id, directory, exc
            )
            return
        log.info(
            "incident %s: post-mortem written: %s", incident_id, ", ".join(str(p) for p in paths)
        )


_FINISHED = object()


def _waiting(payload: Mapping[str, Any]) -> RunResult:
    actions = []
    for a in payload.get("actions") or []:
        if isinstance(a, Mapping):
            actions.append(
                {
                    "index": a.get("index"),
                    "summary": str(a.get("summary", ""))[:300],
                    "params": (a.get("action") or {}).get("params") or {},
                    "gate": [str(r)[:300] for r in (a.get("gate") or [])][:10],
                }
            )
    return RunResult(
        status="waiting_approval",
        request_id=str(payload.get("request_id", "")),
        approval_actions=actions,
        payload=dict(payload),
    )
