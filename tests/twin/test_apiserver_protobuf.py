"""The protobuf bodies kubectl's typed clients send, decoded as the twin decodes them."""

from __future__ import annotations

import pytest

from twin.api_protobuf import MAGIC, ProtobufError, decode


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return MAGIC + field(1, type_meta) + field(2, raw)


def test_delete_options_with_grace_period_preconditions_and_policy() -> None:
    preconditions = field(1, "uid-1") + field(2, "42")
    raw = field(1, 0) + field(2, preconditions) + field(4, "Foreground") + field(5, "All")
    assert decode(envelope("v1", "DeleteOptions", raw)) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "uid-1", "resourceVersion": "42"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


def test_negative_grace_period_is_signed() -> None:
    raw = field(1, (1 << 64) - 1)
    assert decode(envelope("v1", "DeleteOptions", raw))["gracePeriodSeconds"] == -1


def test_eviction_with_metadata_and_delete_options() -> None:
    meta = field(1, "web-1") + field(3, "shop")
    raw = field(1, meta) + field(2, field(1, 30))
    assert decode(envelope("policy/v1", "Eviction", raw)) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "shop"},
        "deleteOptions": {"gracePeriodSeconds": 30},
    }


def test_config_map_and_secret_maps() -> None:
    meta = field(1, "cfg") + field(11, field(1, "app") + field(2, "web"))
    cm = field(1, meta) + field(2, field(1, "mode") + field(2, "fast"))
    assert decode(envelope("v1", "ConfigMap", cm)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"app": "web"}},
        "data": {"mode": "fast"},
    }
    secret = (
        field(1, field(1, "db"))
        + field(2, field(1, "pw") + field(2, b"\x00\xff"))
        + field(3, "Opaque")
    )
    assert decode(envelope("v1", "Secret", secret))["data"] == {"pw": "AP8="}


def test_kinds_it_cannot_decode_are_refused() -> None:
    with pytest.raises(ProtobufError, match=r"Deployment \(apps/v1\) cannot be sent as protobuf"):
        decode(envelope("apps/v1", "Deployment", b""))
    with pytest.raises(ProtobufError, match="magic"):
        decode(b'{"kind": "ConfigMap"}')
    with pytest.raises(ProtobufError, match="truncated"):
        decode(MAGIC + b"\x0a\x10\x0a")
