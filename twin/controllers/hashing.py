"""Names derived from hashes, as the controllers compute them.

A Deployment's ReplicaSet is `<deploy>-<pod-template-hash>` and a StatefulSet's
ControllerRevision `<sts>-<hash>`: FNV-32a over the template (plus the
collision count), its decimal digits mapped through apimachinery's
`rand.SafeEncodeString` alphabet. Go hashes a spew dump of the struct, which a
simulator cannot reproduce byte for byte, so the twin hashes canonical JSON:
the names have the real shape and change exactly when the template does.
"""

from __future__ import annotations

import json
from typing import Any

from twin.store import NAME_ALPHABET

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv32a(data: bytes, h: int = _FNV_OFFSET) -> int:
    """FNV-1a, 32 bits (Go's hash/fnv New32a)."""
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """apimachinery rand.SafeEncodeString: each character to the vowel-free alphabet."""
    return "".join(NAME_ALPHABET[ord(ch) % len(NAME_ALPHABET)] for ch in text)


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def compute_hash(template: Any, collision_count: int | None = None) -> str:
    """controller.ComputeHash: the pod-template-hash of a template."""
    h = fnv32a(canonical_json(template))
    if collision_count is not None:
        # binary.LittleEndian.PutUint32 into an 8-byte buffer.
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0", h)
    return safe_encode(str(h))
