"""Test support for the traffic model: a running shop without the control plane.

The controllers and kubelet are other parts of the twin; these helpers put a
cluster in the state they would leave it in (pods Running and Ready on
nodes, Endpoints of the ready pods, Services with cluster IPs), so the
traffic model and telemetry can be tested on their own. Tests that run the
real controllers and kubelet live beside these and skip when those modules
are absent.
"""

from __future__ import annotations

import copy
import zlib
from typing import Any

from twin.apps import shop
from twin.cluster import Cluster
from twin.nodes import make_node
from twin.runtime import ContainerRuntime, PodRuntime
from twin.selectors import match_labels
from twin.traffic import Traffic, install

Obj = dict[str, Any]


def service_ip(namespace: str, name: str) -> str:
    h = zlib.crc32(f"{namespace}/{name}".encode())
    return f"10.96.{(h >> 8) & 0x7F}.{(h & 0xFF) or 1}"


def create(cluster: Cluster, obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    rt = cluster.rt(obj["kind"], obj.get("apiVersion"))
    if obj["kind"] == "Service":
        spec = obj.setdefault("spec", {})
        if spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
            spec["clusterIP"] = service_ip(obj["metadata"]["namespace"], obj["metadata"]["name"])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port["port"])
    return cluster.create(rt, obj)


def start_pod(
    cluster: Cluster,
    workload: Obj,
    node: str,
    *,
    suffix: str = "",
    started_at: float = -600.0,
    template: Obj | None = None,
) -> Obj:
    """A Running, Ready pod of `workload`'s template on `node`, with its runtime state."""
    meta = workload["metadata"]
    ns, wname = meta["namespace"], meta["name"]
    template = copy.deepcopy(template or workload["spec"]["template"])
    index = len([p for p in cluster.pods.values() if p.workload == (workload["kind"], wname)])
    name = f"{wname}-7d9f8b6c5-{suffix or 'x' + str(index)}"
    labels = dict(template["metadata"].get("labels") or {})
    labels["pod-template-hash"] = "7d9f8b6c5"
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": dict(template["metadata"].get("annotations") or {}),
        },
        "spec": {**template["spec"], "nodeName": node},
        "status": {},
    }
    created = cluster.create(cluster.rt("Pod"), pod)
    uid = created["metadata"]["uid"]
    ip = f"10.244.{zlib.crc32(node.encode()) % 200}.{10 + len(cluster.pods)}"
    live = cluster.store.find(cluster.rt("Pod"), ns, name)
    assert live is not None
    live["status"] = {
        "phase": "Running",
        "podIP": ip,
        "hostIP": "10.0.0.10",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": c["name"],
                "ready": True,
                "restartCount": 0,
                "image": c["image"],
                "state": {"running": {}},
            }
            for c in pod["spec"]["containers"]
        ],
    }
    cluster.store.commit(cluster.rt("Pod"), live)
    prt = PodRuntime(
        uid=uid, namespace=ns, name=name, node=node, workload=(workload["kind"], wname)
    )
    for c in pod["spec"]["containers"]:
        crt = ContainerRuntime(
            name=c["name"],
            image=c["image"],
            profile=cluster.behaviors.get(c["image"]),
            phase="running",
            started_at=started_at,
            serving=True,
            ready=True,
        )
        crt.memory = crt.profile.memory
        prt.containers[c["name"]] = crt
    cluster.pods[uid] = prt
    return live


def stop_pod(cluster: Cluster, pod: Obj, *, crashed: bool = True) -> None:
    """The pod's processes die (the kubelet would mark it not ready; endpoints follow later)."""
    prt = cluster.pods[pod["metadata"]["uid"]]
    for crt in prt.containers.values():
        crt.phase = "terminated" if crashed else crt.phase
        crt.serving = False
        crt.ready = False


