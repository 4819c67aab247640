"""The traffic model: load through the app's call graph, and what it does to every process.

No request is simulated one by one. Every `period` simulated seconds the model
computes rates and probabilities from the cluster as it is (objects, hidden
runtime state, injected effects), reading nothing but Kubernetes objects and
behaviour profiles, never an app's or a service's name:

1. Load (`cluster.traffic`: rps x factor) enters the entry Service, sent by the
   pods that address it in their env and that no Service selects (a load
   generator), or from outside the cluster when there are none.
2. Each process splits its requests over its operations and makes the calls
   its profile declares (`per_request` times, for the operations that make
   them); twin/traffic_net.py says where each call lands.
3. CPU follows the request rate (profile.cpu at reference_rps) plus any hog,
   capped by the container's limit (throttling: latency rises, then requests
   beyond the capacity time out); a busy node slows its other pods.
4. Outcomes compose bottom-up: a callee's failures, hangs and latency become
   its callers' (hard dependencies fail the request, soft ones only log a
   warning), with the error text the caller's client prints.
5. The results land where a real cluster shows them: PodRuntime/ContainerRuntime
   (rps, error ratio, latency, CPU, memory, requests served), container logs
   (a few sampled lines per pod and period), and telemetry (mesh metrics per
   edge, sampled traces).

Randomness comes only from `cluster.rng`, so a seed replays the same run.
"""

from __future__ import annotations

import functools
import math
import string
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from twin.behavior import BehaviorProfile, Call, Operation
from twin.quantity import parse_cpu, parse_quantity
from twin.runtime import Effect
from twin.traffic_errors import FailureKind, client_error, default_code
from twin.traffic_logs import plain_line, render
from twin.traffic_net import (
    Leg,
    Network,
    Proc,
    Route,
    address_env,
    call_protocol,
    call_target,
    implicit_calls,
    parse_address,
)

if TYPE_CHECKING:
    from twin.cluster import Cluster
    from twin.resources import ResourceType
    from twin.telemetry import Telemetry

Obj = dict[str, Any]

#: Simulated seconds between two computations of the traffic.
DEFAULT_PERIOD = 5.0
#: A caller's deadline when its call declares none. gRPC Go clients set none by
#: default; this stands for the deadline the outermost client imposes.
DEFAULT_TIMEOUT_MS = 10_000.0
#: One network hop through kube-proxy (and a sidecar), ms.
NETWORK_MS = 0.35
#: A refused connection or an unknown host answers about this fast, ms.
FAST_FAIL_MS = 1.0
#: Spread of one request's latency around its mean (lognormal sigma).
SIGMA = 0.45
#: CPU a process uses with no traffic, as a fraction of profile.cpu.
IDLE_CPU = 0.05
#: Seconds for a fresh container's working set to approach its steady state.
MEMORY_WARMUP = 10.0
#: Sampled log lines per process and period (requests, errors per cause, warnings).
INFO_SAMPLES = 1
ERROR_SAMPLES = 4
WARNING_SAMPLES = 2
NOISE_CAP = 60
#: Node CPU when a Node object gives none, cores.
DEFAULT_NODE_CPU = 8.0

#: (status code, detail, logged verbatim) of an error a process answers with.
ErrKey = tuple[str, str, bool]


@dataclass(eq=False, slots=True)
class Outcome:
    """How one process answers one of its operations during a period."""

    #: Own service time (throttling and latency effects included), ms.
    own_ms: float
    #: Mean latency of the answered requests that were not held up, ms.
    lat: float
    #: Fraction answered with an error.
    fail: float = 0.0
    #: Fraction never answered (the caller's deadline expires).
    hang: float = 0.0
    #: Fraction answered late (behind a slow or timed-out dependency), and their latency.
    slow: float = 0.0
    slow_lat: float = 0.0
    errors: dict[ErrKey, float] = field(default_factory=dict)
    #: (call index, caller-visible message) -> fraction of requests with that soft failure.
    warnings: dict[tuple[int, str], float] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class LegStat:
    """What one share of a call's attempts got back (for mesh metrics)."""

    leg: Leg
    ok: float = 0.0
    #: status code -> fraction answered with that error.
    errors: dict[str, float] = field(default_factory=dict)
    timeout: float = 0.0
    auth: float = 0.0
    lat: float = 0.0
    slow: float = 0.0
    slow_lat: float = 0.0


@dataclass(eq=False, slots=True)
class Attempt:
    """One call's attempts from one process, summed over where they land."""

    timeout_ms: float
    fail: float = 0.0
    timeout: float = 0.0
    #: caller-visible message -> fraction of attempts failing with it.
    errors: dict[str, float] = field(default_factory=dict)
    lat: float = 0.0
    slow: float = 0.0
    slow_lat: float = 0.0
    legs: list[LegStat] = field(default_factory=list)


@dataclass(eq=False)
class Entry:
    """Load entering the app from one source this period."""

    source: Proc | None
    route: Route
    rate: float
    call: Call
    attempt: Attempt | None = None


def install(cluster: Cluster, *, period: float = DEFAULT_PERIOD) -> Traffic:
    """Append the traffic model to the cluster's controllers and install its telemetry."""
    from twin.telemetry import Telemetry

    telemetry = cluster.telemetry if isinstance(cluster.telemetry, Telemetry) else Telemetry()
    cluster.telemetry = telemetry
    traffic = Traffic(telemetry, period=period)
    cluster.controllers.append(traffic)
    return traffic


def lognormal_tail(mean: float, threshold: float, sigma: float = SIGMA) -> float:
    """P(X > threshold) for a lognormal latency with the given mean."""
    if mean <= 0:
        return 0.0
    if threshold <= 0:
        return 1.0
    mu = math.log(mean) - sigma * sigma / 2
    tail = 0.5 * math.erfc((math.log(threshold) - mu) / (sigma * math.sqrt(2)))
    # Below one request in a billion is no request at all.
    return tail if tail > 1e-9 else 0.0


def queue_factor(utilisation: float) -> float:
    """Latency multiplier of a process using `utilisation` of the CPU it may use."""
    q = min(max(utilisation, 0.0), 0.95)
    factor = 1.0 + q**4 / (1.0 - q)
    if utilisation > 1.0:
        # CFS throttling: the quota runs out mid-period and the process waits.
        factor += 2.0 * (utilisation - 1.0)
    return factor


def _any(p: float, n: float) -> float:
    """P(at least one of n attempts hits an event of probability p); n may be fractional."""
    if p <= 0 or n <= 0:
        return 0.0
    if n < 1:
        return n * p
    return 1.0 - float((1.0 - min(p, 1.0)) ** n)


