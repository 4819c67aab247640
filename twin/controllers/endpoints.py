"""The Endpoints controller (pkg/controller/endpoint): which pod IPs stand behind a Service.

One Endpoints object per Service with a selector, named like it and carrying
its labels. Ready pods go in `addresses`, the others in `notReadyAddresses`
(all in `addresses` with publishNotReadyAddresses); terminal, IP-less and
terminating pods are left out. A named targetPort is resolved per pod and a
pod that does not declare it is skipped for that port; a numeric one is used
as is, whether or not anything listens there. Subsets are repacked the way
RepackSubsets does (one subset per distinct address set). Nothing matching
leaves the object with no subsets. The object is only rewritten when its
content changes, with `endpoints.kubernetes.io/last-change-trigger-time`.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twin.clock import parse_rfc3339
from twin.controllers.base import (
    Index,
    Key,
    WorkQueue,
    get_condition,
    is_ready,
    is_terminal,
    key_of,
    labels_of,
)
from twin.errors import ApiError
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

COMPONENT = "endpoint-controller"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
HEADLESS_LABEL = "service.kubernetes.io/headless"
#: maxCapacity: addresses kept per Endpoints object.
MAX_CAPACITY = 1000


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Service's map selector; an empty one selects nothing here (the Service is unmanaged)."""
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def should_be_in_endpoints(pod: Obj) -> bool:
    """endpointutil.ShouldPodBeInEndpoints, not tolerating terminating pods."""
    status = pod.get("status") or {}
    if is_terminal(pod):
        return False
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return not pod["metadata"].get("deletionTimestamp")


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """podutil.FindPort: a number as is; a name looked up in the pod's containers."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol", "TCP")
    for c in (pod.get("spec") or {}).get("containers") or []:
        for port in c.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def format_trigger(ts: datetime) -> str:
    """time.RFC3339Nano: fractional seconds without trailing zeros."""
    base = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        base += f".{ts.microsecond:06d}".rstrip("0")
    return base + "Z"


def _ordered_port(port: Obj) -> Obj:
    """An EndpointPort with its fields in the API's order."""
    return {k: port[k] for k in ("name", "port", "protocol", "appProtocol") if k in port}


def _pod_signature(pod: Obj) -> tuple[Any, ...]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ports = tuple(
        (p.get("name"), p.get("containerPort"), p.get("protocol"))
        for c in spec.get("containers") or []
        for p in c.get("ports") or []
    )
    return (
        tuple(sorted(labels_of(pod).items())),
        is_ready(pod),
        status.get("podIP"),
        spec.get("nodeName"),
        bool(pod["metadata"].get("deletionTimestamp")),
        is_terminal(pod),
        spec.get("hostname"),
        spec.get("subdomain"),
        ports,
    )


