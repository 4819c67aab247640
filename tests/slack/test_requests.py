"""Signed requests at the Slack app's HTTP endpoint: what is verified, what is refused.

The app runs on loopback and talks to the Slack Web API stand-in; requests
are signed with Slack's v0 scheme (tests/slack/support/signing.py). A request
with a forged signature or a stale timestamp gets 401 and starts nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from interfaces.slack_app import SlackResponder, namespace_hint, question_text
from interfaces.slack_notify import SlackNotConfigured
from settings import Settings
from tests.slack.support.harness import CHANNEL, running_app
from tests.slack.support.signing import (
    block_actions_body,
    click,
    mention,
    post_signed,
    send_event,
)
from tools.registry import Toolbox


def test_url_verification_is_answered_when_signed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_app(tmp_path, box=Toolbox()) as run:
            body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"})
            reply = await post_signed(run.url, body, "application/json")
            assert reply.status == 200
            assert "c-123" in reply.body
            forged = await post_signed(run.url, body, "application/json", forge=True)
            assert forged.status == 401
            assert "c-123" not in forged.body

    asyncio.run(scenario())


def test_forged_signature_gets_401_and_nothing_runs(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_app(tmp_path, box=Toolbox()) as run:
            event = mention(CHANNEL, "1700000001.000100", "UALICE", "why is checkout failing?")
            reply = await send_event(run.url, event, forge=True)
            assert reply.status == 401
            await asyncio.sleep(0.2)
            await run.app.wait_idle()
            assert run.app.runs_started == 0
            assert run.api.called("chat.postMessage") == []

    asyncio.run(scenario())


def test_stale_timestamp_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_app(tmp_path, box=Toolbox()) as run:
            event = mention(CHANNEL, "1700000001.000200", "UALICE", "why is checkout failing?")
            # Correctly signed, but ten minutes old: a replayed capture.
            reply = await send_event(run.url, event, timestamp=int(time.time()) - 600)
            assert reply.status == 401
            await asyncio.sleep(0.2)
            await run.app.wait_idle()
            assert run.app.runs_started == 0
            assert run.api.called("chat.postMessage") == []

    asyncio.run(scenario())


def test_forged_click_gets_401_and_approves_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_app(tmp_path, box=Toolbox()) as run:
            value = json.dumps(
                {
                    "request_id": "apr-0123456789abcdef-0123456789ab",
                    "incident_id": f"slack-{CHANNEL}-1700000001.000300",
                    "actions": [0],
                }
            )
            body = block_actions_body(
                user_id="UMALLORY",
                user_name="mallory",
                channel=CHANNEL,
                message={"ts": "1700000001.000301", "text": "x"},
                action_id="kubemedic_approve",
                value=value,
            )
            reply = await click(run.url, body, forge=True)
            assert reply.status == 401
            await run.app.wait_idle()
            assert run.api.calls == []

    asyncio.run(scenario())


def test_a_click_on_an_unknown_incident_is_refused_in_the_channel(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_app(tmp_path, box=Toolbox()) as run:
            thread_ts = "1700000001.000400"
            value = json.dumps(
                {
                    "request_id": "apr-0123456789abcdef-0123456789ab",
                    "incident_id": f"slack-{CHANNEL}-{thread_ts}",
                    "actions": [0],
                }
            )
            body = block_actions_body(
                user_id="UALICE",
                user_name="alice",
                channel=CHANNEL,
                message={"ts": "1700000001.000401", "text": "x"},
                action_id="kubemedic_approve",
                value=value,
            )
            reply = await click(run.url, body)
            assert reply.status == 200
            await run.app.wait_idle()
            assert run.app.runs_started == 0
            [refusal] = run.api.thread(CHANNEL, thread_ts)
            assert "was refused" in refusal.text
            assert "no incident" in refusal.text

    asyncio.run(scenario())


def test_http_mode_needs_the_signing_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, slack={"bot_token": "xoxb-1"})
    with pytest.raises(SlackNotConfigured, match="SIGNING_SECRET"):
        SlackResponder(settings, box=Toolbox())
    with pytest.raises(SlackNotConfigured, match="BOT_TOKEN"):
        SlackResponder(Settings(data_dir=tmp_path), box=Toolbox(), socket_mode=True)


def test_question_text_and_namespace_hint() -> None:
    assert question_text("<@UKUBEMEDIC>  why is\ncheckout failing in shop?") == (
        "why is checkout failing in shop?"
    )
    assert namespace_hint("why is checkout failing in shop?", {"shop", "rides"}) == "shop"
    # Two namespaces named, or none: no guess.
    assert namespace_hint("shop or rides?", {"shop", "rides"}) is None
    assert namespace_hint("is anything down?", {"shop"}) is None


def test_slash_command_opens_a_thread_and_answers_in_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        # No cluster: the tools say so, and the answer still comes, in the thread.
        async with running_app(tmp_path, box=Toolbox()) as run:
            body = urlencode(
                {
                    "command": "/kubemedic",
                    "text": "is anything down? <!here>",
                    "user_id": "UALICE",
                    "user_name": "alice",
                    "channel_id": CHANNEL,
                    "team_id": "T0000TEST",
                    "response_url": "http://127.0.0.1:9/never",
                    "trigger_id": "1.2.3",
                }
            )
            reply = await post_signed(run.url, body, "application/x-www-form-urlencoded")
            assert reply.status == 200
            assert "Looking into it" in reply.body
            await asyncio.wait_for(run.app.wait_idle(), 60)
            [top] = [m for m in run.api.messages[CHANNEL] if m.thread_ts is None]
            assert "<@UALICE> asked" in top.text
            assert "&lt;!here&gt;" in top.text
            progress, answer = run.api.thread(CHANNEL, top.ts)
            assert "done" in progress.text
            assert "reply in this thread" in json.dumps(answer.blocks)
            assert run.app.runs_started == 1

    asyncio.run(scenario())


def test_a_retried_delivery_starts_one_investigation(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_app(tmp_path, box=Toolbox()) as run:
            ts = "1700000001.000900"
            event = mention(CHANNEL, ts, "UALICE", "is anything down?")
            assert (await send_event(run.url, event, event_id="Ev1")).status == 200
            # Slack resends when the ack is late; the same message also arrives once more.
            assert (await send_event(run.url, event, event_id="Ev1")).status == 200
            await asyncio.wait_for(run.app.wait_idle(), 60)
            assert run.app.runs_started == 1
            assert len(run.api.thread(CHANNEL, ts)) == 2  # one progress message, one answer

    asyncio.run(scenario())
