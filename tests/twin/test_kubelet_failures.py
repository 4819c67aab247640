"""The kubelet when containers fail: CrashLoopBackOff, OOMKilled, start behaviours,
image pull failures and configuration errors, restart policies."""

from __future__ import annotations

import base64
import itertools
import json

import pytest

from tests.twin.test_kubelet import NS, WEB, KubeletSim, running, web
from twin.clock import parse_rfc3339

Mi = 2**20


def seconds(sim: KubeletSim, stamp: str) -> float:
    return (parse_rfc3339(stamp) - sim.cluster.clock.start).total_seconds()


def oom_loop(sim: KubeletSim, name: str, until: float) -> list[tuple[float, float]]:
    """Push memory over the limit whenever the container runs.

    Returns (finishedAt, next startedAt) pairs, in simulated seconds.
    """
    pairs: list[tuple[float, float]] = []
    last_finish: float | None = None
    last_start: float | None = None
    while sim.now < until:
        sim.advance(1)
        st = sim.container(name)
        kind, detail = next(iter(st["state"].items()))
        if kind == "running":
            started = seconds(sim, detail["startedAt"])
            if last_finish is not None and started != last_start:
                pairs.append((last_finish, started))
            last_start = started
            ctr = sim.runtime(name).containers["app"]
            ctr.memory = 2 * 64 * Mi
        term = (st["lastState"] or {}).get("terminated") or st["state"].get("terminated")
        if term:
            last_finish = seconds(sim, term["finishedAt"])
    return pairs


@pytest.fixture
def sim() -> KubeletSim:
    return KubeletSim()


# -- CrashLoopBackOff ------------------------------------------------------------


def test_crash_loop_back_off_doubles_from_10s_to_5m(sim: KubeletSim) -> None:
    sim.pod("oom", [web(name="app", resources={"limits": {"memory": "64Mi"}})])
    sim.run_until(running(sim, "oom"), 60)
    pairs = oom_loop(sim, "oom", sim.now + 1300)
    waits = [start - finish for finish, start in pairs]
    # The first restart follows the exit at the next sync (PLEG relists every second).
    assert waits[:8] == [1, 10, 20, 40, 80, 160, 300, 300]


def test_crash_loop_status_message_and_events(sim: KubeletSim) -> None:
    sim.pod("oom", [web(name="app", resources={"limits": {"memory": "64Mi"}})])
    sim.run_until(running(sim, "oom"), 60)
    uid = sim.get("oom")["metadata"]["uid"]
    seen: dict[str, str] = {}
    for _ in range(200):
        sim.advance(1)
        if sim.state("oom")[0] == "running":
            sim.runtime("oom").containers["app"].memory = 200 * Mi
        kind, detail = sim.state("oom")
        if kind == "waiting":
            seen.setdefault(detail["message"], sim.status("oom")["phase"])
    pod = f"oom_{NS}({uid})"
    assert list(seen) == [
        f"back-off 10s restarting failed container=app pod={pod}",
        f"back-off 20s restarting failed container=app pod={pod}",
        f"back-off 40s restarting failed container=app pod={pod}",
        f"back-off 1m20s restarting failed container=app pod={pod}",
        f"back-off 2m40s restarting failed container=app pod={pod}",
    ]
    assert set(seen.values()) == {"Running"}
    backoff = sim.events("oom", "BackOff")
    assert len(backoff) == 1
    assert backoff[0]["type"] == "Warning"
    assert backoff[0]["message"] == f"Back-off restarting failed container app in pod {pod}"
    assert backoff[0]["involvedObject"]["fieldPath"] == "spec.containers{app}"
    assert backoff[0]["count"] > 1
    st = sim.container("oom")
    assert st["ready"] is False
    assert st["restartCount"] == 5


def test_back_off_resets_after_ten_minutes_of_running(sim: KubeletSim) -> None:
    sim.pod("oom", [web(name="app", resources={"limits": {"memory": "64Mi"}})])
    sim.run_until(running(sim, "oom"), 60)
    oom_loop(sim, "oom", sim.now + 100)  # several crashes: the back-off has grown
    sim.run_until(running(sim, "oom"), 400)
    sim.advance(700)  # runs quietly for more than 10 minutes
    restarts = sim.container("oom")["restartCount"]
    sim.runtime("oom").containers["app"].memory = 200 * Mi
    sim.advance(1)
    finished = sim.container("oom")["state"]["terminated"]["finishedAt"]
    restarted = sim.run_until(running(sim, "oom"), 30)
    assert restarted - seconds(sim, finished) == 1
    assert sim.container("oom")["restartCount"] == restarts + 1
    sim.runtime("oom").containers["app"].memory = 200 * Mi
    sim.run_until(lambda: sim.state("oom")[0] == "waiting", 5)
    assert sim.state("oom")[1]["message"].startswith("back-off 10s ")


