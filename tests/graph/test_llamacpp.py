"""The model path's wire format against a real engine: llama.cpp's server with SmolLM2-135M.

The model is far too small to reason, so only the format is checked: tool
calls come back as OpenAI tool calls that our read tools can run (and the
tool result goes back in the next request), `max_tokens` is honoured (the
server ignores max_completion_tokens), and a json_schema answer, bounded by
the maxLength that answer_schema adds, parses and validates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Annotated, Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field

from agents.context import AgentContext
from agents.llm import aclose_chat_model, answer_schema, make_chat_model, run_specialist, tool_specs
from evals.local_model import llama_server, missing
from settings import Settings
from tests.graph.support.context import twin_context
from twin.harness import Twin

# A 135M model on two cores answers slowly: these tests get more than the default 120 s.
pytestmark = [pytest.mark.llamacpp, pytest.mark.slow, pytest.mark.timeout(420)]

WHY = missing()
if WHY:
    pytest.skip(WHY, allow_module_level=True)


class Verdict(BaseModel):
    """A tiny answer type: one choice and at most two short reasons."""

    verdict: Literal["approve", "reject"]
    reasons: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=2)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with llama_server() as url:
        yield url


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    with Twin.start("cart-redis-down") as t:
        t.run_until_alert()
        yield t


def settings(base_url: str, **llm: object) -> Settings:
    return Settings(
        # A generous timeout: on a busy two-core machine a request can take a minute.
        llm={"model": "smollm2", "base_url": base_url, "timeout_s": 300, "max_retries": 0, **llm}
    )


def test_tool_call_round_trip(base_url: str, twin: Twin) -> None:
    """A tool call comes back as an OpenAI tool call; its result goes back in the next turn.

    The conversation starts with one worked example (a call and its result): a 135M model
    does not call tools from a description alone, but it follows an example.
    """
    s = settings(base_url, max_tokens=40)

    async def go(ctx: AgentContext) -> tuple[AIMessage, AIMessage]:
        model = make_chat_model(s)
        assert model is not None
        try:
            bound = model.bind_tools(tool_specs(["list_hpas"]), tool_choice="required")
            example = {"name": "list_hpas", "args": {"namespace": "default"}, "id": "call_1"}
            messages = [
                SystemMessage(content="You are an SRE. Answer every question with a tool call."),
                HumanMessage(content="List the HPAs in namespace default."),
                AIMessage(content="", tool_calls=[example]),
                ToolMessage(content='{"status": "no_data"}', tool_call_id="call_1"),
                HumanMessage(content="List the HPAs in namespace shop."),
            ]
            first = await bound.ainvoke(messages)
            assert isinstance(first, AIMessage)
            assert first.tool_calls, f"no tool call: {first.content!r}"
            call = first.tool_calls[0]
            result = await ctx.toolbox.acall(call["name"], call["args"])
            messages += [
                first,
                ToolMessage(content=result.model_dump_json(), tool_call_id=call["id"]),
            ]
            # The same tools offered again, so the only new input is the call and its result.
            second = await model.bind_tools(tool_specs(["list_hpas"])).ainvoke(messages)
            assert isinstance(second, AIMessage)
            return first, second
        finally:
            await aclose_chat_model(model)

    with twin_context(twin, s) as ctx:
        first, second = asyncio.run(go(ctx))
    (call,) = first.tool_calls
    assert call["name"] == "list_hpas"
    assert isinstance(call["args"], dict)
    assert set(call["args"]) <= {"namespace", "name", "label_selector", "limit"}
    assert call["id"]
    assert first.response_metadata.get("finish_reason") == "tool_calls"
    # The call and the tool's result went back, and the server answered the next turn.
    assert second.usage_metadata is not None
    assert first.usage_metadata is not None
    assert second.usage_metadata["input_tokens"] > first.usage_metadata["input_tokens"]


def test_max_tokens_is_honoured(base_url: str) -> None:
    s = settings(base_url, max_tokens=5)

    async def go() -> AIMessage:
        model = make_chat_model(s)
        assert model is not None
        try:
            reply = await model.ainvoke("Write a long story about Kubernetes.")
            assert isinstance(reply, AIMessage)
            return reply
        finally:
            await aclose_chat_model(model)

    reply = asyncio.run(go())
    assert reply.usage_metadata is not None
    assert 0 < reply.usage_metadata["output_tokens"] <= 5
    assert reply.response_metadata.get("finish_reason") == "length"


def test_json_schema_answer_validates(base_url: str) -> None:
    schema = answer_schema(Verdict)
    assert schema["properties"]["reasons"]["items"]["maxLength"] > 0

    async def go() -> object:
        s = settings(base_url, max_tokens=120, max_repairs=0)
        model = make_chat_model(s)
        assert model is not None
        try:
            structured = model.with_structured_output(
                schema, method="json_schema", include_raw=True
            )
            out = await structured.ainvoke("Review this plan: scale redis-cart to 1 replica.")
            raw = out["raw"]  # type: ignore[index]
            assert isinstance(raw, AIMessage)
            return json.loads(str(raw.content))
        finally:
            await aclose_chat_model(model)

    verdict = Verdict.model_validate(asyncio.run(go()))
    assert verdict.verdict in ("approve", "reject")


def test_run_specialist_end_to_end(base_url: str, twin: Twin) -> None:
    """The whole helper on the real engine: a typed result, tokens counted, nothing invalid."""
    s = settings(base_url, max_tokens=120, max_tool_calls=1, max_repairs=1)
    fallback = Verdict(verdict="reject", reasons=["fallback"])

    async def go(ctx: AgentContext) -> object:
        ctx.chat_model = make_chat_model(s)
        try:
            return await run_specialist(
                ctx,
                node="safety_critic",
                system_prompt="You review plans. Answer approve or reject.",
                user_prompt="Plan: scale Deployment shop/redis-cart from 0 to 1 replica.",
                tool_names=[],
                output_type=Verdict,
                fallback=fallback,
            )
        finally:
            await aclose_chat_model(ctx.chat_model)

    with twin_context(twin, s) as ctx:
        run = asyncio.run(go(ctx))
    assert not run.fell_back, run.reason  # type: ignore[attr-defined]
    assert isinstance(run.result, Verdict)  # type: ignore[attr-defined]
    assert run.tokens.input > 0  # type: ignore[attr-defined]
    assert run.tokens.output > 0  # type: ignore[attr-defined]


def test_local_model_runs_a_command_pointed_at_the_served_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`python -m evals.local_model CMD...`: CMD sees the endpoint and the eval's bounds, and a
    KUBEMEDIC_LLM__ setting of the caller's wins over the default bound."""
    import sys

    from evals.local_model import MODEL_NAME, main

    check = (
        "import os, sys, urllib.request\n"
        "env = os.environ\n"
        "assert env['KUBEMEDIC_LLM__MODEL'] == sys.argv[1], env['KUBEMEDIC_LLM__MODEL']\n"
        "assert env['KUBEMEDIC_LLM__MAX_TOKENS'] == '99'\n"
        "assert env['KUBEMEDIC_LLM__MAX_TOOL_CALLS'] == '1'\n"
        "with urllib.request.urlopen(env['KUBEMEDIC_LLM__BASE_URL'] + '/models') as r:\n"
        "    assert r.status == 200\n"
    )
    monkeypatch.setenv("KUBEMEDIC_LLM__MAX_TOKENS", "99")
    assert main([sys.executable, "-c", check, MODEL_NAME]) == 0
    assert main([sys.executable, "-c", "raise SystemExit(3)"]) == 3
