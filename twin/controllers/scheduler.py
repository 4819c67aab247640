"""The scheduler (kube-scheduler's default profile, reduced to what decides placement).

Filters run in the default plugin order and a node fails at the first one
that rejects it: NodeUnschedulable (cordon), TaintToleration (NoSchedule and
NoExecute taints), NodeAffinity (nodeSelector and required node affinity),
NodePorts, NodeResourcesFit (cpu, memory, pod count against allocatable
minus the requests of the node's pods that are not terminal). Feasible nodes
are scored by least-allocated and balanced allocation (with the scheduler's
non-zero defaults for pods without requests) and by spreading a workload's
pods; ties go to the first node by name.

A pod that fits nowhere gets PodScheduled=False/Unschedulable and a
`FailedScheduling` event whose message is FitError.Error():
`0/3 nodes are available: 1 node(s) had untolerated taint {...}, 2 Insufficient cpu.
preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling,
2 No preemption victims found for incoming pod.` When lower-priority pods
could make room, they are preempted instead. Unschedulable pods are retried
when nodes or pods change (after a 1 s back-off doubling to 10 s) and at
least every 30 s, so the event's count rises as on a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.controllers import quantities
from twin.controllers.base import (
    Index,
    Key,
    controller_ref,
    get_condition,
    is_terminal,
    key_of,
    labels_of,
    now_str,
    pod_resources,
)
from twin.errors import ApiError
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

COMPONENT = "default-scheduler"
#: Retry an unschedulable pod at least this often (simulated seconds).
RETRY_PERIOD = 30.0
#: podInitialBackoffSeconds / podMaxBackoffSeconds.
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 10.0
#: The scheduler's defaults for containers that request nothing (scoring only).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"

ERR_UNSCHEDULABLE = "node(s) were unschedulable"
ERR_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
ERR_PORTS = "node(s) didn't have free ports for the requested pod ports"
ERR_NO_NODES = "no nodes available to schedule pods"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


# -- pod and node arithmetic ---------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    milli_cpu: int
    memory: int
    #: With the scheduler's non-zero defaults, for scoring.
    score_cpu: int
    score_memory: int
    host_ports: frozenset[tuple[str, int, str]]


def pod_request(pod: Obj) -> Request:
    requests = pod_resources(pod, "requests")
    cpu = requests["cpu"].milli if "cpu" in requests else 0
    memory = int(requests["memory"].value) if "memory" in requests else 0
    score_cpu = score_mem = 0
    spec = pod.get("spec") or {}
    for c in spec.get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        q_cpu = quantities.try_parse(req.get("cpu")) if "cpu" in req else None
        q_mem = quantities.try_parse(req.get("memory")) if "memory" in req else None
        score_cpu += q_cpu.milli if q_cpu is not None else DEFAULT_MILLI_CPU
        score_mem += int(q_mem.value) if q_mem is not None else DEFAULT_MEMORY
    ports = frozenset(
        (str(p.get("hostIP") or "0.0.0.0"), int(p["hostPort"]), str(p.get("protocol") or "TCP"))
        for c in spec.get("containers") or []
        for p in c.get("ports") or []
        if p.get("hostPort")
    )
    return Request(cpu, memory, max(score_cpu, cpu), max(score_mem, memory), ports)


@dataclass
class NodeState:
    """A node as one scheduling cycle sees it: allocatable and what its pods hold."""

    node: Obj
    name: str
    cpu: int
    memory: int
    pods: int
    used_cpu: int = 0
    used_memory: int = 0
    score_cpu: int = 0
    score_memory: int = 0
    pod_count: int = 0
    ports: set[tuple[str, int, str]] = field(default_factory=set)
    #: uid of the controlling owner -> pods of it on the node.
    owners: dict[str, int] = field(default_factory=dict)
    #: (priority, pod) of the node's pods, for preemption.
    residents: list[tuple[int, Obj, Request]] = field(default_factory=list)

    def add(self, pod: Obj, req: Request) -> None:
        self.used_cpu += req.milli_cpu
        self.used_memory += req.memory
        self.score_cpu += req.score_cpu
        self.score_memory += req.score_memory
        self.pod_count += 1
        self.ports |= req.host_ports
        ref = controller_ref(pod)
        if ref is not None:
            uid = str(ref.get("uid"))
            self.owners[uid] = self.owners.get(uid, 0) + 1
        self.residents.append((int((pod.get("spec") or {}).get("priority") or 0), pod, req))


def _allocatable(node: Obj, name: str) -> quantities.Quantity | None:
    return quantities.try_parse(
        ((node.get("status") or {}).get("allocatable") or {}).get(name, "0")
    )


def node_state(node: Obj) -> NodeState:
    cpu = _allocatable(node, "cpu")
    memory = _allocatable(node, "memory")
    pods = _allocatable(node, "pods")
    return NodeState(
        node,
        str(node["metadata"]["name"]),
        cpu.milli if cpu else 0,
        int(memory.value) if memory else 0,
        int(pods.value) if pods else 0,
    )


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def node_taints(node: Obj) -> list[Obj]:
    """The node's taints, plus the one node lifecycle would add if it has not run yet."""
    taints: list[Obj] = list((node.get("spec") or {}).get("taints") or [])
    ready = get_condition(node.get("status"), "Ready")
    status = ready.get("status") if ready else "Unknown"
    if status != "True":
        key = TAINT_UNREACHABLE if status == "Unknown" else TAINT_NOT_READY
        if not any(t.get("key") == key for t in taints):
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


