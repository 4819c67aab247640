"""Where a call goes: from a caller's `host:port` to the processes that answer it, or why not.

The traffic model asks this module, once per period, what happens when a
process dials a dependency. It follows the path a packet takes in a real
cluster, reading only Kubernetes objects and the hidden runtime state:

1. DNS: the host names a Service in the caller's namespace (or `svc.ns`,
   `svc.ns.svc.cluster.local`); none means `no such host`. An egress
   NetworkPolicy that lets no DNS out makes the lookup time out.
2. The Service port the caller dials; a port the Service does not expose goes
   nowhere (the dial times out).
3. Gateway API HTTPRoutes whose parentRefs name the Service (GAMMA) split its
   traffic across their backendRefs by weight.
4. The Service's ready endpoints (its Endpoints object, or the ready pods its
   selector matches when no endpoints controller runs): none means kube-proxy
   rejects the connection (`connection refused` on the clusterIP).
5. Each endpoint: the pod's process must listen on the endpoint's port (the
   container's first containerPort, else its PORT env, else the profile's
   port), its node must be up, and NetworkPolicies in both namespaces must
   admit the connection (ingress on the callee, egress on the caller), or the
   connection is refused or times out.

The answer is a `Route`: shares of the caller's attempts, each reaching a
process or failing with the error text the caller's client library prints.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from twin.behavior import BehaviorProfile, Call, Protocol
from twin.runtime import ContainerRuntime, Effect, PodRuntime
from twin.selectors import match_labels

if TYPE_CHECKING:
    from twin.cluster import Cluster
    from twin.traffic import Attempt, Outcome

Obj = dict[str, Any]

#: The cluster DNS Service's address when no kube-dns Service exists.
DEFAULT_DNS = "10.96.0.10"

LegKind = Literal["ok", "nxdomain", "refused", "timeout", "unavailable", "external"]


@dataclass(eq=False)
class Proc:
    """A running container as the traffic model sees it during one period.

    Everything but the runtime references is frozen once the period is
    computed, so traces sampled in that period can be rebuilt from it later.
    """

    uid: str
    pod: str
    namespace: str
    labels: dict[str, str]
    ip: str
    node: str
    container: str
    image: str
    profile: BehaviorProfile
    env: dict[str, str]
    port: int
    ports: list[Obj]
    #: Ports of all the pod's containers (a named targetPort may name any of them).
    pod_ports: list[Obj]
    serving: bool
    workload: str
    app: str
    effects: list[Effect]
    prt: PodRuntime
    crt: ContainerRuntime
    #: Pods no Service selects, whose env addresses the entry Service: load generators.
    load_source: bool = False
    selected: bool = False
    #: The calls the process makes (its profile's, or the addresses in its env).
    calls: tuple[Call, ...] = ()
    #: Computed by the traffic model, frozen after the period.
    rates: dict[str, float] = field(default_factory=dict)
    #: Requests per second of each call (by index), the requests that get that far only.
    call_rates: list[float] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    routes: list[Route | None] = field(default_factory=list)
    attempts: list[Attempt | None] = field(default_factory=list)
    #: Load relative to the profile's reference, CPU wanted by the process and by a
    #: hog inside it, and the CPU it may use (its limit, else the node's), cores.
    load: float = 1.0
    demand: float = 0.0
    hog: float = 0.0
    cpu_cap: float = 1.0
    #: Latency multiplier from CPU throttling and node contention.
    cpu_factor: float = 1.0
    #: Added latency on every request (a latency effect), and on calls to one Service.
    extra_ms: float = 0.0
    extra_to: dict[str, float] = field(default_factory=dict)
    #: The process accepts requests but never answers them.
    hang: bool = False
    #: Fraction of requests beyond what the CPU it gets can serve (they time out).
    overload: float = 0.0
    #: Fraction of requests failing on their own, and the line each logs.
    own_fail: float = 0.0
    own_log: str = ""
    #: Services whose credentials this process no longer holds.
    auth_deps: frozenset[str] = frozenset()

    @property
    def key(self) -> tuple[str, str]:
        return (self.uid, self.container)


@dataclass(eq=False)
class Leg:
    """A share of a caller's attempts and what becomes of them."""

    share: float
    kind: LegKind
    proc: Proc | None
    #: The address the client dialled (clusterIP:port, or the pod's for headless Services).
    address: str
    #: The Service that answered (after an HTTPRoute split), for metrics.
    service: str
    namespace: str
    #: The dial error, as Go's net package words it (empty for "ok").
    detail: str = ""
    protocol: Protocol = "http"


