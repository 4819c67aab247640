"""Kubernetes resource quantities (`500m`, `2`, `128Mi`, `1G`) as numbers.

Scenario files write CPU and memory the way manifests do; the twin computes
with cores and bytes. Parsing follows apimachinery's resource.Quantity for the
suffixes that appear in practice: decimal SI (`m`, `k`, `M`, `G`, `T`, `P`,
`E`), binary (`Ki` ... `Ei`) and decimal exponents (`1e3`).
"""

from __future__ import annotations

import re

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
_QUANTITY_RE = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)


def parse_quantity(value: str | int | float) -> float:
    """A quantity as a plain number: `"500m"` -> 0.5, `"1Gi"` -> 1073741824.0."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    m = _QUANTITY_RE.match(text)
    if not m:
        raise ValueError(f"invalid quantity {value!r}: expected a number with an optional suffix")
    number, exponent, suffix = m.groups()
    base = float(number)
    if exponent:
        return base * 10.0 ** int(exponent[1:])
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    return base * _DECIMAL[suffix or ""]


def parse_cpu(value: str | int | float) -> float:
    """CPU in cores: `"250m"` -> 0.25, `"2"` -> 2.0."""
    cores = parse_quantity(value)
    if cores < 0:
        raise ValueError(f"invalid cpu {value!r}: must not be negative")
    return cores


def parse_memory(value: str | int | float) -> int:
    """Memory in bytes: `"128Mi"` -> 134217728."""
    size = parse_quantity(value)
    if size < 0:
        raise ValueError(f"invalid memory {value!r}: must not be negative")
    return round(size)


def format_cpu(cores: float) -> str:
    """Cores as Kubernetes prints them: whole cores plain, otherwise millicores."""
    if cores == int(cores):
        return str(int(cores))
    return f"{round(cores * 1000)}m"


def format_memory(size: float) -> str:
    """Bytes in the largest binary unit that divides them exactly (`128Mi`)."""
    n = round(size)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)
