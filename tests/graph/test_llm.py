"""The model path end to end: ChatOpenAI over HTTP to a scripted OpenAI-compatible server.

Tool calls run against a live twin through the read tools; the typed answer
comes through structured output; invalid answers are repaired or fall back
to the deterministic result; timeouts and 429s are retried by the client and
then fall back. Nothing here is an in-process fake of the model client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agents.context import AgentContext
from agents.llm import (
    MAX_STRING_LENGTH,
    SpecialistRun,
    aclose_chat_model,
    make_chat_model,
    run_specialist,
)
from settings import Settings
from state import CriticVerdict, TranscriptEntry
from tests.graph.support.context import twin_context
from tests.graph.support.openai_server import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    ScriptedOpenAI,
    answer,
    cut_off,
    scripted_openai,
    slow,
    status,
    tool_calls,
)
from twin.harness import Twin

FALLBACK = CriticVerdict(verdict="reject", reasons=["deterministic fallback"])
GOOD = {"verdict": "approve", "reasons": ["evidence supports scaling redis-cart"], "round": 0}


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    with Twin.start("cart-redis-down") as t:
        t.run_until_alert()
        yield t


def _settings(server: ScriptedOpenAI, **llm: Any) -> Settings:
    return Settings(llm={"model": "scripted", "base_url": server.base_url, **llm})


def _run(
    twin: Twin,
    server: ScriptedOpenAI,
    *,
    tools: list[str] | None = None,
    **llm: Any,
) -> tuple[SpecialistRun[CriticVerdict], AgentContext]:
    settings = _settings(server, **llm)

    async def go(ctx: AgentContext) -> SpecialistRun[CriticVerdict]:
        ctx.chat_model = make_chat_model(settings)
        try:
            return await run_specialist(
                ctx,
                node="safety_critic",
                system_prompt="You review plans.",
                user_prompt="Review this plan: scale redis-cart to 1.",
                tool_names=tools or [],
                output_type=CriticVerdict,
                fallback=FALLBACK,
            )
        finally:
            await aclose_chat_model(ctx.chat_model)

    with twin_context(twin, settings) as ctx:
        return asyncio.run(go(ctx)), ctx


def _kinds(transcript: list[TranscriptEntry]) -> list[str]:
    return [e.kind for e in transcript]


def test_tool_calls_run_against_the_twin_then_structured_answer(twin: Twin) -> None:
    with scripted_openai(
        tool_calls(("list_pods", {"namespace": "shop", "label_selector": "app=cartservice"})),
        answer("cartservice is up; redis-cart has no pods."),
        answer(GOOD),
    ) as server:
        run, _ = _run(twin, server, tools=["list_pods", "list_workloads"])
        requests = server.requests
    assert not run.fell_back
    assert run.result == CriticVerdict.model_validate(GOOD)
    assert run.tool_calls == 1
    assert run.tokens.input == 3 * PROMPT_TOKENS
    assert run.tokens.output == 3 * COMPLETION_TOKENS
    # Only the named read tools were bound, and max_tokens is sent (llama.cpp ignores
    # max_completion_tokens).
    first = requests[0]
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["list_pods", "list_workloads"]
    assert first["max_tokens"] == Settings().llm.max_tokens
    assert "untrusted" in first["messages"][0]["content"]
    # The tool ran on the twin: its result (cartservice's pods) went back as a tool message.
    tool_msg = next(m for m in requests[1]["messages"] if m["role"] == "tool")
    assert tool_msg["tool_call_id"] == "call_1_0"
    result = json.loads(tool_msg["content"])
    assert result["tool"] == "list_pods"
    assert result["status"] == "success"
    assert "cartservice-" in tool_msg["content"]
    # The answer was asked for through a JSON schema with bounded strings, without tools.
    final = requests[2]
    assert "tools" not in final
    schema = final["response_format"]["json_schema"]["schema"]
    assert final["response_format"]["type"] == "json_schema"
    items = schema["properties"]["reasons"]["items"]
    assert items["maxLength"] == MAX_STRING_LENGTH
    assert _kinds(run.transcript) == ["observation"]
    assert run.transcript[0].data["tool"] == "list_pods"


def test_invalid_json_is_repaired_with_the_error(twin: Twin) -> None:
    with scripted_openai(answer('{"verdict": "approve", "reasons": ['), answer(GOOD)) as server:
        run, _ = _run(twin, server)
        requests = server.requests
    assert not run.fell_back
    assert run.result.verdict == "approve"
    assert len(requests) == 2
    repair = requests[1]["messages"][-1]["content"]
    assert repair.startswith("That answer is invalid: not valid JSON")
    # The invalid answer is echoed back so the model sees what it got wrong.
    assert requests[1]["messages"][-2]["content"].startswith('{"verdict": "approve"')
    assert _kinds(run.transcript) == ["note"]


def test_off_schema_answer_is_repaired_with_the_validation_error(twin: Twin) -> None:
    with scripted_openai(answer({"verdict": "maybe"}), answer(GOOD)) as server:
        run, _ = _run(twin, server)
        repair = server.requests[1]["messages"][-1]["content"]
    assert not run.fell_back
    assert "verdict:" in repair
    assert "'approve', 'revise' or 'reject'" in repair


def test_an_answer_cut_at_max_tokens_is_repaired_then_falls_back(twin: Twin) -> None:
    """finish_reason "length": the client refuses to parse it; that is an invalid answer
    (its tokens count), repaired with the reason, and the fallback when it persists."""
    with scripted_openai(cut_off('{"verdict": "approve", "reasons": ["a'), answer(GOOD)) as server:
        run, _ = _run(twin, server, max_tokens=64)
        repair = server.requests[1]["messages"][-1]["content"]
    assert not run.fell_back
    assert run.result.verdict == "approve"
    assert "cut off at the max_tokens limit (64 tokens)" in repair
    assert run.tokens.input == 2 * PROMPT_TOKENS
    assert run.tokens.output == 2 * COMPLETION_TOKENS
    with scripted_openai(cut_off('{"verdict'), cut_off('{"verd')) as server:
        run, _ = _run(twin, server, max_repairs=1)
        assert server.remaining == 0
    assert run.fell_back
    assert run.result == FALLBACK
    assert "cut off at the max_tokens limit" in run.transcript[-1].summary


def test_persistently_invalid_output_falls_back_and_says_so(twin: Twin) -> None:
    with scripted_openai(answer("not json at all"), answer({"verdict": 3})) as server:
        run, _ = _run(twin, server, max_repairs=1)
        assert server.remaining == 0
    assert run.fell_back
    assert run.result == FALLBACK
    assert _kinds(run.transcript) == ["note", "note", "fallback"]
    line = run.transcript[-1]
    assert line.node == "safety_critic"
    assert "deterministic result" in line.summary
    assert "did not validate as CriticVerdict" in line.summary
    assert run.tokens.input == 2 * PROMPT_TOKENS


def test_timeout_falls_back(twin: Twin) -> None:
    with scripted_openai(slow(1.0, answer(GOOD))) as server:
        run, _ = _run(twin, server, timeout_s=0.2, max_retries=0)
    assert run.fell_back
    assert run.result == FALLBACK
    assert "TimeoutError" in run.reason
    assert run.transcript[-1].kind == "fallback"


def test_429_is_retried_by_the_client(twin: Twin) -> None:
    with scripted_openai(status(429), answer(GOOD)) as server:
        run, _ = _run(twin, server, max_retries=1)
        assert len(server.requests) == 2
    assert not run.fell_back
    assert run.result.verdict == "approve"


def test_429_after_retries_falls_back(twin: Twin) -> None:
    with scripted_openai(status(429), status(429)) as server:
        run, _ = _run(twin, server, max_retries=1)
        assert len(server.requests) == 2
    assert run.fell_back
    assert "RateLimitError" in run.reason


def test_tool_call_budget_and_unbound_tools(twin: Twin) -> None:
    with scripted_openai(
        tool_calls(
            ("scale", {"namespace": "shop", "name": "redis-cart", "replicas": 1}),
            ("list_workloads", {"namespace": "shop"}),
            ("list_pods", {"namespace": "shop"}),
        ),
        answer(GOOD),
    ) as server:
        run, _ = _run(twin, server, tools=["list_pods", "list_workloads"], max_tool_calls=1)
        requests = server.requests
    writes = [w for w in twin.write_log if not w.dry_run]
    assert writes == []
    assert not run.fell_back
    assert run.tool_calls == 1
    answers = [m["content"] for m in requests[1]["messages"] if m["role"] == "tool"]
    assert answers[0].startswith("not run: 'scale' is not one of your tools")
    assert answers[1].startswith('{"status":"success","tool":"list_workloads"')
    assert answers[1].endswith("more characters cut]")
    assert answers[2].startswith("not run: the budget of 1 tool calls is spent")


def test_a_write_action_cannot_be_bound(twin: Twin) -> None:
    with scripted_openai() as server:
        with pytest.raises(ValueError, match="'scale' is not a read tool"):
            _run(twin, server, tools=["scale"])
        assert server.requests == []


def test_no_model_means_the_fallback() -> None:
    assert make_chat_model(Settings()) is None


def test_function_calling_answers(twin: Twin) -> None:
    """With method function_calling the answer arrives as a call of a tool named for the type."""
    with scripted_openai(tool_calls(("CriticVerdict", GOOD))) as server:
        run, _ = _run(twin, server, structured_output_method="function_calling")
        request = server.requests[0]
    assert not run.fell_back
    assert run.result.verdict == "approve"
    (tool,) = request["tools"]
    assert tool["function"]["name"] == "CriticVerdict"
    assert request["tool_choice"]["function"]["name"] == "CriticVerdict"


def test_json_mode_answers_with_the_schema_in_the_prompt(twin: Twin) -> None:
    with scripted_openai(answer(GOOD)) as server:
        run, _ = _run(twin, server, structured_output_method="json_mode")
        request = server.requests[0]
    assert not run.fell_back
    assert request["response_format"] == {"type": "json_object"}
    assert '"verdict"' in request["messages"][-1]["content"]


def test_a_fenced_json_answer_is_read(twin: Twin) -> None:
    with scripted_openai(answer("```json\n" + json.dumps(GOOD) + "\n```")) as server:
        run, _ = _run(twin, server)
    assert not run.fell_back
    assert run.result.verdict == "approve"


def test_a_model_without_tools_answers_from_the_prompt(twin: Twin) -> None:
    """A chat model that cannot bind tools (LangChain's fake chat model) still gives its answer."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    async def go(ctx: AgentContext) -> SpecialistRun[CriticVerdict]:
        ctx.chat_model = FakeListChatModel(responses=[json.dumps(GOOD)])
        return await run_specialist(
            ctx,
            node="safety_critic",
            system_prompt="You review plans.",
            user_prompt="Review.",
            tool_names=["list_pods"],
            output_type=CriticVerdict,
            fallback=FALLBACK,
        )

    with twin_context(twin, Settings(llm={"structured_output_method": "json_mode"})) as ctx:
        run = asyncio.run(go(ctx))
    assert [e.kind for e in run.transcript] == ["note"]
    assert "takes no tools" in run.transcript[0].summary
    assert not run.fell_back
    assert run.result.verdict == "approve"
