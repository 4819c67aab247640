"""Shared pieces of the webhook and worker tests: the twin as the worker's cluster, settings,
Alertmanager payloads, and a server with only the webhook (no worker) over a real queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from interfaces.clock import TwinClock
from interfaces.runner import twin_toolbox
from interfaces.webhook import WebhookServer, create_app
from interfaces.worker import Counters, IncidentQueue, TrackedIncident, open_queue
from settings import Settings
from tools.clock import ClusterClock
from tools.registry import Toolbox
from twin.alerts import webhook_payload
from twin.harness import Twin


@dataclass
class TwinBackend:
    """The twin as the worker's cluster: its API, metrics and traces, on its simulated clock."""

    twin: Twin
    clock: ClusterClock = field(init=False)
    toolboxes: int = 0

    def __post_init__(self) -> None:
        self.clock = TwinClock(self.twin)

    def toolbox(self) -> Toolbox:
        self.toolboxes += 1
        return twin_toolbox(self.twin, TwinClock(self.twin))

    async def check(self) -> None:
        box = self.toolbox()
        try:
            assert box.cluster is not None
            await asyncio.to_thread(box.cluster.version)
        finally:
            if box.cluster is not None:
                box.cluster.close()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings in a temporary data directory; nothing read from the environment's Redis."""
    base: dict[str, Any] = {"data_dir": tmp_path, "redis": {"url": None}}
    base.update(overrides)
    return Settings(**base)


def alert(
    labels: dict[str, str] | None = None,
    *,
    status: str = "firing",
    annotations: dict[str, str] | None = None,
    fingerprint: str = "",
) -> dict[str, Any]:
    """One alert as Alertmanager sends it in a webhook."""
    body: dict[str, Any] = {
        "status": status,
        "labels": labels or {"alertname": "KubePodCrashLooping", "namespace": "shop"},
        "annotations": annotations or {"summary": "a pod restarts"},
        "startsAt": "2025-01-01T10:00:00.000Z",
        "endsAt": "2025-01-01T10:30:00.000Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
    }
    if fingerprint:
        body["fingerprint"] = fingerprint
    return body


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) around `alerts`."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "kubemedic",
        "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": list(alerts),
    }


def scenario_payload(twin: Twin) -> dict[str, Any]:
    """The webhook body the twin's Alertmanager would send for its scenario's active alert."""
    active = twin.evaluator.active
    assert active is not None, f"scenario {twin.scenario.name}: no active alert"
    return webhook_payload([active], twin.evaluator.external_url)


@asynccontextmanager
async def webhook_only(settings: Settings) -> AsyncIterator[tuple[str, IncidentQueue, Counters]]:
    """The webhook served on loopback over the settings' queue, with no worker taking jobs."""
    queue = open_queue(settings)
    counters = Counters()
    server = WebhookServer(create_app(settings, queue, counters=counters))
    url = await server.start("127.0.0.1", 0)
    try:
        yield url, queue, counters
    finally:
        await server.stop()
        await queue.aclose()


async def wait_for(
    check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def record(queue: IncidentQueue, incident_id: str) -> TrackedIncident:
    found = await queue.get(incident_id)
    assert found is not None, f"incident {incident_id} is not in {queue.description}"
    return found


async def post(url: str, body: Any, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as client:
        if isinstance(body, bytes | str):
            return await client.post(url, content=body, **kwargs)
        return await client.post(url, json=body, **kwargs)
