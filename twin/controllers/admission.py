"""Defaulting and admission: what the API server does to an object before it stores it.

Every write through `Cluster.create/replace` passes these plugins, whoever
sends it (kubectl, kubemedic, a controller), so objects read back exactly as
a real API server returns them: a Pod gets its restartPolicy, dnsPolicy,
schedulerName, service account, priority, the two 300 s NoExecute
tolerations and per-container defaults; a Deployment its strategy and
history limit; a Service its cluster IP. A namespaced object into a missing
namespace is refused with 404, as the NamespaceLifecycle plugin does, and
workload specs get the few validations kubectl users meet (selector vs
template labels, immutable selector).
"""

from __future__ import annotations

import copy
import ipaddress
from typing import TYPE_CHECKING, Any

from twin import errors
from twin.controllers import quantities
from twin.controllers.base import iter_containers
from twin.controllers.hashing import fnv32a
from twin.resources import ResourceType
from twin.selectors import match_labels
from twin.store import Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

#: The StatusCause type of a create refused because the namespace is going away.
NAMESPACE_TERMINATING = "NamespaceTerminating"
#: DefaultTolerationSeconds: --default-not-ready-toleration-seconds / unreachable.
DEFAULT_TOLERATION_SECONDS = 300
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
#: The service CIDR kubeadm and kind default to.
SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")
#: Addresses the first Services of a cluster hold (kubernetes, kube-dns).
RESERVED_SERVICE_IPS = frozenset({"10.96.0.1", "10.96.0.10"})
NODE_PORT_RANGE = (30000, 32767)
#: The two system PriorityClasses every cluster has.
SYSTEM_PRIORITY_CLASSES = {
    "system-cluster-critical": 2000000000,
    "system-node-critical": 2000001000,
}
PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
#: Volume sources whose file mode defaults to 0644.
_MODE_SOURCES = ("configMap", "secret", "projected", "downwardAPI")
_WORKLOADS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")


def install(cluster: Cluster) -> None:
    cluster.admission.append(namespace_lifecycle)
    cluster.admission.append(defaulting)
    cluster.admission.append(generate_name)


# -- NamespaceLifecycle -----------------------------------------------------------------


def namespace_lifecycle(cluster: Cluster, rt: ResourceType, obj: Obj, operation: str) -> None:
    """Refuse new content in a namespace that does not exist or is being deleted."""
    if operation != "CREATE" or not rt.namespaced:
        return
    meta = obj.setdefault("metadata", {})
    namespace = meta.get("namespace") or "default"
    ns = cluster.store.find(cluster.rt("Namespace"), "", namespace)
    if ns is None:
        raise errors.not_found("namespaces", "", namespace)
    terminating = (
        ns["metadata"].get("deletionTimestamp")
        or (ns.get("status") or {}).get("phase") == "Terminating"
    )
    if terminating and rt.kind != "Event":
        refused = errors.forbidden(
            rt.plural,
            meta.get("name", ""),
            f"unable to create new content in namespace {namespace} because it is being terminated",
        )
        refused.details["causes"] = [
            {
                "type": NAMESPACE_TERMINATING,
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }
        ]
        raise refused


def namespace_terminating(exc: errors.ApiError) -> bool:
    """apierrors.HasStatusCause(err, NamespaceTerminatingCause)."""
    return any(c.get("type") == NAMESPACE_TERMINATING for c in exc.details.get("causes") or [])


def generate_name(cluster: Cluster, rt: ResourceType, obj: Obj, operation: str) -> None:
    """Fill metadata.name from generateName before validating admission, as the registry does.

    Quota errors name the pod they refuse (`pods "web-6597bc46dc-2wm8j" is forbidden`)
    because the name exists by then.
    """
    if operation != "CREATE":
        return
    meta = obj.setdefault("metadata", {})
    prefix = meta.get("generateName")
    if meta.get("name") or not prefix:
        return
    namespace = (meta.get("namespace") or "default") if rt.namespaced else ""
    store = cluster.store
    candidate = ""
    for _ in range(20):
        candidate = str(prefix)[:58] + store.random_suffix()
        if store.find(rt, namespace, candidate) is None:
            break
    meta["name"] = candidate


# -- defaulting -------------------------------------------------------------------------


