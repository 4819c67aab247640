"""A probe aimed at a port its container does not declare, on a container the kubelet kills or
keeps unready: the probe is misconfigured, not the process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents.dependency_tracer import _probe_port_check, trace
from agents.signals import EvidenceBook
from state import ObjectRef
from tests.agents.support import Run

SUITE = Path(__file__).resolve().parents[2] / "evals" / "suite"
API = ObjectRef(kind="Deployment", namespace="app", name="api")


def check(container: dict[str, Any], probe: str = "liveness") -> list[Any]:
    book = EvidenceBook("dep", "dependency_tracer", [])
    _probe_port_check(book, API, container, probe)
    return book.items


def test_a_probe_on_an_undeclared_port_is_misconfigured() -> None:
    ports = [{"name": "grpc", "containerPort": 7000}]
    found = check({"name": "server", "ports": ports, "liveness_probe": {"grpc": 7070}})
    assert [e.signal for e in found] == ["probe_misconfigured"]
    assert found[0].data["port"] == 7070
    assert found[0].data["declared"] == ["7000"]
    http = check(
        {
            "name": "web",
            "ports": [{"containerPort": 8080}],
            "readiness_probe": {"http_get": "/:81"},
        },
        "readiness",
    )
    assert [e.data["port"] for e in http] == ["81"]


def test_a_probe_on_a_declared_port_or_without_one_is_fine() -> None:
    ports = [{"name": "http", "containerPort": 8080}]
    assert check({"name": "a", "ports": ports, "liveness_probe": {"tcp_socket": 8080}}) == []
    assert (
        check({"name": "a", "ports": ports, "liveness_probe": {"http_get": "/healthz:http"}}) == []
    )
    assert check({"name": "a", "ports": ports, "liveness_probe": {"exec": "true"}}) == []
    # Nothing declared: nothing to compare with.
    assert check({"name": "a", "liveness_probe": {"tcp_socket": 9000}}) == []


def test_tracer_on_the_twin_names_the_misconfigured_liveness_probe() -> None:
    run = Run.start(SUITE / "shop-currency-bad-liveness-probe.yaml")
    try:
        result = asyncio.run(trace(run.state, run.ctx))
    finally:
        run.close()
    currency = ObjectRef(kind="Deployment", namespace="shop", name="currencyservice")
    found = [e for e in result.evidence if e.signal == "probe_misconfigured"]
    assert [e.subject for e in found] == [currency]
    assert found[0].data["probe"] == "liveness"
    assert result.findings.candidates[0].subject == currency
