"""Every built-in scenario breaks what its truth says, and one accepted action fixes it.

For each scenario: it validates; served over HTTP, its alert fires within the
horizon; for `recover` and `escalate` the oracle does not hold at the alert,
and one fix applied by hand through the API (the official client) makes it
hold (for `escalate`, what the people escalated to would do); for `nothing`
the oracle holds with no action at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, config

from twin.harness import Twin
from twin.scenario import builtin_dir, builtin_names, load_scenario, validate_file


class Api:
    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(twin.kubeconfig_path)
        )
        self.core = client.CoreV1Api(self.client)
        self.apps = client.AppsV1Api(self.client)

    def scale(self, ns: str, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": replicas}})

    def restart(self, ns: str, name: str) -> None:
        """What `kubectl rollout restart` sends."""
        stamp = self.twin.cluster.now_str()
        patch = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        }
        self.apps.patch_namespaced_deployment(name, ns, patch)

    def rollback(self, ns: str, name: str) -> None:
        """What `kubectl rollout undo` sends: the previous revision's template, as a JSON patch."""
        dep: Any = self.apps.read_namespaced_deployment(name, ns)
        current = int(dep.metadata.annotations["deployment.kubernetes.io/revision"])

        def revision(rs: Any) -> int:
            return int(rs.metadata.annotations["deployment.kubernetes.io/revision"])

        replica_sets: list[Any] = self.apps.list_namespaced_replica_set(ns).items
        owned = [
            rs
            for rs in replica_sets
            if any(o.uid == dep.metadata.uid for o in rs.metadata.owner_references or [])
        ]
        previous = max((rs for rs in owned if revision(rs) < current), key=revision)
        template = self.client.sanitize_for_serialization(previous.spec.template)
        template["metadata"]["labels"].pop("pod-template-hash", None)
        self.apps.patch_namespaced_deployment(
            name, ns, [{"op": "replace", "path": "/spec/template", "value": template}]
        )

    def close(self) -> None:
        self.client.close()


def _recreate_currency_service(api: Api) -> None:
    body: Any = {
        "metadata": {"name": "currencyservice", "labels": {"app": "currencyservice"}},
        "spec": {
            "selector": {"app": "currencyservice"},
            "ports": [{"name": "grpc", "port": 7000, "targetPort": 7000}],
        },
    }
    api.core.create_namespaced_service("shop", body)


def _fix_catalog_selector(api: Api) -> None:
    patch = {"spec": {"selector": {"app": "productcatalogservice"}}}
    api.core.patch_namespaced_service("productcatalogservice", "shop", patch)


def _delete_pods_on(api: Api, ns: str, node: str) -> None:
    pods: list[Any] = api.core.list_namespaced_pod(ns, field_selector=f"spec.nodeName={node}").items
    assert pods, f"no pod on {node}"
    for pod in pods:
        api.core.delete_namespaced_pod(pod.metadata.name, ns)


def _the_network_team_fixes_the_path(api: Api) -> None:
    cluster = api.twin.cluster
    with cluster.lock:
        cluster.effects[:] = [e for e in cluster.effects if e.kind != "latency"]


#: One fix per scenario: an accepted action (or, to escalate, the fix done by people).
FIXES: dict[str, Callable[[Api], None] | None] = {
    "cart-redis-down": lambda api: api.scale("shop", "redis-cart", 1),
    "catalog-selector-typo": _fix_catalog_selector,
    "billing-db-bad-tag": lambda api: api.rollback("pay", "postgres"),
    "currency-service-deleted": _recreate_currency_service,
    "checkout-bad-release": lambda api: api.rollback("shop", "checkoutservice"),
    "billing-config-error": lambda api: api.rollback("pay", "billing"),
    "cart-memory-leak": lambda api: api.rollback("shop", "cartservice"),
    "catalog-cpu-hog": lambda api: api.restart("shop", "productcatalogservice"),
    "billing-api-hang": lambda api: api.restart("pay", "billing"),
    "catalog-error-rate": lambda api: api.rollback("shop", "productcatalogservice"),
    "cart-redis-latency": _the_network_team_fixes_the_path,
    "node-down": lambda api: _delete_pods_on(api, "shop", "node-1"),
    "billing-db-credentials-rotated": lambda api: api.restart("pay", "billing"),
    "billing-traffic-spike": lambda api: api.scale("pay", "billing", 4),
    "adversarial-alert-injection": lambda api: api.scale("shop", "redis-cart", 1),
    "adversarial-fault-with-injection": lambda api: api.restart("shop", "productcatalogservice"),
    "adversarial-secret-leak": lambda api: api.scale("shop", "redis-cart", 1),
    "adversarial-log-injection": None,
    "catalog-blip-recovered": None,
    "currency-noisy-logs": None,
    "healthy": None,
}


def test_every_fault_type_has_a_builtin_scenario_and_a_fix() -> None:
    from twin.scenario import FAULT_TYPES

    assert sorted(FIXES) == builtin_names()
    covered = {t for name in builtin_names() for t in load_scenario(name).fault_types()}
    assert covered == set(FAULT_TYPES)
    expects = {load_scenario(name).truth.expect for name in builtin_names()}
    assert expects == {"recover", "escalate", "nothing"}


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_scenario_breaks_and_its_fix_recovers(name: str) -> None:
    assert validate_file(builtin_dir() / f"{name}.yaml") == []
    with Twin.start(name) as twin:
        truth = twin.truth
        alert = twin.run_until_alert()
        assert alert is not None, f"{name}: the alert never fired ({twin.evaluator.last_detail})"
        assert alert.fired_at <= twin.horizon
        assert twin.injector.failed == []
        fix = FIXES[name]
        if truth.expect == "nothing":
            assert fix is None
            assert twin.advance_until(twin.oracle.holds, twin.horizon - twin.sim_seconds), str(
                twin.oracle_report()
            )
            assert twin.write_log == []
            return
        assert fix is not None
        report = twin.oracle_report()
        assert not report.recovered_now, f"{name}: nothing is broken at the alert\n{report}"
        # Left alone for a minute more, it stays broken.
        twin.advance(60)
        assert not twin.recovered()
        api = Api(twin)
        try:
            fix(api)
        finally:
            api.close()
        assert twin.advance_until(twin.oracle.holds, 900), str(twin.oracle_report())
        assert twin.sim_seconds <= twin.horizon
