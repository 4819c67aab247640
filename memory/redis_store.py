"""The Redis incident memory: shared by every kubemedic replica, kept across restarts.

Plain Redis 6.2+ data structures and one Lua script, no modules, so it runs on
Valkey and on managed Redis. Under the key prefix P:

- `P:inc:<id>`, a hash: `record` (the IncidentRecord as JSON), `fp` (its
  fingerprint), `bands` (its LSH buckets), `closed` (epoch seconds);
- `P:incidents`, a sorted set: incident ids scored by when they closed (listing, retention);
- `P:lsh:<group>:<band>:<hash>`, a set: the incidents whose MinHash falls in that bucket;
- `P:stats:<cause kind>`, a hash: `<action>|s`, `<action>|f`, `<action>|ttr_sum`,
  `<action>|ttr_n` (successes, failures, summed and counted times to recover).

Similarity: each fingerprint group (memory.fingerprint: intake facets,
evidence facets) gets a datasketch MinHash, cut into bands as MinHashLSH does
(its `b` and `r` for the threshold below); the buckets live in Redis sets, so
any replica can query them. Recall takes the union of the query's buckets and
the most recent incidents as candidates, and ranks them by the exact
similarity of their stored fingerprints.

Concurrency: an incident is stored and its statistics counted by one Lua
script (atomic on the server), with HINCRBY/HINCRBYFLOAT, so replicas learning
at once lose no update; a record whose incident is already stored replaces it
without counting again, which also makes a retried write safe.

Failures: the client retries a failed connection or timeout a bounded number
of times with exponential back-off (redis-py's Retry); then the call raises
MemoryStoreError naming the server and the operation, which the nodes report.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from datasketch import MinHash, MinHashLSH
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from memory.base import MIN_SIMILARITY, IncidentRecord, MemoryStoreError, past_incident
from memory.fingerprint import similarity, split_groups
from state import ActionStats, Incident, Recall

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

T = TypeVar("T")

#: MinHash permutations: 64 keeps the estimate within about 0.12 of the true Jaccard index,
#: plenty for finding candidates that are then ranked exactly.
NUM_PERM = 64
#: LSH threshold: incidents at least this alike almost always share a bucket with the query
#: (MinHashLSH picks 21 bands of 3 rows for it at 64 permutations).
LSH_THRESHOLD = 0.3
#: Seed of the MinHash permutations; changing it orphans every stored bucket.
MINHASH_SEED = 1
#: Most recent incidents always considered, whatever the buckets say (a small store is then
#: searched exhaustively).
RECENT_CANDIDATES = 200
#: Candidates scored exactly per recall, at most.
MAX_CANDIDATES = 2_000

#: Key prefixes: no glob characters (the prefix is a SCAN pattern) and no spaces.
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")

_LSH = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)
BANDS: int = _LSH.b
ROWS: int = _LSH.r

# KEYS: 1 incident hash, 2 incidents zset, 3 stats hash, 4.. LSH bucket sets.
# ARGV: 1 id, 2 closed epoch, 3 ttl seconds, 4 record json, 5 fingerprint json, 6 bucket keys
# (space separated), 7 number of stat increments, then (field, "i"|"f", amount) triples.
# Returns 1 when the incident was new (its statistics counted), 0 when it replaced one.
_RECORD_LUA = """
local first = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], 'record', ARGV[4], 'fp', ARGV[5], 'bands', ARGV[6], 'closed', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
for i = 4, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
if first then
  local n = tonumber(ARGV[7])
  for j = 0, n - 1 do
    local field, kind, amount = ARGV[8 + 3 * j], ARGV[9 + 3 * j], ARGV[10 + 3 * j]
    if kind == 'i' then
      redis.call('HINCRBY', KEYS[3], field, amount)
    else
      redis.call('HINCRBYFLOAT', KEYS[3], field, amount)
    end
  end
  return 1
end
return 0
"""


def _str(value: object) -> str:
    """A reply as text (the client decodes replies; bytes only from a client that does not)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"unexpected redis reply {value!r}: expected a string")


def _strs(values: Iterable[object]) -> builtins.list[str]:
    return [_str(v) for v in values]


