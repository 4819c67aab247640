"""The twin's Python API, for tests and the benchmark.

`Twin.start("cart-redis-down")` builds the scenario's cluster, serves it
over the Kubernetes REST API on 127.0.0.1 (with the telemetry and
Alertmanager routes), writes a kubeconfig for it and schedules the faults.
In eval mode (no `speed`) simulated time moves only when the caller
advances it, so a thirty-minute incident runs in seconds and replays exactly;
with `speed` a background thread moves it at that many times wall time.
The scenario's truth stays on this object, for the scorer: the cluster and
the server never see it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from twin import alerts, faults, telemetry_http
from twin.alerts import Alert, AlertEvaluator
from twin.apiserver import ServerHandle, serve_in_thread
from twin.builder import build_cluster
from twin.cluster import Cluster, WriteRecord
from twin.faults import FaultInjector
from twin.kubeconfig import write_kubeconfig
from twin.oracle import Oracle, OracleReport
from twin.scenario import Scenario, Truth, load_scenario

log = logging.getLogger(__name__)

#: Wall seconds the serve-mode ticker sleeps between checks.
_TICK_SLEEP = 0.02


class Twin:
    """A running scenario: the cluster, its server, its faults, alert and oracle."""

    def __init__(
        self,
        scenario: Scenario,
        cluster: Cluster,
        *,
        t0: float,
        injector: FaultInjector,
        evaluator: AlertEvaluator,
        oracle: Oracle,
    ) -> None:
        self.scenario = scenario
        #: The scenario's truth, for the scorer alone.
        self.truth: Truth = scenario.truth
        self.cluster = cluster
        self.t0 = t0
        self.injector = injector
        self.evaluator = evaluator
        self.oracle = oracle
        self.server: ServerHandle | None = None
        self.kubeconfig_path: Path = Path()
        self.webhook_url: str | None = None
        #: Webhook deliveries that failed: (payload status, error text).
        self.webhook_errors: list[tuple[str, str]] = []
        self.webhooks_sent = 0
        self.speed: float | None = None
        self._url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._http: httpx.Client | None = None

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    def start(
        cls,
        scenario: Scenario | str | Path,
        *,
        port: int = 0,
        speed: float | None = None,
        kubeconfig: Path | None = None,
        webhook_url: str | None = None,
        clock_start: datetime | None = None,
    ) -> Twin:
        """Build, serve and (with `speed`) run a scenario; nothing starts if it is invalid."""
        sc = load_scenario(scenario)
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        twin = cls.build(sc, clock_start=clock_start)
        try:
            twin._serve(port=port, kubeconfig=kubeconfig)
            twin.webhook_url = webhook_url
            if speed is not None:
                twin._start_ticker(speed)
        except BaseException:
            twin.stop()
            raise
        return twin

    @classmethod
    def build(cls, scenario: Scenario | str | Path, *, clock_start: datetime | None = None) -> Twin:
        """The cluster with faults, alert and oracle installed, not served (for in-process use)."""
        sc = load_scenario(scenario)
        cluster = build_cluster(sc, clock_start=clock_start)
        t0 = cluster.elapsed
        dns = sc.default_namespace
        injector = faults.install(
            cluster, FaultInjector(sc.spec.faults, default_namespace=dns, t0=t0)
        )
        evaluator = alerts.install(
            cluster, AlertEvaluator(sc.spec.alert, default_namespace=dns, t0=t0)
        )
        oracle = Oracle(sc.truth.recovered, default_namespace=dns, t0=t0)
        cluster.after_step.append(oracle.sample)
        oracle.sample(cluster)
        return cls(sc, cluster, t0=t0, injector=injector, evaluator=evaluator, oracle=oracle)

    def _serve(self, *, port: int, kubeconfig: Path | None) -> None:
        cluster = self.cluster
        evaluator = self.evaluator

        def routes(app: Any) -> None:
            telemetry_http.add_routes(app, cluster)
            alerts.add_routes(app, evaluator)

        self.server = serve_in_thread(cluster, host="127.0.0.1", port=port, extra_routes=(routes,))
        self._url = self.server.url
        evaluator.external_url = f"{self._url}/alertmanager"
        if kubeconfig is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kubemedic-twin-")
            kubeconfig = Path(self._tmp.name) / "kubeconfig"
        self.kubeconfig_path = write_kubeconfig(
            kubeconfig, self.server.url, namespace=self.scenario.default_namespace
        )

    def stop(self) -> None:
        """Stop the ticker and the server; remove a temporary kubeconfig."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=10)
            self._ticker = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Twin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it is -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API server's base URL (kept after `stop`, for messages)."""
        if not self._url:
            raise RuntimeError("the twin is not served (use Twin.start)")
        return self._url

    @property
    def sim_seconds(self) -> float:
        """Simulated seconds since the scenario's t=0."""
        return self.cluster.elapsed - self.t0

    @property
    def horizon(self) -> float:
        return self.scenario.spec.horizon

    @property
    def write_log(self) -> list[WriteRecord]:
        """Every write request the API server received (faults are not API requests)."""
        return self.cluster.write_log

    # -- time ----------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Run `seconds` of simulated time (eval mode)."""
        if self._ticker is not None:
            raise RuntimeError("the twin runs on its own clock (speed given); do not advance it")
        self.cluster.advance(seconds)
        self._deliver()

    def advance_until(self, predicate: Callable[[Cluster], bool], timeout_s: float) -> bool:
        """Step until `predicate(cluster)` is true or `timeout_s` simulated seconds pass."""
        if self._ticker is not None:
            raise RuntimeError("the twin runs on its own clock (speed given); do not advance it")
        end = self.cluster.elapsed + timeout_s
        try:
            if predicate(self.cluster):
                return True
            while self.cluster.elapsed < end - 1e-9:
                self.cluster.advance(self.cluster.tick)
                if predicate(self.cluster):
                    return True
            return False
        finally:
            self._deliver()

    def run_until_alert(self, max_seconds: float | None = None) -> Alert | None:
        """Advance until the scenario's alert fires, or the horizon (or `max_seconds`) passes."""
        if self.scenario.spec.alert is None:
            return None
        limit = self.horizon - self.sim_seconds
        if max_seconds is not None:
            limit = min(limit, max_seconds)
        self.advance_until(lambda _c: self.evaluator.active is not None, max(0.0, limit))
        return self.evaluator.active

    def _start_ticker(self, speed: float) -> None:
        self.speed = speed

        def run() -> None:
            wall0 = time.monotonic()
            sim0 = self.cluster.elapsed
            while not self._stop.is_set():
                target = sim0 + (time.monotonic() - wall0) * speed
                while self.cluster.elapsed + self.cluster.tick <= target + 1e-9:
                    if self._stop.is_set():
                        return
                    self.cluster.advance(self.cluster.tick)
                self._deliver()
                self._stop.wait(_TICK_SLEEP)

        self._ticker = threading.Thread(target=run, name="twin-clock", daemon=True)
        self._ticker.start()

    # -- alerts, oracle -------------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        """Every alert that fired so far (resolved ones included)."""
        with self.cluster.lock:
            return list(self.evaluator.history)

    def recovered(self) -> bool:
        """The oracle holds: every recovered condition held for its `for`."""
        return self.oracle.holds(self.cluster)

    def oracle_report(self) -> OracleReport:
        return self.oracle.report(self.cluster)

    def _deliver(self) -> None:
        """POST queued webhook payloads (outside the cluster lock)."""
        with self.cluster.lock:
            payloads = self.evaluator.drain()
        if not payloads or not self.webhook_url:
            return
        if self._http is None:
            self._http = httpx.Client(timeout=5.0)
        for payload in payloads:
            try:
                response = self._http.post(self.webhook_url, json=payload)
                response.raise_for_status()
                self.webhooks_sent += 1
            except httpx.HTTPError as exc:
                log.warning("alert webhook to %s failed: %s", self.webhook_url, exc)
                self.webhook_errors.append((str(payload.get("status")), str(exc)))