def defaulting(cluster: Cluster, rt: ResourceType, obj: Obj, operation: str) -> None:
    """SetDefaults_* for the kinds the twin serves, plus the mutating plugins for Pods."""
    kind, group = rt.kind, rt.group
    if operation == "UPDATE" and "status" not in obj:
        keep_status(cluster, rt, obj)
    if group == "" and kind == "Pod":
        default_pod(obj)
        if operation == "CREATE":
            admit_new_pod(cluster, obj)
    elif group == "apps" and kind in _WORKLOADS:
        default_workload(kind, obj)
        validate_workload(cluster, rt, obj, operation)
    elif group == "" and kind == "Service":
        default_service(cluster, rt, obj, operation)
    elif group == "" and kind == "Namespace":
        default_namespace(obj)
    elif group == "" and kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif group == "" and kind == "ResourceQuota":
        spec = obj.setdefault("spec", {})
        quantities.canonicalize_list(spec.get("hard"))
        obj.setdefault("status", {})
    elif group == "autoscaling" and kind == "HorizontalPodAutoscaler":
        default_hpa(obj)
    elif group == "policy" and kind == "PodDisruptionBudget":
        status = obj.setdefault("status", {})
        for name in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
            status.setdefault(name, 0)


def keep_status(cluster: Cluster, rt: ResourceType, obj: Obj) -> None:
    """An update that sends no status keeps the stored one, as the registry's strategies do."""
    meta = obj.get("metadata") or {}
    namespace = (meta.get("namespace") or "default") if rt.namespaced else ""
    current = cluster.store.find(rt, namespace, str(meta.get("name", "")))
    if current is not None and "status" in current:
        obj["status"] = copy.deepcopy(current["status"])


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and what it cascades to: also used for pod templates."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in iter_containers(spec):
        default_container(container)
    for volume in spec.get("volumes") or []:
        if not any(k for k in volume if k != "name"):
            volume["emptyDir"] = {}
        for source in _MODE_SOURCES:
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)


def default_container(c: Obj) -> None:
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = (
            "Always" if image_tag(str(c.get("image", ""))) == "latest" else "IfNotPresent"
        )
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    resources = c.setdefault("resources", {})
    quantities.canonicalize_list(resources.get("requests"))
    quantities.canonicalize_list(resources.get("limits"))
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if isinstance(probe, dict):
            default_probe(probe)
    for env in c.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def default_probe(probe: Obj) -> None:
    for name, value in PROBE_DEFAULTS.items():
        probe.setdefault(name, value)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        # SetDefaults_GRPCAction: kubectl describe dereferences it and panics without it.
        grpc.setdefault("service", "")


