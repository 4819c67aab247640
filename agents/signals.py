"""Deterministic evidence extraction: the helpers the specialists share.

The log analyst, the dependency tracer, the planner and the verifier all read
the cluster through the same read tools and reason over the same kinds of
facts. This module holds what they share, as general rules over evidence and
never as a table of known scenarios:

- the incident's scope (which namespaces, workloads and Services to look at),
  taken from the incident and the alert's labels, which are untrusted text;
- reading tools into plain data, recording every failed call;
- the service graph as a small typed structure (who calls which Service,
  which workload serves it) and an index that maps the names, addresses and
  trace services that logs and spans mention to the objects they denote;
- text rules over log lines, events and span messages: which dependency an
  error names, what kind of failure it is (refused, DNS, auth, timeout...),
  which configuration key a crash names;
- metric trends: a series' recent window against its own earlier baseline;
- the evidence book that numbers evidence ids per agent ("log-3", "dep-7");
- the cause kinds and their AIOpsLab categories.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel

from agents.context import AgentContext
from state import (
    Category,
    Evidence,
    EvidenceSource,
    IncidentState,
    ObjectRef,
    TokenUsage,
    TranscriptEntry,
)
from tools.result import ToolResult

# -- constants ------------------------------------------------------------------------------------

#: Namespaces that are never the application's own: looked at only when named.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "kubemedic"})
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

#: Alert labels that name a namespace, a Service, a workload or a pod (Prometheus, kube-state-
#: metrics and Istio spellings). Their values are untrusted: each is checked as a DNS name.
NAMESPACE_LABELS = ("namespace", "exported_namespace", "kubernetes_namespace", "k8s_namespace")
SERVICE_LABELS = ("service", "destination_service_name", "service_name", "k8s_service")
WORKLOAD_LABELS = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
    "workload": "",
    "destination_workload": "",
    "app": "",
}
POD_LABELS = ("pod", "pod_name", "exported_pod")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

#: Signals that say a component itself is broken (not only that it suffers from a callee).
INTRINSIC_SIGNALS = frozenset(
    {
        "oom_killed",
        "crash_loop",
        "image_pull_error",
        "config_error",
        "pending",
        "scaled_to_zero",
        "selector_mismatch",
        "target_port_mismatch",
        "missing_service",
        "node_not_ready",
        "quota_exhausted",
        "hpa_at_max",
        "saturation",
        "auth_error",
        "rollout_stuck",
        "probe_failure",
        "canary_failing",
        "network_policy_blocks",
        "edge_latency",
        "no_endpoints",
        "pods_on_failed_node",
        "log_silence",
        "trace_origin",
        "not_ready",
    }
)
#: Signals that a failing callee can explain (the component is then a symptom).
SYMPTOM_SIGNALS = frozenset(
    {"error_ratio", "latency", "dependency_error", "error_logs", "replicas_unavailable", "restarts"}
)
#: Facts that are no anomaly by themselves but decide plans (revision changes, traffic).
CONTEXT_SIGNALS = frozenset(
    {
        "rollout_changed",
        "traffic_increase",
        "new_log_template",
        "memory_growth",
        "recovered_anomaly",
        "scale_history",
        "scaled_down",
        "secret_changed",
        "stuck_pods",
    }
)

#: Evidence at or above this severity is a confirmed fault (detection).
DETECTION_SEVERITY = 0.5


# -- cause kinds and their categories (AIOpsLab's system level and fault type) --------------------

CAUSE_CATEGORIES: dict[str, tuple[str, str]] = {
    "scaled_to_zero": ("Application", "Dependency Problem"),
    # An operator lowered the replicas (not to zero) and the rest cannot carry the load.
    "scaled_down": ("Application", "Operation Error"),
    "selector_mismatch": ("Virtualization", "Misconfiguration"),
    "service_port_mismatch": ("Virtualization", "Misconfiguration"),
    "missing_service": ("Virtualization", "Operation Error"),
    "image_pull": ("Application", "Operation Error"),
    "bad_rollout": ("Application", "Code Defect"),
    "config_error": ("Application", "Misconfiguration"),
    # A liveness/readiness probe set wrong in the spec (port, path, timeout) while the process
    # itself is fine: the kubelet kills or unreadies a healthy container.
    "probe_misconfigured": ("Application", "Misconfiguration"),
    "missing_config": ("Application", "Misconfiguration"),
    "memory_leak": ("Application", "Code Defect"),
    "oom": ("Application", "Resource Exhaustion"),
    "crash_loop": ("Application", "Code Defect"),
    "cpu_runaway": ("Application", "Code Defect"),
    "hang": ("Application", "Code Defect"),
    "error_rate": ("Application", "Code Defect"),
    "saturation": ("Application", "Resource Exhaustion"),
    "hpa_at_max": ("Application", "Resource Exhaustion"),
    "network_latency": ("Virtualization", "Network/Storage Issue"),
    "network_policy": ("Virtualization", "Network/Storage Issue"),
    "node_failure": ("Hardware", "Network/Storage Issue"),
    "auth_failure": ("Application", "Authentication Issue"),
    "quota_exhausted": ("Virtualization", "Resource Exhaustion"),
    "unschedulable": ("Virtualization", "Resource Exhaustion"),
    "bad_canary": ("Application", "Code Defect"),
    "dependency_unavailable": ("Application", "Dependency Problem"),
    "unknown": ("Application", "Code Defect"),
    "healthy": ("Application", "No Fault"),
}


def category_for(cause_kind: str) -> Category:
    level, fault = CAUSE_CATEGORIES.get(cause_kind, CAUSE_CATEGORIES["unknown"])
    return Category(system_level=level, fault_type=fault)


# -- small helpers --------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (as the API and the tools print them), or None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Python's fromisoformat takes at most microseconds: cut nanoseconds.
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m:
        frac = (m.group(2) or "")[:7]
        text = m.group(1) + frac + (m.group(3) or "")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_dns_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS_LABEL.match(value))


def is_dns_name(value: str) -> bool:
    return len(value) <= 253 and bool(_DNS_SUBDOMAIN.match(value))


def ref(kind: str, namespace: str | None, name: str) -> ObjectRef:
    return ObjectRef(kind=kind, namespace=namespace or "", name=name)


def ref_from_key(key: str) -> ObjectRef:
    """ "Kind/ns/name" or "Kind/name" (as ObjectRef and the service graph print them)."""
    parts = key.split("/")
    if len(parts) == 3:
        return ObjectRef(kind=parts[0], namespace=parts[1], name=parts[2])
    if len(parts) == 2:
        return ObjectRef(kind=parts[0], name=parts[1])
    raise ValueError(f"{key!r} is not an object key (Kind/namespace/name)")


def workload_ref(pod: Mapping[str, Any]) -> ObjectRef:
    """The workload a pod summary (list_pods) belongs to, else the pod itself."""
    ns = str(pod.get("namespace") or "")
    owner = pod.get("workload")
    if isinstance(owner, str) and "/" in owner:
        kind, _, name = owner.partition("/")
        if kind in WORKLOAD_KINDS:
            return ref(kind, ns, name)
    return ref("Pod", ns, str(pod.get("name") or ""))


def pod_ready(pod: Mapping[str, Any]) -> bool:
    text = str(pod.get("ready") or "0/0")
    have, _, want = text.partition("/")
    return have == want and want not in ("", "0")


def clip(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote_untrusted(text: str, limit: int = 300) -> str:
    """Text from the cluster (a log line, an event) quoted as data, never as instructions."""
    cleaned = clip(text, limit).replace("`", "'")
    return f"`{cleaned}`"


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def fmt_ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f} ms"


# -- scope ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What the incident is about: where to look first, and what alerted."""

    namespaces: tuple[str, ...]
    #: Workloads the incident or alert names.
    workloads: tuple[ObjectRef, ...] = ()
    #: Services the alert names.
    services: tuple[ObjectRef, ...] = ()
    pods: tuple[ObjectRef, ...] = ()
    #: What the alert measures: errors, latency, restarts, availability, logs, or other.
    alert_kind: str = "other"
    #: When the alert began (cluster time), if it says.
    alert_start: datetime | None = None

    @property
    def focus(self) -> tuple[ObjectRef, ...]:
        return self.workloads + self.services

    def describe(self) -> str:
        names = ", ".join(str(r) for r in self.focus) or "no named component"
        return f"namespaces {', '.join(self.namespaces) or '(none)'}; focus {names}"


