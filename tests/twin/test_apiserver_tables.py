"""Server-side printing: the cells `kubectl get` shows, pod STATUS above all."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from twin.clock import DEFAULT_EPOCH
from twin.resources import Registry
from twin.tables import (
    format_endpoints,
    format_label_selector,
    human_duration,
    pod_summary,
    table,
)

NOW = DEFAULT_EPOCH + timedelta(hours=1)


def pod(
    statuses: list[dict[str, Any]],
    *,
    phase: str = "Running",
    init: list[dict[str, Any]] | None = None,
    init_specs: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "creationTimestamp": "2026-07-11T03:00:00Z"}
    meta.update(extra.pop("metadata", {}))
    status: dict[str, Any] = {"phase": phase, "containerStatuses": statuses}
    if init is not None:
        status["initContainerStatuses"] = init
    if conditions is not None:
        status["conditions"] = conditions
    status.update(extra)
    return {
        "metadata": meta,
        "spec": {
            "containers": [{"name": s["name"]} for s in statuses],
            "initContainers": init_specs
            if init_specs is not None
            else [{"name": i["name"]} for i in init or []],
        },
        "status": status,
    }


def running(name: str = "app", ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {}}}


def waiting(reason: str, name: str = "app", **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason}},
        **kw,
    }


def terminated(name: str = "app", **state: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (pod([running()]), ("1/1", "Running", "0")),
        (pod([waiting("ContainerCreating")], phase="Pending"), ("0/1", "ContainerCreating", "0")),
        (pod([waiting("ImagePullBackOff")], phase="Pending"), ("0/1", "ImagePullBackOff", "0")),
        (
            pod([running(), waiting("CrashLoopBackOff", name="side")]),
            ("1/2", "CrashLoopBackOff", "0"),
        ),
        (pod([terminated(reason="OOMKilled", exitCode=137)]), ("0/1", "OOMKilled", "0")),
        (pod([terminated(exitCode=3)], phase="Failed"), ("0/1", "ExitCode:3", "0")),
        (pod([terminated(exitCode=0, signal=9)]), ("0/1", "Signal:9", "0")),
        (pod([running(ready=False)]), ("0/1", "Running", "0")),
        (pod([], phase="Failed", reason="Evicted"), ("0/0", "Evicted", "0")),
        (pod([], phase="Pending"), ("0/0", "Pending", "0")),
        (
            pod(
                [],
                phase="Pending",
                conditions=[
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                ],
            ),
            ("0/0", "SchedulingGated", "0"),
        ),
    ],
)
def test_pod_status_from_container_states(
    case: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    assert pod_summary(case, NOW) == expected


def test_completed_with_a_running_container_is_running_or_not_ready() -> None:
    done = terminated(name="job", reason="Completed", exitCode=0)
    ready = pod([running(), done], conditions=[{"type": "Ready", "status": "True"}])
    assert pod_summary(ready, NOW)[1] == "Running"
    not_ready = pod([running(), done], conditions=[{"type": "Ready", "status": "False"}])
    assert pod_summary(not_ready, NOW)[1] == "NotReady"


def test_init_container_states() -> None:
    main = [waiting("PodInitializing")]
    assert (
        pod_summary(
            pod(main, phase="Pending", init=[waiting("PodInitializing", name="init")]), NOW
        )[1]
        == "Init:0/1"
    )
    crashing = pod(main, phase="Pending", init=[waiting("CrashLoopBackOff", name="init")])
    assert pod_summary(crashing, NOW)[1] == "Init:CrashLoopBackOff"
    failed = pod(main, phase="Pending", init=[terminated(name="init", reason="Error", exitCode=1)])
    assert pod_summary(failed, NOW)[1] == "Init:Error"
    coded = pod(main, phase="Pending", init=[terminated(name="init", exitCode=2)])
    assert pod_summary(coded, NOW)[1] == "Init:ExitCode:2"
    second = pod(
        main,
        phase="Pending",
        init=[terminated(name="a", reason="Completed", exitCode=0), running(name="b", ready=False)],
    )
    assert pod_summary(second, NOW)[1] == "Init:1/2"


def test_sidecar_init_containers_count_as_containers() -> None:
    sidecar = {**running(name="proxy"), "started": True}
    case = pod(
        [running()],
        init=[sidecar],
        init_specs=[{"name": "proxy", "restartPolicy": "Always"}],
        conditions=[{"type": "Initialized", "status": "True"}],
    )
    assert pod_summary(case, NOW) == ("2/2", "Running", "0")


def test_terminating_and_node_lost() -> None:
    deleting = pod([running()], metadata={"deletionTimestamp": "2026-07-11T03:59:00Z"})
    assert pod_summary(deleting, NOW)[1] == "Terminating"
    lost = pod(
        [running()], metadata={"deletionTimestamp": "2026-07-11T03:59:00Z"}, reason="NodeLost"
    )
    assert pod_summary(lost, NOW)[1] == "Unknown"
    finished = pod([], phase="Succeeded", metadata={"deletionTimestamp": "2026-07-11T03:59:00Z"})
    assert pod_summary(finished, NOW)[1] == "Succeeded"


def test_restarts_show_when_the_last_one_was() -> None:
    statuses = [
        {
            **running(restarts=4),
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-07-11T03:55:00Z"}},
        },
        {
            **running(name="b", restarts=1),
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-07-11T03:20:00Z"}},
        },
    ]
    assert pod_summary(pod(statuses), NOW)[2] == "5 (5m ago)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 1200, "3h20m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
        (800 * 86400, "2y70d"),
        (3000 * 86400, "8y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_selector_and_endpoint_formatting() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert format_label_selector(selector) == "app=web,!canary,tier in (a,b)"
    assert format_label_selector({}) == "<none>"
    endpoints = {
        "subsets": [
            {
                "addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)],
                "ports": [{"port": 8080}],
            }
        ]
    }
    assert format_endpoints(endpoints) == "10.0.0.0:8080,10.0.0.1:8080,10.0.0.2:8080 + 2 more..."
    assert format_endpoints({"subsets": []}) == "<none>"


def test_table_shape_and_include_object() -> None:
    registry = Registry()
    pods = registry.by_gvr("", "v1", "pods")
    assert pods is not None
    obj = pod([running()], phase="Succeeded")
    as_metadata = table(pods, [obj], NOW)
    (row,) = as_metadata["rows"]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
    assert row["conditions"][0]["reason"] == "Succeeded"
    assert table(pods, [obj], NOW, include_object="Object")["rows"][0]["object"] is obj
    assert table(pods, [obj], NOW, include_object="None")["rows"][0]["object"] is None
    cm = registry.by_gvr("", "v1", "configmaps")
    assert cm is not None
    cells = table(cm, [{"metadata": obj["metadata"], "data": {"a": "1", "b": "2"}}], NOW)["rows"][
        0
    ]["cells"]
    assert cells == ["p", 2, "60m"]
