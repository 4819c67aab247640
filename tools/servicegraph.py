"""The service graph: which workload calls which Service, and which workload serves it.

Root-cause localisation walks this graph: a component is a candidate when it
is anomalous and its own dependencies do not explain it. Edges come from
three places, and each edge says which:
- `selector`: a Service selects a workload's pods (Service -> workload);
- `env`: a container's `*_ADDR`, `*_SERVICE_ADDR`, `*_HOST` or `*_URL` env
  var names a Service by host (and port) (workload -> Service), the way
  Online Boutique and most Helm charts wire their dependencies;
- `trace`: Jaeger's dependencies saw one service call another.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field

from tools.args import Namespace, ToolArgs
from tools.kube import KINDS, Obj, meta
from tools.redact import redact
from tools.registry import Answer, Toolbox, read_tool
from tools.signals import trace_edges_or_none

_ENV_NAME = re.compile(r"(_ADDR|_ADDRESS|_HOST|_URL|_URI|_ENDPOINT|_SERVICE)$")
_WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def parse_host_port(value: str) -> tuple[str, int | None] | None:
    """Host and port from `host:port`, `host`, or a URL (`redis://host:6379/0`)."""
    value = value.strip()
    if not value or " " in value:
        return None
    if "://" in value:
        parts = urlsplit(value)
        if not parts.hostname:
            return None
        try:
            return parts.hostname, parts.port
        except ValueError:
            return parts.hostname, None
    host, _, port = value.partition(":")
    host = host.split("/", 1)[0]
    if not host:
        return None
    if port:
        digits = port.split("/", 1)[0]
        return host, int(digits) if digits.isdigit() else None
    return host, None


def resolve_service(
    host: str, namespace: str, services: dict[tuple[str, str], Obj]
) -> tuple[str, str] | None:
    """(namespace, name) of the Service a DNS name refers to: name, name.ns, name.ns.svc[...]."""
    labels = host.lower().rstrip(".").split(".")
    name = labels[0]
    ns = labels[1] if len(labels) > 1 else namespace
    if len(labels) > 2 and labels[2] != "svc":
        return None
    if (ns, name) in services:
        return ns, name
    return None


def _node(kind: str, ns: str, name: str) -> str:
    return f"{kind}/{ns}/{name}"


def build_graph(
    workloads: list[Obj],
    services: list[Obj],
    trace_edges: list[tuple[str, str, int]] | None = None,
) -> dict[str, Any]:
    """Nodes (workloads and Services) and edges with their sources, from raw objects."""
    svc_index = {(str(meta(s).get("namespace")), str(meta(s).get("name"))): s for s in services}
    nodes: dict[str, Obj] = {}
    edges: dict[tuple[str, str], Obj] = {}

    def add_edge(src: str, dst: str, source: str, **extra: Any) -> None:
        edge = edges.setdefault((src, dst), {"from": src, "to": dst, "sources": []})
        if source not in edge["sources"]:
            edge["sources"].append(source)
        for k, v in extra.items():
            if k == "env":
                edge.setdefault("env", []).append(v)
            else:
                edge[k] = v

    for (ns, name), svc in svc_index.items():
        spec = svc.get("spec") or {}
        nodes[_node("Service", ns, name)] = {
            "id": _node("Service", ns, name),
            "kind": "Service",
            "namespace": ns,
            "name": name,
            "ports": [p.get("port") for p in spec.get("ports") or []],
        }
    by_name: dict[str, str] = {}
    for wl in workloads:
        kind = str(wl.get("kind"))
        ns = str(meta(wl).get("namespace"))
        name = str(meta(wl).get("name"))
        wid = _node(kind, ns, name)
        nodes[wid] = {"id": wid, "kind": kind, "namespace": ns, "name": name}
        by_name.setdefault(name, wid)
        template = (wl.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        for (sns, sname), svc in svc_index.items():
            selector = (svc.get("spec") or {}).get("selector") or {}
            if sns == ns and selector and all(labels.get(k) == v for k, v in selector.items()):
                add_edge(_node("Service", sns, sname), wid, "selector")
                by_name.setdefault(sname, wid)
        pod_spec = template.get("spec") or {}
        for c in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
            for env in c.get("env") or []:
                env_name = str(env.get("name", ""))
                if not _ENV_NAME.search(env_name) or "value" not in env:
                    continue
                parsed = parse_host_port(str(env.get("value", "")))
                if parsed is None:
                    continue
                target = resolve_service(parsed[0], ns, svc_index)
                if target is None:
                    continue
                add_edge(
                    wid,
                    _node("Service", *target),
                    "env",
                    env=redact(f"{c.get('name')}:{env_name}={env.get('value')}")[0],
                )
    service_ids = {name: _node("Service", ns, name) for (ns, name) in svc_index}
    for parent, child, count in trace_edges or []:
        # Istio names services "name.namespace"; plain tracers use the bare name.
        parent_name, child_name = parent.split(".", 1)[0], child.split(".", 1)[0]
        src = by_name.get(parent_name)
        dst = service_ids.get(child_name) or by_name.get(child_name)
        if src and dst and src != dst:
            add_edge(src, dst, "trace", trace_calls=count)
    return {"nodes": sorted(nodes.values(), key=lambda n: n["id"]), "edges": list(edges.values())}


class ServiceGraphArgs(ToolArgs):
    namespace: Namespace | None = None
    trace_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60


@read_tool(ServiceGraphArgs)
def service_graph(box: Toolbox, args: ServiceGraphArgs) -> Answer:
    """The service graph: workloads and Services, and who calls whom.

    Edges: Service -> workload when the Service selects the workload's pods
    ("selector"); workload -> Service when a container env var such as
    REDIS_ADDR=redis-cart:6379 names it ("env"); caller -> callee seen in traces
    ("trace", with call counts). Follow edges from an alerting Service toward
    its dependencies to find the most upstream failing component.

    Args:
        namespace: Namespace to map; omit for all namespaces.
        trace_minutes: How far back to read trace dependencies (1-1440).
    """
    conn = box.kube()
    workloads: list[Obj] = []
    for kind in _WORKLOAD_KINDS:
        for obj in KINDS[kind].list(conn, args.namespace):
            obj.setdefault("kind", kind)
            workloads.append(obj)
    services = KINDS["Service"].list(conn, args.namespace)
    trace_edges, trace_problem = trace_edges_or_none(box, args.trace_minutes)
    graph = build_graph(workloads, services, trace_edges)
    if trace_problem:
        graph["trace_edges_missing"] = trace_problem
    return Answer(
        graph,
        query=f"list workloads and Services in {args.namespace or 'all namespaces'}; "
        "GET /api/dependencies",
        empty=not graph["nodes"],
    )
