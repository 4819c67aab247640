"""What every namespace has and what happens when one goes; events that expire.

The serviceaccounts controller gives each namespace a `default`
ServiceAccount and the root-ca-cert-publisher a `kube-root-ca.crt`
ConfigMap, so `kubectl get sa,cm` reads as on a real cluster. When a
Namespace is deleted the namespace controller deletes what was in it. The
API server drops events an hour after their last update (`--event-ttl`).
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from twin.controllers.base import Index, WorkQueue
from twin.errors import ApiError
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

ROOT_CA = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)
#: How often expired events are swept (simulated seconds).
EVENT_SWEEP_PERIOD = 60.0


def fake_ca(seed: int) -> str:
    """A PEM-shaped certificate body: stable per seed, not a usable certificate."""
    blob = b"".join(hashlib.sha256(f"twin-ca/{seed}/{i}".encode()).digest() for i in range(24))
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


class NamespaceController:
    name = "namespace-controller"

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.queue: WorkQueue[str] = WorkQueue()
        self.deleted: WorkQueue[str] = WorkQueue()
        with cluster.lock:
            for ns in cluster.store.iter_live(cluster.rt("Namespace")):
                self.queue.add(str(ns["metadata"]["name"]))
        index.on("namespaces", self._on_namespace)
        self._ca = fake_ca(cluster.seed)

    def _on_namespace(self, etype: EventType, ns: Obj) -> None:
        name = str(ns["metadata"]["name"])
        if etype == "DELETED":
            self.deleted.add(name)
        elif etype == "ADDED":
            self.queue.add(name)

    def step(self, cluster: Cluster, dt: float) -> None:
        for name in self.deleted.pop_due(cluster.elapsed):
            if cluster.store.find(cluster.rt("Namespace"), "", name) is None:
                self.purge(cluster, name)
        for name in self.queue.pop_due(cluster.elapsed):
            if cluster.store.find(cluster.rt("Namespace"), "", name) is not None:
                self.populate(cluster, name)

    def populate(self, cluster: Cluster, namespace: str) -> None:
        account: Obj = {"metadata": {"name": "default", "namespace": namespace}}
        root_ca: Obj = {
            "metadata": {
                "name": ROOT_CA,
                "namespace": namespace,
                "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
            },
            "data": {"ca.crt": self._ca},
        }
        for rt, obj in (
            (cluster.rt("ServiceAccount"), account),
            (cluster.rt("ConfigMap"), root_ca),
        ):
            if cluster.store.find(rt, namespace, obj["metadata"]["name"]) is None:
                try:
                    cluster.create(rt, obj)
                except ApiError:
                    continue

    def purge(self, cluster: Cluster, namespace: str) -> None:
        """Delete what the namespace held (pods terminate gracefully as usual)."""
        for rt in cluster.store.registry.all():
            if (
                not rt.namespaced
                or rt.group == "metrics.k8s.io"
                or rt.key == "events.events.k8s.io"
            ):
                continue
            for obj in cluster.store.list(rt, namespace, live=True):
                try:
                    cluster.delete(rt, namespace, str(obj["metadata"]["name"]))
                except ApiError:
                    continue


class EventTTL:
    """Events older than an hour since their last update disappear, as etcd's lease does."""

    name = "event-ttl"

    def __init__(self) -> None:
        self._next = EVENT_SWEEP_PERIOD

    def step(self, cluster: Cluster, dt: float) -> None:
        if cluster.elapsed + 1e-9 < self._next:
            return
        self._next = cluster.elapsed + EVENT_SWEEP_PERIOD
        expire = getattr(cluster.recorder, "expire", None)
        if callable(expire):
            expire()
