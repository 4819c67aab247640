"""The twin's kubelet: every node's agent, driving pods through their lives.

For each pod bound to a live node it does what a kubelet does, in simulated
time and with a kubelet's events and status: creates the sandbox (pod IP from
the node's podCIDR), runs init containers in order, pulls images (or fails to,
with ErrImagePull and ImagePullBackOff), resolves the environment
(CreateContainerConfigError), starts containers and writes their startup logs,
runs probes, restarts exited containers with CrashLoopBackOff back-off, kills
containers that pass their memory limit (OOMKilled) or fail liveness, and
removes deleted pods after their containers stop. It also posts each node's
heartbeat. Nodes in `cluster.nodes_down` have a dead kubelet: nothing of
theirs changes in the API and their processes stop serving.

The facts it reproduces (timings, reasons, messages) are those of
shared/reference/kubernetes-behaviour.md. What the processes do comes from
behaviour profiles (twin/behavior.py); the traffic model (twin/traffic.py)
writes their memory, request counts and latency into twin/runtime.py, which
is where the two meet.

Cost: a pod is synced only when something of it is due (a pull finishing, a
back-off ending, a probe tick) or changed in the store; each tick also
compares the memory and request count of running containers that can die of
them. Pod status is committed only when it differs.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import itertools
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from twin.behavior import BehaviorProfile
from twin.clock import go_duration
from twin.kubelet_env import ConfigError, listen_port, log_lines, resolve_env
from twin.kubelet_images import (
    PULL_NOT_FOUND_SECONDS,
    REPULL_SECONDS,
    Backoff,
    default_pull_policy,
    go_duration_ms,
    image_digest,
    image_id,
    image_size,
    normalize_image,
    not_found_error,
    pull_seconds,
    split_image,
)
from twin.kubelet_probes import PROBE_FIELDS, Probe, Target, run_probe
from twin.nodes import NODE_CONDITIONS, internal_ip, node_index, pod_cidr
from twin.quantity import parse_cpu, parse_memory
from twin.resources import ResourceType
from twin.runtime import ContainerRuntime, PodRuntime
from twin.store import EventType

if TYPE_CHECKING:
    from twin.cluster import Cluster

Obj = dict[str, Any]
INF = math.inf
EPS = 1e-6

#: Node status and heartbeat period (the kubelet's nodeStatusUpdateFrequency).
HEARTBEAT_SECONDS = 10.0
#: From pod admission to a ready sandbox with an IP.
SANDBOX_SECONDS = 1.0
#: The PLEG relists every second: an exit shows as `terminated` until the next sync.
PLEG_SECONDS = 1.0
#: A pod worker whose sync failed (config error, back-off) is synced again after this.
RESYNC_SECONDS = 10.0
#: From SIGTERM to exit for a process that handles it (a hung one uses the grace period).
STOP_SECONDS = 2.0
#: An init container of an image with no profile runs this long and exits 0.
INIT_UNKNOWN_SECONDS = 2.0
#: Images listed in a node's status (the kubelet's nodeStatusMaxImages).
MAX_NODE_IMAGES = 50
#: Process start to a failing start's exit (crash-on-start, config-error).
FAIL_AFTER = (1.0, 2.0)

DEFAULT_CRASH_LINES = ("fatal error: unrecoverable error, exiting",)
DEFAULT_CONFIG_LINE = "FATAL config key {key} missing"

Stage = Literal[
    "new",  # never attempted
    "pulling",
    "pull-backoff",  # ErrImagePull, then ImagePullBackOff
    "never-pull",  # ErrImageNeverPull
    "config-error",  # CreateContainerConfigError
    "running",
    "exited",  # terminated, until the next sync decides what follows
    "crashloop",  # CrashLoopBackOff
    "done",  # an init container that completed
    "dead",  # terminated and not restarted (restartPolicy)
]


@dataclass(eq=False)
class _Ctr:
    """The kubelet's record of one container of a pod (all its instances)."""

    name: str
    spec: Obj
    role: Literal["init", "sidecar", "main"]
    rt: ContainerRuntime
    field_path: str
    stage: Stage = "new"
    reason: str = ""
    message: str = ""
    #: Next start attempt while in a back-off or retry stage.
    retry_at: float = 0.0
    #: Next repeat of the back-off events.
    event_at: float = INF
    pull_ok: bool = True
    pull_done: float = 0.0
    pull_seconds: float = 0.0
    container_id: str = ""
    image_ref: str = ""
    image_id: str = ""
    started_str: str = ""
    term: Obj | None = None
    last_term: Obj | None = None
    finished: float = 0.0
    exit_at: float = INF
    exit_code: int = 0
    exit_reason: str = ""
    #: Log templates the process prints as it exits, and the config key they may name.
    exit_lines: tuple[str, ...] = ()
    exit_key: str = ""
    serving_at: float = INF
    #: The process has reached its serving state (kept while a node is down).
    serves: bool = False
    probes: list[Probe] = field(default_factory=list)
    #: status.started: running and past its startup probe.
    started_ok: bool = False
    #: A sidecar that started once no longer blocks the init sequence.
    passed: bool = False
    instances: int = 0
    crash_backoff: Backoff = field(default_factory=Backoff)
    mem_limit: float = INF
    crash_after: int | None = None
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class _Pod:
    uid: str
    namespace: str
    name: str
    node: str
    rt: PodRuntime
    inits: list[_Ctr]
    mains: list[_Ctr]
    restart_policy: str
    qos: str
    start_time: str
    host_ip: str
    host_network: bool
    ip: str = ""
    sandbox_at: float = INF
    sandbox_ready: bool = False
    initialized: bool = False
    phase: str = "Pending"
    terminal: bool = False
    deleting: bool = False
    remove_at: float = INF
    down: bool = False
    pull_backoff: dict[str, Backoff] = field(default_factory=dict)
    wake: float = INF
    dirty: bool = True

    @property
    def ref(self) -> str:
        """format.Pod: name_namespace(uid)."""
        return f"{self.name}_{self.namespace}({self.uid})"

    def containers(self) -> list[_Ctr]:
        return self.inits + self.mains


