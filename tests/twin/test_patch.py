"""The three patch formats, applied as the API server applies them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from twin.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
    json_patch,
    list_strategy,
    merge_patch,
    strategic_merge_patch,
)


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "web:1",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                        },
                        {"name": "sidecar", "image": "proxy:1"},
                    ],
                    "volumes": [{"name": "cfg", "configMap": {"name": "web-cfg"}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                },
            },
        },
    }


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return result


# -- JSON merge patch ------------------------------------------------------------------


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists() -> None:
    obj = deployment()
    patched = merge_patch(
        obj,
        {
            "metadata": {"labels": {"tier": "front", "app": None}},
            "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}},
        },
    )
    assert patched["metadata"]["labels"] == {"tier": "front"}
    assert containers(patched) == [{"name": "only", "image": "x"}]
    assert patched["spec"]["replicas"] == 2
    assert obj == deployment(), "the original must not change"


def test_merge_patch_non_object_replaces_whole_value() -> None:
    assert merge_patch({"a": 1}, ["x"]) == ["x"]
    assert merge_patch({"a": {"b": 1}}, {"a": 3}) == {"a": 3}


# -- JSON patch ------------------------------------------------------------------------


def test_json_patch_operations() -> None:
    obj = deployment()
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "1"}},
        {"op": "add", "path": "/metadata/annotations/c~1d", "value": "2"},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "third"}},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
        {"op": "copy", "from": "/spec/replicas", "path": "/spec/minReadySeconds"},
        {"op": "move", "from": "/metadata/finalizers", "path": "/metadata/finalizersMoved"},
        {"op": "test", "path": "/spec/replicas", "value": 5},
    ]
    patched = json_patch(obj, ops)
    assert patched["spec"]["replicas"] == 5
    assert patched["metadata"]["annotations"] == {"a/b": "1", "c/d": "2"}
    assert [c["name"] for c in containers(patched)] == ["app", "third"]
    assert patched["spec"]["minReadySeconds"] == 5
    assert "finalizers" not in patched["metadata"]
    assert obj == deployment()


def test_json_patch_replace_of_missing_path_fails() -> None:
    with pytest.raises(PatchError, match="replace operation does not apply"):
        json_patch(
            {"metadata": {}}, [{"op": "replace", "path": "/metadata/annotations", "value": {}}]
        )


def test_json_patch_test_failure_and_malformed_ops() -> None:
    with pytest.raises(PatchError, match="test failed"):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    with pytest.raises(PatchError) as exc:
        json_patch({"a": 1}, {"op": "add"})
    assert exc.value.malformed
    with pytest.raises(PatchError) as exc:
        json_patch({"a": 1}, [{"op": "frobnicate", "path": "/a"}])
    assert exc.value.malformed


def test_json_patch_index_out_of_bounds() -> None:
    with pytest.raises(PatchError, match="out of bounds"):
        json_patch({"a": [1]}, [{"op": "remove", "path": "/a/3"}])


# -- strategic merge patch -----------------------------------------------------------------


def test_strategic_merge_containers_by_name_keeps_the_others() -> None:
    obj = deployment()
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}}
    patched = strategic_merge_patch(obj, patch, "Deployment")
    app, sidecar = containers(patched)
    assert app["image"] == "web:2"
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert sidecar == {"name": "sidecar", "image": "proxy:1"}
    assert obj == deployment()


def test_strategic_merge_env_by_name_adds_changes_and_null_deletes() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                            "resources": {"limits": {"memory": "64Mi"}},
                            "ports": None,
                        }
                    ]
                }
            }
        }
    }
    patched = strategic_merge_patch(deployment(), patch, "Deployment")
    app = containers(patched)[0]
    assert app["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert app["resources"] == {"limits": {"memory": "64Mi"}}
    assert "ports" not in app


def test_strategic_merge_ports_volume_mounts_and_volumes_by_their_keys() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "ports": [
                                {"containerPort": 8080, "name": "web"},
                                {"containerPort": 9090},
                            ],
                            "volumeMounts": [{"mountPath": "/etc/cfg", "readOnly": True}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                }
            }
        }
    }
    patched = strategic_merge_patch(deployment(), patch, "Deployment")
    app = containers(patched)[0]
    assert app["ports"] == [{"containerPort": 8080, "name": "web"}, {"containerPort": 9090}]
    assert app["volumeMounts"] == [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}]
    assert [v["name"] for v in patched["spec"]["template"]["spec"]["volumes"]] == ["cfg", "tmp"]


def test_strategic_merge_lists_without_a_key_are_replaced() -> None:
    patch = {"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}
    patched = strategic_merge_patch(deployment(), patch, "Deployment")
    assert patched["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "b", "operator": "Exists"}
    ]


def test_strategic_merge_delete_and_replace_directives() -> None:
    obj = deployment()
    delete = {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}
    }
    assert [c["name"] for c in containers(strategic_merge_patch(obj, delete, "Deployment"))] == [
        "app"
    ]
    replace_list = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "solo", "image": "s:1"}, {"$patch": "replace"}]}
            }
        }
    }
    assert containers(strategic_merge_patch(obj, replace_list, "Deployment")) == [
        {"name": "solo", "image": "s:1"}
    ]
    replace_map = {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}
    assert strategic_merge_patch(obj, replace_map, "Deployment")["spec"]["strategy"] == {
        "type": "Recreate"
    }
    delete_map = {"spec": {"strategy": {"$patch": "delete"}}}
    assert "strategy" not in strategic_merge_patch(obj, delete_map, "Deployment")["spec"]


def test_strategic_merge_retain_keys_as_kubectl_apply_sends_for_strategy() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    patched = strategic_merge_patch(deployment(), patch, "Deployment")
    assert patched["spec"]["strategy"] == {"type": "Recreate"}


def test_strategic_merge_primitive_set_and_delete_from_primitive_list() -> None:
    added = strategic_merge_patch(
        deployment(), {"metadata": {"finalizers": ["b", "a"]}}, "Deployment"
    )
    assert added["metadata"]["finalizers"] == ["a", "b"]
    removed = strategic_merge_patch(
        added, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "Deployment"
    )
    assert removed["metadata"]["finalizers"] == ["b"]


def test_strategic_merge_set_element_order() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                    "containers": [{"name": "app", "image": "web:3"}],
                }
            }
        }
    }
    patched = strategic_merge_patch(deployment(), patch, "Deployment")
    assert [c["name"] for c in containers(patched)] == ["sidecar", "app"]
    assert containers(patched)[1]["image"] == "web:3"


def test_strategic_merge_on_a_pod_and_a_service() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}
    patched = strategic_merge_patch(
        pod, {"spec": {"containers": [{"name": "b", "image": "2"}]}}, "Pod"
    )
    assert patched["spec"]["containers"] == [
        {"name": "a", "image": "1"},
        {"name": "b", "image": "2"},
    ]
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}
    patched = strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "Service"
    )
    assert patched["spec"]["ports"] == [
        {"port": 80, "targetPort": 9090},
        {"port": 443, "targetPort": 8443},
    ]


def test_strategic_merge_missing_merge_key_is_an_error() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}
    with pytest.raises(PatchError, match="merge key: name"):
        strategic_merge_patch(deployment(), patch, "Deployment")


def test_strategic_merge_new_content_carries_no_directives() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "new", "$patch": "merge"}]}}}}
    patched = strategic_merge_patch(deployment(), patch, "Deployment")
    assert containers(patched)[-1] == {"name": "new"}


def test_list_strategy_table() -> None:
    assert list_strategy("Deployment", ("spec", "template", "spec"), "containers") == "name"
    assert list_strategy("Pod", ("spec", "containers"), "env") == "name"
    assert list_strategy("Pod", ("spec", "initContainers"), "ports") == "containerPort"
    assert list_strategy("Service", ("spec",), "ports") == "port"
    assert list_strategy("Pod", ("status",), "conditions") == "type"
    assert list_strategy("Node", ("status",), "addresses") == "type"
    assert list_strategy("Endpoints", ("subsets",), "ports") is None
    assert list_strategy("Pod", ("spec",), "tolerations") is None


def test_apply_patch_dispatches_on_content_type() -> None:
    obj = deployment()
    merged = apply_patch(copy.deepcopy(obj), {"spec": {"replicas": 7}}, MERGE_PATCH, "Deployment")
    assert merged["spec"]["replicas"] == 7
    jp = apply_patch(obj, [{"op": "replace", "path": "/spec/replicas", "value": 1}], JSON_PATCH, "")
    assert jp["spec"]["replicas"] == 1
    smp = apply_patch(
        obj,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "z"}]}}}},
        STRATEGIC_MERGE_PATCH,
        "Deployment",
    )
    assert len(containers(smp)) == 2
    with pytest.raises(PatchError):
        apply_patch(obj, {}, "text/plain", "Deployment")