def alert_kind_of(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str:
    """What an alert measures, from its name and summary (a hint for weighting only)."""
    text = " ".join(
        [
            labels.get("alertname", ""),
            annotations.get("summary", ""),
            annotations.get("description", ""),
        ]
    ).lower()
    rules = (
        ("latency", ("latency", "slow", "p99", "p95", "duration")),
        ("restarts", ("crashloop", "crash", "restart", "oom", "backoff")),
        (
            "availability",
            ("replicas", "notready", "not ready", "unavailable", "mismatch", "pending"),
        ),
        ("logs", ("log", "logs")),
        ("errors", ("error", "5xx", "errorbudget", "failing", "failure", "burn")),
    )
    for kind, words in rules:
        if any(w in text for w in words):
            return kind
    return "other"


async def resolve_scope(state: IncidentState, ctx: AgentContext, problems: list[str]) -> Scope:
    """The scope from the incident, its alert labels, else the namespaces that run workloads."""
    incident = state.incident
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    start: datetime | None = None
    if incident is not None and incident.alert is not None:
        labels = dict(incident.alert.labels)
        annotations = dict(incident.alert.annotations)
        start = incident.alert.starts_at
    elif state.input.alert is not None:
        labels = dict(state.input.alert.labels)
        annotations = dict(state.input.alert.annotations)
        start = state.input.alert.starts_at
    namespaces: list[str] = []
    for candidate in (
        incident.namespace if incident else None,
        incident.workload.namespace if incident and incident.workload else None,
        state.input.namespace,
        *(labels.get(k) for k in NAMESPACE_LABELS),
    ):
        if candidate and is_dns_label(candidate) and candidate not in namespaces:
            namespaces.append(candidate)
    workloads: list[ObjectRef] = []
    services: list[ObjectRef] = []
    pods: list[ObjectRef] = []
    named = incident.workload if incident and incident.workload else state.input.workload
    if named is not None and is_dns_name(named.name):
        ns = named.namespace or (namespaces[0] if namespaces else "")
        if named.kind == "Service":
            services.append(ref("Service", ns, named.name))
        elif named.kind == "Pod":
            pods.append(ref("Pod", ns, named.name))
        else:
            workloads.append(ref(named.kind or "Deployment", ns, named.name))
    if not namespaces:
        namespaces = await _active_namespaces(ctx, problems)
    default_ns = namespaces[0] if namespaces else ""
    for key in SERVICE_LABELS:
        value = labels.get(key, "")
        if value and is_dns_label(value):
            r = ref("Service", default_ns, value)
            if r not in services:
                services.append(r)
    for key, kind in WORKLOAD_LABELS.items():
        value = labels.get(key, "")
        if value and is_dns_name(value):
            r = ref(kind or "Deployment", default_ns, value)
            if r not in workloads:
                workloads.append(r)
    for key in POD_LABELS:
        value = labels.get(key, "")
        if value and is_dns_name(value):
            pods.append(ref("Pod", default_ns, value))
    return Scope(
        namespaces=tuple(namespaces),
        workloads=tuple(workloads),
        services=tuple(services),
        pods=tuple(pods),
        alert_kind=alert_kind_of(labels, annotations),
        alert_start=start,
    )


async def _active_namespaces(ctx: AgentContext, problems: list[str]) -> list[str]:
    """Non-system namespaces that run workloads (when nothing names one)."""
    data = await read(ctx, "list_workloads", {"limit": 500}, problems)
    seen: list[str] = []
    for w in data or []:
        ns = str(w.get("namespace") or "")
        if ns and ns not in SYSTEM_NAMESPACES and ns not in seen:
            seen.append(ns)
    return seen


# -- reading tools --------------------------------------------------------------------------------


@dataclass
class ToolLog:
    """Every tool call a deterministic procedure made, for the transcript."""

    calls: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def read(
    ctx: AgentContext,
    tool: str,
    args: Mapping[str, Any],
    problems: list[str],
    log: ToolLog | None = None,
) -> Any:
    """A read tool's data; None (and the problem recorded) when it failed or was denied."""
    result: ToolResult = await ctx.toolbox.acall(tool, dict(args))
    if log is not None:
        log.calls.append((tool, dict(args), result.status))
    if result.status in ("error", "denied"):
        problems.append(
            f"{tool}({_args_text(args)}): {result.error_kind}: {clip(result.error or '', 200)}"
        )
        return None
    return result.data


def _args_text(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items())


# -- the service graph ----------------------------------------------------------------------------


@dataclass
class Graph:
    """Workloads and Services, who calls which Service, and which workloads serve each."""

    nodes: dict[str, ObjectRef] = field(default_factory=dict)
    #: workload key -> Service keys it calls.
    calls: dict[str, set[str]] = field(default_factory=dict)
    #: Service key -> workload keys its selector picks.
    backs: dict[str, set[str]] = field(default_factory=dict)
    #: (source key, target key) -> how the edge is known: env, trace, selector, route.
    via: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @classmethod
    def from_tool(cls, data: Mapping[str, Any] | None) -> Graph:
        g = cls()
        if not data:
            return g
        for node in data.get("nodes") or []:
            key = str(node.get("id") or "")
            try:
                g.nodes[key] = ref_from_key(key)
            except ValueError:
                continue
        for edge in data.get("edges") or []:
            src, dst = str(edge.get("from") or ""), str(edge.get("to") or "")
            for source in edge.get("sources") or []:
                g.add(src, dst, str(source))
        return g

    def add(self, src: str, dst: str, how: str) -> None:
        for key in (src, dst):
            if key not in self.nodes:
                try:
                    self.nodes[key] = ref_from_key(key)
                except ValueError:
                    return
        # A Service depends on what serves it: the workloads its selector picks, and (for an
        # HTTPRoute attached to it, GAMMA-style) the backend Services the route splits it across.
        if how in ("selector", "route") or self.nodes[src].kind == "Service":
            self.backs.setdefault(src, set()).add(dst)
        else:
            self.calls.setdefault(src, set()).add(dst)
        self.via.setdefault((src, dst), set()).add(how)

    def edges(self) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for (src, dst), hows in sorted(self.via.items()):
            for how in sorted(hows):
                out.append((src, dst, how))
        return out

    def services_of(self, workload: str) -> set[str]:
        """Services whose selector picks this workload."""
        return {s for s, ws in self.backs.items() if workload in ws}

    def callees(self, key: str) -> set[str]:
        """What a component depends on, one hop: a workload's Services and their workloads;
        a Service's backing workloads."""
        node = self.nodes.get(key)
        if node is None:
            return set()
        if node.kind == "Service":
            return set(self.backs.get(key, set()))
        out: set[str] = set()
        for svc in self.calls.get(key, set()):
            out.add(svc)
        return out

    def dependencies(self, key: str) -> set[str]:
        """Every component `key` transitively depends on (not itself)."""
        seen: set[str] = set()
        todo = [key]
        while todo:
            cur = todo.pop()
            for nxt in self.callees(cur):
                if nxt not in seen and nxt != key:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def callers(self, key: str) -> set[str]:
        """Workloads that call this Service (or call a Service backed by this workload)."""
        node = self.nodes.get(key)
        if node is None:
            return set()
        services = {key} if node.kind == "Service" else self.services_of(key)
        return {w for w, svcs in self.calls.items() if svcs & services}

    def dependents(self, key: str) -> set[str]:
        """Every workload that transitively depends on `key`."""
        seen: set[str] = set()
        todo = [key]
        while todo:
            cur = todo.pop()
            for caller in self.callers(cur):
                if caller not in seen and caller != key:
                    seen.add(caller)
                    todo.append(caller)
        return seen


# -- names and addresses -> objects ---------------------------------------------------------------


@dataclass
class NameIndex:
    """Maps what logs, events and spans mention (names, hosts, IPs) to the objects they denote."""

    #: Service name -> its refs (a name may exist in several namespaces).
    services: dict[str, list[ObjectRef]] = field(default_factory=dict)
    #: Workload name -> refs.
    workloads: dict[str, list[ObjectRef]] = field(default_factory=dict)
    #: IP -> object (a Service's clusterIP, a pod's IP mapped to its workload).
    ips: dict[str, ObjectRef] = field(default_factory=dict)
    #: Service key -> workload keys it selects.
    backing: dict[str, list[str]] = field(default_factory=dict)
    namespaces: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        services: Iterable[Mapping[str, Any]] = (),
        pods: Iterable[Mapping[str, Any]] = (),
        workloads: Iterable[Mapping[str, Any]] = (),
        graph: Graph | None = None,
        namespaces: Sequence[str] = (),
    ) -> NameIndex:
        idx = cls(namespaces=tuple(namespaces))
        for svc in services:
            r = ref("Service", str(svc.get("namespace") or ""), str(svc.get("name") or ""))
            idx.services.setdefault(r.name, []).append(r)
            ip = svc.get("cluster_ip")
            if isinstance(ip, str) and ip and ip != "None":
                idx.ips[ip] = r
        for w in workloads:
            kind = str(w.get("kind") or "Deployment")
            r = ref(kind, str(w.get("namespace") or ""), str(w.get("name") or ""))
            idx.workloads.setdefault(r.name, []).append(r)
        for pod in pods:
            ip = pod.get("ip")
            if isinstance(ip, str) and ip:
                idx.ips[ip] = workload_ref(pod)
        if graph is not None:
            for node in graph.nodes.values():
                if node.kind == "Service":
                    if node not in idx.services.get(node.name, []):
                        idx.services.setdefault(node.name, []).append(node)
                elif node.kind in WORKLOAD_KINDS and node not in idx.workloads.get(node.name, []):
                    idx.workloads.setdefault(node.name, []).append(node)
            for svc_key, ws in graph.backs.items():
                idx.backing[svc_key] = sorted(ws)
        return idx

    def _pick(self, refs: list[ObjectRef], namespace: str | None) -> ObjectRef | None:
        if not refs:
            return None
        for r in refs:
            if namespace and r.namespace == namespace:
                return r
        for ns in self.namespaces:
            for r in refs:
                if r.namespace == ns:
                    return r
        return refs[0]

    def service(self, host: str, namespace: str | None = None) -> ObjectRef | None:
        """The Service a DNS name denotes: name, name.ns, name.ns.svc[.cluster.local]."""
        labels = host.lower().rstrip(".").split(".")
        name = labels[0]
        ns = labels[1] if len(labels) > 1 else namespace
        if len(labels) > 2 and labels[2] != "svc":
            return None
        refs = self.services.get(name, [])
        if len(labels) > 1:
            refs = [r for r in refs if r.namespace == ns]
        return self._pick(refs, namespace)

    def workload(self, name: str, namespace: str | None = None) -> ObjectRef | None:
        return self._pick(self.workloads.get(name, []), namespace)

    def trace_service(self, name: str) -> ObjectRef | None:
        """A traced service name ("cartservice" or Istio's "cartservice.shop") -> workload."""
        base, _, ns = name.partition(".")
        wl = self.workload(base, ns or None)
        if wl is not None:
            return wl
        svc = self.service(base, ns or None)
        if svc is not None:
            backers = self.backing.get(svc.key, [])
            if len(backers) == 1:
                return ref_from_key(backers[0])
            return svc
        return None

    def serving_workload(self, service: ObjectRef) -> ObjectRef | None:
        backers = self.backing.get(service.key, [])
        return ref_from_key(backers[0]) if len(backers) == 1 else None


