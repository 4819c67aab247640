"""Resources the API serves without storing them: metrics.k8s.io and events.k8s.io.

PodMetrics and NodeMetrics are what metrics-server reports: the working set
and CPU use of running containers, read from the hidden runtime state
(`cluster.pods`) at request time, a node's usage being the sum over its pods.
events.k8s.io/v1 Events are the core/v1 Events in another shape, converted
both ways as the API server converts between versions of one stored kind.
discovery.k8s.io/v1 EndpointSlices (read-only) are what the EndpointSlice
controller would derive from each Endpoints object, so `kubectl describe
service` finds the endpoints where kubectl 1.32 looks for them.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from twin.clock import rfc3339
from twin.quantity import format_memory
from twin.selectors import parse_label_selector

if TYPE_CHECKING:
    from twin.cluster import Cluster

Obj = dict[str, Any]

METRICS_GROUP = "metrics.k8s.io"
EVENTS_GROUP = "events.k8s.io"
#: metrics-server's default scrape window.
METRICS_WINDOW = "15s"

_DECIMAL_SUFFIXES = (("", 10**9), ("m", 10**6), ("u", 10**3), ("n", 1))


def format_cpu_usage(cores: float) -> str:
    """CPU as metrics-server reports it: nanocores in canonical form (`12m`, `2445124n`)."""
    nanos = max(0, round(cores * 1e9))
    if nanos == 0:
        return "0"
    for suffix, scale in _DECIMAL_SUFFIXES:
        if nanos % scale == 0:
            return f"{nanos // scale}{suffix}"
    return f"{nanos}n"


def format_memory_usage(size: float) -> str:
    """Working set as metrics-server reports it: whole pages, in binary units (`37564Ki`)."""
    page = 4096
    pages = max(0, round(size / page))
    return format_memory(pages * page) if pages else "0"


# -- metrics.k8s.io -------------------------------------------------------------------


def _pod_usage(cluster: Cluster) -> list[tuple[Obj, list[tuple[str, float, float]]]]:
    """(live pod, [(container, cores, bytes)]) for pods with running containers."""
    pods_rt = cluster.rt("Pod")
    out = []
    for runtime in cluster.pods.values():
        pod = cluster.store.find(pods_rt, runtime.namespace, runtime.name)
        if pod is None or pod["metadata"].get("uid") != runtime.uid:
            continue
        order = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        running = [c for c in runtime.containers.values() if c.phase == "running"]
        if not running:
            continue
        running.sort(key=lambda c: order.index(c.name) if c.name in order else len(order))
        out.append((pod, [(c.name, c.cpu, c.memory) for c in running]))
    out.sort(key=lambda item: (item[0]["metadata"]["namespace"], item[0]["metadata"]["name"]))
    return out


def pod_metrics(cluster: Cluster, namespace: str | None, label_selector: str | None) -> list[Obj]:
    """PodMetrics for running pods, optionally in one namespace and matching a selector."""
    match = parse_label_selector(label_selector)
    now = rfc3339(cluster.clock.now())
    items = []
    for pod, containers in _pod_usage(cluster):
        meta = pod["metadata"]
        if namespace and meta.get("namespace") != namespace:
            continue
        labels = meta.get("labels") or {}
        if not match(labels):
            continue
        item_meta: Obj = {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "creationTimestamp": now,
        }
        if labels:
            item_meta["labels"] = dict(labels)
        items.append(
            {
                "kind": "PodMetrics",
                "apiVersion": f"{METRICS_GROUP}/v1beta1",
                "metadata": item_meta,
                "timestamp": now,
                "window": METRICS_WINDOW,
                "containers": [
                    {
                        "name": name,
                        "usage": {"cpu": format_cpu_usage(cpu), "memory": format_memory_usage(mem)},
                    }
                    for name, cpu, mem in containers
                ],
            }
        )
    return items


def node_metrics(cluster: Cluster, label_selector: str | None) -> list[Obj]:
    """NodeMetrics for nodes whose kubelet reports: the sum over their running pods."""
    match = parse_label_selector(label_selector)
    usage: dict[str, list[float]] = {}
    for pod, containers in _pod_usage(cluster):
        node = (pod.get("spec") or {}).get("nodeName") or ""
        total = usage.setdefault(node, [0.0, 0.0])
        for _name, cpu, mem in containers:
            total[0] += cpu
            total[1] += mem
    now = rfc3339(cluster.clock.now())
    items = []
    for node in cluster.store.list(cluster.rt("Node"), live=True):
        meta = node["metadata"]
        if meta["name"] in cluster.nodes_down:
            continue
        labels = meta.get("labels") or {}
        if not match(labels):
            continue
        cpu, mem = usage.get(meta["name"], [0.0, 0.0])
        item_meta: Obj = {"name": meta["name"], "creationTimestamp": now}
        if labels:
            item_meta["labels"] = dict(labels)
        items.append(
            {
                "kind": "NodeMetrics",
                "apiVersion": f"{METRICS_GROUP}/v1beta1",
                "metadata": item_meta,
                "timestamp": now,
                "window": METRICS_WINDOW,
                "usage": {"cpu": format_cpu_usage(cpu), "memory": format_memory_usage(mem)},
            }
        )
    return items


# -- events.k8s.io/v1 <-> core/v1 ---------------------------------------------------------


def _micro(timestamp: Any, meta: Obj) -> str | None:
    """An eventTime for an event recorded without one (events.k8s.io requires it)."""
    value = timestamp or meta.get("creationTimestamp")
    if isinstance(value, str) and value.endswith("Z") and "." not in value:
        return value[:-1] + ".000000Z"
    return value if isinstance(value, str) else None


def core_to_events_v1(event: Obj) -> Obj:
    """A core/v1 Event as events.k8s.io/v1 shows it."""
    source = event.get("source") or {}
    meta = event.get("metadata") or {}
    out: Obj = {
        "kind": "Event",
        "apiVersion": f"{EVENTS_GROUP}/v1",
        "metadata": meta,
        "eventTime": event.get("eventTime") or _micro(event.get("firstTimestamp"), meta),
        "reportingController": event.get("reportingComponent") or source.get("component", ""),
        "reportingInstance": event.get("reportingInstance") or source.get("host", ""),
        "reason": event.get("reason", ""),
        "regarding": event.get("involvedObject") or {},
        "note": event.get("message", ""),
        "type": event.get("type", ""),
    }
    for core_field, field in (("action", "action"), ("related", "related")):
        if event.get(core_field):
            out[field] = event[core_field]
    if event.get("series"):
        out["series"] = event["series"]
    if source:
        out["deprecatedSource"] = source
    if event.get("firstTimestamp"):
        out["deprecatedFirstTimestamp"] = event["firstTimestamp"]
    if event.get("lastTimestamp"):
        out["deprecatedLastTimestamp"] = event["lastTimestamp"]
    if event.get("count"):
        out["deprecatedCount"] = event["count"]
    return out


def events_v1_to_core(event: Obj) -> Obj:
    """An events.k8s.io/v1 Event as the core/v1 Event that stores it."""
    out: Obj = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": event.get("metadata", {}),
        "involvedObject": event.get("regarding") or {},
        "reason": event.get("reason", ""),
        "message": event.get("note", ""),
        "type": event.get("type", ""),
        "eventTime": event.get("eventTime"),
        "reportingComponent": event.get("reportingController", ""),
        "reportingInstance": event.get("reportingInstance", ""),
        "source": event.get("deprecatedSource") or {},
    }
    for field, core_field in (
        ("action", "action"),
        ("related", "related"),
        ("series", "series"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ):
        if event.get(field) is not None:
            out[core_field] = event[field]
    return out


# -- discovery.k8s.io/v1 EndpointSlice <- core/v1 Endpoints ------------------------------

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_SLICE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def slice_name(endpoints: Obj) -> str:
    """`<service>-<5 chars>`, as the EndpointSlice controller names them (stable per object)."""
    meta = endpoints.get("metadata") or {}
    digest = hashlib.sha256(str(meta.get("uid", meta.get("name", ""))).encode()).digest()
    suffix = "".join(_SLICE_ALPHABET[b % len(_SLICE_ALPHABET)] for b in digest[:5])
    return f"{meta.get('name', '')}-{suffix}"


def endpoints_name_of_slice(name: str) -> str:
    return name.rpartition("-")[0]


def endpoints_to_slice(endpoints: Obj) -> Obj:
    """The EndpointSlice the controller would keep for an Endpoints object (IPv4, one slice)."""
    meta = endpoints.get("metadata") or {}
    service = meta.get("name", "")
    labels = dict(meta.get("labels") or {})
    labels[SERVICE_NAME_LABEL] = service
    labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
    slice_meta: Obj = {
        "name": slice_name(endpoints),
        "generateName": f"{service}-",
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
        "creationTimestamp": meta.get("creationTimestamp"),
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "name": service,
                "uid": "",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    items: list[Obj] = []
    ports: list[Obj] = []
    for subset in endpoints.get("subsets") or []:
        for ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
            for address in subset.get(key) or []:
                item: Obj = {
                    "addresses": [address.get("ip", "")],
                    "conditions": {"ready": ready, "serving": ready, "terminating": False},
                }
                if address.get("nodeName"):
                    item["nodeName"] = address["nodeName"]
                if address.get("targetRef"):
                    item["targetRef"] = address["targetRef"]
                items.append(item)
        for port in subset.get("ports") or []:
            entry = {
                "name": port.get("name", ""),
                "port": port.get("port"),
                "protocol": port.get("protocol", "TCP"),
            }
            if entry not in ports:
                ports.append(entry)
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": slice_meta,
        "addressType": "IPv4",
        "endpoints": items,
        "ports": ports,
    }
