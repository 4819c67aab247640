"""The recall and learner nodes over the in-process store: the loop's learning layer."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.learner import build_record, derive_outcome, learner
from agents.recall import advice, rank_actions, recall, recall_by_evidence
from memory.base import IncidentRecord, MemoryStoreError
from memory.inprocess import InProcessMemory
from state import ActionStats, Incident, IncidentReport, IncidentState, Recall, Verification
from tests.memory.factory import T0, FixedClock, incident, oom_state, runtime

pytestmark = pytest.mark.anyio


async def _finish(state: IncidentState, store: InProcessMemory, data_dir: Path) -> dict[str, Any]:
    clock = FixedClock(T0 + timedelta(minutes=5))
    return await learner(state, runtime(store, data_dir, clock))


async def test_learner_remembers_and_recall_finds_it(tmp_path: Path) -> None:
    store = InProcessMemory()
    first = oom_state("inc-1", workload="cartservice")
    update = await _finish(first, store, tmp_path)
    assert update["outcome"] == "recovered"
    assert [e.kind for e in update["transcript"]] == ["outcome", "memory", "note"]

    record = await store.get("inc-1")
    assert record is not None
    assert record.cause_kind == "oom"
    assert record.root_cause is not None
    assert record.root_cause.name == "cartservice"
    assert "signal:oom_killed" in record.fingerprint
    assert "reason:OOMKilled" in record.fingerprint
    # Low-severity evidence (a healthy p99) is context, not a symptom.
    assert "signal:latency" not in record.fingerprint
    assert any(
        t.startswith("template:fatal error: runtime: out of memory") for t in record.fingerprint
    )
    [act] = record.actions
    assert (act.action, act.status, act.recovered, act.time_to_recover_s) == (
        "set_resources",
        "applied",
        True,
        120.0,
    )
    assert record.time_to_recover_s == 180.0  # intake to the recovered verification

    # A new crash-looping alert on another service recalls the first incident.
    new = IncidentState(input=first.input, incident=incident("inc-2", workload="checkoutservice"))
    clock = FixedClock(T0 + timedelta(hours=1))
    out = await recall(new, runtime(store, tmp_path, clock))
    result: Recall = out["recall"]
    assert result.store.startswith("in-process")
    assert [p.incident_id for p in result.similar] == ["inc-1"]
    assert result.similar[0].cause_kind == "oom"
    assert result.stats == [
        ActionStats(
            cause_kind="oom",
            action="set_resources",
            successes=1,
            failures=0,
            mean_time_to_recover_s=120.0,
        )
    ]
    summary = out["transcript"][0].summary
    assert "in-process" in summary
    assert "inc-1" in summary
    assert "set_resources worked 1 of 1" in out["transcript"][1].summary


async def test_learner_writes_the_transcript_as_an_incident_report(tmp_path: Path) -> None:
    state = oom_state("inc-7")
    await _finish(state, InProcessMemory(), tmp_path)
    path = tmp_path / "incidents" / "inc-7" / "transcript.json"
    report = IncidentReport.model_validate_json(path.read_text())
    assert report.outcome == "recovered"
    assert report.incident.id == "inc-7"
    # The file holds the learner's own lines too, ending with where it was written.
    assert report.transcript[-1].summary == f"transcript written to {path}"
    assert any(e.node == "learner" and e.kind == "memory" for e in report.transcript)
    assert json.loads(path.read_text())["hypotheses"][0]["cause_kind"] == "oom"


async def test_learner_keeps_an_outcome_another_node_set(tmp_path: Path) -> None:
    state = oom_state("inc-8", recovered=False)
    state.outcome = "escalated"
    update = await _finish(state, InProcessMemory(), tmp_path)
    assert "outcome" not in update
    assert all(e.kind != "outcome" for e in update["transcript"])


def test_outcome_from_what_happened() -> None:
    assert derive_outcome(oom_state("a")) == "recovered"
    assert derive_outcome(oom_state("b", recovered=False)) == "not_recovered"
    bare = oom_state("c")
    bare.executed, bare.verifications = [], []
    assert derive_outcome(bare) == "recommended"
    bare.plan = None
    assert derive_outcome(bare) == "no_action"


def test_a_failed_action_is_a_failure_for_its_cause(tmp_path: Path) -> None:
    state = oom_state("inc-9", recovered=False, action="restart")
    record = build_record(state, outcome="not_recovered", closed_at=T0, incident_dir=tmp_path)
    [act] = record.actions
    assert act.counts
    assert not act.recovered
    assert act.time_to_recover_s is None
    assert record.time_to_recover_s is None


async def test_failures_lower_the_stats(tmp_path: Path) -> None:
    store = InProcessMemory()
    await _finish(oom_state("a", action="restart", recovered=False), store, tmp_path)
    await _finish(oom_state("b", action="set_resources"), store, tmp_path)
    await _finish(oom_state("c", action="restart", recovered=False), store, tmp_path)
    stats = {s.action: s for s in await store.stats("oom")}
    assert (stats["restart"].successes, stats["restart"].failures) == (0, 2)
    assert (stats["set_resources"].successes, stats["set_resources"].failures) == (1, 0)


class _BrokenStore(InProcessMemory):
    """A store whose backend is gone: every call raises, as the Redis store does after retries."""

    async def recall(self, incident: Incident, symptoms: list[str], *, limit: int = 5) -> Recall:
        raise MemoryStoreError("redis at 127.0.0.1:1 unreachable after 3 tries")

    async def record(self, record: IncidentRecord) -> None:
        raise MemoryStoreError("redis at 127.0.0.1:1 unreachable after 3 tries")


async def test_memory_failure_is_reported_not_raised(tmp_path: Path) -> None:
    store = _BrokenStore()
    state = oom_state("inc-x")
    out = await recall(state, runtime(store, tmp_path))
    assert out["recall"].similar == []
    assert out["transcript"][0].kind == "error"
    assert "unreachable" in out["transcript"][0].summary

    update = await _finish(state, store, tmp_path)
    errors = [e for e in update["transcript"] if e.kind == "error"]
    assert len(errors) == 1
    assert "not remembered" in errors[0].summary
    # The record is kept in the transcript, so nothing learned is lost for good.
    assert errors[0].data["record"]["incident_id"] == "inc-x"
    assert (tmp_path / "incidents" / "inc-x" / "transcript.json").exists()


def _recall_with(*stats: ActionStats) -> Recall:
    return Recall(stats=list(stats), store="test")


def test_advice_prefers_what_worked_and_avoids_what_failed() -> None:
    recall_ = _recall_with(
        ActionStats(cause_kind="oom", action="restart", successes=0, failures=3),
        ActionStats(
            cause_kind="oom", action="set_resources", successes=4, mean_time_to_recover_s=90
        ),
        ActionStats(cause_kind="crash_loop", action="rollback", successes=5),
    )
    adv = advice(recall_, "oom")
    assert adv.preferred == ["set_resources"]
    assert adv.avoid == ["restart"]
    assert adv.scores == {"restart": 0.2, "set_resources": 0.833}
    assert "prefer set_resources (for oom, set_resources worked 4 of 4 times" in adv.reasoning
    assert "avoid restart" in adv.reasoning
    # Memory only reorders what the planner's rules allow.
    assert rank_actions(["restart", "escalate", "set_resources"], recall_, "oom") == [
        "set_resources",
        "escalate",
        "restart",
    ]
    assert rank_actions(["restart", "escalate"], None, "oom") == ["restart", "escalate"]
    assert advice(None, "oom").reasoning == "memory: nothing recalled"
    assert advice(recall_, "hang").reasoning == "memory: no record of how actions fared for hang"


def test_one_failure_is_not_enough_to_avoid_an_action() -> None:
    recall_ = _recall_with(ActionStats(cause_kind="oom", action="restart", failures=1))
    assert advice(recall_, "oom").avoid == []


async def test_recall_by_evidence_finds_the_same_failure_under_another_alert(
    tmp_path: Path,
) -> None:
    store = InProcessMemory()
    await _finish(oom_state("inc-1", workload="cartservice"), store, tmp_path)
    # Another alert name and service, the same symptoms in the evidence.
    state = oom_state("inc-2", workload="emailservice")
    assert state.incident is not None
    assert state.incident.alert is not None
    alert = state.incident.alert.model_copy(
        update={"labels": {"alertname": "KubeContainerOOMKilled", "namespace": "shop"}}
    )
    state.incident = state.incident.model_copy(update={"alert": alert})
    ctx = runtime(store, tmp_path).context
    found, line = await recall_by_evidence(state, ctx)
    assert [p.incident_id for p in found.similar] == ["inc-1"]
    assert found.similar[0].similarity > 0.5
    assert line.kind == "memory"
    assert "by evidence" in line.summary

    broken, err = await recall_by_evidence(state, runtime(_BrokenStore(), tmp_path).context)
    assert broken.similar == []
    assert err.kind == "error"


def _replanned_state() -> IncidentState:
    """A restart that did not help (not yet), then a raised limit that did."""
    state = oom_state("inc-replan", action="restart", recovered=False)
    restart = state.executed[0]
    fix = oom_state("x").executed[0]  # set_resources
    t1 = restart.at + timedelta(minutes=3)
    state.executed = [
        restart,
        fix.model_copy(update={"at": t1, "plan_revision": 1, "action_index": 0}),
    ]
    state.verifications = [
        *state.verifications,
        Verification(status="recovered", window_s=120, at=t1 + timedelta(seconds=150)),
    ]
    state.mitigated_at = t1 + timedelta(seconds=150)
    return state


def test_a_replan_makes_the_first_action_a_failure_and_the_second_a_success(
    tmp_path: Path,
) -> None:
    record = build_record(
        _replanned_state(), outcome="recovered", closed_at=T0, incident_dir=tmp_path
    )
    first, second = record.actions
    assert (first.action, first.recovered, first.counts) == ("restart", False, True)
    assert (second.action, second.recovered, second.time_to_recover_s) == (
        "set_resources",
        True,
        150.0,
    )


def test_an_undo_counts_against_the_original_action_only(tmp_path: Path) -> None:
    state = oom_state("inc-undo", action="restart", recovered=False)
    original = state.executed[0]
    state.verifications = [
        Verification(status="worse", window_s=60, at=original.at + timedelta(seconds=60))
    ]
    state.executed = [
        original,
        original.model_copy(update={"status": "undone", "at": original.at + timedelta(seconds=61)}),
    ]
    record = build_record(state, outcome="not_recovered", closed_at=T0, incident_dir=tmp_path)
    kept, undo = record.actions
    assert (kept.status, kept.recovered, kept.counts) == ("applied", False, True)
    assert (undo.status, undo.counts) == ("undone", False)
