"""Helpers for the control-plane tests: a cluster with nodes, and pods set up as a kubelet would.

The kubelet is another part of the twin; these tests set pod status the way
it would (phase, podIP, Ready) and keep node heartbeats fresh with a small
stand-in, so each controller is tested on its own.
"""

from __future__ import annotations

import copy
from typing import Any

from twin import controllers
from twin.cluster import Cluster
from twin.nodes import make_node
from twin.store import Obj

NS = "shop"


class Heartbeats:
    """Refreshes each node's Ready heartbeat every 10 s unless the node is in nodes_down."""

    name = "test-heartbeats"

    def __init__(self) -> None:
        self.next = 0.0

    def step(self, cluster: Cluster, dt: float) -> None:
        if cluster.elapsed < self.next:
            return
        self.next = cluster.elapsed + 10
        rt = cluster.rt("Node")
        for node in cluster.store.iter_live(rt):
            if node["metadata"]["name"] in cluster.nodes_down:
                continue
            for cond in node["status"]["conditions"]:
                if cond["type"] == "Ready":
                    cond["lastHeartbeatTime"] = cluster.now_str()
            cluster.store.commit(rt, node)


def make_cluster(
    *,
    nodes: int = 3,
    cpu: str = "4",
    memory: str = "16Gi",
    seed: int = 7,
    namespaces: tuple[str, ...] = (NS,),
    heartbeats: bool = True,
) -> tuple[Cluster, controllers.ControlPlane]:
    cluster = Cluster(seed=seed)
    plane = controllers.install(cluster)
    if heartbeats:
        cluster.controllers.append(Heartbeats())
    for i in range(1, nodes + 1):
        cluster.create(
            cluster.rt("Node"),
            make_node(f"node-{i}", cpu=cpu, memory=memory, now=cluster.now_str()),
        )
    for ns in namespaces:
        cluster.create(cluster.rt("Namespace"), {"metadata": {"name": ns}})
    return cluster, plane


def container(
    name: str = "app",
    image: str = "registry.example.com/web:1.0",
    *,
    cpu: str | None = "100m",
    memory: str | None = "64Mi",
    port: int | None = 8080,
    port_name: str | None = "http",
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image}
    requests = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    if requests:
        c["resources"] = {"requests": requests}
    if port is not None:
        p: dict[str, Any] = {"containerPort": port}
        if port_name:
            p["name"] = port_name
        c["ports"] = [p]
    return c


def deployment(
    name: str = "web",
    *,
    replicas: int = 3,
    containers: list[dict[str, Any]] | None = None,
    namespace: str = NS,
    strategy: dict[str, Any] | None = None,
    **spec: Any,
) -> Obj:
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers or [container()]},
            },
            **spec,
        },
    }
    if strategy is not None:
        obj["spec"]["strategy"] = strategy
    return obj


def service(
    name: str = "web", *, namespace: str = NS, selector: dict[str, str] | None = None, **ports: Any
) -> Obj:
    port = {"name": "http", "port": 80, "targetPort": ports.get("target_port", "http")}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"selector": selector if selector is not None else {"app": name}, "ports": [port]},
    }


def create(cluster: Cluster, obj: Obj) -> Obj:
    rt = cluster.rt(obj["kind"], obj.get("apiVersion"))
    return cluster.create(rt, copy.deepcopy(obj))


def live(cluster: Cluster, kind: str, name: str, namespace: str = NS) -> Obj:
    rt = cluster.rt(kind)
    found = cluster.store.find(rt, namespace if rt.namespaced else "", name)
    assert found is not None, f"{kind} {namespace}/{name} not found"
    return found


def update(cluster: Cluster, kind: str, name: str, change: Any, namespace: str = NS) -> Obj:
    """Read, change and replace an object as a client would (admission runs)."""
    rt = cluster.rt(kind)
    obj = cluster.store.get(rt, namespace if rt.namespaced else "", name)
    change(obj)
    return cluster.replace(rt, obj)


def pods(cluster: Cluster, namespace: str = NS, *, active_only: bool = False) -> list[Obj]:
    found = cluster.store.list(cluster.rt("Pod"), namespace, live=True)
    if active_only:
        found = [p for p in found if not p["metadata"].get("deletionTimestamp")]
    return found


_ip_counter = [0]


def run_pod(cluster: Cluster, pod: Obj, *, ready: bool = True) -> None:
    """Set a bound pod's status as a kubelet would once its containers run."""
    now = cluster.now_str()
    status = pod.setdefault("status", {})
    if not status.get("podIP"):
        _ip_counter[0] += 1
        n = _ip_counter[0]
        status["podIP"] = f"10.244.{n // 250}.{n % 250 + 2}"
        status["podIPs"] = [{"ip": status["podIP"]}]
        status["startTime"] = now
    status["phase"] = "Running"
    flag = "True" if ready else "False"
    conditions = [c for c in status.get("conditions") or [] if c["type"] == "PodScheduled"]
    for ctype in ("Initialized", "Ready", "ContainersReady"):
        old = next((c for c in status.get("conditions") or [] if c["type"] == ctype), None)
        value = "True" if ctype == "Initialized" else flag
        since = old["lastTransitionTime"] if old and old["status"] == value else now
        conditions.append(
            {"type": ctype, "status": value, "lastProbeTime": None, "lastTransitionTime": since}
        )
    status["conditions"] = conditions
    status["containerStatuses"] = [
        {
            "name": c["name"],
            "ready": ready,
            "restartCount": 0,
            "state": {"running": {"startedAt": now}},
        }
        for c in pod["spec"]["containers"]
    ]
    cluster.store.commit(cluster.rt("Pod"), pod)


def run_all(cluster: Cluster, namespace: str = NS, *, ready: bool = True) -> int:
    """run_pod for every bound, non-terminating pod not yet running; returns how many."""
    count = 0
    for pod in pods(cluster, namespace, active_only=True):
        if pod["spec"].get("nodeName") and pod.get("status", {}).get("phase") != "Running":
            run_pod(cluster, pod, ready=ready)
            count += 1
    return count


def remove_terminating(cluster: Cluster, namespace: str = NS) -> int:
    """What a kubelet does once a deleted pod's containers stopped: remove it."""
    count = 0
    rt = cluster.rt("Pod")
    for pod in pods(cluster, namespace):
        if pod["metadata"].get("deletionTimestamp"):
            cluster.store.delete(rt, namespace, pod["metadata"]["name"])
            count += 1
    return count


def settle(
    cluster: Cluster, seconds: int = 30, namespace: str = NS, *, remove: bool = True
) -> None:
    """Advance second by second, running new pods and removing deleted ones, like a fast kubelet."""
    for _ in range(seconds):
        cluster.advance(1)
        run_all(cluster, namespace)
        if remove:
            remove_terminating(cluster, namespace)


def events(cluster: Cluster, *, reason: str | None = None, name: str | None = None) -> list[Obj]:
    out = []
    for ev in cluster.store.list(cluster.rt("Event")):
        if reason is not None and ev["reason"] != reason:
            continue
        if name is not None and ev["involvedObject"].get("name") != name:
            continue
        out.append(ev)
    return sorted(out, key=lambda e: (e["firstTimestamp"], e["metadata"]["name"]))


def messages(cluster: Cluster, reason: str, name: str | None = None) -> list[str]:
    return [str(e["message"]) for e in events(cluster, reason=reason, name=name)]


def replica_sets(cluster: Cluster, namespace: str = NS) -> list[Obj]:
    return sorted(
        cluster.store.list(cluster.rt("ReplicaSet"), namespace, live=True),
        key=lambda r: int(
            r["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0")
        ),
    )