class Traffic:
    """The controller: runs after the kubelet each tick, computes every `period` seconds."""

    name = "traffic"

    def __init__(
        self, telemetry: Telemetry | None = None, *, period: float = DEFAULT_PERIOD
    ) -> None:
        self.telemetry = telemetry
        self.period = period
        #: Simulated seconds of the last computed period.
        self.last_run: float | None = None
        self._ops_cache: dict[int, tuple[tuple[str, float], ...]] = {}
        #: Load generator statistics per (method, name): [requests, failures, sum ms, min, max].
        self.client_stats: dict[tuple[str, str], list[float]] = {}
        #: The processes of the last period (frozen; traces point into them).
        self.procs: list[Proc] = []
        self.entries: list[Entry] = []
        self._watching: Cluster | None = None
        #: Bumped each time the graph is recomputed.
        self.version = 0
        self._dirty = True
        self._signature_seen: tuple[Any, ...] = ()

    # -- controller -------------------------------------------------------------------------

    def step(self, cluster: Cluster, dt: float) -> None:
        now = cluster.elapsed
        if self.last_run is None or now - self.last_run >= self.period - 1e-9:
            span = dt if self.last_run is None else now - self.last_run
            self.last_run = now
            self.run(cluster, span)
        if self.telemetry is not None:
            self.telemetry.step(cluster)

    def run(self, cluster: Cluster, dt: float) -> None:
        """Compute one period of `dt` simulated seconds ending now."""
        self._watch(cluster)
        signature = self._signature(cluster)
        if self._dirty or signature != self._signature_seen:
            # Something that routes or slows requests changed: recompute the graph.
            # Otherwise the last period's (frozen) graph still holds.
            self._dirty = False
            self._signature_seen = signature
            self.procs, self.entries = self._compute(cluster)
            self.version += 1
        self._usage(cluster, self.procs, dt)
        self._apply(cluster, self.procs, dt)
        self._logs(cluster, self.procs, self.entries, dt)
        if self.telemetry is not None:
            self.telemetry.record_period(cluster, self, dt)

    def _compute(self, cluster: Cluster) -> tuple[list[Proc], list[Entry]]:
        procs = self._procs(cluster)
        net = Network(cluster, procs)
        self._mark_selected(cluster, net, procs)
        entries = self._entries(cluster, net, procs)
        serving = [p for p in procs if p.serving and not p.load_source]
        for p in serving:
            p.calls = implicit_calls(p.profile, p.env)
            resolved: dict[tuple[str, int | None, str | None], Route] = {}
            routes: list[Route | None] = []
            for call in p.calls:
                host, port = call_target(call, p.env)
                hint = call_protocol(call, p.env)
                route = resolved.get((host, port, hint))
                if route is None:
                    route = net.resolve(p, p.namespace, host, port, hint)
                    resolved[(host, port, hint)] = route
                routes.append(route)
            p.routes = routes
            p.attempts = [None] * len(p.calls)
        order = self._order(entries)
        nodes = self._node_cpu(cluster)
        reach: dict[tuple[int, str, int], float] | None = None
        # Twice: a request that fails at a hard dependency makes none of its later
        # calls, so the second pass routes only the requests that get that far.
        for _ in range(2):
            self._rates(cluster, entries, order, reach)
            self._load(cluster, procs, nodes)
            for p in order:
                p.outcomes = {}
                p.attempts = [None] * len(p.calls)
            for p in reversed(order):
                for op in p.rates:
                    p.outcomes[op] = self._outcome(cluster, p, op)
            reach = self._reach(order)
        for entry in entries:
            entry.attempt = self._attempt(cluster, entry.source, entry.call, entry.route)
        return procs, entries

    def _watch(self, cluster: Cluster) -> None:
        if self._watching is cluster:
            return
        self._watching = cluster
        self._dirty = True
        kinds = {"Service", "Endpoints", "Pod", "NetworkPolicy", "HTTPRoute", "Namespace"}

        def changed(_etype: str, rt: ResourceType, _obj: Obj) -> None:
            if rt.kind in kinds:
                self._dirty = True

        cluster.store.subscribe(changed)

    def _signature(self, cluster: Cluster) -> tuple[Any, ...]:
        """What the graph depends on beyond the watched objects: processes, effects, load."""
        settings = cluster.traffic
        now = cluster.elapsed
        parts: list[Any] = [
            settings.rps,
            settings.factor,
            settings.namespace,
            settings.service,
            tuple(sorted(settings.service_factors.items())),
            tuple(sorted(cluster.nodes_down)),
            tuple(id(e) for e in cluster.effects if e.active(now)),
        ]
        for uid, prt in cluster.pods.items():
            for name, c in prt.containers.items():
                parts.append((uid, name, id(c), c.phase, c.serving, c.ready, c.started_at, c.image))
        return tuple(parts)

    # -- processes --------------------------------------------------------------------------

    def _procs(self, cluster: Cluster) -> list[Proc]:
        pods_rt = cluster.rt("Pod")
        store = cluster.store
        out: list[Proc] = []
        for uid, prt in sorted(cluster.pods.items()):
            pod = store.find(pods_rt, prt.namespace, prt.name)
            if pod is None or pod["metadata"].get("uid") != uid:
                continue
            spec = pod.get("spec") or {}
            node = spec.get("nodeName") or prt.node
            if node in cluster.nodes_down:
                continue
            status = pod.get("status") or {}
            labels = dict(pod["metadata"].get("labels") or {})
            specs = {c.get("name"): c for c in spec.get("containers") or []}
            pod_ports = [p for c in specs.values() for p in c.get("ports") or []]
            ip = status.get("podIP") or _fake_pod_ip(uid)
            workload = prt.workload[1] if prt.workload else _workload_name(pod)
            app = labels.get("app.kubernetes.io/name") or labels.get("app") or workload
            for name, crt in prt.containers.items():
                cspec = specs.get(name)
                if cspec is None or crt.phase != "running":
                    continue
                profile = crt.profile
                env = self._env(cluster, pod, cspec, crt)
                ports = list(cspec.get("ports") or [])
                port = _listen_port(ports, env, profile)
                effects = cluster.effects_for(prt, crt.image)
                proc = Proc(
                    uid=uid,
                    pod=prt.name,
                    namespace=prt.namespace,
                    labels=labels,
                    ip=ip,
                    node=node,
                    container=name,
                    image=crt.image,
                    profile=profile,
                    env=env,
                    port=port,
                    ports=ports,
                    pod_ports=pod_ports,
                    serving=crt.serving,
                    workload=workload,
                    app=app,
                    effects=effects,
                    prt=prt,
                    crt=crt,
                )
                _apply_effects(proc, effects)
                out.append(proc)
        return out

    def _env(self, cluster: Cluster, pod: Obj, cspec: Obj, crt: Any) -> dict[str, str]:
        """The container's environment as its process saw it at start (cached per instance)."""
        cached = crt.scratch.get("traffic.env")
        if cached is not None and cached[0] == crt.started_at:
            return dict(cached[1])
        started_with = crt.scratch.get("env")
        if isinstance(started_with, dict):
            # The kubelet resolved it when it started the container.
            env = {str(k): str(v) for k, v in started_with.items()}
        else:
            env = resolve_env(cluster, pod, cspec)
        crt.scratch["traffic.env"] = (crt.started_at, env)
        return dict(env)

    def _mark_selected(self, cluster: Cluster, net: Network, procs: list[Proc]) -> None:
        in_endpoints: set[str] = set()
        any_endpoints = False
        for ep in cluster.store.iter_live(cluster.rt("Endpoints")):
            any_endpoints = True
            for subset in ep.get("subsets") or []:
                for key in ("addresses", "notReadyAddresses"):
                    for addr in subset.get(key) or []:
                        uid = (addr.get("targetRef") or {}).get("uid")
                        if uid:
                            in_endpoints.add(uid)
        del any_endpoints
        cache: dict[str, bool] = {}
        for p in procs:
            if p.uid not in cache:
                cache[p.uid] = p.uid in in_endpoints or net.selected(p)
            p.selected = cache[p.uid]

    def _entries(self, cluster: Cluster, net: Network, procs: list[Proc]) -> list[Entry]:
        settings = cluster.traffic
        ns, svc = settings.namespace, settings.service
        rate = settings.rps * settings.factor * settings.service_factors.get((ns, svc), 1.0)
        sources: list[tuple[Proc, str, int | None]] = []
        for p in procs:
            if p.selected or p.namespace != ns:
                continue
            for _name, value in address_env(p.env):
                host, port = parse_address(value)
                tns, tname, _obj = net.service_for_host(host, p.namespace)
                if (tns, tname) == (ns, svc):
                    p.load_source = True
                    sources.append((p, host, port))
                    break
        call = Call(svc, 1.0)
        if not sources:
            route = net.resolve(None, ns, svc, None)
            return [Entry(None, route, rate, call)]
        share = rate / len(sources)
        return [
            Entry(p, net.resolve(p, p.namespace, host, port), share, call)
            for p, host, port in sources
        ]

    def _callee_ops(self, call: Call, proc: Proc) -> tuple[tuple[str, float], ...]:
        if call.operation:
            return ((call.operation, 1.0),)
        key = id(proc.profile)
        got = self._ops_cache.get(key)
        if got is None:
            ops = [(o.name, o.weight) for o in proc.profile.operations if o.weight > 0]
            total = sum(w for _, w in ops)
            got = tuple((n, w / total) for n, w in ops) if total > 0 else (("", 1.0),)
            self._ops_cache[key] = got
        return got

    def _order(self, entries: list[Entry]) -> list[Proc]:
        """Processes reachable from the entry, callers before callees (cycles cut)."""
        order: list[Proc] = []
        state: dict[int, int] = {}
        roots = [leg.proc for e in entries for leg in e.route.legs if leg.proc is not None]
        for root in roots:
            if id(root) in state:
                continue
            stack: list[tuple[Proc, int]] = [(root, 0)]
            state[id(root)] = 1
            while stack:
                proc, i = stack[-1]
                children = [
                    leg.proc
                    for route in proc.routes
                    if route is not None
                    for leg in route.legs
                    if leg.proc is not None
                ]
                if i < len(children):
                    stack[-1] = (proc, i + 1)
                    child = children[i]
                    if id(child) not in state:
                        state[id(child)] = 1
                        stack.append((child, 0))
                    continue
                stack.pop()
                state[id(proc)] = 2
                order.append(proc)
        order.reverse()
        return order

    def _rates(
        self,
        cluster: Cluster,
        entries: list[Entry],
        order: list[Proc],
        reach: dict[tuple[int, str, int], float] | None = None,
    ) -> None:
        """Requests per second of every process and call, from the entry down.

        `reach`: (process, operation, call index) -> the fraction of requests that
        get as far as that call (a failed hard dependency ends the request).
        """
        factors = cluster.traffic.service_factors
        for p in order:
            p.rates = {}
            p.call_rates = [0.0] * len(p.calls)
        for entry in entries:
            for leg in entry.route.legs:
                if leg.kind == "ok" and leg.proc is not None:
                    for op, w in self._callee_ops(entry.call, leg.proc):
                        rates = leg.proc.rates
                        rates[op] = rates.get(op, 0.0) + entry.rate * leg.share * w
        for p in order:
            if p.hang or not p.rates:
                continue
            for op, r in list(p.rates.items()):
                for ci, call in enumerate(p.calls):
                    if call.operations and op not in call.operations:
                        continue
                    route = p.routes[ci]
                    if route is None:
                        continue
                    rc = r * call.per_request * factors.get((route.namespace, route.service), 1.0)
                    if reach is not None:
                        rc *= reach.get((id(p), op, ci), 1.0)
                    p.call_rates[ci] += rc
                    if route.service in p.auth_deps:
                        continue
                    for leg in route.legs:
                        if leg.kind == "ok" and leg.proc is not None:
                            for cop, w in self._callee_ops(call, leg.proc):
                                rates = leg.proc.rates
                                rates[cop] = rates.get(cop, 0.0) + rc * leg.share * w

    def _reach(self, order: list[Proc]) -> dict[tuple[int, str, int], float]:
        """How far requests get through each process's calls, in the order it makes them."""
        out: dict[tuple[int, str, int], float] = {}
        for p in order:
            for op in p.rates:
                survive = 1.0 - p.own_fail
                for ci, call in enumerate(p.calls):
                    if call.operations and op not in call.operations:
                        continue
                    out[(id(p), op, ci)] = survive
                    a = p.attempts[ci]
                    if a is not None and not call.soft:
                        survive *= 1.0 - _any(a.fail, call.per_request)
        return out

    # -- resources --------------------------------------------------------------------------

    def _node_cpu(self, cluster: Cluster) -> dict[str, float]:
        out: dict[str, float] = {}
        for node in cluster.store.iter_live(cluster.rt("Node")):
            status = node.get("status") or {}
            cpu = (status.get("allocatable") or {}).get("cpu") or (
                status.get("capacity") or {}
            ).get("cpu")
            try:
                out[node["metadata"]["name"]] = parse_cpu(cpu) if cpu else DEFAULT_NODE_CPU
            except ValueError:
                out[node["metadata"]["name"]] = DEFAULT_NODE_CPU
        return out

    def _load(self, cluster: Cluster, procs: list[Proc], nodes: dict[str, float]) -> None:
        """CPU demand of every process and the slowdown it causes (throttling, busy nodes)."""
        entry_rate = cluster.traffic.rps * cluster.traffic.factor
        sources = max(1, sum(1 for q in procs if q.load_source))
        used_on: dict[str, float] = {}
        hog_on: dict[str, float] = {}
        for p in procs:
            prof = p.profile
            ref = prof.reference_rps if prof.reference_rps > 0 else 1.0
            if p.load_source:
                p.load = entry_rate / sources / ref
            elif p.selected:
                p.load = sum(p.rates.values()) / ref
            else:
                p.load = 1.0
            p.demand = prof.cpu * max(IDLE_CPU, p.load) if p.serving else prof.cpu * 0.5
            p.hog = sum(
                _number(e.params.get("cores"), 0.0) for e in p.effects if e.kind == "cpu-hog"
            )
            limit = _cpu_limit(cluster, p)
            p.cpu_cap = limit if limit else nodes.get(p.node, DEFAULT_NODE_CPU)
            want = p.demand + p.hog
            utilisation = want / p.cpu_cap if p.cpu_cap > 0 else 0.0
            p.cpu_factor = queue_factor(utilisation)
            p.overload = max(0.0, 1.0 - 1.0 / utilisation) if utilisation > 1.0 else 0.0
            used = min(want, p.cpu_cap)
            used_on[p.node] = used_on.get(p.node, 0.0) + used
            hog_on[p.node] = hog_on.get(p.node, 0.0) + min(p.hog, used)
        for p in procs:
            capacity = nodes.get(p.node, DEFAULT_NODE_CPU)
            pressure = used_on.get(p.node, 0.0) / capacity if capacity > 0 else 0.0
            neighbours = hog_on.get(p.node, 0.0) - min(p.hog, p.demand + p.hog, p.cpu_cap)
            p.cpu_factor *= 1.0 + 3.0 * max(0.0, pressure - 0.7) + 0.2 * max(0.0, neighbours)

    def _usage(self, cluster: Cluster, procs: list[Proc], dt: float) -> None:
        """CPU and memory each container uses this period (what cAdvisor reports)."""
        rng = cluster.rng
        now = cluster.elapsed
        for p in procs:
            crt = p.crt
            if crt.phase != "running":
                continue
            used = min(p.demand + p.hog, p.cpu_cap) * (1.0 + 0.03 * rng.gauss(0.0, 1.0))
            crt.cpu = max(used, 0.0)
            crt.cpu_seconds += crt.cpu * dt
            # The working set fills toward its steady state, plus any leak.
            steady = p.profile.memory * (0.9 + 0.1 * min(p.load, 3.0))
            started = crt.started_at if crt.started_at is not None else now
            age = max(0.0, now - started)
            memory = steady * (1 / 3 + 2 / 3 * (1.0 - math.exp(-age / MEMORY_WARMUP)))
            for e in p.effects:
                if e.kind == "memory-leak":
                    rate = _number(e.params.get("bytes_per_second") or e.params.get("rate"), 0.0)
                    leaked = rate * max(0.0, now - max(started, e.started))
                    plateau = e.params.get("plateau")
                    if plateau is not None:
                        leaked = min(leaked, _number(plateau, leaked))
                    memory += leaked
            memory *= 1.0 + 0.004 * rng.gauss(0.0, 1.0)
            crt.memory = max(memory, 0.0)
            crt.memory_peak = max(crt.memory_peak, crt.memory)

    # -- outcomes ---------------------------------------------------------------------------

    def _own_ms(self, p: Proc, op: str) -> float:
        opdef = _operation(p.profile, op)
        base = (
            opdef.latency_ms if opdef is not None and opdef.latency_ms > 0 else p.profile.latency_ms
        )
        return base * p.cpu_factor + p.extra_ms

    def _outcome(self, cluster: Cluster, p: Proc, op: str) -> Outcome:
        own = self._own_ms(p, op)
        if p.hang:
            return Outcome(own_ms=own, lat=own, hang=1.0)
        prof = p.profile
        own_code = default_code(prof.protocol, prof.error_code)
        errors: dict[ErrKey, float] = {}
        warnings: dict[tuple[int, str], float] = {}
        p_ok = 1.0 - p.own_fail
        lat = own
        no_slow = 1.0
        slow_extra = 0.0
        failing: list[tuple[float, int, Attempt]] = []
        for ci, call in enumerate(p.calls):
            if call.operations and op not in call.operations:
                continue
            route = p.routes[ci]
            if route is None:
                continue
            a = p.attempts[ci]
            if a is None:
                a = p.attempts[ci] = self._attempt(cluster, p, call, route)
            n = call.per_request
            lat += n * a.lat
            s_any = _any(a.slow, n)
            if s_any > 0:
                no_slow *= 1.0 - s_any
                slow_extra += s_any * max(0.0, a.slow_lat - a.lat)
            f_any = _any(a.fail, n)
            if f_any <= 0:
                continue
            if call.soft:
                for msg, frac in a.errors.items():
                    warnings[(ci, msg)] = warnings.get((ci, msg), 0.0) + f_any * frac / a.fail
                continue
            p_ok *= 1.0 - f_any
            failing.append((f_any, ci, a))
        fail = 1.0 - p_ok
        if fail > 1e-12:
            total = p.own_fail + sum(f for f, _, _ in failing)
            if p.own_fail > 0:
                code = default_code(prof.protocol)
                key = (code, p.own_log, True) if p.own_log else (code, "internal error", False)
                errors[key] = fail * p.own_fail / total
            extras = _choose_extras(prof, cluster)
            for f_any, ci, a in failing:
                call = p.calls[ci]
                code = call.code or own_code
                for msg, frac in a.errors.items():
                    detail = _wrap(call.error, msg, extras)
                    k = (code, detail, False)
                    errors[k] = errors.get(k, 0.0) + fail * (f_any / total) * (frac / a.fail)
        slow = 1.0 - no_slow
        slow_lat = lat + (slow_extra / slow if slow > 0 else 0.0)
        hang = p.overload
        if hang > 0:
            scale = 1.0 - hang
            fail *= scale
            errors = {k: v * scale for k, v in errors.items()}
            warnings = {k: v * scale for k, v in warnings.items()}
        return Outcome(
            own_ms=own,
            lat=lat,
            fail=fail,
            hang=hang,
            slow=slow,
            slow_lat=slow_lat,
            errors=errors,
            warnings=warnings,
        )

    def _callee_outcome(self, proc: Proc, op: str) -> Outcome:
        got = proc.outcomes.get(op)
        if got is not None:
            return got
        # Not computed (a cycle back to a caller): assume it answers in its own time.
        own = self._own_ms(proc, op)
        if proc.hang:
            return Outcome(own_ms=own, lat=own, hang=1.0)
        return Outcome(own_ms=own, lat=own, hang=proc.overload)

    def _attempt(self, cluster: Cluster, caller: Proc | None, call: Call, route: Route) -> Attempt:
        """What one attempt of `call` along `route` gets back, as probabilities."""
        timeout = call.timeout_ms or DEFAULT_TIMEOUT_MS
        a = Attempt(timeout_ms=timeout)
        lat_acc = lat_w = slow_acc = 0.0
        local = f"{caller.ip if caller else '10.0.0.1'}:{_port_for(caller, route)}"
        auth = caller is not None and (
            route.service in caller.auth_deps or route.host in caller.auth_deps
        )
        for leg in route.legs:
            s = leg.share
            stat = LegStat(leg=leg)
            a.legs.append(stat)
            protocol = leg.protocol
            if leg.kind in ("ok", "external") and auth:
                msg = client_error(
                    protocol,
                    "auth",
                    host=route.host,
                    port=route.port,
                    local=local,
                    remote=leg.address,
                )
                a.errors[msg] = a.errors.get(msg, 0.0) + s
                a.fail += s
                stat.auth = 1.0
                stat.lat = FAST_FAIL_MS
                lat_acc += s * FAST_FAIL_MS
                lat_w += s
                continue
            if leg.kind == "external":
                stat.ok = 1.0
                stat.lat = 20.0
                lat_acc += s * 20.0
                lat_w += s
                continue
            if leg.kind != "ok" or leg.proc is None:
                kind: FailureKind = (
                    "dial" if leg.kind in ("nxdomain", "refused", "timeout") else "unavailable"
                )
                msg = client_error(
                    protocol,
                    kind,
                    detail=leg.detail,
                    host=route.host,
                    port=route.port,
                    local=local,
                    remote=leg.address,
                )
                a.errors[msg] = a.errors.get(msg, 0.0) + s
                a.fail += s
                if leg.kind == "timeout":
                    a.timeout += s
                    stat.timeout = 1.0
                    slow_acc += s * timeout
                    a.slow += s
                else:
                    stat.lat = FAST_FAIL_MS
                    lat_acc += s * FAST_FAIL_MS
                    lat_w += s
                continue
            extra = (
                caller.extra_to.get(leg.service, 0.0) if caller is not None else 0.0
            ) + NETWORK_MS
            for op, w in self._callee_ops(call, leg.proc):
                o = self._callee_outcome(leg.proc, op)
                sw = s * w
                answered = 1.0 - o.hang
                fast = answered * (1.0 - o.slow)
                mean = o.lat + extra
                tail = lognormal_tail(mean, timeout) if fast > 0 else 0.0
                timed_out = o.hang + fast * tail
                slow = answered * o.slow
                slow_lat = o.slow_lat + extra
                if slow > 0 and slow_lat >= timeout:
                    timed_out += slow
                    slow = 0.0
                fast_ok = fast * (1.0 - tail)
                in_time = fast_ok + slow
                err_ratio = o.fail / answered if answered > 0 else 0.0
                if timed_out > 0:
                    msg = client_error(
                        protocol,
                        "deadline",
                        host=route.host,
                        port=route.port,
                        local=local,
                        remote=leg.address,
                    )
                    a.errors[msg] = a.errors.get(msg, 0.0) + sw * timed_out
                    a.fail += sw * timed_out
                    a.timeout += sw * timed_out
                    stat.timeout += w * timed_out
                    slow_acc += sw * timed_out * timeout
                    a.slow += sw * timed_out
                if err_ratio > 0 and in_time > 0:
                    for (code, detail, _verbatim), frac in o.errors.items():
                        share = frac / answered * in_time
                        msg = client_error(
                            protocol,
                            "status",
                            detail=detail,
                            code=code,
                            host=route.host,
                            port=route.port,
                            local=local,
                            remote=leg.address,
                        )
                        a.errors[msg] = a.errors.get(msg, 0.0) + sw * share
                        a.fail += sw * share
                        stat.errors[code] = stat.errors.get(code, 0.0) + w * share
                stat.ok += w * in_time * (1.0 - err_ratio)
                lat_acc += sw * fast_ok * mean
                lat_w += sw * fast_ok
                if slow > 0:
                    a.slow += sw * slow
                    slow_acc += sw * slow * slow_lat
                stat.lat += w * mean
                stat.slow += w * slow
                stat.slow_lat = max(stat.slow_lat, slow_lat)
        a.lat = lat_acc / lat_w if lat_w > 0 else FAST_FAIL_MS
        a.slow_lat = slow_acc / a.slow if a.slow > 0 else a.lat
        a.fail = min(a.fail, 1.0)
        return a

    # -- results ----------------------------------------------------------------------------

    def _apply(self, cluster: Cluster, procs: list[Proc], dt: float) -> None:
        by_pod: dict[str, list[Proc]] = {}
        for p in procs:
            by_pod.setdefault(p.uid, []).append(p)
        for pod_procs in by_pod.values():
            total = failed = weighted = 0.0
            own_sum = 0.0
            own_n = 0
            for p in pod_procs:
                for op, r in p.rates.items():
                    o = p.outcomes.get(op)
                    if o is None:
                        continue
                    total += r
                    failed += r * (o.fail + o.hang)
                    weighted += r * o.own_ms
                if p.serving and not p.load_source:
                    own_sum += self._own_ms(p, "")
                    own_n += 1
                served = sum(
                    r * (1.0 - p.outcomes[op].hang) for op, r in p.rates.items() if op in p.outcomes
                )
                carry = p.crt.scratch.get("traffic.carry", 0.0) + served * dt
                whole = int(carry)
                p.crt.requests_served += whole
                p.crt.scratch["traffic.carry"] = carry - whole
            prt = pod_procs[0].prt
            prt.rps = total
            prt.error_ratio = failed / total if total > 0 else 0.0
            if total > 0:
                prt.latency_ms = weighted / total
            else:
                prt.latency_ms = own_sum / own_n if own_n else 0.0
        live = {p.uid for p in procs}
        for uid, prt in cluster.pods.items():
            if uid not in live:
                prt.rps = 0.0
                prt.error_ratio = 0.0

    # -- logs -------------------------------------------------------------------------------

    def _logs(self, cluster: Cluster, procs: list[Proc], entries: list[Entry], dt: float) -> None:
        now = cluster.elapsed
        out: dict[tuple[str, str], list[tuple[float, str]]] = {}
        for p in procs:
            lines: list[tuple[float, str]] = []
            start = max(now - dt, p.crt.started_at if p.crt.started_at is not None else now - dt)
            if p.serving and not p.hang:
                self._request_logs(cluster, p, dt, start, lines)
            self._noise_logs(cluster, p, dt, start, lines)
            self._probe_logs(cluster, p, dt, start, lines)
            self._periodic_logs(cluster, p, start, lines)
            if p.load_source and p.profile.log_style == "locust":
                self._locust_stats(cluster, p, entries, dt, lines)
            if lines:
                out[(p.uid, p.container)] = lines
        for (uid, container), lines in out.items():
            lines.sort(key=lambda x: x[0])
            for ts, line in lines:
                cluster.logs.append(uid, container, cluster.clock.at(ts), line)

    def _values(self, cluster: Cluster, p: Proc, op: str, o: Outcome | None) -> dict[str, Any]:
        rng = cluster.rng
        opdef = _operation(p.profile, op)
        values: dict[str, Any] = {
            "operation": op,
            "method": (opdef.method if opdef and opdef.method else "GET"),
            "status": 200,
            "pod": p.pod,
            "namespace": p.namespace,
            "port": p.port,
            "service": p.app,
            "req_id": _uuid(rng),
            "session": _uuid(rng),
        }
        path = opdef.path if opdef and opdef.path else "/"
        if "{" in path:
            for name in _placeholders(path):
                if name not in values and name in p.profile.extra:
                    values[name] = rng.choice(p.profile.extra[name].split("|"))
            path = _fill_simple(path, values)
        values["path"] = path
        if o is not None:
            mean = o.lat
            sample = mean * math.exp(SIGMA * rng.gauss(0.0, 1.0) - SIGMA * SIGMA / 2)
            values["latency_ms"] = max(0, round(sample))
        else:
            values["latency_ms"] = 0
        return values

    def _request_logs(
        self, cluster: Cluster, p: Proc, dt: float, start: float, lines: list[tuple[float, str]]
    ) -> None:
        rng = cluster.rng
        now = cluster.elapsed
        prof = p.profile
        total = sum(p.rates.values())
        if total <= 0:
            return
        ops = sorted(p.rates.items())
        ok_total = sum(
            r * (1 - p.outcomes[o].fail - p.outcomes[o].hang) for o, r in ops if o in p.outcomes
        )
        n_info = min(INFO_SAMPLES, _round(rng, ok_total * dt))
        for _ in range(n_info):
            op = _weighted(rng, ops)
            opdef = _operation(prof, op)
            templates = (opdef.info_logs if opdef and opdef.info_logs else ()) or prof.info_logs
            if not templates:
                continue
            template = rng.choice(templates)
            values = self._values(cluster, p, op, p.outcomes.get(op))
            ts = start + (now - start) * rng.random()
            for line in render(
                prof, template, "info", cluster.clock.at(ts), values, hostname=p.pod, rng=rng
            ):
                lines.append((ts, line))
        errors: dict[tuple[str, ErrKey], float] = {}
        warnings: dict[tuple[str, int, str], float] = {}
        for op, r in ops:
            o = p.outcomes.get(op)
            if o is None:
                continue
            for k, frac in o.errors.items():
                errors[(op, k)] = errors.get((op, k), 0.0) + r * frac * dt
            for (ci, msg), frac in o.warnings.items():
                warnings[(op, ci, msg)] = warnings.get((op, ci, msg), 0.0) + r * frac * dt
        # A few sampled lines per period in all, each cause drawn by its share.
        error_items = sorted(errors.items())
        n_errors = min(ERROR_SAMPLES, _round(rng, sum(e for _k, e in error_items)))
        for _ in range(n_errors):
            op, (code, detail, verbatim) = _weighted_key(rng, error_items)
            ts = start + (now - start) * rng.random()
            stamp = cluster.clock.at(ts)
            if verbatim:
                lines.append((ts, plain_line(prof, "error", detail, stamp, hostname=p.pod)))
                continue
            if not prof.error_logs:
                continue
            values = self._values(cluster, p, op, p.outcomes.get(op))
            values.update(cause=detail, code=code, status=_status_value(code))
            template = rng.choice(prof.error_logs)
            for line in render(prof, template, "error", stamp, values, hostname=p.pod, rng=rng):
                lines.append((ts, line))
        warning_items = sorted(warnings.items())
        n_warnings = min(WARNING_SAMPLES, _round(rng, sum(e for _k, e in warning_items)))
        for _ in range(n_warnings):
            op, ci, msg = _weighted_key(rng, warning_items)
            call = p.calls[ci]
            template = call.warning or (prof.warning_logs[0] if prof.warning_logs else "")
            if not template:
                continue
            ts = start + (now - start) * rng.random()
            values = self._values(cluster, p, op, p.outcomes.get(op))
            values["cause"] = _wrap(call.error, msg, _choose_extras(prof, cluster))
            for line in render(
                prof, template, "warning", cluster.clock.at(ts), values, hostname=p.pod, rng=rng
            ):
                lines.append((ts, line))

    def _noise_logs(
        self, cluster: Cluster, p: Proc, dt: float, start: float, lines: list[tuple[float, str]]
    ) -> None:
        rng = cluster.rng
        now = cluster.elapsed
        for e in p.effects:
            if e.kind != "noise":
                continue
            text = str(e.params.get("log") or "")
            rate = _number(e.params.get("rate"), 1.0)
            if not text:
                continue
            n = min(NOISE_CAP, _round(rng, rate * (now - start)))
            for _ in range(n):
                ts = start + (now - start) * rng.random()
                lines.append(
                    (ts, plain_line(p.profile, "error", text, cluster.clock.at(ts), hostname=p.pod))
                )

    def _probe_logs(
        self, cluster: Cluster, p: Proc, dt: float, start: float, lines: list[tuple[float, str]]
    ) -> None:
        if not p.profile.probe_logs or not p.serving:
            return
        rng = cluster.rng
        now = cluster.elapsed
        cspec = _container_spec(cluster, p)
        for key in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = (cspec or {}).get(key)
            if not probe:
                continue
            period = float(probe.get("periodSeconds") or 10)
            n = _round(rng, (now - start) / period)
            for _ in range(min(n, 10)):
                ts = start + (now - start) * rng.random()
                template = rng.choice(p.profile.probe_logs)
                values = {"pod": p.pod, "namespace": p.namespace, "port": p.port}
                for line in render(
                    p.profile,
                    template,
                    "info",
                    cluster.clock.at(ts),
                    values,
                    hostname=p.pod,
                    rng=rng,
                ):
                    lines.append((ts, line))

    def _periodic_logs(
        self, cluster: Cluster, p: Proc, start: float, lines: list[tuple[float, str]]
    ) -> None:
        if not p.profile.periodic_logs or not p.serving:
            return
        now = cluster.elapsed
        last: dict[int, float] = p.crt.scratch.setdefault("traffic.periodic", {})
        served = sum(p.rates.values()) > 0
        for i, (interval, template) in enumerate(p.profile.periodic_logs):
            since = last.get(i, start)
            if now - since < interval:
                last.setdefault(i, since)
                continue
            last[i] = now
            if not served:
                continue
            ts = now - 0.001 * (len(p.profile.periodic_logs) - i)
            values = {"pod": p.pod, "namespace": p.namespace, "port": p.port}
            for line in render(
                p.profile,
                template,
                "info",
                cluster.clock.at(ts),
                values,
                hostname=p.pod,
                rng=cluster.rng,
            ):
                lines.append((ts, line))

    def _locust_stats(
        self,
        cluster: Cluster,
        p: Proc,
        entries: list[Entry],
        dt: float,
        lines: list[tuple[float, str]],
    ) -> None:
        """The periodic statistics table Locust prints in headless mode."""
        rng = cluster.rng
        mine = [e for e in entries if e.source is p]
        period_rows: dict[tuple[str, str], tuple[float, float]] = {}
        for entry in mine:
            a = entry.attempt
            fail = a.fail if a is not None else 1.0
            backends = [leg.proc for leg in entry.route.legs if leg.proc is not None]
            profile = backends[0].profile if backends else None
            ops = profile.operations if profile is not None and profile.operations else ()
            total_w = sum(o.weight for o in ops) or 1.0
            for opdef in ops or (Operation("", 1.0, method="GET", path="/"),):
                count = entry.rate * dt * opdef.weight / total_w
                lat = _entry_latency(entry, opdef.name)
                names = _expand_path(opdef.path or "/", profile)
                for name in names:
                    key = (opdef.method or "GET", name)
                    n = count / len(names)
                    reqs, fails = period_rows.get(key, (0.0, 0.0))
                    period_rows[key] = (reqs + n, fails + n * fail)
                    stats = self.client_stats.setdefault(key, [0.0, 0.0, 0.0, math.inf, 0.0])
                    stats[0] += n
                    stats[1] += n * fail
                    stats[2] += n * lat
                    sample = lat * math.exp(SIGMA * abs(rng.gauss(0.0, 1.0)))
                    stats[3] = min(stats[3], lat * 0.35)
                    stats[4] = max(stats[4], sample)
        if not self.client_stats:
            return
        width = 50
        header = (
            f"{'Type':<8} {'Name':<{width}} {'# reqs':>7} {'# fails':>12} | "
            f"{'Avg':>7} {'Min':>7} {'Max':>7} {'Med':>7} | {'req/s':>7} {'failures/s':>11}"
        )
        sep = (
            f"{'-' * 8}|{'-' * (width + 1)}|{'-' * 7}|{'-' * 13}|{'-' * 7}|{'-' * 7}|"
            f"{'-' * 7}|{'-' * 7}|{'-' * 8}|{'-' * 11}"
        )
        table = [header, sep]
        agg = [0.0, 0.0, 0.0, math.inf, 0.0]
        agg_rate = agg_fail_rate = 0.0
        for (method, name), (reqs, fails, lat_sum, lo, hi) in sorted(
            self.client_stats.items(), key=lambda kv: (kv[0][1], kv[0][0])
        ):
            rate, frate = period_rows.get((method, name), (0.0, 0.0))
            table.append(
                _locust_row(
                    method, name, width, reqs, fails, lat_sum, lo, hi, rate / dt, frate / dt
                )
            )
            agg[0] += reqs
            agg[1] += fails
            agg[2] += lat_sum
            agg[3] = min(agg[3], lo)
            agg[4] = max(agg[4], hi)
            agg_rate += rate / dt
            agg_fail_rate += frate / dt
        table.append(sep)
        table.append(
            _locust_row(
                "",
                "Aggregated",
                width,
                agg[0],
                agg[1],
                agg[2],
                agg[3],
                agg[4],
                agg_rate,
                agg_fail_rate,
            )
        )
        table.append("")
        ts = cluster.elapsed - 0.001
        for line in table:
            lines.append((ts, line))


