"""Connecting to clusters, and the one place where Kubernetes API calls are made and wrapped.

A `ClusterConnection` is what the agents receive: one cluster (a kubeconfig
context, or the in-cluster service account), its typed API objects, and
`call`, which runs one client method, returns the raw JSON the API server
sent, wraps every failure once in `tools.errors`, and retries by type.
`Clusters` holds several, by context name.

Reads are decoded from the raw response (`_preload_content=False`) rather than
into the client's model classes: the tools want JSON-shaped dicts, and
decoding 2,000 pods into model objects costs more than the request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from tools.errors import (
    ClusterUnreachable,
    NoClusterConfigured,
    ServerError,
    Timeout,
    ToolError,
    error_for_status,
    retry,
    status_message,
)

#: (connect, read) seconds for one API request.
DEFAULT_TIMEOUT = (3.0, 30.0)
#: Tries in all for a call that fails with ServerError or Timeout.
DEFAULT_ATTEMPTS = 3

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

JSON = dict[str, Any]


def describe_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """The exact call as a result shows it: `list_namespaced_pod('shop', label_selector='a=b')`."""
    shown = [repr(a) for a in args if not isinstance(a, dict | list)]
    shown += [
        f"{k}={v!r}"
        for k, v in kwargs.items()
        if v is not None and not k.startswith("_") and k != "body"
    ]
    return f"{getattr(fn, '__name__', 'call')}({', '.join(shown)})"


def wrap_exception(exc: BaseException, request: str, server: str) -> ToolError:
    """Our error for a client or transport exception (the caller chains the original)."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status == 0:
            return ClusterUnreachable(
                f"cannot talk to the API server at {server}: {exc.reason}", request=request
            )
        message, reason = status_message(exc.body)
        cls = error_for_status(status)
        return cls(
            f"{request} failed: {status} {reason or exc.reason}: {message}",
            request=request,
            status=status,
            reason=reason or str(exc.reason or ""),
            api_message=message,
        )
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return wrap_exception(exc.reason, request, server)
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return Timeout(
            f"{request}: the API server at {server} did not answer in time", request=request
        )
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        # Checked first: urllib3 makes NewConnectionError a subclass of ConnectTimeoutError.
        return ClusterUnreachable(
            f"cannot reach the API server at {server}: {_root_cause(exc)}", request=request
        )
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return ClusterUnreachable(
            f"cannot reach the API server at {server}: connection timed out", request=request
        )
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return ServerError(f"{request}: the connection to {server} broke: {exc}", request=request)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return ClusterUnreachable(
            f"cannot reach the API server at {server}: {_root_cause(exc)}", request=request
        )
    if isinstance(exc, ConfigException):
        return NoClusterConfigured(str(exc), request=request)
    raise TypeError(f"not a client or transport error: {exc!r}")


def _root_cause(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text or isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return text


#: The client API classes a connection uses (the kubernetes package imports each lazily).
CLIENT_APIS = (
    "CoreV1Api",
    "AppsV1Api",
    "AutoscalingV2Api",
    "PolicyV1Api",
    "NetworkingV1Api",
    "CustomObjectsApi",
    "VersionApi",
)


def load_client() -> None:
    """Import the client's API modules now, not inside the first incident's tool calls.

    The kubernetes package loads them on first use, and that takes more than a second (its
    models and hundreds of validated methods): a long-running process pays it once, and a
    timed run (`kubemedic run`, the benchmark) pays it before its clock starts.
    """
    for name in CLIENT_APIS:
        getattr(k8s, name)


@dataclass
class ClusterConnection:
    """One cluster: a configured API client plus the typed API objects the tools use."""

    api_client: k8s.ApiClient
    #: The kubeconfig context, or "in-cluster".
    context: str = ""
    #: Where the configuration came from (a kubeconfig path, or the service account dir).
    source: str = ""
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    core: k8s.CoreV1Api = field(init=False)
    apps: k8s.AppsV1Api = field(init=False)
    autoscaling: k8s.AutoscalingV2Api = field(init=False)
    policy: k8s.PolicyV1Api = field(init=False)
    networking: k8s.NetworkingV1Api = field(init=False)
    custom: k8s.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.core = k8s.CoreV1Api(self.api_client)
        self.apps = k8s.AppsV1Api(self.api_client)
        self.autoscaling = k8s.AutoscalingV2Api(self.api_client)
        self.policy = k8s.PolicyV1Api(self.api_client)
        self.networking = k8s.NetworkingV1Api(self.api_client)
        self.custom = k8s.CustomObjectsApi(self.api_client)

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    # -- constructors -----------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls, path: str | os.PathLike[str] | None = None, context: str | None = None
    ) -> ClusterConnection:
        """A connection for one context of a kubeconfig (its current context by default)."""
        config_file = str(path) if path is not None else None
        try:
            contexts, current = k8s_config.list_kube_config_contexts(config_file)  # type: ignore[no-untyped-call]
            names = [c["name"] for c in contexts or []]
            if context is not None and context not in names:
                raise NoClusterConfigured(
                    f"context {context!r} not found in kubeconfig {config_file or '~/.kube/config'}"
                    f" (contexts: {', '.join(names) or 'none'})"
                )
            configuration = k8s.Configuration()
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=config_file,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise NoClusterConfigured(
                f"cannot load kubeconfig {config_file or '~/.kube/config'}"
                f"{f' context {context!r}' if context else ''}: {exc}"
            ) from exc
        _quiet(configuration)
        name = context or (current or {}).get("name", "")
        return cls(k8s.ApiClient(configuration), context=name, source=config_file or "")

    @classmethod
    def in_cluster(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
    ) -> ClusterConnection:
        """A connection through the pod's service account (KUBERNETES_SERVICE_HOST/PORT)."""
        sa = Path(service_account_dir)
        loader = k8s_config.incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(sa / "token"),
            cert_filename=str(sa / "ca.crt"),
            environ=dict(os.environ if env is None else env),
        )
        configuration = k8s.Configuration()
        try:
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise NoClusterConfigured(
                f"in-cluster configuration unavailable ({sa}, KUBERNETES_SERVICE_HOST/PORT): {exc}"
            ) from exc
        _quiet(configuration)
        return cls(k8s.ApiClient(configuration), context="in-cluster", source=str(sa))

    # -- calls ------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one client method; return the decoded JSON body.

        Raises one of tools.errors' types, with the client's exception chained.
        ServerError and Timeout are retried up to `attempts` times in all.
        """
        data = self._send(fn, args, kwargs)
        try:
            return json.loads(data)
        except ValueError as exc:
            request = describe_call(fn, args, kwargs)
            raise ServerError(
                f"{request}: the API server at {self.server} sent a body that is not JSON: "
                f"{data[:200].decode(errors='replace')!r}",
                request=request,
            ) from exc

    def call_text(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
        """Run one client method whose body is text (the pod log subresource)."""
        return self._send(fn, args, kwargs).decode(errors="replace")

    def _send(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        request = describe_call(fn, args, kwargs)
        kwargs.setdefault("_request_timeout", self.timeout)
        kwargs["_preload_content"] = False

        def once() -> bytes:
            try:
                response = fn(*args, **kwargs)
                data: bytes = response.data
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ConfigException) as exc:
                raise wrap_exception(exc, request, self.server) from exc
            return data

        return retry(once, attempts=self.attempts)

    def version(self) -> JSON:
        """The server's /version: a cheap check that the cluster answers."""
        result: JSON = self.call(k8s.VersionApi(self.api_client).get_code)
        return result

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]