# -- text rules -----------------------------------------------------------------------------------

_HOST_PORT = re.compile(
    r"(?<![\w.\-/@])((?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9\-]+)*):(\d{2,5})\b"
)
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://(?:[^@/\s]+@)?([a-zA-Z0-9.\-]+)(?::(\d{2,5}))?")
_IPV4 = re.compile(r"\b((?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3})\b")
# "lookup currencyservice on 10.96.0.10:53: no such host": the name is the dependency; the
# address after "on" is the cluster's DNS server, not a dependency.
_DNS_LOOKUP = re.compile(
    r"lookup\s+([a-zA-Z0-9.\-]+)(?:\s+on\s+[0-9a-fA-F.:\[\]]+)?:\s*"
    r"(?:no such host|server misbehaving|i/o timeout|temporary failure|no answer|nxdomain|"
    r"connection refused|read udp)",
    re.IGNORECASE,
)
_RESOLVE = re.compile(
    r"(?:could not resolve|cannot resolve|unknown host|getaddrinfo \w+)"
    r"[^a-zA-Z0-9]+([a-zA-Z0-9.\-]+)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9][a-z0-9\-]*[a-z0-9]")

FAILURE_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "auth",
        (
            "authentication failed",
            "password authentication",
            "auth failed",
            "unauthorized",
            "unauthenticated",
            "invalid credentials",
            "invalid password",
            "access denied for user",
            "wrongpass",
            "noauth",
            "permission denied for",
            "login failed",
            "401 ",
            "status 401",
            "code = unauthenticated",
            "invalid token",
            "token expired",
        ),
    ),
    (
        "dns",
        (
            "no such host",
            "nxdomain",
            "name or service not known",
            "could not resolve",
            "cannot resolve",
            "unknown host",
            "temporary failure in name resolution",
            "getaddrinfo",
        ),
    ),
    ("refused", ("connection refused", "econnrefused", "connect: connection refused")),
    (
        "timeout",
        (
            "timeout",
            "timed out",
            "deadline exceeded",
            "deadlineexceeded",
            "etimedout",
            "i/o timeout",
            "context canceled",
        ),
    ),
    ("reset", ("econnreset", "connection reset", "broken pipe", "reset by peer", "eof")),
    (
        "unavailable",
        (
            "unavailable",
            "no healthy upstream",
            "upstream connect error",
            "503",
            "service unavailable",
            "no endpoints",
        ),
    ),
    ("oom", ("out of memory", "oomkilled", "cannot allocate memory", "java.lang.outofmemoryerror")),
    ("tls", ("x509", "certificate", "tls handshake")),
)

