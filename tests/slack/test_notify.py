"""Posting alert-started incidents to Slack, and answering their approvals with a button.

The webhook worker calls `post_incident_summary` when an incident ends and
`post_approval_request` when one waits; a click on such a request reaches
the Slack app, which answers through the worker's queue (a SQLite file here,
the same one `kubemedic serve` uses without Redis).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interfaces.runner import run_scenario
from interfaces.slack_notify import (
    SlackNotConfigured,
    post_approval_request,
    post_incident_summary,
    web_client,
)
from interfaces.worker import Job, TrackedIncident, open_queue
from settings import Settings
from state import (
    Category,
    Hypothesis,
    Incident,
    IncidentInput,
    IncidentReport,
    ObjectRef,
    TokenUsage,
)
from tests.slack.support.harness import CHANNEL, running_app, slack_settings
from tests.slack.support.signing import block_actions_body, click
from tests.slack.support.slack_api import SlackStandIn
from tools.registry import Toolbox


def test_summary_of_a_real_run_in_both_report_shapes(tmp_path: Path) -> None:
    result = asyncio.run(
        run_scenario("cart-redis-down", mode="autonomous", settings=Settings(data_dir=tmp_path))
    )
    report = result.report
    cause = report["root_causes"][0]
    transcript = json.loads(Path(report["transcript_path"]).read_text())

    async def scenario() -> None:
        async with SlackStandIn() as api:
            settings = slack_settings(tmp_path, api.api_url)
            ts1 = await post_incident_summary(report, settings=settings)
            ts2 = await post_incident_summary(transcript, settings=settings)
            ts3 = await post_incident_summary(
                IncidentReport.model_validate(transcript),
                settings=settings,
                client=web_client(settings),
                channel="COTHER",
            )
            posted = api.messages[CHANNEL]
            assert [m.ts for m in posted] == [ts1, ts2]
            assert [m.ts for m in api.messages["COTHER"]] == [ts3]
            for msg in [*posted, *api.messages["COTHER"]]:
                body = msg.text + json.dumps(msg.blocks)
                assert f"{cause['namespace']}/{cause['name']}" in body
                assert "applied" in body
                assert report["incident_id"] in body
                assert msg.thread_ts is None  # a new message in the channel

    asyncio.run(scenario())


def test_summary_is_redacted_and_escaped(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    secret = "postgres://app:hunter2hunter2@db:5432/orders"
    report = IncidentReport(
        incident=Incident(
            id="inc-20260101-000000-abcdef",
            title="<!here> OrdersDown <https://evil.example|click>",
            trigger="alert",
            fingerprint="ordersdown|shop|-",
            mode="observe",
            opened_at=now,
        ),
        outcome="recommended",
        hypotheses=[
            Hypothesis(
                id="h1",
                root_cause=ObjectRef(kind="Deployment", namespace="shop", name="orders"),
                cause_kind="auth_failure",
                category=Category(system_level="Application", fault_type="Authentication Issue"),
                confidence=0.8,
                statement=f"orders cannot log in with {secret} <@U0ADMIN>",
            )
        ],
        actions=[],
        decisions=[],
        verifications=[],
        tokens=TokenUsage(),
        detected_at=now,
        localized_at=now,
        mitigated_at=None,
        transcript=[],
    )

    async def scenario() -> None:
        async with SlackStandIn() as api:
            settings = slack_settings(tmp_path, api.api_url)
            await post_incident_summary(report, settings=settings)
            sent = api.everything_sent()
            assert "hunter2hunter2" not in sent
            assert "[REDACTED]" in sent
            for raw in ("<!here>", "<@U0ADMIN>", "<https://evil.example|click>"):
                assert raw not in sent
            assert "&lt;!here&gt;" in sent
            assert "Deployment/shop/orders" in sent

    asyncio.run(scenario())


def test_no_channel_or_token_is_said(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, slack={"bot_token": "xoxb-1"})
    with pytest.raises(SlackNotConfigured, match="KUBEMEDIC_SLACK__CHANNEL"):
        asyncio.run(post_incident_summary({"incident_id": "x"}, settings=settings))
    with pytest.raises(SlackNotConfigured, match="KUBEMEDIC_SLACK__BOT_TOKEN"):
        web_client(Settings(data_dir=tmp_path))


async def _waiting_incident(settings: Settings, request_id: str) -> str:
    """A webhook incident waiting for approval in the worker's queue, as the worker leaves it."""
    queue = open_queue(settings)
    now = datetime.now(UTC)
    incident_id = "inc-20260101-000000-a1b2c3"
    record = TrackedIncident(
        id=incident_id,
        fingerprint="fp1",
        alertname="CartDown",
        mode="approve",
        created_at=now,
        updated_at=now,
    )
    first = IncidentInput(trigger="alert", mode="approve", incident_id=incident_id)
    assert await queue.submit(record, Job(kind="incident", incident_id=incident_id, input=first), 0)
    claimed = await queue.claim(1.0)
    assert claimed is not None
    await queue.ack(claimed)
    waiting = record.evolve(
        status="waiting_approval",
        runs=1,
        request_id=request_id,
        approval_actions=[{"index": 0, "summary": "scale Deployment/shop/redis-cart"}],
    )
    assert await queue.transition(waiting, {"queued"})
    await queue.aclose()
    return incident_id


