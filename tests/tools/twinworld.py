"""A small twin cluster built by hand, with known faults, served over the real API.

The objects are what a cluster in trouble shows: a Deployment mid-incident
(revision 2's pod OOMKilled and in CrashLoopBackOff, revision 1's image
older), a Service whose targetPort no pod declares, a Service whose selector
matches nothing, a cordoned NotReady node, an HPA at its max, a quota at its
limit, a canary HTTPRoute, a ConfigMap and env var carrying a password.
The twin's own API server serves them; the tools reach it through the
official client and a kubeconfig, as they would a real cluster.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from twin.apiserver import RouteInstaller, ServerHandle, serve_in_thread
from twin.behavior import BehaviorProfile
from twin.clock import rfc3339
from twin.cluster import Cluster
from twin.kubeconfig import write_kubeconfig
from twin.runtime import ContainerRuntime, PodRuntime

Obj = dict[str, Any]
NS = "shop"
CART_V1 = "registry.example.com/cartservice:v1"
CART_V2 = "registry.example.com/cartservice:v2"
DB_PASSWORD = "hunter2-very-secret"


@dataclass
class World:
    cluster: Cluster
    server: ServerHandle
    kubeconfig: Path
    #: Name of the crashing cartservice pod and the healthy one.
    crashing_pod: str
    healthy_pod: str


def _create(cluster: Cluster, kind: str, obj: Obj, api_version: str | None = None) -> Obj:
    return cluster.create(cluster.rt(kind, api_version), obj)


def _owner(obj: Obj, kind: str, api_version: str) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _template(
    app: str,
    image: str,
    *,
    pod_hash: str | None = None,
    env: list[Obj] | None = None,
    port: int = 7070,
) -> Obj:
    labels = {"app": app}
    if pod_hash:
        labels["pod-template-hash"] = pod_hash
    return {
        "metadata": {"labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "image": image,
                    "ports": [{"containerPort": port, "name": "grpc", "protocol": "TCP"}],
                    "env": env or [],
                    "resources": {
                        "requests": {"cpu": "200m", "memory": "64Mi"},
                        "limits": {"cpu": "300m", "memory": "128Mi"},
                    },
                    "readinessProbe": {"grpc": {"port": port}, "initialDelaySeconds": 15},
                    "livenessProbe": {"grpc": {"port": port}, "periodSeconds": 10},
                }
            ]
        },
    }


def _deployment(
    cluster: Cluster,
    app: str,
    image: str,
    *,
    replicas: int,
    revision: int,
    env: list[Obj] | None = None,
    port: int = 7070,
) -> Obj:
    return _create(
        cluster,
        "Deployment",
        {
            "metadata": {
                "name": app,
                "namespace": NS,
                "labels": {"app": app},
                "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "template": _template(app, image, env=env, port=port),
                "strategy": {"type": "RollingUpdate"},
            },
            "status": {
                "replicas": replicas,
                "readyReplicas": max(replicas - 1, 0),
                "availableReplicas": max(replicas - 1, 0),
                "updatedReplicas": replicas,
                "observedGeneration": 1,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                    }
                ],
            },
        },
    )


def _replica_set(
    cluster: Cluster,
    deployment: Obj,
    pod_hash: str,
    image: str,
    *,
    revision: int,
    replicas: int,
    cause: str,
    age: float,
) -> Obj:
    app = deployment["metadata"]["name"]
    created = rfc3339(cluster.clock.now() - timedelta(seconds=age))
    return _create(
        cluster,
        "ReplicaSet",
        {
            "metadata": {
                "name": f"{app}-{pod_hash}",
                "namespace": NS,
                "labels": {"app": app, "pod-template-hash": pod_hash},
                "annotations": {
                    "deployment.kubernetes.io/revision": str(revision),
                    "kubernetes.io/change-cause": cause,
                },
                "ownerReferences": [_owner(deployment, "Deployment", "apps/v1")],
                "creationTimestamp": created,
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app, "pod-template-hash": pod_hash}},
                "template": _template(app, image, pod_hash=pod_hash),
            },
            "status": {"replicas": replicas, "readyReplicas": max(replicas - 1, 0)},
        },
    )


def _pod(cluster: Cluster, rs: Obj, suffix: str, *, node: str, ip: str, crashing: bool) -> Obj:
    app = rs["metadata"]["labels"]["app"]
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
    now = rfc3339(cluster.clock.now())
    if crashing:
        state: Obj = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": "back-off 40s restarting failed container=server pod=x_shop(uid)",
            }
        }
        last: Obj = {
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "startedAt": now,
                "finishedAt": now,
            }
        }
        ready, restarts = False, 3
    else:
        state, last, ready, restarts = {"running": {"startedAt": now}}, {}, True, 0
    pod = _create(
        cluster,
        "Pod",
        {
            "metadata": {
                "name": f"{app}-{pod_hash}-{suffix}",
                "namespace": NS,
                "labels": {"app": app, "pod-template-hash": pod_hash},
                "ownerReferences": [_owner(rs, "ReplicaSet", "apps/v1")],
            },
            "spec": {**rs["spec"]["template"]["spec"], "nodeName": node},
            "status": {
                "phase": "Running",
                "podIP": ip,
                "hostIP": "10.0.0.1",
                "qosClass": "Burstable",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        **(
                            {}
                            if ready
                            else {
                                "reason": "ContainersNotReady",
                                "message": "containers with unready status: [server]",
                            }
                        ),
                    },
                ],
                "containerStatuses": [
                    {
                        "name": "server",
                        "image": image,
                        "ready": ready,
                        "restartCount": restarts,
                        "state": state,
                        "lastState": last,
                    }
                ],
            },
        },
    )
    runtime = PodRuntime(
        uid=pod["metadata"]["uid"], namespace=NS, name=pod["metadata"]["name"], node=node
    )
    runtime.containers["server"] = ContainerRuntime(
        name="server",
        image=image,
        profile=BehaviorProfile(),
        phase="waiting" if crashing else "running",
        cpu=0.15,
        memory=float(120 * 2**20),
    )
    cluster.pods[runtime.uid] = runtime
    return pod


def _event(
    cluster: Cluster,
    obj: Obj,
    reason: str,
    message: str,
    *,
    type_: str = "Warning",
    count: int = 1,
    age: float = 0.0,
    host: str = "node-1",
) -> None:
    now = cluster.clock.now()
    meta = obj["metadata"]
    _create(
        cluster,
        "Event",
        {
            "metadata": {
                "generateName": f"{meta['name']}.",
                "namespace": meta.get("namespace") or "default",
            },
            "involvedObject": {
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta["uid"],
                "apiVersion": obj["apiVersion"],
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": count,
            "source": {"component": "kubelet", "host": host},
            "firstTimestamp": rfc3339(now - timedelta(seconds=age + 60)),
            "lastTimestamp": rfc3339(now - timedelta(seconds=age)),
        },
    )


def build_world(cluster: Cluster | None = None) -> tuple[Cluster, str, str]:
    cluster = cluster or Cluster(seed=3)
    cluster.clock.advance(3600)
    for ns in ("default", "kube-system", NS):
        _create(cluster, "Namespace", {"metadata": {"name": ns}})
    for i, (ready, cordoned) in enumerate(((True, False), (False, True)), start=1):
        _create(
            cluster,
            "Node",
            {
                "metadata": {
                    "name": f"node-{i}",
                    "labels": {"kubernetes.io/hostname": f"node-{i}"},
                },
                "spec": {
                    "unschedulable": cordoned,
                    "taints": []
                    if ready
                    else [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}],
                },
                "status": {
                    "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                    "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True" if ready else "Unknown",
                            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                            "message": "kubelet is posting ready status"
                            if ready
                            else "Kubelet stopped posting node status.",
                        }
                    ],
                },
            },
        )
    cart = _deployment(cluster, "cartservice", CART_V2, replicas=2, revision=2)
    _replica_set(
        cluster,
        cart,
        "5d8f7c9b4",
        CART_V1,
        revision=1,
        replicas=0,
        cause="initial release",
        age=3000,
    )
    rs2 = _replica_set(
        cluster,
        cart,
        "7b6c5d4f3",
        CART_V2,
        revision=2,
        replicas=2,
        cause="kubectl set image deployment/cartservice server=v2",
        age=600,
    )
    crashing = _pod(cluster, rs2, "x2k9p", node="node-1", ip="10.1.0.5", crashing=True)
    healthy = _pod(cluster, rs2, "q7w8e", node="node-1", ip="10.1.0.6", crashing=False)
    frontend_env: list[Obj] = [
        {"name": "CART_SERVICE_ADDR", "value": "cartservice:7070"},
        {
            "name": "REDIS_URL",
            "value": f"redis://:{DB_PASSWORD}@redis-cart.shop.svc.cluster.local:6379/0",
        },
        {"name": "DB_PASSWORD", "value": DB_PASSWORD},
        {
            "name": "API_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "frontend-secrets", "key": "token"}},
        },
        {"name": "PORT", "value": "8080"},
    ]
    frontend = _deployment(
        cluster,
        "frontend",
        "registry.example.com/frontend:v1",
        replicas=1,
        revision=1,
        env=frontend_env,
        port=8080,
    )
    frs = _replica_set(
        cluster,
        frontend,
        "6c4b8d9f2",
        "registry.example.com/frontend:v1",
        revision=1,
        replicas=1,
        cause="initial",
        age=3000,
    )
    frs["spec"]["template"] = _template(
        "frontend",
        "registry.example.com/frontend:v1",
        pod_hash="6c4b8d9f2",
        env=frontend_env,
        port=8080,
    )
    cluster.replace(cluster.rt("ReplicaSet"), frs, check_version=False)
    _pod(cluster, frs, "abcde", node="node-1", ip="10.1.0.7", crashing=False)
    _deployment(cluster, "redis-cart", "redis:alpine", replicas=1, revision=1, port=6379)
    _create(
        cluster,
        "StatefulSet",
        {
            "metadata": {"name": "orders-db", "namespace": NS, "labels": {"app": "orders-db"}},
            "spec": {
                "replicas": 1,
                "serviceName": "orders-db",
                "selector": {"matchLabels": {"app": "orders-db"}},
                "template": _template("orders-db", "postgres:16", port=5432),
            },
            "status": {"replicas": 1, "readyReplicas": 1, "currentRevision": "orders-db-1"},
        },
    )
    for name, port, target, selector in (
        ("cartservice", 7070, 7070, {"app": "cartservice"}),
        ("frontend", 80, 8080, {"app": "frontend"}),
        ("redis-cart", 6379, 6379, {"app": "redis-cart"}),
        ("cart-canary", 7070, 9999, {"app": "cartservice"}),
        ("typo-svc", 80, 8080, {"app": "frontendd"}),
    ):
        _create(
            cluster,
            "Service",
            {
                "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": "10.96.0.10",
                    "selector": selector,
                    "ports": [
                        {"name": "grpc", "port": port, "targetPort": target, "protocol": "TCP"}
                    ],
                },
            },
        )
    _create(
        cluster,
        "Endpoints",
        {
            "metadata": {"name": "cartservice", "namespace": NS},
            "subsets": [
                {
                    "addresses": [
                        {
                            "ip": "10.1.0.6",
                            "targetRef": {"kind": "Pod", "name": healthy["metadata"]["name"]},
                        }
                    ],
                    "notReadyAddresses": [
                        {
                            "ip": "10.1.0.5",
                            "targetRef": {"kind": "Pod", "name": crashing["metadata"]["name"]},
                        }
                    ],
                    "ports": [{"name": "grpc", "port": 7070, "protocol": "TCP"}],
                }
            ],
        },
    )
    _create(
        cluster, "Endpoints", {"metadata": {"name": "typo-svc", "namespace": NS}, "subsets": []}
    )
    _event(
        cluster,
        crashing,
        "BackOff",
        "Back-off restarting failed container server in pod x",
        count=5,
        age=10,
    )
    _event(
        cluster,
        crashing,
        "BackOff",
        "Back-off restarting failed container server in pod x",
        count=2,
        age=5,
        host="node-1b",
    )
    _event(
        cluster,
        crashing,
        "Pulled",
        'Container image "x" already present on machine',
        type_="Normal",
        age=300,
    )
    _event(
        cluster,
        cart,
        "ScalingReplicaSet",
        "Scaled up replica set cartservice-7b6c5d4f3 from 0 to 2",
        type_="Normal",
        age=600,
    )
    _event(
        cluster,
        frontend,
        "ScalingReplicaSet",
        "Scaled up replica set frontend-6c4b8d9f2 from 0 to 1",
        type_="Normal",
        age=3000,
    )
    _create(
        cluster,
        "HorizontalPodAutoscaler",
        {
            "metadata": {"name": "frontend", "namespace": NS},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "frontend",
                },
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 60},
                        },
                    }
                ],
            },
            "status": {"currentReplicas": 3, "desiredReplicas": 5},
        },
    )
    _create(
        cluster,
        "PodDisruptionBudget",
        {
            "metadata": {"name": "cartservice", "namespace": NS},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "cartservice"}}},
            "status": {
                "currentHealthy": 1,
                "desiredHealthy": 1,
                "expectedPods": 2,
                "disruptionsAllowed": 0,
            },
        },
    )
    _create(
        cluster,
        "ResourceQuota",
        {
            "metadata": {"name": "shop-quota", "namespace": NS},
            "spec": {"hard": {"pods": "10", "limits.memory": "1Gi"}},
            "status": {
                "hard": {"pods": "10", "limits.memory": "1Gi"},
                "used": {"pods": "4", "limits.memory": "1Gi"},
            },
        },
    )
    _create(
        cluster,
        "NetworkPolicy",
        {
            "metadata": {"name": "deny-redis", "namespace": NS},
            "spec": {
                "podSelector": {"matchLabels": {"app": "redis-cart"}},
                "policyTypes": ["Ingress"],
                "ingress": [],
            },
        },
    )
    _create(
        cluster,
        "ConfigMap",
        {
            "metadata": {"name": "cart-config", "namespace": NS},
            "data": {
                "settings.yaml": "log_level: info\n" + "x" * 500,
                "database_url": f"postgres://cart:{DB_PASSWORD}@db:5432/cart",
                "password": DB_PASSWORD,
            },
        },
    )
    _create(
        cluster,
        "Secret",
        {
            "metadata": {"name": "frontend-secrets", "namespace": NS},
            "type": "Opaque",
            "data": {"token": "c2VjcmV0LXRva2Vu", "password": "aHVudGVyMg=="},
        },
    )
    _create(
        cluster,
        "HTTPRoute",
        {
            "metadata": {"name": "cart-route", "namespace": NS},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "cartservice"}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "cartservice", "port": 7070, "weight": 80},
                            {"name": "cart-canary", "port": 7070, "weight": 20},
                        ]
                    }
                ],
            },
        },
        "gateway.networking.k8s.io/v1",
    )
    return cluster, crashing["metadata"]["name"], healthy["metadata"]["name"]


@contextmanager
def serve_world(extra_routes: Sequence[RouteInstaller] = ()) -> Iterator[World]:
    cluster, crashing, healthy = build_world()
    server = serve_in_thread(cluster, extra_routes=extra_routes)
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", server.url, namespace=NS)
        try:
            yield World(cluster, server, kubeconfig, crashing, healthy)
        finally:
            server.stop()