def redact_url(url: str) -> str:
    """The URL without its password (said aloud at start, written in transcripts)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}" if user else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def minhash(tokens: Iterable[str]) -> MinHash:
    m = MinHash(num_perm=NUM_PERM, seed=MINHASH_SEED)
    m.update_batch([t.encode("utf-8") for t in tokens])
    return m


def bucket_keys(prefix: str, tokens: Iterable[str]) -> list[str]:
    """The LSH buckets of a fingerprint: per group, one per band of its MinHash."""
    keys = []
    for group, toks in sorted(split_groups(tokens).items()):
        values = minhash(sorted(toks)).hashvalues
        for band in range(BANDS):
            rows = values[band * ROWS : (band + 1) * ROWS]
            digest = hashlib.blake2b(rows.tobytes(), digest_size=8).hexdigest()
            keys.append(f"{prefix}:lsh:{group}:{band}:{digest}")
    return keys


def _stat_fields(record: IncidentRecord) -> list[str]:
    """The Lua script's increment triples for a record's counted actions."""
    args: list[str] = []
    for outcome in record.actions:
        if not outcome.counts_for(record.cause_kind):
            continue
        if outcome.recovered:
            args += [f"{outcome.action}|s", "i", "1"]
            if outcome.time_to_recover_s is not None:
                args += [f"{outcome.action}|ttr_sum", "f", repr(outcome.time_to_recover_s)]
                args += [f"{outcome.action}|ttr_n", "i", "1"]
        else:
            args += [f"{outcome.action}|f", "i", "1"]
    return args


def _stats_from_hash(cause_kind: str, raw: dict[str, str]) -> list[ActionStats]:
    tallies: dict[str, dict[str, float]] = {}
    for key, value in raw.items():
        action, _, part = key.rpartition("|")
        if action:
            tallies.setdefault(action, {})[part] = float(value)
    stats = []
    for action, t in sorted(tallies.items()):
        n = t.get("ttr_n", 0.0)
        stats.append(
            ActionStats(
                cause_kind=cause_kind,
                action=action,
                successes=int(t.get("s", 0)),
                failures=int(t.get("f", 0)),
                mean_time_to_recover_s=round(t.get("ttr_sum", 0.0) / n, 3) if n else None,
            )
        )
    return stats


class RedisMemory:
    """Incident memory in Redis, shared by replicas, with retention by age and by count."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "kubemedic",
        retention_days: int = 90,
        max_incidents: int = 10_000,
        retries: int = 3,
        connect_timeout_s: float = 2.0,
        timeout_s: float = 5.0,
    ) -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(
                f"redis key prefix {prefix!r} must be 1-100 letters, digits, '_', '-', '.' or ':'"
            )
        self.url = redact_url(url)
        self.prefix = prefix
        self.retention_s = retention_days * 86_400
        self.max_incidents = max_incidents
        self.description = f"redis {self.url} (prefix {prefix!r})"
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s,
            # Connection failures and timeouts only: a script or type error is not transient.
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self._record_script: AsyncScript = self._client.register_script(_RECORD_LUA)

    # -- keys ----------------------------------------------------------------------

    def _inc(self, incident_id: str) -> str:
        return f"{self.prefix}:inc:{incident_id}"

    @property
    def _incidents(self) -> str:
        return f"{self.prefix}:incidents"

    def _stats(self, cause_kind: str) -> str:
        return f"{self.prefix}:stats:{cause_kind}"

    async def _call(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (RedisError, OSError) as exc:
            raise MemoryStoreError(
                f"redis at {self.url} failed to {op}: {type(exc).__name__}: {exc}"
            ) from exc

    # -- the MemoryStore protocol ----------------------------------------------------

    async def record(self, record: IncidentRecord) -> None:
        await self._call(f"store incident {record.incident_id!r}", lambda: self._record(record))
        await self._call("trim old incidents", lambda: self.trim(now=record.closed_at))

    async def _record(self, record: IncidentRecord) -> None:
        closed = record.closed_at.timestamp()
        buckets = bucket_keys(self.prefix, record.fingerprint)
        stats = _stat_fields(record) if record.cause_kind else []
        stats_key = self._stats(record.cause_kind or "_")
        await self._record_script(
            keys=[self._inc(record.incident_id), self._incidents, stats_key, *buckets],
            args=[
                record.incident_id,
                repr(closed),
                str(self.retention_s),
                record.model_dump_json(),
                json.dumps(record.fingerprint),
                " ".join(buckets),
                str(len(stats) // 3),
                *stats,
            ],
        )

    async def trim(self, *, now: datetime | None = None) -> int:
        """Forget incidents older than the retention (from `now`) and the oldest beyond the
        maximum count, with their LSH bucket entries; returns how many were removed."""
        at = now.timestamp() if now is not None else time.time()
        old = _strs(
            await self._client.zrangebyscore(self._incidents, "-inf", f"({at - self.retention_s!r}")
        )
        count = await self._client.zcard(self._incidents) - len(old)
        if count > self.max_incidents:
            start = len(old)
            stop = start + count - self.max_incidents - 1
            old += _strs(await self._client.zrange(self._incidents, start, stop))
        if not old:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for rid in old:
                pipe.hget(self._inc(rid), "bands")
            bands: list[str | None] = await pipe.execute()
        async with self._client.pipeline(transaction=True) as pipe:
            for rid, keys in zip(old, bands, strict=True):
                for key in (keys or "").split():
                    pipe.srem(key, rid)
                pipe.delete(self._inc(rid))
            pipe.zrem(self._incidents, *old)
            await pipe.execute()
        return len(old)

    async def recall(self, incident: Incident, symptoms: list[str], *, limit: int = 5) -> Recall:
        return await self._call(
            "recall similar incidents", lambda: self._recall(incident, symptoms, limit)
        )

    async def _recall(self, incident: Incident, symptoms: list[str], limit: int) -> Recall:
        buckets = bucket_keys(self.prefix, symptoms)
        candidates: set[str] = set()
        if buckets:
            candidates |= set(_strs(await self._client.sunion(buckets)))
        recent = await self._client.zrevrange(self._incidents, 0, RECENT_CANDIDATES - 1)
        candidates |= set(_strs(recent))
        candidates.discard(incident.id)
        ids = sorted(candidates)[:MAX_CANDIDATES]
        scored: list[tuple[float, IncidentRecord]] = []
        if ids:
            async with self._client.pipeline(transaction=False) as pipe:
                for rid in ids:
                    pipe.hget(self._inc(rid), "record")
                raw: list[str | None] = await pipe.execute()
            for text in raw:
                if text is None:
                    continue  # expired or trimmed since its bucket was read
                rec = IncidentRecord.model_validate_json(text)
                score = similarity(symptoms, rec.fingerprint)
                if score >= MIN_SIMILARITY:
                    scored.append((score, rec))
        scored.sort(key=lambda sr: (-sr[0], -sr[1].closed_at.timestamp()))
        similar = [past_incident(r, s) for s, r in scored[:limit]]
        kinds = list(dict.fromkeys(p.cause_kind for p in similar if p.cause_kind))
        stats = [s for kind in kinds for s in await self._stats_of(kind)]
        return Recall(similar=similar, stats=stats, store=self.description)

    async def _stats_of(self, cause_kind: str) -> list[ActionStats]:
        raw = await self._client.hgetall(self._stats(cause_kind))
        return _stats_from_hash(cause_kind, {_str(k): _str(v) for k, v in raw.items()})

    async def stats(self, cause_kind: str) -> list[ActionStats]:
        return await self._call(
            f"read statistics of {cause_kind!r}", lambda: self._stats_of(cause_kind)
        )

    async def get(self, incident_id: str) -> IncidentRecord | None:
        key = self._inc(incident_id)
        text = await self._call(
            f"read incident {incident_id!r}", lambda: self._client.hget(key, "record")
        )
        return IncidentRecord.model_validate_json(text) if text else None

    async def list(self, *, limit: int = 50) -> builtins.list[IncidentRecord]:
        return await self._call("list incidents", lambda: self._list(limit))

    async def _list(self, limit: int) -> builtins.list[IncidentRecord]:
        ids = _strs(await self._client.zrevrange(self._incidents, 0, max(0, limit - 1)))
        if not ids:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hget(self._inc(rid), "record")
            raw: list[str | None] = await pipe.execute()
        return [IncidentRecord.model_validate_json(t) for t in raw if t]

    async def ping(self) -> None:
        """Raise MemoryStoreError unless the server answers."""
        await self._call("answer a ping", self._ping)

    async def _ping(self) -> None:
        await self._client.ping()

    async def delete_all(self) -> int:
        """Delete every key under the prefix (tests, `kubemedic incidents forget`)."""
        return await self._call("delete its keys", self._delete_all)

    async def _delete_all(self) -> int:
        keys = [k async for k in self._client.scan_iter(match=f"{self.prefix}:*", count=500)]
        for start in range(0, len(keys), 500):
            await self._client.delete(*keys[start : start + 500])
        return len(keys)

    async def aclose(self) -> None:
        await self._client.aclose()
