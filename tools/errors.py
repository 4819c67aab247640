"""One small exception hierarchy for everything the tools talk to.

The `kubernetes` client raises `ApiException` for HTTP errors and urllib3's
exceptions for transport failures; httpx raises its own. Each is wrapped here
exactly once, with the original chained (`raise ... from exc`), so callers
decide by type: retry a `ServerError` or `Timeout` a bounded number of times,
tell the model to fix its arguments on `NotFound` or `Invalid`, and report
`ClusterUnreachable`, `Unauthorized` and `Forbidden` as what they are. Nothing
here matches on message text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ToolError(Exception):
    """A backend call failed. `request` names the exact call; `api_message` is the server's own."""

    #: What the model or operator can do about it.
    hint = ""
    #: Whether trying the same call again may succeed.
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        request: str = "",
        status: int | None = None,
        reason: str = "",
        api_message: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.status = status
        self.reason = reason
        self.api_message = api_message

    @property
    def kind(self) -> str:
        """The error's class name, the stable label results carry (`NotFound`, `Forbidden`)."""
        return type(self).__name__

    def describe(self) -> str:
        """One line for a result: what was asked, what the server said, what to do."""
        parts = [self.message]
        if self.request and self.request not in self.message:
            parts.append(f"request: {self.request}")
        if self.api_message and self.api_message not in self.message:
            parts.append(f"server said: {self.api_message}")
        if self.hint:
            parts.append(self.hint)
        return "; ".join(parts)


class ClusterUnreachable(ToolError):
    hint = "check that the API server is up and that the kubeconfig points at it"


class NoClusterConfigured(ClusterUnreachable):
    hint = "pass --kubeconfig/--context, set KUBECONFIG, or run inside a pod with a service account"


class Unauthorized(ToolError):
    hint = "the credentials were refused (401): refresh the token or client certificate"


class Forbidden(ToolError):
    hint = "the identity lacks RBAC permission (or an admission policy refused): do not retry as is"


class NotFound(ToolError):
    hint = "check the name, namespace and kind; list the objects to see what exists"


class Conflict(ToolError):
    hint = "the object changed or already exists: read it again before writing"
    retryable = True


class Invalid(ToolError):
    hint = "the request was rejected as malformed: correct the fields the server names"


class ServerError(ToolError):
    hint = "the server failed (5xx or throttled): the call was retried; try again later"
    retryable = True


class Timeout(ToolError):
    hint = "the server did not answer in time: narrow the query or try again"
    retryable = True


class BackendUnavailable(ToolError):
    """A metrics or trace backend (Prometheus, Jaeger, the twin) could not be reached."""

    hint = "check the backend's URL and that it is running"


_BY_STATUS: dict[int, type[ToolError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: Invalid,
    409: Conflict,
    410: Conflict,
    415: Invalid,
    422: Invalid,
    429: ServerError,
    504: Timeout,
}


def error_for_status(status: int) -> type[ToolError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return ToolError


def status_message(body: str | bytes | None) -> tuple[str, str]:
    """(message, reason) from a metav1.Status body, or the raw text when it is not one."""
    if body is None:
        return "", ""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return text.strip()[:500], ""
    if isinstance(parsed, dict):
        return str(parsed.get("message", "")), str(parsed.get("reason", ""))
    return text.strip()[:500], ""


def retry(
    fn: Callable[[], T],
    *,
    attempts: int = 3,
    backoff: float = 0.2,
    retry_on: tuple[type[ToolError], ...] = (ServerError, Timeout),
) -> T:
    """Call `fn`, retrying only errors of the given types, at most `attempts` times in all."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on:
            if attempt == attempts:
                raise
            time.sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover
