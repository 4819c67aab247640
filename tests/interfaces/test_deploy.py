"""deploy/: the Kustomize manifests render, their RBAC is exactly what kubemedic needs, and a
cluster (the twin) accepts them.

The write permissions are checked three ways: against a list derived from the
action set (every action and target kind the executor accepts), against the
client methods tools/executor.py calls (a new write call fails this test until
the RBAC says so), and against the requests the executor really sends to the
twin's API server for one action of each kind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import tools.executor
from interfaces.webhook import ALERT_PATHS
from policies.limits import load_limits
from settings import Settings
from state import (
    Action,
    CordonAction,
    DeletePodAction,
    NoParams,
    PatchServiceAction,
    PatchServiceParams,
    PortFix,
    ResourceValues,
    RestartAction,
    RollbackAction,
    RollbackParams,
    ScaleAction,
    ScaleParams,
    SetHpaAction,
    SetHpaParams,
    SetResourcesAction,
    SetResourcesParams,
    ShiftTrafficAction,
    ShiftTrafficParams,
    Target,
    UncordonAction,
)
from tools.connection import connect
from tools.kube import KINDS
from twin.harness import Twin

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "kustomize" / "base"
OVERLAY = DEPLOY / "kustomize" / "overlays" / "example"
LIST_SECRETS = DEPLOY / "kustomize" / "components" / "list-secrets"
SA = ("kubemedic", "kubemedic")

GROUPS = {
    "core": "",
    "apps": "apps",
    "autoscaling": "autoscaling",
    "policy": "policy",
    "networking": "networking.k8s.io",
}
GATEWAY = "gateway.networking.k8s.io"
#: (verb, API group, resource[/subresource]) of every write the executor may send.
EXECUTOR_WRITES = {
    ("patch", "apps", "deployments"),
    ("patch", "apps", "statefulsets"),
    ("patch", "apps", "daemonsets"),
    ("patch", "apps", "deployments/scale"),
    ("patch", "apps", "statefulsets/scale"),
    ("delete", "", "pods"),
    ("patch", "", "services"),
    ("patch", "autoscaling", "horizontalpodautoscalers"),
    ("patch", GATEWAY, "httproutes"),
    ("patch", "", "nodes"),
}
#: The client methods tools/executor.py names for writes; with _patch_fn's, all it sends.
EXECUTOR_WRITE_METHODS = {
    "patch_namespaced_deployment",
    "delete_namespaced_pod",
    "patch_namespaced_service",
    "patch_namespaced_horizontal_pod_autoscaler",
    "patch_namespaced_custom_object",
    "patch_node",
}

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")


def kustomize(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(BASE)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def resource_name(plural: str) -> str:
    """The REST resource of a KindApi plural: stateful_set -> statefulsets, network_policy ->
    networkpolicies, endpoints -> endpoints."""
    name = plural.replace("_", "")
    if name.endswith("s"):
        return name
    if name.endswith("y"):
        return name[:-1] + "ies"
    return name + "s"


def granted(docs: list[dict[str, Any]], namespace: str | None = None) -> set[tuple[str, str, str]]:
    """(verb, group, resource) the service account may use: cluster-wide bindings, and the
    RoleBindings of `namespace` when given."""
    roles = by_kind(docs, "ClusterRole")
    bindings = list(by_kind(docs, "ClusterRoleBinding").values())
    if namespace is not None:
        bindings += [
            b
            for b in docs
            if b["kind"] == "RoleBinding" and b["metadata"].get("namespace") == namespace
        ]
    out: set[tuple[str, str, str]] = set()
    for binding in bindings:
        subjects = {(s.get("namespace"), s["name"]) for s in binding.get("subjects") or []}
        if SA not in subjects:
            continue
        assert binding["roleRef"]["kind"] == "ClusterRole"
        role = roles[binding["roleRef"]["name"]]
        for rule in role["rules"]:
            for verb in rule["verbs"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        out.add((verb, group, resource))
    return out


@pytest.mark.kubectl
@needs_kubectl
def test_the_base_renders_every_piece(base: list[dict[str, Any]]) -> None:
    kinds = sorted({(d["kind"], d["metadata"]["name"]) for d in base})
    assert kinds == [
        ("ClusterRole", "kubemedic-cordon"),
        ("ClusterRole", "kubemedic-read"),
        ("ClusterRole", "kubemedic-write"),
        ("ClusterRoleBinding", "kubemedic-cordon"),
        ("ClusterRoleBinding", "kubemedic-read"),
        ("ClusterRoleBinding", "kubemedic-write"),
        ("ConfigMap", next(n for k, n in kinds if k == "ConfigMap")),
        ("Deployment", "kubemedic"),
        ("Namespace", "kubemedic"),
        ("NetworkPolicy", "kubemedic"),
        ("PersistentVolumeClaim", "kubemedic-data"),
        ("Service", "kubemedic"),
        ("ServiceAccount", "kubemedic"),
    ]
    namespaced = [d for d in base if d["kind"] not in {"Namespace", "ClusterRole"}]
    for d in namespaced:
        if not d["kind"].startswith("ClusterRole"):
            assert d["metadata"]["namespace"] == "kubemedic", d["metadata"]


@pytest.mark.kubectl
@needs_kubectl
def test_rbac_grants_exactly_the_executors_writes(base: list[dict[str, Any]]) -> None:
    rights = granted(base)
    writes = {r for r in rights if r[0] not in {"get", "list", "watch"}}
    assert writes == EXECUTOR_WRITES
    # Nothing broad, nothing on secrets or RBAC, no delete but pods.
    for role in by_kind(base, "ClusterRole").values():
        for rule in role["rules"]:
            for key in ("verbs", "apiGroups", "resources"):
                assert "*" not in rule[key], (role["metadata"]["name"], rule)
            assert "secrets" not in rule["resources"]
            assert "rbac.authorization.k8s.io" not in rule["apiGroups"]
            assert not set(rule["verbs"]) & {"create", "update", "deletecollection", "escalate"}
            assert not set(rule["verbs"]) & {"bind", "impersonate", "approve"}
    assert {r for r in writes if r[0] == "delete"} == {("delete", "", "pods")}
    assert ("delete", "", "nodes") not in rights
    assert ("delete", "", "namespaces") not in rights


def test_every_action_the_executor_takes_has_its_write_granted() -> None:
    """Derived from the action set: each action, on each target kind it accepts."""
    needed: set[tuple[str, str, str]] = set()
    for member in Action.__args__[0].__args__:
        name = member.model_fields["action"].default
        kinds = member.kinds
        if name == "escalate":
            continue  # writes nothing
        for kind in kinds:
            if kind == "HTTPRoute":
                needed.add(("patch", GATEWAY, "httproutes"))
                continue
            api = KINDS[kind]
            group = GROUPS[api.api]
            resource = resource_name(api.plural)
            if name == "delete_pod":
                needed.add(("delete", group, resource))
            elif name == "scale":
                needed.add(("patch", group, f"{resource}/scale"))
            else:
                needed.add(("patch", group, resource))
    assert needed == EXECUTOR_WRITES
    assert set(tools.executor._HANDLERS) == {
        m.model_fields["action"].default for m in Action.__args__[0].__args__
    }


def test_the_executor_calls_no_write_method_the_rbac_does_not_know() -> None:
    source = Path(tools.executor.__file__).read_text()
    called = set(
        re.findall(r"conn\.(?:core|apps|autoscaling|policy|networking|custom)\.(\w+)", source)
    )
    writes = {m for m in called if re.match(r"(patch|delete|create|replace)_", m)}
    assert writes == EXECUTOR_WRITE_METHODS, (
        "tools/executor.py calls a write the RBAC in deploy/ does not list: update "
        "deploy/kustomize/base/rbac-write.yaml, EXECUTOR_WRITES and this list"
    )


@pytest.mark.kubectl
@needs_kubectl
def test_the_read_tools_can_read_what_they_read(base: list[dict[str, Any]]) -> None:
    rights = granted(base)
    reads = {r for r in rights if r[0] in {"get", "list", "watch"}}
    for kind, api in KINDS.items():
        group, resource = GROUPS[api.api], resource_name(api.plural)
        if kind == "Secret":
            assert not {(v, group, resource) for v in ("get", "list", "watch")} & rights
            continue
        for verb in ("get", "list"):
            assert (verb, group, resource) in reads, (kind, verb)
    for needed in (
        ("get", "", "pods/log"),
        ("list", "apps", "controllerrevisions"),
        ("list", "metrics.k8s.io", "pods"),
        ("list", "metrics.k8s.io", "nodes"),
        ("get", GATEWAY, "httproutes"),
        ("list", GATEWAY, "httproutes"),
    ):
        assert needed in reads, needed
    assert {r[0] for r in reads} == {"get", "list", "watch"}


@pytest.mark.kubectl
@needs_kubectl
def test_listing_secrets_is_an_opt_in_component(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # Kustomize takes only relative paths to other kustomizations.
                "resources": [os.path.relpath(BASE, tmp_path)],
                "components": [os.path.relpath(LIST_SECRETS, tmp_path)],
            }
        )
    )
    docs = kustomize(tmp_path)
    rights = granted(docs)
    secret_rights = {r for r in rights if r[2] == "secrets"}
    assert secret_rights == {("list", "", "secrets")}  # list only: no get, no watch, no write
    assert "kubemedic-list-secrets" in by_kind(docs, "ClusterRole")


@pytest.mark.kubectl
@needs_kubectl
def test_the_example_overlay_writes_only_where_a_rolebinding_says() -> None:
    docs = kustomize(OVERLAY)
    assert "kubemedic-write" not in by_kind(docs, "ClusterRoleBinding")
    writes_anywhere = {r for r in granted(docs) if r[0] in {"patch", "delete"}}
    assert writes_anywhere == {("patch", "", "nodes")}  # cordon stays cluster-wide
    in_shop = {r for r in granted(docs, "shop") if r[0] in {"patch", "delete"}}
    assert in_shop == EXECUTOR_WRITES
    (deployment,) = by_kind(docs, "Deployment").values()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBEMEDIC_POLICY__MODE"] == "approve"
    assert container["image"] == "registry.example.com/platform/kubemedic:0.1.0"
    (config_map,) = by_kind(docs, "ConfigMap").values()
    path = Path(__file__).parent / "_overlay_policy.yaml"
    try:
        path.write_text(config_map["data"]["policy.yaml"])
        limits = load_limits(path)
    finally:
        path.unlink(missing_ok=True)
    assert limits.autonomous_namespaces == ["shop"]
    assert limits.approvers == ["alice", "bob", "U024BE7LH"]
    assert (
        config_map["metadata"]["name"]
        == (container_volume(deployment, "policy")["configMap"]["name"])
    )


def container_volume(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == name)


@pytest.mark.kubectl
@needs_kubectl
def test_the_deployment_fits_the_settings_and_the_server(base: list[dict[str, Any]]) -> None:
    (deployment,) = by_kind(base, "Deployment").values()
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # Every environment variable names a real setting (KUBEMEDIC_<GROUP>__<FIELD>).
    for var in container["env"]:
        name = var["name"].removeprefix("KUBEMEDIC_").lower()
        group, _, field = name.partition("__")
        if not field:
            assert group in Settings.model_fields, var["name"]
            continue
        model = Settings.model_fields[group].annotation
        assert field in model.model_fields, var["name"]  # type: ignore[union-attr]
    env = {e["name"]: e for e in container["env"]}
    data_dir = env["KUBEMEDIC_DATA_DIR"]["value"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == data_dir
    assert env["KUBEMEDIC_POLICY__FILE"]["value"] == f"{mounts['policy']}/policy.yaml"
    # Secrets come from a Secret, each optional, never from a literal value.
    for name in (
        "KUBEMEDIC_WEBHOOK__BEARER_TOKEN",
        "KUBEMEDIC_REDIS__URL",
        "KUBEMEDIC_CHECKPOINT__POSTGRES_DSN",
        "KUBEMEDIC_LLM__API_KEY",
        "KUBEMEDIC_SLACK__BOT_TOKEN",
    ):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["optional"] is True
        assert "value" not in env[name]
    assert env["KUBEMEDIC_POLICY__MODE"]["value"] == "observe"  # the safe default
    # The probes and the Service reach the webhook server's own routes and port.
    port = container["ports"][0]["containerPort"]
    assert container["args"] == ["--host", "0.0.0.0", "--port", str(port)]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (service,) = by_kind(base, "Service").values()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (policy,) = by_kind(base, "NetworkPolicy").values()
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": port}]
    # Hardened: non-root (the Dockerfile's uid), no privilege escalation, read-only root.
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"USER {pod['securityContext']['runAsUser']}:" in dockerfile
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["serviceAccountName"] == "kubemedic"


def test_the_base_policy_is_the_default_policy() -> None:
    assert load_limits(BASE / "policy.yaml") == load_limits(None)


def test_the_dockerfile_runs_kubemedic_serve_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^RUN pip install \. ", text, re.M)
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert 'ENTRYPOINT ["kubemedic", "serve"]' in text
    assert re.search(r"^EXPOSE 9095$", text, re.M)
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", ".kubemedic", "tests"} <= set(ignored)


@pytest.mark.kubectl
@needs_kubectl
def test_the_alertmanager_example_points_at_the_service() -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yaml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    (hook,) = receivers["kubemedic"]["webhook_configs"]
    match = re.fullmatch(
        r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)(/.*)", hook["url"]
    )
    assert match, hook["url"]
    name, namespace, port, path = match.groups()
    assert (name, namespace) == ("kubemedic", "kubemedic")
    base = kustomize(BASE)
    (service,) = by_kind(base, "Service").values()
    assert int(port) == service["spec"]["ports"][0]["port"]
    assert path in ALERT_PATHS
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    routes = [r for r in config["route"]["routes"] if r["receiver"] == "kubemedic"]
    assert routes
    assert routes[0]["continue"] is True  # people still get paged
    custom = list(
        yaml.safe_load_all((DEPLOY / "alertmanager" / "alertmanagerconfig.yaml").read_text())
    )
    (amc,) = [d for d in custom if d["kind"] == "AlertmanagerConfig"]
    (am_hook,) = amc["spec"]["receivers"][0]["webhookConfigs"]
    assert am_hook["url"] == hook["url"]


@pytest.fixture
def twin() -> Iterator[Twin]:
    with Twin.start("healthy") as t:
        yield t


def kubectl(twin: Twin, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(twin.kubeconfig_path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.kubectl
@needs_kubectl
def test_a_cluster_accepts_the_manifests(twin: Twin) -> None:
    for path in (BASE, OVERLAY):
        rendered = subprocess.run(
            ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
        ).stdout
        applied = kubectl(twin, "apply", "-f", "-", stdin=rendered)
        assert applied.returncode == 0, applied.stderr
        assert "deployment.apps/kubemedic" in applied.stdout
    got = kubectl(
        twin, "get", "deployment,serviceaccount,service,pvc", "-n", "kubemedic", "-o", "name"
    )
    assert got.returncode == 0, got.stderr
    assert set(got.stdout.split()) >= {
        "deployment.apps/kubemedic",
        "serviceaccount/kubemedic",
        "service/kubemedic",
        "persistentvolumeclaim/kubemedic-data",
    }
    binding = kubectl(twin, "get", "rolebinding", "kubemedic-write", "-n", "shop", "-o", "name")
    assert binding.returncode == 0, binding.stderr


PROOF = """
apiVersion: v1
kind: Namespace
metadata: {name: rbac-proof}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: rbac-proof}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.25
          ports: [{containerPort: 8080, name: http}]
          resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: rbac-proof}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres:16}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: rbac-proof}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox:1.36}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: rbac-proof}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 9999}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: rbac-proof}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: rbac-proof}