# -- helpers --------------------------------------------------------------------------------


def _locust_row(
    method: str,
    name: str,
    width: int,
    reqs: float,
    fails: float,
    lat_sum: float,
    lo: float,
    hi: float,
    rps: float,
    fps: float,
) -> str:
    n = int(reqs)
    f = int(fails)
    ratio = f / n * 100 if n else 0.0
    avg = lat_sum / reqs if reqs > 0 else 0.0
    lo = 0.0 if math.isinf(lo) else lo
    med = avg * 0.85
    fail_str = f"{f}({ratio:.2f}%)"
    return (
        f"{method:<8} {name:<{width}} {n:>7} {fail_str:>12} | {avg:>7.0f} {lo:>7.0f} "
        f"{hi:>7.0f} {med:>7.0f} | {rps:>7.2f} {fps:>11.2f}"
    )


def _entry_latency(entry: Entry, op: str) -> float:
    """Mean latency the load generator sees for one operation (timeouts included)."""
    a = entry.attempt
    if a is None:
        return FAST_FAIL_MS
    total = weight = 0.0
    for leg in entry.route.legs:
        o = leg.proc.outcomes.get(op) if leg.proc is not None else None
        if o is None:
            total += leg.share * (a.timeout_ms if leg.kind == "timeout" else FAST_FAIL_MS)
        else:
            answered = 1.0 - o.hang
            mean = answered * ((1 - o.slow) * o.lat + o.slow * o.slow_lat) + o.hang * a.timeout_ms
            total += leg.share * (min(mean, a.timeout_ms) + NETWORK_MS)
        weight += leg.share
    return total / weight if weight > 0 else a.lat


def _expand_path(path: str, profile: BehaviorProfile | None) -> list[str]:
    names = [name for _lit, name, _spec, _conv in string.Formatter().parse(path) if name]
    if not names or profile is None or names[0] not in profile.extra:
        return [path]
    key = names[0]
    return [path.replace("{" + key + "}", choice) for choice in profile.extra[key].split("|")]


@functools.lru_cache(maxsize=1024)
def _placeholders(template: str) -> tuple[str, ...]:
    return tuple(name for _lit, name, _spec, _conv in string.Formatter().parse(template) if name)


def _fill_simple(template: str, values: dict[str, Any]) -> str:
    out = template
    for key, value in values.items():
        token = "{" + key + "}"
        if token in out:
            out = out.replace(token, str(value))
    return out


def _wrap(template: str, cause: str, extras: dict[str, str]) -> str:
    """A call's `error` template with {cause} and the profile's extras filled in."""
    if not template:
        return cause
    out = template.replace("{cause}", "\0")
    out = _fill_simple(out, extras)
    return out.replace("\0", cause)


def _choose_extras(profile: BehaviorProfile, cluster: Cluster) -> dict[str, str]:
    rng = cluster.rng
    return {k: rng.choice(v.split("|")) for k, v in sorted(profile.extra.items())}


