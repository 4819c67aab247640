"""Posting to Slack from outside a conversation: incident summaries and approval requests.

For the webhook worker (interfaces/worker.py), whose incidents start from
alerts, not from a Slack message:

- `post_incident_summary(report, settings=...)` posts a finished incident's
  summary (root causes, actions, outcome) to settings.slack.channel;
- `post_approval_request(payload, settings=...)` posts an incident's approval
  request (the approval node's interrupt payload) with Approve / Reject
  buttons; the Slack app (interfaces/slack_app.py) takes the click and answers
  through the worker's queue (`answer_approval`), and a worker resumes the
  incident from its checkpoint.

Every text goes through interfaces/slack_format.py (redacted, escaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from interfaces import slack_format as fmt
from settings import Settings
from state import IncidentReport


class SlackNotConfigured(RuntimeError):
    """A Slack setting the requested use needs is missing (named in the message)."""


def web_client(settings: Settings) -> AsyncWebClient:
    """A Web API client with the bot token, at settings.slack.api_url."""
    token = settings.slack.bot_token
    if token is None:
        raise SlackNotConfigured("settings.slack.bot_token (KUBEMEDIC_SLACK__BOT_TOKEN) is not set")
    base = settings.slack.api_url
    return AsyncWebClient(token=token.get_secret_value(), base_url=base.rstrip("/") + "/")


def _channel(settings: Settings, channel: str | None) -> str:
    target = channel or settings.slack.channel
    if not target:
        raise SlackNotConfigured("settings.slack.channel (KUBEMEDIC_SLACK__CHANNEL) is not set")
    return target


async def post_incident_summary(
    report: IncidentReport | Mapping[str, Any],
    *,
    settings: Settings,
    client: AsyncWebClient | None = None,
    channel: str | None = None,
) -> str:
    """Post an incident's summary to settings.slack.channel (or `channel`); the message's ts.

    `report` is an IncidentReport, its JSON (an incident's transcript.json), or the
    `kubemedic run --json` object. Raises SlackNotConfigured when no channel or bot
    token is set, and slack_sdk's SlackApiError when Slack refuses the message.
    """
    target = _channel(settings, channel)
    api = client or web_client(settings)
    text, blocks = fmt.summary_message(report)
    resp = await api.chat_postMessage(channel=target, text=text, blocks=blocks)
    return str(resp["ts"])


async def post_approval_request(
    payload: Mapping[str, Any],
    *,
    settings: Settings,
    client: AsyncWebClient | None = None,
    channel: str | None = None,
) -> str:
    """Post an approval request with Approve / Reject buttons; the message's ts.

    `payload` is the approval node's interrupt payload (it names the incident and the
    request). A click reaches the Slack app, which checks who clicked and answers
    through the worker's queue.
    """
    target = _channel(settings, channel)
    api = client or web_client(settings)
    incident_id = str(payload.get("incident_id") or "")
    if not incident_id:
        raise ValueError("the approval request names no incident_id")
    text, blocks = fmt.approval_message(payload, thread_id=incident_id)
    resp = await api.chat_postMessage(channel=target, text=text, blocks=blocks)
    return str(resp["ts"])