_CONFIG_KEY = (
    re.compile(
        r"(?:config(?:uration)?|env(?:ironment)?|setting|variable|key)\s+(?:key\s+|variable\s+|var\s+)?"
        r"[\"'`]?([A-Za-z_][A-Za-z0-9_.\-]{1,80})[\"'`]?\s+(?:is\s+)?"
        r"(?:missing|not set|not defined|undefined|required|empty|unset)",
        re.IGNORECASE,
    ),
    re.compile(
        r"(?:missing|undefined|unset)\s+(?:required\s+)?(?:(?:config(?:uration)?|env(?:ironment)?)\s*)?"
        r"(?:key|variable|var|setting|value)?\s*[:=]?\s*[\"'`]?([A-Z_][A-Z0-9_]{2,80})[\"'`]?",
    ),
    re.compile(r"couldn't find key ([A-Za-z0-9_.\-]+) in (?:ConfigMap|Secret) ([a-z0-9.\-/]+)"),
    re.compile(r"(?:configmap|secret) \"?([a-z0-9.\-]+)\"? not found", re.IGNORECASE),
)

LEVEL_WORDS = (
    ("fatal", re.compile(r"\b(fatal|panic|critical|crit|emerg|alert)\b", re.IGNORECASE)),
    (
        "error",
        re.compile(r"\b(error|err|exception|traceback|failed|failure|severe)\b", re.IGNORECASE),
    ),
    ("warning", re.compile(r"\b(warn|warning)\b", re.IGNORECASE)),
    ("debug", re.compile(r"\b(debug|trace)\b", re.IGNORECASE)),
    ("info", re.compile(r"\b(info|notice)\b", re.IGNORECASE)),
)


