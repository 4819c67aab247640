"""`kubemedic incidents list|show` and `kubemedic postmortem`, run as a person would."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agents.learner import learner
from interfaces.incidents_cmd import incidents_app, postmortem_cmd
from memory.inprocess import InProcessMemory
from memory.redis_store import RedisMemory
from state import IncidentState
from tests.memory.conftest import unique_prefix
from tests.memory.factory import T0, FixedClock, cascade_state, oom_state, runtime

app = typer.Typer()
app.add_typer(incidents_app, name="incidents")
app.command("postmortem")(postmortem_cmd)
runner = CliRunner()


def _finish(state: IncidentState, data_dir: Path, minutes: int = 5) -> None:
    """Run the learner, which writes the transcript, as the graph's last node does."""
    clock = FixedClock(T0 + timedelta(minutes=minutes))
    asyncio.run(learner(state, runtime(InProcessMemory(), data_dir, clock)))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    _finish(oom_state("inc-oom"), tmp_path, minutes=5)
    _finish(cascade_state("inc-cascade"), tmp_path, minutes=9)
    return tmp_path


#: No Redis from the machine's environment: these tests choose the source themselves.
NO_REDIS: dict[str, str | None] = {"KUBEMEDIC_REDIS__URL": None}


def test_list_without_redis_reads_the_transcripts(data_dir: Path) -> None:
    result = runner.invoke(
        app, ["incidents", "list", "--data-dir", str(data_dir), "--json"], env=NO_REDIS
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert "no Redis configured" in doc["source"]
    assert [r["incident_id"] for r in doc["incidents"]] == ["inc-cascade", "inc-oom"]
    assert doc["incidents"][0]["cause_kind"] == "scaled_to_zero"

    table = runner.invoke(app, ["incidents", "list", "--data-dir", str(data_dir)], env=NO_REDIS)
    assert table.exit_code == 0
    assert "inc-cascade" in table.output
    assert "scaled_to_zero" in table.output


def test_show_one_incident(data_dir: Path) -> None:
    result = runner.invoke(
        app, ["incidents", "show", "inc-oom", "--data-dir", str(data_dir)], env=NO_REDIS
    )
    assert result.exit_code == 0, result.output
    assert "root cause: oom in Deployment/shop/cartservice" in result.output
    assert "set_resources Deployment/shop/cartservice" in result.output
    assert "applied, recovered in 2.0 min" in result.output
    assert "kubemedic postmortem inc-oom" in result.output

    missing = runner.invoke(
        app, ["incidents", "show", "nope", "--data-dir", str(data_dir)], env=NO_REDIS
    )
    assert missing.exit_code == 1
    assert "no incident 'nope'" in missing.output

    bad = runner.invoke(app, ["incidents", "show", "../etc", "--data-dir", str(data_dir)])
    assert bad.exit_code == 2


def test_list_and_show_over_redis(redis_url: str, tmp_path: Path) -> None:
    prefix = unique_prefix()

    async def learn() -> None:
        store = RedisMemory(redis_url, prefix=prefix)
        try:
            for i, name in enumerate(("a", "b")):
                clock = FixedClock(T0 + timedelta(minutes=5 + i))
                await learner(oom_state(f"inc-{name}"), runtime(store, tmp_path, clock))
        finally:
            await store.aclose()

    async def forget() -> None:
        store = RedisMemory(redis_url, prefix=prefix)
        await store.delete_all()
        await store.aclose()

    asyncio.run(learn())
    try:
        env = {"KUBEMEDIC_REDIS__URL": redis_url, "KUBEMEDIC_REDIS__KEY_PREFIX": prefix}
        result = runner.invoke(app, ["incidents", "list", "--json"], env=env)
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["source"].startswith("redis redis://127.0.0.1:6379")
        assert [r["incident_id"] for r in doc["incidents"]] == ["inc-b", "inc-a"]

        shown = runner.invoke(app, ["incidents", "show", "inc-a", "--json"], env=env)
        assert shown.exit_code == 0, shown.output
        stats = json.loads(shown.output)["stats"]
        assert stats == [
            {
                "cause_kind": "oom",
                "action": "set_resources",
                "successes": 2,
                "failures": 0,
                "mean_time_to_recover_s": 120.0,
            }
        ]
    finally:
        asyncio.run(forget())


def test_list_reports_a_redis_that_is_down(tmp_path: Path) -> None:
    env = {"KUBEMEDIC_REDIS__URL": "redis://127.0.0.1:1/0"}
    result = runner.invoke(app, ["incidents", "list", "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code == 1
    assert "redis at redis://127.0.0.1:1/0 failed to list incidents" in result.output


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_postmortem_in_each_format(data_dir: Path, fmt: str) -> None:
    out = data_dir / f"pm.{fmt}"
    result = runner.invoke(
        app,
        [
            "postmortem",
            "inc-cascade",
            "--format",
            fmt,
            "--out",
            str(out),
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    if fmt == "md":
        assert text.startswith("# Postmortem: FrontendErrorBudgetBurn in shop")
    elif fmt == "json":
        assert json.loads(text)["root_cause"]["component"] == "Deployment/shop/redis-cart"
    else:
        assert '<svg id="service-graph"' in text


def test_postmortem_to_stdout_and_from_a_path(data_dir: Path) -> None:
    path = data_dir / "incidents" / "inc-oom" / "transcript.json"
    result = runner.invoke(app, ["postmortem", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["incident_id"] == "inc-oom"

    missing = runner.invoke(app, ["postmortem", "nope", "--data-dir", str(data_dir)])
    assert missing.exit_code == 1
    assert "no transcript at" in missing.output

    wrong = runner.invoke(
        app, ["postmortem", "inc-oom", "--format", "pdf", "--data-dir", str(data_dir)]
    )
    assert wrong.exit_code == 2
