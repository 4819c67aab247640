"""Just enough of the API server's protobuf encoding for kubectl's typed requests.

kubectl sends most bodies as JSON, but its typed clients (used by `kubectl
drain` to evict pods, for one) send `application/vnd.kubernetes.protobuf`:
the magic `k8s\\x00`, then a runtime.Unknown envelope naming apiVersion and
kind around the object's own protobuf bytes. Decoding an arbitrary kind needs
every type's field numbers; the twin knows only small ones: Eviction and
DeleteOptions (`kubectl drain`), ConfigMap, Secret and Namespace (`kubectl
create configmap|secret|namespace`), with the ObjectMeta fields a new object
carries, and answers anything else (`kubectl create deployment`) with 415,
which names the format it does accept.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"

Obj = dict[str, Any]


class ProtobufError(ValueError):
    """A protobuf body the twin cannot decode."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint and fixed fields, bytes for the rest."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            out.append((number, int.from_bytes(data[pos : pos + 8], "little")))
            pos += 8
        elif wire == 5:
            out.append((number, int.from_bytes(data[pos : pos + 4], "little")))
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string field")
    return value.decode("utf-8")


def _signed(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise ProtobufError("expected an integer field")
    return value - (1 << 64) if value >= 1 << 63 else value


def _map_entry(value: int | bytes) -> tuple[str, bytes]:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    key, item = "", b""
    for number, part in fields(value):
        if number == 1:
            key = _text(part)
        elif number == 2 and isinstance(part, bytes):
            item = part
    return key, item


def _object_meta(data: bytes) -> Obj:
    meta: Obj = {}
    for number, value in fields(data):
        if number in _META_STRINGS:
            meta[_META_STRINGS[number]] = _text(value)
        elif number in (11, 12):
            key, item = _map_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return {k: v for k, v in meta.items() if v}


_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}


def _config_map(data: bytes) -> Obj:
    obj: Obj = {}
    for number, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2:
            key, item = _map_entry(value)
            obj.setdefault("data", {})[key] = item.decode()
        elif number == 3:
            key, item = _map_entry(value)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(item).decode()
        elif number == 4:
            obj["immutable"] = bool(value)
    return obj


def _secret(data: bytes) -> Obj:
    obj: Obj = {}
    for number, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2:
            key, item = _map_entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(item).decode()
        elif number == 3:
            obj["type"] = _text(value)
        elif number == 4:
            key, item = _map_entry(value)
            obj.setdefault("stringData", {})[key] = item.decode()
        elif number == 5:
            obj["immutable"] = bool(value)
    return obj


def _namespace(data: bytes) -> Obj:
    obj: Obj = {}
    for number, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            finalizers = [_text(v) for n, v in fields(value) if n == 1]
            if finalizers:
                obj["spec"] = {"finalizers": finalizers}
    return obj


def _delete_options(data: bytes) -> Obj:
    options: Obj = {}
    for number, value in fields(data):
        if number == 1:
            options["gracePeriodSeconds"] = _signed(value)
        elif number == 2 and isinstance(value, bytes):
            pre: Obj = {}
            for sub, sub_value in fields(value):
                if sub == 1:
                    pre["uid"] = _text(sub_value)
                elif sub == 2:
                    pre["resourceVersion"] = _text(sub_value)
            options["preconditions"] = pre
        elif number == 3:
            options["orphanDependents"] = bool(value)
        elif number == 4:
            options["propagationPolicy"] = _text(value)
        elif number == 5:
            options.setdefault("dryRun", []).append(_text(value))
    return options


def decode(body: bytes) -> Obj:
    """The JSON form of a protobuf-encoded Eviction or DeleteOptions; ProtobufError otherwise."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic")
    api_version = kind = ""
    raw = b""
    for number, value in fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for sub, sub_value in fields(value):
                if sub == 1:
                    api_version = _text(sub_value)
                elif sub == 2:
                    kind = _text(sub_value)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    if kind == "DeleteOptions":
        return {"apiVersion": api_version, "kind": kind, **_delete_options(raw)}
    if kind == "Eviction":
        eviction: Obj = {"apiVersion": api_version, "kind": kind}
        for number, value in fields(raw):
            if number == 1 and isinstance(value, bytes):
                eviction["metadata"] = _object_meta(value)
            elif number == 2 and isinstance(value, bytes):
                eviction["deleteOptions"] = _delete_options(value)
        return eviction
    simple = _SIMPLE_KINDS.get((api_version, kind))
    if simple is not None:
        return {"apiVersion": api_version, "kind": kind, **simple(raw)}
    raise ProtobufError(f"{kind or 'an unknown kind'} ({api_version}) cannot be sent as protobuf")


_SIMPLE_KINDS = {
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Secret"): _secret,
    ("v1", "Namespace"): _namespace,
}
