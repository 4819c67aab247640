"""The whole graph with a model configured: a scripted OpenAI-compatible server on loopback.

The model answers nothing usable (text where JSON is due), so every node that
asks it falls back to its deterministic result and says so; the incident is
still handled, and the model's tokens are counted in the report.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from interfaces.runner import approve_all, run_scenario
from settings import Settings
from tests.graph.support.openai_server import answer, scripted_openai


def test_graph_with_a_model_that_never_answers_in_json(tmp_path: Path) -> None:
    with scripted_openai(
        default=answer("I think redis is down, but I will not say it in JSON.")
    ) as server:
        settings = Settings(
            data_dir=tmp_path,
            llm={"model": "scripted", "base_url": server.base_url, "max_retries": 0},
        )
        run = asyncio.run(
            run_scenario("cart-redis-down", settings=settings, approver=approve_all())
        )
        requests = list(server.requests)
    report = run.report
    assert requests, "no node asked the model"
    assert report["recovered"] is True
    assert report["score"]["passed"] is True
    assert report["tokens"]["input"] > 0
    assert report["tokens"]["output"] > 0
    fallbacks = [line for line in run.state.transcript if line.kind == "fallback"]
    assert fallbacks
    assert all("deterministic result" in line.summary for line in fallbacks)
    # Every request asked for the answer's schema or offered read tools only.
    for body in requests:
        for tool in body.get("tools", []):
            assert tool["function"]["name"] not in {"scale", "restart", "rollback", "delete_pod"}
    transcript = json.loads(Path(str(report["transcript_path"])).read_text())
    assert transcript["tokens"]["input"] == report["tokens"]["input"]
