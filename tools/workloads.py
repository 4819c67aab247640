"""Read tools for workloads and pods: what `kubectl get` and `kubectl describe` show."""

from __future__ import annotations

from typing import Literal

from tools.args import DEFAULT_LIST_LIMIT, Limit, Name, Namespace, Selector, ToolArgs
from tools.kube import (
    KINDS,
    Obj,
    cap_list,
    conditions,
    container_spec,
    container_state,
    controller_of,
    images_of,
    meta,
    owner_chain,
    pod_summary,
    replica_set_index,
)
from tools.registry import Answer, Toolbox, read_tool

WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]
REVISION = "deployment.kubernetes.io/revision"


class ListWorkloadsArgs(ToolArgs):
    kind: WorkloadKind | None = None
    namespace: Namespace | None = None
    label_selector: Selector | None = None
    field_selector: Selector | None = None
    limit: Limit = DEFAULT_LIST_LIMIT


class WorkloadArgs(ToolArgs):
    kind: WorkloadKind
    namespace: Namespace
    name: Name


class ListPodsArgs(ToolArgs):
    namespace: Namespace | None = None
    label_selector: Selector | None = None
    field_selector: Selector | None = None
    only_unhealthy: bool = False
    limit: Limit = DEFAULT_LIST_LIMIT


class PodArgs(ToolArgs):
    namespace: Namespace
    name: Name


def workload_summary(obj: Obj) -> Obj:
    kind = obj.get("kind") or ""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    m = meta(obj)
    out: Obj = {
        "kind": kind,
        "name": m.get("name"),
        "namespace": m.get("namespace"),
        "images": images_of((spec.get("template") or {}).get("spec") or {}),
        "selector": (spec.get("selector") or {}).get("matchLabels") or spec.get("selector"),
        "created": m.get("creationTimestamp"),
    }
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        out["replicas"] = {
            "desired": spec.get("replicas", 1),
            "current": status.get("replicas", 0),
            "ready": status.get("readyReplicas", 0),
            "available": status.get("availableReplicas", 0),
        }
        if kind == "Deployment":
            out["replicas"]["updated"] = status.get("updatedReplicas", 0)
            out["replicas"]["unavailable"] = status.get("unavailableReplicas", 0)
            out["paused"] = bool(spec.get("paused"))
            out["strategy"] = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        if kind == "StatefulSet":
            out["current_revision"] = status.get("currentRevision")
            out["update_revision"] = status.get("updateRevision")
    elif kind == "DaemonSet":
        out["pods"] = {
            "desired": status.get("desiredNumberScheduled", 0),
            "current": status.get("currentNumberScheduled", 0),
            "ready": status.get("numberReady", 0),
            "updated": status.get("updatedNumberScheduled", 0),
            "unavailable": status.get("numberUnavailable", 0),
        }
    if m.get("annotations", {}).get(REVISION):
        out["revision"] = int(m["annotations"][REVISION])
    observed = status.get("observedGeneration")
    if observed is not None and m.get("generation") and observed < m["generation"]:
        out["rollout"] = "the controller has not yet observed the latest spec"
    owner = controller_of(obj)
    if owner:
        out["owner"] = f"{owner.get('kind')}/{owner.get('name')}"
    conds = conditions(obj)
    if conds:
        out["conditions"] = conds
    return {k: v for k, v in out.items() if v is not None}


@read_tool(ListWorkloadsArgs)
def list_workloads(box: Toolbox, args: ListWorkloadsArgs) -> Answer:
    """List Deployments, StatefulSets, DaemonSets and ReplicaSets with their replica counts.

    Shows desired/ready/available/updated replicas, images, revision and
    conditions (Available, Progressing with ProgressDeadlineExceeded, ReplicaFailure).

    Args:
        kind: Deployment, StatefulSet, DaemonSet or ReplicaSet; omit for the first three.
        namespace: Namespace to list; omit for all namespaces.
        label_selector: Kubernetes label selector, e.g. "app=frontend,tier!=db".
        field_selector: Kubernetes field selector, e.g. "metadata.name=frontend".
        limit: Most workloads to return (1-500).
    """
    conn = box.kube()
    kinds = [args.kind] if args.kind else ["Deployment", "StatefulSet", "DaemonSet"]
    items: list[Obj] = []
    for kind in kinds:
        for obj in KINDS[kind].list(
            conn,
            args.namespace,
            label_selector=args.label_selector,
            field_selector=args.field_selector,
        ):
            obj.setdefault("kind", kind)
            items.append(workload_summary(obj))
    kept, cuts = cap_list(items, args.limit, "workloads")
    return Answer(
        kept,
        query=f"list {', '.join(kinds)} in {args.namespace or 'all namespaces'}",
        truncations=cuts,
    )


