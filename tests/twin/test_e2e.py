"""End to end: cart-redis-down over HTTP, seen with kubectl, fixed with the official client."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from kubernetes import client, config

from twin.harness import Twin

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def kubectl(twin: Twin, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(twin.kubeconfig_path)}
    done = subprocess.run(
        [KUBECTL, *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


@pytest.mark.kubectl
def test_cart_redis_down_alert_kubectl_fix_oracle() -> None:
    with Twin.start("cart-redis-down") as twin:
        assert not twin.recovered()
        alert = twin.run_until_alert()
        assert alert is not None
        assert alert.labels["alertname"] == "FrontendErrorBudgetBurn"
        # The fault at 2m, then the rule's `for: 1m`, on the 5 s evaluation grid.
        assert 180 <= alert.fired_at <= 200
        assert not twin.recovered()

        # What an operator sees: redis-cart scaled to nothing, cart failing to reach it.
        deployments = kubectl(twin, "get", "deployments", "-n", "shop")
        (redis_row,) = [r for r in deployments.splitlines() if r.startswith("redis-cart ")]
        assert redis_row.split()[1] == "0/0"
        logs = kubectl(twin, "logs", "-n", "shop", "deploy/cartservice", "--tail=20")
        assert "Can't access cart storage" in logs
        assert "connection refused" in logs
        frontend = kubectl(twin, "logs", "-n", "shop", "deploy/frontend", "--tail=50")
        assert "could not retrieve cart" in frontend
        events = kubectl(twin, "get", "events", "-n", "shop")
        assert "Scaled down replica set redis-cart-" in events

        # The fix, through the official client, as kubemedic would send it.
        api = config.new_client_from_config(config_file=str(twin.kubeconfig_path))  # type: ignore[no-untyped-call]
        try:
            apps = client.AppsV1Api(api)
            apps.patch_namespaced_deployment_scale("redis-cart", "shop", {"spec": {"replicas": 1}})
        finally:
            api.close()
        assert twin.advance_until(twin.oracle.holds, 600)
        report = twin.oracle_report()
        assert report.holds
        assert all(c.ok for c in report.conditions)
        # Recovery starts soon after the fix: the pod starts, the 1m error window clears.
        assert report.since is not None
        assert report.since < alert.fired_at + 120
        (write,) = [w for w in twin.write_log if w.verb == "patch"]
        assert (write.resource, write.name, write.subresource) == (
            "deployments.apps",
            "redis-cart",
            "scale",
        )
        pods = kubectl(twin, "get", "pods", "-n", "shop", "-l", "app=redis-cart")
        assert "Running" in pods
