"""The HorizontalPodAutoscaler: CPU utilization of requests, tolerance, stabilization, limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.twin.test_controllers_support import (
    NS,
    container,
    create,
    deployment,
    events,
    live,
    make_cluster,
    messages,
    pods,
    settle,
)
from twin.behavior import DEFAULT_PROFILE
from twin.cluster import Cluster
from twin.runtime import ContainerRuntime, PodRuntime
from twin.store import Obj


def hpa(target: str = "web", *, max_replicas: int = 10, utilization: int = 50, **spec: Any) -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": utilization},
                    },
                }
            ],
            **spec,
        },
    }


def use_cpu(cluster: Cluster, cores: float) -> None:
    """What the traffic model writes: each running pod's container CPU use now."""
    for pod in pods(cluster, active_only=True):
        if pod.get("status", {}).get("phase") != "Running":
            continue
        uid = pod["metadata"]["uid"]
        runtime = cluster.pods.get(uid)
        if runtime is None:
            runtime = cluster.pods[uid] = PodRuntime(
                uid, NS, pod["metadata"]["name"], pod["spec"]["nodeName"]
            )
            runtime.containers["app"] = ContainerRuntime(
                "app", "web", DEFAULT_PROFILE, phase="running"
            )
        runtime.containers["app"].cpu = cores


class CpuLoad:
    """Keeps the per-pod CPU at a level, for pods that come and go."""

    name = "test-cpu-load"

    def __init__(self, cores: float) -> None:
        self.cores = cores

    def step(self, cluster: Cluster, dt: float) -> None:
        use_cpu(cluster, self.cores)


def conditions(obj: Obj) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in obj["status"].get("conditions", [])
    }


@pytest.fixture
def cluster() -> Cluster:
    c = make_cluster(nodes=3, cpu="8", memory="32Gi")[0]
    create(c, deployment(replicas=3, containers=[container(cpu="100m")]))
    settle(c, 40)  # running and ready for long enough that the samples count
    return c


def with_load(cluster: Cluster, cores: float) -> CpuLoad:
    load = CpuLoad(cores)
    cluster.controllers.append(load)
    use_cpu(cluster, cores)
    return load


def test_scale_up_on_cpu(cluster: Cluster) -> None:
    with_load(cluster, 0.1)  # 100% of the 100m request, target 50%
    create(cluster, hpa())
    cluster.advance(1)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 6
    assert messages(cluster, "SuccessfulRescale") == [
        "New size: 6; reason: cpu resource utilization (percentage of request) above target"
    ]
    (event,) = events(cluster, reason="SuccessfulRescale")
    assert event["source"]["component"] == "horizontal-pod-autoscaler"
    status = live(cluster, "HorizontalPodAutoscaler", "web")["status"]
    assert status["currentReplicas"] == 3
    assert status["desiredReplicas"] == 6
    assert status["lastScaleTime"] == cluster.now_str()
    assert status["currentMetrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageUtilization": 100, "averageValue": "100m"},
            },
        }
    ]
    assert conditions(live(cluster, "HorizontalPodAutoscaler", "web")) == {
        "AbleToScale": (
            "True",
            "SucceededRescale",
            "the HPA controller was able to update the target scale to 6",
        ),
        "ScalingActive": (
            "True",
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count "
            "from cpu resource utilization (percentage of request)",
        ),
        "ScalingLimited": (
            "False",
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        ),
    }
    assert [c["type"] for c in status["conditions"]] == [
        "AbleToScale",
        "ScalingActive",
        "ScalingLimited",
    ]


def test_within_tolerance_nothing_changes(cluster: Cluster) -> None:
    with_load(cluster, 0.054)  # 54% against 50%: ratio 1.08
    create(cluster, hpa())
    cluster.advance(31)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 3
    assert events(cluster, reason="SuccessfulRescale") == []
    ableto = conditions(live(cluster, "HorizontalPodAutoscaler", "web"))["AbleToScale"]
    assert ableto == ("True", "ReadyForNewScale", "recommended size matches current size")