@read_tool(WorkloadArgs)
def describe_workload(box: Toolbox, args: WorkloadArgs) -> Answer:
    """Describe one workload: status, conditions, pod template, pods, a Deployment's ReplicaSets.

    The pod template shows each container's image, ports, requests/limits,
    probes and env (secret-looking values redacted, references named).

    Args:
        kind: Deployment, StatefulSet, DaemonSet or ReplicaSet.
        namespace: The workload's namespace.
        name: The workload's name.
    """
    conn = box.kube()
    obj = KINDS[args.kind].read(conn, args.namespace, args.name)
    obj.setdefault("kind", args.kind)
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    out = workload_summary(obj)
    out["owner_chain"] = owner_chain(conn, obj)
    out["template"] = {
        "labels": (template.get("metadata") or {}).get("labels") or {},
        "annotations": (template.get("metadata") or {}).get("annotations") or {},
        "containers": [
            container_spec(c) for c in (template.get("spec") or {}).get("containers") or []
        ],
        "init_containers": [
            container_spec(c) for c in (template.get("spec") or {}).get("initContainers") or []
        ],
        "node_selector": (template.get("spec") or {}).get("nodeSelector"),
        "tolerations": (template.get("spec") or {}).get("tolerations"),
    }
    out["template"] = {k: v for k, v in out["template"].items() if v not in (None, [], {})}
    selector = spec.get("selector") or {}
    match = selector.get("matchLabels") or {}
    label_selector = ",".join(f"{k}={v}" for k, v in sorted(match.items())) or None
    rs_index = replica_set_index(conn, args.namespace)
    pods = KINDS["Pod"].list(conn, args.namespace, label_selector=label_selector)
    out["pods"] = [pod_summary(p, rs_index) for p in pods][:50]
    if args.kind == "Deployment":
        uid = meta(obj).get("uid")
        owned = [
            rs
            for rs in rs_index.values()
            if any(o.get("uid") == uid for o in meta(rs).get("ownerReferences") or [])
        ]
        owned.sort(key=lambda rs: int(meta(rs).get("annotations", {}).get(REVISION, "0")))
        out["replica_sets"] = [
            {
                "name": meta(rs).get("name"),
                "revision": int(meta(rs).get("annotations", {}).get(REVISION, "0")),
                "replicas": (rs.get("spec") or {}).get("replicas", 0),
                "ready": (rs.get("status") or {}).get("readyReplicas", 0),
                "images": images_of(
                    ((rs.get("spec") or {}).get("template") or {}).get("spec") or {}
                ),
                "created": meta(rs).get("creationTimestamp"),
            }
            for rs in owned
        ]
    return Answer(out, query=f"read {args.kind} {args.namespace}/{args.name}")


def _unhealthy(summary: Obj) -> bool:
    return (
        summary.get("status") not in ("Running", "Completed", "Succeeded")
        or summary.get("restarts", 0) > 0
        or summary.get("ready", "0/0").split("/")[0] != summary.get("ready", "0/0").split("/")[1]
    )


@read_tool(ListPodsArgs)
def list_pods(box: Toolbox, args: ListPodsArgs) -> Answer:
    """List pods with status as kubectl shows it, readiness, restarts, node and owning workload.

    Each container shows its state, waiting reason and message (CrashLoopBackOff,
    ImagePullBackOff, CreateContainerConfigError) and its last termination
    (reason such as OOMKilled or Error, with exit code and time).

    Args:
        namespace: Namespace to list; omit for all namespaces.
        label_selector: Kubernetes label selector, e.g. "app=cartservice".
        field_selector: Kubernetes field selector, e.g. "status.phase=Pending" or
            "spec.nodeName=node-1".
        only_unhealthy: Only pods that are not Running and ready, or that restarted.
        limit: Most pods to return (1-500).
    """
    conn = box.kube()
    pods = KINDS["Pod"].list(
        conn, args.namespace, label_selector=args.label_selector, field_selector=args.field_selector
    )
    rs_index = replica_set_index(conn, args.namespace)
    summaries = [pod_summary(p, rs_index) for p in pods]
    if args.only_unhealthy:
        summaries = [s for s in summaries if _unhealthy(s)]
    kept, cuts = cap_list(summaries, args.limit, "pods")
    return Answer(
        kept,
        query=f"list pods in {args.namespace or 'all namespaces'}"
        + (f" labelSelector={args.label_selector!r}" if args.label_selector else "")
        + (f" fieldSelector={args.field_selector!r}" if args.field_selector else ""),
        truncations=cuts,
    )


@read_tool(PodArgs)
def describe_pod(box: Toolbox, args: PodArgs) -> Answer:
    """Describe one pod: status, conditions, every container's state and spec, owner chain and node.

    Containers show state, waiting reason/message, restarts, last termination
    (reason, exit code, times), image, ports, requests/limits, probes and env.

    Args:
        namespace: The pod's namespace.
        name: The pod's name.
    """
    conn = box.kube()
    pod = KINDS["Pod"].read(conn, args.namespace, args.name)
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    rs_index = replica_set_index(conn, args.namespace)
    out = pod_summary(pod, rs_index)
    out["owner_chain"] = owner_chain(conn, pod)
    out["conditions"] = conditions(pod)
    out["labels"] = meta(pod).get("labels") or {}
    out["qos_class"] = status.get("qosClass")
    out["start_time"] = status.get("startTime")
    out["host_ip"] = status.get("hostIP")
    states = {cs.get("name"): container_state(cs) for cs in status.get("containerStatuses") or []}
    out["containers"] = [
        {**container_spec(c), **states.get(c.get("name"), {"state": "unknown"})}
        for c in spec.get("containers") or []
    ]
    init_states = {
        cs.get("name"): container_state(cs) for cs in status.get("initContainerStatuses") or []
    }
    if spec.get("initContainers"):
        out["init_containers"] = [
            {**container_spec(c), **init_states.get(c.get("name"), {})}
            for c in spec["initContainers"]
        ]
    out["node_selector"] = spec.get("nodeSelector")
    out["tolerations"] = spec.get("tolerations")
    out["service_account"] = spec.get("serviceAccountName")
    return Answer(
        {k: v for k, v in out.items() if v is not None},
        query=f"read pod {args.namespace}/{args.name}",
    )
