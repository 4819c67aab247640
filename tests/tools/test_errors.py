"""Failures come back as results the model can act on, each kind distinct; retries go by type.

The 403, 5xx and slow answers come from the twin's real API server with a
small aiohttp middleware in front of chosen paths, the way an RBAC denial,
an overloaded apiserver or a slow network would look to the client.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.tools.twinworld import World, serve_world
from tools.connection import ClusterConnection, connect
from tools.errors import ClusterUnreachable, NoClusterConfigured
from tools.registry import Toolbox
from twin.kubeconfig import write_kubeconfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


class Faults:
    """Counts requests per path fragment and answers some of them badly."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def install(self, app: web.Application) -> None:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            path = request.path
            for fragment in ("/secrets", "/configmaps", "/poddisruptionbudgets", "/resourcequotas"):
                if path.endswith(fragment):
                    self.calls[fragment] = self.calls.get(fragment, 0) + 1
            if path.endswith("/secrets"):
                return _status(
                    403,
                    "Forbidden",
                    'secrets is forbidden: User "system:serviceaccount:kubemedic:kubemedic" cannot '
                    'list resource "secrets" in API group "" in the namespace "shop"',
                )
            if path.endswith("/configmaps") and self.calls["/configmaps"] <= 2:
                return _status(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                )
            if path.endswith("/poddisruptionbudgets"):
                return _status(500, "InternalError", "etcdserver: request timed out")
            if path.endswith("/resourcequotas"):
                await asyncio.sleep(0.6)
            return await handler(request)

        app.middlewares.append(middleware)


@pytest.fixture(scope="module")
def faulty() -> Iterator[tuple[World, Faults]]:
    faults = Faults()
    with serve_world(extra_routes=[faults.install]) as w:
        yield w, faults


@pytest.fixture
def fbox(faulty: tuple[World, Faults]) -> Iterator[Toolbox]:
    conn = connect(faulty[0].kubeconfig)
    yield Toolbox(cluster=conn)
    conn.close()


def test_bad_arguments_are_error_results_never_exceptions(box: Toolbox) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "describe_pod": ({"namespace": "shop", "name": "Frontend_1"}, "not a DNS-1123 subdomain"),
        "describe_workload": (
            {"kind": "Deploymentz", "namespace": "shop", "name": "frontend"},
            "kind",
        ),
        "get_pod_logs": ({"namespace": "shop", "pod": "frontend", "tail_lines": -1}, "tail_lines"),
        "list_pods": ({"namespace": "shop", "selector": "app=x"}, "Extra inputs"),
        "list_events": ({"namespace": "-shop"}, "DNS-1123 label"),
        "list_services": ({"namespace": "shop", "label_selector": "app=x&watch=true"}, "selector"),
    }
    for name, (args, expected) in cases.items():
        result = box.call(name, args)
        assert result.status == "error", name
        assert result.error_kind == "InvalidArguments", name
        assert expected in (result.error or ""), (name, result.error)
        assert result.params == args
    unknown = box.call("drop_database", {})
    assert unknown.status == "error"
    assert "unknown tool" in (unknown.error or "")


def test_not_found_names_the_request_and_the_server_message(box: Toolbox) -> None:
    result = box.call("describe_pod", {"namespace": "shop", "name": "nope"})
    assert result.status == "error"
    assert result.error_kind == "NotFound"
    assert 'pods "nope" not found' in (result.error or "")
    assert result.query == "read_namespaced_pod('nope', 'shop')"
    missing_container = box.call(
        "get_pod_logs",
        {"namespace": "shop", "pod": "frontend-6c4b8d9f2-abcde", "container": "sidecar"},
    )
    assert missing_container.error_kind == "NotFound"
    assert "containers: server" in (missing_container.error or "")


def test_forbidden_is_denied_with_the_rbac_message(fbox: Toolbox) -> None:
    result = fbox.call("list_secrets", {"namespace": "shop"})
    assert result.status == "denied"
    assert result.error_kind == "Forbidden"
    assert 'cannot list resource "secrets"' in (result.error or "")
    assert "RBAC" in (result.error or "")


def test_unreachable_server_is_its_own_result(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}", context="gone")
    conn = connect(kubeconfig)
    result = Toolbox(cluster=conn).call("list_pods", {"namespace": "shop"})
    assert result.status == "error"
    assert result.error_kind == "ClusterUnreachable"
    assert f"127.0.0.1:{port}" in (result.error or "")
    assert "connection refused" in (result.error or "")
    with pytest.raises(ClusterUnreachable) as exc:
        connect(kubeconfig, check=True)
    assert "context 'gone'" in exc.value.message
    assert isinstance(exc.value.__cause__, ClusterUnreachable)
    conn.close()


def test_server_errors_are_retried_a_bounded_number_of_times(
    fbox: Toolbox, faulty: tuple[World, Faults]
) -> None:
    faults = faulty[1]
    recovered = fbox.call("list_configmaps", {"namespace": "shop"})
    assert recovered.status == "success"
    assert faults.calls["/configmaps"] == 3
    failing = fbox.call("list_pdbs", {"namespace": "shop"})
    assert failing.status == "error"
    assert failing.error_kind == "ServerError"
    assert "etcdserver: request timed out" in (failing.error or "")
    assert faults.calls["/poddisruptionbudgets"] == 3
    before = faults.calls.get("/secrets", 0)
    fbox.call("list_secrets", {"namespace": "shop"})
    assert faults.calls["/secrets"] == before + 1  # a 403 is not retried


def test_timeouts_are_retried_then_reported(faulty: tuple[World, Faults]) -> None:
    conn = ClusterConnection.from_kubeconfig(faulty[0].kubeconfig)
    conn.timeout = (1.0, 0.2)
    before = faulty[1].calls.get("/resourcequotas", 0)
    result = Toolbox(cluster=conn).call("list_resource_quotas", {"namespace": "shop"})
    assert result.status == "error"
    assert result.error_kind == "Timeout"
    assert faulty[1].calls["/resourcequotas"] == before + 3
    conn.close()


def test_no_cluster_configured_names_what_was_tried(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    with pytest.raises(NoClusterConfigured) as exc:
        connect(env=env, service_account_dir=tmp_path / "sa")
    message = exc.value.message
    assert str(tmp_path / ".kube" / "config") in message
    assert "in-cluster" in message
    assert "KUBERNETES_SERVICE_HOST" in message
    result = Toolbox(cluster_problem=message).call("list_pods", {})
    assert result.error_kind == "NoClusterConfigured"
    assert json.loads(result.model_dump_json())["error"].startswith("no cluster configuration")