def _match_expression(expr: Obj, value: str | None, present: bool) -> bool:
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            left, right = int(value or ""), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def matches_node_affinity(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    labels = labels_of(node)
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    for term in terms:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            continue
        ok = all(
            _match_expression(e, labels.get(e.get("key", "")), e.get("key", "") in labels)
            for e in exprs
        )
        ok = ok and all(
            _match_expression(f, str(node["metadata"]["name"]), True)
            for f in fields
            if f.get("key") == "metadata.name"
        )
        if ok:
            return True
    return False


# -- filtering ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    reasons: list[str]
    #: UnschedulableAndUnresolvable: preemption cannot help on this node.
    unresolvable: bool = False


def run_filters(pod: Obj, req: Request, state: NodeState) -> Verdict | None:
    """None when the pod fits the node, else the first failing plugin's reasons."""
    node = state.node
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable"):
        taint = {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}
        if not any(tolerates(t, taint) for t in tolerations):
            return Verdict([ERR_UNSCHEDULABLE], True)
    for taint in node_taints(node):
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            text = f"{{{taint.get('key', '')}: {taint.get('value', '')}}}"
            return Verdict(
                [f"node(s) had untolerated taint {text}"],
                True,
            )
    if not matches_node_affinity(pod, node):
        return Verdict([ERR_AFFINITY], True)
    if req.host_ports and _ports_conflict(req.host_ports, state.ports):
        return Verdict([ERR_PORTS])
    return fits_resources(req, state)


def _ports_conflict(
    wanted: frozenset[tuple[str, int, str]], used: set[tuple[str, int, str]]
) -> bool:
    for ip, port, proto in wanted:
        for uip, uport, uproto in used:
            if port == uport and proto == uproto and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def fits_resources(
    req: Request, state: NodeState, freed: tuple[int, int, int] = (0, 0, 0)
) -> Verdict | None:
    """NodeResourcesFit's Filter: every shortfall is a reason."""
    reasons: list[str] = []
    free_cpu, free_mem, free_pods = freed
    if state.pod_count - free_pods + 1 > state.pods:
        reasons.append("Too many pods")
    if req.milli_cpu > 0 and req.milli_cpu > state.cpu - (state.used_cpu - free_cpu):
        reasons.append("Insufficient cpu")
    if req.memory > 0 and req.memory > state.memory - (state.used_memory - free_mem):
        reasons.append("Insufficient memory")
    return Verdict(reasons) if reasons else None


def fit_error(total: int, statuses: dict[str, Verdict], post_filter: str = "") -> str:
    """framework.FitError.Error()."""
    histogram: dict[str, int] = {}
    for verdict in statuses.values():
        for reason in verdict.reasons:
            histogram[reason] = histogram.get(reason, 0) + 1
    message = f"0/{total} nodes are available:"
    pairs = sorted(f"{count} {reason}" for reason, count in histogram.items())
    if pairs:
        message += f" {', '.join(pairs)}."
    if post_filter:
        message += f" {post_filter}."
    return message


# -- scoring -------------------------------------------------------------------------------


def score(pod: Obj, req: Request, state: NodeState, max_owner: int) -> int:
    cpu_req = state.score_cpu + req.score_cpu
    mem_req = state.score_memory + req.score_memory

    def least(requested: int, capacity: int) -> int:
        if capacity == 0 or requested > capacity:
            return 0
        return (capacity - requested) * 100 // capacity

    least_allocated = (least(cpu_req, state.cpu) + least(mem_req, state.memory)) // 2
    f_cpu = min(cpu_req / state.cpu, 1.0) if state.cpu else 1.0
    f_mem = min(mem_req / state.memory, 1.0) if state.memory else 1.0
    balanced = int((1 - abs(f_cpu - f_mem) / 2) * 100)
    ref = controller_ref(pod)
    spread = 100
    if ref is not None and max_owner > 0:
        spread = 100 * (max_owner - state.owners.get(str(ref.get("uid")), 0)) // max_owner
    return least_allocated + balanced + 2 * spread


# -- the scheduler -------------------------------------------------------------------------------


@dataclass
class _Backoff:
    attempts: int = 0
    retry_at: float = 0.0
    backoff_until: float = 0.0


def needs_scheduling(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and not pod["metadata"].get("deletionTimestamp")
        and not is_terminal(pod)
        and spec.get("schedulerName", COMPONENT) == COMPONENT
    )


def _node_signature(node: Obj) -> tuple[Any, ...]:
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    ready = get_condition(status, "Ready")
    return (
        bool(spec.get("unschedulable")),
        repr(spec.get("taints") or []),
        repr(sorted(labels_of(node).items())),
        repr(sorted((status.get("allocatable") or {}).items())),
        ready.get("status") if ready else None,
    )


class Scheduler:
    name = COMPONENT

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.pod_rt = cluster.rt("Pod")
        self.node_rt = cluster.rt("Node")
        self.active: dict[Key, None] = {}
        self.unschedulable: dict[Key, _Backoff] = {}
        self._moved = False
        self._node_sigs: dict[str, tuple[Any, ...]] = {}
        self._requests: dict[str, Request] = {}
        with cluster.lock:
            for node in cluster.store.iter_live(self.node_rt):
                self._node_sigs[str(node["metadata"]["name"])] = _node_signature(node)
            for pods in index.pods.values():
                for pod in pods.values():
                    if needs_scheduling(pod):
                        self.active[key_of(pod)] = None
        index.on("pods", self._on_pod)
        index.on(self.node_rt.key, self._on_node)

    # -- events -----------------------------------------------------------------------------

    def _on_pod(self, etype: EventType, pod: Obj) -> None:
        key = key_of(pod)
        assigned = bool((pod.get("spec") or {}).get("nodeName"))
        if etype == "DELETED":
            self.active.pop(key, None)
            self.unschedulable.pop(key, None)
            self._requests.pop(str(pod["metadata"].get("uid")), None)
            if assigned:
                self._moved = True
            return
        if needs_scheduling(pod):
            if key not in self.unschedulable:
                self.active[key] = None
            return
        self.active.pop(key, None)
        self.unschedulable.pop(key, None)
        if assigned and is_terminal(pod):
            self._moved = True

    def _on_node(self, etype: EventType, node: Obj) -> None:
        name = str(node["metadata"]["name"])
        if etype == "DELETED":
            self._node_sigs.pop(name, None)
            self._moved = True
            return
        sig = _node_signature(node)
        if self._node_sigs.get(name) != sig:
            self._node_sigs[name] = sig
            self._moved = True

    # -- the loop ------------------------------------------------------------------------------

    def step(self, cluster: Cluster, dt: float) -> None:
        now = cluster.elapsed
        if self._moved:
            self._moved = False
            for info in self.unschedulable.values():
                info.retry_at = min(info.retry_at, max(now, info.backoff_until))
        for key in [k for k, info in self.unschedulable.items() if info.retry_at <= now + 1e-9]:
            self.active[key] = None
        if not self.active:
            return
        pods = [
            p for p in (cluster.store.find(self.pod_rt, *k) for k in self.active) if p is not None
        ]
        self.active.clear()
        pods = [p for p in pods if needs_scheduling(p)]
        gated = [p for p in pods if (p.get("spec") or {}).get("schedulingGates")]
        for pod in gated:
            self.gate(cluster, pod)
        pods = [p for p in pods if not (p.get("spec") or {}).get("schedulingGates")]
        if not pods:
            return
        pods.sort(
            key=lambda p: (
                -int((p.get("spec") or {}).get("priority") or 0),
                str(p["metadata"].get("creationTimestamp", "")),
                key_of(p),
            )
        )
        nodes = self.snapshot(cluster)
        for pod in pods:
            self.schedule_one(cluster, pod, nodes)

    def request_of(self, pod: Obj) -> Request:
        uid = str(pod["metadata"].get("uid"))
        req = self._requests.get(uid)
        if req is None:
            req = self._requests[uid] = pod_request(pod)
        return req

    def snapshot(self, cluster: Cluster) -> list[NodeState]:
        states = []
        for node in sorted(
            cluster.store.iter_live(self.node_rt), key=lambda n: str(n["metadata"]["name"])
        ):
            state = node_state(node)
            for pod in self.index.pods_on(state.name):
                if not is_terminal(pod):
                    state.add(pod, self.request_of(pod))
            states.append(state)
        return states

    def schedule_one(self, cluster: Cluster, pod: Obj, nodes: list[NodeState]) -> None:
        req = self.request_of(pod)
        if not nodes:
            self.fail(cluster, pod, ERR_NO_NODES)
            return
        feasible: list[NodeState] = []
        statuses: dict[str, Verdict] = {}
        for state in nodes:
            verdict = run_filters(pod, req, state)
            if verdict is None:
                feasible.append(state)
            else:
                statuses[state.name] = verdict
        if feasible:
            max_owner = 0
            ref = controller_ref(pod)
            if ref is not None:
                max_owner = max(s.owners.get(str(ref.get("uid")), 0) for s in feasible)
            best, best_score = feasible[0], -1
            for state in feasible:  # in name order: ties go to the first
                points = score(pod, req, state, max_owner)
                if points > best_score:
                    best, best_score = state, points
            self.bind(cluster, pod, best, req)
            return
        post = self.preempt(cluster, pod, req, nodes, statuses)
        self.fail(cluster, pod, fit_error(len(nodes), statuses, post))

    def bind(self, cluster: Cluster, pod: Obj, state: NodeState, req: Request) -> None:
        """The binding subresource: spec.nodeName and PodScheduled=True."""
        pod.setdefault("spec", {})["nodeName"] = state.name
        status = pod.setdefault("status", {})
        status.pop("nominatedNodeName", None)
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_str(cluster),
            }
        )
        status["conditions"] = conditions
        cluster.store.commit(self.pod_rt, pod)
        state.add(pod, req)
        key = key_of(pod)
        self.unschedulable.pop(key, None)
        cluster.recorder.event(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {key[0]}/{key[1]} to {state.name}",
            component=COMPONENT,
            action="Binding",
        )

    def gate(self, cluster: Cluster, pod: Obj) -> None:
        """A pod with scheduling gates waits, PodScheduled=False/SchedulingGated, and no event."""
        status = pod.setdefault("status", {})
        current = get_condition(status, "PodScheduled")
        if current is not None and current.get("reason") == "SchedulingGated":
            return
        status["conditions"] = [
            *[c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"],
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": now_str(cluster),
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
            },
        ]
        cluster.store.commit(self.pod_rt, pod)
        self.active.pop(key_of(pod), None)

    def fail(self, cluster: Cluster, pod: Obj, message: str) -> None:
        status = pod.setdefault("status", {})
        current = get_condition(status, "PodScheduled")
        if (
            current is None
            or current.get("status") != "False"
            or current.get("reason") != "Unschedulable"
            or current.get("message") != message
        ):
            cond = {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": now_str(cluster),
                "reason": "Unschedulable",
                "message": message,
            }
            if current is not None and current.get("status") == "False":
                cond["lastTransitionTime"] = current.get("lastTransitionTime")
            status["conditions"] = [
                *[c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"],
                cond,
            ]
            cluster.store.commit(self.pod_rt, pod)
        cluster.recorder.event(
            pod, "Warning", "FailedScheduling", message, component=COMPONENT, action="Scheduling"
        )
        key = key_of(pod)
        info = self.unschedulable.setdefault(key, _Backoff())
        info.attempts += 1
        now = cluster.elapsed
        info.backoff_until = now + min(BACKOFF_INITIAL * 2 ** (info.attempts - 1), BACKOFF_MAX)
        info.retry_at = now + RETRY_PERIOD
        self.active.pop(key, None)

    # -- preemption (DefaultPreemption PostFilter) ---------------------------------

    def preempt(
        self,
        cluster: Cluster,
        pod: Obj,
        req: Request,
        nodes: list[NodeState],
        statuses: dict[str, Verdict],
    ) -> str:
        """Evict lower-priority pods if that makes room; returns the PostFilter message."""
        spec = pod.get("spec") or {}
        if spec.get("preemptionPolicy") == "Never":
            return "preemption: not eligible due to preemptionPolicy=Never."
        priority = int(spec.get("priority") or 0)
        results: dict[str, Verdict] = {}
        candidates: list[tuple[tuple[int, int, int, str], NodeState, list[Obj]]] = []
        for state in nodes:
            verdict = statuses[state.name]
            if verdict.unresolvable:
                results[state.name] = Verdict([NOT_HELPFUL], True)
                continue
            lower = [(p, r) for prio, p, r in state.residents if prio < priority]
            if not lower:
                results[state.name] = Verdict([NO_VICTIMS], True)
                continue
            freed = (
                sum(r.milli_cpu for _, r in lower),
                sum(r.memory for _, r in lower),
                len(lower),
            )
            still = fits_resources(req, state, freed)
            if still is not None:
                results[state.name] = still
                continue
            victims = self._select_victims(req, state, lower, freed)
            prios = [int((v.get("spec") or {}).get("priority") or 0) for v in victims]
            candidates.append(((max(prios), sum(prios), len(victims), state.name), state, victims))
        if not candidates:
            return "preemption: " + fit_error(len(nodes), results).rstrip(".")
        candidates.sort(key=lambda c: c[0])
        _, chosen, victims = candidates[0]
        uid = pod["metadata"].get("uid", "")
        for victim in victims:
            vstatus = victim.setdefault("status", {})
            vstatus["conditions"] = [
                *[
                    c
                    for c in vstatus.get("conditions") or []
                    if c.get("type") != "DisruptionTarget"
                ],
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_str(cluster),
                    "reason": "PreemptionByScheduler",
                    "message": f"{COMPONENT}: preempting to accommodate a higher priority pod",
                },
            ]
            cluster.store.commit(self.pod_rt, victim)
            try:
                cluster.delete(self.pod_rt, *key_of(victim))
            except ApiError:
                continue
            cluster.recorder.event(
                victim,
                "Normal",
                "Preempted",
                f"Preempted by pod {uid} on node {chosen.name}",
                component=COMPONENT,
                action="Preempting",
            )
        pod.setdefault("status", {})["nominatedNodeName"] = chosen.name
        cluster.store.commit(self.pod_rt, pod)
        return ""

    @staticmethod
    def _select_victims(
        req: Request,
        state: NodeState,
        lower: list[tuple[Obj, Request]],
        freed: tuple[int, int, int],
    ) -> list[Obj]:
        """Reprieve as many lower-priority pods as still leave room, most important first."""
        cpu, mem, count = freed
        victims: list[Obj] = []
        ordered = sorted(
            lower,
            key=lambda pr: (
                -int((pr[0].get("spec") or {}).get("priority") or 0),
                str(pr[0]["metadata"].get("creationTimestamp", "")),
            ),
        )
        for pod, r in ordered:
            trial = (cpu - r.milli_cpu, mem - r.memory, count - 1)
            if fits_resources(req, state, trial) is None:
                cpu, mem, count = trial
            else:
                victims.append(pod)
        return victims
