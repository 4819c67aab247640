"""Events as a real cluster writes them (client-go tools/record semantics).

The EventCorrelator of client-go does three things before an event reaches
the API, and agents read their traces (`x12 over 5m`, "(combined from
similar events)"), so the twin does them too:

- de-duplication: an identical event (same source, involved object, type,
  reason and message) is not written twice; the existing one gets count+1
  and a new lastTimestamp;
- aggregation: once 10 distinct messages with the same source, object, type
  and reason arrive within 600 s of each other, a new event with message
  `(combined from similar events): <msg>` is written and later ones count up
  on it;
- a spam filter: each source + object gets a burst of 25 writes, refilled at
  one per 300 s; what is filtered still counts, so the next write jumps.

Events that pass an `action` (the scheduler's, from the events.k8s.io
recorder) are de-duplicated only, and carry `action` and `eventTime`.
The API server forgets events an hour after their last write (`--event-ttl`);
`expire` does that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.clock import rfc3339, rfc3339_micro

if TYPE_CHECKING:
    from twin.cluster import Cluster

Obj = dict[str, Any]

#: events_cache.go defaultSpamBurst / defaultSpamQPS.
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
#: defaultAggregateMaxEvents / defaultAggregateIntervalInSeconds.
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600.0
AGGREGATE_PREFIX = "(combined from similar events): "
#: The API server's default --event-ttl.
EVENT_TTL = 3600.0
#: The events.k8s.io note limit (truncateMessage).
MAX_NOTE = 1024


@dataclass
class _Observation:
    namespace: str
    name: str
    count: int
    first: str
    last: float = 0.0


@dataclass
class _Aggregate:
    messages: dict[str, None] = field(default_factory=dict)
    last: float = 0.0


@dataclass
class _Bucket:
    tokens: float
    last: float

    def take(self, now: float) -> bool:
        self.tokens = min(float(SPAM_BURST), self.tokens + (now - self.last) * SPAM_QPS)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class EventRecorder:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._seen: dict[tuple[str, ...], _Observation] = {}
        self._aggregates: dict[tuple[str, ...], _Aggregate] = {}
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._last_nanos: dict[tuple[str, str], int] = {}
        #: Events written but dropped by the spam filter (for tests and diagnostics).
        self.filtered = 0

    def event(
        self,
        involved: Obj,
        type_: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str = "",
        field_path: str = "",
        action: str = "",
    ) -> Obj:
        """Record an event about `involved` (any object with apiVersion, kind, metadata).

        Returns the event as written, or as it would have been when the spam
        filter dropped it.
        """
        cluster = self.cluster
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        ref = {
            "kind": involved.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "apiVersion": involved.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            ref["fieldPath"] = field_path
        for optional in ("namespace", "uid", "resourceVersion"):
            if not ref[optional]:
                del ref[optional]
        if action and len(message) > MAX_NOTE:
            message = message[: MAX_NOTE - 4] + " ..."
        obj_key = (
            component,
            host,
            str(ref["kind"]),
            str(ref.get("namespace", "")),
            str(ref["name"]),
            str(ref.get("uid", "")),
            str(ref["apiVersion"]),
        )
        t = cluster.elapsed
        with cluster.lock:
            text = message
            seen_key: tuple[str, ...] = (*obj_key, field_path, type_, reason, message)
            if not action:
                agg_key = (*obj_key, type_, reason)
                agg = self._aggregates.get(agg_key)
                if agg is None or t - agg.last > AGGREGATE_INTERVAL:
                    agg = self._aggregates[agg_key] = _Aggregate()
                agg.messages[message] = None
                agg.last = t
                if len(agg.messages) >= AGGREGATE_MAX_EVENTS:
                    # client-go pops an arbitrary key; the oldest keeps the twin deterministic.
                    del agg.messages[next(iter(agg.messages))]
                    text = AGGREGATE_PREFIX + message
                    seen_key = ("(aggregate)", *agg_key)
            now = rfc3339(cluster.clock.now())
            obs = self._seen.get(seen_key)
            if obs is None:
                obs = _Observation(namespace, self._new_name(str(ref["name"]), namespace), 0, now)
                self._seen[seen_key] = obs
            obs.count += 1
            obs.last = t
            if not action:
                bucket = self._buckets.get(obj_key)
                if bucket is None:
                    bucket = self._buckets[obj_key] = _Bucket(float(SPAM_BURST), t)
                if not bucket.take(t):
                    self.filtered += 1
                    return self._shape(obs, ref, type_, reason, text, component, host, action, now)
            return self._write(obs, ref, type_, reason, text, component, host, action, now)

    def _new_name(self, involved_name: str, namespace: str) -> str:
        """`<involved>.<hex UnixNano>`, unique even for events recorded in the same instant."""
        rt = self.cluster.rt("Event")
        nanos = int(self.cluster.clock.now().timestamp() * 1e9)
        nanos = max(nanos, self._last_nanos.get((namespace, involved_name), 0) + 1)
        while self.cluster.store.find(rt, namespace, f"{involved_name}.{nanos:x}") is not None:
            nanos += 1
        self._last_nanos[(namespace, involved_name)] = nanos
        return f"{involved_name}.{nanos:x}"

    def _shape(
        self,
        obs: _Observation,
        ref: Obj,
        type_: str,
        reason: str,
        message: str,
        component: str,
        host: str,
        action: str,
        now: str,
    ) -> Obj:
        source: dict[str, str] = {"component": component}
        if host:
            source["host"] = host
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": obs.name, "namespace": obs.namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": source,
            "firstTimestamp": obs.first,
            "lastTimestamp": now,
            "count": obs.count,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        if action:
            event["action"] = action
            event["eventTime"] = rfc3339_micro(self.cluster.clock.now())
        return event

    def _write(
        self,
        obs: _Observation,
        ref: Obj,
        type_: str,
        reason: str,
        message: str,
        component: str,
        host: str,
        action: str,
        now: str,
    ) -> Obj:
        store = self.cluster.store
        rt = self.cluster.rt("Event")
        existing = store.find(rt, obs.namespace, obs.name)
        if existing is not None:
            existing["count"] = obs.count
            existing["lastTimestamp"] = now
            existing["message"] = message
            store.commit(rt, existing)
            return existing
        return store.create(
            rt, self._shape(obs, ref, type_, reason, message, component, host, action, now)
        )

    def expire(self, ttl: float = EVENT_TTL) -> int:
        """Delete events whose last write is older than `ttl` seconds; returns how many."""
        cluster = self.cluster
        rt = cluster.rt("Event")
        cutoff = rfc3339(cluster.clock.at(cluster.elapsed - ttl))
        removed = 0
        with cluster.lock:
            for ev in list(cluster.store.iter_live(rt)):
                last = str(ev.get("lastTimestamp") or ev["metadata"].get("creationTimestamp") or "")
                if last and last < cutoff:
                    meta = ev["metadata"]
                    cluster.store.delete(rt, meta.get("namespace", ""), meta["name"])
                    removed += 1
            horizon = cluster.elapsed - ttl
            for k in [k for k, a in self._aggregates.items() if a.last < horizon]:
                del self._aggregates[k]
            for k in [k for k, o in self._seen.items() if o.last < horizon]:
                del self._seen[k]
        return removed


def micro_now(cluster: Cluster) -> str:
    return rfc3339_micro(cluster.clock.now())
