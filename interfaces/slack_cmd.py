"""`kubemedic slack`: run kubemedic as a Slack app, over HTTP (Events API) or Socket Mode.

Mount on the root app with `app.command("slack")(slack_command)`.

HTTP mode serves Slack's request URL at `/slack/events` (events and
interactivity both) and `/healthz`, verifying every request with the signing
secret; Socket Mode connects out with the app-level token and needs no
public endpoint. Tokens come from settings only (KUBEMEDIC_SLACK__BOT_TOKEN,
__APP_TOKEN, __SIGNING_SECRET), never from flags, so they stay out of shell
history and process listings. See docs/slack.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError

from interfaces.checkpoints import describe as describe_checkpoints
from interfaces.runner import close_toolbox, cluster_toolbox
from interfaces.slack_app import EVENTS_PATH, SlackResponder
from interfaces.slack_notify import SlackNotConfigured
from settings import Settings, load_settings
from state import Mode
from tools.registry import Toolbox

log = logging.getLogger(__name__)


class ModeChoice(StrEnum):
    observe = "observe"
    approve = "approve"
    autonomous = "autonomous"


def missing_settings(settings: Settings, *, socket_mode: bool) -> list[str]:
    """The Slack settings this way of running needs and does not have."""
    slack = settings.slack
    missing = []
    if slack.bot_token is None:
        missing.append("KUBEMEDIC_SLACK__BOT_TOKEN (the bot token, xoxb-...)")
    if socket_mode and slack.app_token is None:
        missing.append("KUBEMEDIC_SLACK__APP_TOKEN (an app-level token with connections:write)")
    if not socket_mode and slack.signing_secret is None:
        missing.append("KUBEMEDIC_SLACK__SIGNING_SECRET (the app's signing secret)")
    return missing


async def serve_slack(
    responder: SlackResponder,
    *,
    socket_mode: bool,
    host: str,
    port: int,
    stop: asyncio.Event,
) -> None:
    """Run the app until `stop` is set: HTTP on host:port, or a Socket Mode connection."""
    async with responder:
        if socket_mode:
            async with responder.socket_mode():
                typer.echo("kubemedic: connected to Slack over Socket Mode", err=True)
                await stop.wait()
        else:
            async with responder.serve_http(host, port) as url:
                typer.echo(f"kubemedic: Slack request URL path {EVENTS_PATH} at {url}", err=True)
                await stop.wait()
        # Let running investigations post what they have, within a short grace period.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(responder.wait_idle(), 10)


def slack_command(
    socket_mode: Annotated[
        bool,
        typer.Option("--socket-mode", help="Connect out over Socket Mode (no public endpoint)."),
    ] = False,
    port: Annotated[int, typer.Option(help="HTTP mode: the port to listen on.")] = 3000,
    host: Annotated[
        str, typer.Option(help="HTTP mode: the address to listen on (0.0.0.0: every interface).")
    ] = "0.0.0.0",
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Path of the kubeconfig to use.")
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="The kubeconfig context (cluster) to use.")
    ] = None,
    mode: Annotated[
        ModeChoice | None,
        typer.Option(help="observe never writes; approve asks in Slack before every write."),
    ] = None,
) -> None:
    """Answer questions and approvals in Slack: mention kubemedic or send it a DM."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    missing = missing_settings(settings, socket_mode=socket_mode)
    if missing:
        for what in missing:
            typer.echo(f"kubemedic slack needs {what}", err=True)
        raise typer.Exit(2)
    box = cluster_toolbox(
        settings,
        kubeconfig or (str(settings.kube.kubeconfig) if settings.kube.kubeconfig else None),
        context or settings.kube.context,
    )
    if box.cluster is None:
        typer.echo(f"no cluster: {box.cluster_problem or 'unknown'}", err=True)
        raise typer.Exit(2)
    chosen: Mode = mode.value if mode is not None else settings.policy.mode
    typer.echo(f"kubemedic: {chosen} mode; checkpoints: {describe_checkpoints(settings)}", err=True)
    try:
        asyncio.run(_main(settings, box, chosen, socket_mode=socket_mode, host=host, port=port))
    except SlackNotConfigured as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    finally:
        close_toolbox(box)


async def _main(
    settings: Settings, box: Toolbox, mode: Mode, *, socket_mode: bool, host: str, port: int
) -> None:
    responder = SlackResponder(settings, box=box, mode=mode, socket_mode=socket_mode)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await serve_slack(responder, socket_mode=socket_mode, host=host, port=port, stop=stop)