def failure_class(text: str) -> str:
    """What kind of failure a message describes: auth, dns, refused, timeout, reset,
    unavailable, oom, tls, or other."""
    low = text.lower()
    for name, needles in FAILURE_CLASSES:
        if any(n in low for n in needles):
            return name
    return "other"


def config_key(text: str) -> str | None:
    """The configuration key (or ConfigMap/Secret) a crash or event names as missing."""
    for pattern in _CONFIG_KEY:
        m = pattern.search(text)
        if m:
            return m.group(1)
    return None


@dataclass(frozen=True)
class Mention:
    """A dependency an error message names."""

    #: The object it denotes (None: nothing in the cluster has that name or address).
    target: ObjectRef | None
    #: As written: "redis-cart:6379", "10.0.3.7", "currencyservice".
    raw: str
    #: The name as a Service would be called, when the text gives a host name.
    host: str | None = None
    #: How it was named: address (host:port, URL, IP), dns (a failed lookup), or name.
    how: str = "address"


def mentions(text: str, index: NameIndex, *, namespace: str | None = None) -> list[Mention]:
    """Dependencies a message names: host:port, URLs, IPs, failed DNS lookups, Service names."""
    out: list[Mention] = []
    seen: set[str] = set()

    def add(m: Mention) -> None:
        key = m.target.key if m.target else f"?{m.host or m.raw}"
        if key not in seen:
            seen.add(key)
            out.append(m)

    consumed = text
    for m in _DNS_LOOKUP.finditer(text):
        host = m.group(1).rstrip(".").lower()
        target = index.service(host, namespace) if is_dns_name(host) else None
        add(Mention(target=target, raw=host, host=host, how="dns"))
        consumed = consumed.replace(m.group(0), " ")
    for m in _RESOLVE.finditer(consumed):
        host = m.group(1).rstrip(".").lower()
        if is_dns_name(host):
            add(Mention(target=index.service(host, namespace), raw=host, host=host, how="dns"))
            consumed = consumed.replace(m.group(0), " ")
    for m in _URL.finditer(consumed):
        host = m.group(1).lower()
        add(_address(host, m.group(0), index, namespace))
        consumed = consumed.replace(m.group(0), " ")
    for m in _HOST_PORT.finditer(consumed):
        host = m.group(1).lower()
        add(_address(host, m.group(0), index, namespace))
        consumed = consumed.replace(m.group(0), " ")
    for m in _IPV4.finditer(consumed):
        add(_address(m.group(1), m.group(1), index, namespace))
    # Bare Service names ("peer redis-cart", "failed to reach paymentservice"): only names long
    # enough not to be ordinary words, and only when no address already named a dependency.
    if not any(m.target for m in out):
        for word in set(_WORD.findall(text.lower())):
            if len(word) >= 5 and word in index.services:
                target = index.service(word, namespace)
                add(Mention(target=target, raw=word, host=word, how="name"))
    return out


def _address(host: str, raw: str, index: NameIndex, namespace: str | None) -> Mention:
    if _IPV4.fullmatch(host):
        return Mention(target=index.ips.get(host), raw=raw, host=None, how="address")
    target = index.service(host, namespace) if is_dns_name(host) else None
    return Mention(target=target, raw=raw, host=host, how="address")


def looks_cluster_local(host: str, index: NameIndex) -> bool:
    """A host name that would be a Service in the cluster if it existed: one label, or
    name.namespace[.svc...] in a namespace the index knows."""
    labels = host.lower().rstrip(".").split(".")
    if len(labels) == 1:
        return is_dns_label(labels[0])
    if labels[1] in index.namespaces or any(
        r.namespace == labels[1] for refs in index.services.values() for r in refs
    ):
        return len(labels) == 2 or labels[2] == "svc"
    return False


