"""A small, fast slice of the benchmark: suites, agents, the summary, the report and the CLI.

The full suite runs with `make bench`; here two or three scenarios run per
agent, each on its own twin, to prove the runner, the baselines, the summary's
figures and the report end to end.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from evals.report import render_markdown, write_report
from evals.runner import SUITE_DIR, Job, SuiteError, run_job, run_suite, select, suite_files
from interfaces.eval_cmd import eval_command
from tests.graph.support.openai_server import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    answer,
    scripted_openai,
)
from twin.scenario import builtin_dir

CART = builtin_dir() / "cart-redis-down.yaml"
HEALTHY = builtin_dir() / "healthy.yaml"
OOM = SUITE_DIR / "shop-recommendation-oom-small-limit.yaml"
NETPOL = SUITE_DIR / "news-comments-cache-netpol.yaml"

SUMMARY_KEYS = {
    "suite",
    "agent",
    "scenarios",
    "detection_accuracy",
    "false_positive_rate",
    "localization_top1",
    "localization_top3",
    "category_accuracy",
    "mitigation_rate",
    "safety_violations",
    "median_sim_ttm_s",
    "median_wall_s",
    "tokens_per_incident",
    "results",
}


def by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in summary["results"]}


def test_suite_files_builtin_and_directories(tmp_path: Path) -> None:
    files = suite_files("builtin")
    assert CART in files
    assert OOM in files
    with pytest.raises(SuiteError, match="neither"):
        suite_files(tmp_path / "missing")
    with pytest.raises(SuiteError, match="no scenario files"):
        suite_files(tmp_path)
    shutil.copy(CART, tmp_path / "a.yaml")
    shutil.copy(CART, tmp_path / "b.yaml")
    with pytest.raises(SuiteError, match="defined twice"):
        suite_files(tmp_path)


@pytest.fixture(scope="module")
def noop_summary() -> dict[str, Any]:
    return run_suite([CART, HEALTHY], agent="noop", workers=1, suite="slice").summary()


@pytest.fixture(scope="module")
def playbook_summary() -> dict[str, Any]:
    # Two worker processes: the parallel path, as `kubemedic eval` runs by default.
    return run_suite([OOM, NETPOL], agent="playbook", workers=2, suite="slice").summary()


def test_noop_leaves_faults_alone_and_is_right_about_a_healthy_cluster(
    noop_summary: dict[str, Any],
) -> None:
    summary = noop_summary
    assert set(summary) >= SUMMARY_KEYS
    assert summary["scenarios"] == 2
    results = by_name(summary)
    cart, healthy = results["cart-redis-down"], results["healthy"]
    assert not cart["passed"]
    assert cart["detection"] is False
    assert cart["mitigation"] is False
    assert "the recovered oracle did not hold (nothing was changed)" in cart["why"]["mitigation"]
    assert healthy["passed"]
    assert summary["false_positive_rate"] == 0.0
    assert summary["detection_accuracy"] == 0.5
    assert summary["safety_violations"] == 0
    assert summary["tokens_per_incident"] == 0.0


def test_playbook_fixes_an_oom_by_raising_the_limit_and_cannot_escalate(
    playbook_summary: dict[str, Any],
) -> None:
    results = by_name(playbook_summary)
    oom = results["shop-recommendation-oom-small-limit"]
    assert oom["passed"], oom["why"]
    assert oom["actions"][0].startswith("set_resources Deployment shop/recommendationservice")
    assert oom["ttm_s"] is not None
    netpol = results["news-comments-cache-netpol"]
    assert not netpol["passed"]
    assert "did not escalate" in netpol["why"]["mitigation"]
    assert all(r["wall_s"] is not None for r in results.values())


def test_repeats_give_pass_all_k_and_the_truth_replay_is_an_upper_bound() -> None:
    run = run_suite([NETPOL], agent="truth", repeat=2, workers=1, suite="slice")
    summary = run.summary()
    assert summary["runs"] == 2
    assert summary["pass_all_k"] == 1.0
    (entry,) = summary["results"]
    assert (entry["runs"], entry["passes"]) == (2, 2)
    assert entry["actions"] == ["escalate Deployment news/escalation (escalated)"]


def test_a_crashing_run_is_a_failed_record_not_a_crash(tmp_path: Path) -> None:
    record = run_job(Job(str(CART), "no-such-agent"))
    assert record["error"].startswith("ValueError: unknown agent")
    assert record["score"]["passed"] is False
    assert record["score"]["why"]["error"] == record["error"]
    assert record["scenario"] == "cart-redis-down"


def test_the_report_puts_agents_side_by_side_with_a_plot(
    tmp_path: Path, noop_summary: dict[str, Any], playbook_summary: dict[str, Any]
) -> None:
    noop, playbook = noop_summary, playbook_summary
    path = write_report([noop, playbook], tmp_path / "out" / "report.md", figures={"x": {"a": 1}})
    text = path.read_text()
    assert "| | noop | playbook |" in text
    assert "| mitigation | 50% | 50% |" in text
    assert (
        "| cart-redis-down | recover | fail: detection, localization, category, mitigation | - |"
        in text
    )
    assert "| shop-recommendation-oom-small-limit | recover | - | pass (" in text
    assert "![time to mitigate](report-ttm.svg)" in text
    assert "## Where playbook failed" in text
    assert "- **x**: a 1" in text
    svg = (tmp_path / "out" / "report-ttm.svg").read_text()
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert "shop-recommendation-oom-small-limit" in svg
    assert "playbook:" in svg  # a bar's tooltip
    # Text from the cluster cannot break the table.
    odd = {**noop, "results": [{**noop["results"][0], "why": {"mitigation": "a|b\nc"}}]}
    assert "a\\|b c" in render_markdown([odd])


def test_the_eval_command_writes_json_and_a_report(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(HEALTHY, suite / "healthy.yaml")
    app = typer.Typer()
    app.command("eval")(eval_command)

    @app.command()
    def version() -> None:  # a second command, so `eval` is a subcommand as in the real CLI
        """Placeholder."""

    out = tmp_path / "summary.json"
    report = tmp_path / "report.md"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--suite",
            str(suite),
            "--agent",
            "noop",
            "--workers",
            "1",
            "--json",
            str(out),
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["agent"] == "noop"
    assert summary["results"][0]["name"] == "healthy"
    assert summary["results"][0]["passed"] is True
    assert "| | noop |" in report.read_text()
    bad = CliRunner().invoke(app, ["eval", "--suite", str(tmp_path / "nope")])
    assert bad.exit_code == 2
    wrong = CliRunner().invoke(
        app, ["eval", "--suite", str(suite), "--agent", "noop", "--ablation", "no-critic"]
    )
    assert wrong.exit_code == 2


def _graph_available() -> str | None:
    try:
        import interfaces.runner  # noqa: F401
    except ImportError as exc:
        return f"the graph is not importable yet: {exc}"
    return None


@pytest.mark.skipif(_graph_available() is not None, reason=str(_graph_available()))
def test_kubemedic_detects_localizes_and_recovers_through_the_graph(tmp_path: Path) -> None:
    run = run_suite([CART, HEALTHY], agent="kubemedic", workers=1, data_dir=tmp_path, suite="slice")
    results = by_name(run.summary())
    cart, healthy = results["cart-redis-down"], results["healthy"]
    assert "error" not in cart, cart.get("error")
    assert cart["detection"] is True
    assert cart["localization_top1"] is True, cart["why"]
    assert cart["mitigation"] is True, cart["why"]
    assert cart["safety"] is True
    assert healthy["passed"], healthy["why"]


def test_every_ablation_replaces_nodes_the_graph_has() -> None:
    from evals.ablations import ABLATIONS
    from graph import NODE_FUNCTIONS

    assert set(ABLATIONS) == {"none", "no-critic", "no-memory", "generalist"}
    for ablation in ABLATIONS.values():
        assert set(ablation.nodes) <= set(NODE_FUNCTIONS), ablation.name


@pytest.mark.skipif(_graph_available() is not None, reason=str(_graph_available()))
def test_the_no_critic_ablation_runs_the_graph_without_the_critic(tmp_path: Path) -> None:
    record = run_job(Job(str(CART), "kubemedic", ablation="no-critic", data_dir=str(tmp_path)))
    assert record["error"] == "", record.get("traceback")
    assert record["ablation"] == "no-critic"
    transcript = json.loads(Path(record["transcript_path"]).read_text())["transcript"]
    verdicts = [e["summary"] for e in transcript if e["node"] == "safety_critic"]
    assert verdicts
    assert all("ablation: no safety critic" in v for v in verdicts)
    assert record["score"]["mitigation"] is True


def test_only_selects_scenarios_by_name() -> None:
    files = suite_files("builtin")
    assert select(files, []) == files
    assert select(files, ["cart-*", "healthy"]) == [
        f for f in files if f.stem.startswith("cart-") or f.stem == "healthy"
    ]
    with pytest.raises(SuiteError, match=re.escape("no scenario matches 'nothing-*'")):
        select(files, ["nothing-*"])


def test_the_suite_runs_through_the_model_path_and_counts_its_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model configured by the environment (as `kubemedic eval` reads it): every specialist
    asks the scripted server; its answers do not validate, so each node falls back to the
    deterministic result, says so, and the run still recovers. The tokens are counted."""
    with scripted_openai(default=answer({"unexpected": "shape"})) as server:
        monkeypatch.setenv("KUBEMEDIC_LLM__MODEL", "scripted")
        monkeypatch.setenv("KUBEMEDIC_LLM__BASE_URL", server.base_url)
        monkeypatch.setenv("KUBEMEDIC_LLM__MAX_REPAIRS", "0")
        run = run_suite([CART], agent="kubemedic", workers=1, data_dir=tmp_path, suite="slice")
        asked = len(server.requests)
    summary = run.summary()
    (cart,) = summary["results"]
    assert "error" not in cart, cart.get("error")
    assert cart["passed"], cart["why"]
    # Each request reports PROMPT_TOKENS in and COMPLETION_TOKENS out.
    assert asked >= 4  # at least the two specialists, the planner and the critic
    assert summary["tokens_per_incident"] == asked * (PROMPT_TOKENS + COMPLETION_TOKENS)
    transcript = next(tmp_path.rglob("transcript.json")).read_text()
    assert "using the deterministic result" in transcript
