"""A scripted model that proposes forbidden actions, and a planner node that asks it for a plan.

`RoutedOpenAI` is the graph tests' scripted OpenAI-compatible server
(tests/graph/support/openai_server.py) answering by what is asked rather than
in a fixed order: a request that binds tools gets a plain answer (the
investigation ends), a structured answer gets whatever `route` says for the
answer's schema (by its title: "ModelPlan", "CriticAnswer", ...).

`model_planner` is a planner node that plans through `run_specialist` with
that server: the model's actions arrive as JSON, each is validated with
`parse_action`, and one that does not validate is dropped and reported, as
SAFETY.md says. It stands in for the planner's model path so that the graph
can be driven by a model that proposes anything an attacker would want.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from agents.context import AgentContext
from agents.llm import run_specialist
from agents.transcript import entry
from state import ActionRejected, Hypothesis, IncidentState, Plan, parse_action
from tests.graph.support.openai_server import ScriptedOpenAI, Step, answer

#: (the answer's schema title, the request body) -> the step to answer with.
Route = Callable[[str, dict[str, Any]], Step]


class ModelPlan(BaseModel):
    """What the planner's model answers: hypotheses, and actions as raw JSON to be validated."""

    hypotheses: list[Hypothesis] = Field(default_factory=list)
    actions: list[dict[str, Any]] = Field(default_factory=list)
    reasoning: str = ""


def schema_title(body: dict[str, Any]) -> str:
    """The title of the structured answer a request asks for ("" when it asks for none)."""
    fmt = body.get("response_format") or {}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") or {}
        return str(schema.get("title") or spec.get("name") or "")
    for tool in body.get("tools") or []:
        if body.get("tool_choice") and tool.get("function", {}).get("name"):
            return str(tool["function"]["name"])
    return ""


class RoutedOpenAI(ScriptedOpenAI):
    """The scripted server, answering each request by what it asks for."""

    def __init__(self, route: Route) -> None:
        super().__init__([])
        self.route = route
        self.titles: list[str] = []

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        title = schema_title(body)
        if body.get("tools") and not title:
            step = answer("I have what I need.")
        else:
            step = self.route(title, body)
        with self._lock:
            self.titles.append(title or "(tools)")
        self.push(step)
        return await super()._handle(request)


@contextmanager
def routed_openai(route: Route) -> Iterator[RoutedOpenAI]:
    server = RoutedOpenAI(route)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def model_planner(state: IncidentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Plan with the model; validate each action; drop and report the ones that do not parse."""
    ctx = runtime.context
    revision = state.plan.revision + 1 if state.plan is not None else 0
    evidence = [
        {"id": e.id, "signal": e.signal, "subject": str(e.subject), "summary": e.summary[:300]}
        for e in state.evidence[:40]
    ]
    run = await run_specialist(
        ctx,
        node="planner",
        system_prompt="You plan the recovery of a Kubernetes incident as typed actions.",
        user_prompt=json.dumps({"evidence": evidence}),
        tool_names=[],
        output_type=ModelPlan,
        fallback=ModelPlan(),
    )
    actions = []
    rejected = []
    lines = list(run.transcript)
    for raw in run.result.actions:
        try:
            actions.append(parse_action(raw))
        except ActionRejected as exc:
            rejected.append(str(exc))
            lines.append(entry(ctx, "planner", "error", f"proposed action dropped: {exc}"))
    plan = Plan(
        hypotheses=run.result.hypotheses,
        actions=actions,
        reasoning=run.result.reasoning,
        revision=revision,
        rejected=rejected,
    )
    lines.append(
        entry(
            ctx,
            "planner",
            "proposal",
            f"plan revision {revision}: "
            + (", ".join(f"{a.action} {a.target}" for a in actions) or "no action"),
            actions=[a.model_dump(mode="json") for a in actions],
            rejected=rejected,
        )
    )
    return {"plan": plan, "transcript": lines, "tokens": run.tokens}
