"""The Cluster: the twin's state and the loop that moves it through simulated time.

It ties the store, the clock, the controllers, the kubelet, the traffic model
and the injected faults together. Everything that writes goes through
`Cluster.create/replace/delete`, so defaulting and admission (quota,
default tolerations) apply to API requests and controllers alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twin.behavior import BehaviorRegistry
from twin.clock import SimClock, rfc3339
from twin.logs import LogStore
from twin.resources import ResourceType
from twin.runtime import Effect, PodRuntime
from twin.store import Obj, Store

#: Simulated seconds per step of the control loop.
DEFAULT_TICK = 1.0


class Controller(Protocol):
    """A reconcile loop, stepped once per tick under the cluster lock."""

    name: str

    def step(self, cluster: Cluster, dt: float) -> None: ...


#: Defaulting or admission: may change the object, or raise ApiError to refuse it.
Admission = Callable[["Cluster", ResourceType, Obj, str], None]


@dataclass
class WriteRecord:
    """One write request the API server received (for tests and the scorer)."""

    time: str
    elapsed: float
    verb: str
    resource: str
    namespace: str
    name: str
    subresource: str = ""
    dry_run: bool = False
    code: int = 200
    patch_type: str = ""
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrafficSettings:
    """Load into the app's entry Service."""

    rps: float = 40.0
    namespace: str = "shop"
    service: str = "frontend"
    #: Multiplier from a traffic-spike fault.
    factor: float = 1.0
    #: (namespace, Service) -> multiplier on the requests arriving at that Service
    #: (a traffic-spike fault aimed at a Service other than the entry).
    service_factors: dict[tuple[str, str], float] = field(default_factory=dict)


class Cluster:
    def __init__(self, *, seed: int = 0, clock: SimClock | None = None) -> None:
        self.seed = seed
        self.clock = clock or SimClock()
        self.store = Store(self.clock, seed=seed)
        self.lock = self.store.lock
        #: Randomness for behaviour (log sampling, latency jitter), apart from naming.
        self.rng = random.Random(seed + 1)
        self.logs = LogStore()
        self.behaviors = BehaviorRegistry()
        #: Pod uid -> hidden runtime state.
        self.pods: dict[str, PodRuntime] = {}
        self.effects: list[Effect] = []
        #: Nodes whose kubelet stopped posting status (node-down fault).
        self.nodes_down: set[str] = set()
        self.traffic = TrafficSettings()
        self.write_log: list[WriteRecord] = []
        self.admission: list[Admission] = []
        self.controllers: list[Controller] = []
        self.tick = DEFAULT_TICK
        #: Set by twin.events when the recorder is installed.
        self.recorder: Any = None
        #: Set by twin.telemetry when metrics and traces are installed.
        self.telemetry: Any = None
        #: Callbacks run after each step (alert evaluation, oracle sampling).
        self.after_step: list[Callable[[Cluster], None]] = []

    # -- time -----------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return self.clock.elapsed

    def now_str(self) -> str:
        return rfc3339(self.clock.now())

    def advance(self, seconds: float) -> None:
        """Run the control loop for `seconds` of simulated time."""
        steps = max(1, round(seconds / self.tick)) if seconds > 0 else 0
        for _ in range(steps):
            with self.lock:
                self.clock.advance(self.tick)
                for controller in self.controllers:
                    controller.step(self, self.tick)
                for hook in self.after_step:
                    hook(self)

    # -- writes with admission --------------------------------------------------

    def _admit(self, rt: ResourceType, obj: Obj, operation: str) -> None:
        for plugin in self.admission:
            plugin(self, rt, obj, operation)

    def create(self, rt: ResourceType, obj: Obj, *, dry_run: bool = False) -> Obj:
        with self.lock:
            self._admit(rt, obj, "CREATE")
            return self.store.create(rt, obj, dry_run=dry_run)

    def replace(
        self, rt: ResourceType, obj: Obj, *, dry_run: bool = False, check_version: bool = True
    ) -> Obj:
        with self.lock:
            self._admit(rt, obj, "UPDATE")
            return self.store.replace(rt, obj, dry_run=dry_run, check_version=check_version)

    def delete(self, rt: ResourceType, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        """Delete; pods terminate gracefully (deletionTimestamp, then the kubelet removes them)."""
        with self.lock:
            if rt.kind == "Pod" and rt.group == "":
                pod = self.store.get(rt, namespace, name, live=True)
                if dry_run:
                    return dict(pod)
                if not pod["metadata"].get("deletionTimestamp"):
                    pod["metadata"]["deletionTimestamp"] = self.now_str()
                    pod["metadata"]["deletionGracePeriodSeconds"] = pod.get("spec", {}).get(
                        "terminationGracePeriodSeconds", 30
                    )
                    self.store.commit(rt, pod)
                return dict(pod)
            return self.store.delete(rt, namespace, name, dry_run=dry_run)

    # -- helpers ----------------------------------------------------------------

    def rt(self, kind: str, api_version: str | None = None) -> ResourceType:
        return self.store.rt(kind, api_version)

    def effects_for(self, pod: PodRuntime, image: str | None = None) -> list[Effect]:
        now = self.elapsed
        return [e for e in self.effects if e.active(now) and e.applies_to(pod, image)]
