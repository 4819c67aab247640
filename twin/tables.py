"""Server-side printing: meta.k8s.io/v1 Table, the columns `kubectl get` shows.

kubectl asks the API server for a Table and prints the cells it gets; if it
gets anything else it falls back to NAME and AGE only. So the columns and
cell values here follow the API server's printers
(kubernetes pkg/printers/internalversion/printers.go), including how a pod's
STATUS is derived from its container states (reference sheet section 11),
and every AGE is measured on the simulated clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from twin.clock import parse_rfc3339
from twin.resources import ResourceType

Obj = dict[str, Any]
Cells = list[Any]
Printer = Callable[[Obj, datetime], Cells]

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated."
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate operations."
)


def _col(
    name: str, type_: str = "string", *, priority: int = 0, fmt: str = "", doc: str = ""
) -> Obj:
    return {
        "name": name,
        "type": type_,
        "format": fmt,
        "description": doc or name,
        "priority": priority,
    }


_NAME = _col("Name", fmt="name", doc=_NAME_DOC)
_AGE = _col("Age", doc=_AGE_DOC)
_CONTAINERS = _col("Containers", priority=1, doc="Names of each container in the template.")
_IMAGES = _col("Images", priority=1, doc="Images referenced by each container in the template.")
_SELECTOR = _col("Selector", priority=1, doc="A label query over pods.")


# -- formatting helpers --------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: 45s, 2m5s, 12m, 3h20m, 5d, 2y3d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m" if rem == 0 else f"{minutes}m{rem}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rem = minutes % 60
        return f"{hours}h" if rem == 0 else f"{hours}h{rem}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d" if rem == 0 else f"{hours // 24}d{rem}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def since(timestamp: Any, now: datetime) -> str:
    """translateTimestampSince: the age of a timestamp, `<unknown>` when unset."""
    if not timestamp or not isinstance(timestamp, str):
        return "<unknown>"
    try:
        then = parse_rfc3339(timestamp)
    except ValueError:
        return "<unknown>"
    return human_duration((now - then).total_seconds())


def _age(obj: Obj, now: datetime) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"), now)


def format_labels(labels: Mapping[str, Any] | None) -> str:
    """labels.FormatLabels: `a=b,c=d` sorted by key, `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: requirements sorted by key, `<none>` when empty."""
    if not selector:
        return "<none>"
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key", "")
        op = expr.get("operator", "")
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            reqs.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
        else:
            return "<error>"
    text = ",".join(r for _, r in sorted(reqs, key=lambda r: r[0]))
    return text or "<none>"


def _containers(template_spec: Mapping[str, Any] | None) -> tuple[str, str]:
    containers = (template_spec or {}).get("containers") or []
    names = ",".join(c.get("name", "") for c in containers)
    images = ",".join(c.get("image", "") for c in containers)
    return names, images


def _template_spec(obj: Obj) -> Obj:
    spec: Obj = obj.get("spec") or {}
    template: Obj = spec.get("template") or {}
    tspec: Obj = template.get("spec") or {}
    return tspec


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


# -- pods --------------------------------------------------------------------------


def _is_restartable_init(container: Mapping[str, Any] | None) -> bool:
    return bool(container) and (container or {}).get("restartPolicy") == "Always"


def _condition_true(status: Mapping[str, Any], type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _later(a: str, b: str) -> str:
    """The later of two RFC 3339 timestamps ("" is the zero time)."""
    if not a:
        return b
    if not b:
        return a
    return b if parse_rfc3339(b) > parse_rfc3339(a) else a


def pod_summary(pod: Obj, now: datetime) -> tuple[str, str, str]:
    """(READY, STATUS, RESTARTS) as `kubectl get pods` shows them."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    restarts = 0
    restartable_init_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart = ""
    last_restartable_init_restart = ""

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total += sum(1 for c in init_specs.values() if _is_restartable_init(c))

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += _int(cs.get("restartCount"))
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or ""
        last_restart = _later(last_restart, finished)
        restartable = _is_restartable_init(init_specs.get(cs.get("name")))
        if restartable:
            restartable_init_restarts += _int(cs.get("restartCount"))
            last_restartable_init_restart = _later(last_restartable_init_restart, finished)
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if restartable and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif (
            waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing"
        ):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts = restartable_init_restarts
        last_restart = last_restartable_init_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += _int(cs.get("restartCount"))
            finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or ""
            last_restart = _later(last_restart, finished)
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if _int(terminated.get("signal")):
                    reason = f"Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart:
        restarts_text = f"{restarts} ({since(last_restart, now)} ago)"
    return f"{ready}/{total}", reason, restarts_text


def _pod(pod: Obj, now: datetime) -> Cells:
    ready, reason, restarts = pod_summary(pod, now)
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ips = status.get("podIPs") or []
    ip = (ips[0].get("ip") if ips else "") or status.get("podIP") or "<none>"
    gates = "<none>"
    if spec.get("readinessGates"):
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true = sum(1 for g in spec["readinessGates"] if conds.get(g.get("conditionType")) == "True")
        gates = f"{true}/{len(spec['readinessGates'])}"
    return [
        pod["metadata"]["name"],
        ready,
        reason,
        restarts,
        _age(pod, now),
        ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates,
    ]


def _pod_conditions(pod: Obj) -> list[Obj] | None:
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    if phase == "Failed":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Failed",
                "message": "The pod failed.",
            }
        ]
    return None


# -- workloads ---------------------------------------------------------------------


def _deployment(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_template_spec(obj))
    return [
        obj["metadata"]["name"],
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas', 1))}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _replicaset(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_template_spec(obj))
    return [
        obj["metadata"]["name"],
        _int(spec.get("replicas", 1)),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _statefulset(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_template_spec(obj))
    return [
        obj["metadata"]["name"],
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas', 1))}",
        _age(obj, now),
        names,
        images,
    ]


def _daemonset(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_template_spec(obj))
    return [
        obj["metadata"]["name"],
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        format_labels(_template_spec(obj).get("nodeSelector")),
        _age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _job_status(status: Mapping[str, Any]) -> str:
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    for type_ in ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if conds.get(type_) == "True":
            return type_
    return "Running"


def _job(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    completions = spec.get("completions")
    parallelism = _int(spec.get("parallelism", 1))
    succeeded = _int(status.get("succeeded"))
    if completions is not None:
        done = f"{succeeded}/{completions}"
    elif parallelism > 1:
        done = f"{succeeded}/1 of {parallelism}"
    else:
        done = f"{succeeded}/1"
    duration = ""
    start = status.get("startTime")
    if start:
        end = status.get("completionTime")
        end_time = parse_rfc3339(end) if end else now
        duration = human_duration((end_time - parse_rfc3339(start)).total_seconds())
    names, images = _containers(_template_spec(obj))
    return [
        obj["metadata"]["name"],
        _job_status(status),
        done,
        duration,
        _age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _cronjob(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    job_spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    names, images = _containers(((job_spec.get("template") or {}).get("spec")) or {})
    last = status.get("lastScheduleTime")
    return [
        obj["metadata"]["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        bool(spec.get("suspend", False)),
        len(status.get("active") or []),
        since(last, now) if last else "<none>",
        _age(obj, now),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


def _hpa_targets(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    metrics = spec.get("metrics") or []
    if not metrics:
        return "<none>"
    current = status.get("currentMetrics") or []
    out: list[str] = []
    for i, metric in enumerate(metrics):
        cur = current[i] if i < len(current) else {}
        mtype = metric.get("type")
        if mtype in ("Resource", "ContainerResource"):
            field = "resource" if mtype == "Resource" else "containerResource"
            src = metric.get(field) or {}
            target = src.get("target") or {}
            cur_src = (cur.get(field) or {}).get("current") or {}
            name = src.get("name", "")
            if target.get("averageValue") is not None:
                value = cur_src.get("averageValue", "<unknown>")
                out.append(f"{name}: {value}/{target['averageValue']}")
            else:
                util = cur_src.get("averageUtilization")
                value = f"{util}%" if util is not None else "<unknown>"
                goal = target.get("averageUtilization")
                out.append(
                    f"{name}: {value}/{goal}%" if goal is not None else f"{name}: {value}/<auto>"
                )
        else:
            src = metric.get((mtype or "").lower() if mtype else "", {}) or {}
            target = src.get("target") or {}
            goal = target.get("averageValue") or target.get("value") or "<unset>"
            cur_src = (cur.get((mtype or "").lower(), {}) or {}).get("current") or {}
            value = cur_src.get("averageValue") or cur_src.get("value") or "<unknown>"
            out.append(f"{value}/{goal}")
    if len(out) > 2:
        return ", ".join(out[:2]) + f" + {len(out) - 2} more..."
    return ", ".join(out)


def _hpa(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = spec.get("minReplicas")
    return [
        obj["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _hpa_targets(spec, status),
        str(min_pods) if min_pods is not None else "<unset>",
        _int(spec.get("maxReplicas")),
        _int(status.get("currentReplicas")),
        _age(obj, now),
    ]


def _pdb(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    return [
        obj["metadata"]["name"],
        str(min_available) if min_available is not None else "N/A",
        str(max_unavailable) if max_unavailable is not None else "N/A",
        _int(status.get("disruptionsAllowed")),
        _age(obj, now),
    ]


# -- networking and config -----------------------------------------------------------


def _service_external_ip(svc: Obj) -> str:
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    svc_type = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        lb = [i.get("ip") or i.get("hostname") or "" for i in ingress]
        lb = [x for x in lb if x]
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if svc_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _service(svc: Obj, now: datetime) -> Cells:
    spec = svc.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or []
    internal = cluster_ips[0] if cluster_ips else spec.get("clusterIP") or "<none>"
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            ports.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            ports.append(f"{p.get('port')}/{proto}")
    return [
        svc["metadata"]["name"],
        spec.get("type") or "ClusterIP",
        internal,
        _service_external_ip(svc),
        ",".join(ports) or "<none>",
        _age(svc, now),
        format_labels(spec.get("selector")),
    ]


def format_endpoints(endpoints: Obj) -> str:
    """formatEndpoints: up to three ip:port, then `+ N more...`; `<none>` with no subsets."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        if not ports:
            for addr in addresses:
                if len(shown) == 3:
                    more = True
                if not more:
                    shown.append(addr.get("ip", ""))
                count += 1
            continue
        for port in ports:
            for addr in addresses:
                if len(shown) == 3:
                    more = True
                if not more:
                    ip = addr.get("ip", "")
                    host = f"[{ip}]" if ":" in ip else ip
                    shown.append(f"{host}:{port.get('port')}")
                count += 1
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if more else text


def _first_three(values: list[str]) -> str:
    """listWithMoreString: up to three values, `+ N more...`, `<unset>` when empty."""
    if not values:
        return "<unset>"
    text = ",".join(values[:3])
    return f"{text} + {len(values) - 3} more..." if len(values) > 3 else text


def _endpoint_slice(obj: Obj, now: datetime) -> Cells:
    ports = [
        str(p["port"]) if p.get("port") is not None else (p.get("name") or "*")
        for p in obj.get("ports") or []
    ]
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        obj["metadata"]["name"],
        obj.get("addressType", ""),
        _first_three(ports),
        _first_three(addresses),
        _age(obj, now),
    ]


def _endpoints(obj: Obj, now: datetime) -> Cells:
    return [obj["metadata"]["name"], format_endpoints(obj), _age(obj, now)]


def _network_policy(obj: Obj, now: datetime) -> Cells:
    selector = (obj.get("spec") or {}).get("podSelector")
    return [obj["metadata"]["name"], format_label_selector(selector), _age(obj, now)]


def _configmap(obj: Obj, now: datetime) -> Cells:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [obj["metadata"]["name"], count, _age(obj, now)]


def _secret(obj: Obj, now: datetime) -> Cells:
    return [
        obj["metadata"]["name"],
        obj.get("type") or "Opaque",
        len(obj.get("data") or {}),
        _age(obj, now),
    ]


def _service_account(obj: Obj, now: datetime) -> Cells:
    return [obj["metadata"]["name"], len(obj.get("secrets") or []), _age(obj, now)]


def _namespace(obj: Obj, now: datetime) -> Cells:
    phase = (obj.get("status") or {}).get("phase") or "Active"
    return [obj["metadata"]["name"], phase, _age(obj, now)]


_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _access_modes(modes: Iterable[str]) -> str:
    return ",".join(_ACCESS_MODES.get(m, m) for m in modes)


def _pvc(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    bound = status.get("phase") == "Bound"
    return [
        obj["metadata"]["name"],
        status.get("phase") or "Pending",
        spec.get("volumeName", ""),
        (status.get("capacity") or {}).get("storage", "") if bound else "",
        _access_modes(status.get("accessModes") or []) if bound else "",
        spec.get("storageClassName") or "<unset>",
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(obj, now),
        spec.get("volumeMode") or "Filesystem",
    ]


def _pv(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    claim = spec.get("claimRef") or {}
    claim_text = f"{claim.get('namespace')}/{claim.get('name')}" if claim else ""
    return [
        obj["metadata"]["name"],
        (spec.get("capacity") or {}).get("storage", ""),
        _access_modes(spec.get("accessModes") or []),
        spec.get("persistentVolumeReclaimPolicy", "Retain"),
        status.get("phase", ""),
        claim_text,
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        status.get("reason", ""),
        _age(obj, now),
        spec.get("volumeMode") or "Filesystem",
    ]


# -- cluster -----------------------------------------------------------------------


def _node_roles(labels: Mapping[str, str]) -> str:
    roles: set[str] = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(status: Mapping[str, Any], type_: str) -> str:
    for addr in status.get("addresses") or []:
        if addr.get("type") == type_:
            return str(addr.get("address", ""))
    return "<none>"


def _node(obj: Obj, now: datetime) -> Cells:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    states: list[str] = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            states.append("Ready" if cond.get("status") == "True" else "NotReady")
            break
    if not states:
        states.append("Unknown")
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [
        obj["metadata"]["name"],
        ",".join(states),
        _node_roles(obj["metadata"].get("labels") or {}),
        _age(obj, now),
        info.get("kubeletVersion", ""),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _event(obj: Obj, now: datetime) -> Cells:
    first = since(obj.get("firstTimestamp"), now)
    if not obj.get("firstTimestamp"):
        first = since(obj.get("eventTime"), now)
    last = since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = _int(obj.get("count"))
    series = obj.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1
    involved = obj.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    return [
        last,
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {host}" if host else component,
        str(obj.get("message", "")).strip(),
        first,
        count,
        obj["metadata"]["name"],
    ]


def _resource_quota(obj: Obj, now: datetime) -> Cells:
    status = obj.get("status") or {}
    hard = status.get("hard") or {}
    used = status.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for name in sorted(hard):
        target = limits if name.split(".")[0] == "limits" and "." in name else requests
        target.append(f"{name}: {used.get(name, '0')}/{hard[name]}")
    return [obj["metadata"]["name"], _age(obj, now), ", ".join(requests), ", ".join(limits)]


def _controller_revision(obj: Obj, now: datetime) -> Cells:
    controller = "<none>"
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            group = ref.get("apiVersion", "").rpartition("/")[0]
            kind = f"{ref.get('kind', '')}.{group}" if group else ref.get("kind", "")
            controller = f"{kind.lower()}/{ref.get('name', '')}"
    return [obj["metadata"]["name"], controller, _int(obj.get("revision")), _age(obj, now)]


def _role_binding(obj: Obj, now: datetime) -> Cells:
    ref = obj.get("roleRef") or {}
    subjects = obj.get("subjects") or []
    users = ",".join(s.get("name", "") for s in subjects if s.get("kind") == "User")
    groups = ",".join(s.get("name", "") for s in subjects if s.get("kind") == "Group")
    sas = ",".join(
        f"{s.get('namespace', '')}/{s.get('name', '')}"
        for s in subjects
        if s.get("kind") == "ServiceAccount"
    )
    return [
        obj["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _age(obj, now),
        users,
        groups,
        sas,
    ]


def _httproute(obj: Obj, now: datetime) -> Cells:
    hostnames = (obj.get("spec") or {}).get("hostnames") or []
    return [
        obj["metadata"]["name"],
        '["' + '","'.join(hostnames) + '"]' if hostnames else "",
        _age(obj, now),
    ]


def _default(obj: Obj, now: datetime) -> Cells:
    return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp", "")]


def _custom(obj: Obj, now: datetime) -> Cells:
    return [obj["metadata"]["name"], _age(obj, now)]


# -- the table -----------------------------------------------------------------------

_WORKLOAD_WIDE = [_CONTAINERS, _IMAGES, _SELECTOR]

#: Store key -> (column definitions, printer). Keys not listed use the defaults.
PRINTERS: dict[str, tuple[list[Obj], Printer]] = {
    "pods": (
        [
            _NAME,
            _col("Ready", doc="The aggregate readiness state of this pod for accepting traffic."),
            _col("Status", doc="The aggregate status of the containers in this pod."),
            _col(
                "Restarts",
                doc="The number of times the containers in this pod have been restarted and "
                "when the last container in this pod has restarted.",
            ),
            _AGE,
            _col("IP", priority=1, doc="podIP address allocated to the pod."),
            _col("Node", priority=1, doc="NodeName is a request to schedule this pod onto a node."),
            _col("Nominated Node", priority=1, doc="nominatedNodeName is set when preempting."),
            _col("Readiness Gates", priority=1, doc="Pod readiness gates."),
        ],
        _pod,
    ),
    "deployments.apps": (
        [
            _NAME,
            _col("Ready", doc="Number of the pod with ready state"),
            _col(
                "Up-to-date", doc="Total number of non-terminated pods with the desired template."
            ),
            _col("Available", doc="Total number of available pods."),
            _AGE,
            *_WORKLOAD_WIDE,
        ],
        _deployment,
    ),
    "replicasets.apps": (
        [
            _NAME,
            _col("Desired", "integer", doc="Replicas is the number of desired replicas."),
            _col("Current", "integer", doc="Replicas is the most recently observed number."),
            _col("Ready", "integer", doc="The number of ready replicas."),
            _AGE,
            *_WORKLOAD_WIDE,
        ],
        _replicaset,
    ),
    "statefulsets.apps": (
        [
            _NAME,
            _col("Ready", doc="Number of the pod with ready state"),
            _AGE,
            _CONTAINERS,
            _IMAGES,
        ],
        _statefulset,
    ),
    "daemonsets.apps": (
        [
            _NAME,
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Node Selector"),
            _AGE,
            *_WORKLOAD_WIDE,
        ],
        _daemonset,
    ),
    "jobs.batch": (
        [
            _NAME,
            _col("Status", doc="Status of the job."),
            _col("Completions", doc="The number of pods which reached phase Succeeded."),
            _col("Duration", doc="Time required to complete the job."),
            _AGE,
            *_WORKLOAD_WIDE,
        ],
        _job,
    ),
    "cronjobs.batch": (
        [
            _NAME,
            _col("Schedule"),
            _col("Timezone"),
            _col("Suspend", "boolean"),
            _col("Active", "integer"),
            _col("Last Schedule"),
            _AGE,
            *_WORKLOAD_WIDE,
        ],
        _cronjob,
    ),
    "services": (
        [
            _NAME,
            _col("Type", doc="type determines how the Service is exposed."),
            _col("Cluster-IP", doc="clusterIP is the IP address of the service."),
            _col("External-IP", doc="externalIPs is a list of IP addresses."),
            _col("Port(s)", doc="The list of ports that are exposed by this service."),
            _AGE,
            _col("Selector", priority=1, doc="Route service traffic to pods with these labels."),
        ],
        _service,
    ),
    "endpoints": (
        [
            _NAME,
            _col("Endpoints", doc="The set of all endpoints is the union of all subsets."),
            _AGE,
        ],
        _endpoints,
    ),
    "endpointslices.discovery.k8s.io": (
        [
            _NAME,
            _col("AddressType", doc="The type of address carried by this EndpointSlice."),
            _col("Ports", doc="The ports exposed by each endpoint in this slice."),
            _col("Endpoints", doc="The unique endpoints in this slice."),
            _AGE,
        ],
        _endpoint_slice,
    ),
    "nodes": (
        [
            _NAME,
            _col("Status", doc="The status of the node"),
            _col("Roles", doc="The roles of the node"),
            _AGE,
            _col("Version", doc="Kubelet Version reported by the node."),
            _col("Internal-IP", priority=1),
            _col("External-IP", priority=1),
            _col("OS-Image", priority=1),
            _col("Kernel-Version", priority=1),
            _col("Container-Runtime", priority=1),
        ],
        _node,
    ),
    "events": (
        [
            _col("Last Seen", doc="The time at which the most recent occurrence was recorded."),
            _col("Type", doc="Type of this event (Normal, Warning)."),
            _col("Reason", doc="Short, machine understandable string for the transition."),
            _col("Object", doc="The object that this event is about."),
            _col("Subobject", priority=1, doc="The field of the object the event is about."),
            _col("Source", priority=1, doc="The component reporting this event."),
            _col("Message", doc="A human-readable description of the status of this operation."),
            _col("First Seen", priority=1, doc="The time at which the event was first recorded."),
            _col("Count", priority=1, doc="The number of times this event has occurred."),
            _col("Name", priority=1, fmt="name", doc=_NAME_DOC),
        ],
        _event,
    ),
    "namespaces": (
        [_NAME, _col("Status", doc="The status of the namespace"), _AGE],
        _namespace,
    ),
    "configmaps": (
        [_NAME, _col("Data", doc="Data contains the configuration data."), _AGE],
        _configmap,
    ),
    "secrets": (
        [
            _NAME,
            _col("Type", doc="Used to facilitate programmatic handling of secret data."),
            _col("Data", doc="Data contains the secret data."),
            _AGE,
        ],
        _secret,
    ),
    "serviceaccounts": ([_NAME, _col("Secrets"), _AGE], _service_account),
    "persistentvolumeclaims": (
        [
            _NAME,
            _col("Status"),
            _col("Volume"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _AGE,
            _col("VolumeMode", priority=1),
        ],
        _pvc,
    ),
    "persistentvolumes": (
        [
            _NAME,
            _col("Capacity"),
            _col("Access Modes"),
            _col("Reclaim Policy"),
            _col("Status"),
            _col("Claim"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Reason"),
            _AGE,
            _col("VolumeMode", priority=1),
        ],
        _pv,
    ),
    "horizontalpodautoscalers.autoscaling": (
        [
            _NAME,
            _col("Reference", doc="The target resource to scale."),
            _col("Targets", doc="The metrics used to calculate the desired replica count."),
            _col("MinPods", doc="The lower limit for the number of replicas."),
            _col("MaxPods", doc="The upper limit for the number of replicas."),
            _col("Replicas", doc="Current number of replicas of pods managed by this autoscaler."),
            _AGE,
        ],
        _hpa,
    ),
    "poddisruptionbudgets.policy": (
        [
            _NAME,
            _col("Min Available", doc="The minimum number of pods that must be available."),
            _col("Max Unavailable", doc="The maximum number of pods that may be unavailable."),
            _col(
                "Allowed Disruptions",
                "integer",
                doc="Calculated number of pods that may be disrupted at this time.",
            ),
            _AGE,
        ],
        _pdb,
    ),
    "resourcequotas": (
        [
            _NAME,
            _AGE,
            _col(
                "Request",
                doc="Request represents a minimum amount of cpu/memory that a container may "
                "consume.",
            ),
            _col(
                "Limit",
                doc="Limits control the maximum amount of cpu/memory that a container may use.",
            ),
        ],
        _resource_quota,
    ),
    "networkpolicies.networking.k8s.io": (
        [_NAME, _col("Pod-Selector", doc="Selects the pods to which this policy applies."), _AGE],
        _network_policy,
    ),
    "controllerrevisions.apps": (
        [_NAME, _col("Controller"), _col("Revision"), _AGE],
        _controller_revision,
    ),
    "rolebindings.rbac.authorization.k8s.io": (
        [
            _NAME,
            _col("Role"),
            _AGE,
            _col("Users", priority=1),
            _col("Groups", priority=1),
            _col("ServiceAccounts", priority=1),
        ],
        _role_binding,
    ),
    "clusterrolebindings.rbac.authorization.k8s.io": (
        [
            _NAME,
            _col("Role"),
            _AGE,
            _col("Users", priority=1),
            _col("Groups", priority=1),
            _col("ServiceAccounts", priority=1),
        ],
        _role_binding,
    ),
    "httproutes.gateway.networking.k8s.io": (
        [_NAME, _col("Hostnames"), _col("Age", "date", doc=_AGE_DOC)],
        _httproute,
    ),
}
PRINTERS["events.events.k8s.io"] = PRINTERS["events"]

_DEFAULT_COLUMNS = [
    _NAME,
    _col("Created At", "date", doc=_AGE_DOC),
]
_CUSTOM_COLUMNS = [_NAME, _col("Age", "date", doc=_AGE_DOC)]

#: Groups whose kinds are built into the API server; any other group is a custom resource.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "autoscaling",
        "policy",
        "batch",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "events.k8s.io",
        "metrics.k8s.io",
        "storage.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
    }
)


def printer_for(rt: ResourceType) -> tuple[list[Obj], Printer]:
    found = PRINTERS.get(rt.key)
    if found is not None:
        return found
    if rt.group in BUILTIN_GROUPS:
        return _DEFAULT_COLUMNS, _default
    return _CUSTOM_COLUMNS, _custom


def _row_object(obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table_rows(
    rt: ResourceType, objs: Iterable[Obj], now: datetime, include_object: str = "Metadata"
) -> list[Obj]:
    """One Table row per object: cells from the kind's printer, the object as asked."""
    _, printer = printer_for(rt)
    rows = []
    for obj in objs:
        row: Obj = {"cells": printer(obj, now), "object": _row_object(obj, include_object)}
        if rt.key == "pods":
            conditions = _pod_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        rows.append(row)
    return rows


def table(
    rt: ResourceType,
    objs: Iterable[Obj],
    now: datetime,
    *,
    include_object: str = "Metadata",
    api_version: str = "meta.k8s.io/v1",
    list_meta: Obj | None = None,
    with_columns: bool = True,
) -> Obj:
    """A meta.k8s.io Table of `objs` as the API server returns it for `kubectl get`."""
    columns, _ = printer_for(rt)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": list_meta or {},
        "columnDefinitions": columns if with_columns else None,
        "rows": table_rows(rt, objs, now, include_object),
    }
