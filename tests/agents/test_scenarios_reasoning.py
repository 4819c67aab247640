"""The deterministic specialists on every built-in scenario and on this suite's own.

Each scenario runs on the twin: its alert fires, the specialists investigate
(log analyst and dependency tracer in parallel, then the planner), the planned
writes go through the tools' executor, the verifier judges from the cluster's
signals, and the twin's oracle (never shown to the agents) must agree. The
assertions are the benchmark's: detection, top-1 localization, category, the
first planned action among the truth's accepted ones (or no write, or an
escalation), recovery within the horizon, and no safety violation.

The own scenarios (tests/agents/scenarios/, the `rides` app) are not shop:
a three-level cascade, a bad release next to a loud red herring, two faults at
once, a wrong targetPort, a memory limit set too low, a healthy cluster with
noisy logs, and a failing canary behind an HTTPRoute.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.agents.support import OWN_SCENARIOS, Run, first_write
from twin.scenario import ActionRule, Truth
from twin.scoring import owner_resolver

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "twin" / "scenarios"
BUILTIN = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))
OWN = sorted(OWN_SCENARIOS.glob("*.yaml"))


def _matches(rule: ActionRule, action: str, kind: str, namespace: str, name: str, run: Run) -> bool:
    """A truth action rule against a planned action (a pod counts for its workload)."""
    if rule.action != action:
        return False
    if rule.target is not None:
        want_ns = rule.target.namespace or run.twin.scenario.default_namespace
        if rule.target.kind != "Node" and namespace != want_ns:
            return False
        if kind == rule.target.kind and name == rule.target.name:
            return True
        if kind == "Pod":
            owner = owner_resolver(run.twin.cluster)(kind, namespace, name)
            return owner is not None and owner == (rule.target.kind, rule.target.name)
        return False
    if rule.namespace is not None:
        return namespace == rule.namespace
    return True


def _why(run: Run) -> str:
    plan = run.plans[0] if run.plans else None
    lines = [plan.reasoning if plan else "(no plan)"]
    lines += [
        f"{e.id} {e.signal} {e.severity:.2f} {e.subject}: {e.summary}"
        for e in run.state.evidence
        if e.severity >= 0.45
    ][:30]
    return "\n".join(lines)


def check(run: Run, truth: Truth) -> None:
    first = run.plans[0]
    why = _why(run)
    assert (run.state.detected_at is not None) == truth.detection, why
    if truth.expect == "nothing":
        assert first.actions == [], why
        assert not [w for w in run.twin.write_log if not w.dry_run], why
        return
    top = first.hypotheses[0]
    default_ns = run.twin.scenario.default_namespace
    wanted = {
        (r.kind, "" if r.kind == "Node" else r.namespace or default_ns, r.name)
        for r in truth.root_cause
    }
    assert (top.root_cause.kind, top.root_cause.namespace, top.root_cause.name) in wanted, why
    assert truth.category is not None
    assert (top.category.system_level, top.category.fault_type) == (
        truth.category.system_level,
        truth.category.fault_type,
    ), why
    assert run.state.localized_at is not None
    assert run.state.detected_at is not None
    if truth.expect == "escalate":
        assert [a.action for a in first.actions][:1] == ["escalate"], why
        assert first_write(first.actions) is None, why
        named = {
            (h.root_cause.kind, h.root_cause.namespace, h.root_cause.name)
            for h in first.hypotheses[:3]
        }
        assert wanted <= named, why
        return
    action = first.actions[0]
    target = action.target
    assert any(
        _matches(rule, action.action, target.kind, target.namespace or "", target.name, run)
        for rule in truth.accepted_actions
    ), why
    assert run.state.verifications, why
    assert run.state.verifications[-1].status == "recovered", (
        why + "\n" + "\n".join(run.state.verifications[-1].checks)
    )
    assert run.state.mitigated_at is not None


@pytest.mark.parametrize(
    "scenario", BUILTIN + [str(p) for p in OWN], ids=BUILTIN + [p.stem for p in OWN]
)
def test_scenario_end_to_end(scenario: str) -> None:
    run = Run.start(scenario)
    try:
        asyncio.run(run.respond())
        truth = run.twin.truth
        check(run, truth)
        if truth.expect != "escalate":
            assert run.settle(), str(run.twin.oracle_report())
        s = run.score()
        assert s.safety, s.why
        assert s.passed, s.why
    finally:
        run.close()
