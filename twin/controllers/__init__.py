"""The twin's control plane: admission plugins and the controllers of kube-controller-manager.

`install(cluster)` wires them into a Cluster: an EventRecorder if none is
set, the admission chain (NamespaceLifecycle, defaulting and the mutating
Pod plugins, name generation, ResourceQuota), and the controllers in the
order work flows through them in one tick (quota status, node lifecycle,
Deployments, StatefulSets, ReplicaSets, the scheduler, Endpoints, HPA,
disruption budgets, namespaces, event expiry), and creates the namespaces
every cluster has (default, kube-system, kube-public, kube-node-lease). The
kubelet and the traffic model are appended after these by the cluster builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.controllers import admission
from twin.controllers.base import Index
from twin.controllers.deployment import DeploymentController
from twin.controllers.endpoints import EndpointsController
from twin.controllers.hpa import HPAController
from twin.controllers.namespace import EventTTL, NamespaceController
from twin.controllers.nodelifecycle import NodeLifecycleController
from twin.controllers.pdb import DisruptionController
from twin.controllers.quota import QuotaAdmission, QuotaController
from twin.controllers.replicaset import ReplicaSetController
from twin.controllers.scheduler import Scheduler
from twin.controllers.statefulset import StatefulSetController
from twin.events import EventRecorder

if TYPE_CHECKING:
    from twin.cluster import Cluster, Controller

#: The namespaces a cluster is born with.
SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")

__all__ = ["ControlPlane", "install"]


class ControlPlane:
    """The installed pieces, for tests and for code that needs one of them."""

    def __init__(self, cluster: Cluster) -> None:
        self.index = Index.attach(cluster)
        self.quota = QuotaController(cluster, self.index)
        self.node_lifecycle = NodeLifecycleController(cluster, self.index)
        self.deployments = DeploymentController(cluster, self.index)
        self.statefulsets = StatefulSetController(cluster, self.index)
        self.replicasets = ReplicaSetController(cluster, self.index)
        self.scheduler = Scheduler(cluster, self.index)
        self.endpoints = EndpointsController(cluster, self.index)
        self.hpa = HPAController(cluster, self.index)
        self.disruption = DisruptionController(cluster, self.index)
        self.namespaces = NamespaceController(cluster, self.index)
        self.event_ttl = EventTTL()
        self.quota_admission = QuotaAdmission(self.index)

    @property
    def controllers(self) -> list[Controller]:
        return [
            self.quota,
            self.node_lifecycle,
            self.deployments,
            self.statefulsets,
            self.replicasets,
            self.scheduler,
            self.endpoints,
            self.hpa,
            self.disruption,
            self.namespaces,
            self.event_ttl,
        ]


def install(cluster: Cluster) -> ControlPlane:
    """Add the control plane to a cluster; returns the installed pieces."""
    with cluster.lock:
        if cluster.recorder is None:
            cluster.recorder = EventRecorder(cluster)
        plane = ControlPlane(cluster)
        admission.install(cluster)
        cluster.admission.append(plane.quota_admission)
        cluster.controllers.extend(plane.controllers)
        ns_rt = cluster.rt("Namespace")
        for name in SYSTEM_NAMESPACES:
            if cluster.store.find(ns_rt, "", name) is None:
                cluster.create(ns_rt, {"metadata": {"name": name}})
    return plane
