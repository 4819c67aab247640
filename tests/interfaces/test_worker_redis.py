"""The queue on Redis: the machine's Redis at 127.0.0.1:6379 (a key prefix per test), and a
Redis started by the test on a free port for the "Redis down, then back" case.

The same promises as on SQLite: two replicas never start the same alert twice,
an accepted alert survives a restart, a dead worker's job is requeued, an
approval answer resumes the incident, and with Redis down the webhook answers
503 naming Redis and accepts nothing it could not store.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from interfaces.serve_cmd import Service, start_service
from interfaces.worker import RedisQueue, TrackedIncident, accept_alert, answer_approval
from settings import Settings
from state import AlertInfo
from tests.interfaces.support import (
    TwinBackend,
    make_settings,
    post,
    record,
    scenario_payload,
    wait_for,
    webhook_only,
)
from twin.harness import Twin

REDIS = "redis://127.0.0.1:6379/0"
RUN_TIMEOUT_S = 60.0


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


pytestmark = pytest.mark.skipif(not _redis_up(), reason="no Redis at 127.0.0.1:6379")


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"kubemedic-test-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)
    client.close()


def redis_settings(tmp_path: Path, prefix: str, url: str = REDIS, **overrides: Any) -> Settings:
    return make_settings(tmp_path, redis={"url": url, "key_prefix": prefix}, **overrides)


async def serve_on(twin: Twin, settings: Settings) -> Service:
    service = await start_service(settings, backend=TwinBackend(twin), host="127.0.0.1", port=0)
    twin.webhook_url = f"{service.url}/api/v1/alerts"
    return service


async def settled(service: Service, incident_id: str, statuses: set[str]) -> TrackedIncident:
    async def check() -> TrackedIncident | None:
        found = await record(service.queue, incident_id)
        return found if found.status in statuses else None

    result: TrackedIncident = await wait_for(check, RUN_TIMEOUT_S, f"incident in {statuses}")
    return result


def test_two_replicas_never_start_the_same_alert_twice(tmp_path: Path, prefix: str) -> None:
    settings = redis_settings(tmp_path, prefix)
    info = AlertInfo(labels={"alertname": "KubePodCrashLooping"}, fingerprint="same-alert")

    async def go() -> None:
        replicas = [
            RedisQueue(REDIS, prefix=f"{prefix}:queue", consumer=f"replica-{i}") for i in range(4)
        ]
        try:
            results = await asyncio.gather(
                *(accept_alert(q, settings, info) for q in replicas for _ in range(5))
            )
            accepted = [r for r in results if r.status == "accepted"]
            assert len(accepted) == 1
            assert {r.incident_id for r in results} == {accepted[0].incident_id}
            assert await replicas[0].depth() == {"ready": 1, "processing": 0}
            (incident,) = await replicas[1].list()
            assert incident.id == accepted[0].incident_id
            assert (await replicas[2].open_incident("same-alert")) == incident
        finally:
            for q in replicas:
                await q.aclose()

    asyncio.run(go())


def test_alerts_survive_a_restart_and_an_approval_resumes_them(tmp_path: Path, prefix: str) -> None:
    settings = redis_settings(tmp_path, prefix, policy={"mode": "approve"})

    async def go() -> TrackedIncident:
        with Twin.start("cart-redis-down") as twin:
            await asyncio.to_thread(twin.run_until_alert)
            async with webhook_only(settings) as (url, queue, _counters):
                response = await post(f"{url}/api/v1/alerts", scenario_payload(twin))
                assert response.status_code == 200, response.text
                incident_id = response.json()["alerts"][0]["incident_id"]
                assert queue.description == "Redis at redis://127.0.0.1:6379/0"
            service = await serve_on(twin, settings)
            try:
                waiting = await settled(service, incident_id, {"waiting_approval", "failed"})
                assert waiting.status == "waiting_approval", waiting.error
                # What the Slack app and `kubemedic approve` call.
                await answer_approval(
                    service.queue,
                    incident_id,
                    request_id=waiting.request_id,
                    decision="approve",
                    by="alice",
                    via="slack",
                )
                done = await settled(service, incident_id, {"done", "failed"})
                writes = [
                    (w.verb, w.resource, w.name, w.subresource)
                    for w in twin.write_log
                    if not w.dry_run and w.code < 400
                ]
                assert writes == [("patch", "deployments.apps", "redis-cart", "scale")]
                return done
            finally:
                await service.stop()

    done = asyncio.run(go())
    assert done.status == "done", done.error
    assert done.outcome == "recovered"


def test_a_dead_replicas_job_is_requeued_when_its_lease_lapses(tmp_path: Path, prefix: str) -> None:
    settings = redis_settings(
        tmp_path, prefix, policy={"mode": "observe"}, webhook={"lease_s": 1.0}
    )

    async def go() -> None:
        with Twin.start("cart-redis-down") as twin:
            await asyncio.to_thread(twin.run_until_alert)
            dead = RedisQueue(REDIS, prefix=f"{prefix}:queue", lease_s=1.0, consumer="dead")
            try:
                accepted = await accept_alert(dead, settings, _info(scenario_payload(twin)))
                await dead.heartbeat()
                claimed = await dead.claim(1.0)
                assert claimed is not None
                assert claimed.job.incident_id == accepted.incident_id
                assert await dead.depth() == {"ready": 0, "processing": 1}
            finally:
                await dead.aclose()  # and never renews its lease again
            service = await serve_on(twin, settings)
            try:
                assert accepted.incident_id is not None
                done = await settled(service, accepted.incident_id, {"done", "failed"})
                assert done.status == "done", done.error
                assert await service.queue.depth() == {"ready": 0, "processing": 0}
            finally:
                await service.stop()

    asyncio.run(go())


def _info(body: dict[str, Any]) -> AlertInfo:
    a = body["alerts"][0]
    return AlertInfo(labels=a["labels"], annotations=a["annotations"], fingerprint=a["fingerprint"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary")
def test_with_redis_down_alerts_get_503_naming_redis_until_it_is_back(
    tmp_path: Path, prefix: str
) -> None:
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings = redis_settings(tmp_path, prefix, url=url, policy={"mode": "observe"})
    server: subprocess.Popen[bytes] | None = None

    async def go() -> None:
        nonlocal server
        with Twin.start("cart-redis-down") as twin:
            await asyncio.to_thread(twin.run_until_alert)
            body = scenario_payload(twin)
            service = await serve_on(twin, settings)
            try:
                response = await post(f"{service.url}/api/v1/alerts", body)
                assert response.status_code == 503
                assert response.headers["Retry-After"] == "10"
                error = response.json()["error"]
                assert f"Redis at redis://127.0.0.1:{port}/0" in error
                assert response.json()["queued_before_failure"] == []
                async with httpx.AsyncClient() as client:
                    ready = await client.get(f"{service.url}/readyz")
                assert ready.status_code == 503
                assert f"Redis at redis://127.0.0.1:{port}/0" in ready.json()["queue"]
                assert (
                    service.counters.get(
                        "kubemedic_alerts_rejected_total", reason="queue_unavailable"
                    )
                    == 1
                )
                # Redis comes back; Alertmanager sends the same payload again.
                server = await asyncio.to_thread(_start_redis, port)
                await wait_for(lambda: _ping(url), 10, "the test's redis-server")
                response = await post(f"{service.url}/api/v1/alerts", body)
                assert response.status_code == 200, response.text
                incident_id = response.json()["alerts"][0]["incident_id"]
                # The worker was retrying its claims all along; it runs the incident now.
                done = await settled(service, incident_id, {"done", "failed"})
                assert done.status == "done", done.error
            finally:
                await service.stop()

    try:
        asyncio.run(go())
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ping(url: str) -> bool:
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            time.sleep(0.05)
    return False