# -- OOMKilled -------------------------------------------------------------------


def test_oom_killed_when_memory_passes_the_limit(sim: KubeletSim) -> None:
    sim.profile(WEB, memory=90 * Mi)
    sim.pod("app", [web(name="app", resources={"limits": {"memory": "128Mi"}})])
    sim.run_until(running(sim, "app"), 60)
    ctr = sim.runtime("app").containers["app"]
    assert ctr.memory == 30 * Mi  # a third of the profile's working set at start
    ctr.memory = 128 * Mi  # at the limit: still alive
    sim.advance(1)
    assert sim.state("app")[0] == "running"
    ctr.memory = 128 * Mi + 1
    ctr.requests_served = 500
    ctr.cpu = 0.4
    sim.advance(1)
    kind, term = sim.state("app")
    assert kind == "terminated"
    assert term["reason"] == "OOMKilled"
    assert term["exitCode"] == 137
    assert term["containerID"] == sim.container("app")["containerID"]
    assert ctr.phase == "terminated"
    assert not ctr.serving
    sim.advance(1)
    assert sim.state("app")[0] == "running"
    last = sim.container("app")["lastState"]["terminated"]
    assert last["reason"] == "OOMKilled"
    assert last["exitCode"] == 137
    assert sim.container("app")["restartCount"] == 1
    assert (ctr.memory, ctr.requests_served, ctr.cpu) == (30 * Mi, 0, 0.0)
    assert ctr.started_at == sim.now
    # No per-pod OOM event: only the status and the restart's events show it.
    reasons = {e["reason"] for e in sim.events("app")}
    assert not any("OOM" in r for r in reasons)


def test_a_limit_below_the_start_memory_kills_soon_after_start(sim: KubeletSim) -> None:
    sim.profile(WEB, memory=300 * Mi)
    sim.pod("tiny", [web(name="app", resources={"limits": {"memory": "64Mi"}})])
    started = sim.run_until(running(sim, "tiny"), 60)
    ended = sim.run_until(lambda: sim.state("tiny")[0] != "running", 10)
    assert ended - started == 1
    assert sim.state("tiny")[1]["reason"] == "OOMKilled"


# -- start behaviours -------------------------------------------------------------


def test_crash_on_start_prints_its_failure_and_exits_1(sim: KubeletSim) -> None:
    image = "example.org/api:2"
    sim.profile(
        image,
        start="crash-on-start",
        log_style="python-json",
        logger="api",
        startup_logs=("never printed",),
        on_start_failure=("Traceback (most recent call last):", "ValueError: bad config on {pod}"),
    )
    sim.pod("api", [web(name="api", image=image)])
    started = sim.run_until(running(sim, "api"), 60)
    ended = sim.run_until(lambda: sim.state("api")[0] != "running", 10)
    assert 1 <= ended - started <= 2
    term = sim.state("api")[1]
    assert (term["exitCode"], term["reason"]) == (1, "Error")
    sim.run_until(lambda: sim.container("api")["restartCount"] == 1, 10)
    previous = [json.loads(line) for line in sim.logs("api", "api", previous=True)]
    assert [p["message"] for p in previous] == [
        "Traceback (most recent call last):",
        "ValueError: bad config on api",
    ]
    assert {p["severity"] for p in previous} == {"ERROR"}
    assert {p["name"] for p in previous} == {"api"}


def test_config_error_exits_naming_the_missing_key(sim: KubeletSim) -> None:
    image = "example.org/billing:1.4"
    sim.profile(
        image, start="config-error", on_start_failure=("FATAL config key DATABASE_URL missing",)
    )
    sim.pod("billing", [web(name="billing", image=image)])
    sim.run_until(lambda: sim.container("billing")["restartCount"] == 1, 60)
    assert sim.logs("billing", "billing", previous=True) == [
        "FATAL config key DATABASE_URL missing"
    ]
    assert sim.container("billing")["lastState"]["terminated"]["exitCode"] == 1


def test_config_error_without_a_named_key_names_one(sim: KubeletSim) -> None:
    image = "example.org/team/frontend-v2:2.0"
    sim.profile(
        image, start="config-error", on_start_failure=("panic: environment variable not set",)
    )
    sim.pod("fe", [web(name="fe", image=image)])
    sim.run_until(lambda: sim.container("fe")["restartCount"] == 1, 60)
    assert sim.logs("fe", "fe", previous=True) == ["FATAL config key FRONTEND_V2_CONFIG missing"]


