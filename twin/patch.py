"""The three patch formats of the Kubernetes API: JSON merge, JSON patch, strategic merge.

kubectl and kubemedic change objects with PATCH: `kubectl scale` and
`kubectl label` send JSON merge patches (RFC 7386), `kubectl rollout undo`
a JSON patch (RFC 6902), `kubectl rollout restart` and `kubectl patch` a
strategic merge patch, and the scenario `patch` fault uses strategic merge
too. A strategic merge patch differs from a merge patch in its lists: lists
of containers, env vars, ports, volumes and the like merge element by element
on a key (`name`, `containerPort`, `mountPath`...) instead of being replaced,
and `$patch` / `$retainKeys` / `$setElementOrder` / `$deleteFromPrimitiveList`
directives steer the merge. The keys here are those of the Go API types
(`patchMergeKey` struct tags); a list without one is replaced whole, as the
API server does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

#: A list of scalars merged as a set (`finalizers`), not replaced.
PRIMITIVE_SET = "$primitive-set"

#: Kinds whose pod template sits at spec.template (or deeper, for CronJob).
_POD_SPEC_LISTS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "schedulingGates": "name",
    "resourceClaims": "name",
}
_CONTAINER_LISTS = {
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "resizePolicy": "resourceName",
}
_CONTAINER_FIELDS = ("containers", "initContainers", "ephemeralContainers")
_STATUS_LISTS = {"conditions": "type", "addresses": "type", "podIPs": "ip", "hostIPs": "ip"}


class PatchError(ValueError):
    """A patch that cannot be applied (the API server answers 422, or 400 if malformed)."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


# -- RFC 7386 JSON merge patch ------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch: maps merge recursively, `null` deletes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: Obj = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- RFC 6902 JSON patch --------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}: must start with '/'", malformed=True)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, for_add: bool = False) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in {path!r}")
    idx = int(token)
    limit = len(container) if for_add else len(container) - 1
    if idx > limit:
        raise PatchError(f"array index {idx} out of bounds in {path!r}")
    return idx


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise PatchError(f"doc is missing path: {path!r}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, path)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing key: {path!r}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path)]
    raise PatchError(f"doc is missing path: {path!r}")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, for_add=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"remove operation does not apply: doc is missing path: {path!r}")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path)]
    else:
        raise PatchError(f"remove operation does not apply: doc is missing path: {path!r}")
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch to a copy of `doc`."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations", malformed=True)
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, Mapping) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation {op!r}", malformed=True)
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{kind} operation on {path!r} has no value", malformed=True)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            try:
                _get(doc, path)
            except PatchError as exc:
                raise PatchError(
                    f"replace operation does not apply: doc is missing key: {path}"
                ) from exc
            if _pointer(path):
                doc = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError(f"{kind} operation on {path!r} has no from", malformed=True)
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"unexpected kind of JSON patch operation: {kind!r}", malformed=True)
    return doc


# -- strategic merge patch ------------------------------------------------------------


def _is_pod_spec(kind: str, path: tuple[str, ...]) -> bool:
    if kind == "Pod" and path == ("spec",):
        return True
    return len(path) >= 2 and path[-2:] == ("template", "spec")


def list_strategy(kind: str, path: tuple[str, ...], field: str) -> str | None:
    """How the list at `path.field` merges: a merge key, PRIMITIVE_SET, or None (replace).

    `path` is the chain of map keys from the object's root (list positions
    are not part of it): container ports of a Deployment are at
    ("spec", "template", "spec", "containers") field "ports".
    """
    if _is_pod_spec(kind, path) and field in _POD_SPEC_LISTS:
        return _POD_SPEC_LISTS[field]
    if (
        path
        and path[-1] in _CONTAINER_FIELDS
        and _is_pod_spec(kind, path[:-1])
        and field in _CONTAINER_LISTS
    ):
        return _CONTAINER_LISTS[field]
    if path and path[-1] == "metadata":
        if field == "ownerReferences":
            return "uid"
        if field == "finalizers":
            return PRIMITIVE_SET
    if kind == "Service" and path == ("spec",) and field == "ports":
        return "port"
    if path and path[-1] == "status" and field in _STATUS_LISTS:
        return _STATUS_LISTS[field]
    return None


def _strip_directives(value: Any) -> Any:
    """Patch content that lands as new data: drop `$` directives inside it."""
    if isinstance(value, Mapping):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$") and v is not None
        }
    if isinstance(value, list):
        return [
            _strip_directives(v)
            for v in value
            if not (
                isinstance(v, Mapping) and v.get("$patch") in ("replace", "delete") and len(v) == 1
            )
        ]
    return copy.deepcopy(value)