def _uuid(rng: Any) -> str:
    """A random (version 4) UUID from the seeded generator."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _round(rng: Any, expected: float) -> int:
    """`expected` rounded stochastically (so rare events still happen at their rate)."""
    if expected <= 0:
        return 0
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def _weighted(rng: Any, items: list[tuple[str, float]]) -> str:
    total = sum(w for _, w in items)
    x = rng.random() * total
    for name, w in items:
        x -= w
        if x <= 0:
            return name
    return items[-1][0]


_K = TypeVar("_K")


def _weighted_key(rng: Any, items: list[tuple[_K, float]]) -> _K:
    """One key drawn with probability proportional to its weight."""
    total = sum(w for _, w in items)
    x = rng.random() * total
    for key, w in items:
        x -= w
        if x <= 0:
            return key
    return items[-1][0]


def _status_value(code: str) -> int | str:
    return int(code) if code.isdigit() else code


def _operation(profile: BehaviorProfile, name: str) -> Operation | None:
    for op in profile.operations:
        if op.name == name:
            return op
    return None


_PER = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _number(value: Any, default: float) -> float:
    """An effect parameter as a number: 0.5, "0.5", "500m", "40Mi", or a rate "40Mi/min"."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    per = 1.0
    if "/" in text:
        text, _, unit = text.partition("/")
        per = _PER.get(unit.strip(), 1.0)
    try:
        return parse_quantity(text.strip()) / per
    except ValueError:
        return default


