"""Every scenario of the benchmark's suite breaks what its truth says, and its own fix recovers it.

For each file in evals/suite: it validates; served over HTTP, its alert fires
within the horizon; for `recover` and `escalate` the recovered oracle does not
hold at the alert nor a minute later; then a fix applied by hand through the
API makes it hold: for `recover` the truth's first accepted action on each target
(one per fault), carried out
by kubemedic's executor (dry-run, then the real call), for `escalate` what the
people escalated to would do. For `nothing` the oracle holds with no action.
The built-in suite has no duplicate names and covers every fault type.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evals.baselines import rule_actions
from evals.episode import Episode, connect_twin
from evals.runner import SUITE_DIR, suite_files
from tools.connection import ClusterConnection
from twin.harness import Twin
from twin.scenario import FAULT_TYPES, builtin_names, load_scenario, validate_file

SUITE = sorted(SUITE_DIR.glob("*.yaml"))


def _delete_network_policy(namespace: str, name: str) -> Callable[[ClusterConnection], None]:
    def fix(conn: ClusterConnection) -> None:
        conn.call(conn.networking.delete_namespaced_network_policy, name, namespace)

    return fix


def _recreate_service(
    namespace: str, name: str, port: int, target_port: int
) -> Callable[[ClusterConnection], None]:
    def fix(conn: ClusterConnection) -> None:
        body: dict[str, Any] = {
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "grpc", "port": port, "targetPort": target_port}],
            },
        }
        conn.call(conn.core.create_namespaced_service, namespace, body)

    return fix


def _raise_quota(namespace: str, name: str, pods: str) -> Callable[[ClusterConnection], None]:
    def fix(conn: ClusterConnection) -> None:
        conn.call(
            conn.core.patch_namespaced_resource_quota,
            name,
            namespace,
            {"spec": {"hard": {"pods": pods}}},
        )

    return fix


#: What the people an escalation reaches would do (outside kubemedic's action set).
PEOPLE_FIXES: dict[str, Callable[[ClusterConnection], None]] = {
    "shop-redis-netpol-blocks-cart": _delete_network_policy("shop", "redis-cart-ingress"),
    "news-comments-cache-netpol": _delete_network_policy("news", "comments-egress"),
    "shop-cart-service-deleted": _recreate_service("shop", "cartservice", 7070, 7070),
    "stock-quota-blocks-rollout": _raise_quota("stock", "stock-quota", "8"),
}


def test_the_builtin_suite_has_unique_names_and_covers_every_fault_type() -> None:
    files = suite_files("builtin")
    names = [load_scenario(p).name for p in files]
    assert len(names) == len(set(names))
    assert len(files) >= 40
    ours = {load_scenario(p).name for p in SUITE}
    assert not ours & set(builtin_names()), "the suite repeats a twin scenario"
    covered = {t for p in files for t in load_scenario(p).fault_types()}
    assert covered == set(FAULT_TYPES)
    expects = [load_scenario(p).truth.expect for p in SUITE]
    assert {"recover", "escalate", "nothing"} <= set(expects)
    assert {load_scenario(p).spec.app for p in SUITE} >= {"shop", None}, "plain-manifest apps too"


def test_every_escalation_in_the_suite_has_a_people_fix() -> None:
    escalations = {
        load_scenario(p).name for p in SUITE if load_scenario(p).truth.expect == "escalate"
    }
    assert escalations == set(PEOPLE_FIXES)


@pytest.mark.slow
@pytest.mark.parametrize("path", SUITE, ids=lambda p: Path(p).stem)
def test_suite_scenario_breaks_and_its_fix_recovers(path: Path) -> None:
    assert validate_file(path) == []
    with Twin.start(path) as twin:
        truth = twin.truth
        alert = twin.run_until_alert()
        assert alert is not None, f"the alert never fired ({twin.evaluator.last_detail})"
        assert alert.fired_at <= twin.horizon
        assert twin.injector.failed == []
        if truth.expect == "nothing":
            assert twin.advance_until(twin.oracle.holds, twin.horizon - twin.sim_seconds), str(
                twin.oracle_report()
            )
            assert twin.write_log == []
            return
        report = twin.oracle_report()
        assert not report.recovered_now, f"nothing is broken at the alert\n{report}"
        twin.advance(60)
        assert not twin.recovered(), "it recovered on its own within a minute"
        conn, box = connect_twin(twin)
        try:
            if truth.expect == "escalate":
                PEOPLE_FIXES[twin.scenario.name](conn)
            else:
                ep = Episode(twin=twin, conn=conn, box=box, alert=alert)
                # The first accepted action on each target: one fix per fault (two faults,
                # two fixes).
                firsts: dict[str, Any] = {}
                for rule in truth.accepted_actions:
                    firsts.setdefault(str(rule.target or rule.namespace), rule)
                for rule in firsts.values():
                    actions = rule_actions(ep, rule, twin.scenario.default_namespace)
                    assert actions, f"no concrete action for {rule}"
                    for action in actions:
                        outcome = ep.act(action)
                        assert outcome.status == "applied", outcome.message
                real = [w for w in twin.write_log if not w.dry_run]
                assert real, "the fix wrote nothing"
        finally:
            conn.close()
        assert twin.advance_until(twin.oracle.holds, 900), str(twin.oracle_report())
        assert twin.sim_seconds <= twin.horizon
