"""Scripted stand-ins for the reasoning nodes, so the graph's wiring can be tested on its own.

The graph's routers, bounded loops, interrupts, checkpoints and the executor
are what these tests check; the specialists' reasoning has its own tests
(tests/agents/). Each stand-in is a real node (same signature, same partial
updates) whose answer follows a script, and counts its calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from agents.context import AgentContext
from state import (
    Action,
    Category,
    CriticVerdict,
    EscalateAction,
    EscalateParams,
    Evidence,
    Hypothesis,
    IncidentState,
    ObjectRef,
    Plan,
    ScaleAction,
    ScaleParams,
    Target,
    TranscriptEntry,
    Verification,
)

NAMESPACE = "shop"
ROOT = ObjectRef(kind="Deployment", namespace=NAMESPACE, name="redis-cart")
CATEGORY = Category(system_level="Application", fault_type="Dependency Problem")


def scale(name: str, replicas: int) -> ScaleAction:
    return ScaleAction(
        target=Target(kind="Deployment", namespace=NAMESPACE, name=name),
        hypothesis_id="h1",
        evidence_ids=["dep-1"],
        expected_effect=f"{name} runs {replicas} replicas",
        verification=f"{name} has {replicas} ready replicas",
        params=ScaleParams(replicas=replicas),
    )


def escalate(summary: str) -> EscalateAction:
    return EscalateAction(
        target=Target(kind="Deployment", namespace=NAMESPACE, name="redis-cart"),
        hypothesis_id="h1",
        evidence_ids=["dep-1"],
        expected_effect="a person looks at it",
        verification="a person answered",
        params=EscalateParams(summary=summary),
    )


def _line(runtime: Runtime[AgentContext], node: str, summary: str) -> TranscriptEntry:
    return TranscriptEntry(at=runtime.context.clock.now(), node=node, kind="note", summary=summary)


class Counted:
    def __init__(self) -> None:
        self.calls = 0


class Specialist(Counted):
    """log_analyst / dependency_tracer: one evidence item naming the root cause."""

    def __init__(self, node: str, prefix: str) -> None:
        super().__init__()
        self.node = node
        self.prefix = prefix

    async def __call__(
        self, state: IncidentState, runtime: Runtime[AgentContext]
    ) -> dict[str, Any]:
        self.calls += 1
        evidence = Evidence(
            id=f"{self.prefix}-{self.calls}",
            source="status",
            signal="scaled_to_zero",
            subject=ROOT,
            summary="redis-cart has 0 replicas; cartservice cannot reach redis",
            severity=0.9,
            agent=self.node,
        )
        return {"evidence": [evidence], "transcript": [_line(runtime, self.node, "looked")]}


class Planner(Counted):
    """Plans `actions(revision)`; each call is a new revision."""

    def __init__(self, actions: Callable[[int], list[Action]]) -> None:
        super().__init__()
        self.actions = actions

    async def __call__(
        self, state: IncidentState, runtime: Runtime[AgentContext]
    ) -> dict[str, Any]:
        revision = self.calls
        self.calls += 1
        now = runtime.context.clock.now()
        hypothesis = Hypothesis(
            id="h1",
            root_cause=ROOT,
            cause_kind="scaled_to_zero",
            category=CATEGORY,
            confidence=0.9,
            statement="redis-cart was scaled to zero",
            evidence_ids=["dep-1"],
        )
        plan = Plan(hypotheses=[hypothesis], actions=self.actions(revision), revision=revision)
        return {
            "plan": plan,
            "detected_at": state.detected_at or now,
            "localized_at": state.localized_at or now,
            "transcript": [_line(runtime, "planner", f"plan revision {revision}")],
        }


class Critic(Counted):
    """Answers the verdicts in order, repeating the last."""

    def __init__(self, *verdicts: str) -> None:
        super().__init__()
        self.verdicts = verdicts or ("approve",)

    async def __call__(
        self, state: IncidentState, runtime: Runtime[AgentContext]
    ) -> dict[str, Any]:
        verdict = self.verdicts[min(self.calls, len(self.verdicts) - 1)]
        self.calls += 1
        return {
            "verdict": CriticVerdict.model_validate(
                {
                    "verdict": verdict,
                    "reasons": [f"scripted {verdict}"],
                    "round": state.critic_rounds,
                }
            ),
            "critic_rounds": state.critic_rounds + 1,
            "transcript": [_line(runtime, "safety_critic", verdict)],
        }


class Verifier(Counted):
    """Waits a window on the cluster's clock, then reports the statuses in order (last repeats)."""

    def __init__(self, *statuses: str, window_s: float = 60.0) -> None:
        super().__init__()
        self.statuses = statuses or ("recovered",)
        self.window_s = window_s

    async def __call__(
        self, state: IncidentState, runtime: Runtime[AgentContext]
    ) -> dict[str, Any]:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        await runtime.context.clock.sleep(self.window_s)
        now = runtime.context.clock.now()
        update: dict[str, Any] = {
            "verifications": [
                Verification.model_validate(
                    {"status": status, "checks": ["scripted"], "window_s": self.window_s, "at": now}
                )
            ],
            "transcript": [_line(runtime, "verifier", status)],
        }
        if status == "recovered":
            update["mitigated_at"] = now
        return update


def stand_ins(
    *,
    planner: Planner | None = None,
    critic: Critic | None = None,
    verifier: Verifier | None = None,
) -> dict[str, Any]:
    """Node overrides for graph.build_graph: every reasoning node scripted."""
    return {
        "log_analyst": Specialist("log_analyst", "log"),
        "dependency_tracer": Specialist("dependency_tracer", "dep"),
        "planner": planner or Planner(lambda _rev: [scale("redis-cart", 1)]),
        "safety_critic": critic or Critic("approve"),
        "verifier": verifier or Verifier("recovered"),
    }
