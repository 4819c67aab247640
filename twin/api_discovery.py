"""API discovery documents, built from the twin's resource registry.

kubectl reads discovery to map `po` to pods, `deploy` to deployments.apps,
to find the `scale` subresource's kind for `kubectl scale`, and to know that
metrics.k8s.io exists for `kubectl top`. Since 1.30 it first asks /api and
/apis for the aggregated form (apidiscovery.k8s.io/v2 APIGroupDiscoveryList)
and falls back to the legacy documents (/api, /apis, /api/v1,
/apis/<group>/<version>) otherwise; both are served, from the same table.
"""

from __future__ import annotations

from typing import Any

from twin.resources import Registry, ResourceType

Obj = dict[str, Any]

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T17:59:15Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

AGGREGATED_KINDS = ("v2", "v2beta1")

_SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "log": ("get",),
    "binding": ("create",),
    "eviction": ("create",),
}


def subresource_kind(rt: ResourceType, sub: str) -> tuple[str, str, str]:
    """(group, version, kind) that a subresource accepts and returns."""
    if sub == "scale":
        return "autoscaling", "v1", "Scale"
    if sub == "eviction":
        return "policy", "v1", "Eviction"
    if sub == "binding":
        return "", "v1", "Binding"
    return rt.group, rt.version, rt.kind


def _group_versions(registry: Registry) -> dict[str, list[str]]:
    """Group -> versions, in the registry's order (the order discovery lists them)."""
    out: dict[str, list[str]] = {}
    for rt in registry.all():
        versions = out.setdefault(rt.group, [])
        if rt.version not in versions:
            versions.append(rt.version)
    return out


def _types(registry: Registry, group: str, version: str) -> list[ResourceType]:
    return [rt for rt in registry.all() if rt.group == group and rt.version == version]


# -- legacy discovery ----------------------------------------------------------------


def api_versions(server_address: str) -> Obj:
    """/api: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_doc(group: str, versions: list[str]) -> Obj:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry: Registry) -> Obj:
    """/apis: every named group."""
    groups = [
        _group_doc(group, versions)
        for group, versions in _group_versions(registry).items()
        if group
    ]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> Obj | None:
    """/apis/<group>, or None if the group is not served."""
    versions = _group_versions(registry).get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def api_resource_list(registry: Registry, group: str, version: str) -> Obj | None:
    """/api/v1 or /apis/<group>/<version>: the resources and their subresources."""
    types = _types(registry, group, version)
    if not types:
        return None
    resources: list[Obj] = []
    for rt in types:
        entry: Obj = {
            "name": rt.plural,
            "singularName": rt.singular_name,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            sub_group, sub_version, sub_kind = subresource_kind(rt, sub)
            sub_entry: Obj = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": sub_kind,
                "verbs": list(_SUBRESOURCE_VERBS.get(sub, ("get",))),
            }
            if (sub_group, sub_version) != (rt.group, rt.version):
                sub_entry["group"] = sub_group
                sub_entry["version"] = sub_version
            resources.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


# -- aggregated discovery (apidiscovery.k8s.io) -------------------------------------------


def _aggregated_resource(rt: ResourceType) -> Obj:
    entry: Obj = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular_name,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subs = []
    for sub in rt.subresources:
        sub_group, sub_version, sub_kind = subresource_kind(rt, sub)
        subs.append(
            {
                "subresource": sub,
                "responseKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
                "verbs": list(_SUBRESOURCE_VERBS.get(sub, ("get",))),
            }
        )
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated_discovery(registry: Registry, *, core: bool, version: str = "v2") -> Obj:
    """The APIGroupDiscoveryList for /api (core=True) or /apis (core=False)."""
    items = []
    for group, versions in _group_versions(registry).items():
        if (group == "") != core:
            continue
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": v,
                        "resources": [
                            _aggregated_resource(rt) for rt in _types(registry, group, v)
                        ],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def aggregated_content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


# -- OpenAPI v3: only what kubectl's field-validation check reads ---------------------------

_PATCH_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
#: No strategic-merge-patch body: kubectl then computes `apply` patches from its built-in
#: types instead of from schemas the twin does not publish.
_PATCH_BODIES = ("application/json-patch+json", "application/merge-patch+json")
OPENAPI_HASH = "twin"


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_root(registry: Registry) -> Obj:
    """/openapi/v3: one document per group version."""
    paths = {}
    for group, versions in _group_versions(registry).items():
        for version in versions:
            gv = _gv_path(group, version)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={OPENAPI_HASH}"}
    return {"paths": paths}


def openapi_v3_document(registry: Registry, gv_path: str) -> Obj | None:
    """/openapi/v3/<gv>: each kind's PATCH operation, declaring server-side field validation.

    kubectl (`apply`, `create -f`, `replace`) reads these to learn that the
    server validates fields itself (`fieldValidation=Strict`); without them it
    wants to validate client-side from a schema it cannot download. Schemas
    are not published, so `kubectl explain` finds nothing.
    """
    parts = gv_path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    types = _types(registry, group, version)
    if not types:
        return None
    paths: Obj = {}
    for rt in types:
        if "patch" not in rt.verbs:
            continue
        prefix = f"/{gv_path.strip('/')}"
        item = (
            f"{prefix}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
            if rt.namespaced
            else f"{prefix}/{rt.plural}/{{name}}"
        )
        paths[item] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                    for name in _PATCH_PARAMETERS
                ],
                "requestBody": {
                    "content": {t: {"schema": {"type": "object"}} for t in _PATCH_BODIES},
                    "required": True,
                },
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": rt.group,
                    "version": rt.version,
                    "kind": rt.kind,
                },
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
