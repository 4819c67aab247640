"""The webhook and the worker end to end, with the twin as the cluster (SQLite queue).

The twin's Alertmanager posts its scenario's alert to the running server over
loopback HTTP; the worker runs the real graph (deterministic mode) on the
twin's API, metrics and traces. The twin's write log is the judge of what was
written. `kubemedic approve` runs as a separate process on the same queue file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from aiohttp import web
from langgraph.runtime import Runtime
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner, Result

from agents.context import AgentContext
from agents.planner import planner
from interfaces.serve_cmd import Service, register, start_service
from interfaces.worker import Job, SqliteQueue, TrackedIncident, answer_approval
from settings import Settings
from state import IncidentReport, IncidentState
from tests.interfaces.support import (
    TwinBackend,
    alert,
    make_settings,
    payload,
    post,
    record,
    scenario_payload,
    wait_for,
    webhook_only,
)
from twin.harness import Twin

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "cart-redis-down"
#: Wall seconds an incident of a built-in scenario may take here (they take a few).
RUN_TIMEOUT_S = 60.0


@pytest.fixture
def twin() -> Iterator[Twin]:
    with Twin.start(SCENARIO) as t:
        yield t


async def serve_on(twin: Twin, settings: Settings, **kwargs: Any) -> Service:
    """The service over the twin; the twin's Alertmanager posts to it."""
    service = await start_service(
        settings, backend=TwinBackend(twin), host="127.0.0.1", port=0, **kwargs
    )
    twin.webhook_url = f"{service.url}/api/v1/alerts"
    return service


async def fire(twin: Twin) -> None:
    """Run the twin until its alert fires (delivered to the webhook as it fires)."""
    fired = await asyncio.to_thread(twin.run_until_alert)
    assert fired is not None, f"{twin.scenario.name}: the alert did not fire"
    assert twin.webhook_errors == []
    assert twin.webhooks_sent >= 1


async def only_incident(service: Service) -> TrackedIncident:
    incidents: list[TrackedIncident] = await wait_for(service.queue.list, 10, "an incident")
    (incident,) = incidents
    return incident


async def settled(service: Service, incident_id: str, statuses: set[str]) -> TrackedIncident:
    async def check() -> TrackedIncident | None:
        found = await record(service.queue, incident_id)
        return found if found.status in statuses else None

    result: TrackedIncident = await wait_for(check, RUN_TIMEOUT_S, f"incident in {statuses}")
    return result


def report(settings: Settings, incident_id: str) -> IncidentReport:
    path = settings.incident_dir(incident_id) / "transcript.json"
    return IncidentReport.model_validate_json(path.read_text())


def real_writes(twin: Twin) -> list[tuple[str, str, str, str]]:
    return [
        (w.verb, w.resource, w.name, w.subresource)
        for w in twin.write_log
        if not w.dry_run and w.code < 400
    ]


def test_an_alert_runs_to_its_outcome_in_observe_mode_and_writes_nothing(
    twin: Twin, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, policy={"mode": "observe"})
    exporter = InMemorySpanExporter()

    async def go() -> None:
        service = await serve_on(twin, settings, exporter=exporter)
        try:
            await fire(twin)
            incident = await only_incident(service)
            done = await settled(service, incident.id, {"done", "failed"})
            assert done.status == "done", done.error
            assert done.outcome == "recommended"
            assert done.runs == 1
            assert service.counters.get("kubemedic_incidents_started_total") == 1
            assert (
                service.counters.get("kubemedic_incidents_finished_total", outcome="recommended")
                == 1
            )
        finally:
            await service.stop()

    asyncio.run(go())
    # Observe mode: not a single write request reached the API server, not even a dry-run.
    assert list(twin.write_log) == []
    (incident_dir,) = (tmp_path / "incidents").iterdir()
    rep = report(settings, incident_dir.name)
    assert rep.incident.trigger == "alert"
    assert rep.incident.mode == "observe"
    assert rep.incident.alert is not None
    assert rep.incident.alert.labels["alertname"] == twin.scenario.spec.alert.labels["alertname"]  # type: ignore[union-attr]
    assert rep.outcome == "recommended"
    assert rep.hypotheses, "the incident was investigated"
    assert all(a.status != "applied" for a in rep.actions)
    for suffix in ("md", "json", "html"):
        assert (incident_dir / f"postmortem.{suffix}").stat().st_size > 0
    # Telemetry: one incident span, one child span per node run, identifiers and counts only.
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == "kubemedic.incident"]
    assert root.attributes is not None
    assert root.attributes["kubemedic.incident.id"] == incident_dir.name
    assert root.attributes["kubemedic.incident.outcome"] == "recommended"
    assert root.attributes["kubemedic.incident.status"] == "done"
    nodes = [s for s in spans if s.name.startswith("kubemedic.node ")]
    names = {s.name.removeprefix("kubemedic.node ") for s in nodes}
    assert {"intake", "recall", "log_analyst", "dependency_tracer", "planner", "learner"} <= names
    for span in nodes:
        assert span.parent is not None
        assert span.parent.span_id == root.context.span_id
        assert span.attributes is not None
        assert span.attributes["kubemedic.incident.id"] == incident_dir.name
        assert span.attributes["kubemedic.node.outcome"] == "ok"
    texts = [str(v) for s in spans for v in (s.attributes or {}).values()]
    annotations = twin.scenario.spec.alert.annotations.values()  # type: ignore[union-attr]
    assert not any(a and a in t for a in annotations for t in texts)


