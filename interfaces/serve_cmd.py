"""`kubemedic serve`, `kubemedic approve` and `kubemedic pending`: kubemedic on its own.

- `serve`: the Alertmanager webhook (interfaces/webhook.py) and the worker
  that runs each alert's incident on the cluster (interfaces/worker.py), in
  one process, until SIGTERM or SIGINT; then running incidents stop at their
  last checkpoint and go back to the queue, to continue at the next start.
- `approve INCIDENT_ID --request-id ID [--reject]`: answer the approval
  request an incident waits on, from a terminal; a running server resumes it.
- `pending`: the incidents waiting for a person, with their request ids.

Mount on the root app with `register(app)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError

from graph import Node
from interfaces.checkpoints import describe as describe_checkpoints
from interfaces.webhook import WebhookServer, create_app
from interfaces.worker import (
    AnswerRefused,
    Backend,
    ClusterBackend,
    Counters,
    IncidentQueue,
    Notifier,
    QueueUnavailable,
    TrackedIncident,
    Worker,
    answer_approval,
    open_queue,
)
from policies.limits import PolicyFileError, load_limits
from settings import Settings, load_settings
from state import IncidentReport
from telemetry import describe as describe_telemetry
from telemetry import setup_telemetry
from tools.errors import ToolError

log = logging.getLogger("kubemedic.serve")


class ModeChoice(StrEnum):
    observe = "observe"
    approve = "approve"
    autonomous = "autonomous"


def register(app: typer.Typer) -> None:
    """Add `serve`, `approve` and `pending` to the root app."""
    app.command("serve")(serve_command)
    app.command("approve")(approve_command)
    app.command("pending")(pending_command)


# -- the service -------------------------------------------------------------------------------


@dataclass
class SlackNotifier:
    """Posts approval requests (with buttons) and incident summaries to settings.slack.channel.

    A click on a button reaches the Slack app (`kubemedic slack`), which answers through the
    queue like `kubemedic approve`.
    """

    settings: Settings

    @staticmethod
    def configured(settings: Settings) -> bool:
        return settings.slack.bot_token is not None and bool(settings.slack.channel)

    async def approval_requested(self, incident_id: str, payload: Mapping[str, Any]) -> None:
        from interfaces.slack_notify import post_approval_request

        await post_approval_request(payload, settings=self.settings)

    async def finished(self, incident_id: str, transcript: Path) -> None:
        from interfaces.slack_notify import post_incident_summary

        text = await asyncio.to_thread(transcript.read_text, encoding="utf-8")
        report = IncidentReport.model_validate_json(text)
        await post_incident_summary(report, settings=self.settings)


def _default_notifier(settings: Settings) -> Notifier | None:
    return SlackNotifier(settings) if SlackNotifier.configured(settings) else None


@dataclass
class Service:
    """The webhook server and the worker over one queue, started together."""

    settings: Settings
    queue: IncidentQueue
    worker: Worker
    server: WebhookServer
    counters: Counters
    provider: Any = None

    @property
    def url(self) -> str:
        return self.server.url

    async def stop(self) -> None:
        """Stop taking alerts, then stop the worker (running incidents go back to the queue)."""
        await self.server.stop()
        await self.worker.stop()
        await self.queue.aclose()
        if self.provider is not None:
            self.provider.shutdown()


async def start_service(
    settings: Settings,
    *,
    backend: Backend | None = None,
    host: str | None = None,
    port: int | None = None,
    nodes: dict[str, Node] | None = None,
    exporter: Any = None,
    postmortems: bool = True,
    notifier: Notifier | None = None,
) -> Service:
    """Open the queue, start the worker and serve the webhook.

    Args:
        settings: kubemedic's settings (webhook, redis, checkpoint, policy, telemetry...).
        backend: where incidents run; the cluster of settings.kube by default.
        host, port: where to listen (settings.webhook by default; port 0: any free one).
        nodes: graph nodes to replace by name (tests).
        exporter: an OpenTelemetry SpanExporter to use instead of the settings' (tests).
        postmortems: write each finished incident's post-mortems next to its transcript.
        notifier: who hears of approvals and finished incidents; Slack when settings.slack has
            a bot token and a channel.
    """
    backend = backend or ClusterBackend(
        settings,
        str(settings.kube.kubeconfig) if settings.kube.kubeconfig else None,
        settings.kube.context,
    )
    queue = open_queue(settings)
    counters = Counters()
    provider = setup_telemetry(settings, exporter=exporter)
    tracer = provider.get_tracer("kubemedic") if provider is not None else None
    worker = Worker(
        settings,
        queue,
        backend,
        counters=counters,
        tracer=tracer,
        nodes=nodes,
        postmortems=postmortems,
        notifier=notifier or _default_notifier(settings),
    )
    check = getattr(backend, "check", None)
    app = create_app(settings, queue, counters=counters, cluster_check=check)
    server = WebhookServer(app)
    await worker.start()
    try:
        await server.start(
            host if host is not None else settings.webhook.host,
            port if port is not None else settings.webhook.port,
        )
    except OSError:
        await worker.stop()
        await queue.aclose()
        raise
    return Service(settings, queue, worker, server, counters, provider)


def _describe(settings: Settings, service: Service) -> list[str]:
    memory = (
        "Redis (settings.redis.url)"
        if settings.redis.url is not None
        else "in-process (not persisted, not shared): no Redis configured"
    )
    model = (
        f"{settings.llm.model} at {settings.llm.base_url or 'OpenAI'}"
        if settings.llm.enabled
        else "none: deterministic mode"
    )
    auth = "bearer token required" if settings.webhook.bearer_token else "no token (open)"
    slack = (
        f"Slack channel {settings.slack.channel}"
        if SlackNotifier.configured(settings)
        else "none (no Slack bot token and channel)"
    )
    return [
        f"webhook: {service.url}/api/v1/alerts ({auth})",
        f"mode: {settings.policy.mode}",
        f"queue: {service.queue.description}",
        f"checkpoints: {describe_checkpoints(settings)}",
        f"memory: {memory}",
        f"model: {model}",
        f"telemetry: {describe_telemetry(settings)}",
        f"incidents at once: {service.worker.concurrency}",
        f"notifications: {slack}",
    ]


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    service = await start_service(settings)
    for line in _describe(settings, service):
        log.info("%s", line)
    check = getattr(service.worker.backend, "check", None)
    if check is not None:
        try:
            await check()
        except ToolError as exc:
            log.warning("the cluster does not answer yet (/readyz says so): %s", exc.message)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping: running incidents go back to the queue")
        await service.stop()


# -- commands -------------------------------------------------------------------------------------


def _settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None


def serve_command(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1, settings).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default 9095, settings).", min=0)
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option("--kubeconfig", help="Kubeconfig of the cluster to watch over.")
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="The kubeconfig context (cluster).")
    ] = None,
    mode: Annotated[
        ModeChoice | None,
        typer.Option(help="observe: never write; approve: a person approves every write."),
    ] = None,
) -> None:
    """Serve the Alertmanager webhook and run an incident for every alert that fires."""
    settings = _settings()
    if host is not None or port is not None:
        settings.webhook = settings.webhook.model_copy(
            update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
        )
    if kubeconfig is not None or context is not None:
        settings.kube = settings.kube.model_copy(
            update={
                k: v for k, v in (("kubeconfig", kubeconfig), ("context", context)) if v is not None
            }
        )
    if mode is not None:
        settings.policy = settings.policy.model_copy(update={"mode": mode.value})
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # One line per HTTP request to Prometheus or Jaeger, or per log miner, drowns the
        # incidents' own lines.
        for noisy in ("httpx", "drain3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        asyncio.run(serve(settings))
    except QueueUnavailable as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(
            f"cannot listen on {settings.webhook.host}:{settings.webhook.port}: {exc}", err=True
        )
        raise typer.Exit(2) from None


def approve_command(
    incident_id: Annotated[str, typer.Argument(help="The incident waiting for approval.")],
    request_id: Annotated[
        str, typer.Option("--request-id", help="The approval request's id (kubemedic pending).")
    ],
    reject: Annotated[
        bool, typer.Option("--reject", help="Reject the actions instead of approving them.")
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who answers (default: your user name).")
    ] = None,
    action: Annotated[
        list[int] | None,
        typer.Option("--action", help="Approve only this action index (repeatable)."),
    ] = None,
    comment: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
) -> None:
    """Answer the approval request an incident waits on; the server resumes it."""
    settings = _settings()
    try:
        who = by if by is not None else getpass.getuser()
    except (KeyError, OSError):
        typer.echo("cannot tell who you are: name yourself with --by", err=True)
        raise typer.Exit(2) from None
    try:
        limits = load_limits(settings.policy.file)
    except PolicyFileError as exc:
        typer.echo(f"invalid policy file: {exc}", err=True)
        raise typer.Exit(2) from None
    if limits.approvers and who not in limits.approvers:
        typer.echo(
            f"{who!r} is not one of the approvers the policy names ({', '.join(limits.approvers)})",
            err=True,
        )
        raise typer.Exit(1)
    decision: Literal["approve", "reject"] = "reject" if reject else "approve"

    async def go() -> TrackedIncident:
        queue = open_queue(settings)
        try:
            return await answer_approval(
                queue,
                incident_id,
                request_id=request_id,
                decision=decision,
                by=who,
                via="terminal",
                action_indexes=action or [],
                comment=comment,
            )
        finally:
            await queue.aclose()

    try:
        record = asyncio.run(go())
    except AnswerRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except QueueUnavailable as exc:
        typer.echo(f"cannot reach the queue: {exc}", err=True)
        raise typer.Exit(2) from None
    verb = "rejected" if reject else "approved"
    typer.echo(
        f"{verb} request {request_id} of incident {record.id} as {who}; "
        "the server resumes the incident"
    )


def pending_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Incidents waiting for a person's approval, with their request ids and actions."""
    settings = _settings()

    async def go() -> list[TrackedIncident]:
        queue = open_queue(settings)
        try:
            return [r for r in await queue.list(limit=500) if r.status == "waiting_approval"]
        finally:
            await queue.aclose()

    try:
        waiting = asyncio.run(go())
    except QueueUnavailable as exc:
        typer.echo(f"cannot reach the queue: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in waiting]))
        return
    if not waiting:
        typer.echo("no incident is waiting for approval")
        return
    for r in waiting:
        since = r.updated_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{r.id}  {r.alertname}  request {r.request_id}  (since {since}Z)")
        for a in r.approval_actions:
            params = json.dumps(a.get("params") or {})
            typer.echo(f"    [{a.get('index')}] {a.get('summary')} {params}")
            for reason in a.get("gate") or []:
                typer.echo(f"        gate: {reason}")
        typer.echo(f"  kubemedic approve {r.id} --request-id {r.request_id} [--reject]")


def main() -> None:
    """`python -m interfaces.serve_cmd serve|approve|pending`: these commands on their own."""
    app = typer.Typer(name="kubemedic", no_args_is_help=True, add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
