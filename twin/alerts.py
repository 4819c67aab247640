"""The scenario's alert: evaluated like a Prometheus rule, delivered like Alertmanager.

An incident responder starts from an alert. The scenario says when it fires
(`spec.alert.when`: an error rate, a p99 latency, restarts, a workload not
ready, each for a duration; or `at`, regardless of the cluster: a spurious
alert) and what it carries (labels and annotations, which are whatever
Alertmanager would send, adversarial text included). This module evaluates
the condition after each step, serves firing alerts at
`GET /alertmanager/api/v2/alerts` in Alertmanager's v2 shape, and queues
webhook payloads (version "4") for the harness to POST.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from twin.oracle import (
    find_workload,
    pod_restarts,
    service_error_rate,
    service_latency_p99,
    workload_pods,
)
from twin.scenario import AlertSpec

if TYPE_CHECKING:
    from aiohttp import web

    from twin.cluster import Cluster

#: How often rules are evaluated, in simulated seconds (Prometheus' evaluation_interval).
EVALUATION_INTERVAL = 5.0
#: How far ahead an active alert's endsAt lies (Prometheus sends 4 x the resend delay).
ACTIVE_ENDS_AHEAD = timedelta(minutes=4)
#: Go's zero time, which Alertmanager writes as the endsAt of a firing alert in webhooks.
ZERO_TIME = "0001-01-01T00:00:00Z"
RECEIVER = "kubemedic"


def alertmanager_time(ts: datetime) -> str:
    """Alertmanager's timestamp: RFC3339 with milliseconds, UTC."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def fingerprint(labels: dict[str, str]) -> str:
    """Prometheus' label-set fingerprint (model.LabelsToSignature, FNV-1a 64), as hex."""
    h = 0xCBF29CE484222325
    prime = 0x100000001B3
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * prime) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ 0xFF) * prime) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@dataclass
class Alert:
    """One firing (or resolved) instance of the scenario's alert."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    #: Scenario seconds when it fired.
    fired_at: float
    ends_at: datetime | None = None
    resolved_at: float | None = None
    generator_url: str = ""
    updated_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def status(self) -> str:
        return "resolved" if self.ends_at is not None else "firing"

    def to_api(self, now: datetime) -> dict[str, Any]:
        """As `GET /api/v2/alerts` returns it (a gettableAlert)."""
        ends = self.ends_at if self.ends_at is not None else now + ACTIVE_ENDS_AHEAD
        return {
            "annotations": dict(self.annotations),
            "endsAt": alertmanager_time(ends),
            "fingerprint": self.fingerprint,
            "receivers": [{"name": RECEIVER}],
            "startsAt": alertmanager_time(self.starts_at),
            "status": {"inhibitedBy": [], "mutedBy": [], "silencedBy": [], "state": "active"},
            "updatedAt": alertmanager_time(self.updated_at or self.starts_at),
            "generatorURL": self.generator_url,
            "labels": dict(self.labels),
        }

    def to_webhook(self) -> dict[str, Any]:
        """As one entry of a webhook payload's `alerts`."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": alertmanager_time(self.starts_at),
            "endsAt": alertmanager_time(self.ends_at) if self.ends_at else ZERO_TIME,
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


