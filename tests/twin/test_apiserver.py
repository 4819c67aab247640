"""The twin's API server, driven through the official `kubernetes` client over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from twin import errors
from twin.apiserver import ServerHandle, serve_in_thread
from twin.behavior import DEFAULT_PROFILE
from twin.cluster import Cluster
from twin.kubeconfig import write_kubeconfig
from twin.resources import ResourceType
from twin.runtime import ContainerRuntime, PodRuntime

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@dataclass
class Twin:
    cluster: Cluster
    server: ServerHandle
    api: Any
    kubeconfig: Path

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    def request(
        self,
        method: str,
        path: str,
        *,
        accept: str = "application/json",
        body: Any = None,
        content_type: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A raw request through the client's REST layer: the body and headers, or ApiException."""
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        params = self.api.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body, auth_settings=[]
        )
        response = self.api.call_api(*params)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return data, dict(response.getheaders())

    def get(self, path: str, accept: str = "application/json") -> Any:
        return json.loads(self.request("GET", path, accept=accept)[0])


def new_api(kubeconfig: Path) -> Any:
    return config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]


def stream(list_function: Any, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    events: Iterator[dict[str, Any]] = watch.Watch().stream(list_function, *args, **kwargs)  # type: ignore[no-untyped-call]
    return events


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Twin]:
    cluster = Cluster()
    cluster.create(cluster.rt("Namespace"), {"metadata": {"name": "default"}})
    server = serve_in_thread(cluster)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    api = new_api(kubeconfig)
    try:
        yield Twin(cluster, server, api, kubeconfig)
    finally:
        api.close()
        server.stop()


def status_body(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body or "{}")
    return body


def seed_pod(
    cluster: Cluster,
    name: str,
    *,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    containers: tuple[str, ...] = ("app",),
    node: str = "node-1",
    statuses: list[dict[str, Any]] | None = None,
    phase: str = "Running",
) -> dict[str, Any]:
    """A pod as the kubelet would have left it (written straight into the cluster)."""
    pod = {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "web"}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": c, "image": f"{c}:1"} for c in containers],
        },
        "status": {
            "phase": phase,
            "podIPs": [{"ip": "10.0.0.9"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": statuses
            if statuses is not None
            else [
                {
                    "name": c,
                    "image": f"{c}:1",
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {}},
                }
                for c in containers
            ],
        },
    }
    for status in pod["status"]["containerStatuses"]:  # type: ignore[index]
        # The API requires both; the pydantic client refuses a status without them.
        status.setdefault("image", f"{status['name']}:1")
        status.setdefault("imageID", "")
    return dict(cluster.create(cluster.rt("Pod"), pod))


def seed_deployment(cluster: Cluster, name: str = "web", replicas: int = 2) -> dict[str, Any]:
    body = {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"{name}:1",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        },
                        {"name": "proxy", "image": "proxy:1"},
                    ]
                },
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }
    return dict(cluster.create(cluster.rt("Deployment"), body))


# -- discovery and configuration ---------------------------------------------------------


def test_discovery_documents(twin: Twin) -> None:
    core = twin.get("/api/v1")
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods"]["shortNames"] == ["po"]
    assert names["pods"]["namespaced"]
    assert names["pods/log"]["verbs"] == ["get"]
    assert names["pods/eviction"]["group"] == "policy"
    assert names["pods/eviction"]["kind"] == "Eviction"
    apps = twin.get("/apis/apps/v1")
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    groups = {g["name"] for g in twin.get("/apis")["groups"]}
    assert {"apps", "metrics.k8s.io", "events.k8s.io", "policy"} <= groups
    assert twin.get("/version")["gitVersion"].startswith("v1.")