def _apply_effects(proc: Proc, effects: list[Effect]) -> None:
    auth: set[str] = set()
    for e in effects:
        params = e.params
        if e.kind == "hang":
            proc.hang = True
        elif e.kind == "error-rate":
            proc.own_fail = min(1.0, proc.own_fail + _number(params.get("rate"), 0.0))
            if params.get("log"):
                proc.own_log = str(params["log"])
        elif e.kind == "latency":
            ms = _number(params.get("ms"), 0.0)
            target = params.get("to")
            if target:
                proc.extra_to[str(target)] = proc.extra_to.get(str(target), 0.0) + ms
            else:
                proc.extra_ms += ms
        elif e.kind == "auth-failure" and params.get("dependency"):
            auth.add(str(params["dependency"]))
    proc.auth_deps = frozenset(auth)


def _listen_port(ports: list[Obj], env: dict[str, str], profile: BehaviorProfile) -> int:
    """The port the process listens on: first containerPort, else PORT, else the profile's."""
    for p in ports:
        if p.get("containerPort"):
            try:
                return int(p["containerPort"])
            except (TypeError, ValueError):
                continue
    value = env.get("PORT", "")
    if value.isdigit():
        return int(value)
    return profile.port


def _port_for(caller: Proc | None, route: Route) -> int:
    """The caller's ephemeral port for its connection to `route` (stable per pair)."""
    key = f"{caller.uid if caller else ''}/{route.host}"
    return 32768 + zlib.crc32(key.encode()) % 28000