def image_tag(image: str) -> str:
    """The tag of an image reference; "latest" when there is neither tag nor digest."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[colon + 1 :]
    return "" if digest else "latest"


def default_pod(pod: Obj) -> None:
    """SetDefaults_Pod: the pod spec, requests defaulted from limits, enableServiceLinks."""
    spec = pod.setdefault("spec", {})
    default_pod_spec(spec)
    for c in iter_containers(spec):
        resources = c.setdefault("resources", {})
        limits = resources.get("limits")
        if limits:
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)
    spec.setdefault("enableServiceLinks", True)


def admit_new_pod(cluster: Cluster, pod: Obj) -> None:
    """ServiceAccount, Priority and DefaultTolerationSeconds admission; initial status."""
    spec = pod["spec"]
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account
    class_name = spec.get("priorityClassName")
    if class_name:
        if class_name not in SYSTEM_PRIORITY_CLASSES:
            raise errors.forbidden(
                "pods",
                pod.get("metadata", {}).get("name", ""),
                f"no PriorityClass with name {class_name} was found",
            )
        spec.setdefault("priority", SYSTEM_PRIORITY_CLASSES[class_name])
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in (TAINT_NOT_READY, TAINT_UNREACHABLE):
        if not any(
            t.get("key") in (key, None, "") and t.get("effect") in ("NoExecute", None, "")
            for t in tolerations
        ):
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(pod))


def qos_class(pod: Obj) -> str:
    """v1qos.GetPodQOS: pod-wide sums of positive cpu/memory requests and limits."""
    requests: dict[str, quantities.Quantity] = {}
    limits: dict[str, quantities.Quantity] = {}
    guaranteed = True
    for c in iter_containers(pod.get("spec") or {}):
        resources = c.get("resources") or {}
        for source, total in (("requests", requests), ("limits", limits)):
            found = set()
            for name, raw in (resources.get(source) or {}).items():
                q = quantities.try_parse(raw)
                if name not in ("cpu", "memory") or q is None or q.value <= 0:
                    continue
                found.add(name)
                total[name] = total[name] + q if name in total else q
            if source == "limits" and found != {"cpu", "memory"}:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and any(
        name not in limits or limits[name].value != q.value for name, q in requests.items()
    ):
        guaranteed = False
    return "Guaranteed" if guaranteed and len(requests) == len(limits) else "Burstable"


def default_workload(kind: str, obj: Obj) -> None:
    """SetDefaults_Deployment / _ReplicaSet / _StatefulSet / _DaemonSet (apps/v1)."""
    spec = obj.setdefault("spec", {})
    if kind != "DaemonSet":
        spec.setdefault("replicas", 1)
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))
    if kind == "Deployment":
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    elif kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
            strategy.setdefault("rollingUpdate", {})
        if strategy["type"] == "RollingUpdate" and isinstance(strategy.get("rollingUpdate"), dict):
            strategy["rollingUpdate"].setdefault("partition", 0)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
        spec.setdefault("revisionHistoryLimit", 10)
    elif kind == "DaemonSet":
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
    obj.setdefault("status", {})


def go_map(labels: dict[str, Any]) -> str:
    """Go's %#v of a map[string]string, as validation messages print it."""
    inner = ", ".join(f'"{k}":"{labels[k]}"' for k in sorted(labels))
    return f"map[string]string{{{inner}}}"


def validate_workload(cluster: Cluster, rt: ResourceType, obj: Obj, operation: str) -> None:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or meta.get("generateName") or "")
    qualified = f"{rt.kind}.{rt.group}"
    spec = obj["spec"]
    causes: list[tuple[str, str]] = []
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(
            ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
        )
    selector = spec.get("selector")
    template_labels = (spec["template"].get("metadata") or {}).get("labels") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(("spec.selector", "Required value"))
    elif not match_labels(selector, template_labels):
        causes.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {go_map(template_labels)}: "
                "`selector` does not match template `labels`",
            )
        )
    if rt.kind == "Deployment":
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate" and strategy.get("rollingUpdate"):
            causes.append(
                (
                    "spec.strategy.rollingUpdate",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                )
            )
    if operation == "UPDATE" and selector:
        current = cluster.store.find(rt, meta.get("namespace") or "default", name)
        if current is not None and (current.get("spec") or {}).get("selector") != selector:
            labels = go_map(selector.get("matchLabels") or {})
            causes.append(
                (
                    "spec.selector",
                    f"Invalid value: v1.LabelSelector{{MatchLabels:{labels}, "
                    "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
                )
            )
    if causes:
        raise errors.invalid(qualified, rt.group, name, causes)


