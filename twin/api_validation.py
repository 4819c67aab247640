"""What the API server checks and resets on a write before admission and storage.

Only the rules a client meets in practice: object names (RFC 1123 subdomain,
RFC 1123 label for namespaces, RFC 1035 label for services), a workload's
selector matching its template and staying immutable, the few pod spec
fields an update may change, and the status a create starts from (a Pod is
Pending, a Namespace Active; clients do not set status). Messages are the
API server's own words, so an agent reading them learns what it would learn
from a real cluster.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from twin import errors
from twin.quantity import parse_quantity
from twin.resources import ResourceType
from twin.selectors import match_labels

Obj = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_1123_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)

_POD_UPDATE_MSG = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)"
)

_WORKLOADS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})


def qualified_kind(rt: ResourceType) -> str:
    """The GroupKind as error messages print it: `Pod`, `Deployment.apps`."""
    return f"{rt.kind}.{rt.group}" if rt.group else rt.kind


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> errors.ApiError:
    """422 Invalid, worded as the API server words it (`Deployment.apps "x" is invalid: ...`)."""
    err = errors.invalid(qualified_kind(rt), rt.group, name, causes)
    err.details["kind"] = rt.kind
    return err


def go_map(labels: Mapping[str, Any] | None) -> str:
    """A map[string]string as Go's %#v prints it in validation messages."""
    if not labels:
        return "map[string]string(nil)"
    inner = ", ".join(f'"{k}":"{labels[k]}"' for k in sorted(labels))
    return "map[string]string{" + inner + "}"


def _go_selector(selector: Mapping[str, Any] | None) -> str:
    if not selector:
        return "nil"
    exprs = selector.get("matchExpressions")
    expr_text = "[]v1.LabelSelectorRequirement(nil)"
    if exprs:
        parts = [
            f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", '
            f'Operator:"{e.get("operator", "")}", Values:[]string{{'
            + ", ".join(f'"{v}"' for v in e.get("values") or [])
            + "}}"
            for e in exprs
        ]
        expr_text = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    return (
        f"v1.LabelSelector{{MatchLabels:{go_map(selector.get('matchLabels'))}, "
        f"MatchExpressions:{expr_text}}}"
    )


def name_error(rt: ResourceType, name: str) -> str | None:
    """Why `name` is not a valid name for `rt`, or None."""
    if rt.kind == "Namespace" and rt.group == "":
        ok = len(name) <= 63 and bool(_LABEL_1123.match(name))
        return None if ok else _LABEL_1123_MSG
    if rt.kind == "Service" and rt.group == "":
        ok = len(name) <= 63 and bool(_LABEL_1035.match(name))
        return None if ok else _LABEL_1035_MSG
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if _SUBDOMAIN.match(name) else _SUBDOMAIN_MSG


def validate_create(rt: ResourceType, obj: Obj) -> None:
    """Checks on a new object; raises ApiError 422."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if name:
        problem = name_error(rt, name)
        if problem:
            raise invalid(rt, name, [("metadata.name", f'Invalid value: "{name}": {problem}')])
    elif not meta.get("generateName"):
        raise invalid(
            rt, "", [("metadata.name", "Required value: name or generateName is required")]
        )
    _validate_workload(rt, obj, name)


def _validate_workload(rt: ResourceType, obj: Obj, name: str) -> None:
    if rt.kind not in _WORKLOADS or rt.group != "apps":
        return
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise invalid(rt, name, [("spec.selector", "Required value")])
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not match_labels(selector, labels):
        raise invalid(
            rt,
            name,
            [
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {go_map(labels)}: `selector` does not match template `labels`",
                )
            ],
        )


def _pod_spec_mask(spec: Mapping[str, Any]) -> Obj:
    masked = copy.deepcopy(dict(spec))
    for field in ("containers", "initContainers"):
        for container in masked.get(field) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    for field in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        masked.pop(field, None)
    return masked


def validate_update(rt: ResourceType, old: Obj, new: Obj) -> None:
    """Checks on a changed object (PUT or PATCH of the main resource); raises ApiError 422."""
    name = (old.get("metadata") or {}).get("name", "")
    if rt.kind == "Pod" and rt.group == "":
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if old_spec != new_spec and _pod_spec_mask(old_spec) != _pod_spec_mask(new_spec):
            raise invalid(rt, name, [("spec", _POD_UPDATE_MSG)])
        return
    if rt.kind in _WORKLOADS and rt.group == "apps":
        old_sel = (old.get("spec") or {}).get("selector")
        new_sel = (new.get("spec") or {}).get("selector")
        if old_sel != new_sel:
            raise invalid(
                rt,
                name,
                [("spec.selector", f"Invalid value: {_go_selector(new_sel)}: field is immutable")],
            )
        _validate_workload(rt, new, name)


def _quantity(value: Any) -> float | None:
    try:
        return parse_quantity(value)
    except (TypeError, ValueError):
        return None


def _qos_class(spec: Mapping[str, Any]) -> str:
    """The pod's QoS class, from its containers' requests and limits (cpu and memory)."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        for res in ("cpu", "memory"):
            if res in requests or res in limits:
                any_set = True
            limit = limits.get(res)
            request = requests.get(res, limit)
            if limit is None or _quantity(request) != _quantity(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def prepare_create(rt: ResourceType, obj: Obj) -> None:
    """Reset what a client may not set on create, as the type's create strategy does."""
    if rt.group == "" and rt.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].setdefault("labels", {})
        if obj["metadata"].get("name"):
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        return
    if rt.group == "" and rt.kind == "Pod":
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
        return
    if rt.group == "" and rt.kind == "Node":
        return
    if rt.group == "" and rt.kind == "Secret" and not obj.get("type"):
        obj["type"] = "Opaque"
    if "status" in rt.subresources:
        obj["status"] = {}