def test_required_env_missing_behaves_as_config_error(sim: KubeletSim) -> None:
    image = "example.org/frontend:1"
    sim.profile(
        image,
        required_env=("CART_ADDR", "DATABASE_URL"),
        startup_logs=("serving",),
        on_start_failure=("panic: unrelated",),
    )
    sim.pod("fe", [web(name="fe", image=image, env=[{"name": "CART_ADDR", "value": "cart:7070"}])])
    sim.run_until(lambda: sim.container("fe")["restartCount"] == 1, 60)
    assert sim.logs("fe", "fe", previous=True) == ["FATAL config key DATABASE_URL missing"]
    sim.profile(
        image, required_env=("DATABASE_URL",), on_start_failure=('panic: env "{key}" not set',)
    )
    sim.pod("fe2", [web(name="fe", image=image)])
    sim.run_until(lambda: sim.container("fe2")["restartCount"] == 1, 60)
    assert sim.logs("fe2", "fe", previous=True) == ['panic: env "DATABASE_URL" not set']
    sim.pod(
        "fe3",
        [web(name="fe", image=image, env=[{"name": "DATABASE_URL", "value": "postgres://db"}])],
    )
    sim.run_until(running(sim, "fe3"), 60)
    sim.advance(30)
    assert sim.container("fe3")["restartCount"] == 0


def test_crash_after_requests_exits_2(sim: KubeletSim) -> None:
    image = "example.org/leaky:3"
    sim.profile(
        image, start="crash-after-requests", crash_after=100, on_start_failure=("panic: boom",)
    )
    sim.pod("leaky", [web(name="app", image=image)])
    sim.run_until(running(sim, "leaky"), 60)
    ctr = sim.runtime("leaky").containers["app"]
    ctr.requests_served = 99
    sim.advance(5)
    assert sim.state("leaky")[0] == "running"
    ctr.requests_served = 100
    sim.advance(1)
    kind, term = sim.state("leaky")
    assert (kind, term["exitCode"], term["reason"]) == ("terminated", 2, "Error")
    sim.advance(1)
    assert ctr.requests_served == 0
    assert sim.logs("leaky", "app", previous=True) == ["panic: boom"]


# -- restart policies -------------------------------------------------------------


def test_restart_policy_never_fails_the_pod(sim: KubeletSim) -> None:
    sim.profile("example.org/crash:1", start="crash-on-start")
    sim.pod("once", [web(name="app", image="example.org/crash:1")], restartPolicy="Never")
    sim.run_until(lambda: sim.status("once").get("phase") == "Failed", 60)
    assert sim.container("once")["restartCount"] == 0
    assert sim.state("once")[0] == "terminated"
    ready = sim.condition("once", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodFailed")
    assert sim.condition("once", "ContainersReady")["reason"] == "PodFailed"


def test_restart_policy_on_failure_restarts_failures(sim: KubeletSim) -> None:
    sim.profile("example.org/crash:1", start="crash-on-start")
    sim.pod("retry", [web(name="app", image="example.org/crash:1")], restartPolicy="OnFailure")
    sim.run_until(lambda: sim.container("retry")["restartCount"] == 2, 60)
    assert sim.status("retry")["phase"] == "Running"


# -- image pulls ----------------------------------------------------------------


MISSING = "registry.example.com/web:9.9-does-not-exist"


def test_missing_image_err_image_pull_then_image_pull_back_off(sim: KubeletSim) -> None:
    sim.profile(MISSING, start="missing-image")
    sim.pod("web", [web(image=MISSING)])
    reasons: list[tuple[float, str, str]] = []
    for _ in range(120):
        sim.advance(1)
        kind, detail = sim.state("web")
        if kind == "waiting" and (not reasons or reasons[-1][1] != detail["reason"]):
            reasons.append((sim.now, detail["reason"], detail.get("message", "")))
    error = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{MISSING}": '
        f'failed to resolve reference "{MISSING}": {MISSING}: not found'
    )
    assert [r[1] for r in reasons[:5]] == [
        "ContainerCreating",
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
    ]
    assert reasons[1][2] == error
    assert reasons[2][2] == f'Back-off pulling image "{MISSING}"'
    assert reasons[2][0] - reasons[1][0] == 1
    assert sim.status("web")["phase"] == "Pending"
    # Each attempt fails a second after it starts; attempts wait 10 s, then 20, 40 s.
    failures = [t for t, reason, _ in reasons if reason == "ErrImagePull"]
    assert [b - a for a, b in itertools.pairwise(failures)] == [11, 21, 41]
    assert sim.events("web", "Pulling")[0]["count"] == 4
    failed = sim.messages("web", "Failed")
    assert failed[:2] == [f'Failed to pull image "{MISSING}": {error}', "Error: ErrImagePull"]
    assert "Error: ImagePullBackOff" in failed
    back = sim.events("web", "BackOff")
    assert [(e["type"], e["message"]) for e in back] == [
        ("Normal", f'Back-off pulling image "{MISSING}"')
    ]


