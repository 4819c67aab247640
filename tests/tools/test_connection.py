"""Connecting: several clusters by kubeconfig context, in-cluster config, and what was tried."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.tools.twinworld import serve_world
from tools.connection import ClusterConnection, Clusters, connect
from tools.errors import NoClusterConfigured
from tools.registry import Toolbox
from twin.kubeconfig import kubeconfig_dict


def _two_cluster_kubeconfig(path: Path, urls: dict[str, str]) -> Path:
    docs = [kubeconfig_dict(url, context=name, namespace="shop") for name, url in urls.items()]
    merged = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [c for d in docs for c in d["clusters"]],  # type: ignore[attr-defined]
        "users": [u for d in docs for u in d["users"]],  # type: ignore[attr-defined]
        "contexts": [c for d in docs for c in d["contexts"]],  # type: ignore[attr-defined]
        "current-context": next(iter(urls)),
    }
    path.write_text(yaml.safe_dump(merged))
    return path


def test_several_clusters_by_context_name(tmp_path: Path) -> None:
    with serve_world() as east, serve_world() as west:
        # Tell the clusters apart: scale one of them in the store.
        rt = west.cluster.rt("Deployment")
        deployment = west.cluster.store.get(rt, "shop", "frontend")
        deployment["spec"]["replicas"] = 7
        west.cluster.replace(rt, deployment, check_version=False)
        kubeconfig = _two_cluster_kubeconfig(
            tmp_path / "config", {"east": east.server.url, "west": west.server.url}
        )
        clusters = Clusters(kubeconfig)
        assert clusters.contexts() == ["east", "west"]
        replicas = {}
        for name in ("east", "west"):
            conn = clusters.get(name)
            assert conn.context == name
            result = Toolbox(cluster=conn).call(
                "list_workloads", {"namespace": "shop", "field_selector": "metadata.name=frontend"}
            )
            replicas[name] = result.data[0]["replicas"]["desired"]
        assert replicas == {"east": 1, "west": 7}
        assert clusters.get("west") is clusters.get("west")
        default = connect(kubeconfig)
        assert default.context == "east"
        assert default.server == east.server.url
        assert default.version()["gitVersion"].startswith("v1.")
        default.close()
        clusters.close()
        with pytest.raises(NoClusterConfigured) as exc:
            connect(kubeconfig, "north")
        assert "context 'north' not found" in exc.value.message
        assert "east, west" in exc.value.message


def test_kubeconfig_env_is_used(tmp_path: Path) -> None:
    with serve_world() as world:
        conn = connect(env={"KUBECONFIG": str(world.kubeconfig), "HOME": str(tmp_path)})
        assert conn.server == world.server.url
        assert conn.source == str(world.kubeconfig)
        conn.close()


def test_in_cluster_config_from_the_service_account(tmp_path: Path) -> None:
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("service-account-token-123")
    (sa / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    env = {
        "HOME": str(tmp_path),
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
    }
    conn = connect(env=env, service_account_dir=sa)
    assert conn.context == "in-cluster"
    assert conn.server == "https://10.96.0.1:443"
    configuration = conn.api_client.configuration
    assert configuration.api_key["BearerToken"].lower() == "bearer service-account-token-123"
    assert configuration.ssl_ca_cert == str(sa / "ca.crt")
    conn.close()
    with pytest.raises(NoClusterConfigured) as exc:
        ClusterConnection.in_cluster(
            env={"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, service_account_dir=sa
        )
    assert "KUBERNETES_SERVICE_HOST/PORT" in exc.value.message
    assert "Service host/port is not set" in exc.value.message


def test_broken_kubeconfig_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nkind: Config\ncontexts: []\n")
    with pytest.raises(NoClusterConfigured) as exc:
        connect(broken)
    assert str(broken) in exc.value.message
