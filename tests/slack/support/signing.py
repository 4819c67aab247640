"""Requests signed the way Slack signs them, POSTed to the app's HTTP endpoint.

Slack's v0 signature: `X-Slack-Signature: v0=` + HMAC-SHA256 of
`v0:<timestamp>:<raw body>` with the app's signing secret, and the timestamp
in `X-Slack-Request-Timestamp` (seconds). Events are JSON bodies; interactions
(block_actions) are form bodies with one `payload` field holding JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0000TEST"
API_APP = "A0KUBEMEDIC"


def signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    body: str


async def post_signed(
    url: str,
    body: str,
    content_type: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    forge: bool = False,
) -> Reply:
    """POST `body` with Slack's headers; `forge` signs with a wrong secret."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = signature("not-the-secret" if forge else secret, ts, body)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body.encode(), headers=headers) as resp,
    ):
        return Reply(resp.status, await resp.text())


def event_body(event: dict[str, Any], *, event_id: str = "Ev0001") -> str:
    """An Events API callback around `event`."""
    return json.dumps(
        {
            "token": "unused-verification-token",
            "team_id": TEAM,
            "api_app_id": API_APP,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": "UKUBEMEDIC", "is_bot": True}],
        }
    )


def mention(
    channel: str, ts: str, user: str, text: str, thread_ts: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": f"<@UKUBEMEDIC> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def direct_message(channel: str, ts: str, user: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM,
    }


async def send_event(
    url: str, event: dict[str, Any], *, event_id: str = "Ev0001", **kwargs: Any
) -> Reply:
    return await post_signed(
        url, event_body(event, event_id=event_id), "application/json", **kwargs
    )


def block_actions_body(
    *,
    user_id: str,
    user_name: str,
    channel: str,
    message: dict[str, Any],
    action_id: str,
    value: str,
) -> str:
    """A block_actions interaction (a button click), form-encoded as Slack sends it."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "standin"},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM},
        "api_app_id": API_APP,
        "token": "unused-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "incidents"},
        "message": message,
        "response_url": "http://127.0.0.1:9/never-called",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "kubemedic_approval",
                "value": value,
                "text": {"type": "plain_text", "text": "Approve"},
                "action_ts": str(time.time()),
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


async def click(url: str, body: str, **kwargs: Any) -> Reply:
    return await post_signed(url, body, "application/x-www-form-urlencoded", **kwargs)