def test_aggregated_discovery_when_asked_for(twin: Twin) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    body, headers = twin.request("GET", "/apis", accept=accept)
    assert "as=APIGroupDiscoveryList" in headers["Content-Type"]
    doc = json.loads(body)
    assert doc["kind"] == "APIGroupDiscoveryList"
    apps = next(i for i in doc["items"] if i["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced"
    assert deploy["shortNames"] == ["deploy"]
    assert {
        "subresource": "scale",
        "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "verbs": ["get", "patch", "update"],
    } in deploy["subresources"]


def test_load_kube_config_sets_the_default_client(twin: Twin) -> None:
    previous = client.Configuration.get_default_copy()
    try:
        config.load_kube_config(config_file=str(twin.kubeconfig))  # type: ignore[no-untyped-call]
        with client.ApiClient() as api:
            core: Any = client.CoreV1Api(api)
            namespaces = core.list_namespace()
        assert [n.metadata.name for n in namespaces.items] == ["default"]
    finally:
        client.Configuration.set_default(previous)


# -- CRUD --------------------------------------------------------------------------------


def test_create_get_replace_delete(twin: Twin) -> None:
    core = twin.core
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cfg", "labels": {"a": "1"}}, "data": {"k": "v"}}
    )
    assert created.metadata.uid
    assert created.metadata.resource_version
    got = core.read_namespaced_config_map("cfg", "default")
    assert got.data == {"k": "v"}
    got.data["k"] = "v2"
    replaced = core.replace_namespaced_config_map("cfg", "default", got)
    assert replaced.data == {"k": "v2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    core.delete_namespaced_config_map("cfg", "default")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("cfg", "default")
    assert exc.value.status == 404
    assert twin.cluster.store.find(twin.cluster.rt("ConfigMap"), "default", "cfg") is None


def test_generate_name_and_cluster_scoped_objects(twin: Twin) -> None:
    cm = twin.core.create_namespaced_config_map("default", {"metadata": {"generateName": "job-"}})
    assert cm.metadata.name.startswith("job-")
    assert len(cm.metadata.name) == 9
    node = twin.core.create_node(
        {"metadata": {"name": "node-9"}, "status": {"capacity": {"cpu": "4"}}}
    )
    assert node.status.capacity == {"cpu": "4"}, "nodes keep the status they register with"
    assert [n.metadata.name for n in twin.core.list_node().items] == ["node-9"]


def test_create_resets_status_and_labels_namespaces(twin: Twin) -> None:
    ns = twin.core.create_namespace({"metadata": {"name": "shop"}, "status": {"phase": "Bogus"}})
    assert ns.status.phase == "Active"
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "shop"}
    pod = twin.core.create_namespaced_pod(
        "shop",
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "a:1"}]},
            "status": {"phase": "Running"},
        },
    )
    assert pod.status.phase == "Pending"
    assert pod.status.qos_class == "BestEffort"


def test_label_and_field_selectors_and_all_namespaces(twin: Twin) -> None:
    twin.cluster.create(twin.cluster.rt("Namespace"), {"metadata": {"name": "shop"}})
    seed_pod(twin.cluster, "a", labels={"app": "web", "tier": "front"})
    seed_pod(twin.cluster, "b", labels={"app": "db"}, node="node-2")
    seed_pod(twin.cluster, "c", namespace="shop", labels={"app": "web"}, phase="Pending")
    core = twin.core
    web = core.list_pod_for_all_namespaces(label_selector="app=web")
    assert sorted(p.metadata.name for p in web.items) == ["a", "c"]
    names = [
        p.metadata.name
        for p in core.list_namespaced_pod("default", label_selector="app in (web,db),!tier").items
    ]
    assert names == ["b"]
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-2")
    assert [p.metadata.name for p in on_node.items] == ["b"]
    not_running = core.list_pod_for_all_namespaces(field_selector="status.phase!=Running")
    assert [p.metadata.name for p in not_running.items] == ["c"]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", label_selector="app in (web")
    assert exc.value.status == 400


def test_limit_and_continue_page_through_a_list(twin: Twin) -> None:
    for i in range(5):
        twin.core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{i}"}})
    first = twin.core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1"]
    assert first.metadata.remaining_item_count == 3
    second = twin.core.list_namespaced_config_map(
        "default", limit=2, _continue=first.metadata.var_continue
    )
    assert [c.metadata.name for c in second.items] == ["cm-2", "cm-3"]
    third = twin.core.list_namespaced_config_map(
        "default", limit=2, _continue=second.metadata.var_continue
    )
    assert [c.metadata.name for c in third.items] == ["cm-4"]
    assert third.metadata.var_continue is None


# -- patches, conflicts, dry-run -------------------------------------------------------------


def test_the_three_patch_types(twin: Twin) -> None:
    seed_deployment(twin.cluster)
    apps = twin.apps
    smp = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "image": "web:2", "env": [{"name": "B", "value": "20"}]}
                    ]
                }
            }
        }
    }
    patched = apps.patch_namespaced_deployment("web", "default", smp)
    app, proxy = patched.spec.template.spec.containers
    assert (app.image, proxy.image) == ("web:2", "proxy:1")
    assert [(e.name, e.value) for e in app.env] == [("A", "1"), ("B", "20")]
    assert patched.metadata.generation == 2

    raw, _ = twin.request(
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        body={"metadata": {"labels": {"team": "x"}}, "spec": {"replicas": 4}},
        content_type="application/merge-patch+json",
    )
    merge = json.loads(raw)
    assert merge["metadata"]["labels"] == {"team": "x"}
    assert merge["spec"]["replicas"] == 4

    ops = [{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "proxy:2"}]
    patched = apps.patch_namespaced_deployment("web", "default", ops)
    assert patched.spec.template.spec.containers[1].image == "proxy:2"
    kinds = [r.patch_type for r in twin.cluster.write_log]
    assert kinds == [
        "application/strategic-merge-patch+json",
        "application/merge-patch+json",
        "application/json-patch+json",
    ]


