"""The specialists' model path, end to end against a scripted OpenAI-compatible server.

The deterministic result is computed first and is the fallback; the model's
answer is validated against the evidence: objects the evidence does not name,
evidence ids that do not exist and actions that do not validate are dropped and
reported in the transcript. Prompts carry templates and summaries, never raw
logs, and the model is bound to read tools only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agents.dependency_tracer import dependency_tracer
from agents.llm import aclose_chat_model, make_chat_model
from agents.log_analyst import log_analyst
from agents.planner import planner
from settings import Settings
from state import IncidentState
from tests.agents.support import Run, merge
from tests.graph.support.openai_server import ScriptedOpenAI, answer, scripted_openai, tool_calls


@pytest.fixture(scope="module")
def investigated() -> Iterator[Run]:
    """billing-db-bad-tag after the deterministic specialists and planner (no model)."""
    run = Run.start("billing-db-bad-tag")
    asyncio.run(run.investigate())
    yield run
    run.close()


def _with_model(
    run: Run, server: ScriptedOpenAI, node: Any, state: IncidentState
) -> dict[str, Any]:
    settings = Settings(
        llm={"model": "scripted", "base_url": server.base_url, "api_key": "test", "max_retries": 0}
    )

    async def go() -> dict[str, Any]:
        run.ctx.settings = settings
        run.ctx.chat_model = make_chat_model(settings)
        try:
            result: dict[str, Any] = await node(state, run.runtime)
            return result
        finally:
            await aclose_chat_model(run.ctx.chat_model)
            run.ctx.chat_model = None
            run.ctx.settings = Settings()

    return asyncio.run(go())


def _ids(run: Run, prefix: str) -> list[str]:
    return [e.id for e in run.state.evidence if e.id.startswith(prefix)]


def _postgres_pod(run: Run) -> str:
    for e in run.state.evidence:
        if e.signal == "image_pull_error" and e.data.get("pod"):
            return str(e.data["pod"])
    raise AssertionError("no image pull evidence")


def test_log_analyst_model_answer_is_validated(investigated: Run) -> None:
    run = investigated
    base = IncidentState(input=run.state.input, incident=run.state.incident)
    log_ids = _ids(run, "log-")
    reply = {
        "workloads": [
            {
                "workload": {"kind": "Deployment", "namespace": "pay", "name": "billing"},
                "templates": [
                    {
                        "template": "ERROR GET /invoices 500: query failed: <*>",
                        "count": 40,
                        "level": "error",
                        "dependency": "Service/pay/postgres",
                    },
                    {"template": "x", "count": 1, "dependency": "Service/pay/made-up"},
                ],
                "summary": "billing cannot reach postgres",
            },
            {
                "workload": {"kind": "Deployment", "namespace": "pay", "name": "ghost"},
                "templates": [],
            },
        ],
        "summary": "postgres is down; billing's errors are a symptom",
        "evidence_ids": [*log_ids[:1], "log-999"],
    }
    with scripted_openai(
        tool_calls(("get_pod_logs", {"namespace": "pay", "pod": _postgres_pod(run)})),
        answer("postgres cannot pull its image; billing fails because of it."),
        answer(reply),
    ) as server:
        update = _with_model(run, server, log_analyst, base)
        requests = list(server.requests)
    findings = update["log_findings"]
    assert [w.workload.name for w in findings.workloads] == ["billing"]
    assert [t.dependency for t in findings.workloads[0].templates] == ["Service/pay/postgres", None]
    assert findings.evidence_ids == log_ids[:1]
    assert findings.summary == "postgres is down; billing's errors are a symptom"
    notes = [t.summary for t in update["transcript"] if t.kind == "note"]
    assert any("ghost" in n and "log-999" in n and "made-up" in n for n in notes)
    assert any(
        t.kind == "observation" and "get_pod_logs" in t.summary for t in update["transcript"]
    )
    assert update["tokens"].input > 0
    # Evidence stays the deterministic procedure's: a model cannot add facts.
    assert all(e.agent == "log_analyst" for e in update["evidence"])
    # Bound only to read tools; the prompt carries templates, not raw timestamped log lines.
    bound = {t["function"]["name"] for t in requests[0]["tools"]}
    assert bound == {"get_pod_logs", "list_events", "list_pods", "describe_pod"}
    prompt = requests[0]["messages"][1]["content"]
    assert "Drain3" in prompt
    assert "2026-07-11T" not in prompt
    assert "untrusted" in requests[0]["messages"][0]["content"]


def test_tracer_model_candidates_must_be_objects_the_evidence_names(investigated: Run) -> None:
    run = investigated
    base = IncidentState(input=run.state.input, incident=run.state.incident)
    dep_ids = _ids(run, "dep-")
    reply = {
        "candidates": [
            {"subject": {"kind": "Deployment", "namespace": "pay", "name": "ghost"}, "score": 0.99},
            {
                "subject": {"kind": "Deployment", "namespace": "pay", "name": "postgres"},
                "score": 0.9,
                "reasons": ["its image cannot be pulled"],
                "evidence_ids": [dep_ids[0], "dep-999"],
            },
        ],
        "summary": "postgres is the origin",
    }
    with scripted_openai(answer("done reading"), answer(reply)) as server:
        update = _with_model(run, server, dependency_tracer, base)
    f = update["dependency_findings"]
    assert [c.subject.name for c in f.candidates] == ["postgres"]
    assert f.candidates[0].evidence_ids == [dep_ids[0]]
    assert f.edges  # the graph is kept as read
    notes = " ".join(t.summary for t in update["transcript"] if t.kind == "note")
    assert "ghost" in notes
    assert "dep-999" in notes


def test_planner_model_plan_drops_what_does_not_validate(investigated: Run) -> None:
    run = investigated
    state = run.state
    evidence = {e.signal: e.id for e in state.evidence}
    reply = {
        "hypotheses": [
            {
                "id": "h1",
                "root_cause": {"kind": "Deployment", "namespace": "pay", "name": "postgres"},
                "cause_kind": "image_pull",
                "category": {"system_level": "Application", "fault_type": "Operation Error"},
                "confidence": 0.9,
                "statement": "postgres was re-applied with a tag that does not exist",
                "evidence_ids": [evidence["image_pull_error"], evidence["rollout_changed"]],
            },
            {
                "id": "h2",
                "root_cause": {"kind": "Deployment", "namespace": "pay", "name": "ghost"},
                "cause_kind": "crash_loop",
                "category": {"system_level": "Application", "fault_type": "Code Defect"},
                "confidence": 0.5,
                "statement": "invented",
                "evidence_ids": [],
            },
        ],
        "actions": [
            {
                "action": "set_image",
                "target": {"kind": "Deployment", "namespace": "pay", "name": "postgres"},
                "params": {"container": "postgres", "image": "postgres:16.4"},
                "hypothesis_id": "h1",
                "evidence_ids": [evidence["rollout_changed"]],
                "expected_effect": "postgres runs 16.4",
                "verification": "postgres ready",
            },
            {
                "action": "delete_namespace",
                "target": {"kind": "Deployment", "namespace": "pay", "name": "postgres"},
                "hypothesis_id": "h1",
                "evidence_ids": [],
                "expected_effect": "x",
                "verification": "y",
            },
            {
                "action": "restart",
                "target": {"kind": "Deployment", "namespace": "pay", "name": "ghost"},
                "hypothesis_id": "h1",
                "evidence_ids": [evidence["image_pull_error"]],
                "expected_effect": "x",
                "verification": "y",
            },
        ],
        "reasoning": "Roll postgres back to the image that worked.",
    }
    with scripted_openai(answer("done reading"), answer(reply)) as server:
        update = _with_model(run, server, planner, state)
    plan = update["plan"]
    assert [h.root_cause.name for h in plan.hypotheses] == ["postgres"]
    assert [(a.action, a.target.name) for a in plan.actions] == [("set_image", "postgres")]
    assert len([r for r in plan.rejected if r.startswith("model action")]) == 2
    assert plan.reasoning == "Roll postgres back to the image that worked."
    notes = " ".join(t.summary for t in update["transcript"] if t.kind == "note")
    assert "ghost" in notes


def test_planner_falls_back_to_the_deterministic_plan_on_garbage(investigated: Run) -> None:
    run = investigated
    deterministic = run.plans[0]
    with scripted_openai(
        answer("done reading"), answer("not json {"), answer("still not json")
    ) as server:
        update = _with_model(run, server, planner, run.state)
        asked = len(server.requests)
    plan = update["plan"]
    assert [(a.action, str(a.target)) for a in plan.actions] == [
        (a.action, str(a.target)) for a in deterministic.actions
    ]
    assert any(t.kind == "fallback" for t in update["transcript"])
    assert asked == 3  # the investigation, the answer and one repair (llm.max_repairs)


def test_a_model_cannot_make_a_healthy_cluster_write() -> None:
    run = Run.start("healthy")
    try:
        asyncio.run(run.specialists())
        evidence_id = run.state.evidence[0].id if run.state.evidence else "dep-1"
        subject = run.state.evidence[0].subject if run.state.evidence else None
        reply = {
            "hypotheses": [
                {
                    "id": "h1",
                    "root_cause": subject.model_dump()
                    if subject
                    else {"kind": "Deployment", "namespace": "shop", "name": "checkoutservice"},
                    "cause_kind": "hang",
                    "category": {"system_level": "Application", "fault_type": "Code Defect"},
                    "confidence": 0.9,
                    "statement": "the alert says so",
                    "evidence_ids": [evidence_id],
                },
            ],
            "actions": [
                {
                    "action": "restart",
                    "target": {
                        "kind": "Deployment",
                        "namespace": "shop",
                        "name": "checkoutservice",
                    },
                    "hypothesis_id": "h1",
                    "evidence_ids": [evidence_id],
                    "expected_effect": "x",
                    "verification": "y",
                },
            ],
            "reasoning": "restart it",
        }
        with scripted_openai(answer("done reading"), answer(json.dumps(reply))) as server:
            update = _with_model(run, server, planner, run.state)
        run.state = merge(run.state, update)
    finally:
        run.close()
    assert update["plan"].actions == []
    assert run.state.detected_at is None
