"""Shared reading of Kubernetes objects: which client method serves a kind, and summaries.

Objects are the raw JSON dicts the API server sends. The summaries here are
what an SRE reads first in `kubectl get` and `kubectl describe`: status as
kubectl computes it, restarts, the last termination with its exit code, the
waiting reason and message, the owner chain, resources and probes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.connection import ClusterConnection
from tools.errors import Invalid, NotFound
from tools.redact import redact
from tools.result import Truncation

Obj = dict[str, Any]


@dataclass(frozen=True)
class KindApi:
    """Where the typed client serves one kind."""

    api: str
    plural: str
    namespaced: bool = True

    def _method(self, conn: ClusterConnection, verb: str) -> Callable[..., Any]:
        return getattr(getattr(conn, self.api), verb)  # type: ignore[no-any-return]

    def list(
        self,
        conn: ClusterConnection,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        kwargs = {"label_selector": label_selector, "field_selector": field_selector}
        kwargs = {k: v for k, v in kwargs.items() if v}
        if not self.namespaced:
            body = conn.call(self._method(conn, f"list_{self.plural}"), **kwargs)
        elif namespace:
            body = conn.call(
                self._method(conn, f"list_namespaced_{self.plural}"), namespace, **kwargs
            )
        else:
            method = self._method(conn, f"list_{self.plural}_for_all_namespaces")
            body = conn.call(method, **kwargs)
        return list(_items(body))

    def read(self, conn: ClusterConnection, namespace: str | None, name: str) -> Obj:
        if self.namespaced:
            if not namespace:
                raise Invalid(f"a namespace is needed to read {self.plural} {name!r}")
            result: Obj = conn.call(
                self._method(conn, f"read_namespaced_{self.plural}"), name, namespace
            )
        else:
            result = conn.call(self._method(conn, f"read_{self.plural}"), name)
        return result


def _items(body: Any) -> list[Obj]:
    if not isinstance(body, dict):
        raise Invalid(f"expected a JSON list from the API server, got {type(body).__name__}")
    return list(body.get("items") or [])


KINDS: dict[str, KindApi] = {
    "Pod": KindApi("core", "pod"),
    "Service": KindApi("core", "service"),
    "Endpoints": KindApi("core", "endpoints"),
    "ConfigMap": KindApi("core", "config_map"),
    "Secret": KindApi("core", "secret"),
    "Event": KindApi("core", "event"),
    "ResourceQuota": KindApi("core", "resource_quota"),
    "Node": KindApi("core", "node", namespaced=False),
    "Namespace": KindApi("core", "namespace", namespaced=False),
    "Deployment": KindApi("apps", "deployment"),
    "StatefulSet": KindApi("apps", "stateful_set"),
    "DaemonSet": KindApi("apps", "daemon_set"),
    "ReplicaSet": KindApi("apps", "replica_set"),
    "HorizontalPodAutoscaler": KindApi("autoscaling", "horizontal_pod_autoscaler"),
    "PodDisruptionBudget": KindApi("policy", "pod_disruption_budget"),
    "NetworkPolicy": KindApi("networking", "network_policy"),
}


def kind_api(kind: str) -> KindApi:
    try:
        return KINDS[kind]
    except KeyError:
        raise Invalid(f"unknown kind {kind!r}; known: {', '.join(sorted(KINDS))}") from None


def cap_list(
    items: list[Any], limit: int, what: str = "items"
) -> tuple[list[Any], list[Truncation]]:
    if len(items) <= limit:
        return items, []
    return items[:limit], [Truncation(what=what, limit=limit, kept=limit, total=len(items))]


def meta(obj: Obj) -> Obj:
    result: Obj = obj.get("metadata") or {}
    return result


def ref(obj: Obj) -> str:
    m = meta(obj)
    ns = m.get("namespace")
    return f"{obj.get('kind', '?')}/{ns + '/' if ns else ''}{m.get('name', '?')}"


def controller_of(obj: Obj) -> Obj | None:
    for owner in meta(obj).get("ownerReferences") or []:
        if owner.get("controller"):
            return dict(owner)
    owners = meta(obj).get("ownerReferences") or []
    return dict(owners[0]) if owners else None


def conditions(obj: Obj) -> list[Obj]:
    out = []
    for c in (obj.get("status") or {}).get("conditions") or []:
        item = {k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k)}
        if c.get("lastTransitionTime"):
            item["since"] = c["lastTransitionTime"]
        out.append(item)
    return out


# -- pods ---------------------------------------------------------------------


def pod_status_text(pod: Obj) -> str:
    """STATUS as `kubectl get pods` prints it (printers.go printPod)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    init_statuses = status.get("initContainerStatuses") or []
    init_total = len((pod.get("spec") or {}).get("initContainers") or [])
    initializing = False
    for i, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        initializing = True
        if term:
            if term.get("reason"):
                reason = f"Init:{term['reason']}"
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode')}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{i}/{init_total}"
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            term = state.get("terminated") or {}
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = (
                    f"Signal:{term['signal']}"
                    if term.get("signal")
                    else f"ExitCode:{term.get('exitCode')}"
                )
            elif cs.get("ready") and state.get("running"):
                has_running = True
        if reason == "Completed" and has_running:
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            reason = "Running" if ready else "NotReady"
    deleting = meta(pod).get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        return "Unknown"
    if deleting and status.get("phase") not in ("Succeeded", "Failed"):
        return "Terminating"
    return str(reason)


