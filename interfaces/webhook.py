"""The Alertmanager webhook: how kubemedic works alone when an alert fires.

An aiohttp server (`kubemedic serve`, interfaces/serve_cmd.py) with:
- `POST /api/v1/alerts` (and `/alerts`): Alertmanager's webhook payload
  (version "4"). The body is validated at the boundary (pydantic); a body that
  is not JSON, or misses a required field, or has one of the wrong type, gets
  a 400 whose body names every problem by its field path, and nothing of it
  is queued. Each firing alert becomes an incident in the durable queue
  (interfaces/worker.py) unless its fingerprint already has an open one; each
  resolved alert cancels its incident while still queued. When the queue
  cannot be reached the answer is 503 naming it, so Alertmanager sends again.
  With `webhook.bearer_token` set, a request without that bearer token gets 401.
- `GET /healthz`: the process is up. `GET /readyz`: the queue and the cluster
  answer (503 naming whichever does not).
- `GET /metrics`: the server's own counters in Prometheus' text format.

Alert labels and annotations are untrusted text: they are stored as data on
the incident and never logged whole (the log names the alert and fingerprint).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypedDict

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from interfaces.worker import (
    AlertResult,
    Counters,
    IncidentQueue,
    QueueUnavailable,
    accept_alert,
    resolve_alert,
)
from settings import Settings
from state import AlertInfo

log = logging.getLogger("kubemedic.webhook")

ALERT_PATHS = ("/api/v1/alerts", "/alerts")
#: Seconds a cluster check's answer is reused by /readyz (probes come every few seconds).
READY_CACHE_S = 10.0
#: Seconds Alertmanager is asked to wait before sending again after a 503.
RETRY_AFTER_S = 10
#: Longest label or annotation value kept; longer ones are refused (Alertmanager's own
#: limits are far lower in practice).
MAX_VALUE_CHARS = 16_384
#: Most alerts in one payload.
MAX_ALERTS = 1_000

#: Checks the cluster; raises (with a message naming it) when it does not answer.
ClusterCheck = Callable[[], Awaitable[None]]


# -- the payload ----------------------------------------------------------------------------


class RawAlert(TypedDict, total=False):
    """One alert as Alertmanager sends it (webhook_config, version 4)."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str
    generatorURL: str
    fingerprint: str


class RawPayload(TypedDict, total=False):
    """Alertmanager's webhook body, as it arrives."""

    version: str
    groupKey: str
    truncatedAlerts: int
    status: str
    receiver: str
    groupLabels: dict[str, str]
    commonLabels: dict[str, str]
    commonAnnotations: dict[str, str]
    externalURL: str
    alerts: list[RawAlert]


Value = Annotated[str, Field(max_length=MAX_VALUE_CHARS)]
LabelName = Annotated[str, Field(min_length=1, max_length=1024)]


class WebhookAlert(BaseModel):
    """One alert, validated."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: Annotated[dict[LabelName, Value], Field(min_length=1)]
    annotations: dict[LabelName, Value] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: Annotated[str, Field(max_length=4096)] = Field(default="", alias="generatorURL")
    fingerprint: Annotated[str, Field(max_length=256)] = ""

    def info(self) -> AlertInfo:
        # Alertmanager writes Go's zero time as the endsAt of a firing alert.
        ends = self.ends_at if self.ends_at is not None and self.ends_at.year > 1 else None
        return AlertInfo(
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            starts_at=self.starts_at,
            ends_at=ends,
            status=self.status,
            fingerprint=self.fingerprint,
            generator_url=self.generator_url,
        )


class WebhookPayload(BaseModel):
    """Alertmanager's webhook body, validated (version 4)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: Annotated[str, Field(max_length=1024)]
    alerts: Annotated[list[WebhookAlert], Field(min_length=1, max_length=MAX_ALERTS)]
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")