def test_patch_keeps_status_and_bad_json_patch_is_422(twin: Twin) -> None:
    seed_deployment(twin.cluster)
    patched = twin.apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 99}})
    assert patched.status.replicas == 2, "status is written through the status subresource only"
    with pytest.raises(ApiException) as exc:
        twin.apps.patch_namespaced_deployment(
            "web", "default", [{"op": "replace", "path": "/metadata/annotations", "value": {}}]
        )
    assert exc.value.status == 422
    assert status_body(exc.value)["reason"] == "Invalid"


def test_put_with_a_stale_resource_version_conflicts(twin: Twin) -> None:
    core = twin.core
    core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"k": "1"}})
    stale = core.read_namespaced_config_map("cfg", "default")
    fresh = core.read_namespaced_config_map("cfg", "default")
    fresh.data = {"k": "2"}
    core.replace_namespaced_config_map("cfg", "default", fresh)
    stale.data = {"k": "3"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("cfg", "default", stale)
    body = status_body(exc.value)
    assert exc.value.status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert core.read_namespaced_config_map("cfg", "default").data == {"k": "2"}


def test_dry_run_stores_nothing_and_is_logged(twin: Twin) -> None:
    cluster = twin.cluster
    seed_deployment(cluster)
    rv_before = cluster.store.resource_version
    created = twin.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "dry"}}, dry_run="All"
    )
    assert created.metadata.name == "dry"
    patched = twin.apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"replicas": 9}}, dry_run="All"
    )
    assert patched.spec.replicas == 9
    scaled = twin.apps.patch_namespaced_deployment_scale(
        "web", "default", {"spec": {"replicas": 7}}, dry_run="All"
    )
    assert scaled.spec.replicas == 7
    twin.apps.delete_namespaced_deployment("web", "default", dry_run="All")
    assert cluster.store.resource_version == rv_before
    assert cluster.store.find(cluster.rt("ConfigMap"), "default", "dry") is None
    assert cluster.store.get(cluster.rt("Deployment"), "default", "web")["spec"]["replicas"] == 2
    records = [
        (r.verb, r.resource, r.name, r.subresource, r.dry_run, r.code) for r in cluster.write_log
    ]
    assert records == [
        ("create", "configmaps", "dry", "", True, 201),
        ("patch", "deployments.apps", "web", "", True, 200),
        ("patch", "deployments.apps", "web", "scale", True, 200),
        ("delete", "deployments.apps", "web", "", True, 200),
    ]


def test_dry_run_runs_admission(twin: Twin) -> None:
    def deny(cluster: Cluster, rt: ResourceType, obj: dict[str, Any], operation: str) -> None:
        if rt.kind == "Pod" and operation == "CREATE":
            raise errors.forbidden(
                "pods",
                obj["metadata"].get("name", ""),
                "exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0",
            )

    twin.cluster.admission.append(deny)
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "a"}]}}
    with pytest.raises(ApiException) as exc:
        twin.core.create_namespaced_pod("default", body, dry_run="All")
    status = status_body(exc.value)
    assert exc.value.status == 403
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "p" is forbidden: exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0'
    )
    assert status["details"] == {"name": "p", "kind": "pods"}
    record = twin.cluster.write_log[-1]
    assert (record.verb, record.code, record.dry_run) == ("create", 403, True)


def test_write_log_records_failures_and_hides_secret_values(twin: Twin) -> None:
    core = twin.core
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "db"}, "stringData": {"password": "hunter2"}}
    )
    with pytest.raises(ApiException):
        core.patch_namespaced_config_map("missing", "default", {"data": {"a": "b"}})
    secret_record, missing = twin.cluster.write_log
    assert secret_record.body["stringData"] == {"password": "<redacted>"}
    assert "hunter2" not in repr(twin.cluster.write_log)
    assert (missing.verb, missing.resource, missing.name, missing.code) == (
        "patch",
        "configmaps",
        "missing",
        404,
    )
    assert missing.time == "2026-07-11T03:00:00Z"
    assert missing.elapsed == 0.0
    stored = twin.cluster.store.get(twin.cluster.rt("Secret"), "default", "db")
    assert stored["stringData"] == {"password": "hunter2"}, "the store keeps the secret"


# -- subresources ---------------------------------------------------------------------------------


