"""How a failed call reads to the caller, per protocol, as the real client libraries word it.

A Go gRPC client that cannot connect says `rpc error: code = Unavailable desc =
connection error: desc = "transport: Error while dialing: dial tcp
10.96.3.7:6379: connect: connection refused"`; an HTTP client says `Get
"http://...": ...`; a Redis client answers `WRONGPASS ...` when its password
went stale. The traffic model builds every `{cause}` from these, so the logs
name what broke the way an engineer would see it in a real incident.
"""

from __future__ import annotations

from typing import Literal

from twin.behavior import Protocol

#: gRPC status codes by name (google.golang.org/grpc/codes).
GRPC_CODES = {
    "OK": 0,
    "Canceled": 1,
    "Unknown": 2,
    "InvalidArgument": 3,
    "DeadlineExceeded": 4,
    "NotFound": 5,
    "AlreadyExists": 6,
    "PermissionDenied": 7,
    "ResourceExhausted": 8,
    "FailedPrecondition": 9,
    "Aborted": 10,
    "OutOfRange": 11,
    "Unimplemented": 12,
    "Internal": 13,
    "Unavailable": 14,
    "DataLoss": 15,
    "Unauthenticated": 16,
}

HTTP_REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

FailureKind = Literal["dial", "deadline", "status", "auth", "unavailable"]


def http_status(code: str) -> int:
    """An HTTP status for a code that may be a gRPC code name (mapped as grpc-gateway does)."""
    if code.isdigit():
        return int(code)
    return {
        "NotFound": 404,
        "InvalidArgument": 400,
        "Unauthenticated": 401,
        "PermissionDenied": 403,
        "Unavailable": 503,
        "DeadlineExceeded": 504,
    }.get(code, 500)


def grpc_code(code: str) -> str:
    """A gRPC code name for a code that may be an HTTP status."""
    if not code.isdigit():
        return code if code in GRPC_CODES else "Unknown"
    return {
        400: "InvalidArgument",
        401: "Unauthenticated",
        403: "PermissionDenied",
        404: "NotFound",
        503: "Unavailable",
        504: "DeadlineExceeded",
    }.get(int(code), "Unknown")


def default_code(protocol: Protocol, configured: str = "") -> str:
    """The status a process of `protocol` answers failed requests with."""
    if configured:
        return configured
    return "Unknown" if protocol == "grpc" else "500"


def client_error(
    protocol: Protocol,
    kind: FailureKind,
    *,
    detail: str = "",
    code: str = "",
    host: str = "",
    port: int | None = None,
    method: str = "GET",
    path: str = "/",
    user: str = "app",
    local: str = "",
    remote: str = "",
) -> str:
    """The error text a client of `protocol` reports for one failed call."""
    if protocol == "grpc":
        if kind == "dial":
            return (
                "rpc error: code = Unavailable desc = connection error: desc = "
                f'"transport: Error while dialing: {detail}"'
            )
        if kind == "deadline":
            return "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
        if kind == "auth":
            return "rpc error: code = Unauthenticated desc = invalid authentication credentials"
        if kind == "unavailable":
            return "rpc error: code = Unavailable desc = no healthy upstream"
        return f"rpc error: code = {grpc_code(code)} desc = {detail}"
    if protocol == "http":
        url = f"http://{host}{f':{port}' if port else ''}{path or '/'}"
        verb = (method or "GET").capitalize()
        if kind == "dial":
            return f'{verb} "{url}": {detail}'
        if kind == "deadline":
            return (
                f'{verb} "{url}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)"
            )
        status = {"auth": 401, "unavailable": 503}.get(kind) or http_status(code)
        return f'{verb} "{url}": unexpected status {status} {HTTP_REASONS.get(status, "")}'.rstrip()
    if protocol == "redis":
        if kind == "auth":
            return "WRONGPASS invalid username-password pair or user is disabled."
        if kind == "deadline":
            return f"read tcp {local}->{remote}: i/o timeout"
        if kind == "unavailable":
            return f"read tcp {local}->{remote}: read: connection reset by peer"
        return detail
    if protocol == "postgres":
        if kind == "auth":
            return f'pq: password authentication failed for user "{user}"'
        if kind == "deadline":
            return "context deadline exceeded"
        if kind == "status":
            return f"pq: {detail}"
        if kind == "unavailable":
            return "driver: bad connection"
        return detail
    if kind == "auth":
        return "authentication failed"
    if kind == "deadline":
        return f"read tcp {local}->{remote}: i/o timeout"
    if kind == "unavailable":
        return f"read tcp {local}->{remote}: read: connection reset by peer"
    return detail


def mesh_status(protocol: Protocol, kind: str, code: str = "") -> tuple[str, str, str]:
    """(response_code, grpc_response_status, response_flags) as the Istio proxy reports them.

    gRPC answers travel as HTTP 200 with the status in grpc-status; failures the
    proxy generates itself (no upstream, refused, timed out) are 503/504 with
    flags UH (no healthy upstream), UF (upstream connection failure) or UT.
    """
    grpc = protocol == "grpc"
    if kind == "ok":
        return "200", "0" if grpc else "", "-"
    if kind == "error":
        if grpc:
            return "200", str(GRPC_CODES.get(grpc_code(code), 2)), "-"
        return str(http_status(code)), "", "-"
    if kind == "timeout":
        return "504", "4" if grpc else "", "UT"
    if kind == "no-upstream":
        return "503", "14" if grpc else "", "UH"
    if kind == "auth":
        if grpc:
            return "200", "16", "-"
        return "401", "", "-"
    return "503", "14" if grpc else "", "UF,URX"