def webhook_payload(alerts: list[Alert], external_url: str) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) for one group of alerts."""
    common_labels = _common([a.labels for a in alerts])
    common_annotations = _common([a.annotations for a in alerts])
    group_labels = {"alertname": common_labels["alertname"]} if "alertname" in common_labels else {}
    key = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": "{}:{" + key + "}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": [a.to_webhook() for a in alerts],
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


@dataclass
class _Rule:
    holds: bool
    detail: str


@dataclass
class AlertEvaluator:
    """Evaluates the scenario's alert rule after each step (install it with `install`)."""

    spec: AlertSpec | None
    default_namespace: str = "default"
    #: cluster.elapsed at scenario t=0.
    t0: float = 0.0
    external_url: str = "http://127.0.0.1/alertmanager"
    generator_url: str = ""
    interval: float = EVALUATION_INTERVAL
    history: list[Alert] = field(default_factory=list)
    #: Webhook payloads waiting to be sent (the harness drains them outside the cluster lock).
    outbox: list[dict[str, Any]] = field(default_factory=list)
    #: The cluster it is installed on.
    cluster: Cluster | None = None
    _pending_since: float | None = None
    _last_eval: int | None = None
    last_detail: str = ""

    def now(self, cluster: Cluster) -> float:
        return cluster.elapsed - self.t0

    @property
    def active(self) -> Alert | None:
        last = self.history[-1] if self.history else None
        return last if last is not None and last.ends_at is None else None

    def firing(self) -> list[Alert]:
        active = self.active
        return [active] if active is not None else []

    def step(self, cluster: Cluster) -> None:
        """Evaluate the rule if an evaluation interval has passed (an after_step hook)."""
        spec = self.spec
        if spec is None:
            return
        now = self.now(cluster)
        # Rules run on a fixed grid of scenario time, as Prometheus evaluates them.
        slot = math.floor(now / self.interval + 1e-9)
        if self._last_eval is not None and slot == self._last_eval:
            return
        self._last_eval = slot
        rule = self.evaluate(cluster)
        self.last_detail = rule.detail
        if rule.holds:
            if self._pending_since is None:
                self._pending_since = now
            held = now - self._pending_since
            if self.active is None and held >= spec.when.for_:
                self._fire(cluster, now)
            elif self.active is not None:
                self.active.updated_at = cluster.clock.now()
        else:
            self._pending_since = None
            if self.active is not None:
                self._resolve(cluster, now)

    def evaluate(self, cluster: Cluster) -> _Rule:
        """Whether the condition holds now (before `for`)."""
        assert self.spec is not None
        when = self.spec.when
        now = self.now(cluster)
        with cluster.lock:
            if when.at is not None:
                return _Rule(now >= when.at, f"t={now:.0f}s, fires at {when.at:.0f}s")
            if when.error_rate_above is not None:
                c = when.error_rate_above
                ns = c.namespace or self.default_namespace
                rate = service_error_rate(cluster, ns, c.service)
                return _Rule(rate is not None and rate > c.value, f"error rate {rate}")
            if when.latency_p99_above is not None:
                lc = when.latency_p99_above
                ns = lc.namespace or self.default_namespace
                p99 = service_latency_p99(cluster, ns, lc.service)
                return _Rule(p99 is not None and p99 > lc.ms, f"p99 {p99}ms")
            if when.restarts_above is not None:
                ns, name = self._split(when.restarts_above.workload)
                found = find_workload(cluster, ns, name)
                restarts = (
                    sum(pod_restarts(p) for p in workload_pods(cluster, ns, found[1]))
                    if found
                    else 0
                )
                return _Rule(restarts > when.restarts_above.value, f"{restarts} restarts")
            if when.not_ready is not None:
                ns, name = self._split(when.not_ready.workload)
                found = find_workload(cluster, ns, name)
                if found is None:
                    return _Rule(True, f"{ns}/{name} does not exist")
                spec = found[1].get("spec") or {}
                status = found[1].get("status") or {}
                desired = int(spec.get("replicas", 1))
                ready = int(status.get("readyReplicas", 0))
                return _Rule(ready < desired, f"{ready}/{desired} ready")
        return _Rule(False, "no condition")

    def _split(self, key: str) -> tuple[str, str]:
        ns, _, name = key.rpartition("/")
        return (ns or self.default_namespace, name)

    def _fire(self, cluster: Cluster, now: float) -> None:
        assert self.spec is not None
        ts = cluster.clock.now()
        alert = Alert(
            labels=dict(self.spec.labels),
            annotations=dict(self.spec.annotations),
            starts_at=ts,
            fired_at=now,
            generator_url=self.generator_url,
            updated_at=ts,
        )
        self.history.append(alert)
        self.outbox.append(webhook_payload([alert], self.external_url))

    def _resolve(self, cluster: Cluster, now: float) -> None:
        alert = self.active
        if alert is None:
            return
        alert.ends_at = cluster.clock.now()
        alert.resolved_at = now
        alert.updated_at = alert.ends_at
        self.outbox.append(webhook_payload([alert], self.external_url))

    def drain(self) -> list[dict[str, Any]]:
        """Take the queued webhook payloads."""
        out, self.outbox = self.outbox, []
        return out

    def api_alerts(self, cluster: Cluster, query: dict[str, str] | None = None) -> list[Any]:
        """Active alerts as `GET /api/v2/alerts` lists them, with its `filter` and flags."""
        query = query or {}
        if query.get("active", "true").lower() == "false":
            return []
        matchers = _parse_matchers(query.get("filter", []))
        now = cluster.clock.now()
        return [a.to_api(now) for a in self.firing() if all(m(a.labels) for m in matchers)]


