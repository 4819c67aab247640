"""Fault injection: each fault type of a scenario, applied at its time through the Cluster.

A fault is either a real change (patch, apply, delete, scale, rollout, a
rotated Secret): written to the store like any other write, so it is as
visible as the same change made by a person or a CI system; or a change in a
process (a leak, a hog, a hang, failing requests, added latency, noisy logs,
stale credentials): an `Effect` on hidden runtime state, seen only through
its consequences. Faults never label or annotate anything to say what they
are, and they do not go through the API server, so the write log holds only
what agents did.

Effects attach as `twin.runtime.Effect` documents: hang and cpu-hog to the
current pods (a restart clears them), memory-leak and error-rate to the
current image (a rollback clears them), latency and noise to the workload
(they stay until the scenario ends), auth-failure (secret-rotated) to the
pods started before the rotation (a restart picks up the new credentials).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin.errors import ApiError
from twin.patch import strategic_merge_patch
from twin.resources import ResourceType
from twin.runtime import Effect, EffectKind
from twin.scenario import (
    ApplyFault,
    CpuHogFault,
    DeleteFault,
    ErrorRateFault,
    Fault,
    HangFault,
    LatencyFault,
    MemoryLeakFault,
    NodeDownFault,
    NoiseFault,
    ObjectRef,
    PatchFault,
    RolloutFault,
    ScaleFault,
    SecretRotatedFault,
    TrafficSpikeFault,
)
from twin.selectors import match_labels

if TYPE_CHECKING:
    from twin.cluster import Cluster
    from twin.store import Obj


class FaultError(RuntimeError):
    """A fault that cannot be applied to the cluster as it is (its target is gone)."""


@dataclass(frozen=True)
class AppliedFault:
    """What the injector did, for tests and the scorer's report (never served)."""

    index: int
    type: str
    at: float
    target: str
    detail: str


def _rt(cluster: Cluster, kind: str, api_version: str | None = None) -> ResourceType:
    try:
        return cluster.rt(kind, api_version)
    except KeyError:
        if api_version is None:
            raise FaultError(f"unknown kind {kind!r}") from None
        return cluster.store.registry.register_custom(api_version, kind)


def _ns(rt: ResourceType, ref: ObjectRef, default_namespace: str) -> str:
    return (ref.namespace or default_namespace) if rt.namespaced else ""


def _get_live(cluster: Cluster, ref: ObjectRef, default_namespace: str) -> tuple[ResourceType, Obj]:
    rt = _rt(cluster, ref.kind, ref.apiVersion)
    obj = cluster.store.find(rt, _ns(rt, ref, default_namespace), ref.name)
    if obj is None:
        where = f"{ref.namespace or default_namespace}/{ref.name}" if rt.namespaced else ref.name
        raise FaultError(f"{ref.kind} {where} not found")
    return rt, obj


def _write(cluster: Cluster, rt: ResourceType, obj: Obj) -> Obj:
    meta = obj["metadata"]
    meta.pop("resourceVersion", None)
    try:
        return cluster.replace(rt, obj, check_version=False)
    except ApiError as exc:
        raise FaultError(f"{rt.kind} {meta.get('name')!r}: {exc.message}") from exc


def _containers(obj: Obj) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    containers: list[dict[str, Any]] = pod_spec.get("containers") or []
    return containers


def _container(obj: Obj, name: str | None) -> dict[str, Any]:
    containers = _containers(obj)
    if not containers:
        raise FaultError(f"{obj.get('kind')} {obj['metadata']['name']!r} has no containers")
    if name is None:
        return containers[0]
    for c in containers:
        if c.get("name") == name:
            return c
    raise FaultError(f"{obj.get('kind')} {obj['metadata']['name']!r} has no container {name!r}")


def current_pods(cluster: Cluster, namespace: str, workload: Obj) -> list[Obj]:
    """The workload's pods that exist now and are not terminating."""
    selector = (workload.get("spec") or {}).get("selector")
    if not selector:
        return []
    return [
        p
        for p in cluster.store.list(cluster.rt("Pod"), namespace, selector=selector, live=True)
        if not p["metadata"].get("deletionTimestamp")
    ]


def workloads_behind(cluster: Cluster, namespace: str, service: str) -> list[Obj]:
    """The Deployments and StatefulSets whose pods a Service selects."""
    svc = cluster.store.find(cluster.rt("Service"), namespace, service)
    selector = (svc or {}).get("spec", {}).get("selector")
    if not selector:
        return []
    out = []
    for kind in ("Deployment", "StatefulSet"):
        for obj in cluster.store.list(cluster.rt(kind), namespace, live=True):
            labels = ((obj.get("spec") or {}).get("template") or {}).get("metadata", {})
            if match_labels({"matchLabels": selector}, labels.get("labels") or {}):
                out.append(obj)
    return out


