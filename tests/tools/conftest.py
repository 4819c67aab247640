"""Fixtures for the tools' tests: a real Prometheus loaded with fixture blocks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.promfixture import RunningPrometheus, start_prometheus


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        pytest.skip("prometheus/promtool not installed (apt-get install prometheus)")
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    yield from start_prometheus(workdir)
