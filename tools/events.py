"""Events for an object (and what it owns) or a namespace: newest first, deduplicated."""

from __future__ import annotations

from typing import Literal

from tools.args import DEFAULT_LIST_LIMIT, Limit, Name, Namespace, ToolArgs
from tools.kube import KINDS, Obj, cap_list, meta
from tools.redact import redact
from tools.registry import Answer, Toolbox, read_tool

InvolvedKind = Literal[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Node",
    "Service",
    "Endpoints",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "ResourceQuota",
    "ConfigMap",
    "Namespace",
    "HTTPRoute",
]
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


class EventsArgs(ToolArgs):
    namespace: Namespace | None = None
    kind: InvolvedKind | None = None
    name: Name | None = None
    type: Literal["Normal", "Warning"] | None = None
    include_related: bool = True
    limit: Limit = DEFAULT_LIST_LIMIT


def _times(ev: Obj) -> tuple[str, str, int]:
    series = ev.get("series") or {}
    first = (
        ev.get("firstTimestamp") or ev.get("eventTime") or meta(ev).get("creationTimestamp") or ""
    )
    last = series.get("lastObservedTime") or ev.get("lastTimestamp") or ev.get("eventTime") or first
    count = int(series.get("count") or ev.get("count") or 1)
    return str(first), str(last), count


def _related_names(box: Toolbox, namespace: str, kind: str, name: str) -> set[tuple[str, str]]:
    """(kind, name) of the object and, for a workload, its ReplicaSets and pods."""
    names = {(kind, name)}
    if kind not in _WORKLOADS:
        return names
    conn = box.kube()
    obj = KINDS[kind].read(conn, namespace, name)
    uid = meta(obj).get("uid")
    owned_rs = [
        rs
        for rs in KINDS["ReplicaSet"].list(conn, namespace)
        if any(o.get("uid") == uid for o in meta(rs).get("ownerReferences") or [])
    ]
    owner_uids = {uid} | {meta(rs).get("uid") for rs in owned_rs}
    names |= {("ReplicaSet", str(meta(rs).get("name"))) for rs in owned_rs}
    for pod in KINDS["Pod"].list(conn, namespace):
        if any(o.get("uid") in owner_uids for o in meta(pod).get("ownerReferences") or []):
            names.add(("Pod", str(meta(pod).get("name"))))
    return names


@read_tool(EventsArgs)
def list_events(box: Toolbox, args: EventsArgs) -> Answer:
    """List events, newest first, with repeats merged (count, first and last seen).

    Give kind and name for one object's events; for a workload, the events of
    its ReplicaSets and pods are included (include_related). Warning events
    carry the reasons to look for: BackOff, Unhealthy, FailedScheduling,
    FailedCreate, Failed (image pull), Killing, NodeNotReady, Evicted.

    Args:
        namespace: Namespace to read; omit for all namespaces (then kind/name are not used).
        kind: Kind of the involved object, e.g. Pod or Deployment.
        name: Name of the involved object.
        type: Only Normal or only Warning events.
        include_related: For a workload, also its ReplicaSets' and pods' events.
        limit: Most events to return after merging (1-500).
    """
    conn = box.kube()
    selector_parts = []
    if args.type:
        selector_parts.append(f"type={args.type}")
    wanted: set[tuple[str, str]] | None = None
    if args.namespace and args.name:
        if args.kind and args.include_related:
            wanted = _related_names(box, args.namespace, args.kind, args.name)
        else:
            selector_parts.append(f"involvedObject.name={args.name}")
            if args.kind:
                selector_parts.append(f"involvedObject.kind={args.kind}")
    field_selector = ",".join(selector_parts) or None
    events = KINDS["Event"].list(conn, args.namespace, field_selector=field_selector)
    merged: dict[tuple[str, ...], Obj] = {}
    for ev in events:
        inv = ev.get("involvedObject") or {}
        if wanted is not None and (inv.get("kind"), inv.get("name")) not in wanted:
            continue
        if args.kind and not args.include_related and inv.get("kind") != args.kind:
            continue
        first, last, count = _times(ev)
        message = redact(str(ev.get("message") or ev.get("note") or ""))[0]
        source = (ev.get("source") or {}).get("component") or ev.get("reportingController") or ""
        key = (
            str(inv.get("kind")),
            str(inv.get("namespace") or meta(ev).get("namespace")),
            str(inv.get("name")),
            str(ev.get("type")),
            str(ev.get("reason")),
            message,
        )
        item = merged.get(key)
        if item is None:
            merged[key] = {
                "type": ev.get("type"),
                "reason": ev.get("reason"),
                "object": f"{inv.get('kind')}/{inv.get('name')}",
                "namespace": inv.get("namespace") or meta(ev).get("namespace"),
                "message": message,
                "count": count,
                "first_seen": first,
                "last_seen": last,
                "source": source,
            }
            if inv.get("fieldPath"):
                merged[key]["field_path"] = inv["fieldPath"]
        else:
            item["count"] += count
            item["first_seen"] = min(item["first_seen"], first)
            item["last_seen"] = max(item["last_seen"], last)
    ordered = sorted(merged.values(), key=lambda e: (e["last_seen"], e["first_seen"]), reverse=True)
    kept, cuts = cap_list(ordered, args.limit, "events")
    query = f"list events in {args.namespace or 'all namespaces'}" + (
        f" fieldSelector={field_selector!r}" if field_selector else ""
    )
    return Answer(kept, query=query, truncations=cuts)