def default_namespace(obj: Obj) -> None:
    meta = obj.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels["kubernetes.io/metadata.name"] = meta.get("name", "")
    meta["labels"] = labels
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def default_hpa(obj: Obj) -> None:
    """autoscaling/v2 SetDefaults_HorizontalPodAutoscaler."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        up = behavior.setdefault("scaleUp", {})
        up.setdefault("stabilizationWindowSeconds", 0)
        up.setdefault("selectPolicy", "Max")
        up.setdefault(
            "policies",
            [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        )
        down = behavior.setdefault("scaleDown", {})
        down.setdefault("selectPolicy", "Max")
        down.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])
    obj.setdefault("status", {})


# -- Services ---------------------------------------------------------------------------


def default_service(cluster: Cluster, rt: ResourceType, svc: Obj, operation: str) -> None:
    """SetDefaults_Service plus the registry's IP and node port allocation."""
    meta = svc.setdefault("metadata", {})
    namespace = meta.get("namespace") or "default"
    name = str(meta.get("name") or "")
    spec = svc.setdefault("spec", {})
    spec.setdefault("sessionAffinity", "None")
    stype = spec.setdefault("type", "ClusterIP")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    external = stype in ("NodePort", "LoadBalancer")
    if external:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    svc.setdefault("status", {}).setdefault("loadBalancer", {})
    current = cluster.store.find(rt, namespace, name) if operation == "UPDATE" else None
    if stype == "ExternalName":
        for stale in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            spec.pop(stale, None)
        return
    if current is not None:
        cur_spec = current.get("spec") or {}
        old_ip = cur_spec.get("clusterIP")
        new_ip = spec.get("clusterIP")
        if new_ip and old_ip and new_ip != old_ip:
            raise errors.invalid(
                "Service",
                "",
                name,
                [
                    (
                        "spec.clusterIPs[0]",
                        f'Invalid value: []string{{"{new_ip}"}}: may not change once set',
                    )
                ],
            )
        for kept in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if kept in cur_spec and not spec.get(kept):
                spec[kept] = cur_spec[kept]
        old_ports = {
            (p.get("port"), p.get("protocol")): p.get("nodePort")
            for p in cur_spec.get("ports") or []
        }
        for port in spec.get("ports") or []:
            node_port = old_ports.get((port.get("port"), port.get("protocol")))
            if external and node_port and not port.get("nodePort"):
                port["nodePort"] = node_port
    ip = spec.get("clusterIP")
    if not ip:
        ip = spec["clusterIP"] = allocate_cluster_ip(cluster, rt, namespace, name)
    elif ip != "None" and current is None:
        check_requested_ip(cluster, rt, name, str(ip))
    spec.setdefault("clusterIPs", [ip])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if external:
        used = _used_node_ports(cluster, rt)
        for port in spec.get("ports") or []:
            if not port.get("nodePort"):
                port["nodePort"] = _allocate_node_port(
                    f"{namespace}/{name}/{port.get('port')}", used
                )
                used.add(int(port["nodePort"]))


def _used_cluster_ips(cluster: Cluster, rt: ResourceType) -> set[str]:
    used = set(RESERVED_SERVICE_IPS)
    for svc in cluster.store.iter_live(rt):
        ip = (svc.get("spec") or {}).get("clusterIP")
        if ip:
            used.add(str(ip))
    return used


def allocate_cluster_ip(cluster: Cluster, rt: ResourceType, namespace: str, name: str) -> str:
    """A free address of the service CIDR, found from a hash of the name: the same every run."""
    used = _used_cluster_ips(cluster, rt)
    base = int(SERVICE_CIDR.network_address)
    size = SERVICE_CIDR.num_addresses - 2
    start = fnv32a(f"{namespace}/{name}".encode()) % size
    for i in range(size):
        candidate = str(ipaddress.IPv4Address(base + 1 + (start + i) % size))
        if candidate not in used:
            return candidate
    raise errors.ApiError(500, "InternalError", "range is full: no free cluster IPs")


def check_requested_ip(cluster: Cluster, rt: ResourceType, name: str, ip: str) -> None:
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        raise errors.invalid(
            "Service",
            "",
            name,
            [("spec.clusterIPs[0]", f'Invalid value: "{ip}": must be a valid IP address')],
        ) from None
    if address not in SERVICE_CIDR:
        raise errors.invalid(
            "Service",
            "",
            name,
            [
                (
                    "spec.clusterIPs",
                    f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: '
                    f"the provided IP ({ip}) is not in the valid range. "
                    f"The range of valid IPs is {SERVICE_CIDR}",
                )
            ],
        )
    if ip in _used_cluster_ips(cluster, rt) - RESERVED_SERVICE_IPS:
        raise errors.invalid(
            "Service",
            "",
            name,
            [
                (
                    "spec.clusterIPs",
                    f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: '
                    "provided IP is already allocated",
                )
            ],
        )


def _used_node_ports(cluster: Cluster, rt: ResourceType) -> set[int]:
    used: set[int] = set()
    for svc in cluster.store.iter_live(rt):
        for port in (svc.get("spec") or {}).get("ports") or []:
            if port.get("nodePort"):
                used.add(int(port["nodePort"]))
    return used


def _allocate_node_port(seed: str, used: set[int]) -> int:
    low, high = NODE_PORT_RANGE
    size = high - low + 1
    start = fnv32a(seed.encode()) % size
    for i in range(size):
        candidate = low + (start + i) % size
        if candidate not in used:
            return candidate
    raise errors.ApiError(500, "InternalError", "range is full: no free node ports")