def _key_index(items: list[Any], key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and item.get(key) == value:
            return i
    return -1


def _ordered(
    merged: list[Any], order: list[Any], original: list[Any], key: str | None
) -> list[Any]:
    """Apply `$setElementOrder`: patch-listed items in its order, server-only ones kept in place."""

    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, Mapping) else item

    wanted = [ident(o) for o in order]
    in_patch = [m for m in merged if ident(m) in wanted]
    in_patch.sort(key=lambda m: wanted.index(ident(m)))
    server_only = [m for m in merged if ident(m) not in wanted]
    server_ids = [ident(o) for o in original]

    out: list[Any] = []
    i = j = 0
    while i < len(in_patch) or j < len(server_only):
        if i >= len(in_patch):
            out.append(server_only[j])
            j += 1
        elif j >= len(server_only):
            out.append(in_patch[i])
            i += 1
        else:
            left, right = ident(in_patch[i]), ident(server_only[j])
            if (
                left in server_ids
                and right in server_ids
                and (server_ids.index(left) < server_ids.index(right))
            ):
                out.append(in_patch[i])
                i += 1
            else:
                out.append(server_only[j])
                j += 1
    return out


def _smp_list(
    original: list[Any], patch: list[Any], strategy: str | None, kind: str, path: tuple[str, ...]
) -> list[Any]:
    if strategy is None:
        return [_strip_directives(v) for v in patch]
    if strategy == PRIMITIVE_SET:
        out = list(original)
        out.extend(v for v in patch if v not in out)
        return out
    if any(isinstance(v, Mapping) and v.get("$patch") == "replace" for v in patch):
        return [
            _strip_directives(v) for v in patch if not (isinstance(v, Mapping) and "$patch" in v)
        ]
    out = [copy.deepcopy(v) for v in original]
    for item in patch:
        if not isinstance(item, Mapping):
            out.append(copy.deepcopy(item))
            continue
        if item.get("$patch") == "delete":
            out = [
                o
                for o in out
                if not (isinstance(o, Mapping) and o.get(strategy) == item.get(strategy))
            ]
            continue
        if strategy not in item:
            raise PatchError(f"map: {dict(item)!r} does not contain declared merge key: {strategy}")
        idx = _key_index(out, strategy, item[strategy])
        if idx >= 0:
            out[idx] = _smp_map(out[idx], item, kind, path)
        else:
            out.append(_smp_map({}, item, kind, path))
    return out


def _smp_map(
    original: Mapping[str, Any], patch: Mapping[str, Any], kind: str, path: tuple[str, ...]
) -> Obj:
    directive = patch.get("$patch")
    if directive == "replace":
        return {
            k: _strip_directives(v) for k, v in patch.items() if k != "$patch" and v is not None
        }
    result: Obj = dict(original)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list", malformed=True)
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            current = result.get(field)
            if isinstance(current, list) and isinstance(value, list):
                result[field] = [v for v in current if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, Mapping):
            if value.get("$patch") == "delete":
                result.pop(key, None)
                continue
            base = current if isinstance(current, Mapping) else {}
            result[key] = _smp_map(base, value, kind, (*path, key))
        elif isinstance(value, list):
            strategy = list_strategy(kind, path, key)
            base_list = current if isinstance(current, list) else []
            result[key] = _smp_list(base_list, value, strategy, kind, (*path, key))
        else:
            result[key] = value
    for field, order in orders.items():
        merged = result.get(field)
        if isinstance(merged, list):
            original_list = original.get(field)
            strategy = list_strategy(kind, path, field)
            result[field] = _ordered(
                merged,
                order,
                original_list if isinstance(original_list, list) else [],
                None if strategy in (None, PRIMITIVE_SET) else strategy,
            )
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def strategic_merge_patch(original: Mapping[str, Any], patch: Any, kind: str) -> Obj:
    """Apply a strategic merge patch to an object of `kind`; returns a new dict."""
    if not isinstance(patch, Mapping):
        raise PatchError("a strategic merge patch must be a JSON object", malformed=True)
    return _smp_map(original, patch, kind, ())


def apply_patch(original: Obj, patch: Any, patch_type: str, kind: str) -> Obj:
    """Apply a patch body (already parsed) of one of the API's patch content types."""
    if patch_type == JSON_PATCH:
        result = json_patch(original, patch)
    elif patch_type == MERGE_PATCH:
        if not isinstance(patch, Mapping):
            raise PatchError("a merge patch must be a JSON object", malformed=True)
        result = merge_patch(copy.deepcopy(original), patch)
    elif patch_type in (STRATEGIC_MERGE_PATCH, APPLY_PATCH):
        result = strategic_merge_patch(copy.deepcopy(original), patch, kind)
    else:
        raise PatchError(f"unsupported patch type {patch_type!r}", malformed=True)
    if not isinstance(result, dict):
        raise PatchError("the patched object is not a JSON object")
    return result