def install(cluster: Cluster, evaluator: AlertEvaluator) -> AlertEvaluator:
    """Evaluate the alert after every step of the cluster."""
    evaluator.cluster = cluster
    cluster.after_step.append(evaluator.step)
    return evaluator


def evaluator_of(cluster: Cluster) -> AlertEvaluator | None:
    for hook in cluster.after_step:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, AlertEvaluator):
            return owner
    return None


_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def _parse_matchers(raw: str | list[str]) -> list[Any]:
    """Alertmanager's `filter` matchers (`alertname="X"`, `severity=~"crit.*"`)."""
    items = [raw] if isinstance(raw, str) else raw
    out = []
    for item in items:
        for part in _split_matchers(item):
            m = _MATCHER_RE.match(part)
            if not m:
                raise ValueError(f"bad matcher {part!r}")
            name, op, value = m.groups()

            def match(labels: dict[str, str], n: str = name, o: str = op, v: str = value) -> bool:
                actual = labels.get(n, "")
                if o == "=":
                    return actual == v
                if o == "!=":
                    return actual != v
                hit = re.fullmatch(v, actual) is not None
                return hit if o == "=~" else not hit

            out.append(match)
    return out


def _split_matchers(text: str) -> list[str]:
    text = text.strip().removeprefix("{").removesuffix("}")
    parts: list[str] = []
    current = ""
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]


def add_routes(app: web.Application, source: Cluster | AlertEvaluator) -> None:
    """Serve the Alertmanager v2 alert list at /alertmanager/api/v2/alerts."""
    from aiohttp import web

    def resolve() -> tuple[Cluster | None, AlertEvaluator | None]:
        if isinstance(source, AlertEvaluator):
            return source.cluster, source
        return source, evaluator_of(source)

    async def list_alerts(request: web.Request) -> web.Response:
        cluster, evaluator = resolve()
        if cluster is None or evaluator is None:
            return web.json_response([])
        query: dict[str, Any] = dict(request.query)
        query["filter"] = request.query.getall("filter", [])
        try:
            with cluster.lock:
                body = evaluator.api_alerts(cluster, query)
        except (ValueError, re.error) as exc:
            return web.json_response({"code": 400, "message": str(exc)}, status=400)
        return web.json_response(body)

    async def healthy(_request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def status(_request: web.Request) -> web.Response:
        _, evaluator = resolve()
        url = evaluator.external_url if evaluator else ""
        return web.json_response(
            {
                "cluster": {"name": "kubemedic-twin", "status": "ready", "peers": []},
                "config": {"original": ""},
                "uptime": "",
                "versionInfo": {"version": "0.27.0-twin"},
                "externalURL": url,
            }
        )

    app.router.add_get("/alertmanager/api/v2/alerts", list_alerts)
    app.router.add_get("/alertmanager/api/v2/status", status)
    app.router.add_get("/alertmanager/-/healthy", healthy)
