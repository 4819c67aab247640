"""kubectl (/usr/bin/kubectl) against the twin's API server, as an operator would use it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from twin.apiserver import ServerHandle, serve_in_thread
from twin.behavior import DEFAULT_PROFILE
from twin.cluster import Cluster
from twin.events import EventRecorder
from twin.kubeconfig import write_kubeconfig
from twin.runtime import ContainerRuntime, PodRuntime

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed"),
]


@dataclass
class Kube:
    cluster: Cluster
    server: ServerHandle
    kubeconfig: Path
    home: Path
    uids: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                KUBECTL,
                "--kubeconfig",
                str(self.kubeconfig),
                "--cache-dir",
                str(self.home / "cache"),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"HOME": str(self.home), "PATH": os.environ.get("PATH", "")},
            check=False,
        )
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result

    def out(self, *args: str) -> str:
        return self.run(*args).stdout


def container_status(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"{name}:2",
        "imageID": "",
        "ready": True,
        "restartCount": 0,
        **extra,
    }


def template(image: str, pod_hash: str | None = None) -> dict[str, Any]:
    labels = {"app": "web"}
    if pod_hash:
        labels["pod-template-hash"] = pod_hash
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def seed(cluster: Cluster) -> dict[str, str]:
    """A small cluster as controllers and the kubelet would have left it."""
    create = cluster.create
    create(cluster.rt("Namespace"), {"metadata": {"name": "default"}})
    create(cluster.rt("Namespace"), {"metadata": {"name": "shop"}})
    create(
        cluster.rt("Node"),
        {
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "status": {
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0"},
            },
        },
    )
    deployment = create(
        cluster.rt("Deployment"),
        {
            "metadata": {
                "name": "web",
                "namespace": "default",
                "annotations": {"deployment.kubernetes.io/revision": "2"},
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template("web:2"),
            },
            "status": {
                "observedGeneration": 1,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
            },
        },
    )
    owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "uid": deployment["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for revision, image, pod_hash, replicas in (
        (1, "web:1", "6d4cf56db6", 0),
        (2, "web:2", "7b9c6f8d5", 2),
    ):
        create(
            cluster.rt("ReplicaSet"),
            {
                "metadata": {
                    "name": f"web-{pod_hash}",
                    "namespace": "default",
                    "labels": {"app": "web", "pod-template-hash": pod_hash},
                    "annotations": {
                        "deployment.kubernetes.io/revision": str(revision),
                        "kubernetes.io/change-cause": f"kubectl set image deploy/web app={image}",
                    },
                    "ownerReferences": [owner],
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": "web", "pod-template-hash": pod_hash}},
                    "template": template(image, pod_hash),
                },
                "status": {"replicas": replicas, "readyReplicas": replicas},
            },
        )
    pods = {
        "web-7b9c6f8d5-abcde": [
            container_status(
                "app",
                restartCount=1,
                state={"running": {"startedAt": "2026-07-11T03:01:00Z"}},
                lastState={
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": "2026-07-11T03:00:10Z",
                        "finishedAt": "2026-07-11T03:00:50Z",
                    }
                },
            )
        ],
        "web-7b9c6f8d5-fghij": [
            container_status(
                "app",
                ready=False,
                restartCount=4,
                state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                lastState={
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "finishedAt": "2026-07-11T03:09:00Z",
                    }
                },
            )
        ],
    }
    uids = {}
    for name, statuses in pods.items():
        pod = create(
            cluster.rt("Pod"),
            {
                "metadata": {
                    "name": name,
                    "namespace": "default",
                    "labels": {"app": "web", "pod-template-hash": "7b9c6f8d5"},
                },
                "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "web:2"}]},
                "status": {
                    "phase": "Running",
                    "podIP": "10.1.0.5",
                    "podIPs": [{"ip": "10.1.0.5"}],
                    "conditions": [
                        {"type": "Ready", "status": "True" if statuses[0]["ready"] else "False"}
                    ],
                    "containerStatuses": statuses,
                },
            },
        )
        uids[name] = pod["metadata"]["uid"]
    create(
        cluster.rt("Pod"),
        {
            "metadata": {"name": "cart-0", "namespace": "shop", "labels": {"app": "cart"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "cart", "image": "cart:1"}]},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    container_status(
                        "cart", ready=False, state={"waiting": {"reason": "ContainerCreating"}}
                    )
                ],
            },
        },
    )
    return uids


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    cluster = Cluster()
    uids = seed(cluster)
    cluster.clock.advance(600)
    server = serve_in_thread(cluster)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    try:
        yield Kube(cluster, server, kubeconfig, tmp_path, uids)
    finally:
        server.stop()


def table_lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_get_pods_in_all_namespaces(kube: Kube) -> None:
    lines = table_lines(kube.out("get", "pods", "-A"))
    assert lines[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = {line[1]: line for line in lines[1:]}
    assert rows["web-7b9c6f8d5-abcde"] == [
        "default",
        "web-7b9c6f8d5-abcde",
        "1/1",
        "Running",
        "1",
        "(9m10s",
        "ago)",
        "10m",
    ]
    assert rows["web-7b9c6f8d5-fghij"][2:5] == ["0/1", "CrashLoopBackOff", "4"]
    assert rows["cart-0"] == ["shop", "cart-0", "0/1", "ContainerCreating", "0", "10m"]


def test_get_wide_and_other_kinds(kube: Kube) -> None:
    wide = table_lines(kube.out("get", "pods", "-o", "wide", "-l", "app=web"))
    assert wide[0][-7:] == ["AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    assert wide[1][-4:] == ["10.1.0.5", "node-1", "<none>", "<none>"]
    kinds = kube.out("get", "deploy,rs,nodes")
    assert "deployment.apps/web   2/2     2            2           10m" in kinds
    assert "replicaset.apps/web-6d4cf56db6   0         0         0       10m" in kinds
    assert "node/node-1   Ready    <none>   10m   v1.32.0" in kinds
    assert (
        kube.out("get", "po", "web-7b9c6f8d5-abcde", "-o", "jsonpath={.status.podIP}") == "10.1.0.5"
    )


def test_describe_service_finds_its_endpoints(kube: Kube) -> None:
    cluster = kube.cluster
    cluster.create(
        cluster.rt("Service"),
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.1.1",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        },
    )
    cluster.create(
        cluster.rt("Endpoints"),
        {
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.1.0.5"}], "ports": [{"port": 8080}]}],
        },
    )
    fields = [line.split() for line in kube.out("describe", "svc", "web").splitlines()]
    assert ["Endpoints:", "10.1.0.5:8080"] in fields
    assert ["TargetPort:", "8080/TCP"] in fields
    assert table_lines(kube.out("get", "ep", "web"))[1][:2] == ["web", "10.1.0.5:8080"]


def test_describe_pod_shows_its_events(kube: Kube) -> None:
    pod = kube.cluster.store.get(kube.cluster.rt("Pod"), "default", "web-7b9c6f8d5-fghij")
    EventRecorder(kube.cluster).event(
        pod,
        "Warning",
        "BackOff",
        "Back-off restarting failed container app in pod web-7b9c6f8d5-fghij_default(x)",
        component="kubelet",
        host="node-1",
        field_path="spec.containers{app}",
    )
    text = kube.out("describe", "pod", "web-7b9c6f8d5-fghij")
    fields = [line.split() for line in text.splitlines()]
    assert ["Name:", "web-7b9c6f8d5-fghij"] in fields
    assert ["Reason:", "CrashLoopBackOff"] in fields
    assert ["Restart", "Count:", "4"] in fields
    assert ["Type", "Reason", "Age", "From", "Message"] in fields
    assert any(f[:2] == ["Warning", "BackOff"] and "kubelet" in f for f in fields)
    assert "Back-off restarting failed container app in pod web-7b9c6f8d5-fghij_default(x)" in text


def test_logs_current_previous_and_errors(kube: Kube) -> None:
    uid = kube.uids["web-7b9c6f8d5-abcde"]
    logs = kube.cluster.logs
    now = kube.cluster.clock.now()
    logs.new_instance(uid, "app")
    logs.append(uid, "app", now, "panic: runtime error: invalid memory address")
    logs.new_instance(uid, "app")
    for i in range(3):
        logs.append(uid, "app", now, f"GET /cart 200 {i}ms")
    assert (
        kube.out("logs", "web-7b9c6f8d5-abcde")
        == "GET /cart 200 0ms\nGET /cart 200 1ms\nGET /cart 200 2ms\n"
    )
    assert kube.out("logs", "web-7b9c6f8d5-abcde", "--tail=1") == "GET /cart 200 2ms\n"
    assert (
        kube.out("logs", "web-7b9c6f8d5-abcde", "--previous")
        == "panic: runtime error: invalid memory address\n"
    )
    failed = kube.run("logs", "-n", "shop", "cart-0", check=False)
    assert failed.returncode != 0
    assert (
        'container "cart" in pod "cart-0" is waiting to start: ContainerCreating' in failed.stderr
    )
    failed = kube.run("logs", "-n", "shop", "cart-0", "--previous", check=False)
    assert 'previous terminated container "cart" in pod "cart-0" not found' in failed.stderr


def test_scale_and_server_side_dry_run(kube: Kube) -> None:
    deployments = kube.cluster.rt("Deployment")
    assert "scaled (server dry run)" in kube.out(
        "scale", "deploy/web", "--replicas=5", "--dry-run=server"
    )
    assert kube.cluster.store.get(deployments, "default", "web")["spec"]["replicas"] == 2
    assert kube.out("scale", "deploy/web", "--replicas=5").strip() == "deployment.apps/web scaled"
    assert kube.cluster.store.get(deployments, "default", "web")["spec"]["replicas"] == 5
    records = [(r.verb, r.resource, r.subresource, r.dry_run) for r in kube.cluster.write_log]
    assert records == [
        ("patch", "deployments.apps", "scale", True),
        ("patch", "deployments.apps", "scale", False),
    ]


def test_rollout_restart_sets_the_template_annotation(kube: Kube) -> None:
    assert kube.out("rollout", "restart", "deploy/web").strip() == "deployment.apps/web restarted"
    deployment = kube.cluster.store.get(kube.cluster.rt("Deployment"), "default", "web")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == {"kubectl.kubernetes.io/restartedAt"}
    assert deployment["metadata"]["generation"] == 2
    record = kube.cluster.write_log[-1]
    assert record.patch_type == "application/strategic-merge-patch+json"


def test_rollout_history_and_undo(kube: Kube) -> None:
    history = table_lines(kube.out("rollout", "history", "deploy/web"))
    assert history[1:] == [
        ["REVISION", "CHANGE-CAUSE"],
        ["1", "kubectl", "set", "image", "deploy/web", "app=web:1"],
        ["2", "kubectl", "set", "image", "deploy/web", "app=web:2"],
    ]
    assert "web:1" in kube.out("rollout", "history", "deploy/web", "--revision=1")
    assert kube.out("rollout", "undo", "deploy/web").strip() == "deployment.apps/web rolled back"
    deployment = kube.cluster.store.get(kube.cluster.rt("Deployment"), "default", "web")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    assert "pod-template-hash" not in deployment["spec"]["template"]["metadata"]["labels"]
    assert kube.cluster.write_log[-1].patch_type == "application/json-patch+json"


def test_rollout_status_follows_the_deployment(kube: Kube) -> None:
    cluster = kube.cluster
    deployments = cluster.rt("Deployment")
    with cluster.lock:
        live = cluster.store.get(deployments, "default", "web", live=True)
        live["status"].update(updatedReplicas=1, availableReplicas=1)
        cluster.store.commit(deployments, live)

    def finish() -> None:
        time.sleep(1.0)
        with cluster.lock:
            live = cluster.store.get(deployments, "default", "web", live=True)
            live["status"].update(updatedReplicas=2, availableReplicas=2)
            cluster.store.commit(deployments, live)

    thread = threading.Thread(target=finish)
    thread.start()
    text = kube.out("rollout", "status", "deploy/web", "--timeout=20s")
    thread.join()
    waiting = 'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas'
    assert f"{waiting} have been updated..." in text
    assert text.strip().endswith('deployment "web" successfully rolled out')


def test_get_watch_prints_changes(kube: Kube) -> None:
    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kube.kubeconfig),
            "--cache-dir",
            str(kube.home / "cache"),
            "get",
            "configmaps",
            "-w",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"HOME": str(kube.home), "PATH": os.environ.get("PATH", "")},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        cluster = kube.cluster
        created = False
        lines: list[str] = []
        while time.monotonic() < deadline:
            if not created:
                time.sleep(1.0)
                cluster.create(
                    cluster.rt("ConfigMap"),
                    {"metadata": {"name": "settings", "namespace": "default"}, "data": {"a": "1"}},
                )
                created = True
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("settings"):
                break
        assert lines[0].split() == ["NAME", "DATA", "AGE"]
        assert lines[-1].split() == ["settings", "1", "0s"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_get_events_and_top(kube: Kube) -> None:
    cluster = kube.cluster
    pod = cluster.store.get(cluster.rt("Pod"), "default", "web-7b9c6f8d5-abcde")
    EventRecorder(cluster).event(
        pod,
        "Normal",
        "Pulled",
        'Container image "web:2" already present on machine',
        component="kubelet",
        host="node-1",
    )
    cluster.clock.advance(60)
    events = table_lines(kube.out("get", "events"))
    assert events[0] == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert events[1][:5] == ["60s", "Normal", "Pulled", "pod/web-7b9c6f8d5-abcde", "Container"]
    for name, cpu, memory in (
        ("web-7b9c6f8d5-abcde", 0.125, 96 * 2**20),
        ("web-7b9c6f8d5-fghij", 0.5, 200 * 2**20),
    ):
        uid = kube.uids[name]
        runtime = PodRuntime(uid=uid, namespace="default", name=name, node="node-1")
        runtime.containers["app"] = ContainerRuntime(
            "app", "web:2", DEFAULT_PROFILE, phase="running", cpu=cpu, memory=memory
        )
        cluster.pods[uid] = runtime
    top = table_lines(kube.out("top", "pod", "--sort-by=cpu"))
    assert top == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"],
        ["web-7b9c6f8d5-fghij", "500m", "200Mi"],
        ["web-7b9c6f8d5-abcde", "125m", "96Mi"],
    ]
    nodes = table_lines(kube.out("top", "node"))
    assert nodes[1] == ["node-1", "625m", "7%", "296Mi", "0%"]


def test_label_annotate_patch_and_delete(kube: Kube) -> None:
    cluster = kube.cluster
    kube.out("label", "pod", "web-7b9c6f8d5-abcde", "tier=front")
    kube.out("annotate", "deploy", "web", "owner=team-a")
    kube.out(
        "patch",
        "deploy",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"LOG_LEVEL","value":"debug"}]}]}}}}',
    )
    kube.out("patch", "deploy", "web", "--type=merge", "-p", '{"spec":{"minReadySeconds":5}}')
    kube.out(
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/spec/revisionHistoryLimit","value":3}]',
    )
    assert (
        kube.out("get", "pods", "-l", "tier=front", "-o", "name").strip()
        == "pod/web-7b9c6f8d5-abcde"
    )
    deployment = cluster.store.get(cluster.rt("Deployment"), "default", "web")
    assert deployment["metadata"]["annotations"]["owner"] == "team-a"
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    assert (app["image"], app["env"]) == ("web:2", [{"name": "LOG_LEVEL", "value": "debug"}])
    assert (deployment["spec"]["minReadySeconds"], deployment["spec"]["revisionHistoryLimit"]) == (
        5,
        3,
    )
    assert (
        kube.out("delete", "rs", "web-6d4cf56db6").strip()
        == 'replicaset.apps "web-6d4cf56db6" deleted'
    )
    kube.out("delete", "pod", "web-7b9c6f8d5-abcde", "--wait=false")
    terminating = table_lines(kube.out("get", "pod", "web-7b9c6f8d5-abcde"))
    assert terminating[1][2] == "Terminating"
    kube.out("delete", "deploy", "web")
    assert kube.out("get", "deploy,rs", "-o", "name") == ""
    missing = kube.run("get", "pod", "ghost", check=False)
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "ghost" not found'


def test_apply_create_and_drain(kube: Kube) -> None:
    cluster = kube.cluster
    manifest = kube.home / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  mode: fast\n"
    )
    assert kube.out("apply", "-f", str(manifest)).strip() == "configmap/app-config created"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  mode: slow\n"
    )
    assert kube.out("apply", "-f", str(manifest)).strip() == "configmap/app-config configured"
    assert cluster.store.get(cluster.rt("ConfigMap"), "default", "app-config")["data"] == {
        "mode": "slow"
    }
    kube.out("create", "configmap", "flags", "--from-literal=beta=on")
    kube.out("create", "secret", "generic", "db", "--from-literal=password=hunter2")
    assert cluster.store.get(cluster.rt("Secret"), "default", "db")["data"] == {
        "password": "aHVudGVyMg=="
    }
    assert "hunter2" not in repr(cluster.write_log)
    assert "aHVudGVyMg==" not in repr(cluster.write_log)

    stop = threading.Event()

    def kubelet() -> None:  # removes pods once they terminate, as the kubelet would
        pods = cluster.rt("Pod")
        while not stop.is_set():
            with cluster.lock:
                for pod in cluster.store.list(pods, live=True):
                    if pod["metadata"].get("deletionTimestamp"):
                        cluster.store.delete(
                            pods, pod["metadata"]["namespace"], pod["metadata"]["name"]
                        )
            time.sleep(0.05)

    thread = threading.Thread(target=kubelet)
    thread.start()
    try:
        drained = kube.out("drain", "node-1", "--ignore-daemonsets", "--force", "--timeout=30s")
    finally:
        stop.set()
        thread.join()
    assert "node/node-1 drained" in drained
    assert cluster.store.get(cluster.rt("Node"), "", "node-1")["spec"]["unschedulable"] is True
    evictions = [r for r in cluster.write_log if r.subresource == "eviction"]
    assert {r.name for r in evictions} == {"web-7b9c6f8d5-abcde", "web-7b9c6f8d5-fghij", "cart-0"}
