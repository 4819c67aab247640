"""The Slack app under test, wired to the Slack stand-in and served on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interfaces.slack_app import SlackResponder
from interfaces.slack_notify import web_client
from settings import Settings, SlackSettings
from state import Mode
from tests.slack.support.signing import SIGNING_SECRET
from tests.slack.support.slack_api import APP_TOKEN, BOT_TOKEN, SlackStandIn
from tools.clock import ClusterClock
from tools.registry import Toolbox

CHANNEL = "CINCIDENTS"


def slack_settings(data_dir: Path, api_url: str, **slack: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        slack=SlackSettings(
            bot_token=BOT_TOKEN,
            app_token=APP_TOKEN,
            signing_secret=SIGNING_SECRET,
            api_url=api_url,
            channel=CHANNEL,
            **slack,
        ),
    )


@dataclass
class Running:
    api: SlackStandIn
    app: SlackResponder
    url: str
    settings: Settings


@asynccontextmanager
async def running_app(
    data_dir: Path,
    *,
    box: Toolbox,
    clock: ClusterClock | None = None,
    mode: Mode = "observe",
    socket_mode: bool = False,
    **slack: Any,
) -> AsyncIterator[Running]:
    """The stand-in, then the app pointed at it and served over HTTP on 127.0.0.1."""
    async with SlackStandIn() as api:
        settings = slack_settings(data_dir, api.api_url, **slack)
        responder = SlackResponder(
            settings,
            box=box,
            mode=mode,
            clock=clock,
            client=web_client(settings),
            socket_mode=socket_mode,
            progress_interval_s=0.05,
        )
        async with responder, responder.serve_http() as url:
            yield Running(api, responder, url, settings)