def test_an_approval_waits_until_kubemedic_approve_answers_then_resumes(
    twin: Twin, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, policy={"mode": "approve"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEMEDIC_")}
    env["KUBEMEDIC_DATA_DIR"] = str(tmp_path)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        """The commands in a process of their own, as a person at a terminal runs them."""
        return subprocess.run(
            [sys.executable, "-m", "interfaces.serve_cmd", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def command(*args: str) -> Result:
        """The same commands in this process (faster), with the same settings."""
        app = typer.Typer()
        register(app)
        # Unset what the environment says of kubemedic; the same data directory as the server.
        overlay: dict[str, str | None] = {k: None for k in os.environ if k.startswith("KUBEMEDIC_")}
        overlay["KUBEMEDIC_DATA_DIR"] = str(tmp_path)
        return CliRunner().invoke(app, list(args), env=overlay)

    async def go() -> TrackedIncident:
        service = await serve_on(twin, settings)
        try:
            await fire(twin)
            incident = await only_incident(service)
            waiting = await settled(service, incident.id, {"waiting_approval", "done", "failed"})
            assert waiting.status == "waiting_approval", waiting
            assert waiting.request_id.startswith("apr-")
            (asked,) = waiting.approval_actions
            assert asked["summary"] == "scale Deployment/shop/redis-cart"
            assert asked["params"] == {"replicas": 1}
            # Waiting writes nothing; the dry-run shown to the person is the only request.
            assert real_writes(twin) == []

            pending = await asyncio.to_thread(command, "pending", "--json")
            assert pending.exit_code == 0, pending.output
            (listed,) = json.loads(pending.stdout)
            assert listed["id"] == incident.id
            assert listed["request_id"] == waiting.request_id

            wrong = await asyncio.to_thread(
                command, "approve", incident.id, "--request-id", "apr-forged-0", "--by", "alice"
            )
            assert wrong.exit_code == 1
            assert f"waits on request {waiting.request_id!r}" in wrong.stderr
            stray = await asyncio.to_thread(
                command, "approve", incident.id, "--request-id", waiting.request_id, "--action", "3"
            )
            assert stray.exit_code == 1
            assert "does not ask about actions [3]" in stray.stderr
            assert (await record(service.queue, incident.id)).status == "waiting_approval"

            answer = await asyncio.to_thread(
                cli,
                "approve",
                incident.id,
                "--request-id",
                waiting.request_id,
                "--by",
                "alice",
                "--comment",
                "redis-cart is down, scale it back",
            )
            assert answer.returncode == 0, answer.stderr
            assert f"approved request {waiting.request_id}" in answer.stdout
            again = await asyncio.to_thread(
                command, "approve", incident.id, "--request-id", waiting.request_id, "--by", "bob"
            )
            assert again.exit_code == 1
            assert "is not waiting for approval" in again.stderr

            done = await settled(service, incident.id, {"done", "failed"})
            assert service.counters.get("kubemedic_approvals_requested_total") == 1
            assert service.counters.get("kubemedic_incidents_started_total") == 1
            return done
        finally:
            await service.stop()

    done = asyncio.run(go())
    assert done.status == "done", done.error
    assert done.outcome == "recovered"
    assert done.runs == 2  # the first run, then the resume after the answer
    assert real_writes(twin) == [("patch", "deployments.apps", "redis-cart", "scale")]
    rep = report(settings, done.id)
    (approval,) = rep.approvals
    assert (approval.decision, approval.by, approval.via) == ("approve", "alice", "terminal")
    assert approval.comment == "redis-cart is down, scale it back"
    assert [e.status for e in rep.actions] == ["applied"]


def test_alerts_accepted_before_a_stop_run_after_the_restart(twin: Twin, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, policy={"mode": "observe"})

    async def go() -> None:
        twin.run_until_alert()
        body = scenario_payload(twin)
        # The first server only accepts: it stops before any worker takes the job.
        async with webhook_only(settings) as (url, queue, _counters):
            response = await post(f"{url}/api/v1/alerts", body)
            assert response.status_code == 200
            incident_id = response.json()["alerts"][0]["incident_id"]
            assert (await record(queue, incident_id)).status == "queued"
        # A new process on the same data directory finds it and runs it.
        service = await serve_on(twin, settings)
        try:
            done = await settled(service, incident_id, {"done", "failed"})
            assert done.status == "done", done.error
            assert done.outcome == "recommended"
            # The alert again after the run: within the cooldown, no second incident.
            response = await post(f"{service.url}/api/v1/alerts", body)
            assert response.json()["alerts"][0] == {
                "fingerprint": done.fingerprint,
                "status": "duplicate",
                "incident_id": incident_id,
            }
        finally:
            await service.stop()
        assert (settings.incident_dir(incident_id) / "transcript.json").exists()

    asyncio.run(go())
    assert list(twin.write_log) == []


def test_an_incident_stopped_mid_run_continues_from_its_checkpoint(
    twin: Twin, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, policy={"mode": "observe"})
    entered = asyncio.Event()
    before, after = InMemorySpanExporter(), InMemorySpanExporter()

    async def stuck_planner(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        entered.set()
        await asyncio.sleep(3600)
        return await planner(state, runtime)

    async def go() -> str:
        first = await serve_on(twin, settings, nodes={"planner": stuck_planner}, exporter=before)
        try:
            await fire(twin)
            incident = await only_incident(first)
            await asyncio.wait_for(entered.wait(), RUN_TIMEOUT_S)
        finally:
            # SIGTERM mid-incident: the job goes back to the queue.
            await first.stop()
        queue = SqliteQueue(settings.queue_path)
        try:
            assert await queue.depth() == {"ready": 1, "processing": 0}
            assert (await record(queue, incident.id)).status == "running"
        finally:
            await queue.aclose()
        second = await serve_on(twin, settings, exporter=after)
        try:
            done = await settled(second, incident.id, {"done", "failed"})
            assert done.status == "done", done.error
            assert done.runs == 2
            # Started once: the second run is not counted as a new incident.
            assert second.counters.get("kubemedic_incidents_started_total") == 0
        finally:
            await second.stop()
        return incident.id

    incident_id = asyncio.run(go())
    assert report(settings, incident_id).outcome == "recommended"

    def ran(exporter: InMemorySpanExporter) -> dict[str, str]:
        return {
            s.name.removeprefix("kubemedic.node "): str(
                (s.attributes or {}).get("kubemedic.node.outcome")
            )
            for s in exporter.get_finished_spans()
            if s.name.startswith("kubemedic.node ")
        }

    first_run, second_run = ran(before), ran(after)
    assert first_run["intake"] == "ok"
    assert first_run["planner"] == "abandoned"
    # The second run continued the thread from its checkpoint: what had finished did not run
    # again.
    assert not {"intake", "recall", "log_analyst", "dependency_tracer"} & set(second_run)
    assert second_run["planner"] == "ok"
    assert second_run["learner"] == "ok"
    (root,) = [s for s in after.get_finished_spans() if s.name == "kubemedic.incident"]
    assert (root.attributes or {})["kubemedic.incident.resumed"] is True


def test_a_job_held_by_a_dead_worker_is_requeued_when_its_lease_lapses(
    twin: Twin, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, policy={"mode": "observe"}, webhook={"lease_s": 1.0})

    async def go() -> None:
        twin.run_until_alert()
        async with webhook_only(settings) as (url, _queue, _counters):
            response = await post(f"{url}/api/v1/alerts", scenario_payload(twin))
            incident_id = response.json()["alerts"][0]["incident_id"]
        # Another process claimed the job, then died (it never renews its lease).
        dead = SqliteQueue(settings.queue_path, lease_s=1.0, consumer="dead-worker")
        try:
            await dead.heartbeat()
            claimed = await dead.claim(1.0)
            assert claimed is not None
            assert claimed.job.incident_id == incident_id
        finally:
            await dead.aclose()
        service = await serve_on(twin, settings)
        try:
            done = await settled(service, incident_id, {"done", "failed"})
            assert done.status == "done", done.error
            assert await service.queue.depth() == {"ready": 0, "processing": 0}
        finally:
            await service.stop()

    asyncio.run(go())


def test_at_most_the_configured_number_of_incidents_run_at_once(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, policy={"mode": "observe"}, webhook={"max_concurrent_incidents": 1}
    )
    seen: list[int] = []
    services: list[Service] = []

    async def counting_planner(
        state: IncidentState, runtime: Runtime[AgentContext]
    ) -> dict[str, Any]:
        seen.append(len(services[0].worker.running))
        return await planner(state, runtime)

    async def go() -> list[TrackedIncident]:
        with Twin.start(SCENARIO) as t:
            t.run_until_alert()
            service = await serve_on(t, settings, nodes={"planner": counting_planner})
            services.append(service)
            try:
                bodies = [
                    scenario_payload(t),
                    payload(alert({"alertname": "KubePodNotReady", "namespace": "shop"})),
                ]
                for body in bodies:
                    assert (await post(f"{service.url}/alerts", body)).status_code == 200
                await service.worker.wait_idle(2 * RUN_TIMEOUT_S)
                incidents: list[TrackedIncident] = await service.queue.list()
                return incidents
            finally:
                await service.stop()

    incidents = asyncio.run(go())
    assert len(incidents) == 2
    assert {i.status for i in incidents} == {"done"}
    assert seen
    assert max(seen) == 1


def test_a_job_without_its_incident_record_is_dropped_not_retried(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, policy={"mode": "observe"})

    async def go() -> None:
        queue = SqliteQueue(settings.queue_path)
        try:
            await queue._run(
                lambda c: queue._insert_job(c, Job(kind="incident", incident_id="inc-gone")),
                write=True,
            )
        finally:
            await queue.aclose()
        with Twin.start("healthy") as healthy:
            service = await serve_on(healthy, settings)
            try:
                await service.worker.wait_idle(10)
                assert service.worker.jobs_done == 1
                assert await service.queue.list() == []
            finally:
                await service.stop()

    asyncio.run(go())


def test_a_run_that_keeps_failing_is_retried_then_marked_failed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, policy={"mode": "observe"})
    calls: list[str] = []

    async def broken_planner(
        state: IncidentState, runtime: Runtime[AgentContext]
    ) -> dict[str, Any]:
        calls.append(state.input.incident_id)
        raise RuntimeError("planner bug")

    async def go() -> TrackedIncident:
        with Twin.start(SCENARIO) as t:
            t.run_until_alert()
            service = await serve_on(t, settings, nodes={"planner": broken_planner})
            service.worker.retry_delay_s = 0.05
            try:
                response = await post(f"{service.url}/api/v1/alerts", scenario_payload(t))
                incident_id = response.json()["alerts"][0]["incident_id"]
                failed = await settled(service, incident_id, {"failed", "done"})
                assert (
                    service.counters.get("kubemedic_incidents_finished_total", outcome="failed")
                    == 1
                )
                assert await service.queue.depth() == {"ready": 0, "processing": 0}
                return failed
            finally:
                await service.stop()

    failed = asyncio.run(go())
    assert failed.status == "failed"
    assert failed.errors == 3
    assert failed.runs == 3
    assert "planner bug" in failed.error
    assert len(calls) == 3  # each retry continued the thread at the failing node


class SlackStandIn:
    """Slack's Web API on loopback, only chat.postMessage: records what was posted."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer xoxb-test-token"
        body = await request.json() if request.content_type == "application/json" else {}
        if not body:
            body = dict(await request.post())
        self.posts.append(body)
        return web.json_response({"ok": True, "channel": body.get("channel"), "ts": "1.000001"})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", self._post)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/api/"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def test_slack_hears_of_the_approval_request_and_of_the_outcome(twin: Twin, tmp_path: Path) -> None:
    slack = SlackStandIn()

    async def go() -> tuple[TrackedIncident, str]:
        url = await slack.start()
        settings = make_settings(
            tmp_path,
            policy={"mode": "approve"},
            slack={"bot_token": "xoxb-test-token", "channel": "C0INCIDENTS", "api_url": url},
        )
        service = await serve_on(twin, settings)
        try:
            await fire(twin)
            incident = await only_incident(service)
            waiting = await settled(service, incident.id, {"waiting_approval", "failed"})
            assert waiting.status == "waiting_approval", waiting.error
            (request,) = await wait_for(lambda: list(slack.posts), 10, "the approval request")
            assert request["channel"] == "C0INCIDENTS"
            assert waiting.request_id in json.dumps(request)
            # What the Slack app does with a click on Approve.
            await answer_approval(
                service.queue,
                incident.id,
                request_id=waiting.request_id,
                decision="approve",
                by="U024BE7LH",
                via="slack",
            )
            done = await settled(service, incident.id, {"done", "failed"})
            await wait_for(lambda: len(slack.posts) == 2, 10, "the incident's summary")
            return done, json.dumps(slack.posts[1])
        finally:
            await service.stop()
            await slack.stop()

    done, summary = asyncio.run(go())
    assert done.outcome == "recovered"
    assert "redis-cart" in summary
    assert "xoxb-test-token" not in summary