def sync_endpoints(cluster: Cluster) -> None:
    """Write every Service's Endpoints as the endpoints controller would: ready pods only."""
    ep_rt = cluster.rt("Endpoints")
    pods = cluster.store.list(cluster.rt("Pod"))
    for svc in cluster.store.list(cluster.rt("Service")):
        meta = svc["metadata"]
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            continue
        ready = []
        for pod in pods:
            pmeta = pod["metadata"]
            if pmeta["namespace"] != meta["namespace"] or not match_labels(
                {"matchLabels": selector}, pmeta.get("labels") or {}
            ):
                continue
            prt = cluster.pods.get(pmeta["uid"])
            if prt is None or not all(c.ready for c in prt.containers.values()):
                continue
            ready.append(pod)
        subsets = []
        if ready:
            ports = []
            for p in svc["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                if isinstance(target, str):
                    found = [
                        cp["containerPort"]
                        for c in ready[0]["spec"]["containers"]
                        for cp in c.get("ports") or []
                        if cp.get("name") == target
                    ]
                    if not found:
                        continue
                    target = found[0]
                entry = {"port": int(target), "protocol": "TCP"}
                if p.get("name"):
                    entry["name"] = p["name"]
                ports.append(entry)
            subsets = [
                {
                    "addresses": [
                        {
                            "ip": pod["status"]["podIP"],
                            "nodeName": pod["spec"]["nodeName"],
                            "targetRef": {
                                "kind": "Pod",
                                "name": pod["metadata"]["name"],
                                "namespace": pod["metadata"]["namespace"],
                                "uid": pod["metadata"]["uid"],
                            },
                        }
                        for pod in ready
                    ],
                    "ports": ports,
                }
            ]
        body = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": dict(meta.get("labels") or {}),
            },
            "subsets": subsets,
        }
        existing = cluster.store.find(ep_rt, meta["namespace"], meta["name"])
        if existing is None:
            cluster.store.create(ep_rt, body)
        else:
            existing["subsets"] = subsets
            cluster.store.commit(ep_rt, existing)


def shop_world(
    seed: int = 7,
    *,
    nodes: int = 3,
    node_cpu: str = "8",
    rps: float = 40.0,
    replicas: dict[str, int] | None = None,
    manifests: list[Obj] | None = None,
    period: float = 5.0,
) -> tuple[Cluster, Traffic]:
    """A cluster running the shop, one pod per Deployment, spread over `nodes` nodes."""
    cluster = Cluster(seed=seed)
    cluster.traffic.rps = rps
    cluster.create(cluster.rt("Namespace"), {"metadata": {"name": "shop"}})
    cluster.create(
        cluster.rt("Namespace"),
        {"metadata": {"name": "kube-system"}},
    )
    node_names = [f"node-{i}" for i in range(1, nodes + 1)]
    for i, name in enumerate(node_names, start=1):
        cluster.create(cluster.rt("Node"), make_node(name, cpu=node_cpu, index=i))
    shop.register_behaviors(cluster.behaviors)
    objs = manifests if manifests is not None else shop.manifests("shop")
    i = 0
    for obj in objs:
        created = create(cluster, obj)
        if obj["kind"] == "Deployment":
            count = (replicas or {}).get(obj["metadata"]["name"], 1)
            for _ in range(count):
                start_pod(cluster, created, node_names[i % len(node_names)])
                i += 1
    sync_endpoints(cluster)
    traffic = install(cluster, period=period)
    return cluster, traffic


def deployment(cluster: Cluster, name: str, namespace: str = "shop") -> Obj:
    got = cluster.store.find(cluster.rt("Deployment"), namespace, name)
    assert got is not None, f"deployment {name!r} not found in {namespace!r}"
    return got


def pods_of(cluster: Cluster, workload: str, namespace: str = "shop") -> list[Obj]:
    return [
        cluster.store.find(cluster.rt("Pod"), p.namespace, p.name) or {}
        for p in cluster.pods.values()
        if p.namespace == namespace and p.workload is not None and p.workload[1] == workload
    ]


def runtime_of(cluster: Cluster, workload: str, namespace: str = "shop") -> list[PodRuntime]:
    return [
        p
        for p in cluster.pods.values()
        if p.namespace == namespace and p.workload is not None and p.workload[1] == workload
    ]


def logs_of(cluster: Cluster, workload: str, namespace: str = "shop") -> list[str]:
    out: list[str] = []
    for prt in runtime_of(cluster, workload, namespace):
        for cname in prt.containers:
            out.extend(cluster.logs.read(prt.uid, cname))
    return out
