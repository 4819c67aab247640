"""`kubemedic run`, `investigate` and `demo` through the real CLI, on the twin.

These run the whole graph with the deterministic agents (no model, in-process
memory, SQLite checkpoints in a temporary data dir); the twin's write log is
the judge of what was written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interfaces.cli import app
from twin.harness import Twin


@pytest.fixture
def runner(tmp_path: Path) -> CliRunner:
    return CliRunner(env={"KUBEMEDIC_DATA_DIR": str(tmp_path), "COLUMNS": "160"})


def run_json(runner: CliRunner, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["run", *args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def test_run_json_recovers_cart_redis_down(runner: CliRunner, tmp_path: Path) -> None:
    report = run_json(runner, "--scenario", "cart-redis-down")
    assert set(report) >= {
        "incident_id",
        "scenario",
        "mode",
        "detected",
        "root_causes",
        "category",
        "actions",
        "recovered",
        "score",
        "sim_seconds",
        "wall_seconds",
        "tokens",
        "transcript_path",
    }
    assert report["scenario"] == "cart-redis-down"
    assert report["mode"] == "autonomous"
    assert report["detected"] is True
    causes = report["root_causes"]
    assert isinstance(causes, list)
    assert causes[0]["name"] == "redis-cart"
    actions = report["actions"]
    assert isinstance(actions, list)
    assert [(a["action"], a["target"]["name"], a["decision"], a["status"]) for a in actions] == [
        ("scale", "redis-cart", "allow", "applied")
    ]
    assert report["recovered"] is True
    score = report["score"]
    assert isinstance(score, dict)
    assert score["passed"] is True
    assert report["tokens"] == {"input": 0, "output": 0}
    sim = report["sim_seconds"]
    assert isinstance(sim, dict)
    assert sim["detect"] is not None
    assert sim["mitigate"] is not None
    assert sim["detect"] <= sim["mitigate"]
    transcript = tmp_path / "incidents" / str(report["incident_id"]) / "transcript.json"
    assert Path(str(report["transcript_path"])).resolve() == transcript.resolve()
    kinds = {line["kind"] for line in json.loads(transcript.read_text())["transcript"]}
    assert {"intake", "decision", "dry_run", "api_call", "verification"} <= kinds


def test_run_in_approve_mode_without_a_person_writes_nothing(runner: CliRunner) -> None:
    # No terminal and no --approve-all: the request is answered "reject", nothing is written.
    report = run_json(runner, "--scenario", "cart-redis-down", "--mode", "approve")
    assert report["approvals_requested"] == 1
    actions = report["actions"]
    assert isinstance(actions, list)
    assert [(a["decision"], a["status"]) for a in actions] == [("needs_approval", "not_executed")]
    assert report["outcome"] == "rejected"
    assert report["recovered"] is False
    score = report["score"]
    assert isinstance(score, dict)
    assert score["writes"] == []


def test_run_in_approve_mode_with_approve_all(runner: CliRunner) -> None:
    report = run_json(runner, "--scenario", "cart-redis-down", "--mode", "approve", "--approve-all")
    actions = report["actions"]
    assert isinstance(actions, list)
    assert [(a["decision"], a["status"]) for a in actions] == [("needs_approval", "applied")]
    assert report["recovered"] is True


def test_run_unknown_scenario(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "--scenario", "no-such-scenario", "--json"])
    assert result.exit_code == 1
    assert "no-such-scenario" in result.output


def test_run_prints_a_report(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "--scenario", "cart-redis-down", "--mode", "observe"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "▶ intake" in out
    assert "▶ policy_gate" in out
    assert "observe mode" in out
    assert "Deployment/shop/redis-cart" in out
    assert "recommended" in out


def test_demo_shows_the_loop(runner: CliRunner) -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "memory: in-process (not persisted" in out
    assert "model: none: deterministic mode" in out
    for node in ("intake", "recall", "log_analyst", "dependency_tracer", "planner"):
        assert f"▶ {node}" in out
    assert "▶ executor" in out
    assert "applied: scale Deployment/shop/redis-cart" in out
    assert "verification: recovered" in out
    assert "recovered (oracle)" in out


@pytest.fixture
def served() -> Iterator[Twin]:
    with Twin.start("cart-redis-down") as twin:
        twin.run_until_alert()
        yield twin


def test_investigate_answers_and_follows_up_on_the_same_thread(
    runner: CliRunner, served: Twin, tmp_path: Path
) -> None:
    base = ["investigate", "--kubeconfig", str(served.kubeconfig_path), "--namespace", "shop"]
    first = runner.invoke(app, [*base, "Why is the frontend failing?", "--json"])
    assert first.exit_code == 0, first.output
    answer = json.loads(first.stdout)
    thread = answer["thread"]
    assert answer["outcome"] == "recommended"
    assert answer["hypotheses"][0]["root_cause"]["name"] == "redis-cart"
    # Read-only: nothing reached the API server, not even a dry-run.
    assert served.write_log == []
    follow = runner.invoke(app, [*base, "And what about cartservice?", "--thread", thread])
    assert follow.exit_code == 0, follow.output
    assert f"thread {thread}" in follow.output
    assert "redis-cart" in follow.output
    assert served.write_log == []
    transcript = json.loads((tmp_path / "incidents" / thread / "transcript.json").read_text())
    intakes = [line for line in transcript["transcript"] if line["kind"] == "intake"]
    assert len(intakes) == 2  # one thread, two questions


def test_an_invalid_policy_file_stops_run_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("min_confidence: 7\n")
    monkeypatch.setenv("KUBEMEDIC_POLICY__FILE", str(bad))
    result = CliRunner().invoke(app, ["run", "--scenario", "healthy", "--json"])
    assert result.exit_code == 2
    assert "min_confidence" in result.output
    assert "incident_id" not in result.output
