"""Hidden runtime state: what a real cluster's processes know but its API does not show.

The kubelet (twin/kubelet.py) owns container lifecycle; the traffic model
(twin/traffic.py) owns load, resource use and serving; faults (twin/faults.py)
add `Effect`s. They meet here. None of this is served over the API directly:
agents see only its consequences (status, events, logs, metrics, traces).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from twin.behavior import BehaviorProfile

ContainerPhase = Literal["waiting", "running", "terminated"]


@dataclass
class ContainerRuntime:
    name: str
    image: str
    profile: BehaviorProfile
    phase: ContainerPhase = "waiting"
    #: Simulated seconds (clock.elapsed) when the current instance started.
    started_at: float | None = None
    restart_count: int = 0
    #: Working-set memory now, bytes (the traffic model writes it; the kubelet OOM-kills on it).
    memory: float = 0.0
    #: Peak working set since the container started.
    memory_peak: float = 0.0
    #: CPU use now, cores.
    cpu: float = 0.0
    #: Cumulative CPU seconds (container_cpu_usage_seconds_total).
    cpu_seconds: float = 0.0
    #: Requests served by this instance (for crash-after-requests).
    requests_served: int = 0
    #: True once the process accepts requests (after startup_seconds).
    serving: bool = False
    #: Ready as the kubelet last judged it (readiness probe).
    ready: bool = False
    #: Consecutive probe failures, by probe type.
    probe_failures: dict[str, int] = field(default_factory=dict)
    #: Free-form state for the kubelet (back-off, pull state) and traffic model.
    scratch: dict[str, Any] = field(default_factory=dict)


@dataclass
class PodRuntime:
    uid: str
    namespace: str
    name: str
    node: str = ""
    containers: dict[str, ContainerRuntime] = field(default_factory=dict)
    #: Labels of the owning workload, for effects: ("Deployment", name) or ("StatefulSet", name).
    workload: tuple[str, str] | None = None
    #: Simulated seconds when the pod was created.
    created_at: float = 0.0
    #: Latency this pod adds to its requests now (queueing, CPU throttling, faults), ms.
    latency_ms: float = 0.0
    #: Fraction of this pod's requests failing now.
    error_ratio: float = 0.0
    #: Requests per second arriving at this pod now.
    rps: float = 0.0


EffectKind = Literal[
    "hang",
    "error-rate",
    "latency",
    "cpu-hog",
    "memory-leak",
    "noise",
    "auth-failure",
]


@dataclass
class Effect:
    """An injected fault acting on the processes of a workload.

    `pod_uids` set: only those pods (a hung process, a runaway CPU loop; a
    restart clears it). `image` set: any pod running that image (a bug in the
    code: survives restarts, cleared by a rollback). Neither: every pod of the
    workload, current and future.
    """

    kind: EffectKind
    namespace: str
    #: The Deployment/StatefulSet whose pods are affected, or the Service for service-level effects.
    workload: str
    params: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    #: Simulated seconds when the effect ends by itself (error-rate `duration`), or None.
    until: float | None = None
    pod_uids: frozenset[str] | None = None
    image: str | None = None

    def active(self, elapsed: float) -> bool:
        return elapsed >= self.started and (self.until is None or elapsed < self.until)

    def applies_to(self, pod: PodRuntime, image: str | None = None) -> bool:
        if pod.namespace != self.namespace:
            return False
        if pod.workload is None or pod.workload[1] != self.workload:
            return False
        if self.pod_uids is not None and pod.uid not in self.pod_uids:
            return False
        return not (self.image is not None and image is not None and image != self.image)