class PayloadInvalid(ValueError):
    """A webhook body that is not a valid payload; `problems` name each field."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


def parse_payload(body: bytes) -> WebhookPayload:
    """The validated payload, or PayloadInvalid naming every problem by its field path."""
    try:
        raw = json.loads(body)
    except UnicodeDecodeError as exc:
        raise PayloadInvalid([{"field": "(body)", "message": f"not UTF-8 text: {exc}"}]) from exc
    except json.JSONDecodeError as exc:
        raise PayloadInvalid(
            [
                {
                    "field": "(body)",
                    "message": f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                }
            ]
        ) from exc
    if not isinstance(raw, dict):
        raise PayloadInvalid(
            [{"field": "(body)", "message": f"expected a JSON object, got {type(raw).__name__}"}]
        )
    payload: RawPayload = raw  # type: ignore[assignment]
    try:
        return WebhookPayload.model_validate(payload)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors()
        ]
        raise PayloadInvalid(problems) from exc


# -- the application -----------------------------------------------------------------------------


class Readiness:
    """/readyz: the queue answers and the cluster answers (its answer cached a few seconds)."""

    def __init__(self, queue: IncidentQueue, cluster_check: ClusterCheck | None) -> None:
        self.queue = queue
        self.cluster_check = cluster_check
        self._cluster: tuple[float, str] | None = None

    async def problems(self) -> dict[str, str]:
        status: dict[str, str] = {}
        try:
            await self.queue.ping()
            status["queue"] = f"ok ({self.queue.description})"
        except QueueUnavailable as exc:
            status["queue"] = str(exc)
        status["cluster"] = await self._cluster_status()
        return status

    async def _cluster_status(self) -> str:
        if self.cluster_check is None:
            return "ok (not checked)"
        now = time.monotonic()
        if self._cluster is not None and now - self._cluster[0] < READY_CACHE_S:
            return self._cluster[1]
        try:
            await self.cluster_check()
            answer = "ok"
        except Exception as exc:  # any failure of the check is the answer /readyz gives
            answer = f"the cluster does not answer: {getattr(exc, 'message', None) or exc}"
        self._cluster = (now, answer)
        return answer


def create_app(
    settings: Settings,
    queue: IncidentQueue,
    *,
    counters: Counters | None = None,
    cluster_check: ClusterCheck | None = None,
) -> web.Application:
    """The webhook's aiohttp application over `queue`."""
    counters = counters or Counters()
    readiness = Readiness(queue, cluster_check)
    token = settings.webhook.bearer_token
    cooldown = settings.webhook.dedup_cooldown_s

    def reject(status: int, reason: str, body: dict[str, Any], **headers: str) -> web.Response:
        counters.inc("kubemedic_alerts_rejected_total", reason=reason)
        return web.json_response(body, status=status, headers=headers or None)

    async def alerts(request: web.Request) -> web.Response:
        peer = request.remote or "?"
        if token is not None and not _authorized(request, token.get_secret_value()):
            log.warning("webhook request from %s refused: missing or wrong bearer token", peer)
            return reject(
                401,
                "unauthorized",
                {"error": "missing or wrong bearer token (Authorization: Bearer ...)"},
                **{"WWW-Authenticate": 'Bearer realm="kubemedic"'},
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            log.warning("webhook request from %s refused: body too large", peer)
            return reject(
                413,
                "too_large",
                {"error": f"body larger than {settings.webhook.max_body_bytes} bytes"},
            )
        try:
            payload = parse_payload(body)
        except PayloadInvalid as exc:
            log.warning("webhook payload from %s refused: %s", peer, exc)
            return reject(
                400,
                "invalid_payload",
                {"error": "invalid Alertmanager webhook payload", "problems": exc.problems},
            )
        if payload.truncated_alerts:
            # Alertmanager's max_alerts cut the group: the alerts left out never reach us, so
            # say so (raise max_alerts, or group by finer labels, if this shows).
            log.warning(
                "webhook payload from %s left out %d alert(s) (max_alerts)",
                peer,
                payload.truncated_alerts,
            )
        results: list[AlertResult] = []
        try:
            for alert in payload.alerts:
                info = alert.info()
                counters.inc("kubemedic_alerts_received_total", status=alert.status)
                if alert.status == "firing":
                    result = await accept_alert(queue, settings, info)
                    if result.status == "duplicate":
                        counters.inc("kubemedic_alerts_duplicate_total")
                else:
                    result = await resolve_alert(queue, info, cooldown_s=cooldown)
                results.append(result)
                log.info(
                    "alert %r (%s) %s: %s %s",
                    info.labels.get("alertname", "")[:100],
                    result.fingerprint,
                    alert.status,
                    result.status,
                    result.incident_id or result.effect,
                )
        except QueueUnavailable as exc:
            log.error("webhook payload not fully queued, answering 503: %s", exc)
            return reject(
                503,
                "queue_unavailable",
                {
                    "error": f"the incident queue is unavailable: {exc}",
                    "queued_before_failure": [r.as_dict() for r in results],
                },
                **{"Retry-After": str(RETRY_AFTER_S)},
            )
        return web.json_response({"alerts": [r.as_dict() for r in results]})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        status = await readiness.problems()
        ready = all(v.startswith("ok") for v in status.values())
        return web.json_response({"ready": ready, **status}, status=200 if ready else 503)

    async def metrics(_request: web.Request) -> web.Response:
        try:
            depth = await asyncio.wait_for(queue.depth(), timeout=2.0)
        except (QueueUnavailable, TimeoutError):
            depth = {}
        for state, count in depth.items():
            counters.set("kubemedic_queue_jobs", count, state=state)
        return web.Response(
            text=counters.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    app = web.Application(client_max_size=settings.webhook.max_body_bytes)
    for path in ALERT_PATHS:
        app.router.add_post(path, alerts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


class WebhookServer:
    """The webhook application served on a host and port (port 0: any free one)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.host = ""

    async def start(self, host: str, port: int) -> str:
        """Serve; returns the base URL."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host = host
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
