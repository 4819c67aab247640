"""Learning on the twin: the same family of fault twice, on two different services.

Through the whole graph (`interfaces.runner.run_scenario`) with the incident memory in
the machine's Redis; each second run is compared with the same scenario on an empty memory.

- A Deployment scaled to zero (redis-cart), then another one (productcatalogservice): the
  second incident recalls the first, with how its action fared, and the planner says so;
  learning must not cost steps or simulated time (the first choice works both times).
- A release that leaks memory, rolled out over an hour before it starts leaking (so no
  recent rollout points at it): its pods are OOMKilled, which looks like an undersized limit.
  On an empty memory the planner first raises the limit (the least invasive fix), the
  verifier sees the new pods' memory climb toward the new limit again (not yet), and the
  re-plan rolls back to the revision that ran other images, which recovers. The learner
  records both outcomes for the cause kind; on another service with the same fault, recall
  brings them back and the planner rolls back first: fewer steps and less simulated time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from memory.redis_store import RedisMemory
from settings import RedisSettings, Settings

runner = pytest.importorskip(
    "interfaces.runner", reason="the graph runner (interfaces/runner.py) has not landed yet"
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIRST = "cart-redis-down"  # built-in: redis-cart scaled to zero
SECOND = ROOT / "evals" / "suite" / "shop-catalog-scaled-to-zero.yaml"
#: The leak family: the same fault on two services (scenario files of this test only).
LEAK_FIRST = Path(__file__).parent / "scenarios" / "cart-slow-release-leak.yaml"
LEAK_SECOND = Path(__file__).parent / "scenarios" / "email-slow-release-leak.yaml"


def _run(scenario: str | Path, settings: Settings) -> Any:
    return asyncio.run(
        runner.run_scenario(
            scenario, mode="autonomous", settings=settings, approver=runner.approve_all()
        )
    )


@pytest.fixture
def prefixes(redis_url: str) -> Iterator[tuple[str, str]]:
    warm, cold = (f"kmtest:{uuid.uuid4().hex[:12]}" for _ in range(2))
    yield warm, cold

    async def forget() -> None:
        for prefix in (warm, cold):
            store = RedisMemory(redis_url, prefix=prefix)
            await store.delete_all()
            await store.aclose()

    asyncio.run(forget())


def _settings(tmp_path: Path, redis_url: str, prefix: str, name: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name,
        redis=RedisSettings(url=SecretStr(redis_url), key_prefix=prefix),
    )


def test_the_second_incident_of_a_family_recalls_the_first(
    redis_url: str, prefixes: tuple[str, str], tmp_path: Path
) -> None:
    warm, cold = prefixes
    first = _run(FIRST, _settings(tmp_path, redis_url, warm, "first"))
    assert first.report["recovered"]
    first_id = first.state.incident.id

    second = _run(SECOND, _settings(tmp_path, redis_url, warm, "second"))
    baseline = _run(SECOND, _settings(tmp_path, redis_url, cold, "baseline"))

    # Recall found the first incident, with its cause and how the action fared.
    recall = second.state.recall
    assert recall is not None
    assert recall.store.startswith("redis ")
    assert [p.incident_id for p in recall.similar] == [first_id]
    past = recall.similar[0]
    assert past.cause_kind == "scaled_to_zero"
    assert past.root_cause is not None
    assert past.root_cause.name == "redis-cart"
    assert [(s.action, s.successes, s.failures) for s in recall.stats] == [("scale", 1, 0)]
    # The planner said what memory told it.
    assert second.state.plan is not None
    assert "Memory: scale worked before" in second.state.plan.reasoning
    assert baseline.state.recall.similar == []

    # Both recover the new service, with the same fix; learning costs nothing.
    for run in (second, baseline):
        assert run.report["recovered"]
        assert [a["action"] for a in run.report["actions"]] == ["scale"]
    assert second.graph.steps <= baseline.graph.steps
    warm_s = second.report["sim_seconds"]["mitigate"]
    cold_s = baseline.report["sim_seconds"]["mitigate"]
    assert warm_s is not None
    assert cold_s is not None
    assert warm_s <= cold_s
    print(
        f"\nlearning figures: first {FIRST}: steps {first.graph.steps}, "
        f"mitigated at {first.report['sim_seconds']['mitigate']} s; "
        f"second {SECOND.stem} with memory: steps {second.graph.steps}, mitigated at "
        f"{warm_s} s; without memory: steps {baseline.graph.steps}, mitigated at {cold_s} s"
    )


def _actions(run: Any) -> list[str]:
    return [a["action"] for a in run.report["actions"] if a["status"] == "applied"]


def _ttm(run: Any) -> float:
    """Simulated seconds from detection to mitigation."""
    sim = run.report["sim_seconds"]
    assert sim["mitigate"] is not None
    assert sim["detect"] is not None
    return float(sim["mitigate"] - sim["detect"])


def _verified(run: Any) -> float:
    """Simulated seconds from detection to the verifier's "recovered"."""
    assert run.state.mitigated_at is not None
    assert run.state.detected_at is not None
    return float((run.state.mitigated_at - run.state.detected_at).total_seconds())


