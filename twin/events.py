"""Events as a real cluster writes them (client-go tools/record semantics).

An identical event (same source, involved object, type, reason and message)
is not written twice: the existing one gets count+1 and a new lastTimestamp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twin.clock import rfc3339, rfc3339_micro

if TYPE_CHECKING:
    from twin.cluster import Cluster

Obj = dict[str, Any]


class EventRecorder:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        # dedupe key -> (namespace, event name)
        self._seen: dict[tuple[str, ...], tuple[str, str]] = {}

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
    ) -> Obj:
        """Record an event about `involved` (any object with apiVersion, kind, metadata)."""
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
        if not ref["namespace"]:
            del ref["namespace"]
        key = (
            component,
            host,
            ref["kind"],
            namespace,
            ref["name"],
            ref["uid"],
            field_path,
            type_,
            reason,
            message,
        )
        now = cluster.clock.now()
        rt = cluster.rt("Event")
        with cluster.lock:
            existing_key = self._seen.get(key)
            if existing_key is not None:
                existing = cluster.store.find(rt, *existing_key)
                if existing is not None:
                    existing["count"] = existing.get("count", 1) + 1
                    existing["lastTimestamp"] = rfc3339(now)
                    cluster.store.commit(rt, existing)
                    return existing
            nanos = int(now.timestamp() * 1e9)
            name = f"{ref['name']}.{nanos:x}"
            while cluster.store.find(rt, namespace, name) is not None:
                nanos += 1
                name = f"{ref['name']}.{nanos:x}"
            source: dict[str, str] = {"component": component}
            if host:
                source["host"] = host
            event: Obj = {
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ref,
                "reason": reason,
                "message": message,
                "type": type_,
                "source": source,
                "firstTimestamp": rfc3339(now),
                "lastTimestamp": rfc3339(now),
                "count": 1,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": host,
            }
            created = cluster.store.create(rt, event)
            self._seen[key] = (namespace, created["metadata"]["name"])
            return created


def micro_now(cluster: Cluster) -> str:
    return rfc3339_micro(cluster.clock.now())
