"""Liveness, readiness and startup probes, answered by the simulated process.

A probe reaches the process the way the kubelet's prober would: it succeeds
when the container runs, its process accepts connections (after the
profile's startup time), the probe's port is the one the process listens on,
an HTTP path is one the image serves, and the pod answers within the probe's
timeout. A failure carries the prober's own output, so `Readiness probe
failed: ...` events read like a real cluster's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from twin.behavior import BehaviorProfile
from twin.clock import go_duration
from twin.kubelet_env import declared_port

Obj = dict[str, Any]
ProbeKind = Literal["startup", "liveness", "readiness"]

#: What a gRPC server writes first to any connection (its SETTINGS frame); an HTTP/1.1
#: client reading it as a response fails with this text.
_GRPC_PREFACE = r"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00@\x00"

#: What a non-HTTP server answers an HTTP/1.1 GET with, as Go's client quotes it. Redis runs
#: "GET <path> HTTP/1.1" as its GET command; other servers close the connection (EOF).
_NOT_HTTP = {
    "grpc": _GRPC_PREFACE,
    "redis": "-ERR wrong number of arguments for 'get' command",
}

#: The probe fields of a container spec, by kind.
PROBE_FIELDS: dict[ProbeKind, str] = {
    "startup": "startupProbe",
    "liveness": "livenessProbe",
    "readiness": "readinessProbe",
}


@dataclass(eq=False)
class Probe:
    """One probe of one container instance, with the prober worker's counters."""

    kind: ProbeKind
    spec: Obj
    period: float
    delay: float
    timeout: float
    success_threshold: int
    failure_threshold: int
    #: Simulated seconds of the next probe tick.
    next_at: float
    #: Simulated seconds when the container started (initial delay counts from here).
    started_at: float
    successes: int = 0
    failures: int = 0

    @classmethod
    def from_spec(cls, kind: ProbeKind, spec: Obj, started_at: float) -> Probe:
        """A probe with the API's defaults (period 10, timeout 1, thresholds 1 and 3)."""
        period = float(spec.get("periodSeconds") or 10)
        return cls(
            kind=kind,
            spec=spec,
            period=period,
            delay=float(spec.get("initialDelaySeconds") or 0),
            timeout=float(spec.get("timeoutSeconds") or 1),
            success_threshold=int(spec.get("successThreshold") or 1),
            failure_threshold=int(spec.get("failureThreshold") or 3),
            # The worker ticks every period from the container's start.
            next_at=started_at + period,
            started_at=started_at,
        )

    @property
    def label(self) -> str:
        return self.kind.capitalize()

    def due(self, now: float) -> bool:
        return now + 1e-6 >= self.next_at

    def advance(self, now: float) -> None:
        """Move to the first tick after `now`."""
        while self.next_at <= now + 1e-6:
            self.next_at += self.period

    def before_delay(self, now: float) -> bool:
        return now - self.started_at < self.delay - 1e-6


@dataclass(frozen=True)
class Target:
    """What a probe reaches: the pod's address and the process behind it."""

    ip: str
    #: The port the process listens on.
    port: int
    #: The process accepts connections now.
    listening: bool
    #: How long the process takes to answer, ms (0 when its health endpoint is unaffected).
    latency_ms: float
    profile: BehaviorProfile
    #: The image has a registered profile (an unknown image speaks whatever the probe asks).
    known: bool


@dataclass(frozen=True)
class Result:
    ok: bool
    output: str = ""
    #: The probe could not run at all (kubelet logs "probe errored").
    errored: bool = False


def _port(value: Any, container: Obj) -> int | None:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    return declared_port(container, text)


def run_probe(spec: Obj, container: Obj, target: Target, timeout: float) -> Result:
    """Probe the process once and return the prober's result and output."""
    timeout_ms = timeout * 1000
    slow = target.latency_ms >= timeout_ms
    profile = target.profile
    if "httpGet" in spec:
        http = spec["httpGet"] or {}
        port = _port(http.get("port"), container)
        if port is None:
            return Result(False, f"unable to find port {http.get('port')}", errored=True)
        host = http.get("host") or target.ip
        scheme = str(http.get("scheme") or "HTTP").lower()
        path = str(http.get("path") or "/")
        if not path.startswith("/"):
            path = "/" + path
        url = f"{scheme}://{host}:{port}{path}"
        if not target.listening or port != target.port:
            return Result(
                False, f'Get "{url}": dial tcp {host}:{port}: connect: connection refused'
            )
        if target.known and profile.protocol != "http":
            answer = _NOT_HTTP.get(profile.protocol)
            if answer is None:
                return Result(False, f'Get "{url}": EOF')
            return Result(
                False,
                f'Get "{url}": net/http: HTTP/1.x transport connection broken: '
                f'malformed HTTP response "{answer}"',
            )
        if scheme == "https" and profile.extra.get("tls") != "true":
            return Result(False, f'Get "{url}": http: server gave HTTP response to HTTPS client')
        if slow:
            return Result(
                False,
                f'Get "{url}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)",
            )
        if path.split("?", 1)[0] not in profile.http_paths:
            return Result(False, "HTTP probe failed with statuscode: 404")
        return Result(True)
    if "tcpSocket" in spec:
        tcp = spec["tcpSocket"] or {}
        port = _port(tcp.get("port"), container)
        if port is None:
            return Result(False, f"unable to find port {tcp.get('port')}", errored=True)
        host = tcp.get("host") or target.ip
        # The kernel completes the handshake: a slow or hung process still accepts.
        if target.listening and port == target.port:
            return Result(True)
        return Result(False, f"dial tcp {host}:{port}: connect: connection refused")
    if "grpc" in spec:
        port = _port((spec["grpc"] or {}).get("port"), container)
        addr = f"{target.ip}:{port}"
        speaks_grpc = not target.known or profile.protocol == "grpc"
        if target.listening and port == target.port and speaks_grpc and not slow:
            return Result(True)
        return Result(
            False, f'timeout: failed to connect service "{addr}" within {go_duration(timeout)}'
        )
    if "exec" in spec:
        command = [str(a) for a in (spec["exec"] or {}).get("command") or []]
        if command and command[0].endswith("grpc_health_probe"):
            addr = next((a.split("=", 1)[1] for a in command if a.startswith("-addr=")), "")
            if target.listening and not slow and addr.rsplit(":", 1)[-1] == str(target.port):
                return Result(True)
            return Result(
                False,
                f'timeout: failed to connect service "{addr}" within {go_duration(timeout)}',
            )
        # A command in the container succeeds while the process is up and serving.
        return Result(target.listening)
    return Result(False, "missing probe handler", errored=True)
