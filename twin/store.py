"""The twin's object store: what etcd and the API server's registry are to a cluster.

Objects are plain JSON-shaped dicts, exactly what the API returns, keyed by
resource type, namespace and name. The store assigns uid, resourceVersion,
generation and creationTimestamp, applies garbage collection through
ownerReferences, and tells subscribers (watches, controllers) of every change.

Controllers run in-process and may change an object they got from `get` or
`list` with `live=True`; they must then call `commit` so the change gets a new
resourceVersion and reaches watchers.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from twin import errors
from twin.clock import SimClock, rfc3339
from twin.resources import Registry, ResourceType
from twin.selectors import match_labels, parse_field_selector, parse_label_selector

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Listener = Callable[[EventType, ResourceType, Obj], None]

#: The apiserver's generateName alphabet: no vowels, no confusable digits.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class Change:
    type: EventType
    resource: ResourceType
    object: Obj
    resource_version: int


class Store:
    """Thread-safe object storage; hold `store.lock` to make several calls atomic."""

    def __init__(self, clock: SimClock, seed: int = 0, registry: Registry | None = None) -> None:
        self.clock = clock
        self.registry = registry or Registry()
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self._rv = 1
        self._data: dict[str, dict[tuple[str, str], Obj]] = {}
        self._listeners: list[Listener] = []

    # -- identity -------------------------------------------------------------

    def new_uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def random_suffix(self, n: int = 5) -> str:
        return "".join(self.rng.choice(NAME_ALPHABET) for _ in range(n))

    @property
    def resource_version(self) -> int:
        return self._rv

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    # -- subscriptions --------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` on every change; returns the function that unsubscribes."""
        with self.lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, etype: EventType, rt: ResourceType, obj: Obj) -> None:
        for listener in list(self._listeners):
            listener(etype, rt, obj)

    # -- reads ----------------------------------------------------------------

    def _bucket(self, rt: ResourceType) -> dict[tuple[str, str], Obj]:
        return self._data.setdefault(rt.key, {})

    def get(self, rt: ResourceType, namespace: str, name: str, *, live: bool = False) -> Obj:
        """The object, or ApiError 404. `live=True` returns the stored dict itself."""
        with self.lock:
            obj = self._bucket(rt).get((namespace if rt.namespaced else "", name))
            if obj is None:
                raise errors.not_found(rt.plural, rt.group, name)
            return obj if live else copy.deepcopy(obj)

    def find(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        """The live object or None, for controllers."""
        with self.lock:
            return self._bucket(rt).get((namespace if rt.namespaced else "", name))

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        selector: dict[str, Any] | None = None,
        live: bool = False,
    ) -> list[Obj]:
        """Objects of a type, optionally in one namespace, sorted by namespace and name."""
        label_pred = parse_label_selector(label_selector)
        field_pred = parse_field_selector(field_selector)
        with self.lock:
            out = []
            for (ns, _name), obj in sorted(self._bucket(rt).items()):
                if namespace and rt.namespaced and ns != namespace:
                    continue
                labels = obj.get("metadata", {}).get("labels") or {}
                if not label_pred(labels) or not field_pred(obj):
                    continue
                if selector is not None and not match_labels(selector, labels):
                    continue
                out.append(obj if live else copy.deepcopy(obj))
            return out

    def iter_live(self, rt: ResourceType) -> Iterator[Obj]:
        with self.lock:
            yield from list(self._bucket(rt).values())

    def count(self, rt: ResourceType) -> int:
        with self.lock:
            return len(self._bucket(rt))

    # -- writes ---------------------------------------------------------------

    def create(self, rt: ResourceType, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Store a new object; fills metadata the way the API server does."""
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
            if rt.namespaced:
                meta["namespace"] = meta.get("namespace") or "default"
            else:
                meta.pop("namespace", None)
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise errors.invalid(
                        rt.kind,
                        rt.group,
                        "",
                        [("metadata.name", "Required value: name or generateName is required")],
                    )
                base = prefix[:58]
                for _ in range(20):
                    candidate = base + self.random_suffix()
                    if (meta.get("namespace", ""), candidate) not in self._bucket(rt):
                        break
                meta["name"] = candidate
            key = (meta.get("namespace", ""), meta["name"])
            if key in self._bucket(rt):
                raise errors.already_exists(rt.plural, rt.group, meta["name"])
            meta["uid"] = self.new_uid()
            meta["creationTimestamp"] = meta.get("creationTimestamp") or rfc3339(self.clock.now())
            if "spec" in obj and rt.group in ("apps", "autoscaling", "policy", "batch"):
                meta["generation"] = 1
            meta.pop("deletionTimestamp", None)
            meta.pop("resourceVersion", None)
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return obj
            meta["resourceVersion"] = str(self._next_rv())
            self._bucket(rt)[key] = obj
            self._notify("ADDED", rt, obj)
            return copy.deepcopy(obj)

    def replace(
        self, rt: ResourceType, obj: Obj, *, dry_run: bool = False, check_version: bool = True
    ) -> Obj:
        """Replace an object (PUT). A stale resourceVersion is a 409 Conflict."""
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            ns = meta.get("namespace", "") if rt.namespaced else ""
            current = self._bucket(rt).get((ns, meta.get("name", "")))
            if current is None:
                raise errors.not_found(rt.plural, rt.group, meta.get("name", ""))
            cur_meta = current["metadata"]
            sent_rv = meta.get("resourceVersion")
            if check_version and sent_rv and sent_rv != cur_meta["resourceVersion"]:
                raise errors.conflict(rt.plural, rt.group, meta["name"])
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
            for immutable in ("uid", "creationTimestamp", "namespace", "name"):
                if immutable in cur_meta:
                    meta[immutable] = cur_meta[immutable]
            if "deletionTimestamp" in cur_meta:
                meta["deletionTimestamp"] = cur_meta["deletionTimestamp"]
            if "generation" in cur_meta:
                changed = obj.get("spec") != current.get("spec")
                meta["generation"] = cur_meta["generation"] + (1 if changed else 0)
            if dry_run:
                meta["resourceVersion"] = cur_meta["resourceVersion"]
                return obj
            meta["resourceVersion"] = str(self._next_rv())
            self._bucket(rt)[(ns, meta["name"])] = obj
            self._notify("MODIFIED", rt, obj)
            return copy.deepcopy(obj)

    def commit(self, rt: ResourceType, obj: Obj) -> None:
        """Publish an in-place change a controller made to a live object."""
        with self.lock:
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._notify("MODIFIED", rt, obj)

    def delete(self, rt: ResourceType, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        """Remove an object now, and its dependents (background propagation)."""
        with self.lock:
            key = (namespace if rt.namespaced else "", name)
            obj = self._bucket(rt).get(key)
            if obj is None:
                raise errors.not_found(rt.plural, rt.group, name)
            if dry_run:
                return copy.deepcopy(obj)
            del self._bucket(rt)[key]
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._notify("DELETED", rt, obj)
            self._collect_garbage(obj["metadata"]["uid"])
            return copy.deepcopy(obj)

    def _collect_garbage(self, owner_uid: str) -> None:
        for rt in self.registry.all():
            for obj in list(self._bucket(rt).values()):
                refs = obj.get("metadata", {}).get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs):
                    meta = obj["metadata"]
                    if rt.kind == "Pod" and not meta.get("deletionTimestamp"):
                        # Pods terminate gracefully: the kubelet removes them.
                        meta["deletionTimestamp"] = rfc3339(self.clock.now())
                        self.commit(rt, obj)
                    elif rt.kind != "Pod":
                        self.delete(rt, meta.get("namespace", ""), meta["name"])

    # -- helpers for controllers ----------------------------------------------

    def rt(self, kind: str, api_version: str | None = None) -> ResourceType:
        """The resource type for a kind (core and apps first), or KeyError."""
        found = (
            self.registry.by_api_version_kind(api_version, kind)
            if api_version
            else self.registry.by_kind(kind)
        )
        if found is None:
            raise KeyError(f"unknown kind {kind!r}")
        return found