def test_scale_subresource(twin: Twin) -> None:
    seed_deployment(twin.cluster)
    apps = twin.apps
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=web")
    scale.spec.replicas = 5
    assert apps.replace_namespaced_deployment_scale("web", "default", scale).spec.replicas == 5
    patched = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    assert patched.spec.replicas == 0
    assert (
        twin.cluster.store.get(twin.cluster.rt("Deployment"), "default", "web")["spec"]["replicas"]
        == 0
    )
    scale = apps.read_namespaced_deployment_scale("web", "default")
    scale.metadata.resource_version = "1"
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment_scale("web", "default", scale)
    assert exc.value.status == 409
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": -1}})
    assert exc.value.status == 422
    assert "spec.replicas: Invalid value: -1" in status_body(exc.value)["message"]


def test_status_subresource_writes_only_status(twin: Twin) -> None:
    seed_deployment(twin.cluster)
    apps = twin.apps
    dep = apps.read_namespaced_deployment("web", "default")
    dep.spec.replicas = 10
    dep.status.ready_replicas = 1
    result = apps.replace_namespaced_deployment_status("web", "default", dep)
    assert (result.spec.replicas, result.status.ready_replicas) == (2, 1)
    result = apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 3}})
    assert result.status.replicas == 3


def write_log_lines(
    cluster: Cluster, pod: dict[str, Any], container: str, lines: list[str]
) -> None:
    for line in lines:
        cluster.logs.append(pod["metadata"]["uid"], container, cluster.clock.now(), line)
        cluster.clock.advance(1)


def test_logs_current_previous_tail_limit_and_since(twin: Twin) -> None:
    cluster = twin.cluster
    pod = seed_pod(
        cluster,
        "web-1",
        statuses=[
            {
                "name": "app",
                "ready": True,
                "restartCount": 1,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }
        ],
    )
    uid = pod["metadata"]["uid"]
    cluster.logs.new_instance(uid, "app")
    write_log_lines(cluster, pod, "app", ["panic: boom"])
    cluster.logs.new_instance(uid, "app")
    write_log_lines(cluster, pod, "app", [f"line {i}" for i in range(5)])
    core = twin.core
    assert core.read_namespaced_pod_log("web-1", "default") == "".join(
        f"line {i}\n" for i in range(5)
    )
    assert core.read_namespaced_pod_log("web-1", "default", previous=True) == "panic: boom\n"
    assert core.read_namespaced_pod_log("web-1", "default", tail_lines=2) == "line 3\nline 4\n"
    assert core.read_namespaced_pod_log("web-1", "default", limit_bytes=9) == "line 0\nli"
    assert core.read_namespaced_pod_log("web-1", "default", since_seconds=2) == "line 3\nline 4\n"
    stamped = core.read_namespaced_pod_log("web-1", "default", timestamps=True, tail_lines=1)
    assert stamped.startswith("2026-07-11T03:00:05.000000Z line 4")


def test_log_errors_worded_as_the_kubelet_words_them(twin: Twin) -> None:
    cluster = twin.cluster
    seed_pod(
        cluster,
        "starting",
        statuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }
        ],
    )
    seed_pod(cluster, "two", containers=("a", "b"))
    seed_pod(
        cluster,
        "pulling",
        statuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff"}},
            }
        ],
    )
    core = twin.core

    def error_of(name: str, **kwargs: Any) -> tuple[int, str]:
        with pytest.raises(ApiException) as exc:
            core.read_namespaced_pod_log(name, "default", **kwargs)
        return exc.value.status, status_body(exc.value)["message"]

    assert error_of("starting") == (
        400,
        'container "app" in pod "starting" is waiting to start: ContainerCreating',
    )
    assert error_of("starting", previous=True) == (
        400,
        'previous terminated container "app" in pod "starting" not found',
    )
    assert error_of("two") == (
        400,
        "a container name must be specified for pod two, choose one of: [a b]",
    )
    assert error_of("two", container="c") == (400, "container c is not valid for pod two")
    assert error_of("pulling") == (
        400,
        'container "app" in pod "pulling" is waiting to start: trying and failing to pull image',
    )
    assert error_of("nope")[0] == 404


def test_logs_during_crash_loop_back_off_read_the_last_instance(twin: Twin) -> None:
    cluster = twin.cluster
    pod = seed_pod(
        cluster,
        "crashy",
        statuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }
        ],
    )
    uid = pod["metadata"]["uid"]
    cluster.logs.new_instance(uid, "app")
    write_log_lines(cluster, pod, "app", ["first run"])
    cluster.logs.new_instance(uid, "app")
    write_log_lines(cluster, pod, "app", ["FATAL missing DATABASE_URL"])
    assert twin.core.read_namespaced_pod_log("crashy", "default") == "FATAL missing DATABASE_URL\n"
    previous = twin.core.read_namespaced_pod_log("crashy", "default", previous=True)
    assert previous == "FATAL missing DATABASE_URL\n"


