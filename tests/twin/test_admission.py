"""Defaulting and admission: objects read back as a real API server returns them."""

from __future__ import annotations

import ipaddress

import pytest

from tests.twin.test_controllers_support import (
    NS,
    container,
    create,
    deployment,
    live,
    make_cluster,
    service,
)
from twin.cluster import Cluster
from twin.controllers.admission import image_tag, qos_class
from twin.errors import ApiError
from twin.store import NAME_ALPHABET, Obj


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster(nodes=1)[0]


def pod(name: str = "p", **spec: object) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"containers": [container()], **spec},
    }


def test_pod_spec_defaults(cluster: Cluster) -> None:
    created = create(cluster, pod())
    spec = created["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["serviceAccountName"] == "default"
    assert spec["serviceAccount"] == "default"
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["securityContext"] == {}
    c = spec["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["ports"][0]["protocol"] == "TCP"
    assert created["status"] == {"phase": "Pending", "qosClass": "Burstable"}


def test_default_toleration_seconds(cluster: Cluster) -> None:
    created = create(cluster, pod())
    assert created["spec"]["tolerations"] == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]


def test_default_tolerations_not_added_when_already_tolerated(cluster: Cluster) -> None:
    own = {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 5,
    }
    created = create(cluster, pod(tolerations=[own]))
    keys = [t["key"] for t in created["spec"]["tolerations"]]
    assert keys == ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"]
    assert created["spec"]["tolerations"][0]["tolerationSeconds"] == 5
    everything = create(cluster, pod("q", tolerations=[{"operator": "Exists"}]))
    assert everything["spec"]["tolerations"] == [{"operator": "Exists"}]


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("registry.local:5000/team/nginx", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("registry.local:5000/team/nginx:1.25", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy_from_tag(cluster: Cluster, image: str, policy: str) -> None:
    obj = pod()
    obj["spec"]["containers"][0]["image"] = image
    assert create(cluster, obj)["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_image_tag_parsing() -> None:
    assert image_tag("redis:alpine") == "alpine"
    assert image_tag("localhost:5000/redis") == "latest"


def test_probe_defaults(cluster: Cluster) -> None:
    obj = pod()
    obj["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"port": 8080}}
    obj["spec"]["containers"][0]["livenessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 5,
    }
    c = create(cluster, obj)["spec"]["containers"][0]
    assert c["readinessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["livenessProbe"]["periodSeconds"] == 5
    assert c["livenessProbe"]["failureThreshold"] == 3
    assert "initialDelaySeconds" not in c["livenessProbe"]


def test_requests_default_to_limits_and_quantities_are_canonical(cluster: Cluster) -> None:
    obj = pod()
    obj["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 0.5, "memory": "2048Mi"}}
    created = create(cluster, obj)
    resources = created["spec"]["containers"][0]["resources"]
    assert resources == {
        "limits": {"cpu": "500m", "memory": "2Gi"},
        "requests": {"cpu": "500m", "memory": "2Gi"},
    }
    assert created["status"]["qosClass"] == "Guaranteed"


def test_qos_classes() -> None:
    def with_resources(*resources: dict[str, dict[str, str]]) -> Obj:
        return {
            "spec": {
                "containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]
            }
        }

    assert qos_class(with_resources({}, {})) == "BestEffort"
    full = {"cpu": "1", "memory": "1Gi"}
    assert qos_class(with_resources({"requests": full, "limits": full})) == "Guaranteed"
    assert qos_class(with_resources({"requests": full, "limits": full}, {})) == "Burstable"
    assert qos_class(with_resources({"requests": {"cpu": "1"}})) == "Burstable"
    assert qos_class(
        with_resources({"requests": {"cpu": "1000m"}, "limits": {"cpu": "1", "memory": "1Gi"}})
    ) == ("Burstable")


def test_unknown_priority_class_is_forbidden(cluster: Cluster) -> None:
    with pytest.raises(ApiError) as info:
        create(cluster, pod(priorityClassName="gold"))
    assert info.value.code == 403
    assert info.value.message == 'pods "p" is forbidden: no PriorityClass with name gold was found'
    system = create(cluster, pod("q", priorityClassName="system-cluster-critical"))
    assert system["spec"]["priority"] == 2000000000


def test_deployment_defaults(cluster: Cluster) -> None:
    obj = deployment()
    del obj["spec"]["replicas"]
    created = create(cluster, obj)
    spec = created["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    template = spec["template"]["spec"]
    assert template["restartPolicy"] == "Always"
    assert template["dnsPolicy"] == "ClusterFirst"
    assert template["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # What admission plugins add to pods is not in templates.
    assert "tolerations" not in template
    assert "serviceAccountName" not in template
    assert "enableServiceLinks" not in template
    assert created["metadata"]["generation"] == 1
    recreate = create(cluster, deployment("batch", strategy={"type": "Recreate"}))
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_statefulset_and_replicaset_defaults(cluster: Cluster) -> None:
    sts = create(
        cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": NS},
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [container()]},
                },
            },
        },
    )["spec"]
    assert sts["replicas"] == 1
    assert sts["podManagementPolicy"] == "OrderedReady"
    assert sts["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["revisionHistoryLimit"] == 10
    assert sts["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    rs = create(
        cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "solo", "namespace": NS},
            "spec": {
                "selector": {"matchLabels": {"app": "solo"}},
                "template": {
                    "metadata": {"labels": {"app": "solo"}},
                    "spec": {"containers": [container()]},
                },
            },
        },
    )
    assert rs["spec"]["replicas"] == 1


def test_workload_selector_must_match_template(cluster: Cluster) -> None:
    obj = deployment()
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiError) as info:
        create(cluster, obj)
    assert info.value.code == 422
    assert info.value.message == (
        'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"other"}: `selector` does not match template `labels`'
    )
    missing = deployment("nosel")
    del missing["spec"]["selector"]
    with pytest.raises(
        ApiError, match=r'Deployment.apps "nosel" is invalid: spec.selector: Required value'
    ):
        create(cluster, missing)


def test_workload_selector_is_immutable(cluster: Cluster) -> None:
    create(cluster, deployment())
    rt = cluster.rt("Deployment")
    obj = cluster.store.get(rt, NS, "web")
    obj["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    obj["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    with pytest.raises(ApiError) as info:
        cluster.replace(rt, obj)
    assert info.value.code == 422
    assert "spec.selector: Invalid value" in info.value.message
    assert info.value.message.endswith("field is immutable")


def test_recreate_with_rolling_parameters_is_invalid(cluster: Cluster) -> None:
    obj = deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    with pytest.raises(ApiError, match="may not be specified when strategy `type` is 'Recreate'"):
        create(cluster, obj)


def test_service_defaults_and_cluster_ip(cluster: Cluster) -> None:
    svc = create(cluster, service())
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert ipaddress.IPv4Address(spec["clusterIP"]) in ipaddress.IPv4Network("10.96.0.0/12")
    assert spec["clusterIP"] not in ("10.96.0.1", "10.96.0.10")
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert svc["status"] == {"loadBalancer": {}}
    bare = create(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "raw", "namespace": NS},
            "spec": {"ports": [{"port": 6379}]},
        },
    )
    assert bare["spec"]["ports"][0]["targetPort"] == 6379


def test_cluster_ip_is_deterministic_and_unique() -> None:
    first = make_cluster(nodes=1, seed=1)[0]
    second = make_cluster(nodes=1, seed=2)[0]
    ips = []
    for c in (first, second):
        created = [create(c, service(f"svc-{i}"))["spec"]["clusterIP"] for i in range(20)]
        assert len(set(created)) == 20
        ips.append(created)
    assert ips[0] == ips[1]


def test_cluster_ip_kept_on_update_and_immutable(cluster: Cluster) -> None:
    ip = create(cluster, service())["spec"]["clusterIP"]
    rt = cluster.rt("Service")
    fresh = service()
    fresh["spec"]["ports"][0]["port"] = 8080
    replaced = cluster.replace(rt, fresh)
    assert replaced["spec"]["clusterIP"] == ip
    assert replaced["spec"]["clusterIPs"] == [ip]
    changed = service()
    changed["spec"]["clusterIP"] = "10.96.5.5"
    with pytest.raises(ApiError) as info:
        cluster.replace(rt, changed)
    assert info.value.code == 422
    assert info.value.message == (
        'Service "web" is invalid: spec.clusterIPs[0]: '
        'Invalid value: []string{"10.96.5.5"}: may not change once set'
    )


def test_requested_cluster_ip_must_be_free_and_in_range(cluster: Cluster) -> None:
    one = service("one")
    one["spec"]["clusterIP"] = "10.100.0.50"
    assert create(cluster, one)["spec"]["clusterIP"] == "10.100.0.50"
    two = service("two")
    two["spec"]["clusterIP"] = "10.100.0.50"
    with pytest.raises(ApiError, match="provided IP is already allocated"):
        create(cluster, two)
    outside = service("three")
    outside["spec"]["clusterIP"] = "192.168.0.1"
    with pytest.raises(ApiError, match="is not in the valid range"):
        create(cluster, outside)


def test_headless_and_node_port_services(cluster: Cluster) -> None:
    headless = service("db")
    headless["spec"]["clusterIP"] = "None"
    spec = create(cluster, headless)["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["clusterIPs"] == ["None"]
    node_port = service("edge")
    node_port["spec"]["type"] = "LoadBalancer"
    spec = create(cluster, node_port)["spec"]
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["allocateLoadBalancerNodePorts"] is True


def test_create_in_missing_namespace_is_not_found(cluster: Cluster) -> None:
    with pytest.raises(ApiError) as info:
        create(cluster, service(namespace="nowhere"))
    assert info.value.code == 404
    assert info.value.message == 'namespaces "nowhere" not found'
    assert info.value.status()["details"] == {"name": "nowhere", "kind": "namespaces"}


def test_create_in_terminating_namespace_is_forbidden(cluster: Cluster) -> None:
    ns = live(cluster, "Namespace", NS, namespace="")
    ns["status"]["phase"] = "Terminating"
    with pytest.raises(ApiError) as info:
        create(cluster, service())
    assert info.value.code == 403
    assert info.value.message == (
        'services "web" is forbidden: '
        "unable to create new content in namespace shop because it is being terminated"
    )


def test_namespace_defaults(cluster: Cluster) -> None:
    ns = live(cluster, "Namespace", NS, namespace="")
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": NS}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}


def test_system_namespaces_exist() -> None:
    cluster = make_cluster(nodes=0, namespaces=())[0]
    names = sorted(n["metadata"]["name"] for n in cluster.store.list(cluster.rt("Namespace")))
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_generate_name_is_filled_before_validation(cluster: Cluster) -> None:
    obj = pod()
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "web-"
    created = create(cluster, obj)
    name = created["metadata"]["name"]
    assert name.startswith("web-")
    assert len(name) == len("web-") + 5
    assert all(ch in NAME_ALPHABET for ch in name[4:])


def test_hpa_pdb_secret_defaults(cluster: Cluster) -> None:
    hpa = create(
        cluster,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5,
            },
        },
    )
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert "behavior" not in hpa["spec"]
    pdb = create(
        cluster,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    assert pdb["status"] == {
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
    }
    secret = create(
        cluster, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": NS}}
    )
    assert secret["type"] == "Opaque"


def test_hpa_behavior_is_completed_when_given(cluster: Cluster) -> None:
    hpa = create(
        cluster,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5,
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            },
        },
    )
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert behavior["scaleDown"]["policies"] == [
        {"type": "Percent", "value": 100, "periodSeconds": 15}
    ]
    assert behavior["scaleUp"]["policies"] == [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_update_without_status_keeps_the_stored_status(cluster: Cluster) -> None:
    create(cluster, deployment(replicas=1))
    cluster.advance(2)
    stored = live(cluster, "Deployment", "web")["status"]
    assert stored["conditions"]
    rt = cluster.rt("Deployment")
    body = cluster.store.get(rt, NS, "web")
    del body["status"]
    body["metadata"].setdefault("labels", {})["team"] = "shop"
    replaced = cluster.replace(rt, body)
    assert replaced["status"] == stored
    assert replaced["metadata"]["labels"] == {"team": "shop"}


def test_grpc_probe_service_defaults_to_empty_string() -> None:
    """kubectl describe reads probe.grpc.service; the API server defaults it to ""."""
    from twin.controllers.admission import default_probe

    probe: dict[str, object] = {"grpc": {"port": 7070}}
    default_probe(probe)
    assert probe["grpc"] == {"port": 7070, "service": ""}
    assert probe["periodSeconds"] == 10