# -- metric trends --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """A series' recent window against its own earlier baseline."""

    baseline: float | None
    recent: float | None
    #: The most recent point.
    last: float | None
    #: The highest point in the recent window.
    peak: float | None
    #: When the recent departure from the baseline began (first point of the trailing run).
    onset: datetime | None
    #: The maximum anywhere in the window (to tell a spike that already ended).
    window_max: float | None
    points: int


def series_points(block: Mapping[str, Any] | None) -> list[tuple[datetime, float]]:
    """The points of the first series of a metric block (service_metrics, workload metrics)."""
    if not block:
        return []
    series = block.get("series") or []
    if not series:
        return []
    out: list[tuple[datetime, float]] = []
    for pair in series[0].get("values") or []:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            continue
        t = parse_time(pair[0])
        try:
            v = float(pair[1])
        except (TypeError, ValueError):
            continue
        if t is not None and math.isfinite(v):
            out.append((t, v))
    return out


def trend(
    points: Sequence[tuple[datetime, float]],
    *,
    now: datetime,
    recent_s: float = 75.0,
    anomalous: Any = None,
) -> Trend:
    """Split a series into a baseline (older than `recent_s`) and a recent window.

    The baseline is the median of the older points, without the very first one when there
    are enough (a cluster's first scrape covers its warm-up). `anomalous(value, baseline)`
    decides which points belong to the trailing anomalous run that dates the onset.
    """
    if not points:
        return Trend(None, None, None, None, None, None, 0)
    cut = now - timedelta(seconds=recent_s)
    older = [v for t, v in points if t < cut]
    newer = [(t, v) for t, v in points if t >= cut]
    if not newer:
        newer = [points[-1]]
    if len(older) >= 4:
        older = older[1:]
    # The lower quartile, not the median: when an alert comes late, much of the older window
    # may already be anomalous, and the baseline must still be the healthy level.
    baseline = _lower_quartile(older) if older else None
    recent_values = [v for _, v in newer]
    onset: datetime | None = None
    if anomalous is not None and baseline is not None:
        for t, v in reversed(points):
            if anomalous(v, baseline):
                onset = t
            else:
                break
    return Trend(
        baseline=baseline,
        recent=statistics.fmean(recent_values[-2:]),
        last=recent_values[-1],
        peak=max(recent_values),
        onset=onset,
        window_max=max(v for _, v in points),
        points=len(points),
    )


def _lower_quartile(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 4]


def error_anomalous(value: float, baseline: float) -> bool:
    """An error ratio clearly above its baseline: 5 points, and at least twice it."""
    return value >= 0.05 and value >= baseline + 0.04 and value >= 2 * baseline


def latency_anomalous(value: float, baseline: float) -> bool:
    """p99 latency at least doubled and 100 ms above its baseline."""
    return value >= 2 * baseline and value >= baseline + 100.0


def rate_increased(value: float, baseline: float) -> bool:
    return baseline > 0 and value >= 1.5 * baseline and value >= baseline + 1.0


# -- evidence ids ---------------------------------------------------------------------------------


class EvidenceBook:
    """Numbers one agent's evidence ("log-1", "log-2"...) and merges repeats of one fact."""

    def __init__(self, prefix: str, agent: str, existing: Iterable[Evidence] = ()) -> None:
        self.prefix = prefix
        self.agent = agent
        taken = [
            int(e.id.rsplit("-", 1)[1])
            for e in existing
            if e.id.startswith(prefix + "-") and e.id.rsplit("-", 1)[1].isdigit()
        ]
        self.next = max(taken, default=0) + 1
        self.items: list[Evidence] = []
        self._by_key: dict[tuple[str, str, str], int] = {}

    def add(
        self,
        *,
        source: EvidenceSource,
        signal: str,
        subject: ObjectRef,
        summary: str,
        severity: float,
        onset: datetime | None = None,
        key: str = "",
        **data: Any,
    ) -> Evidence:
        """Record a fact; the same (signal, subject, key) again keeps the stronger of the two."""
        k = (signal, subject.key, key)
        sev = max(0.0, min(1.0, round(severity, 3)))
        if k in self._by_key:
            i = self._by_key[k]
            old = self.items[i]
            if sev <= old.severity:
                return old
            ev = old.model_copy(
                update={"severity": sev, "summary": summary, "data": {**old.data, **data}}
            )
            self.items[i] = ev
            return ev
        ev = Evidence(
            id=f"{self.prefix}-{self.next}",
            source=source,
            signal=signal,
            subject=subject,
            summary=clip(summary, 600),
            severity=sev,
            onset=onset,
            data=data,
            agent=self.agent,
        )
        self.next += 1
        self._by_key[k] = len(self.items)
        self.items.append(ev)
        return ev


def by_subject(evidence: Iterable[Evidence]) -> dict[str, list[Evidence]]:
    out: dict[str, list[Evidence]] = {}
    for ev in evidence:
        out.setdefault(ev.subject.key, []).append(ev)
    return out


def strongest(
    evidence: Iterable[Evidence], signals: Iterable[str] | None = None
) -> Evidence | None:
    wanted = set(signals) if signals is not None else None
    best: Evidence | None = None
    for ev in evidence:
        if wanted is not None and ev.signal not in wanted:
            continue
        if best is None or ev.severity > best.severity:
            best = ev
    return best


def is_fault(ev: Evidence) -> bool:
    """Evidence that, by itself, confirms something is broken now."""
    return ev.severity >= DETECTION_SEVERITY and ev.signal not in CONTEXT_SIGNALS


def now_utc(ctx: AgentContext) -> datetime:
    now = ctx.clock.now()
    return now if now.tzinfo else now.replace(tzinfo=UTC)