def test_eviction_respects_disruption_budgets(twin: Twin) -> None:
    cluster = twin.cluster
    seed_pod(cluster, "a")
    seed_pod(cluster, "b")
    pdb_rt = cluster.rt("PodDisruptionBudget")
    cluster.create(
        pdb_rt,
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 0, "desiredHealthy": 2, "currentHealthy": 2},
        },
    )
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "a", "namespace": "default"},
    }
    with pytest.raises(ApiException) as exc:
        twin.core.create_namespaced_pod_eviction("a", "default", eviction)
    status = status_body(exc.value)
    assert exc.value.status == 429
    assert status["reason"] == "TooManyRequests"
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert status["details"]["causes"][0] == {
        "reason": "DisruptionBudget",
        "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
    }
    pdb = cluster.store.get(pdb_rt, "default", "web", live=True)
    pdb["status"]["disruptionsAllowed"] = 1
    cluster.store.commit(pdb_rt, pdb)
    twin.core.create_namespaced_pod_eviction("a", "default", eviction)
    evicted = cluster.store.get(cluster.rt("Pod"), "default", "a")
    assert evicted["metadata"]["deletionTimestamp"]
    assert cluster.store.get(pdb_rt, "default", "web")["status"]["disruptionsAllowed"] == 0
    assert cluster.write_log[-1].subresource == "eviction"


def test_binding_assigns_a_node(twin: Twin) -> None:
    twin.core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "a"}]}},
    )
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "node-3"},
    }
    twin.request("POST", "/api/v1/namespaces/default/pods/p/binding", body=binding)
    pod = twin.core.read_namespaced_pod("p", "default")
    assert pod.spec.node_name == "node-3"
    assert [(c.type, c.status) for c in pod.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(ApiException) as exc:
        twin.request("POST", "/api/v1/namespaces/default/pods/p/binding", body=binding)
    assert exc.value.status == 409
    assert 'pod p is already assigned to node "node-3"' in status_body(exc.value)["message"]


# -- watch ----------------------------------------------------------------------------------------


def test_watch_resumes_from_a_listed_resource_version(twin: Twin) -> None:
    core = twin.core
    core.create_namespaced_config_map("default", {"metadata": {"name": "a", "labels": {"w": "1"}}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "b", "labels": {"w": "1"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    core.delete_namespaced_config_map("b", "default")
    events = [
        (e["type"], e["object"].metadata.name)
        for e in stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="w=1",
            resource_version=rv,
            timeout_seconds=1,
        )
    ]
    assert events == [("MODIFIED", "a")]


def test_watch_without_resource_version_starts_with_added_then_streams(twin: Twin) -> None:
    core = twin.core
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})

    def later() -> None:
        time.sleep(0.3)
        core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
        core.delete_namespaced_config_map("a", "default")

    thread = threading.Thread(target=later)
    thread.start()
    w: Any = watch.Watch()  # type: ignore[no-untyped-call]
    seen = []
    for event in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    thread.join()
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]