def test_docker_hub_missing_image_names_the_normalized_reference(sim: KubeletSim) -> None:
    sim.profile("nginx:nonexist", start="missing-image")
    sim.pod("web", [web(image="nginx:nonexist")])
    sim.run_until(lambda: sim.state("web")[1].get("reason") == "ErrImagePull", 30)
    ref = "docker.io/library/nginx:nonexist"
    assert sim.messages("web", "Failed")[0] == (
        'Failed to pull image "nginx:nonexist": rpc error: code = NotFound desc = failed to pull '
        f'and unpack image "{ref}": failed to resolve reference "{ref}": {ref}: not found'
    )


def test_pull_policy_never_without_the_image(sim: KubeletSim) -> None:
    sim.pod("web", [web(imagePullPolicy="Never")])
    sim.run_until(lambda: sim.state("web")[1].get("reason") == "ErrImageNeverPull", 30)
    message = f'Container image "{WEB}" is not present with pull policy of Never'
    assert sim.state("web")[1]["message"] == message
    assert sim.messages("web", "ErrImageNeverPull") == [message]
    assert sim.events("web", "ErrImageNeverPull")[0]["type"] == "Warning"


# -- configuration ----------------------------------------------------------------


def config_ref(kind: str, name: str, key: str, optional: bool = False) -> dict[str, object]:
    field = "configMapKeyRef" if kind == "ConfigMap" else "secretKeyRef"
    ref: dict[str, object] = {"name": name, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": "VALUE", "valueFrom": {field: ref}}


@pytest.mark.parametrize(
    ("kind", "create", "expected"),
    [
        ("ConfigMap", False, 'configmap "settings" not found'),
        ("ConfigMap", True, "couldn't find key level in ConfigMap demo/settings"),
        ("Secret", False, 'secret "settings" not found'),
        ("Secret", True, "couldn't find key level in Secret demo/settings"),
    ],
)
def test_create_container_config_error(
    sim: KubeletSim, kind: str, create: bool, expected: str
) -> None:
    if create:
        sim.create(kind, {"metadata": {"name": "settings"}, "data": {}})
    sim.pod("app", [web(env=[config_ref(kind, "settings", "level")])])
    sim.run_until(lambda: sim.state("app")[1].get("reason") == "CreateContainerConfigError", 60)
    assert sim.state("app") == (
        "waiting",
        {"reason": "CreateContainerConfigError", "message": expected},
    )
    assert sim.status("app")["phase"] == "Pending"
    failed = sim.events("app", "Failed")
    assert [(e["type"], e["message"]) for e in failed] == [("Warning", f"Error: {expected}")]
    # The kubelet retries every sync: the image is found again each time.
    sim.advance(30)
    assert sim.events("app", "Failed")[0]["count"] >= 3
    assert sim.events("app", "Pulled")[-1]["message"].endswith("already present on machine")


def test_fixing_the_config_map_lets_the_pod_start(sim: KubeletSim) -> None:
    sim.pod("app", [web(env=[config_ref("ConfigMap", "settings", "level")])])
    sim.run_until(lambda: sim.state("app")[1].get("reason") == "CreateContainerConfigError", 60)
    sim.create("ConfigMap", {"metadata": {"name": "settings"}, "data": {"level": "debug"}})
    started = sim.now
    at = sim.run_until(running(sim, "app"), 30)
    assert at - started <= 10
    assert sim.runtime("app").containers["server"].scratch["env"] == {"VALUE": "debug"}
    assert sim.container("app")["restartCount"] == 0


def test_env_from_sources_and_optional_references(sim: KubeletSim) -> None:
    sim.create("ConfigMap", {"metadata": {"name": "base"}, "data": {"MODE": "prod", "X": "1"}})
    secret = base64.b64encode(b"s3cret").decode()
    sim.create("Secret", {"metadata": {"name": "creds"}, "data": {"password": secret}})
    env = [
        {"name": "X", "value": "override"},
        {"name": "URL", "value": "http://$(MODE).example:$(PORT)/"},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        config_ref("ConfigMap", "absent", "k", optional=True),
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    env_from = [
        {"configMapRef": {"name": "base"}},
        {"secretRef": {"name": "missing"}, "prefix": "S_"}
        | {"secretRef": {"name": "missing", "optional": True}},
    ]
    sim.pod("app", [web(env=env, envFrom=env_from)])
    sim.run_until(running(sim, "app"), 60)
    assert sim.runtime("app").containers["server"].scratch["env"] == {
        "MODE": "prod",
        "X": "override",
        "URL": "http://prod.example:$(PORT)/",
        "PASSWORD": "s3cret",
        "POD": "app",
        "NODE": "node-1",
    }
    # Secret values never reach the logs or the API.
    assert "s3cret" not in json.dumps(sim.get("app"))