def test_sync_period_is_fifteen_seconds(cluster: Cluster) -> None:
    load = with_load(cluster, 0.05)
    create(cluster, hpa())
    cluster.advance(1)
    load.cores = 0.1
    cluster.advance(13)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 3
    cluster.advance(2)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 6


def test_max_replicas_clamp(cluster: Cluster) -> None:
    with_load(cluster, 0.5)
    create(cluster, hpa(max_replicas=5))
    cluster.advance(1)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 5
    assert conditions(live(cluster, "HorizontalPodAutoscaler", "web"))["ScalingLimited"] == (
        "True",
        "TooManyReplicas",
        "the desired replica count is more than the maximum replica count",
    )


def test_scale_up_rate_limit(cluster: Cluster) -> None:
    with_load(cluster, 0.5)  # 1000%: wants 30
    create(cluster, hpa(max_replicas=50))
    cluster.advance(1)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 6  # max(2 x 3, 4)
    assert conditions(live(cluster, "HorizontalPodAutoscaler", "web"))["ScalingLimited"] == (
        "True",
        "ScaleUpLimit",
        "the desired replica count is increasing faster than the maximum scale rate",
    )


def test_scale_down_waits_for_the_stabilization_window(cluster: Cluster) -> None:
    load = with_load(cluster, 0.1)
    create(cluster, hpa())
    cluster.advance(1)
    load.cores = 0.05  # on target: six replicas is right
    settle(cluster, 30)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 6
    load.cores = 0.01  # 10%: wants 2
    settle(cluster, 240)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 6
    assert (
        conditions(live(cluster, "HorizontalPodAutoscaler", "web"))["AbleToScale"][1]
        == "ScaleDownStabilized"
    )
    settle(cluster, 90)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 2
    assert (
        messages(cluster, "SuccessfulRescale")[-1]
        == "New size: 2; reason: All metrics below target"
    )


def test_behavior_policies_limit_scale_up(cluster: Cluster) -> None:
    with_load(cluster, 0.5)
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    create(cluster, hpa(max_replicas=50, behavior=behavior))
    cluster.advance(1)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 4
    settle(cluster, 30)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 4  # one pod per minute
    settle(cluster, 45)
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 5


def test_no_metrics(cluster: Cluster) -> None:
    create(cluster, hpa())
    cluster.advance(1)
    err = (
        "failed to get cpu utilization: unable to get metrics for resource cpu: "
        "no metrics returned from resource metrics API"
    )
    assert messages(cluster, "FailedGetResourceMetric") == [err]
    assert messages(cluster, "FailedComputeMetricsReplicas") == [
        "invalid metrics (1 invalid out of 1), first error is: "
        f"failed to get cpu resource metric value: {err}"
    ]
    assert conditions(live(cluster, "HorizontalPodAutoscaler", "web"))["ScalingActive"] == (
        "False",
        "FailedGetResourceMetric",
        f"the HPA was unable to compute the replica count: {err}",
    )
    assert live(cluster, "Deployment", "web")["spec"]["replicas"] == 3


def test_missing_request(cluster: Cluster) -> None:
    create(cluster, deployment("bare", replicas=1, containers=[container(cpu=None)]))
    settle(cluster, 30)
    with_load(cluster, 0.1)
    create(cluster, hpa("bare"))
    cluster.advance(1)
    (message,) = messages(cluster, "FailedGetResourceMetric")
    pod_name = next(p for p in pods(cluster) if p["metadata"]["name"].startswith("bare-"))[
        "metadata"
    ]["name"]
    assert message == (
        f"failed to get cpu utilization: missing request for cpu in container app of Pod {pod_name}"
    )


def test_missing_target(cluster: Cluster) -> None:
    create(cluster, hpa("nope"))
    cluster.advance(1)
    assert messages(cluster, "FailedGetScale") == ['deployments.apps "nope" not found']
    assert conditions(live(cluster, "HorizontalPodAutoscaler", "nope"))["AbleToScale"] == (
        "False",
        "FailedGetScale",
        "the HPA controller was unable to get the target's current scale: "
        'deployments.apps "nope" not found',
    )