def test_watch_from_a_forgotten_version_is_gone(twin: Twin) -> None:
    body, _ = twin.request(
        "GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1&timeoutSeconds=1"
    )
    event = json.loads(body.splitlines()[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


def test_stopping_the_server_ends_open_watches(tmp_path: Path) -> None:
    cluster = Cluster()
    cluster.create(cluster.rt("Namespace"), {"metadata": {"name": "default"}})
    server = serve_in_thread(cluster)
    api = new_api(write_kubeconfig(tmp_path / "kc", server.url))
    core: Any = client.CoreV1Api(api)
    outcome: list[str] = []

    def consume() -> None:
        try:
            for event in stream(core.list_namespaced_config_map, "default"):
                outcome.append(event["type"])
        except Exception as exc:  # the client re-watches and finds the server gone
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    thread.join(10)
    api.close()
    assert not thread.is_alive(), outcome
    assert time.monotonic() - started < 5


# -- errors ---------------------------------------------------------------------------------------


def test_error_shapes(twin: Twin) -> None:
    core = twin.core
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("ghost", "default")
    assert status_body(exc.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "ghost" not found',
        "reason": "NotFound",
        "details": {"name": "ghost", "kind": "pods"},
        "code": 404,
    }
    core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    assert exc.value.status == 409
    assert status_body(exc.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    body = status_body(exc.value)
    assert exc.value.status == 422
    assert body["reason"] == "Invalid"
    assert body["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase '
        "RFC 1123 subdomain must consist of"
    )
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert exc.value.status == 404
    assert status_body(exc.value)["message"] == 'namespaces "nowhere" not found'
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": "x", "namespace": "other"}}
        )
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(
            "default", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
        )
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        twin.apps.create_namespaced_deployment(
            "default",
            {
                "metadata": {"name": "d"},
                "spec": {
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": []}},
                },
            },
        )
    assert exc.value.status == 422
    assert "`selector` does not match template `labels`" in status_body(exc.value)["message"]
    with pytest.raises(ApiException) as exc:
        twin.get("/apis/example.com/v1/widgets")
    assert exc.value.status == 404
    assert status_body(exc.value)["message"] == "the server could not find the requested resource"


def test_writes_to_unknown_resources_are_refused_and_logged(twin: Twin) -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(ApiException) as exc:
        twin.custom.create_namespaced_custom_object(
            "example.com", "v1", "default", "widgets", widget
        )
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        twin.request("POST", "/api/v1", body={})
    assert exc.value.status == 405
    (record,) = twin.cluster.write_log
    assert (record.verb, record.resource, record.namespace, record.code) == (
        "create",
        "widgets.example.com",
        "default",
        404,
    )
    assert record.body["kind"] == "Widget"


def test_pod_spec_and_workload_selector_are_immutable(twin: Twin) -> None:
    seed_pod(twin.cluster, "p")
    seed_deployment(twin.cluster)
    image = twin.core.patch_namespaced_pod(
        "p", "default", {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}
    )
    assert image.spec.containers[0].image == "app:2"
    with pytest.raises(ApiException) as exc:
        twin.core.patch_namespaced_pod(
            "p",
            "default",
            {"spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "1Gi"}}}]}},
        )
    assert exc.value.status == 422
    assert status_body(exc.value)["message"].startswith(
        'Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than'
    )
    with pytest.raises(ApiException) as exc:
        twin.apps.patch_namespaced_deployment(
            "web", "default", {"spec": {"selector": {"matchLabels": {"app": "x"}}}}
        )
    assert exc.value.status == 422
    assert status_body(exc.value)["message"].startswith(
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: '
    )


def test_strategic_merge_is_refused_for_custom_resources(twin: Twin) -> None:
    twin.cluster.store.registry.register_custom("example.com/v1", "Widget")
    created = twin.custom.create_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "widgets",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1},
        },
    )
    assert created["spec"] == {"size": 1}
    merged = twin.custom.patch_namespaced_custom_object(
        "example.com", "v1", "default", "widgets", "w", {"spec": {"size": 2}}
    )
    assert merged["spec"] == {"size": 2}
    with pytest.raises(ApiException) as exc:
        twin.request(
            "PATCH",
            "/apis/example.com/v1/namespaces/default/widgets/w",
            body={"spec": {"size": 3}},
            content_type="application/strategic-merge-patch+json",
        )
    assert exc.value.status == 415


# -- deletion -------------------------------------------------------------------------------------


def test_delete_propagation_background_and_orphan(twin: Twin) -> None:
    cluster = twin.cluster
    for name in ("bg", "orphan"):
        dep = seed_deployment(cluster, name)
        cluster.create(
            cluster.rt("ReplicaSet"),
            {
                "metadata": {
                    "name": f"{name}-abc",
                    "namespace": "default",
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": dep["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}},
                },
            },
        )
    twin.apps.delete_namespaced_deployment("bg", "default", propagation_policy="Background")
    twin.apps.delete_namespaced_deployment("orphan", "default", propagation_policy="Orphan")
    remaining = {
        rs.metadata.name: rs for rs in twin.apps.list_namespaced_replica_set("default").items
    }
    assert list(remaining) == ["orphan-abc"]
    assert remaining["orphan-abc"].metadata.owner_references is None


def test_pod_deletion_is_graceful_unless_forced_or_unscheduled(twin: Twin) -> None:
    seed_pod(twin.cluster, "running")
    seed_pod(twin.cluster, "forced")
    twin.core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "pending"}, "spec": {"containers": [{"name": "a", "image": "a"}]}},
    )
    deleted = twin.core.delete_namespaced_pod("running", "default")
    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 30
    twin.core.delete_namespaced_pod("forced", "default", grace_period_seconds=0)
    twin.core.delete_namespaced_pod("pending", "default")
    names = [p.metadata.name for p in twin.core.list_namespaced_pod("default").items]
    assert names == ["running"]