@dataclass(eq=False)
class Route:
    """Where one caller's call to one dependency ends up this period."""

    host: str
    port: int | None
    #: The Service the caller addressed (empty if it does not exist).
    service: str
    namespace: str
    protocol: Protocol
    legs: list[Leg]


def parse_address(value: str) -> tuple[str, int | None]:
    """`host:port`, `host`, or a URL (`postgres://u:p@db:5432/app`) -> (host, port)."""
    text = value.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
        text = text.split("/", 1)[0]
        if "@" in text:
            text = text.rsplit("@", 1)[1]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    port = int(port_text) if port_text.isdigit() else None
    return host, port


#: Env var name endings that hold a dependency's address.
ADDRESS_SUFFIXES = ("_ADDR", "_SERVICE_ADDR", "_HOST", "_URL")


def address_env(env: dict[str, str]) -> list[tuple[str, str]]:
    """(name, value) of the env vars that address a dependency, in env order."""
    return [(k, v) for k, v in env.items() if k.endswith(ADDRESS_SUFFIXES) and v.strip()]


def fake_ip(prefix: str, key: str) -> str:
    """A stable address for objects that have none yet (no allocator installed)."""
    h = zlib.crc32(key.encode())
    return f"{prefix}.{(h >> 8) & 0xFF}.{(h & 0xFF) or 1}"


