"""Watch support: recent changes by resource type, and fan-out to open watches.

A client lists, then watches from the list's resourceVersion (kubectl does
for `get -w`, `delete` and `rollout status`; every informer does). The store
keeps no history, so the hub records recent changes per resource type, as
the API server's watch cache does, and a watch that starts from an older
resourceVersion is answered from it; one older than what is kept gets
410 Gone, and the client lists again. Changes are recorded as references to
the objects (no copies, nothing serialized), so a commit costs the
simulation almost nothing when nobody watches; replay sends each changed
object once, in its latest state.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twin.resources import ResourceType
from twin.store import EventType, Obj, Store

#: Changes kept per resource type for watches that resume from a resourceVersion.
HISTORY_PER_TYPE = 20_000

WatchCallback = Callable[[EventType, Obj], None]


@dataclass
class _Change:
    rv: int
    type: EventType
    namespace: str
    name: str
    uid: str
    object: Obj


class TooOld(Exception):
    """The requested resourceVersion is older than the kept history (410 Gone)."""


class WatchHub:
    """Subscribes once to the store; keeps history and calls per-type watch callbacks."""

    def __init__(self, store: Store, history: int = HISTORY_PER_TYPE) -> None:
        self.store = store
        self._history_len = history
        self._history: dict[str, deque[_Change]] = {}
        self._watchers: dict[str, list[WatchCallback]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._guard = threading.Lock()
        #: Changes before this resourceVersion were never seen by the hub.
        self.start_rv = store.resource_version

    def attach(self) -> None:
        with self.store.lock:
            if self._unsubscribe is None:
                self.start_rv = self.store.resource_version
                self._unsubscribe = self.store.subscribe(self._on_change)

    def detach(self) -> None:
        with self.store.lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self._watchers.clear()

    def _on_change(self, etype: EventType, rt: ResourceType, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        try:
            rv = int(meta.get("resourceVersion") or 0)
        except ValueError:
            rv = 0
        history = self._history.get(rt.key)
        if history is None:
            history = self._history[rt.key] = deque(maxlen=self._history_len)
        history.append(
            _Change(
                rv, etype, meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""), obj
            )
        )
        for callback in list(self._watchers.get(rt.key, ())):
            callback(etype, obj)

    def watch(self, rt: ResourceType, callback: WatchCallback) -> Callable[[], None]:
        """Call `callback(type, live_object)` on each change of `rt` (under the store lock)."""
        with self.store.lock:
            self._watchers.setdefault(rt.key, []).append(callback)

        def cancel() -> None:
            with self.store.lock:
                callbacks = self._watchers.get(rt.key, [])
                if callback in callbacks:
                    callbacks.remove(callback)

        return cancel

    def changes_since(self, rt: ResourceType, rv: int) -> list[tuple[EventType, Obj]]:
        """Changes of `rt` after `rv`, coalesced per object. Hold the store lock.

        Raises TooOld when changes after `rv` may have been dropped.
        """
        if rv < self.start_rv:
            raise TooOld(f"too old resource version: {rv} ({self.start_rv})")
        history = self._history.get(rt.key) or deque()
        if history and len(history) == history.maxlen and history[0].rv > rv + 1:
            raise TooOld(f"too old resource version: {rv} ({history[0].rv - 1})")
        # Keyed by uid too: an object deleted and created again under its name is two objects.
        first: dict[tuple[str, str, str], EventType] = {}
        last: dict[tuple[str, str, str], _Change] = {}
        order: list[tuple[str, str, str]] = []
        for change in history:
            if change.rv <= rv:
                continue
            key = (change.namespace, change.name, change.uid)
            if key not in first:
                first[key] = change.type
                order.append(key)
            last[key] = change
        out: list[tuple[EventType, Obj]] = []
        for key in sorted(order, key=lambda k: last[k].rv):
            change = last[key]
            if change.type == "DELETED":
                if first[key] != "ADDED":
                    out.append(("DELETED", change.object))
                continue
            current = self.store.find(rt, key[0], key[1])
            if current is None or current.get("metadata", {}).get("uid", "") != key[2]:
                continue
            out.append(("ADDED" if first[key] == "ADDED" else "MODIFIED", current))
        return out


def object_key(obj: Obj) -> tuple[str, str]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")
