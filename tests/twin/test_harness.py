"""The Python API: start and stop, time in eval and serve mode, alerts, webhooks, the write log."""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from twin.harness import Twin
from twin.scenario import ScenarioInvalid, builtin_dir, default_scenario


def test_an_invalid_scenario_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (builtin_dir() / "cart-redis-down.yaml")
        .read_text()
        .replace("params: {replicas: 0}", "params: {replicas: -1}")
    )
    kubeconfig = tmp_path / "kubeconfig"
    threads = threading.active_count()
    with pytest.raises(ScenarioInvalid) as info:
        Twin.start(bad, kubeconfig=kubeconfig)
    assert [str(e) for e in info.value.errors] == [
        "spec.faults[0].params.replicas: Input should be greater than or equal to 0"
    ]
    assert threading.active_count() == threads
    assert not kubeconfig.exists()


def test_start_serves_writes_a_kubeconfig_and_stop_cleans_up() -> None:
    twin = Twin.start("cart-redis-down")
    try:
        path = twin.kubeconfig_path
        assert path.is_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert twin.url in path.read_text()
        assert twin.url.startswith("http://127.0.0.1:")
        version = httpx.get(f"{twin.url}/version", timeout=5)
        assert version.status_code == 200
        assert twin.sim_seconds == 0
        assert twin.truth.expect == "recover"
    finally:
        twin.stop()
    assert not path.exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{twin.url}/version", timeout=2)
    twin.stop()  # idempotent


def test_a_given_kubeconfig_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "kube" / "config"
    with Twin.start("healthy", kubeconfig=target) as twin:
        assert twin.kubeconfig_path == target
    assert target.is_file()


def test_eval_mode_time_moves_only_on_request() -> None:
    with Twin.start("cart-redis-down") as twin:
        time.sleep(0.2)
        assert twin.sim_seconds == 0
        twin.advance(30)
        assert twin.sim_seconds == 30
        assert not twin.advance_until(lambda _c: False, 20)
        assert twin.sim_seconds == 50
        assert twin.advance_until(lambda c: c.elapsed - twin.t0 >= 70, 100)
        assert twin.sim_seconds == 70
        # The fault is due at 2m.
        assert twin.injector.applied == []
        twin.advance(50)
        assert [a.type for a in twin.injector.applied] == ["scale"]
        # Faults are not API requests.
        assert twin.write_log == []


def test_run_until_alert_and_the_alertmanager_route() -> None:
    with Twin.start("cart-redis-down") as twin:
        url = f"{twin.url}/alertmanager/api/v2/alerts"
        assert httpx.get(url, timeout=5).json() == []
        assert twin.run_until_alert(max_seconds=60) is None
        assert twin.sim_seconds == 60
        alert = twin.run_until_alert()
        assert alert is not None
        assert twin.alerts() == [alert]
        (served,) = httpx.get(url, timeout=5).json()
        assert served["labels"]["alertname"] == "FrontendErrorBudgetBurn"
        assert served["annotations"] == {"summary": "frontend error rate above 5%"}
        assert served["status"]["state"] == "active"
        assert twin.evaluator.external_url == f"{twin.url}/alertmanager"


def test_run_until_alert_stops_at_the_horizon() -> None:
    sc = default_scenario("shop")
    with Twin.start(sc) as twin:
        assert twin.run_until_alert() is None  # no alert at all: nothing to wait for
        assert twin.sim_seconds == 0
    with Twin.start("healthy") as twin:
        assert twin.run_until_alert(max_seconds=120) is None
        assert twin.sim_seconds == 120
        assert twin.run_until_alert() is not None  # `at: 3m`


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real webhook receiver on loopback, standing in for kubemedic's."""
    received: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_webhooks_are_posted_on_firing_and_resolving(
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = receiver
    with Twin.start("catalog-blip-recovered", webhook_url=url) as twin:
        alert = twin.run_until_alert()
        assert alert is not None
        assert [p["status"] for p in received] == ["firing"]
        body = received[0]
        assert body["version"] == "4"
        assert body["receiver"] == "kubemedic"
        assert body["commonLabels"]["alertname"] == "FrontendErrorBudgetBurn"
        assert body["externalURL"] == f"{twin.url}/alertmanager"
        assert body["alerts"][0]["status"] == "firing"
        # The blip is over: the rule stops holding and Alertmanager sends the resolution.
        twin.advance(300)
        assert [p["status"] for p in received] == ["firing", "resolved"]
        assert twin.webhooks_sent == 2
        assert twin.webhook_errors == []


def test_a_webhook_that_cannot_be_delivered_is_recorded_not_raised() -> None:
    with Twin.start("healthy", webhook_url="http://127.0.0.1:9/unreachable") as twin:
        assert twin.run_until_alert() is not None
        assert twin.webhooks_sent == 0
        assert [status for status, _ in twin.webhook_errors] == ["firing"]


def test_api_writes_are_logged_and_the_oracle_reads_their_effect() -> None:
    with Twin.start("cart-redis-down") as twin:
        assert twin.run_until_alert() is not None
        assert not twin.recovered()
        response = httpx.patch(
            f"{twin.url}/apis/apps/v1/namespaces/shop/deployments/redis-cart/scale",
            json={"spec": {"replicas": 1}},
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=5,
        )
        assert response.status_code == 200
        (write,) = twin.write_log
        assert (write.verb, write.name, write.subresource) == ("patch", "redis-cart", "scale")
        assert twin.advance_until(twin.oracle.holds, 600)
        assert twin.recovered()
        report = twin.oracle_report()
        assert report.holds
        assert report.since is not None


def test_the_truth_is_never_served() -> None:
    with Twin.start("cart-redis-down") as twin:
        twin.run_until_alert()
        texts = []
        with httpx.Client(base_url=twin.url, timeout=10) as http:
            for path in (
                "/api/v1/pods",
                "/api/v1/events",
                "/api/v1/configmaps",
                "/api/v1/secrets",
                "/apis/apps/v1/deployments",
                "/api/v1/namespaces",
                "/metrics",
                "/alertmanager/api/v2/alerts",
            ):
                response = http.get(path)
                assert response.status_code == 200, path
                texts.append(response.text)
        served = "\n".join(texts)
        for secret in ("Dependency Problem", "accepted_actions", "root_cause", "truth"):
            assert secret not in served
        assert "redis-cart" in served  # the objects themselves are there


def test_serve_mode_runs_the_clock_at_speed() -> None:
    with Twin.start("healthy", speed=200.0) as twin:
        deadline = time.monotonic() + 10
        while twin.sim_seconds < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert twin.sim_seconds >= 40
        with pytest.raises(RuntimeError, match="own clock"):
            twin.advance(1)
        pods = httpx.get(f"{twin.url}/api/v1/namespaces/shop/pods", timeout=5).json()
        assert len(pods["items"]) >= 11
    after = twin.sim_seconds
    time.sleep(0.2)
    assert twin.sim_seconds == after  # stopped


def test_bad_speed_is_refused() -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        Twin.start("healthy", speed=0)