class FaultInjector:
    """Applies a scenario's faults at their times (a controller stepped after the others)."""

    name = "faults"

    def __init__(self, faults: list[Fault], *, default_namespace: str, t0: float = 0.0) -> None:
        self.faults = list(faults)
        self.default_namespace = default_namespace
        self.t0 = t0
        self.applied: list[AppliedFault] = []
        #: Faults that could not be applied (their target was gone), with the reason.
        self.failed: list[tuple[int, str]] = []
        self._done: set[int] = set()
        self._order = sorted(range(len(self.faults)), key=lambda i: self.faults[i].at)

    def step(self, cluster: Cluster, dt: float) -> None:
        now = cluster.elapsed - self.t0
        for i in self._order:
            fault = self.faults[i]
            if fault.at > now + 1e-9:
                break
            if i in self._done:
                continue
            self._done.add(i)
            try:
                detail = apply_fault(cluster, fault, self.default_namespace)
            except FaultError as exc:
                self.failed.append((i, str(exc)))
                continue
            target = str(fault.target) if fault.target is not None else "-"
            self.applied.append(AppliedFault(i, fault.type, now, target, detail))

    @property
    def pending(self) -> list[Fault]:
        return [f for i, f in enumerate(self.faults) if i not in self._done]


def install(cluster: Cluster, injector: FaultInjector) -> FaultInjector:
    cluster.controllers.append(injector)
    return injector


def apply_fault(cluster: Cluster, fault: Fault, default_namespace: str = "default") -> str:
    """Apply one fault now; returns what was done, in words."""
    with cluster.lock:
        if isinstance(fault, PatchFault):
            return _patch(cluster, fault, default_namespace)
        if isinstance(fault, ApplyFault):
            return _apply(cluster, fault)
        if isinstance(fault, DeleteFault):
            rt, obj = _get_live(cluster, fault.target, default_namespace)
            cluster.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            return f"deleted {fault.target}"
        if isinstance(fault, ScaleFault):
            rt, obj = _get_live(cluster, fault.target, default_namespace)
            new = copy.deepcopy(obj)
            new.setdefault("spec", {})["replicas"] = fault.params.replicas
            _write(cluster, rt, new)
            return f"scaled {fault.target} to {fault.params.replicas}"
        if isinstance(fault, RolloutFault):
            return _rollout(cluster, fault, default_namespace)
        if isinstance(fault, NodeDownFault):
            _get_live(cluster, fault.target, default_namespace)
            cluster.nodes_down.add(fault.target.name)
            return f"node {fault.target.name} stopped posting status"
        if isinstance(fault, TrafficSpikeFault):
            return _traffic_spike(cluster, fault, default_namespace)
        if isinstance(fault, SecretRotatedFault):
            return _secret_rotated(cluster, fault, default_namespace)
        return _effect(cluster, fault, default_namespace)


def _patch(cluster: Cluster, fault: PatchFault, default_namespace: str) -> str:
    rt, obj = _get_live(cluster, fault.target, default_namespace)
    patched = strategic_merge_patch(copy.deepcopy(obj), fault.params.patch, rt.kind)
    _write(cluster, rt, patched)
    return f"patched {fault.target}"


def _apply(cluster: Cluster, fault: ApplyFault) -> str:
    obj = fault.params.object.as_dict()
    rt = _rt(cluster, obj["kind"], obj["apiVersion"])
    meta = obj.setdefault("metadata", {})
    ns = (meta.get("namespace") or "default") if rt.namespaced else ""
    if rt.namespaced:
        meta["namespace"] = ns
    existing = cluster.store.find(rt, ns, meta["name"])
    try:
        if existing is None:
            cluster.create(rt, obj)
            return f"created {rt.kind} {ns + '/' if ns else ''}{meta['name']}"
        cluster.replace(rt, obj, check_version=False)
    except ApiError as exc:
        raise FaultError(f"apply {rt.kind} {meta['name']!r}: {exc.message}") from exc
    return f"replaced {rt.kind} {ns + '/' if ns else ''}{meta['name']}"


def _rollout(cluster: Cluster, fault: RolloutFault, default_namespace: str) -> str:
    rt, obj = _get_live(cluster, fault.target, default_namespace)
    new = copy.deepcopy(obj)
    container = _container(new, fault.params.container)
    old_image = str(container.get("image", ""))
    image = fault.params.image
    registry = cluster.behaviors
    explicit = "behavior" in fault.params.model_fields_set
    if not registry.known(image) or explicit:
        base = registry.get(image) if registry.known(image) else registry.get(old_image)
        registry.register(image, base.with_start(fault.params.behavior))
    container["image"] = image
    annotations = new["metadata"].setdefault("annotations", {})
    annotations["kubernetes.io/change-cause"] = (
        fault.params.change_cause or f"ci: deploy {container.get('name', '')}={image}"
    )
    _write(cluster, rt, new)
    return f"rolled out {image} to {fault.target} (was {old_image})"


def _traffic_spike(cluster: Cluster, fault: TrafficSpikeFault, default_namespace: str) -> str:
    factor = fault.params.factor
    target = fault.target
    entry = f"{cluster.traffic.namespace}/{cluster.traffic.service}"
    if target is not None and f"{target.namespace or default_namespace}/{target.name}" != entry:
        raise FaultError(f"traffic-spike on {target}: load enters at {entry} only")
    cluster.traffic.factor *= factor
    return f"load into {entry} x{factor:g}"