def test_what_worked_for_a_leaking_release_is_tried_first_next_time(
    redis_url: str, prefixes: tuple[str, str], tmp_path: Path
) -> None:
    warm, cold = prefixes
    first = _run(LEAK_FIRST, _settings(tmp_path, redis_url, warm, "first"))
    # On an empty memory: more memory first, not enough, then the earlier release.
    assert first.report["recovered"]
    assert _actions(first) == ["set_resources", "rollback"]
    assert [v.status for v in first.state.verifications] == ["not_yet", "recovered"]
    first_id = first.state.incident.id

    second = _run(LEAK_SECOND, _settings(tmp_path, redis_url, warm, "second"))
    baseline = _run(LEAK_SECOND, _settings(tmp_path, redis_url, cold, "baseline"))

    # Recall found the first incident and both of its actions' outcomes for the cause kind.
    recall = second.state.recall
    assert recall is not None
    assert [p.incident_id for p in recall.similar] == [first_id]
    assert recall.similar[0].cause_kind == "oom"
    stats = {(s.cause_kind, s.action): (s.successes, s.failures) for s in recall.stats}
    assert stats[("oom", "set_resources")] == (0, 1)
    assert stats[("oom", "rollback")] == (1, 0)
    assert baseline.state.recall is not None
    assert baseline.state.recall.similar == []

    # With memory the planner rolls back first, and says why.
    assert second.state.plan is not None
    assert second.state.plan.revision == 0
    assert second.state.plan.actions[0].action == "rollback"
    assert "Memory: set_resources failed before" in second.state.plan.reasoning
    assert "rollback worked before" in second.state.plan.reasoning
    assert second.report["recovered"]
    assert _actions(second) == ["rollback"]
    assert [v.status for v in second.state.verifications] == ["recovered"]

    # Without memory the same incident takes the detour.
    assert baseline.report["recovered"]
    assert _actions(baseline) == ["set_resources", "rollback"]

    assert second.graph.steps < baseline.graph.steps
    assert _ttm(second) < _ttm(baseline)
    assert _verified(second) < _verified(baseline)
    print(
        f"\nleak learning figures: first {LEAK_FIRST.stem}: steps {first.graph.steps}, "
        f"detect->mitigate {_ttm(first):.0f} s; second {LEAK_SECOND.stem} with memory: "
        f"steps {second.graph.steps}, detect->mitigate {_ttm(second):.0f} s; without memory: "
        f"steps {baseline.graph.steps}, detect->mitigate {_ttm(baseline):.0f} s; "
        f"detect->verified recovered: first {_verified(first):.0f} s, second with memory "
        f"{_verified(second):.0f} s, without memory {_verified(baseline):.0f} s"
    )


def test_the_fallback_release_is_the_latest_revision_with_other_images() -> None:
    from agents.planner import release_evidence

    first = {"revision": 1, "images": {"server": "app:v1"}, "created": "t1"}
    history: dict[str, Any] = {
        "current_revision": 4,
        "revisions": [
            first,
            {"revision": 2, "images": {"server": "app:v2"}, "created": "t2"},
            # Revisions 3 and 4 kept v3's image (a resources change, say): not a release.
            {"revision": 3, "images": {"server": "app:v3"}, "created": "t3"},
            {"revision": 4, "images": {"server": "app:v3"}, "created": "t4"},
        ],
    }
    only_one = {"current_revision": 1, "revisions": [first]}
    found = release_evidence({"Deployment/ns/app": history, "Deployment/ns/new": only_one}, start=7)
    assert list(found) == ["Deployment/ns/app"]
    ev = found["Deployment/ns/app"]
    assert ev.id == "plan-release-8"
    assert ev.source == "rollout"
    assert ev.data["release_revision"] == 2
    assert ev.data["release_images"] == {"server": "app:v2"}