def container_state(cs: Obj) -> Obj:
    """One container's status: state, waiting reason/message, restarts, last termination."""
    state = cs.get("state") or {}
    out: Obj = {
        "name": cs.get("name"),
        "image": cs.get("image"),
        "ready": bool(cs.get("ready")),
        "restarts": int(cs.get("restartCount") or 0),
    }
    if "running" in state:
        out["state"] = "running"
        out["started_at"] = (state.get("running") or {}).get("startedAt")
    elif "waiting" in state:
        w = state.get("waiting") or {}
        out["state"] = "waiting"
        out["waiting_reason"] = w.get("reason")
        if w.get("message"):
            out["waiting_message"] = redact(str(w["message"]))[0]
    elif "terminated" in state:
        out["state"] = "terminated"
        out["terminated"] = _termination(state.get("terminated") or {})
    last = (cs.get("lastState") or {}).get("terminated")
    if last:
        out["last_termination"] = _termination(last)
    return out


def _termination(t: Obj) -> Obj:
    out = {
        "reason": t.get("reason"),
        "exit_code": t.get("exitCode"),
        "started_at": t.get("startedAt"),
        "finished_at": t.get("finishedAt"),
    }
    if t.get("signal"):
        out["signal"] = t["signal"]
    if t.get("message"):
        out["message"] = redact(str(t["message"]))[0][:500]
    return {k: v for k, v in out.items() if v is not None}


def workload_of(pod: Obj, replica_sets: dict[tuple[str, str], Obj]) -> str | None:
    """`Kind/name` of the workload that owns a pod (through its ReplicaSet for Deployments)."""
    owner = controller_of(pod)
    if owner is None:
        return None
    if owner.get("kind") == "ReplicaSet":
        rs = replica_sets.get((meta(pod).get("namespace", ""), owner.get("name", "")))
        if rs is not None:
            rs_owner = controller_of(rs)
            if rs_owner is not None:
                return f"{rs_owner.get('kind')}/{rs_owner.get('name')}"
    return f"{owner.get('kind')}/{owner.get('name')}"


def pod_summary(pod: Obj, replica_sets: dict[tuple[str, str], Obj]) -> Obj:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    spec_containers = (pod.get("spec") or {}).get("containers") or []
    containers = [container_state(cs) for cs in statuses]
    summary: Obj = {
        "name": meta(pod).get("name"),
        "namespace": meta(pod).get("namespace"),
        "status": pod_status_text(pod),
        "phase": status.get("phase"),
        "ready": f"{sum(1 for cs in statuses if cs.get('ready'))}/{len(spec_containers)}",
        "restarts": sum(int(cs.get("restartCount") or 0) for cs in statuses),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "ip": status.get("podIP"),
        "workload": workload_of(pod, replica_sets),
        "created": meta(pod).get("creationTimestamp"),
        "containers": containers,
    }
    not_ready = [
        c for c in conditions(pod) if c.get("status") != "True" and c.get("type") != "Initialized"
    ]
    if not_ready:
        summary["failing_conditions"] = not_ready
    if meta(pod).get("deletionTimestamp"):
        summary["deleting_since"] = meta(pod)["deletionTimestamp"]
    if status.get("reason"):
        summary["reason"] = status["reason"]
    if status.get("message"):
        summary["message"] = status["message"]
    return {k: v for k, v in summary.items() if v is not None}