def _secret_names(pod_spec: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for c in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name"):
                names.append(ref["name"])
        for src in c.get("envFrom") or []:
            ref = src.get("secretRef") or {}
            if ref.get("name"):
                names.append(ref["name"])
    for vol in pod_spec.get("volumes") or []:
        secret = vol.get("secret") or {}
        if secret.get("secretName"):
            names.append(secret["secretName"])
    return list(dict.fromkeys(names))


def _secret_rotated(cluster: Cluster, fault: SecretRotatedFault, default_namespace: str) -> str:
    client = _get_live(cluster, fault.target, default_namespace)[1]
    ns = client["metadata"].get("namespace", default_namespace)
    dependency = fault.params.dependency
    dep_workloads = workloads_behind(cluster, ns, dependency)
    if not dep_workloads:
        found = None
        for kind in ("Deployment", "StatefulSet"):
            found = found or cluster.store.find(cluster.rt(kind), ns, dependency)
        dep_workloads = [found] if found is not None else []
    rotated = []
    secret_rt = cluster.rt("Secret")
    for workload in dep_workloads:
        pod_spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
        for name in _secret_names(pod_spec):
            secret = cluster.store.find(secret_rt, ns, name)
            if secret is None or name in rotated:
                continue
            new = copy.deepcopy(secret)
            data = new.get("data") or {}
            for key in [*data, *(new.pop("stringData", None) or {})] or ["password"]:
                data[key] = _new_credential(cluster, ns, name, key)
            new["data"] = data
            _write(cluster, secret_rt, new)
            rotated.append(name)
    pods = current_pods(cluster, ns, client)
    cluster.effects.append(
        Effect(
            kind="auth-failure",
            namespace=ns,
            workload=client["metadata"]["name"],
            params={"dependency": dependency},
            started=cluster.elapsed,
            pod_uids=frozenset(p["metadata"]["uid"] for p in pods),
        )
    )
    what = f"Secret {', '.join(rotated)} rotated; " if rotated else ""
    return f"{what}{len(pods)} pods of {fault.target} hold stale credentials for {dependency}"


def _new_credential(cluster: Cluster, namespace: str, name: str, key: str) -> str:
    seed = f"{cluster.seed}/{namespace}/{name}/{key}/{cluster.elapsed}".encode()
    token = base64.b64encode(hashlib.sha256(seed).digest()[:18]).decode()
    return base64.b64encode(token.encode()).decode()


def _effect(cluster: Cluster, fault: Fault, default_namespace: str) -> str:
    """memory-leak, cpu-hog, hang, error-rate, latency and noise."""
    target = fault.target
    assert target is not None
    ns = target.namespace or default_namespace
    if target.kind == "Service":
        workloads = workloads_behind(cluster, ns, target.name)
        if not workloads:
            raise FaultError(f"Service {ns}/{target.name} selects no Deployment or StatefulSet")
    else:
        workloads = [_get_live(cluster, target, default_namespace)[1]]
    started = cluster.elapsed
    kind: EffectKind
    for workload in workloads:
        name = workload["metadata"]["name"]
        params: dict[str, Any] = {}
        until: float | None = None
        pod_uids: frozenset[str] | None = None
        image: str | None = None
        if isinstance(fault, MemoryLeakFault):
            kind = "memory-leak"
            params = {"bytes_per_second": fault.params.rate}
            image = str(_container(workload, fault.params.container).get("image", ""))
        elif isinstance(fault, ErrorRateFault):
            kind = "error-rate"
            params = {"rate": fault.params.rate, "log": fault.params.log}
            image = str(_container(workload, None).get("image", ""))
            if fault.params.duration is not None:
                until = started + fault.params.duration
        elif isinstance(fault, CpuHogFault):
            kind = "cpu-hog"
            params = {"cores": fault.params.cores}
            pod_uids = frozenset(p["metadata"]["uid"] for p in current_pods(cluster, ns, workload))
        elif isinstance(fault, HangFault):
            kind = "hang"
            pod_uids = frozenset(p["metadata"]["uid"] for p in current_pods(cluster, ns, workload))
        elif isinstance(fault, LatencyFault):
            kind = "latency"
            params = {"ms": fault.params.ms, "to": fault.params.to}
        elif isinstance(fault, NoiseFault):
            kind = "noise"
            params = {"log": fault.params.log, "rate": fault.params.rate}
        else:
            raise FaultError(f"fault type {fault.type!r} is not an effect")
        cluster.effects.append(
            Effect(
                kind=kind,
                namespace=ns,
                workload=name,
                params=params,
                started=started,
                until=until,
                pod_uids=pod_uids,
                image=image,
            )
        )
    names = ", ".join(w["metadata"]["name"] for w in workloads)
    return f"{fault.type} on {ns}/{names}"