spec:
  rules:
    - backendRefs:
        - {name: web, port: 80, weight: 90}
        - {name: web-canary, port: 80, weight: 10}
"""


def _action(cls: type[Any], kind: str, name: str, namespace: str | None, **params: Any) -> Any:
    return cls(
        target=Target(kind=kind, namespace=namespace, name=name),
        hypothesis_id="h1",
        evidence_ids=["e1"],
        expected_effect="proves the RBAC",
        verification="the API server accepted it",
        **params,
    )


@pytest.mark.kubectl
@needs_kubectl
def test_the_requests_the_executor_sends_are_all_granted(
    twin: Twin, base: list[dict[str, Any]]
) -> None:
    applied = kubectl(twin, "apply", "-f", "-", stdin=textwrap.dedent(PROOF))
    assert applied.returncode == 0, applied.stderr
    twin.advance(30)
    pods = kubectl(twin, "get", "pods", "-n", "rbac-proof", "-l", "app=web", "-o", "name")
    pod = pods.stdout.split()[0].removeprefix("pod/")
    node = kubectl(twin, "get", "nodes", "-o", "name").stdout.split()[0].removeprefix("node/")
    ns = "rbac-proof"
    actions: list[Any] = [
        _action(RestartAction, "Deployment", "web", ns, params=NoParams()),
        _action(RestartAction, "StatefulSet", "db", ns, params=NoParams()),
        _action(RestartAction, "DaemonSet", "agent", ns, params=NoParams()),
        _action(ScaleAction, "Deployment", "web", ns, params=ScaleParams(replicas=3)),
        _action(ScaleAction, "StatefulSet", "db", ns, params=ScaleParams(replicas=2)),
        _action(
            SetResourcesAction,
            "Deployment",
            "web",
            ns,
            params=SetResourcesParams(container="web", limits=ResourceValues(memory="256Mi")),
        ),
        _action(DeletePodAction, "Pod", pod, ns, params=NoParams()),
        _action(
            PatchServiceAction,
            "Service",
            "web",
            ns,
            params=PatchServiceParams(ports=[PortFix(port=80, target_port=8080)]),
        ),
        _action(
            SetHpaAction, "HorizontalPodAutoscaler", "web", ns, params=SetHpaParams(max_replicas=5)
        ),
        _action(
            ShiftTrafficAction,
            "HTTPRoute",
            "web",
            ns,
            params=ShiftTrafficParams(weights={"web-canary": 0}),
        ),
        _action(CordonAction, "Node", node, None, params=NoParams()),
        _action(UncordonAction, "Node", node, None, params=NoParams()),
    ]
    conn = connect(str(twin.kubeconfig_path))
    before = len(twin.write_log)
    try:
        for action in actions:
            outcome = tools.executor.execute(conn, action)
            assert outcome.status == "applied", (action.action, outcome.message)
        twin.advance(10)
        rollback = _action(
            RollbackAction, "Deployment", "web", ns, params=RollbackParams(to_revision=1)
        )
        outcome = tools.executor.execute(conn, rollback)
        assert outcome.status == "applied", outcome.message
    finally:
        conn.close()
    sent = set()
    for w in twin.write_log[before:]:
        resource, _, group = w.resource.partition(".")
        full = f"{resource}/{w.subresource}" if w.subresource else resource
        sent.add((w.verb, group, full))
    rights = granted(base)
    assert sent <= rights, sent - rights
    # One action of each kind touched every write the RBAC grants.
    assert sent == EXECUTOR_WRITES