# -- a snapshot of the cluster in scope -----------------------------------------------------------


@dataclass
class Snapshot:
    """What the read tools say about the namespaces in scope, read once per node."""

    scope: Scope
    now: datetime
    workloads: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    hpas: list[dict[str, Any]] = field(default_factory=list)
    quotas: list[dict[str, Any]] = field(default_factory=list)
    netpols: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    graph: Graph = field(default_factory=Graph)
    index: NameIndex = field(default_factory=NameIndex)
    log: ToolLog = field(default_factory=ToolLog)

    def workload(self, r: ObjectRef) -> dict[str, Any] | None:
        for w in self.workloads:
            if (
                w.get("name") == r.name
                and w.get("namespace") == r.namespace
                and (w.get("kind") == r.kind or r.kind in ("", "Deployment"))
            ):
                return w
        return None

    def pods_of(self, r: ObjectRef) -> list[dict[str, Any]]:
        return [p for p in self.pods if workload_ref(p) == r]

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        for s in self.services:
            if s.get("name") == name and s.get("namespace") == namespace:
                return s
        return None

    def workload_refs(self) -> list[ObjectRef]:
        return [
            ref(str(w.get("kind") or "Deployment"), str(w.get("namespace")), str(w.get("name")))
            for w in self.workloads
        ]

    def owner_of(self, kind: str, namespace: str, name: str) -> ObjectRef:
        """The workload a Pod or ReplicaSet named in an event belongs to (else the object)."""
        if kind == "Pod":
            for p in self.pods:
                if p.get("name") == name and p.get("namespace") == namespace:
                    return workload_ref(p)
        if kind in ("Pod", "ReplicaSet"):
            # Controllers name what they create `<workload>-<suffix>`: the longest match wins.
            best: ObjectRef | None = None
            for w in self.workload_refs():
                if (
                    w.namespace == namespace
                    and name.startswith(w.name + "-")
                    and (best is None or len(w.name) > len(best.name))
                ):
                    best = w
            if best is not None:
                return best
        return ref(kind, namespace, name)


#: What a snapshot reads; each part is one tool call per namespace (nodes: one in all).
SNAPSHOT_PARTS = (
    "workloads",
    "pods",
    "services",
    "nodes",
    "hpas",
    "quotas",
    "netpols",
    "routes",
    "events",
    "graph",
)

_PART_TOOLS: dict[str, tuple[str, dict[str, Any]]] = {
    "workloads": ("list_workloads", {"limit": 500}),
    "pods": ("list_pods", {"limit": 500}),
    "services": ("list_services", {"limit": 500}),
    "hpas": ("list_hpas", {"limit": 200}),
    "quotas": ("list_resource_quotas", {"limit": 100}),
    "netpols": ("list_network_policies", {"limit": 200}),
    "routes": ("list_httproutes", {"limit": 200}),
    "events": ("list_events", {"limit": 300}),
    "graph": ("service_graph", {"trace_minutes": 30}),
}


async def take_snapshot(
    ctx: AgentContext,
    scope: Scope,
    parts: Sequence[str] = SNAPSHOT_PARTS,
    log: ToolLog | None = None,
) -> Snapshot:
    """Read the scope's objects with the read tools, concurrently; failures are recorded."""
    import asyncio

    log = log or ToolLog()
    graph_data: dict[str, Any] = {"nodes": [], "edges": []}
    if "graph" in parts:
        # The whole cluster's graph first: a dependency in another namespace (db.data) widens
        # the scope to that namespace, so its objects are read too.
        data = await read(ctx, "service_graph", {"trace_minutes": 30}, [], log)
        if data is None:
            data = {"nodes": [], "edges": []}
            for ns in scope.namespaces:
                part_data = await read(
                    ctx, "service_graph", {"namespace": ns, "trace_minutes": 30}, log.problems, log
                )
                if part_data:
                    data["nodes"] += list(part_data.get("nodes") or [])
                    data["edges"] += list(part_data.get("edges") or [])
        graph_data = {
            "nodes": list(data.get("nodes") or []),
            "edges": list(data.get("edges") or []),
        }
        scope = widen(scope, graph_data)
    snap = Snapshot(scope=scope, now=now_utc(ctx), log=log)
    jobs: list[tuple[str, Any]] = []
    for part in parts:
        if part == "graph":
            continue
        if part == "nodes":
            jobs.append((part, read(ctx, "list_nodes", {"limit": 500}, log.problems, log)))
            continue
        tool, args = _PART_TOOLS[part]
        for ns in scope.namespaces:
            jobs.append((part, read(ctx, tool, {**args, "namespace": ns}, log.problems, log)))
    results = await asyncio.gather(*(job for _, job in jobs))
    for (part, _), data in zip(jobs, results, strict=True):
        if isinstance(data, list):
            getattr(snap, part).extend(data)
    snap.graph = Graph.from_tool(_within(graph_data, scope.namespaces))
    for route in snap.routes:
        _route_edges(snap.graph, route)
    snap.index = NameIndex.build(
        services=snap.services,
        pods=snap.pods,
        workloads=snap.workloads,
        graph=snap.graph,
        namespaces=scope.namespaces,
    )
    return snap


