"""Fixtures for the tools' tests: a twin cluster over HTTP, and a real Prometheus."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.promfixture import RunningPrometheus, start_prometheus
from tests.tools.twinworld import World, serve_world
from tools.connection import connect
from tools.registry import Toolbox


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        pytest.skip("prometheus/promtool not installed (apt-get install prometheus)")
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    yield from start_prometheus(workdir)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A hand-built twin cluster served over HTTP; read-only tests share it."""
    with serve_world() as w:
        yield w


@pytest.fixture
def fresh_world() -> Iterator[World]:
    """The same cluster, fresh for each test that writes."""
    with serve_world() as w:
        yield w


@pytest.fixture
def box(world: World) -> Iterator[Toolbox]:
    conn = connect(world.kubeconfig)
    yield Toolbox(cluster=conn)
    conn.close()
