"""Post-mortems of a real incident: a twin scenario run through the whole graph."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from interfaces.postmortem import FORMATS, build_postmortem, load_report, write_postmortems
from settings import Settings
from tests.test_postmortem import SCHEMA_FILE
from tests.test_postmortem_chromium import CONSOLE, _chromium

runner = pytest.importorskip(
    "interfaces.runner", reason="the graph runner (interfaces/runner.py) has not landed yet"
)


@pytest.fixture(scope="module")
def incident_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cart-redis-down, run autonomously with the in-process memory; its incident directory."""
    data = tmp_path_factory.mktemp("pm-twin")
    run: Any = asyncio.run(
        runner.run_scenario(
            "cart-redis-down",
            mode="autonomous",
            settings=Settings(data_dir=data),
            approver=runner.approve_all(),
        )
    )
    assert run.report["recovered"]
    path: Path = data / "incidents" / run.state.incident.id
    return path


def test_the_learner_left_a_transcript(incident_dir: Path) -> None:
    report = load_report(incident_dir)
    assert report.outcome == "recovered"
    nodes = {e.node for e in report.transcript}
    assert {"intake", "recall", "planner", "executor", "verifier", "learner"} <= nodes


def test_post_mortem_of_a_twin_incident_in_all_formats(incident_dir: Path) -> None:
    written = write_postmortems(incident_dir)
    assert [p.suffix for p in written] == [f".{f}" for f in FORMATS]
    pm = build_postmortem(load_report(incident_dir))

    doc = json.loads((incident_dir / "postmortem.json").read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(doc)
    assert doc["root_cause"]["component"] == "Deployment/shop/redis-cart"
    assert doc["resolution"]["actions"][0]["action"] == "scale"
    assert doc["resolution"]["mitigated_at"] is not None
    # The service graph from the dependency tracer, with a failing path ending at the cause.
    graph = pm.service_graph
    assert len(graph.nodes) > 5
    assert graph.failing_path[-1] == "Deployment/shop/redis-cart"
    assert len(graph.failing_path) >= 2
    # Every transcript line is on the timeline.
    assert len(pm.timeline) == len(load_report(incident_dir).transcript)
    assert pm.impact.duration_s is not None

    md = (incident_dir / "postmortem.md").read_text()
    assert "## Root Causes" in md
    assert "redis-cart" in md
    page = (incident_dir / "postmortem.html").read_text()
    assert page.count('class="edge failing"') == sum(e.on_failing_path for e in graph.edges)
    # The path in words starts where users saw it: the alerted frontend.
    assert graph.failing_path[0] == "Deployment/shop/frontend"


@pytest.mark.chromium
def test_twin_post_mortem_renders_in_chromium(incident_dir: Path, tmp_path: Path) -> None:
    page = incident_dir / "postmortem.html"
    if not page.exists():
        write_postmortems(incident_dir, ["html"])
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [line for line in dom.stderr.splitlines() if CONSOLE.search(line)] == []
    assert '<svg id="service-graph"' in dom.stdout
    assert 'class="edge failing"' in dom.stdout