def widen(scope: Scope, graph_data: Mapping[str, Any]) -> Scope:
    """The scope plus the namespaces its workloads call into (or are called from), found on
    the cluster-wide graph; system namespaces are never added."""
    namespaces = list(scope.namespaces)
    if not namespaces:
        return scope
    inside = set(namespaces)
    for edge in graph_data.get("edges") or []:
        ends = [str(edge.get("from") or ""), str(edge.get("to") or "")]
        spaces = [e.split("/")[1] if e.count("/") == 2 else "" for e in ends]
        if any(ns in inside for ns in spaces):
            for ns in spaces:
                if ns and ns not in namespaces and ns not in SYSTEM_NAMESPACES:
                    namespaces.append(ns)
    if len(namespaces) == len(scope.namespaces):
        return scope
    return Scope(
        namespaces=tuple(namespaces),
        workloads=scope.workloads,
        services=scope.services,
        pods=scope.pods,
        alert_kind=scope.alert_kind,
        alert_start=scope.alert_start,
    )


def _within(graph_data: Mapping[str, Any], namespaces: Sequence[str]) -> dict[str, Any]:
    keep = set(namespaces)

    def ok(key: str) -> bool:
        return key.count("/") == 2 and key.split("/")[1] in keep

    return {
        "nodes": [n for n in graph_data.get("nodes") or [] if ok(str(n.get("id") or ""))],
        "edges": [
            e
            for e in graph_data.get("edges") or []
            if ok(str(e.get("from") or "")) and ok(str(e.get("to") or ""))
        ],
    }


def _route_edges(graph: Graph, route: Mapping[str, Any]) -> None:
    """An HTTPRoute attached to a Service (GAMMA) splits that Service's traffic to backends."""
    ns = str(route.get("namespace") or "")
    parents = [
        p
        for p in route.get("parent_refs") or []
        if (p.get("kind") or "Gateway") == "Service" and p.get("name")
    ]
    for parent in parents:
        pkey = ref("Service", str(parent.get("namespace") or ns), str(parent["name"])).key
        for rule in route.get("rules") or []:
            for b in rule.get("backends") or []:
                if (b.get("kind") or "Service") != "Service" or not b.get("name"):
                    continue
                bkey = ref("Service", str(b.get("namespace") or ns), str(b["name"])).key
                if bkey != pkey:
                    graph.add(pkey, bkey, "route")


# -- the model path: prompts, digests of the evidence, and what a model may name -------------------

PROMPTS = Path(__file__).with_name("prompts")
#: Evidence items quoted to a model at most (the strongest first).
MAX_EVIDENCE_IN_PROMPT = 60
#: The data keys of evidence that name other objects (by key "Kind/ns/name").
_OBJECT_KEYS = (
    "dependency",
    "callers",
    "caller",
    "workloads",
    "target",
    "selects",
    "blocked",
    "failing_workloads",
    "services",
    "backers",
    "service",
    "blocks",
)


def load_prompt(name: str) -> str:
    """A specialist's system prompt (agents/prompts/<name>.md)."""
    path = PROMPTS / f"{name}.md"
    try:
        return path.read_text()
    except OSError as exc:
        raise RuntimeError(f"system prompt {str(path)!r} cannot be read: {exc}") from exc


class _Summarised(Protocol):
    summary: str


F = TypeVar("F", bound=BaseModel)


async def model_findings(
    ctx: AgentContext,
    *,
    node: str,
    prompt: str,
    user_prompt: str,
    tool_names: Sequence[str],
    fallback: F,
    validate: Callable[[F], tuple[F, list[str]]],
) -> tuple[F, list[TranscriptEntry], TokenUsage]:
    """A specialist's model pass: its answer validated against the data, else `fallback`.

    `validate` returns the answer with what the data does not support removed, and a line
    per removal; the removals and the model's summary go into the transcript.
    """
    from agents.llm import run_specialist
    from agents.transcript import entry

    run = await run_specialist(
        ctx,
        node=node,
        system_prompt=load_prompt(prompt),
        user_prompt=user_prompt,
        tool_names=tool_names,
        output_type=type(fallback),
        fallback=fallback,
    )
    transcript = list(run.transcript)
    if run.fell_back:
        return fallback, transcript, run.tokens
    findings, dropped = validate(run.result)
    if dropped:
        transcript.append(
            entry(
                ctx,
                node,
                "note",
                f"dropped {len(dropped)} part(s) of the model's answer the data does not support: "
                + "; ".join(dropped[:8]),
                dropped=dropped,
            )
        )
    summary = cast(_Summarised, findings).summary
    transcript.append(entry(ctx, node, "hypothesis", f"model: {clip(summary, 600)}"))
    return findings, transcript, run.tokens


def evidence_digest(evidence: Sequence[Evidence], limit: int = MAX_EVIDENCE_IN_PROMPT) -> str:
    """One line per evidence item, strongest first; summaries (which quote the cluster) are
    marked as untrusted data."""
    ranked = sorted(evidence, key=lambda e: (-e.severity, e.id))[:limit]
    lines = [
        f"- {e.id} | {e.signal} | {e.subject} | severity {e.severity:.2f}"
        + (f" | onset {e.onset:%H:%M:%S}" if e.onset else "")
        + f" | data: {quote_untrusted(e.summary, 300)}"
        for e in ranked
    ]
    more = len(evidence) - len(ranked)
    if more > 0:
        lines.append(f"- ... {more} weaker items not shown")
    return "\n".join(lines) or "- (no evidence)"


def named_objects(evidence: Iterable[Evidence]) -> set[str]:
    """Every object key the evidence names: its subjects and the objects its data refers to."""
    out: set[str] = set()
    for e in evidence:
        out.add(e.subject.key)
        for k in _OBJECT_KEYS:
            v = e.data.get(k)
            for item in v if isinstance(v, list) else [v]:
                if (
                    isinstance(item, str)
                    and item.count("/") >= 1
                    and item.split("/")[0][:1].isupper()
                ):
                    out.add(item)
    return out