class EndpointsController:
    name = COMPONENT

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.svc_rt = cluster.rt("Service")
        self.ep_rt = cluster.rt("Endpoints")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._services: dict[str, dict[str, Obj]] = {}
        #: (namespace, key, value) -> names of Services whose selector has that pair.
        self._by_label: dict[tuple[str, str, str], set[str]] = {}
        self._pod_sigs: dict[Key, tuple[Any, ...]] = {}
        #: TriggerTimeTracker state: Service -> (pod name -> Ready transition, Service creation).
        self._trigger_state: dict[Key, tuple[dict[str, datetime], datetime | None]] = {}
        self._writing = False
        with cluster.lock:
            for svc in cluster.store.iter_live(self.svc_rt):
                self._remember(svc)
                self.queue.add(key_of(svc))
            for pods in index.pods.values():
                for pod in pods.values():
                    self._pod_sigs[key_of(pod)] = _pod_signature(pod)
        index.on(self.svc_rt.key, self._on_service)
        index.on(self.ep_rt.key, self._on_endpoints)
        index.on("pods", self._on_pod)

    def _remember(self, svc: Obj) -> None:
        ns, name = key_of(svc)
        self._forget(ns, name)
        self._services.setdefault(ns, {})[name] = svc
        for k, v in ((svc.get("spec") or {}).get("selector") or {}).items():
            self._by_label.setdefault((ns, str(k), str(v)), set()).add(name)

    def _forget(self, ns: str, name: str) -> None:
        old = self._services.get(ns, {}).pop(name, None)
        for k, v in (((old or {}).get("spec") or {}).get("selector") or {}).items():
            names = self._by_label.get((ns, str(k), str(v)))
            if names is not None:
                names.discard(name)

    # -- events ----------------------------------------------------------------------------

    def _on_service(self, etype: EventType, svc: Obj) -> None:
        key = key_of(svc)
        if etype == "DELETED":
            self._forget(*key)
        else:
            self._remember(svc)
        self.queue.add(key)

    def _on_endpoints(self, etype: EventType, ep: Obj) -> None:
        if not self._writing:
            self.queue.add(key_of(ep))

    def _on_pod(self, etype: EventType, pod: Obj) -> None:
        key = key_of(pod)
        old = self._pod_sigs.pop(key, None)
        new = None
        if etype != "DELETED":
            new = self._pod_sigs[key] = _pod_signature(pod)
        if old == new:
            return
        ns = key[0]
        labels = [dict(sig[0]) for sig in (old, new) if sig is not None]
        candidates: set[str] = set()
        for lab in labels:
            for k, v in lab.items():
                candidates |= self._by_label.get((ns, k, v), set())
        services = self._services.get(ns, {})
        for name in sorted(candidates):
            svc = services.get(name)
            selector = (svc or {}).get("spec", {}).get("selector")
            if any(selects(selector, lab) for lab in labels):
                self.queue.add((ns, name))

    def trigger_time(self, key: Key, svc: Obj, pods: list[Obj]) -> datetime | None:
        """TriggerTimeTracker.ComputeEndpointLastChangeTriggerTime.

        The earliest Ready transition (or Service creation) that changed since the last
        sync; the Service's creation for a Service seen the first time; None if nothing did.
        """
        state = self._trigger_state.get(key)
        last_pods, last_service = state if state is not None else ({}, None)
        earliest: datetime | None = None
        pod_times: dict[str, datetime] = {}
        for pod in pods:
            cond = get_condition(pod.get("status"), "Ready")
            if cond is None or not cond.get("lastTransitionTime"):
                continue
            when = parse_rfc3339(str(cond["lastTransitionTime"]))
            name = str(pod["metadata"]["name"])
            pod_times[name] = when
            previous = last_pods.get(name)
            if previous is None or when > previous:
                earliest = when if earliest is None else min(earliest, when)
        raw = svc["metadata"].get("creationTimestamp")
        created = parse_rfc3339(str(raw)) if raw else None
        if created is not None and (last_service is None or created > last_service):
            earliest = created if earliest is None else min(earliest, created)
        self._trigger_state[key] = (pod_times, created)
        return created if state is None else earliest

    # -- reconcile ------------------------------------------------------------------------------

    def step(self, cluster: Cluster, dt: float) -> None:
        for key in self.queue.pop_due(cluster.elapsed):
            self.sync(cluster, key)

    def sync(self, cluster: Cluster, key: Key) -> None:
        svc = cluster.store.find(self.svc_rt, *key)
        current = cluster.store.find(self.ep_rt, *key)
        if svc is None:
            self._trigger_state.pop(key, None)
            if current is not None:
                self._write(lambda: cluster.delete(self.ep_rt, *key))
            return
        spec = svc.get("spec") or {}
        selector = spec.get("selector")
        if not selector or spec.get("type") == "ExternalName":
            return
        selected = self.index.select(key[0], selector)
        trigger = self.trigger_time(key, svc, selected)
        subsets, truncated = self.compute_subsets(svc, selected)
        labels = dict(labels_of(svc))
        if spec.get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        if current is not None:
            cur_annotations = current["metadata"].get("annotations") or {}
            if (
                (current.get("subsets") or []) == subsets
                and (labels_of(current) or {}) == labels
                and (cur_annotations.get(OVER_CAPACITY) == "truncated") == truncated
            ):
                return
        annotations: dict[str, str] = {}
        if trigger is not None:
            annotations[TRIGGER_TIME] = format_trigger(trigger)
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        if current is None:
            ep: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": key[1],
                    "namespace": key[0],
                    "labels": labels,
                    "annotations": annotations,
                },
            }
            if subsets:
                ep["subsets"] = subsets
            self._write(lambda: cluster.create(self.ep_rt, ep))
            return
        meta = current["metadata"]
        kept = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if k not in (TRIGGER_TIME, OVER_CAPACITY)
        }
        if kept or annotations:
            meta["annotations"] = {**kept, **annotations}
        else:
            meta.pop("annotations", None)
        meta["labels"] = labels
        if subsets:
            current["subsets"] = subsets
        else:
            current.pop("subsets", None)
        self._write(lambda: cluster.store.commit(self.ep_rt, current))

    def _write(self, action: Any) -> None:
        self._writing = True
        try:
            action()
        except ApiError:
            pass
        finally:
            self._writing = False

    def compute_subsets(self, svc: Obj, pods: list[Obj]) -> tuple[list[Obj], bool]:
        """The subsets RepackSubsets would produce, sorted; and whether they were truncated."""
        ns, svc_name = key_of(svc)
        spec = svc.get("spec") or {}
        publish = bool(spec.get("publishNotReadyAddresses"))
        ports = spec.get("ports") or []
        # port tuple -> address key -> (address, ready)
        by_port: dict[tuple[Any, ...], dict[tuple[str, str], tuple[Obj, bool]]] = {}
        for pod in pods:
            if not should_be_in_endpoints(pod):
                continue
            pod_spec = pod.get("spec") or {}
            status = pod.get("status") or {}
            address: Obj = {
                "ip": status.get("podIP") or (status.get("podIPs") or [{}])[0].get("ip", "")
            }
            if pod_spec.get("hostname") and pod_spec.get("subdomain") == svc_name:
                address["hostname"] = pod_spec["hostname"]
            if pod_spec.get("nodeName"):
                address["nodeName"] = pod_spec["nodeName"]
            address["targetRef"] = {
                "kind": "Pod",
                "namespace": ns,
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"].get("uid", ""),
            }
            ready = publish or is_ready(pod)
            addr_key = (str(address["ip"]), str(address["targetRef"]["uid"]))
            if not ports:
                if spec.get("clusterIP") == "None":
                    by_port.setdefault((), {})[addr_key] = (address, ready)
                continue
            for sp in ports:
                number = find_port(pod, sp)
                if number is None:
                    continue
                ep_port: Obj = {}
                if sp.get("name"):
                    ep_port["name"] = sp["name"]
                ep_port["port"] = number
                ep_port["protocol"] = sp.get("protocol", "TCP")
                if sp.get("appProtocol"):
                    ep_port["appProtocol"] = sp["appProtocol"]
                port_key = tuple(sorted(ep_port.items()))
                by_port.setdefault(port_key, {})[addr_key] = (address, ready)
        return self._repack(by_port)

    @staticmethod
    def _repack(
        by_port: dict[tuple[Any, ...], dict[tuple[str, str], tuple[Obj, bool]]],
    ) -> tuple[list[Obj], bool]:
        groups: dict[
            tuple[Any, ...], tuple[list[tuple[Any, ...]], dict[tuple[str, str], tuple[Obj, bool]]]
        ] = {}
        for port_key, addrs in by_port.items():
            group_key = tuple(sorted((k, ready) for k, (_, ready) in addrs.items()))
            groups.setdefault(group_key, ([], addrs))[0].append(port_key)
        budget = MAX_CAPACITY
        truncated = False
        subsets: list[Obj] = []
        for _, (port_keys, addrs) in sorted(groups.items(), key=lambda g: g[0]):
            ordered = sorted(addrs.items(), key=lambda item: item[0])
            ready = [copy.deepcopy(a) for _, (a, r) in ordered if r]
            not_ready = [copy.deepcopy(a) for _, (a, r) in ordered if not r]
            if len(ready) + len(not_ready) > budget:
                truncated = True
                ready = ready[:budget]
                not_ready = not_ready[: max(budget - len(ready), 0)]
            budget -= len(ready) + len(not_ready)
            subset: Obj = {}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            port_list = [_ordered_port(dict(pk)) for pk in port_keys if pk]
            if port_list:
                subset["ports"] = sorted(
                    port_list, key=lambda p: (str(p.get("name", "")), int(p["port"]))
                )
            if ready or not_ready:
                subsets.append(subset)
        return subsets, truncated