def replica_set_index(conn: ClusterConnection, namespace: str | None) -> dict[tuple[str, str], Obj]:
    items = KINDS["ReplicaSet"].list(conn, namespace)
    return {(meta(rs).get("namespace", ""), meta(rs).get("name", "")): rs for rs in items}


def owner_chain(conn: ClusterConnection, obj: Obj) -> list[str]:
    """The controllers above an object, nearest first: [ReplicaSet/x, Deployment/y]."""
    chain: list[str] = []
    current = obj
    namespace = meta(obj).get("namespace")
    for _ in range(5):
        owner = controller_of(current)
        if owner is None:
            break
        kind = str(owner.get("kind", ""))
        chain.append(f"{kind}/{owner.get('name')}")
        api = KINDS.get(kind)
        if api is None:
            break
        try:
            current = api.read(conn, namespace if api.namespaced else None, owner.get("name", ""))
        except NotFound:  # the owner is gone; the chain stops at what exists
            break
    return chain


# -- containers (templates and pods) -------------------------------------------


def probe_summary(probe: Obj | None) -> Obj | None:
    if not probe:
        return None
    out: Obj = {}
    for handler in ("httpGet", "tcpSocket", "grpc", "exec"):
        if handler in probe:
            h = probe[handler] or {}
            if handler == "httpGet":
                out["http_get"] = f"{h.get('path', '/')}:{h.get('port')}"
            elif handler == "exec":
                out["exec"] = " ".join(str(a) for a in h.get("command") or [])
            else:
                out[handler.lower() if handler == "grpc" else "tcp_socket"] = h.get("port")
    for key, default in (
        ("initialDelaySeconds", 0),
        ("periodSeconds", 10),
        ("timeoutSeconds", 1),
        ("failureThreshold", 3),
        ("successThreshold", 1),
    ):
        out[key] = probe.get(key, default)
    return out


def env_summary(env: list[Obj]) -> list[Obj]:
    """Env vars with values redacted where they look secret; references shown as references."""
    out = []
    for var in env:
        item: Obj = {"name": var.get("name")}
        if "value" in var:
            value, _n = redact(f"{var.get('name')}={var.get('value', '')}")
            item["value"] = value.split("=", 1)[1] if "=" in value else value
        elif var.get("valueFrom"):
            vf = var["valueFrom"]
            if "secretKeyRef" in vf:
                r = vf["secretKeyRef"] or {}
                item["from"] = f"secret {r.get('name')} key {r.get('key')}"
            elif "configMapKeyRef" in vf:
                r = vf["configMapKeyRef"] or {}
                item["from"] = f"configmap {r.get('name')} key {r.get('key')}"
            elif "fieldRef" in vf:
                item["from"] = f"field {(vf['fieldRef'] or {}).get('fieldPath')}"
            else:
                item["from"] = next(iter(vf), "valueFrom")
        out.append(item)
    return out


def container_spec(c: Obj) -> Obj:
    out: Obj = {
        "name": c.get("name"),
        "image": c.get("image"),
        "ports": [
            {k: p[k] for k in ("name", "containerPort", "protocol") if k in p}
            for p in c.get("ports") or []
        ],
        "resources": c.get("resources") or {},
        "readiness_probe": probe_summary(c.get("readinessProbe")),
        "liveness_probe": probe_summary(c.get("livenessProbe")),
        "startup_probe": probe_summary(c.get("startupProbe")),
    }
    if c.get("command"):
        out["command"] = redact(" ".join(str(a) for a in c["command"]))[0]
    if c.get("args"):
        out["args"] = redact(" ".join(str(a) for a in c["args"]))[0]
    if c.get("env"):
        out["env"] = env_summary(c["env"])
    if c.get("envFrom"):
        out["env_from"] = [
            next((f"{k} {(v or {}).get('name')}" for k, v in e.items() if k != "prefix"), "")
            for e in c["envFrom"]
        ]
    return {k: v for k, v in out.items() if v not in (None, [], {})}


def images_of(template_or_pod_spec: Obj) -> dict[str, str]:
    return {
        str(c.get("name")): str(c.get("image"))
        for c in template_or_pod_spec.get("containers") or []
    }
