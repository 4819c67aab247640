"""Read tools for the objects around workloads: nodes, Services and Endpoints, autoscalers,
budgets, quotas, network policies, ConfigMaps, Secrets and Gateway API HTTPRoutes.

Several root causes live here rather than in a workload: a Service whose
targetPort no pod declares, a quota that refuses new pods, a cordoned or
NotReady node, an HPA pinned at its max, an HTTPRoute sending traffic to a bad
canary. Secrets are listed by key name only; their values never leave the
cluster through these tools.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from pydantic import Field

from tools.args import (
    DEFAULT_LIST_LIMIT,
    Limit,
    Name,
    Namespace,
    Selector,
    ToolArgs,
)
from tools.errors import NotFound
from tools.kube import KINDS, Obj, cap_list, conditions, meta
from tools.quantity import parse_quantity
from tools.redact import redact
from tools.registry import Answer, Toolbox, read_tool
from tools.result import Truncation

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"


class NamespacedListArgs(ToolArgs):
    namespace: Namespace | None = None
    name: Name | None = None
    label_selector: Selector | None = None
    limit: Limit = DEFAULT_LIST_LIMIT


def _list(box: Toolbox, kind: str, args: NamespacedListArgs) -> list[Obj]:
    field_selector = f"metadata.name={args.name}" if args.name else None
    return KINDS[kind].list(
        box.kube(),
        args.namespace,
        label_selector=args.label_selector,
        field_selector=field_selector,
    )


def _query(kind: str, args: NamespacedListArgs) -> str:
    where = args.namespace or "all namespaces"
    return f"list {kind} in {where}" + (f" name={args.name}" if args.name else "")


def _answer(kind: str, rows: list[Obj], args: NamespacedListArgs) -> Answer:
    kept, cuts = cap_list(rows, args.limit, kind)
    return Answer(kept, query=_query(kind, args), truncations=cuts)


# -- nodes ----------------------------------------------------------------------


class NodesArgs(ToolArgs):
    name: Name | None = None
    label_selector: Selector | None = None
    limit: Limit = DEFAULT_LIST_LIMIT


@read_tool(NodesArgs)
def list_nodes(box: Toolbox, args: NodesArgs) -> Answer:
    """List nodes: Ready and pressure conditions, taints, cordon, allocatable, and the pods on each.

    Requested CPU and memory are summed over the node's pods and set against
    allocatable, which shows why a pod cannot be scheduled.

    Args:
        name: One node's name; omit for all.
        label_selector: Kubernetes label selector for nodes.
        limit: Most nodes to return (1-500).
    """
    conn = box.kube()
    field_selector = f"metadata.name={args.name}" if args.name else None
    nodes = KINDS["Node"].list(
        conn, None, label_selector=args.label_selector, field_selector=field_selector
    )
    pods = KINDS["Pod"].list(conn, None)
    by_node: dict[str, list[Obj]] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if node_name and phase not in ("Succeeded", "Failed"):
            by_node.setdefault(node_name, []).append(pod)
    rows = []
    for node in nodes:
        name = meta(node).get("name", "")
        status = node.get("status") or {}
        on_node = by_node.get(name, [])
        requested = {"cpu": 0.0, "memory": 0.0}
        for pod in on_node:
            for c in (pod.get("spec") or {}).get("containers") or []:
                req = (c.get("resources") or {}).get("requests") or {}
                for res in requested:
                    if res in req:
                        with contextlib.suppress(ValueError):
                            requested[res] += parse_quantity(req[res])
        alloc = status.get("allocatable") or {}
        ready = next((c for c in conditions(node) if c.get("type") == "Ready"), {})
        row: Obj = {
            "name": name,
            "ready": ready.get("status", "Unknown"),
            "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
            "taints": (node.get("spec") or {}).get("taints") or [],
            "conditions": conditions(node),
            "allocatable": alloc,
            "capacity": status.get("capacity") or {},
            "pods": len(on_node),
            "requested": {
                "cpu": f"{round(requested['cpu'] * 1000)}m",
                "memory": f"{round(requested['memory'] / 2**20)}Mi",
            },
            "labels": meta(node).get("labels") or {},
        }
        for res in ("cpu", "memory"):
            try:
                total = parse_quantity(alloc[res])
                row["requested"][f"{res}_pct"] = round(100 * requested[res] / total, 1)
            except (KeyError, ValueError, ZeroDivisionError):
                pass
        rows.append(row)
    kept, cuts = cap_list(rows, args.limit, "nodes")
    return Answer(kept, query="list nodes, and pods in all namespaces", truncations=cuts)


# -- autoscaling, budgets, quotas, policies ---------------------------------------


@read_tool(NamespacedListArgs)
def list_hpas(box: Toolbox, args: NamespacedListArgs) -> Answer:
    """List HorizontalPodAutoscalers: target, min/max, current/desired replicas, metrics.

    `at_max` is true when the HPA wants more replicas than its max allows.

    Args:
        namespace: Namespace to list; omit for all namespaces.
        name: One HPA's name.
        label_selector: Kubernetes label selector.
        limit: Most HPAs to return (1-500).
    """
    rows = []
    for hpa in _list(box, "HorizontalPodAutoscaler", args):
        spec = hpa.get("spec") or {}
        status = hpa.get("status") or {}
        target = spec.get("scaleTargetRef") or {}
        max_r = spec.get("maxReplicas")
        rows.append(
            {
                "name": meta(hpa).get("name"),
                "namespace": meta(hpa).get("namespace"),
                "target": f"{target.get('kind')}/{target.get('name')}",
                "min_replicas": spec.get("minReplicas", 1),
                "max_replicas": max_r,
                "current_replicas": status.get("currentReplicas"),
                "desired_replicas": status.get("desiredReplicas"),
                "at_max": max_r is not None and (status.get("desiredReplicas") or 0) >= max_r,
                "metrics": spec.get("metrics") or [],
                "current_metrics": status.get("currentMetrics") or [],
                "conditions": conditions(hpa),
                "last_scale_time": status.get("lastScaleTime"),
            }
        )
    return _answer("HorizontalPodAutoscaler", rows, args)


@read_tool(NamespacedListArgs)
def list_pdbs(box: Toolbox, args: NamespacedListArgs) -> Answer:
    """List PodDisruptionBudgets: selector, minAvailable/maxUnavailable, disruptions allowed.

    A pod whose PDB allows 0 disruptions must not be deleted.

    Args:
        namespace: Namespace to list; omit for all namespaces.
        name: One PDB's name.
        label_selector: Kubernetes label selector.
        limit: Most PDBs to return (1-500).
    """
    rows = []
    for pdb in _list(box, "PodDisruptionBudget", args):
        spec = pdb.get("spec") or {}
        status = pdb.get("status") or {}
        rows.append(
            {
                "name": meta(pdb).get("name"),
                "namespace": meta(pdb).get("namespace"),
                "selector": (spec.get("selector") or {}).get("matchLabels") or spec.get("selector"),
                "min_available": spec.get("minAvailable"),
                "max_unavailable": spec.get("maxUnavailable"),
                "current_healthy": status.get("currentHealthy"),
                "desired_healthy": status.get("desiredHealthy"),
                "expected_pods": status.get("expectedPods"),
                "disruptions_allowed": status.get("disruptionsAllowed"),
                "conditions": conditions(pdb),
            }
        )
    return _answer("PodDisruptionBudget", rows, args)


@read_tool(NamespacedListArgs)
def list_resource_quotas(box: Toolbox, args: NamespacedListArgs) -> Answer:
    """List ResourceQuotas with hard limits, usage, and the share used of each resource.

    A resource at 100% makes new pods fail admission ("exceeded quota"), which
    shows as FailedCreate events on the ReplicaSet.

    Args:
        namespace: Namespace to list; omit for all namespaces.
        name: One quota's name.
        label_selector: Kubernetes label selector.
        limit: Most quotas to return (1-500).
    """
    rows = []
    for quota in _list(box, "ResourceQuota", args):
        hard = (
            (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard") or {}
        )
        used = (quota.get("status") or {}).get("used") or {}
        resources = {}
        for res, limit in sorted(hard.items()):
            entry: Obj = {"hard": limit, "used": used.get(res)}
            try:
                total = parse_quantity(limit)
                entry["pct"] = round(100 * parse_quantity(used.get(res, "0")) / total, 1)
            except (ValueError, ZeroDivisionError):
                pass
            resources[res] = entry
        rows.append(
            {
                "name": meta(quota).get("name"),
                "namespace": meta(quota).get("namespace"),
                "resources": resources,
                "exhausted": sorted(r for r, e in resources.items() if e.get("pct", 0) >= 100),
            }
        )
    return _answer("ResourceQuota", rows, args)


@read_tool(NamespacedListArgs)
def list_network_policies(box: Toolbox, args: NamespacedListArgs) -> Answer:
    """List NetworkPolicies: which pods they select, policy types, and their ingress/egress rules.

    A policy that selects a pod and lists Ingress with no rule that admits a
    caller blocks that caller's traffic.

    Args:
        namespace: Namespace to list; omit for all namespaces.
        name: One policy's name.
        label_selector: Kubernetes label selector.
        limit: Most policies to return (1-500).
    """
    rows = []
    for pol in _list(box, "NetworkPolicy", args):
        spec = pol.get("spec") or {}
        types = spec.get("policyTypes") or (
            ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
        )
        rows.append(
            {
                "name": meta(pol).get("name"),
                "namespace": meta(pol).get("namespace"),
                "pod_selector": spec.get("podSelector") or {},
                "policy_types": types,
                "ingress": spec.get("ingress") or [],
                "egress": spec.get("egress") or [],
                "created": meta(pol).get("creationTimestamp"),
            }
        )
    return _answer("NetworkPolicy", rows, args)


# -- services and endpoints -------------------------------------------------------


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _declared_ports(pods: list[Obj]) -> list[Obj]:
    ports = []
    seen = set()
    for pod in pods:
        for c in (pod.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                key = (c.get("name"), p.get("containerPort"), p.get("name"))
                if key not in seen:
                    seen.add(key)
                    item = {"container": c.get("name"), "containerPort": p.get("containerPort")}
                    if p.get("name"):
                        item["name"] = p["name"]
                    ports.append(item)
    return ports


def _port_findings(svc_ports: list[Obj], pods: list[Obj], declared: list[Obj]) -> list[str]:
    findings = []
    for sp in svc_ports:
        target = sp.get("targetPort", sp.get("port"))
        if isinstance(target, str) and not target.isdigit():
            ok = any(d.get("name") == target for d in declared)
        else:
            ok = any(d.get("containerPort") == int(str(target)) for d in declared)
        if pods and not ok:
            have = ", ".join(
                f"{d.get('containerPort')}{'/' + d['name'] if d.get('name') else ''}"
                for d in declared
            )
            findings.append(
                f"port {sp.get('port')} targets {target!r}, which none of the {len(pods)} selected "
                f"pods declares (they declare: {have or 'no ports'})"
            )
    return findings


@read_tool(NamespacedListArgs)
def list_services(box: Toolbox, args: NamespacedListArgs) -> Answer:
    """List Services with their Endpoints and a check of their selector and targetPorts.

    For each Service: type, selector, ports (port -> targetPort), the ready and
    not-ready endpoint addresses (with pod names), how many pods the selector
    matches, the containerPorts those pods declare, and findings such as "selects
    no pods", "no ready endpoints", or "targetPort 8081 is declared by no selected pod".

    Args:
        namespace: Namespace to list; omit for all namespaces.
        name: One Service's name.
        label_selector: Kubernetes label selector for Services.
        limit: Most Services to return (1-500).
    """
    conn = box.kube()
    services = _list(box, "Service", args)
    endpoints = {
        (meta(e).get("namespace"), meta(e).get("name")): e
        for e in KINDS["Endpoints"].list(conn, args.namespace)
    }
    pods_by_ns: dict[str, list[Obj]] = {}
    for pod in KINDS["Pod"].list(conn, args.namespace):
        pods_by_ns.setdefault(str(meta(pod).get("namespace")), []).append(pod)
    rows = []
    for svc in services:
        ns = str(meta(svc).get("namespace"))
        name = meta(svc).get("name")
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        selected = [
            p
            for p in pods_by_ns.get(ns, [])
            if _matches(selector, meta(p).get("labels") or {})
            and not meta(p).get("deletionTimestamp")
        ]
        ep = endpoints.get((ns, name)) or {}
        ready: list[Obj] = []
        not_ready: list[Obj] = []
        ep_ports: list[Obj] = []
        for subset in ep.get("subsets") or []:
            for addr in subset.get("addresses") or []:
                ready.append(
                    {"ip": addr.get("ip"), "pod": (addr.get("targetRef") or {}).get("name")}
                )
            for addr in subset.get("notReadyAddresses") or []:
                not_ready.append(
                    {"ip": addr.get("ip"), "pod": (addr.get("targetRef") or {}).get("name")}
                )
            ep_ports.extend(subset.get("ports") or [])
        declared = _declared_ports(selected)
        ports = [
            {
                k: p.get(k)
                for k in ("name", "port", "targetPort", "protocol")
                if p.get(k) is not None
            }
            for p in spec.get("ports") or []
        ]
        findings = []
        if selector and not selected:
            findings.append(f"selector {selector} matches no pods in {ns}")
        if not ep and selector:
            findings.append("no Endpoints object exists for this Service")
        elif selector and selected and not ready:
            findings.append("no ready endpoints: every selected pod is not ready")
        findings += _port_findings(spec.get("ports") or [], selected, declared)
        rows.append(
            {
                "name": name,
                "namespace": ns,
                "type": spec.get("type", "ClusterIP"),
                "cluster_ip": spec.get("clusterIP"),
                "selector": selector,
                "ports": ports,
                "endpoints": {"ready": ready, "not_ready": not_ready, "ports": ep_ports},
                "selected_pods": len(selected),
                "declared_container_ports": declared,
                "findings": findings,
            }
        )
    return _answer("Service", rows, args)


# -- configuration ------------------------------------------------------------------


class ConfigMapsArgs(NamespacedListArgs):
    max_value_chars: Annotated[int, Field(ge=0, le=4000)] = 200


@read_tool(ConfigMapsArgs)
def list_configmaps(box: Toolbox, args: ConfigMapsArgs) -> Answer:
    """List ConfigMaps with their keys and values (each value capped and redacted).

    Args:
        namespace: Namespace to list; omit for all namespaces.
        name: One ConfigMap's name.
        label_selector: Kubernetes label selector.
        limit: Most ConfigMaps to return (1-500).
        max_value_chars: Characters kept of each value (0-4000; 0 lists keys only).
    """
    rows = []
    cut_values = 0
    for cm in _list(box, "ConfigMap", args):
        data: dict[str, str] = {}
        for key, value in sorted((cm.get("data") or {}).items()):
            text, _n = redact(f"{key}={value}")
            text = text.split("=", 1)[1] if "=" in text else text
            if len(text) > args.max_value_chars:
                cut_values += 1
                text = text[: args.max_value_chars] + f"...[{len(text) - args.max_value_chars} cut]"
            data[key] = text
        rows.append(
            {
                "name": meta(cm).get("name"),
                "namespace": meta(cm).get("namespace"),
                "keys": sorted(data) + sorted(cm.get("binaryData") or {}),
                "data": data if args.max_value_chars else {},
                "created": meta(cm).get("creationTimestamp"),
            }
        )
    answer = _answer("ConfigMap", rows, args)
    if cut_values:
        answer.truncations.append(
            Truncation(
                what="value characters",
                limit=args.max_value_chars,
                kept=cut_values,
                note=f"{cut_values} values were longer than {args.max_value_chars} characters",
            )
        )
    return answer


@read_tool(NamespacedListArgs)
def list_secrets(box: Toolbox, args: NamespacedListArgs) -> Answer:
    """List Secrets by name, type and key names. Values are never returned.

    Args:
        namespace: Namespace to list; omit for all namespaces.
        name: One Secret's name.
        label_selector: Kubernetes label selector.
        limit: Most Secrets to return (1-500).
    """
    rows = []
    for secret in _list(box, "Secret", args):
        keys = sorted(set(secret.get("data") or {}) | set(secret.get("stringData") or {}))
        rows.append(
            {
                "name": meta(secret).get("name"),
                "namespace": meta(secret).get("namespace"),
                "type": secret.get("type", "Opaque"),
                "keys": keys,
                "created": meta(secret).get("creationTimestamp"),
                "resource_version": meta(secret).get("resourceVersion"),
            }
        )
    return _answer("Secret", rows, args)


# -- Gateway API ----------------------------------------------------------------------


def route_summary(route: Obj) -> Obj:
    spec = route.get("spec") or {}
    rules = []
    for i, rule in enumerate(spec.get("rules") or []):
        backends = rule.get("backendRefs") or []
        total = sum(int(b.get("weight", 1)) for b in backends) or 1
        rules.append(
            {
                "index": i,
                "matches": rule.get("matches") or [],
                "backends": [
                    {
                        "kind": b.get("kind", "Service"),
                        "name": b.get("name"),
                        "namespace": b.get("namespace") or meta(route).get("namespace"),
                        "port": b.get("port"),
                        "weight": int(b.get("weight", 1)),
                        "share_pct": round(100 * int(b.get("weight", 1)) / total, 1),
                    }
                    for b in backends
                ],
            }
        )
    parents = []
    for p in (route.get("status") or {}).get("parents") or []:
        parents.append(
            {
                "parent": p.get("parentRef"),
                "conditions": [
                    {k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k)}
                    for c in p.get("conditions") or []
                ],
            }
        )
    return {
        "name": meta(route).get("name"),
        "namespace": meta(route).get("namespace"),
        "parent_refs": spec.get("parentRefs") or [],
        "hostnames": spec.get("hostnames") or [],
        "rules": rules,
        "status": parents,
    }


def read_routes(
    box: Toolbox, namespace: str | None, name: str | None = None, selector: str | None = None
) -> list[Obj]:
    conn = box.kube()
    kwargs = {"label_selector": selector} if selector else {}
    try:
        if name and namespace:
            return [
                conn.call(
                    conn.custom.get_namespaced_custom_object,
                    GATEWAY_GROUP,
                    GATEWAY_VERSION,
                    namespace,
                    "httproutes",
                    name,
                )
            ]
        if namespace:
            body: Any = conn.call(
                conn.custom.list_namespaced_custom_object,
                GATEWAY_GROUP,
                GATEWAY_VERSION,
                namespace,
                "httproutes",
                **kwargs,
            )
        else:
            body = conn.call(
                conn.custom.list_cluster_custom_object,
                GATEWAY_GROUP,
                GATEWAY_VERSION,
                "httproutes",
                **kwargs,
            )
    except NotFound as exc:
        if name:
            raise
        raise NotFound(
            f"Gateway API HTTPRoutes are not served here (CRDs not installed?): {exc.message}",
            request=exc.request,
        ) from exc
    return list(body.get("items") or [])


@read_tool(NamespacedListArgs)
def list_httproutes(box: Toolbox, args: NamespacedListArgs) -> Answer:
    """List Gateway API HTTPRoutes: parents, hostnames, and each rule's backends with weights.

    Each backend shows its weight and its share of the rule's traffic, e.g. a
    canary Service getting 20%.

    Args:
        namespace: Namespace to list; omit for all namespaces.
        name: One route's name (needs namespace).
        label_selector: Kubernetes label selector for routes.
        limit: Most routes to return (1-500).
    """
    routes = read_routes(box, args.namespace, args.name, args.label_selector)
    rows = [route_summary(r) for r in routes]
    kept, cuts = cap_list(rows, args.limit, "HTTPRoute")
    return Answer(
        kept,
        query=f"list {GATEWAY_GROUP}/{GATEWAY_VERSION} httproutes in "
        f"{args.namespace or 'all namespaces'}",
        truncations=cuts,
    )
