"""What the controllers share: an informer-like index over the store, work queues, helpers.

A real controller watches the API and keeps a local cache with indexes; it
reconciles a key when an event touches it and on timers it sets itself. Here
one store subscription feeds every controller: it keeps pods indexed by
namespace, controlling owner and node, and calls the handlers controllers
registered per kind, which only mark keys dirty. The work happens in each
controller's `step`, so a tick in which nothing changed costs almost nothing.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from twin.clock import parse_rfc3339, rfc3339
from twin.controllers import quantities
from twin.resources import ResourceType
from twin.selectors import match_labels
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

Key = tuple[str, str]
Handler = Callable[[EventType, Obj], None]
K = TypeVar("K")


# -- work queues ------------------------------------------------------------------------


class WorkQueue(Generic[K]):
    """Keys to reconcile at the next step, plus keys due later (client-go AddAfter)."""

    def __init__(self) -> None:
        self._now: dict[K, None] = {}
        self._later: list[tuple[float, int, K]] = []
        self._seq = itertools.count()

    def add(self, key: K) -> None:
        self._now[key] = None

    def add_at(self, key: K, when: float) -> None:
        heapq.heappush(self._later, (when, next(self._seq), key))

    def __len__(self) -> int:
        return len(self._now) + len(self._later)

    def pop_due(self, now: float) -> list[K]:
        """Every key due by `now`, each once, in the order they were first added."""
        while self._later and self._later[0][0] <= now + 1e-9:
            _, _, key = heapq.heappop(self._later)
            self._now[key] = None
        keys = list(self._now)
        self._now.clear()
        return keys

    def next_due(self) -> float | None:
        return self._later[0][0] if self._later else None


# -- the index --------------------------------------------------------------------------


@dataclass
class _PodEntry:
    namespace: str
    owner: str
    node: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class Index:
    """Live pods by namespace, controlling owner uid and node; dispatches store events."""

    pods: dict[str, dict[str, Obj]] = field(default_factory=dict)
    by_owner: dict[str, dict[Key, Obj]] = field(default_factory=dict)
    by_node: dict[str, dict[Key, Obj]] = field(default_factory=dict)
    #: Pods with no controlling owner, by namespace (candidates for adoption).
    orphans: dict[str, dict[str, Obj]] = field(default_factory=dict)
    #: (namespace, label key, label value) -> pods carrying that label.
    by_label: dict[tuple[str, str, str], dict[str, Obj]] = field(default_factory=dict)
    _entries: dict[Key, _PodEntry] = field(default_factory=dict)
    _handlers: dict[str, list[Handler]] = field(default_factory=dict)
    _any: list[Callable[[EventType, ResourceType, Obj], None]] = field(default_factory=list)

    @classmethod
    def attach(cls, cluster: Cluster) -> Index:
        index = cls()
        with cluster.lock:
            for pod in cluster.store.iter_live(cluster.rt("Pod")):
                index._index_pod("ADDED", pod)
            cluster.store.subscribe(index._on_change)
        return index

    def on(self, rt_key: str, handler: Handler) -> None:
        """Call `handler(event_type, obj)` for every change to objects of a kind."""
        self._handlers.setdefault(rt_key, []).append(handler)

    def on_any(self, handler: Callable[[EventType, ResourceType, Obj], None]) -> None:
        self._any.append(handler)

    def _on_change(self, etype: EventType, rt: ResourceType, obj: Obj) -> None:
        if rt.key == "pods":
            self._index_pod(etype, obj)
        for handler in self._handlers.get(rt.key, ()):
            handler(etype, obj)
        for any_handler in self._any:
            any_handler(etype, rt, obj)

    def _index_pod(self, etype: EventType, pod: Obj) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        key = (ns, name)
        old = self._entries.pop(key, None)
        if old is not None:
            self._unlink(key, name, old)
        if etype == "DELETED":
            return
        ref = controller_ref(pod)
        entry = _PodEntry(
            ns,
            ref["uid"] if ref else "",
            (pod.get("spec") or {}).get("nodeName") or "",
            tuple((str(k), str(v)) for k, v in labels_of(pod).items()),
        )
        self._entries[key] = entry
        self.pods.setdefault(ns, {})[name] = pod
        for k, v in entry.labels:
            self.by_label.setdefault((ns, k, v), {})[name] = pod
        if entry.owner:
            self.by_owner.setdefault(entry.owner, {})[key] = pod
        else:
            self.orphans.setdefault(ns, {})[name] = pod
        if entry.node:
            self.by_node.setdefault(entry.node, {})[key] = pod

    def _unlink(self, key: Key, name: str, entry: _PodEntry) -> None:
        _discard(self.pods, entry.namespace, name)
        for k, v in entry.labels:
            _discard(self.by_label, (entry.namespace, k, v), name)
        if entry.owner:
            _discard(self.by_owner, entry.owner, key)
        else:
            _discard(self.orphans, entry.namespace, name)
        if entry.node:
            _discard(self.by_node, entry.node, key)

    def pods_in(self, namespace: str) -> list[Obj]:
        return list(self.pods.get(namespace, {}).values())

    def select(self, namespace: str, match: dict[str, Any]) -> list[Obj]:
        """Pods of a namespace whose labels include every key=value of `match` (non-empty)."""
        buckets = [self.by_label.get((namespace, str(k), str(v)), {}) for k, v in match.items()]
        if not buckets:
            return []
        smallest = min(buckets, key=len)
        return [
            p for p in smallest.values() if all(labels_of(p).get(k) == v for k, v in match.items())
        ]

    def select_labels(self, namespace: str, selector: dict[str, Any] | None) -> list[Obj]:
        """Pods matching a structured LabelSelector (an empty one matches all, as for PDBs)."""
        if not selector:
            return self.pods_in(namespace)
        exact = selector.get("matchLabels") or {}
        candidates = self.select(namespace, exact) if exact else self.pods_in(namespace)
        return [p for p in candidates if match_labels(selector, labels_of(p))]

    def pods_of(self, owner_uid: str) -> list[Obj]:
        return list(self.by_owner.get(owner_uid, {}).values())

    def pods_on(self, node: str) -> list[Obj]:
        return list(self.by_node.get(node, {}).values())


def _discard(table: dict[Any, dict[Any, Obj]], outer: Any, inner: Any) -> None:
    bucket = table.get(outer)
    if bucket is not None:
        bucket.pop(inner, None)
        if not bucket:
            del table[outer]


# -- object helpers ---------------------------------------------------------------------


def key_of(obj: Obj) -> Key:
    meta = obj["metadata"]
    return (str(meta.get("namespace", "")), str(meta["name"]))


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Obj) -> dict[str, Any]:
    """metav1.NewControllerRef: what a controller stamps on what it creates."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels_of(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def get_condition(status: Obj | None, type_: str) -> dict[str, Any] | None:
    """The live condition dict of a type, or None."""
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == type_:
            found: dict[str, Any] = cond
            return found
    return None


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    """controller.IsPodActive: not terminal and not being deleted."""
    return not is_terminal(pod) and not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: Obj) -> bool:
    cond = get_condition(pod.get("status"), "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    cond = get_condition(pod.get("status"), "Ready")
    if cond is None or cond.get("status") != "True" or not cond.get("lastTransitionTime"):
        return None
    return parse_rfc3339(str(cond["lastTransitionTime"]))


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """podutil.IsPodAvailable: ready, and for longer than minReadySeconds."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() > min_ready_seconds


def int_field(obj: Obj | None, name: str, default: int = 0) -> int:
    value = (obj or {}).get(name)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = Fraction(text[:-1] or "0")
        scaled = pct * total / 100
        return int(-(-scaled // 1)) if round_up else int(scaled // 1)
    return int(text)


def now_str(cluster: Cluster) -> str:
    return rfc3339(cluster.clock.now())


# -- resources of pods ------------------------------------------------------------------

Resources = dict[str, quantities.Quantity]


def _add(total: Resources, more: dict[str, Any] | None) -> None:
    for name, raw in (more or {}).items():
        q = quantities.try_parse(raw)
        if q is None:
            continue
        total[name] = total[name] + q if name in total else q


def _max(total: Resources, other: Resources) -> None:
    for name, q in other.items():
        if name not in total or q.value > total[name].value:
            total[name] = q


def pod_resources(pod: Obj, kind: str) -> Resources:
    """resourcehelper.PodRequests/PodLimits: sum of containers, at least any init container."""
    spec = pod.get("spec") or {}
    total: Resources = {}
    for c in spec.get("containers") or []:
        _add(total, (c.get("resources") or {}).get(kind))
    for c in spec.get("initContainers") or []:
        one: Resources = {}
        _add(one, (c.get("resources") or {}).get(kind))
        if c.get("restartPolicy") == "Always":
            for name, q in one.items():
                total[name] = total[name] + q if name in total else q
        else:
            _max(total, one)
    _add(total, spec.get("overhead"))
    return total


def iter_containers(pod_spec: Obj) -> Iterable[dict[str, Any]]:
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec.get("containers") or []