def test_finalizers_hold_deletion_until_removed(twin: Twin) -> None:
    twin.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "held", "finalizers": ["example.com/keep"]}}
    )
    twin.core.delete_namespaced_config_map("held", "default")
    held = twin.core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    twin.core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        twin.core.read_namespaced_config_map("held", "default")
    assert exc.value.status == 404


def test_namespace_deletion_takes_its_contents(twin: Twin) -> None:
    twin.core.create_namespace({"metadata": {"name": "tmp"}})
    twin.core.create_namespaced_config_map("tmp", {"metadata": {"name": "cfg"}})
    seed_pod(twin.cluster, "p", namespace="tmp")
    twin.core.delete_namespace("tmp")
    assert [n.metadata.name for n in twin.core.list_namespace().items] == ["default"]
    assert twin.core.list_config_map_for_all_namespaces().items == []
    assert twin.core.list_pod_for_all_namespaces().items == []


def test_delete_collection_by_label(twin: Twin) -> None:
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        twin.core.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": {"team": team}}}
        )
    twin.core.delete_collection_namespaced_config_map("default", label_selector="team=x")
    assert [c.metadata.name for c in twin.core.list_namespaced_config_map("default").items] == ["c"]
    assert twin.cluster.write_log[-1].verb == "deletecollection"


# -- views ----------------------------------------------------------------------------------------


def test_events_k8s_io_is_a_view_of_core_events(twin: Twin) -> None:
    from twin.events import EventRecorder

    pod = seed_pod(twin.cluster, "p")
    EventRecorder(twin.cluster).event(
        pod,
        "Warning",
        "BackOff",
        "Back-off restarting failed container app",
        component="kubelet",
        host="node-1",
    )
    events_api: Any = client.EventsV1Api(twin.api)
    events = events_api.list_namespaced_event("default")
    (event,) = events.items
    assert (event.reason, event.note, event.regarding.name) == (
        "BackOff",
        "Back-off restarting failed container app",
        "p",
    )
    assert event.reporting_controller == "kubelet"
    assert event.deprecated_count == 1
    created = events_api.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "manual"},
            "eventTime": "2026-07-11T03:00:00.000000Z",
            "reason": "Tested",
            "note": "written through events.k8s.io",
            "type": "Normal",
            "action": "Test",
            "reportingController": "test",
            "reportingInstance": "test-1",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
        },
    )
    assert created.note == "written through events.k8s.io"
    core = twin.core.read_namespaced_event("manual", "default")
    assert (core.message, core.involved_object.name) == ("written through events.k8s.io", "p")


def test_endpoint_slices_are_a_view_of_endpoints(twin: Twin) -> None:
    cluster = twin.cluster
    cluster.create(
        cluster.rt("Endpoints"),
        {
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "subsets": [
                {
                    "addresses": [{"ip": "10.1.0.5", "nodeName": "node-1"}],
                    "notReadyAddresses": [{"ip": "10.1.0.6"}],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }
            ],
        },
    )
    discovery: Any = client.DiscoveryV1Api(twin.api)
    slices = discovery.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=web"
    )
    (view,) = slices.items
    assert view.metadata.name.startswith("web-")
    assert view.address_type == "IPv4"
    assert [(e.addresses, e.conditions.ready) for e in view.endpoints] == [
        (["10.1.0.5"], True),
        (["10.1.0.6"], False),
    ]
    assert [(p.name, p.port) for p in view.ports] == [("http", 8080)]
    same = discovery.read_namespaced_endpoint_slice(view.metadata.name, "default")
    assert same.metadata.uid == view.metadata.uid
    with pytest.raises(ApiException) as exc:
        discovery.read_namespaced_endpoint_slice("web-zzzzz", "default")
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        discovery.delete_namespaced_endpoint_slice(view.metadata.name, "default")
    assert exc.value.status == 405
    table = twin.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", TABLE)
    assert table["rows"][0]["cells"][1:4] == ["IPv4", "8080", "10.1.0.5,10.1.0.6"]