def _quiet(configuration: k8s.Configuration) -> None:
    # Transport retries off: errors come straight to `call`, which retries by type.
    configuration.retries = 0


def connect(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
    check: bool = False,
) -> ClusterConnection:
    """Find a cluster the way kubectl does, then fall back to the in-cluster service account.

    Tried in order: `kubeconfig` when given (only it); else $KUBECONFIG; else
    ~/.kube/config; else in-cluster. Raises NoClusterConfigured naming every
    place tried. With `check`, also asks the server for /version and raises
    ClusterUnreachable (naming the server and context) when it does not answer.
    """
    environ = os.environ if env is None else env
    tried: list[str] = []
    candidates: list[str] = []
    if kubeconfig is not None:
        candidates.append(str(kubeconfig))
    elif environ.get("KUBECONFIG"):
        candidates.append(environ["KUBECONFIG"])
    else:
        home = environ.get("HOME") or str(Path.home())
        candidates.append(str(Path(home) / ".kube" / "config"))
    conn: ClusterConnection | None = None
    for candidate in candidates:
        candidate = os.pathsep.join(os.path.expanduser(p) for p in candidate.split(os.pathsep) if p)
        paths = candidate.split(os.pathsep)
        if not any(Path(p).is_file() for p in paths):
            tried.append(f"kubeconfig {candidate} (no such file)")
            continue
        try:
            conn = ClusterConnection.from_kubeconfig(candidate, context)
            break
        except NoClusterConfigured as exc:
            tried.append(f"kubeconfig {candidate}: {exc}")
    if conn is None and kubeconfig is None and context is None:
        try:
            conn = ClusterConnection.in_cluster(
                env=environ, service_account_dir=service_account_dir
            )
        except NoClusterConfigured as exc:
            tried.append(str(exc))
    if conn is None:
        raise NoClusterConfigured("no cluster configuration found; tried: " + "; ".join(tried))
    if check:
        try:
            conn.version()
        except ToolError as exc:
            where = f"context {conn.context!r} from {conn.source or 'default kubeconfig'}"
            raise ClusterUnreachable(
                f"the API server at {conn.server} ({where}) does not answer: {exc.message}",
                request=exc.request,
            ) from exc
    return conn


class Clusters:
    """Several clusters by kubeconfig context name, connected on first use."""

    def __init__(self, kubeconfig: str | os.PathLike[str] | None = None) -> None:
        self.kubeconfig = str(kubeconfig) if kubeconfig is not None else None
        self._connections: dict[str, ClusterConnection] = {}

    def contexts(self) -> list[str]:
        try:
            contexts, _current = k8s_config.list_kube_config_contexts(self.kubeconfig)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError) as exc:
            raise NoClusterConfigured(f"cannot read kubeconfig {self.kubeconfig}: {exc}") from exc
        return [c["name"] for c in contexts or []]

    def get(self, context: str) -> ClusterConnection:
        if context not in self._connections:
            self._connections[context] = ClusterConnection.from_kubeconfig(self.kubeconfig, context)
        return self._connections[context]

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()