class Network:
    """The cluster's Services, endpoints, policies and routes, indexed for one period."""

    def __init__(self, cluster: Cluster, procs: Iterable[Proc]) -> None:
        self.cluster = cluster
        store = cluster.store
        self.services: dict[tuple[str, str], Obj] = {}
        self.by_ip: dict[str, Obj] = {}
        for svc in store.iter_live(cluster.rt("Service")):
            meta = svc["metadata"]
            self.services[(meta.get("namespace", ""), meta["name"])] = svc
        self.endpoints_rt = cluster.rt("Endpoints")
        self.procs_by_pod: dict[str, dict[int, Proc]] = {}
        self.pods: dict[str, list[Proc]] = {}
        self.pod_by_ip: dict[str, str] = {}
        for proc in procs:
            self.pods.setdefault(proc.uid, []).append(proc)
            self.pod_by_ip[proc.ip] = proc.uid
            if proc.serving:
                self.procs_by_pod.setdefault(proc.uid, {}).setdefault(proc.port, proc)
        self.policies: dict[str, list[Obj]] = {}
        for pol in store.iter_live(cluster.rt("NetworkPolicy")):
            self.policies.setdefault(pol["metadata"].get("namespace", ""), []).append(pol)
        self.routes: dict[tuple[str, str], list[Obj]] = {}
        httproute = cluster.store.registry.by_api_version_kind(
            "gateway.networking.k8s.io/v1", "HTTPRoute"
        )
        if httproute is not None:
            for route in store.iter_live(httproute):
                rns = route["metadata"].get("namespace", "")
                for parent in (route.get("spec") or {}).get("parentRefs") or []:
                    if parent.get("kind") == "Service" and parent.get("group", "") in ("", "core"):
                        pns = parent.get("namespace") or rns
                        self.routes.setdefault((pns, parent.get("name", "")), []).append(route)
        dns = self.services.get(("kube-system", "kube-dns"))
        self.dns = (dns or {}).get("spec", {}).get("clusterIP") or DEFAULT_DNS
        self._ns_labels: dict[str, dict[str, str]] = {}

    # -- lookups ----------------------------------------------------------------------------

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        got = self._ns_labels.get(namespace)
        if got is None:
            obj = self.cluster.store.find(self.cluster.rt("Namespace"), "", namespace)
            got = dict(((obj or {}).get("metadata") or {}).get("labels") or {})
            got.setdefault("kubernetes.io/metadata.name", namespace)
            self._ns_labels[namespace] = got
        return got

    def service_for_host(self, host: str, namespace: str) -> tuple[str, str, Obj | None]:
        """(namespace, name, Service or None) for a DNS name dialled from `namespace`."""
        name = host.rstrip(".")
        for suffix in (".svc.cluster.local", ".svc"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        if "." in name:
            name, _, ns = name.partition(".")
            if "." in ns:
                return ns, name, None
        else:
            ns = namespace
        return ns, name, self.services.get((ns, name))

    def cluster_ip(self, svc: Obj) -> str:
        ip = (svc.get("spec") or {}).get("clusterIP")
        if ip and ip != "None":
            return str(ip)
        meta = svc["metadata"]
        return fake_ip("10.96", f"{meta.get('namespace', '')}/{meta['name']}")

    def is_headless(self, svc: Obj) -> bool:
        return (svc.get("spec") or {}).get("clusterIP") == "None"

    def selected(self, proc: Proc) -> bool:
        """Whether any Service with a selector in the pod's namespace selects it."""
        for (ns, _name), svc in self.services.items():
            if ns != proc.namespace:
                continue
            selector = (svc.get("spec") or {}).get("selector")
            if selector and all(proc.labels.get(k) == v for k, v in selector.items()):
                return True
        return False

    # -- policy -----------------------------------------------------------------------------

    def _policy_types(self, pol: Obj) -> list[str]:
        spec = pol.get("spec") or {}
        types = spec.get("policyTypes")
        if types:
            return list(types)
        return ["Ingress", *(["Egress"] if spec.get("egress") else [])]

    def _ports_match(self, ports: list[Obj] | None, port: int, port_name: str) -> bool:
        if not ports:
            return True
        for p in ports:
            if (p.get("protocol") or "TCP") != "TCP":
                continue
            want = p.get("port")
            if want is None:
                return True
            if isinstance(want, str) and not want.isdigit():
                if want == port_name:
                    return True
                continue
            low = _int(want)
            high = _int(p.get("endPort") or low)
            if low <= port <= high:
                return True
        return False

    def _peer_match(
        self, peers: list[Obj] | None, policy_ns: str, other: Proc | None, other_ip: str
    ) -> bool:
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if block:
                try:
                    addr = ipaddress.ip_address(other_ip)
                    net = ipaddress.ip_network(block.get("cidr", ""), strict=False)
                except ValueError:
                    continue
                if addr in net and not any(
                    addr in ipaddress.ip_network(ex, strict=False)
                    for ex in block.get("except") or []
                ):
                    return True
                continue
            if other is None:
                continue
            if "namespaceSelector" in peer:
                ns_ok = match_labels(
                    peer.get("namespaceSelector"), self.namespace_labels(other.namespace)
                )
            else:
                ns_ok = other.namespace == policy_ns
            pod_ok = "podSelector" not in peer or match_labels(
                peer.get("podSelector"), other.labels
            )
            if ns_ok and pod_ok:
                return True
        return False

    def ingress_allowed(
        self, dst: Proc, src: Proc | None, src_ip: str, port: int, port_name: str
    ) -> bool:
        """Whether the NetworkPolicies of `dst`'s namespace admit `src` on `port`."""
        selecting = [
            p
            for p in self.policies.get(dst.namespace, ())
            if "Ingress" in self._policy_types(p)
            and match_labels((p.get("spec") or {}).get("podSelector") or {}, dst.labels)
        ]
        if not selecting:
            return True
        for pol in selecting:
            for rule in (pol.get("spec") or {}).get("ingress") or []:
                if self._ports_match(rule.get("ports"), port, port_name) and self._peer_match(
                    rule.get("from"), dst.namespace, src, src_ip
                ):
                    return True
        return False

    def egress_allowed(self, src: Proc | None, dst: Proc | None, dst_ip: str, port: int) -> bool:
        """Whether the NetworkPolicies of `src`'s namespace let it reach `dst_ip:port`."""
        if src is None:
            return True
        selecting = [
            p
            for p in self.policies.get(src.namespace, ())
            if "Egress" in self._policy_types(p)
            and match_labels((p.get("spec") or {}).get("podSelector") or {}, src.labels)
        ]
        if not selecting:
            return True
        port_name = ""
        if dst is not None:
            port_name = next(
                (str(p.get("name", "")) for p in dst.ports if p.get("containerPort") == port), ""
            )
        for pol in selecting:
            for rule in (pol.get("spec") or {}).get("egress") or []:
                if self._ports_match(rule.get("ports"), port, port_name) and self._peer_match(
                    rule.get("to"), src.namespace, dst, dst_ip
                ):
                    return True
        return False

    def dns_allowed(self, src: Proc | None) -> bool:
        """Whether an egress policy on the caller still lets its DNS queries out."""
        if src is None:
            return True
        selecting = [
            p
            for p in self.policies.get(src.namespace, ())
            if "Egress" in self._policy_types(p)
            and match_labels((p.get("spec") or {}).get("podSelector") or {}, src.labels)
        ]
        if not selecting:
            return True
        for pol in selecting:
            for rule in (pol.get("spec") or {}).get("egress") or []:
                ports = rule.get("ports")
                dns_port = not ports or any(
                    str(p.get("port")) in ("53", "dns", "dns-tcp", "None") for p in ports
                )
                peers = rule.get("to")
                if dns_port and (
                    not peers
                    or any("namespaceSelector" in p or "ipBlock" in p for p in peers)
                    or self._peer_match(peers, src.namespace, None, self.dns)
                ):
                    return True
        return False

    # -- resolution -------------------------------------------------------------------------

    def protocol_of(
        self,
        svc: Obj | None,
        port: Obj | None,
        backends: list[Proc],
        hint: Protocol | None = None,
    ) -> Protocol:
        """The protocol spoken on a Service port: its name or appProtocol, else the server's."""
        names = []
        if port:
            names = [str(port.get("appProtocol") or ""), str(port.get("name") or "")]
        for name in names:
            h = name.lower()
            if "grpc" in h:
                return "grpc"
            if "redis" in h:
                return "redis"
            if "postgres" in h or h == "pg":
                return "postgres"
            if h.startswith("http") or h in ("web", "https"):
                return "http"
        if backends:
            return backends[0].profile.protocol
        if hint is not None:
            return hint
        number = _int((port or {}).get("port"))
        return WELL_KNOWN_PORTS.get(number, "http")

    def resolve(
        self,
        caller: Proc | None,
        caller_ns: str,
        host: str,
        port: int | None,
        hint: Protocol | None = None,
    ) -> Route:
        """The route of `caller`'s calls to `host:port` (caller None: from outside the cluster).

        `hint` is the protocol the caller's client speaks when nothing on the
        server side says (a Service that does not exist).
        """
        src_ip = caller.ip if caller is not None else "10.0.0.1"
        fallback: Protocol = hint or WELL_KNOWN_PORTS.get(port or 0, "http")
        if not self.dns_allowed(caller):
            detail = (
                f"dial tcp: lookup {host} on {self.dns}:53: read udp "
                f"{src_ip}:{_ephemeral(src_ip, host)}->{self.dns}:53: i/o timeout"
            )
            leg = Leg(1.0, "timeout", None, host, "", caller_ns, detail, fallback)
            return Route(host, port, "", caller_ns, fallback, [leg])
        ns, name, svc = self.service_for_host(host, caller_ns)
        if svc is None:
            detail = f"dial tcp: lookup {host} on {self.dns}:53: no such host"
            leg = Leg(1.0, "nxdomain", None, host, name, ns, detail, fallback)
            return Route(host, port, "", ns, fallback, [leg])
        return self._route_service(caller, src_ip, host, port, svc, split=True, hint=hint)

    def _service_port(self, svc: Obj, port: int | None) -> Obj | None:
        ports = (svc.get("spec") or {}).get("ports") or []
        if port is None:
            return ports[0] if ports else None
        for p in ports:
            if _int(p.get("port")) == port:
                return dict(p)
        return None

    def _route_service(
        self,
        caller: Proc | None,
        src_ip: str,
        host: str,
        port: int | None,
        svc: Obj,
        *,
        split: bool,
        hint: Protocol | None = None,
    ) -> Route:
        meta = svc["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            ext = str(spec.get("externalName", ""))
            return Route(host, port, name, ns, "http", [Leg(1.0, "external", None, ext, name, ns)])
        svc_port = self._service_port(svc, port)
        number = port if port is not None else _int((svc_port or {}).get("port"))
        ip = self.cluster_ip(svc)
        address = f"{ip}:{number}"
        if svc_port is None:
            detail = f"dial tcp {address}: i/o timeout"
            return Route(
                host, port, name, ns, "http", [Leg(1.0, "timeout", None, address, name, ns, detail)]
            )
        if split:
            routes = self.routes.get((ns, name))
            if routes:
                return self._split(caller, src_ip, host, number, svc, routes)
        legs, backends = self._endpoint_legs(caller, src_ip, svc, svc_port, number)
        protocol = self.protocol_of(svc, svc_port, backends, hint)
        for leg in legs:
            leg.protocol = protocol
        return Route(host, port, name, ns, protocol, legs)

    def _split(
        self, caller: Proc | None, src_ip: str, host: str, port: int, parent: Obj, routes: list[Obj]
    ) -> Route:
        meta = parent["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        rule = _pick_rule(routes, port, name)
        if rule is None:
            return self._route_service(caller, src_ip, host, port, parent, split=False)
        route_ns, refs = rule
        weighted = [(float(max(0, _int(r.get("weight", 1)))), r) for r in refs]
        total = sum(w for w, _ in weighted)
        legs: list[Leg] = []
        protocol: Protocol = "http"
        if total <= 0:
            detail = "no healthy upstream"
            return Route(
                host,
                port,
                name,
                ns,
                "http",
                [Leg(1.0, "unavailable", None, host, name, ns, detail)],
            )
        for weight, ref in weighted:
            if weight <= 0:
                continue
            share = weight / total
            bns = ref.get("namespace") or route_ns
            backend = self.services.get((bns, ref.get("name", "")))
            if backend is None or ref.get("kind", "Service") != "Service":
                legs.append(
                    Leg(
                        share,
                        "unavailable",
                        None,
                        host,
                        str(ref.get("name", "")),
                        bns,
                        "no healthy upstream",
                    )
                )
                continue
            sub = self._route_service(
                caller, src_ip, host, _int(ref.get("port")) or port, backend, split=False
            )
            protocol = sub.protocol
            for leg in sub.legs:
                leg.share *= share
                legs.append(leg)
        for leg in legs:
            leg.protocol = protocol
        return Route(host, port, name, ns, protocol, legs)

    def _endpoint_targets(self, svc: Obj, svc_port: Obj) -> list[tuple[str, str, int, str]] | None:
        """(ip, pod uid or "", port, node) of each ready endpoint; None when nothing selects."""
        meta = svc["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        ep = self.cluster.store.find(self.endpoints_rt, ns, name)
        out: list[tuple[str, str, int, str]] = []
        if ep is not None:
            want = svc_port.get("name")
            for subset in ep.get("subsets") or []:
                ports = subset.get("ports") or []
                match = None
                for p in ports:
                    if (p.get("name") or None) == (want or None) or len(ports) == 1:
                        match = p
                        break
                if match is None:
                    continue
                for addr in subset.get("addresses") or []:
                    ref = addr.get("targetRef") or {}
                    uid = str(ref.get("uid") or self.pod_by_ip.get(addr.get("ip", ""), ""))
                    out.append(
                        (
                            str(addr.get("ip", "")),
                            uid,
                            _int(match.get("port")),
                            str(addr.get("nodeName", "")),
                        )
                    )
            return out
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            return out
        target = svc_port.get("targetPort", svc_port.get("port"))
        for uid, procs in self.pods.items():
            first = procs[0]
            if first.namespace != ns or not all(
                first.labels.get(k) == v for k, v in selector.items()
            ):
                continue
            if not all(p.crt.ready for p in procs):
                continue
            number = _target_number(target, first.pod_ports)
            if number is None:
                continue
            out.append((first.ip, uid, number, first.node))
        return out

    def _endpoint_legs(
        self, caller: Proc | None, src_ip: str, svc: Obj, svc_port: Obj, number: int
    ) -> tuple[list[Leg], list[Proc]]:
        meta = svc["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        headless = self.is_headless(svc)
        cluster_address = f"{self.cluster_ip(svc)}:{number}"
        targets = self._endpoint_targets(svc, svc_port) or []
        if not targets:
            detail = f"dial tcp {cluster_address}: connect: connection refused"
            return [Leg(1.0, "refused", None, cluster_address, name, ns, detail)], []
        share = 1.0 / len(targets)
        legs: list[Leg] = []
        backends: list[Proc] = []
        nodes_down = self.cluster.nodes_down
        for ip, uid, port, node in targets:
            address = f"{ip}:{port}" if headless else cluster_address
            listening = self.procs_by_pod.get(uid, {})
            proc = listening.get(port)
            pod_procs = self.pods.get(uid)
            node = node or (pod_procs[0].node if pod_procs else "")
            if node in nodes_down:
                legs.append(
                    Leg(
                        share,
                        "timeout",
                        None,
                        address,
                        name,
                        ns,
                        f"dial tcp {address}: i/o timeout",
                    )
                )
                continue
            if proc is None:
                detail = f"dial tcp {address}: connect: connection refused"
                legs.append(Leg(share, "refused", None, address, name, ns, detail))
                continue
            backends.append(proc)
            port_name = next(
                (str(p.get("name", "")) for p in proc.ports if p.get("containerPort") == port), ""
            )
            if not self.ingress_allowed(
                proc, caller, src_ip, port, port_name
            ) or not self.egress_allowed(caller, proc, proc.ip, port):
                legs.append(
                    Leg(
                        share,
                        "timeout",
                        None,
                        address,
                        name,
                        ns,
                        f"dial tcp {address}: i/o timeout",
                    )
                )
                continue
            legs.append(Leg(share, "ok", proc, address, name, ns))
        return legs, backends


def _int(value: Any) -> int:
    """A port or count from an object field; 0 when it is missing or not a number."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _ephemeral(ip: str, host: str) -> int:
    return 32768 + zlib.crc32(f"{ip}/{host}".encode()) % 28000


def _target_number(target: Any, ports: list[Obj]) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for p in ports:
        if p.get("name") == target:
            return _int(p.get("containerPort"))
    return None


def _pick_rule(routes: list[Obj], port: int, parent: str) -> tuple[str, list[Obj]] | None:
    """The backendRefs of the first rule that applies to all requests to the parent."""
    for route in sorted(
        routes, key=lambda r: (r["metadata"].get("creationTimestamp", ""), r["metadata"]["name"])
    ):
        spec = route.get("spec") or {}
        ports_ok = any(
            p.get("kind") == "Service"
            and p.get("name") == parent
            and (p.get("port") is None or _int(p.get("port")) == port)
            for p in spec.get("parentRefs") or []
        )
        if not ports_ok:
            continue
        for rule in spec.get("rules") or []:
            refs = rule.get("backendRefs") or []
            if refs:
                return route["metadata"].get("namespace", ""), refs
    return None


#: Protocols of ports everyone knows.
WELL_KNOWN_PORTS: dict[int, Protocol] = {6379: "redis", 5432: "postgres", 3306: "tcp"}
_SCHEMES: dict[str, Protocol] = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "redis": "redis",
    "rediss": "redis",
    "http": "http",
    "https": "http",
    "grpc": "grpc",
}


def call_protocol(call: Call, env: dict[str, str]) -> Protocol | None:
    """The protocol the caller's client speaks: its URL's scheme, or a gRPC method name."""
    value = env.get(call.address_env, "") if call.address_env else ""
    if "://" in value:
        got = _SCHEMES.get(value.split("://", 1)[0].lower())
        if got is not None:
            return got
    op = call.operation
    if "/" in op and " " not in op and "." in op.split("/", 1)[0]:
        # A full gRPC method name: package.Service/Method.
        return "grpc"
    return None


def call_target(call: Call, env: dict[str, str]) -> tuple[str, int | None]:
    """The host and port a call dials: from its address env var when set, else its Service."""
    if call.address_env:
        value = env.get(call.address_env)
        if value:
            return parse_address(value)
    for _name, value in address_env(env):
        host, port = parse_address(value)
        if host == call.service:
            return host, port
    return call.service, None


def implicit_calls(profile: BehaviorProfile, env: dict[str, str]) -> tuple[Call, ...]:
    """A profile's calls; one without any calls depends on every address in its env."""
    if profile.calls:
        return profile.calls
    return tuple(
        Call(parse_address(value)[0], 1.0, address_env=name) for name, value in address_env(env)
    )