def _fake_pod_ip(uid: str) -> str:
    h = sum((i + 1) * ord(c) for i, c in enumerate(uid))
    return f"10.244.{(h >> 8) & 0xFF}.{(h & 0xFF) or 2}"


def _workload_name(pod: Obj) -> str:
    meta = pod["metadata"]
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") or len(meta.get("ownerReferences") or []) == 1:
            name = str(ref.get("name", ""))
            template_hash = (meta.get("labels") or {}).get("pod-template-hash")
            if (
                ref.get("kind") == "ReplicaSet"
                and template_hash
                and name.endswith("-" + template_hash)
            ):
                return name[: -len(template_hash) - 1]
            return name
    return str(meta["name"])


def _container_spec(cluster: Cluster, p: Proc) -> Obj | None:
    pod = cluster.store.find(cluster.rt("Pod"), p.namespace, p.pod)
    if pod is None:
        return None
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == p.container:
            return dict(c)
    return None


def _cpu_limit(cluster: Cluster, p: Proc) -> float | None:
    key = "traffic.cpu_limit"
    cached = p.crt.scratch.get(key)
    if cached is not None and cached[0] == p.crt.started_at:
        return float(cached[1]) if cached[1] is not None else None
    cspec = _container_spec(cluster, p) or {}
    raw = ((cspec.get("resources") or {}).get("limits") or {}).get("cpu")
    limit: float | None = None
    if raw is not None:
        try:
            limit = parse_cpu(raw) or None
        except ValueError:
            limit = None
    p.crt.scratch[key] = (p.crt.started_at, limit)
    return limit


def resolve_env(cluster: Cluster, pod: Obj, cspec: Obj) -> dict[str, str]:
    """A container's environment: envFrom, then env (values, ConfigMap/Secret keys, fields)."""
    import base64

    ns = pod["metadata"].get("namespace", "")
    store = cluster.store
    env: dict[str, str] = {}

    def data_of(kind: str, name: str) -> dict[str, str]:
        obj = store.find(cluster.rt(kind), ns, name)
        if obj is None:
            return {}
        out = dict(obj.get("data") or {})
        if kind == "Secret":
            decoded = {}
            for k, v in out.items():
                try:
                    decoded[k] = base64.b64decode(v).decode()
                except (ValueError, UnicodeDecodeError):
                    decoded[k] = str(v)
            decoded.update(obj.get("stringData") or {})
            return decoded
        return {k: str(v) for k, v in out.items()}

    for src in cspec.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if src.get("configMapRef"):
            for k, v in data_of("ConfigMap", src["configMapRef"].get("name", "")).items():
                env[prefix + k] = v
        if src.get("secretRef"):
            for k, v in data_of("Secret", src["secretRef"].get("name", "")).items():
                env[prefix + k] = v
    for item in cspec.get("env") or []:
        name = item.get("name", "")
        if "value" in item:
            value = str(item.get("value") or "")
            for k, v in env.items():
                value = value.replace(f"$({k})", v)
            env[name] = value
            continue
        ref = item.get("valueFrom") or {}
        if ref.get("configMapKeyRef"):
            r = ref["configMapKeyRef"]
            got = data_of("ConfigMap", r.get("name", "")).get(r.get("key", ""))
        elif ref.get("secretKeyRef"):
            r = ref["secretKeyRef"]
            got = data_of("Secret", r.get("name", "")).get(r.get("key", ""))
        elif ref.get("fieldRef"):
            path = ref["fieldRef"].get("fieldPath", "")
            got = {
                "metadata.name": pod["metadata"].get("name"),
                "metadata.namespace": ns,
                "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
                "status.podIP": (pod.get("status") or {}).get("podIP"),
            }.get(path)
        else:
            got = None
        if got is not None:
            env[name] = str(got)
    return env
