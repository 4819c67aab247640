"""The kinds the twin serves: API group, version, plural, scope, short names.

This one table drives discovery (what kubectl reads to map `po` to pods), the
REST paths, and the store's keys. A kind not listed here can still be created
through its group's path if a scenario registers it (see `register_custom`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    singular: str = field(default="")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def key(self) -> str:
        """Store key: plural.group ("pods", "deployments.apps")."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


_READ_ONLY = ("get", "list")

BUILTIN: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", False, ("ns",), subresources=("status",)),
    ResourceType("", "v1", "Node", "nodes", False, ("no",), subresources=("status",)),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        ("all",),
        ("status", "log", "binding", "eviction"),
    ),
    ResourceType("", "v1", "Service", "services", True, ("svc",), ("all",), ("status",)),
    ResourceType("", "v1", "Endpoints", "endpoints", True, ("ep",), singular="endpoints"),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", True),
    ResourceType("", "v1", "Event", "events", True, ("ev",)),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    ResourceType(
        "", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), subresources=("status",)
    ),
    ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",)),
    ResourceType("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",)),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        ("deploy",),
        ("all",),
        ("status", "scale"),
    ),
    ResourceType(
        "apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("all",), ("status", "scale")
    ),
    ResourceType(
        "apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("all",), ("status", "scale")
    ),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("all",), ("status",)),
    ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    ResourceType(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        ("all",),
        ("status",),
    ),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        ("pdb",),
        subresources=("status",),
    ),
    ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    ResourceType(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
        True,
        (),
        ("gateway-api",),
        ("status",),
    ),
    ResourceType("events.k8s.io", "v1", "Event", "events", True, ("ev",)),
    # Served by the API server as a read-only view of Endpoints (kubectl describe svc reads it).
    ResourceType(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        True,
        verbs=("get", "list", "watch"),
    ),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False
    ),
    ResourceType("batch", "v1", "Job", "jobs", True, (), ("all",), ("status",)),
    ResourceType("batch", "v1", "CronJob", "cronjobs", True, ("cj",), ("all",), ("status",)),
    ResourceType("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, verbs=_READ_ONLY),
    ResourceType("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", False, verbs=_READ_ONLY),
)


class Registry:
    """Looks resource types up by kind, by plural, or by group/version/plural."""

    def __init__(self, types: tuple[ResourceType, ...] = BUILTIN) -> None:
        self._types: list[ResourceType] = []
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        for t in types:
            self.add(t)

    def add(self, t: ResourceType) -> None:
        self._types.append(t)
        self._by_gvr[(t.group, t.version, t.plural)] = t
        # events.k8s.io/Event must not shadow core/v1 Event for kind lookups.
        self._by_kind.setdefault((t.group, t.kind), t)

    def all(self) -> list[ResourceType]:
        return list(self._types)

    def by_gvr(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def by_api_version_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        return self._by_kind.get((group, kind))

    def by_kind(self, kind: str) -> ResourceType | None:
        """First match for a bare kind, core and apps groups first."""
        for t in self._types:
            if t.kind == kind and t.group != "metrics.k8s.io" and t.group != "events.k8s.io":
                return t
        return None

    def register_custom(self, api_version: str, kind: str, namespaced: bool = True) -> ResourceType:
        """Store and serve an unknown kind as given (SCENARIOS.md: "anything else")."""
        existing = self.by_api_version_kind(api_version, kind)
        if existing is not None:
            return existing
        group, _, version = api_version.rpartition("/")
        plural = kind.lower() + ("es" if kind.lower().endswith("s") else "s")
        t = ResourceType(group, version, kind, plural, namespaced)
        self.add(t)
        return t
