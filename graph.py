"""The incident graph: nodes, edges and routers, nothing else (DESIGN.md, "The loop").

    START -> intake -> recall -> (log_analyst | dependency_tracer) -> planner
      -> safety_critic -> approve: policy_gate | revise: planner (bounded) | reject: learner
      policy_gate -> needs a person: approval | allowed: executor | nothing to do: learner
      approval -> executor | learner
      executor -> verifier (something was applied) | learner
      verifier -> recovered: learner | not yet: planner (bounded) | worse: executor (undo)
      learner -> END

Every node receives the run's AgentContext as `runtime.context`; one thread
per incident (thread_id = incident id) in the checkpointer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agents.approval import approval
from agents.context import AgentContext
from agents.dependency_tracer import dependency_tracer
from agents.executor import executor
from agents.intake import intake
from agents.learner import learner
from agents.log_analyst import log_analyst
from agents.planner import planner
from agents.policy_gate import policy_gate
from agents.recall import recall
from agents.safety_critic import safety_critic
from agents.verifier import verifier
from policies.budgets import budget_exceeded, writes_done
from state import IncidentState

#: Revisions the safety critic may ask for on one plan before the plan is reported, not run.
MAX_CRITIC_REVISIONS = 2
#: New plans after a verification that did not see recovery, before the incident is handed
#: to a person as not recovered.
MAX_REPLANS = 2

#: A node: `async def node(state, runtime) -> dict` of the keys it changed.
Node = Callable[[IncidentState, Runtime[AgentContext]], Awaitable[dict[str, Any]]]

NODES = (
    "intake",
    "recall",
    "log_analyst",
    "dependency_tracer",
    "planner",
    "safety_critic",
    "policy_gate",
    "approval",
    "executor",
    "verifier",
    "learner",
)


def _failed_verifications(state: IncidentState) -> int:
    return sum(1 for v in state.verifications if v.status == "not_yet")


def route_after_critic(state: IncidentState) -> Literal["policy_gate", "planner", "learner"]:
    """Approve: to the gate. Revise: back to the planner, at most MAX_CRITIC_REVISIONS per plan.
    Reject, or revisions spent: report only."""
    verdict = state.verdict.verdict if state.verdict else "reject"
    if verdict == "approve":
        return "policy_gate"
    # critic_rounds counts every round of the incident; each re-plan after a verification
    # starts a new allowance of rounds.
    allowance = (MAX_CRITIC_REVISIONS + 1) * (1 + _failed_verifications(state))
    if verdict == "revise" and state.critic_rounds < allowance:
        return "planner"
    return "learner"


def route_after_gate(state: IncidentState) -> Literal["approval", "executor", "learner"]:
    """Observe mode, nothing to do or all denied: report only. A person first, where needed."""
    mode = state.incident.mode if state.incident else state.input.mode
    if mode == "observe" or not state.decisions:
        return "learner"
    if state.pending_approval and any(d.decision == "needs_approval" for d in state.decisions):
        return "approval"
    if any(d.decision == "allow" for d in state.decisions):
        return "executor"
    return "learner"


def route_after_approval(state: IncidentState) -> Literal["executor", "learner"]:
    """To the executor when anything may run: allowed by the gate, or approved by a person."""
    approved = set(state.approved_actions)
    if any(
        d.decision == "allow" or (d.decision == "needs_approval" and d.action_index in approved)
        for d in state.decisions
    ):
        return "executor"
    return "learner"


def route_after_executor(state: IncidentState) -> Literal["verifier", "learner"]:
    """Verify what was applied; after an undo, or when nothing was applied, report."""
    if state.verifications and state.verifications[-1].status == "worse":
        return "learner"
    revision = state.plan.revision if state.plan else 0
    if any(e.status == "applied" and e.plan_revision == revision for e in state.executed):
        return "verifier"
    return "learner"


def route_after_verifier(
    state: IncidentState, runtime: Runtime[AgentContext]
) -> Literal["learner", "planner", "executor"]:
    """Recovered: learn. Worse: undo. Not yet: plan again, bounded by MAX_REPLANS and budgets."""
    status = state.verifications[-1].status if state.verifications else "recovered"
    if status == "worse":
        return "executor"
    if status == "recovered":
        return "learner"
    spent = budget_exceeded(state.tokens, writes_done(state.executed), runtime.context.limits)
    if _failed_verifications(state) <= MAX_REPLANS and spent is None:
        return "planner"
    return "learner"


NODE_FUNCTIONS: dict[str, Node] = {
    "intake": intake,
    "recall": recall,
    "log_analyst": log_analyst,
    "dependency_tracer": dependency_tracer,
    "planner": planner,
    "safety_critic": safety_critic,
    "policy_gate": policy_gate,
    "approval": approval,
    "executor": executor,
    "verifier": verifier,
    "learner": learner,
}


def build_graph(
    nodes: Mapping[str, Node] | None = None,
) -> StateGraph[IncidentState, AgentContext, Any, Any]:
    """The uncompiled graph; `nodes` replaces node functions by name (tests script them)."""
    unknown = set(nodes or {}) - set(NODE_FUNCTIONS)
    if unknown:
        raise ValueError(f"no such nodes: {', '.join(sorted(unknown))}")
    # Typed loosely: LangGraph's overloads match node protocols by parameter names.
    functions: dict[str, Any] = {**NODE_FUNCTIONS, **(nodes or {})}
    g: StateGraph[IncidentState, AgentContext, Any, Any] = StateGraph(
        IncidentState, context_schema=AgentContext
    )
    for name in NODES:
        g.add_node(name, functions[name])

    g.add_edge(START, "intake")
    g.add_edge("intake", "recall")
    g.add_edge("recall", "log_analyst")
    g.add_edge("recall", "dependency_tracer")
    g.add_edge(["log_analyst", "dependency_tracer"], "planner")
    g.add_edge("planner", "safety_critic")
    g.add_conditional_edges("safety_critic", route_after_critic)
    g.add_conditional_edges("policy_gate", route_after_gate)
    g.add_conditional_edges("approval", route_after_approval)
    g.add_conditional_edges("executor", route_after_executor)
    g.add_conditional_edges("verifier", route_after_verifier)
    g.add_edge("learner", END)
    return g


def compile_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    nodes: Mapping[str, Node] | None = None,
) -> CompiledStateGraph[IncidentState, AgentContext, Any, Any]:
    """The runnable graph; with a checkpointer, one thread per incident (thread_id = its id)."""
    return build_graph(nodes).compile(checkpointer=checkpointer)
