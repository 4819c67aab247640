"""Resource usage from metrics.k8s.io (what `kubectl top` shows), set against requests and limits.

A container near its memory limit is about to be OOMKilled; one far over its
CPU request is being throttled or starving its neighbours. The raw usage
numbers mean little without the requests and limits beside them.
"""

from __future__ import annotations

from typing import Any

from tools.args import DEFAULT_LIST_LIMIT, Limit, Namespace, Selector, ToolArgs
from tools.errors import NotFound
from tools.kube import KINDS, Obj, cap_list, meta
from tools.quantity import format_bytes, format_cpu, parse_quantity
from tools.registry import Answer, Toolbox, read_tool

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"
_NO_METRICS = "the metrics.k8s.io API is not served here (is metrics-server installed?)"


def _q(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except ValueError:
        return None


def _pct(used: float, of: float | None) -> float | None:
    return round(100.0 * used / of, 1) if of else None


class TopPodsArgs(ToolArgs):
    namespace: Namespace
    label_selector: Selector | None = None
    limit: Limit = DEFAULT_LIST_LIMIT


class TopNodesArgs(ToolArgs):
    label_selector: Selector | None = None
    limit: Limit = DEFAULT_LIST_LIMIT


def _metrics(box: Toolbox, plural: str, namespace: str | None, selector: str | None) -> list[Obj]:
    conn = box.kube()
    kwargs = {"label_selector": selector} if selector else {}
    try:
        if namespace:
            body = conn.call(
                conn.custom.list_namespaced_custom_object,
                METRICS_GROUP,
                METRICS_VERSION,
                namespace,
                plural,
                **kwargs,
            )
        else:
            body = conn.call(
                conn.custom.list_cluster_custom_object,
                METRICS_GROUP,
                METRICS_VERSION,
                plural,
                **kwargs,
            )
    except NotFound as exc:
        raise NotFound(f"{_NO_METRICS}: {exc.message}", request=exc.request) from exc
    return list(body.get("items") or [])


@read_tool(TopPodsArgs)
def top_pods(box: Toolbox, args: TopPodsArgs) -> Answer:
    """Current CPU and memory of each container (metrics.k8s.io), against its requests and limits.

    Sorted by memory use as a share of the limit, highest first: a container
    near 100% of its memory limit is about to be OOMKilled.

    Args:
        namespace: Namespace of the pods.
        label_selector: Kubernetes label selector, e.g. "app=cartservice".
        limit: Most containers to return (1-500).
    """
    conn = box.kube()
    usage = _metrics(box, "pods", args.namespace, args.label_selector)
    pods = {
        meta(p).get("name"): p
        for p in KINDS["Pod"].list(conn, args.namespace, label_selector=args.label_selector)
    }
    rows: list[Obj] = []
    for pm in usage:
        pod = pods.get(meta(pm).get("name")) or {}
        specs = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
        for c in pm.get("containers") or []:
            cpu = _q((c.get("usage") or {}).get("cpu")) or 0.0
            mem = _q((c.get("usage") or {}).get("memory")) or 0.0
            res = (specs.get(c.get("name")) or {}).get("resources") or {}
            req = res.get("requests") or {}
            lim = res.get("limits") or {}
            row: Obj = {
                "pod": meta(pm).get("name"),
                "container": c.get("name"),
                "node": (pod.get("spec") or {}).get("nodeName"),
                "cpu": format_cpu(cpu),
                "cpu_cores": round(cpu, 4),
                "memory": format_bytes(mem),
                "memory_bytes": int(mem),
                "cpu_request": req.get("cpu"),
                "cpu_limit": lim.get("cpu"),
                "memory_request": req.get("memory"),
                "memory_limit": lim.get("memory"),
                "cpu_pct_of_request": _pct(cpu, _q(req.get("cpu"))),
                "cpu_pct_of_limit": _pct(cpu, _q(lim.get("cpu"))),
                "memory_pct_of_request": _pct(mem, _q(req.get("memory"))),
                "memory_pct_of_limit": _pct(mem, _q(lim.get("memory"))),
                "window": pm.get("window"),
                "timestamp": pm.get("timestamp"),
            }
            rows.append({k: v for k, v in row.items() if v is not None})
    rows.sort(key=lambda r: (r.get("memory_pct_of_limit") or 0.0, r["memory_bytes"]), reverse=True)
    kept, cuts = cap_list(rows, args.limit, "containers")
    return Answer(
        kept,
        query=f"GET /apis/metrics.k8s.io/v1beta1/namespaces/{args.namespace}/pods",
        truncations=cuts,
    )


@read_tool(TopNodesArgs)
def top_nodes(box: Toolbox, args: TopNodesArgs) -> Answer:
    """Current CPU and memory of each node (metrics.k8s.io), as a share of allocatable.

    Args:
        label_selector: Kubernetes label selector for nodes.
        limit: Most nodes to return (1-500).
    """
    conn = box.kube()
    usage = _metrics(box, "nodes", None, args.label_selector)
    nodes = {
        meta(n).get("name"): n
        for n in KINDS["Node"].list(conn, None, label_selector=args.label_selector)
    }
    rows: list[Obj] = []
    for nm in usage:
        node = nodes.get(meta(nm).get("name")) or {}
        alloc = (node.get("status") or {}).get("allocatable") or {}
        cpu = _q((nm.get("usage") or {}).get("cpu")) or 0.0
        mem = _q((nm.get("usage") or {}).get("memory")) or 0.0
        row: Obj = {
            "node": meta(nm).get("name"),
            "cpu": format_cpu(cpu),
            "cpu_pct": _pct(cpu, _q(alloc.get("cpu"))),
            "memory": format_bytes(mem),
            "memory_bytes": int(mem),
            "memory_pct": _pct(mem, _q(alloc.get("memory"))),
            "timestamp": nm.get("timestamp"),
        }
        rows.append({k: v for k, v in row.items() if v is not None})
    rows.sort(key=lambda r: r.get("memory_pct") or 0.0, reverse=True)
    kept, cuts = cap_list(rows, args.limit, "nodes")
    return Answer(kept, query="GET /apis/metrics.k8s.io/v1beta1/nodes", truncations=cuts)