def test_a_click_on_an_alert_incidents_request_answers_through_the_queue(tmp_path: Path) -> None:
    request_id = "apr-0123456789abcdef-a1b2c3d4e5f6"

    async def scenario() -> None:
        async with running_app(tmp_path, box=Toolbox(), approvers=["UALICE"]) as run:
            incident_id = await _waiting_incident(run.settings, request_id)
            payload = {
                "request_id": request_id,
                "incident_id": incident_id,
                "title": "CartDown (critical) in namespace shop",
                "actions": [
                    {
                        "index": 0,
                        "summary": "scale Deployment/shop/redis-cart",
                        "action": {"action": "scale", "params": {"replicas": 1}},
                        "gate": ["approve mode: every write waits"],
                        "dry_run": {"status": "dry_run_passed", "message": "ok"},
                    }
                ],
                "evidence": [],
            }
            ts = await post_approval_request(payload, settings=run.settings)
            [request] = run.api.messages[CHANNEL]
            assert request.ts == ts
            value = next(
                el["value"]
                for b in request.blocks
                for el in b.get("elements", [])
                if el.get("action_id") == "kubemedic_approve"
            )
            assert json.loads(value)["incident_id"] == incident_id

            def body(user: str) -> str:
                return block_actions_body(
                    user_id=user,
                    user_name=user.lower(),
                    channel=CHANNEL,
                    message={"ts": ts, "text": request.text},
                    action_id="kubemedic_approve",
                    value=value,
                )

            queue = open_queue(run.settings)
            try:
                assert (await click(run.url, body("UMALLORY"))).status == 200
                await run.app.wait_idle()
                record = await queue.get(incident_id)
                assert record is not None
                assert record.status == "waiting_approval"
                assert "not one of the Slack approvers" in run.api.thread(CHANNEL, ts)[-1].text

                assert (await click(run.url, body("UALICE"))).status == 200
                await run.app.wait_idle()
                record = await queue.get(incident_id)
                assert record is not None
                assert record.status == "queued"  # a worker resumes it
                job = await queue.claim(1.0)
                assert job is not None
                assert job.job.kind == "resume"
                assert job.job.answer is not None
                assert job.job.answer["by"] == "UALICE"
                assert job.job.answer["via"] == "slack"
                assert job.job.answer["request_id"] == request_id
                assert "Approved" in request.text
                assert "<@UALICE>" in request.text

                # The same click again: the incident no longer waits.
                assert (await click(run.url, body("UALICE"))).status == 200
                await run.app.wait_idle()
                refusal = run.api.thread(CHANNEL, ts)[-1]
                assert "was refused" in refusal.text
                assert "not waiting for approval" in refusal.text
            finally:
                await queue.aclose()

    asyncio.run(scenario())
