"""Behaviour profiles: how a container image behaves when the twin "runs" it.

No containers run in the twin; an image is a profile. The built-in `shop` app
registers a profile for each Online Boutique image, a scenario may add
profiles for its own images (`spec.behaviors`), and an unknown image with no
profile behaves as a healthy web server on its first containerPort.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

StartBehavior = Literal[
    "healthy", "crash-on-start", "crash-after-requests", "config-error", "missing-image"
]
LogStyle = Literal["logrus", "pino", "python-json", "dotnet", "log4j", "redis", "locust", "plain"]
Protocol = Literal["http", "grpc", "tcp", "redis", "postgres"]


@dataclass(frozen=True)
class Call:
    """One dependency: a Service called `per_request` times for each request served."""

    service: str
    per_request: float = 1.0
    #: A soft dependency's failure is logged as a warning and does not fail the request
    #: (frontend -> adservice, frontend -> recommendationservice).
    soft: bool = False
    #: Which of the caller's operations make this call; empty means all of them.
    operations: tuple[str, ...] = ()
    #: The callee's operation this call invokes (an RPC method, an HTTP route, a command);
    #: empty: the callee's operations in their own proportions.
    operation: str = ""
    #: Env var of the caller holding the callee's `host:port` (or URL); when the container
    #: sets it, its host and port replace `service`, as the real client would dial them.
    address_env: str = ""
    #: How the caller words this failure in its logs and replies; {cause} is what the
    #: callee or the network answered (``could not retrieve cart: {cause}``).
    error: str = ""
    #: For a soft call: the warning template logged when it fails (empty: the profile's
    #: warning_logs, and none at all when those are empty too).
    warning: str = ""
    #: The gRPC status (or HTTP status) the caller answers with when this call fails;
    #: empty: the caller profile's error_code.
    code: str = ""
    #: The caller's deadline for this call, ms; 0: the traffic model's default.
    timeout_ms: float = 0.0


@dataclass(frozen=True)
class Operation:
    """A named request type a service serves, with its share of the traffic."""

    name: str
    weight: float = 1.0
    #: HTTP method and route template for HTTP services (placeholders fill from `extra`).
    method: str = ""
    path: str = ""
    #: Own service time of this operation, ms; 0: the profile's latency_ms.
    latency_ms: float = 0.0
    #: Log templates of one request of this operation; empty: the profile's info_logs.
    info_logs: tuple[str, ...] = ()


@dataclass(frozen=True)
class BehaviorProfile:
    """What an image does at the scenario's traffic."""

    #: CPU in cores at the reference request rate (`reference_rps`); scales with load.
    cpu: float = 0.05
    #: Working-set memory in bytes at steady state.
    memory: int = 64 * 1024 * 1024
    #: Own service time per request, before calls to dependencies.
    latency_ms: float = 20.0
    calls: tuple[Call, ...] = ()
    operations: tuple[Operation, ...] = ()
    #: Request rate at which `cpu` was measured.
    reference_rps: float = 10.0
    #: Log line templates; placeholders such as {latency_ms}, {cause}, {operation}.
    #: A template may also be a JSON object (one record: ``message``, optional
    #: ``severity``, ``logger``, ``raw`` and any structured fields) or a JSON list of
    #: records/strings (several lines per request); see twin/traffic_logs.py.
    info_logs: tuple[str, ...] = ()
    error_logs: tuple[str, ...] = ("ERROR request failed: {cause}",)
    warning_logs: tuple[str, ...] = ()
    startup_logs: tuple[str, ...] = ()
    #: Lines printed before exiting when the start fails (config-error, crash-on-start).
    on_start_failure: tuple[str, ...] = ()
    start: StartBehavior = "healthy"
    #: For crash-after-requests: requests served before the process dies.
    crash_after: int = 200
    #: Seconds from container start until it accepts requests.
    startup_seconds: float = 3.0
    log_style: LogStyle = "plain"
    protocol: Protocol = "http"
    #: Environment variables the process needs; a missing one is a config-error.
    required_env: tuple[str, ...] = ()
    #: Logger name for structured styles (pino `name`, python-json `name`).
    logger: str = ""
    #: HTTP paths that answer 200 (health probes on any other path get 404).
    http_paths: tuple[str, ...] = (
        "/",
        "/healthz",
        "/_healthz",
        "/health",
        "/ready",
        "/readyz",
        "/livez",
    )
    #: The port the process listens on when the container declares none and sets no PORT env.
    port: int = 8080
    extra: dict[str, str] = field(default_factory=dict)
    #: The status this process answers with when a request fails on its own or through a
    #: hard dependency: a gRPC code name (``Internal``) or an HTTP status (``500``);
    #: empty: by protocol (``Unknown`` for gRPC, ``500`` for HTTP).
    error_code: str = ""
    #: Lines the process prints on each health probe it answers (cartservice prints
    #: ``Checking CartService Health``).
    probe_logs: tuple[str, ...] = ()
    #: (interval seconds, template) lines printed periodically while the process serves.
    periodic_logs: tuple[tuple[float, str], ...] = ()

    def with_start(self, start: StartBehavior) -> BehaviorProfile:
        return replace(self, start=start)


#: What an unknown image with no profile does: serves HTTP, healthy, quiet.
DEFAULT_PROFILE = BehaviorProfile(
    info_logs=('"GET / HTTP/1.1" 200 {latency_ms}ms',),
    error_logs=('"GET / HTTP/1.1" 502 upstream error: {cause}',),
    startup_logs=("listening on :{port}",),
)


class BehaviorRegistry:
    """Image -> profile. Lookups try the full image, then the image without its tag."""

    def __init__(self) -> None:
        self._profiles: dict[str, BehaviorProfile] = {}

    def register(self, image: str, profile: BehaviorProfile) -> None:
        self._profiles[image] = profile

    def known(self, image: str) -> bool:
        return image in self._profiles or _untagged(image) in self._profiles

    def get(self, image: str) -> BehaviorProfile:
        return self._profiles.get(image) or self._profiles.get(_untagged(image)) or DEFAULT_PROFILE

    def images(self) -> list[str]:
        return sorted(self._profiles)


def _untagged(image: str) -> str:
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name