def test_metrics_from_the_pod_runtime(twin: Twin) -> None:
    cluster = twin.cluster
    cluster.create(cluster.rt("Node"), {"metadata": {"name": "node-1"}})
    cluster.create(cluster.rt("Node"), {"metadata": {"name": "node-2"}})
    for name, cpu, mem in (("a", 0.25, 100 * 2**20), ("b", 0.0123, 64 * 2**20 + 4096)):
        pod = seed_pod(cluster, name, containers=("app", "sidecar"))
        uid = pod["metadata"]["uid"]
        runtime = PodRuntime(uid=uid, namespace="default", name=name, node="node-1")
        runtime.containers["app"] = ContainerRuntime(
            "app", "app:1", DEFAULT_PROFILE, phase="running", cpu=cpu, memory=mem
        )
        runtime.containers["sidecar"] = ContainerRuntime(
            "sidecar", "s:1", DEFAULT_PROFILE, phase="waiting"
        )
        cluster.pods[uid] = runtime
    pods = twin.custom.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", "default", "pods")
    assert pods["kind"] == "PodMetricsList"
    usage = {p["metadata"]["name"]: p["containers"] for p in pods["items"]}
    assert usage == {
        "a": [{"name": "app", "usage": {"cpu": "250m", "memory": "100Mi"}}],
        "b": [{"name": "app", "usage": {"cpu": "12300u", "memory": "65540Ki"}}],
    }
    one = twin.custom.get_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", "default", "pods", "a"
    )
    assert one["window"] == "15s"
    assert one["metadata"]["labels"] == {"app": "web"}
    nodes = twin.custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
    node_usage = {n["metadata"]["name"]: n["usage"] for n in nodes["items"]}
    assert node_usage == {
        "node-1": {"cpu": "262300u", "memory": "167940Ki"},
        "node-2": {"cpu": "0", "memory": "0"},
    }


# -- tables ---------------------------------------------------------------------------------------


def test_table_output_for_pods(twin: Twin) -> None:
    cluster = twin.cluster
    seed_pod(
        cluster,
        "crashy",
        statuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-07-11T03:01:00Z"}},
            }
        ],
    )
    cluster.clock.advance(300)
    table = twin.get("/api/v1/namespaces/default/pods", TABLE)
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    (row,) = table["rows"]
    assert row["cells"] == [
        "crashy",
        "0/1",
        "CrashLoopBackOff",
        "3 (4m ago)",
        "5m",
        "10.0.0.9",
        "node-1",
        "<none>",
        "<none>",
    ]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "crashy"
    full = twin.get("/api/v1/namespaces/default/pods/crashy?includeObject=Object", TABLE)
    assert full["rows"][0]["object"]["kind"] == "Pod"


def test_table_output_for_other_kinds(twin: Twin) -> None:
    cluster = twin.cluster
    seed_deployment(cluster)
    cluster.create(
        cluster.rt("Service"),
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
        },
    )
    cluster.create(
        cluster.rt("Node"),
        {
            "metadata": {"name": "node-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {
                "conditions": [{"type": "Ready", "status": "False"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0"},
            },
        },
    )
    cluster.create(
        cluster.rt("Role", "rbac.authorization.k8s.io/v1"),
        {"metadata": {"name": "r", "namespace": "default"}},
    )
    cluster.clock.advance(7200)

    def cells(path: str) -> list[Any]:
        return [row["cells"] for row in twin.get(path, TABLE)["rows"]]

    assert cells("/apis/apps/v1/namespaces/default/deployments") == [
        ["web", "2/2", 0, 0, "120m", "app,proxy", "web:1,proxy:1", "app=web"]
    ]
    assert cells("/api/v1/namespaces/default/services") == [
        ["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "120m", "app=web"]
    ]
    assert cells("/api/v1/nodes") == [
        [
            "node-1",
            "NotReady,SchedulingDisabled",
            "control-plane",
            "120m",
            "v1.32.0",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>",
        ]
    ]
    assert cells("/api/v1/namespaces") == [["default", "Active", "120m"]]
    assert cells("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles") == [
        ["r", "2026-07-11T03:00:00Z"]
    ]


def test_listing_two_thousand_pods_is_fast(twin: Twin) -> None:
    cluster = twin.cluster
    pod_rt = cluster.rt("Pod")
    for i in range(2000):
        cluster.store.create(
            pod_rt,
            {
                "metadata": {
                    "name": f"pod-{i:04d}",
                    "namespace": "default",
                    "labels": {"app": f"svc-{i % 300}"},
                },
                "spec": {
                    "nodeName": f"node-{i % 50}",
                    "containers": [
                        {"name": "app", "image": "app:1", "env": [{"name": "X", "value": "1"}] * 5}
                    ],
                },
                "status": {
                    "phase": "Running",
                    "podIPs": [{"ip": "10.0.0.1"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [
                        {
                            "name": "app",
                            "ready": True,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": "2026-07-11T03:00:00Z"}},
                        }
                    ],
                },
            },
        )
    for accept in ("application/json", TABLE):
        started = time.perf_counter()
        body, _ = twin.request("GET", "/api/v1/pods", accept=accept)
        elapsed = time.perf_counter() - started
        assert len(json.loads(body).get("items") or json.loads(body)["rows"]) == 2000
        assert elapsed < 2.0, f"listing 2,000 pods as {accept!r} took {elapsed:.2f}s"