@dataclass(eq=False)
class _Node:
    name: str
    cidr: ipaddress.IPv4Network
    host_ip: str
    pods: dict[str, None] = field(default_factory=dict)
    used_ips: set[int] = field(default_factory=set)
    next_offset: int = 2
    #: Normalized image -> size in bytes.
    images: dict[str, int] = field(default_factory=dict)
    images_changed: bool = False
    down: bool = False
    #: Pods bound here while the node was down or before it existed: uid -> (ns, name).
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)


def _qos_class(spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, from every container's requests and limits."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits = res.get("limits") or {}
        requests = dict(limits)
        requests.update(res.get("requests") or {})
        if limits or res.get("requests"):
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits or name not in requests:
                guaranteed = False
                continue
            parse = parse_cpu if name == "cpu" else parse_memory
            if parse(limits[name]) != parse(requests[name]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")


def config_failure(
    profile: BehaviorProfile, env: dict[str, str], image: str
) -> tuple[tuple[str, ...], str] | None:
    """The lines a process with a configuration error prints, and the key they name.

    None when the process starts fine. A profile's `required_env` that the
    environment lacks is a configuration error; so is `start: config-error`
    (a version that wants a key its manifest does not set). The lines are the
    profile's `on_start_failure` when they name the key (`{key}` or the name
    itself), else `FATAL config key <KEY> missing`.
    """
    missing = [k for k in profile.required_env if not env.get(k)]
    if not missing and profile.start != "config-error":
        return None
    lines = profile.on_start_failure
    if missing:
        key = missing[0]
        if any("{key}" in line or key in line for line in lines):
            return lines, key
        return (DEFAULT_CONFIG_LINE,), key
    key = profile.extra.get("config_key") or ""
    if not key:
        repo = split_image(image)[0].rsplit("/", 1)[-1]
        key = re.sub(r"[^A-Z0-9]+", "_", repo.upper()).strip("_") + "_CONFIG"
    if any("{key}" in line or _ENV_NAME.search(line) for line in lines):
        return lines, key
    return (DEFAULT_CONFIG_LINE,), key


def _node_ref(name: str) -> Obj:
    """The object reference the kubelet uses for its node's events (UID is the node name)."""
    return {"kind": "Node", "apiVersion": "", "metadata": {"name": name, "uid": name}}


class Kubelet:
    """Every node's kubelet, as one controller stepped after the control plane."""

    name = "kubelet"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._pod_rt: ResourceType = cluster.rt("Pod")
        self._node_rt: ResourceType = cluster.rt("Node")
        self._nodes: dict[str, _Node] = {}
        self._pods: dict[str, _Pod] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        #: Pods to sync this tick: uid -> (namespace, name), in arrival order.
        self._dirty: dict[str, tuple[str, str]] = {}
        #: Pods changed by someone else (their spec may have changed).
        self._foreign: set[str] = set()
        self._gone: dict[str, None] = {}
        self._unbound_deleted: dict[str, tuple[str, str]] = {}
        self._new_nodes: dict[str, None] = {}
        #: Pods bound to a node name no Node object has (yet): node -> uid -> (ns, name).
        self._orphans: dict[str, dict[str, tuple[str, str]]] = {}
        self._gone_nodes: dict[str, None] = {}
        #: Running containers that can die of memory or of requests served.
        self._watched: dict[int, tuple[_Pod, _Ctr]] = {}
        self._down_seen: frozenset[str] = frozenset()
        self._scanned = False
        self._writing = False
        self._next_heartbeat = 0.0
        cluster.store.subscribe(self._on_change)

    # -- store notifications ----------------------------------------------------

    def _on_change(self, etype: EventType, rt: ResourceType, obj: Obj) -> None:
        if rt.group or self._writing:
            return
        if rt.kind == "Pod":
            meta = obj.get("metadata") or {}
            uid = meta.get("uid", "")
            if etype == "DELETED":
                self._gone[uid] = None
                return
            loc = (meta.get("namespace", ""), meta.get("name", ""))
            if (obj.get("spec") or {}).get("nodeName"):
                self._dirty[uid] = loc
                self._foreign.add(uid)
            elif meta.get("deletionTimestamp"):
                self._unbound_deleted[uid] = loc
        elif rt.kind == "Node":
            name = (obj.get("metadata") or {}).get("name", "")
            if etype == "DELETED":
                self._gone_nodes[name] = None
            elif name not in self._nodes:
                self._new_nodes[name] = None

    # -- the loop ---------------------------------------------------------------

    def step(self, cluster: Cluster, dt: float) -> None:
        now = cluster.elapsed
        if not self._scanned:
            self._scan()
        if self._new_nodes or self._gone_nodes:
            self._update_nodes(now)
        if cluster.nodes_down != self._down_seen:
            self._update_liveness(now)
        if self._gone:
            for uid in list(self._gone):
                p = self._pods.get(uid)
                if p is not None:
                    self._forget(p)
            self._gone.clear()
        if self._unbound_deleted:
            self._delete_unbound()
        if self._watched:
            self._watch(now)
        due: dict[str, tuple[str, str] | None] = {}
        heap = self._heap
        while heap and heap[0][0] <= now + EPS:
            t, _, uid = heapq.heappop(heap)
            p = self._pods.get(uid)
            if p is not None and p.wake == t:
                p.wake = INF
                due[uid] = None
        for uid, loc in self._dirty.items():
            due.setdefault(uid, loc)
        self._dirty = {}
        foreign, self._foreign = self._foreign, set()
        for uid, maybe_loc in due.items():
            self._sync_uid(uid, maybe_loc, now, uid in foreign)
        if now + EPS >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            self._heartbeat()

    def _schedule(self, p: _Pod, at: float) -> None:
        if at < p.wake and at < INF:
            p.wake = at
            heapq.heappush(self._heap, (at, next(self._seq), p.uid))

    def _scan(self) -> None:
        self._scanned = True
        store = self.cluster.store
        for node in store.list(self._node_rt, live=True):
            self._new_nodes[node["metadata"]["name"]] = None
        for pod in store.list(self._pod_rt, live=True):
            meta = pod["metadata"]
            loc = (meta.get("namespace", ""), meta["name"])
            if (pod.get("spec") or {}).get("nodeName"):
                self._dirty[meta["uid"]] = loc
            elif meta.get("deletionTimestamp"):
                self._unbound_deleted[meta["uid"]] = loc

    # -- nodes --------------------------------------------------------------------

    def _update_nodes(self, now: float) -> None:
        store = self.cluster.store
        for name in list(self._gone_nodes):
            if store.find(self._node_rt, "", name) is not None:
                continue
            node = self._nodes.pop(name, None)
            if node is None:
                continue
            # No node, no kubelet: its pods freeze where they are.
            for uid in node.pods:
                p = self._pods.get(uid)
                if p is not None:
                    self._pause(p)
        self._gone_nodes.clear()
        for name in list(self._new_nodes):
            obj = store.find(self._node_rt, "", name)
            if obj is not None and name not in self._nodes:
                self._register_node(obj, now)
        self._new_nodes.clear()

    def _register_node(self, obj: Obj, now: float) -> None:
        name = obj["metadata"]["name"]
        idx = node_index(name)
        cidr_text = (obj.get("spec") or {}).get("podCIDR") or pod_cidr(idx)
        host_ip = next(
            (
                a.get("address", "")
                for a in (obj.get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            "",
        ) or internal_ip(idx)
        node = _Node(name, ipaddress.IPv4Network(cidr_text, strict=False), host_ip)
        node.down = name in self.cluster.nodes_down
        self._nodes[name] = node
        created = obj["metadata"].get("creationTimestamp") or self.cluster.now_str()
        for cond in (obj.get("status") or {}).get("conditions") or []:
            for key in ("lastHeartbeatTime", "lastTransitionTime"):
                if not cond.get(key) or cond[key] < created:
                    cond[key] = created
        ref = _node_ref(name)
        self._node_event(ref, "Starting", "Starting kubelet.")
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            reason = NODE_CONDITIONS[ctype][1].replace("Kubelet", "Node", 1)
            self._node_event(ref, reason, f"Node {name} status is now: {reason}")
        self._node_event(
            ref, "NodeAllocatableEnforced", "Updated Node Allocatable limit across pods"
        )
        if not node.down:
            self._post_node_status(obj, node)
        # Pods that were bound to this node before it existed.
        self._dirty.update(self._orphans.pop(name, {}))
        # Pods of an earlier Node object of the same name carry on.
        for p in self._pods.values():
            if p.node == name:
                node.pods[p.uid] = None
                if p.ip and not p.host_network:
                    node.used_ips.add(int(ipaddress.IPv4Address(p.ip)))
                if not node.down:
                    self._resume(p)

    def _node_event(self, ref: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        rec = self.cluster.recorder
        if rec is not None:
            rec.event(
                ref, type_, reason, message, component="kubelet", host=ref["metadata"]["name"]
            )

    def _heartbeat(self) -> None:
        store = self.cluster.store
        for name, node in self._nodes.items():
            if node.down:
                continue
            obj = store.find(self._node_rt, "", name)
            if obj is not None:
                self._post_node_status(obj, node)

    def _post_node_status(self, obj: Obj, node: _Node) -> None:
        """What the kubelet's node status update sends: healthy conditions, fresh heartbeats."""
        now = self.cluster.now_str()
        status = obj.setdefault("status", {})
        conditions: list[Obj] = status.setdefault("conditions", [])
        by_type = {c.get("type"): c for c in conditions}
        for ctype, (cstatus, reason, message) in NODE_CONDITIONS.items():
            cond = by_type.get(ctype)
            if cond is None:
                cond = {"type": ctype}
                conditions.append(cond)
            changed = cond.get("status") != cstatus
            if changed or cond.get("reason") != reason:
                if changed:
                    cond["lastTransitionTime"] = now
                cond.update(status=cstatus, reason=reason, message=message)
                if ctype == "Ready" and changed:
                    self._node_event(
                        _node_ref(node.name),
                        "NodeReady",
                        f"Node {node.name} status is now: NodeReady",
                    )
            cond["lastHeartbeatTime"] = now
            cond.setdefault("lastTransitionTime", now)
        if node.images_changed:
            node.images_changed = False
            ranked = sorted(node.images.items(), key=lambda kv: (-kv[1], kv[0]))
            status["images"] = [
                {"names": [f"{split_image(ref)[0]}@{image_digest(ref)}", ref], "sizeBytes": size}
                for ref, size in ranked[:MAX_NODE_IMAGES]
            ]
        self._commit(self._node_rt, obj)

    def _update_liveness(self, now: float) -> None:
        down = frozenset(self.cluster.nodes_down)
        self._down_seen = down
        for name, node in self._nodes.items():
            if name in down and not node.down:
                node.down = True
                for uid in node.pods:
                    p = self._pods.get(uid)
                    if p is not None:
                        self._pause(p)
            elif name not in down and node.down:
                node.down = False
                for uid in node.pods:
                    p = self._pods.get(uid)
                    if p is not None:
                        self._resume(p)
                for uid, loc in node.waiting.items():
                    self._dirty[uid] = loc
                node.waiting.clear()
                obj = self.cluster.store.find(self._node_rt, "", name)
                if obj is not None:
                    self._post_node_status(obj, node)

    def _pause(self, p: _Pod) -> None:
        """The node's kubelet died: the pod's processes stop serving and nothing is reported."""
        p.down = True
        for c in p.containers():
            c.rt.serving = False
            self._watched.pop(id(c), None)

    def _resume(self, p: _Pod) -> None:
        p.down = False
        p.dirty = True
        for c in p.containers():
            if c.stage == "running":
                c.rt.serving = c.serves
                self._watch_ctr(p, c)
        self._dirty[p.uid] = (p.namespace, p.name)

    # -- admission of a pod to its node ----------------------------------------

    def _sync_uid(self, uid: str, loc: tuple[str, str] | None, now: float, foreign: bool) -> None:
        p = self._pods.get(uid)
        store = self.cluster.store
        if p is None:
            if loc is None:
                return
            obj = store.find(self._pod_rt, *loc)
            if obj is None or obj["metadata"].get("uid") != uid:
                return
            p = self._admit(obj, now)
            if p is None:
                return
        else:
            obj = store.find(self._pod_rt, p.namespace, p.name)
            if obj is None or obj["metadata"].get("uid") != uid:
                self._forget(p)
                return
            if foreign:
                p.dirty = True
                self._check_spec(p, obj, now)
        self._schedule(p, self._sync(p, obj, now))

    def _admit(self, obj: Obj, now: float) -> _Pod | None:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        node_name = str(spec.get("nodeName", ""))
        node = self._nodes.get(node_name)
        loc = (meta.get("namespace", ""), meta["name"])
        if node is None:
            self._orphans.setdefault(node_name, {})[meta["uid"]] = loc
            return None
        if node.down:
            node.waiting[meta["uid"]] = loc
            return None
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            # Finished before this kubelet knew it: nothing runs, deletion is immediate.
            if meta.get("deletionTimestamp"):
                self._remove(obj)
            return None
        uid = meta["uid"]
        has_init = bool(spec.get("initContainers"))
        prt = PodRuntime(
            uid=uid,
            namespace=loc[0],
            name=loc[1],
            node=node.name,
            workload=self._workload(obj),
            created_at=now,
        )
        inits = [
            self._new_ctr(
                c,
                "sidecar" if c.get("restartPolicy") == "Always" else "init",
                "spec.initContainers",
                has_init,
            )
            for c in spec.get("initContainers") or []
        ]
        mains = [
            self._new_ctr(c, "main", "spec.containers", has_init)
            for c in spec.get("containers") or []
        ]
        for c in inits + mains:
            if c.role != "init":
                prt.containers[c.name] = c.rt
        host_network = bool(spec.get("hostNetwork"))
        p = _Pod(
            uid=uid,
            namespace=loc[0],
            name=loc[1],
            node=node.name,
            rt=prt,
            inits=inits,
            mains=mains,
            restart_policy=spec.get("restartPolicy") or "Always",
            qos=_qos_class(spec),
            start_time=self.cluster.now_str(),
            host_ip=node.host_ip,
            host_network=host_network,
            initialized=not inits,
            sandbox_at=now + SANDBOX_SECONDS,
        )
        self._pods[uid] = p
        self.cluster.pods[uid] = prt
        node.pods[uid] = None
        return p

    def _new_ctr(
        self, spec: Obj, role: Literal["init", "sidecar", "main"], path: str, has_init: bool
    ) -> _Ctr:
        name = str(spec.get("name", ""))
        image = str(spec.get("image", ""))
        rt = ContainerRuntime(name=name, image=image, profile=self.cluster.behaviors.get(image))
        limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        return _Ctr(
            name=name,
            spec=spec,
            role=role,
            rt=rt,
            field_path=f"{path}{{{name}}}",
            reason="PodInitializing" if has_init else "ContainerCreating",
            mem_limit=float(parse_memory(limit)) if limit is not None else INF,
        )

    def _workload(self, obj: Obj) -> tuple[str, str] | None:
        """The Deployment/StatefulSet (or other controller) that owns the pod."""
        meta = obj["metadata"]
        refs = meta.get("ownerReferences") or []
        ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
        if ref is None:
            return None
        kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
        if kind == "ReplicaSet":
            rs = self.cluster.store.find(
                self.cluster.rt("ReplicaSet"), meta.get("namespace", ""), name
            )
            rs_refs = (rs or {}).get("metadata", {}).get("ownerReferences") or []
            owner = next(
                (r for r in rs_refs if r.get("controller")), rs_refs[0] if rs_refs else None
            )
            if owner is not None:
                return (str(owner.get("kind", "")), str(owner.get("name", "")))
        return (kind, name)

    def _check_spec(self, p: _Pod, obj: Obj, now: float) -> None:
        """A container's image changed in the pod spec: the kubelet restarts it."""
        spec = obj.get("spec") or {}
        by_name = {
            str(c.get("name")): c
            for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
        }
        for c in p.containers():
            new = by_name.get(c.name)
            if new is None or new.get("image") == c.spec.get("image"):
                continue
            c.spec = new
            if c.stage == "running" and c.role != "init":
                self._event(
                    p,
                    obj,
                    "Normal",
                    "Killing",
                    f"Container {c.name} definition changed, will be restarted",
                    c,
                )
                self._exit(p, c, now, 0, "Completed")

    def _forget(self, p: _Pod) -> None:
        self._pods.pop(p.uid, None)
        self.cluster.pods.pop(p.uid, None)
        self.cluster.logs.forget(p.uid)
        for c in p.containers():
            self._watched.pop(id(c), None)
        node = self._nodes.get(p.node)
        if node is not None:
            node.pods.pop(p.uid, None)
            if p.ip and not p.host_network:
                node.used_ips.discard(int(ipaddress.IPv4Address(p.ip)))

    def _delete_unbound(self) -> None:
        """Remove deleted pods that no node runs.

        The API server deletes an unscheduled pod at once; the twin's store only
        marks it, so the kubelet side finishes the job.
        """
        store = self.cluster.store
        for uid, (ns, name) in list(self._unbound_deleted.items()):
            obj = store.find(self._pod_rt, ns, name)
            if (
                obj is not None
                and obj["metadata"].get("uid") == uid
                and not (obj.get("spec") or {}).get("nodeName")
            ):
                store.delete(self._pod_rt, ns, name)
        self._unbound_deleted.clear()

    # -- pod sync -------------------------------------------------------------------

    def _sync(self, p: _Pod, obj: Obj, now: float) -> float:
        """Do what is due for the pod; return when it next needs a sync."""
        if p.down:
            return INF
        if obj["metadata"].get("deletionTimestamp"):
            return self._sync_deleting(p, obj, now)
        nxt = INF
        if not p.terminal:
            if not p.sandbox_ready:
                if now + EPS >= p.sandbox_at:
                    self._create_sandbox(p, obj, now)
                else:
                    nxt = p.sandbox_at
            if p.sandbox_ready:
                nxt = self._sync_containers(p, obj, now)
        if p.dirty:
            self._write_status(p, obj)
        return nxt

    def _create_sandbox(self, p: _Pod, obj: Obj, now: float) -> None:
        if p.host_network:
            p.ip = p.host_ip
        else:
            node = self._nodes[p.node]
            ip = self._allocate_ip(node)
            if ip is None:
                net = node.cidr
                self._event(
                    p,
                    obj,
                    "Warning",
                    "FailedCreatePodSandBox",
                    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to "
                    'setup network for sandbox: plugin type="bridge" failed (add): '
                    "failed to allocate for range 0: no IP addresses available in range set: "
                    f"{net.network_address + 1}-{net.broadcast_address - 1}",
                )
                p.sandbox_at = now + RESYNC_SECONDS
                return
            p.ip = ip
        p.sandbox_ready = True
        p.dirty = True

    def _allocate_ip(self, node: _Node) -> str | None:
        """Sequential allocation from the node's podCIDR, as the host-local IPAM plugin does."""
        base = int(node.cidr.network_address)
        last = node.cidr.num_addresses - 2
        span = last - 1
        for i in range(span):
            offset = 2 + (node.next_offset - 2 + i) % span
            if base + offset not in node.used_ips:
                node.used_ips.add(base + offset)
                node.next_offset = offset + 1
                return str(ipaddress.IPv4Address(base + offset))
        return None

    def _sync_containers(self, p: _Pod, obj: Obj, now: float) -> float:
        nxt = INF
        blocked = False
        for c in p.inits:
            if c.role == "init":
                if c.stage == "done":
                    continue
                if blocked:
                    break
                nxt = min(nxt, self._sync_ctr(p, obj, c, now))
                stage: str = c.stage
                if stage == "dead":
                    # An init container failed and restartPolicy is Never: the pod fails.
                    p.phase = "Failed"
                    p.dirty = True
                    self._terminate_pod(p)
                if stage != "done":
                    blocked = True
            else:
                if blocked and not c.passed:
                    break
                nxt = min(nxt, self._sync_ctr(p, obj, c, now))
                if c.stage == "running" and c.started_ok:
                    c.passed = True
                if not c.passed:
                    blocked = True
            if p.terminal:
                return INF
        if not blocked and not p.initialized:
            p.initialized = True
            p.dirty = True
        if p.initialized:
            for c in p.mains:
                nxt = min(nxt, self._sync_ctr(p, obj, c, now))
            self._update_phase(p)
        return INF if p.terminal else nxt

    def _sync_ctr(self, p: _Pod, obj: Obj, c: _Ctr, now: float) -> float:
        stage = c.stage
        if stage == "running":
            return self._tick_running(p, obj, c, now)
        if stage == "pulling":
            if now + EPS < c.pull_done:
                return c.pull_done
            return self._finish_pull(p, obj, c, now)
        if stage == "exited":
            if now + EPS < c.finished + PLEG_SECONDS:
                return c.finished + PLEG_SECONDS
            return self._after_exit(p, obj, c, now)
        if stage == "crashloop" and now + EPS >= c.retry_at:
            # The back-off is over: the next start doubles it (flowcontrol.Backoff.Next).
            c.crash_backoff.next(c.finished)
            return self._attempt(p, obj, c, now)
        if stage == "new" or (
            stage in ("pull-backoff", "config-error", "never-pull") and now + EPS >= c.retry_at
        ):
            return self._attempt(p, obj, c, now)
        if stage in ("pull-backoff", "crashloop"):
            if now + EPS >= c.event_at:
                self._backoff_events(p, obj, c)
                c.event_at = now + RESYNC_SECONDS
            return min(c.retry_at, c.event_at)
        if stage in ("config-error", "never-pull"):
            return c.retry_at
        return INF

    def _backoff_events(self, p: _Pod, obj: Obj, c: _Ctr) -> None:
        image = c.spec.get("image", "")
        if c.stage == "crashloop":
            self._event(
                p,
                obj,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {c.name} in pod {p.ref}",
                c,
            )
            return
        message = f'Back-off pulling image "{image}"'
        self._event(p, obj, "Normal", "BackOff", message, c)
        self._event(p, obj, "Warning", "Failed", "Error: ImagePullBackOff", c)
        if c.reason != "ImagePullBackOff":
            c.reason, c.message = "ImagePullBackOff", message
            p.dirty = True

    # -- starting a container ------------------------------------------------------

    def _attempt(self, p: _Pod, obj: Obj, c: _Ctr, now: float) -> float:
        """One start attempt: make sure the image is there, then create and start."""
        if c.term is not None:
            c.last_term, c.term = c.term, None
            p.dirty = True
        image = str(c.spec.get("image", ""))
        policy = c.spec.get("imagePullPolicy") or default_pull_policy(image)
        node = self._nodes[p.node]
        present = normalize_image(image) in node.images
        if policy != "Always" and present:
            self._event(
                p,
                obj,
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
                c,
            )
            return self._create(p, obj, c, now)
        if policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self._event(p, obj, "Warning", "ErrImageNeverPull", message, c)
            self._event(p, obj, "Warning", "Failed", "Error: ErrImageNeverPull", c)
            c.stage, c.reason, c.message = "never-pull", "ErrImageNeverPull", message
            c.retry_at = now + RESYNC_SECONDS
            p.dirty = True
            return c.retry_at
        backoff = p.pull_backoff.get(image)
        if backoff is not None and backoff.delay and backoff.in_backoff_since_update(now):
            c.stage = "pull-backoff"
            c.retry_at = backoff.last_update + backoff.delay
            self._backoff_events(p, obj, c)
            c.event_at = now + RESYNC_SECONDS
            return min(c.retry_at, c.event_at)
        self._event(p, obj, "Normal", "Pulling", f'Pulling image "{image}"', c)
        missing = self.cluster.behaviors.get(image).start == "missing-image" and not present
        c.pull_ok = not missing
        if missing:
            c.pull_seconds = PULL_NOT_FOUND_SECONDS
        elif present:
            c.pull_seconds = REPULL_SECONDS
        else:
            c.pull_seconds = pull_seconds(image)
        c.stage = "pulling"
        c.pull_done = now + c.pull_seconds
        return c.pull_done

    def _finish_pull(self, p: _Pod, obj: Obj, c: _Ctr, now: float) -> float:
        image = str(c.spec.get("image", ""))
        if not c.pull_ok:
            error = not_found_error(image)
            self._event(p, obj, "Warning", "Failed", f'Failed to pull image "{image}": {error}', c)
            self._event(p, obj, "Warning", "Failed", "Error: ErrImagePull", c)
            backoff = p.pull_backoff.setdefault(image, Backoff())
            backoff.next(now)
            c.stage, c.reason, c.message = "pull-backoff", "ErrImagePull", error
            c.retry_at = now + (backoff.delay or 0.0)
            # The next sync, a second later, finds the pull in back-off.
            c.event_at = now + PLEG_SECONDS
            p.dirty = True
            return min(c.retry_at, c.event_at)
        took = go_duration_ms(c.pull_seconds)
        size = image_size(image)
        self._event(
            p,
            obj,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
            f"Image size: {size} bytes.",
            c,
        )
        node = self._nodes[p.node]
        ref = normalize_image(image)
        if ref not in node.images:
            node.images[ref] = size
            node.images_changed = True
        p.pull_backoff.pop(image, None)
        return self._create(p, obj, c, now)

    def _create(self, p: _Pod, obj: Obj, c: _Ctr, now: float) -> float:
        """Generate the container's config, create it and start it."""
        try:
            env = resolve_env(self.cluster, obj, c.spec)
        except ConfigError as err:
            self._event(p, obj, "Warning", "Failed", f"Error: {err}", c)
            if c.stage != "config-error" or c.message != str(err):
                p.dirty = True
            c.stage, c.reason, c.message = "config-error", "CreateContainerConfigError", str(err)
            c.retry_at = now + RESYNC_SECONDS
            return c.retry_at
        image = str(c.spec.get("image", ""))
        profile = self.cluster.behaviors.get(image)
        known = self.cluster.behaviors.known(image)
        rt = c.rt
        if c.instances:
            rt.restart_count += 1
        c.instances += 1
        digest = hashlib.sha256(f"{self.cluster.seed}/{p.uid}/{c.name}/{c.instances}".encode())
        c.container_id = "containerd://" + digest.hexdigest()
        c.image_ref = normalize_image(image)
        c.image_id = image_id(image)
        self._event(p, obj, "Normal", "Created", f"Created container: {c.name}", c)
        self._event(p, obj, "Normal", "Started", f"Started container {c.name}", c)
        c.stage, c.reason, c.message = "running", "", ""
        c.started_str = self.cluster.now_str()
        c.env = env
        c.port = listen_port(c.spec, env, profile)
        c.serves = False
        c.exit_at = INF
        c.serving_at = INF
        c.crash_after = None
        rt.image, rt.profile = image, profile
        rt.phase = "running"
        rt.started_at = now
        rt.memory = profile.memory / 3
        rt.memory_peak = rt.memory
        rt.cpu = 0.0
        rt.requests_served = 0
        rt.serving = False
        rt.ready = False
        rt.probe_failures = {}
        rt.scratch["env"] = env
        rt.scratch["port"] = c.port
        self.cluster.logs.new_instance(p.uid, c.name)

        config = config_failure(profile, env, image)
        if config is not None:
            self._fail_later(p, c, now, 1, *config)
        elif profile.start == "crash-on-start":
            self._fail_later(p, c, now, 1, profile.on_start_failure or DEFAULT_CRASH_LINES, "")
        else:
            if c.role != "init" or known:
                self._log(p, c, "info", profile.startup_logs, self.cluster.clock.at(now))
            if c.role == "init":
                c.exit_at = now + (profile.startup_seconds if known else INIT_UNKNOWN_SECONDS)
                c.exit_code, c.exit_reason, c.exit_lines = 0, "Completed", ()
            else:
                c.serving_at = now + profile.startup_seconds
                if profile.start == "crash-after-requests":
                    c.crash_after = profile.crash_after
        c.probes = []
        if c.role != "init":
            c.probes = [
                Probe.from_spec(kind, c.spec[fld], now)
                for kind, fld in PROBE_FIELDS.items()
                if c.spec.get(fld)
            ]
        c.started_ok = not any(pr.kind == "startup" for pr in c.probes)
        rt.ready = c.role != "init" and c.started_ok and not c.spec.get("readinessProbe")
        self._watch_ctr(p, c)
        p.dirty = True
        return self._tick_running(p, obj, c, now)

    def _fail_later(
        self, p: _Pod, c: _Ctr, now: float, code: int, lines: tuple[str, ...], key: str
    ) -> None:
        c.exit_at = now + self.cluster.rng.uniform(*FAIL_AFTER)
        c.exit_code, c.exit_reason = code, "Error"
        c.exit_lines, c.exit_key = lines, key

    def _values(self, p: _Pod, c: _Ctr, key: str) -> dict[str, object]:
        return {
            "port": c.port,
            "pod": p.name,
            "namespace": p.namespace,
            "node": p.node,
            "ip": p.ip,
            "container": c.name,
            "image": c.rt.image,
            "key": key,
        }

    def _log(
        self,
        p: _Pod,
        c: _Ctr,
        severity: str,
        templates: tuple[str, ...],
        ts: datetime,
        key: str = "",
        *,
        spacing_ms: float = 3.0,
    ) -> None:
        """Append the profile's log templates to the container's current log."""
        values = self._values(p, c, key)
        profile = c.rt.profile
        append = self.cluster.logs.append
        for i, template in enumerate(templates):
            at = ts + timedelta(milliseconds=spacing_ms * i)
            for line in log_lines(profile, template, severity, at, values, c.env, hostname=p.name):
                append(p.uid, c.name, at, line)

    def _watch_ctr(self, p: _Pod, c: _Ctr) -> None:
        if c.stage == "running" and (c.mem_limit < INF or c.crash_after is not None):
            self._watched[id(c)] = (p, c)

    # -- a running container -------------------------------------------------------

    def _tick_running(self, p: _Pod, obj: Obj, c: _Ctr, now: float) -> float:
        if now + EPS >= c.exit_at:
            self._exit(
                p, c, now, c.exit_code, c.exit_reason, c.exit_lines, c.exit_key, severity="error"
            )
            return now + PLEG_SECONDS
        nxt = c.exit_at
        if c.serving_at < INF:
            if now + EPS >= c.serving_at:
                c.serving_at = INF
                c.serves = True
                c.rt.serving = True
            else:
                nxt = min(nxt, c.serving_at)
        for probe in c.probes:
            if probe.due(now):
                probe.advance(now)
                if (probe.kind == "startup") != c.started_ok and not probe.before_delay(now):
                    self._probe(p, obj, c, probe, now)
                    if c.stage != "running":
                        return now + PLEG_SECONDS
            nxt = min(nxt, probe.next_at)
        return nxt

    def _probe(self, p: _Pod, obj: Obj, c: _Ctr, probe: Probe, now: float) -> None:
        rt = c.rt
        hung = any(e.kind == "hang" for e in self.cluster.effects_for(p.rt, rt.image))
        target = Target(
            ip=p.ip,
            port=c.port,
            listening=rt.serving,
            latency_ms=0.0 if hung else p.rt.latency_ms,
            profile=rt.profile,
            known=self.cluster.behaviors.known(rt.image),
        )
        result = run_probe(probe.spec, c.spec, target, probe.timeout)
        if result.ok:
            probe.successes += 1
            probe.failures = 0
        else:
            probe.failures += 1
            probe.successes = 0
            verb = "errored" if result.errored else "failed"
            self._event(
                p, obj, "Warning", "Unhealthy", f"{probe.label} probe {verb}: {result.output}", c
            )
        rt.probe_failures[probe.kind] = probe.failures
        if probe.kind == "readiness":
            if result.ok and not rt.ready and probe.successes >= probe.success_threshold:
                rt.ready = True
                p.dirty = True
            elif not result.ok and rt.ready and probe.failures >= probe.failure_threshold:
                rt.ready = False
                p.dirty = True
        elif probe.kind == "startup":
            if result.ok and probe.successes >= probe.success_threshold:
                c.started_ok = True
                rt.ready = not c.spec.get("readinessProbe")
                p.dirty = True
            elif not result.ok and probe.failures >= probe.failure_threshold:
                self._kill_for_probe(p, obj, c, "startup", now)
        elif not result.ok and probe.failures >= probe.failure_threshold:
            self._kill_for_probe(p, obj, c, "liveness", now)

    def _kill_for_probe(self, p: _Pod, obj: Obj, c: _Ctr, kind: str, now: float) -> None:
        self._event(
            p,
            obj,
            "Normal",
            "Killing",
            f"Container {c.name} failed {kind} probe, will be restarted",
            c,
        )
        self._exit(p, c, now, 137, "Error")

    def _watch(self, now: float) -> None:
        fired: list[tuple[_Pod, _Ctr, int, str]] = []
        for p, c in self._watched.values():
            rt = c.rt
            if rt.memory > c.mem_limit:
                fired.append((p, c, 137, "OOMKilled"))
            elif c.crash_after is not None and rt.requests_served >= c.crash_after:
                fired.append((p, c, 2, "Error"))
        for p, c, code, reason in fired:
            lines: tuple[str, ...] = ()
            if reason == "Error":
                profile = c.rt.profile
                crash = profile.extra.get("crash_log")
                raw = tuple(crash.splitlines()) if crash else profile.on_start_failure
                lines = raw or DEFAULT_CRASH_LINES
            self._exit(p, c, now, code, reason, lines, severity="error")
            self._dirty[p.uid] = (p.namespace, p.name)

    def _exit(
        self,
        p: _Pod,
        c: _Ctr,
        now: float,
        code: int,
        reason: str,
        lines: tuple[str, ...] = (),
        key: str = "",
        *,
        severity: str = "info",
    ) -> None:
        """The container's process ended: record it as containerd reports it.

        `lines` are log templates the process prints just before it exits.
        """
        if lines:
            ts = self.cluster.clock.at(now) - timedelta(milliseconds=2 * len(lines) + 1)
            self._log(p, c, severity, lines, ts, key, spacing_ms=2.0)
        c.term = {
            "exitCode": code,
            "reason": reason,
            "startedAt": c.started_str,
            "finishedAt": self.cluster.now_str(),
            "containerID": c.container_id,
        }
        c.finished = now
        c.stage = "exited"
        c.exit_at = INF
        c.serving_at = INF
        c.serves = False
        c.started_ok = False
        c.probes = []
        c.crash_after = None
        rt = c.rt
        rt.phase = "terminated"
        rt.serving = False
        rt.ready = False
        self._watched.pop(id(c), None)
        p.dirty = True
        self._schedule(p, now + PLEG_SECONDS)

    def _after_exit(self, p: _Pod, obj: Obj, c: _Ctr, now: float) -> float:
        code = int((c.term or {}).get("exitCode", 0))
        if c.role == "init" and code == 0:
            c.stage = "done"
            p.dirty = True
            return INF
        policy = p.restart_policy
        if c.role == "sidecar":
            restart = True
        elif c.role == "init":
            restart = policy != "Never"
        else:
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if not restart:
            c.stage = "dead"
            p.dirty = True
            return INF
        backoff = c.crash_backoff
        if backoff.in_backoff_since(c.finished, now):
            delay = backoff.delay or 0.0
            c.last_term, c.term = c.term, None
            c.stage = "crashloop"
            c.reason = "CrashLoopBackOff"
            c.message = (
                f"back-off {go_duration(delay)} restarting failed container={c.name} pod={p.ref}"
            )
            c.retry_at = c.finished + delay
            self._backoff_events(p, obj, c)
            c.event_at = now + RESYNC_SECONDS
            p.dirty = True
            return min(c.retry_at, c.event_at)
        backoff.next(c.finished)
        return self._attempt(p, obj, c, now)

    # -- phase and status ------------------------------------------------------------

    def _update_phase(self, p: _Pod) -> None:
        running = waiting = stopped = succeeded = 0
        for c in p.mains:
            if c.stage == "running":
                running += 1
                continue
            term = c.term if c.term is not None else c.last_term
            if term is None:
                waiting += 1
                continue
            stopped += 1
            if term.get("exitCode") == 0:
                succeeded += 1
        restarting = any(c.stage != "dead" for c in p.mains)
        if waiting:
            phase = "Pending"
        elif running or p.restart_policy == "Always" or restarting:
            phase = "Running"
        elif stopped == succeeded:
            phase = "Succeeded"
        else:
            phase = "Failed"
        if phase != p.phase:
            p.phase = phase
            p.dirty = True
        if phase in ("Succeeded", "Failed"):
            self._terminate_pod(p)

    def _terminate_pod(self, p: _Pod) -> None:
        p.terminal = True
        for c in p.containers():
            if c.stage == "running":
                self._exit(p, c, self.cluster.elapsed, 0, "Completed")
                c.stage = "dead"
            self._watched.pop(id(c), None)

    def _write_status(self, p: _Pod, obj: Obj) -> None:
        p.dirty = False
        old: Obj = obj.get("status") or {}
        status: Obj = {"phase": p.phase, "conditions": self._conditions(p, obj, old)}
        for key in ("message", "reason", "nominatedNodeName"):
            if key in old:
                status[key] = old[key]
        status["hostIP"] = p.host_ip
        status["hostIPs"] = [{"ip": p.host_ip}]
        if p.ip:
            status["podIP"] = p.ip
            status["podIPs"] = [{"ip": p.ip}]
        status["startTime"] = p.start_time
        if p.inits:
            status["initContainerStatuses"] = [self._ctr_status(c) for c in p.inits]
        status["containerStatuses"] = [self._ctr_status(c) for c in p.mains]
        status["qosClass"] = p.qos
        for key, value in old.items():
            status.setdefault(key, value)
        if status != old:
            obj["status"] = status
            self._commit(self._pod_rt, obj)

    def _conditions(self, p: _Pod, obj: Obj, old: Obj) -> list[Obj]:
        now = self.cluster.now_str()
        previous = {c.get("type"): c for c in old.get("conditions") or []}

        def cond(ctype: str, status: str, reason: str = "", message: str = "") -> Obj:
            prev = previous.get(ctype)
            since = (
                prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
            )
            out: Obj = {
                "type": ctype,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": since or now,
            }
            if reason:
                out["reason"] = reason
            if message:
                out["message"] = message
            return out

        incomplete = [
            c.name
            for c in p.inits
            if (c.role == "init" and c.stage != "done") or (c.role == "sidecar" and not c.passed)
        ]
        if p.initialized or not incomplete:
            initialized = cond("Initialized", "True")
        else:
            initialized = cond(
                "Initialized",
                "False",
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
            )
        if p.terminal:
            reason = "PodCompleted" if p.phase == "Succeeded" else "PodFailed"
            ready_args = ("False", reason, "")
        else:
            unready = [c.name for c in p.inits if c.role == "sidecar" and not c.rt.ready]
            unready += [c.name for c in p.mains if not c.rt.ready]
            if unready:
                message = f"containers with unready status: [{' '.join(unready)}]"
                ready_args = ("False", "ContainersNotReady", message)
            else:
                ready_args = ("True", "", "")
        scheduled = previous.get("PodScheduled") or {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": obj["metadata"].get("creationTimestamp") or now,
        }
        mine = [
            cond("PodReadyToStartContainers", "True" if p.sandbox_ready else "False"),
            initialized,
            cond("Ready", *ready_args),
            cond("ContainersReady", *ready_args),
            scheduled,
        ]
        owned = {c["type"] for c in mine}
        return mine + [c for t, c in previous.items() if t not in owned]

    def _ctr_status(self, c: _Ctr) -> Obj:
        if c.stage == "running":
            state: Obj = {"running": {"startedAt": c.started_str}}
        elif c.term is not None:
            state = {"terminated": dict(c.term)}
        else:
            waiting = {"reason": c.reason}
            if c.message:
                waiting["message"] = c.message
            state = {"waiting": waiting}
        if c.role == "init":
            ready = c.term is not None and c.term.get("exitCode") == 0
        else:
            ready = c.stage == "running" and c.rt.ready
        out: Obj = {
            "name": c.name,
            "state": state,
            "lastState": {"terminated": dict(c.last_term)} if c.last_term else {},
            "ready": ready,
            "restartCount": c.rt.restart_count,
            "image": c.image_ref or str(c.spec.get("image", "")),
            "imageID": c.image_id,
        }
        if c.container_id:
            out["containerID"] = c.container_id
        out["started"] = c.stage == "running" and c.started_ok
        return out

    # -- deletion --------------------------------------------------------------------

    def _sync_deleting(self, p: _Pod, obj: Obj, now: float) -> float:
        if not p.deleting:
            p.deleting = True
            meta = obj["metadata"]
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            running = [c for c in p.containers() if c.stage == "running"]
            for c in running:
                self._event(p, obj, "Normal", "Killing", f"Stopping container {c.name}", c)
                self._watched.pop(id(c), None)
                c.probes = []
            hung = any(e.kind == "hang" for e in self.cluster.effects_for(p.rt))
            stop = float(grace) if hung else min(float(grace), STOP_SECONDS)
            p.remove_at = now + (stop if running else 0.0)
        if now + EPS < p.remove_at:
            return p.remove_at
        self._remove(obj)
        self._forget(p)
        return INF

    def _remove(self, obj: Obj) -> None:
        """Delete the pod object: its containers are gone (the status manager's final delete)."""
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        self._writing = True
        try:
            if self.cluster.store.find(self._pod_rt, namespace, name) is obj:
                self.cluster.store.delete(self._pod_rt, namespace, name)
        finally:
            self._writing = False

    # -- helpers -------------------------------------------------------------------

    def _event(
        self, p: _Pod, obj: Obj, type_: str, reason: str, message: str, c: _Ctr | None = None
    ) -> None:
        rec = self.cluster.recorder
        if rec is None:
            return
        rec.event(
            obj,
            type_,
            reason,
            message,
            component="kubelet",
            host=p.node,
            field_path=c.field_path if c is not None else "",
        )

    def _commit(self, rt: ResourceType, obj: Obj) -> None:
        self._writing = True
        try:
            self.cluster.store.commit(rt, obj)
        finally:
            self._writing = False


def install(cluster: Cluster) -> None:
    """Add the kubelet to the cluster's controllers (after the control plane's)."""
    cluster.controllers.append(Kubelet(cluster))


def kubelet_of(cluster: Cluster) -> Kubelet | None:
    """The installed kubelet, if any."""
    return next((c for c in cluster.controllers if isinstance(c, Kubelet)), None)


__all__ = ["Kubelet", "install", "kubelet_of"]
