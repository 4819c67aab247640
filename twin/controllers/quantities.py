"""Resource quantities with exact arithmetic and the API server's canonical strings.

Quota messages print quantities the way resource.Quantity.String does
(`limits.cpu=1500m`, `limits.memory=2Gi`), and the API server stores every
quantity in that form, so `cpu: 0.5` reads back as `500m` and `2048Mi` as
`2Gi`. Values are Fractions so sums of millicores never drift.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

Format = Literal["BinarySI", "DecimalSI", "DecimalExponent"]

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_SUFFIX = {exp: suffix for suffix, exp in _BINARY.items()}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")


@dataclass(frozen=True)
class Quantity:
    """A resource.Quantity: an exact value and the format it prints in."""

    value: Fraction
    format: Format = "DecimalSI"

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def __str__(self) -> str:
        return canonical(self.value, self.format)

    @property
    def milli(self) -> int:
        """The value in thousandths, rounded up (Quantity.MilliValue)."""
        return math.ceil(self.value * 1000)


ZERO = Quantity(Fraction(0))


def parse(value: Any) -> Quantity:
    """Parse a quantity as it appears in JSON: "250m", "1Gi", "1e3", 2, 0.5."""
    if isinstance(value, bool):
        raise ValueError(f"quantity {value!r} is not valid")
    if isinstance(value, int):
        return Quantity(Fraction(value))
    if isinstance(value, float):
        return Quantity(Fraction(str(value)))
    text = str(value).strip()
    m = _RE.match(text)
    if not m:
        raise ValueError(
            f"quantity {value!r} is not valid: expected a number with an optional suffix"
        )
    number, exponent, suffix = m.groups()
    base = Fraction(number)
    if exponent:
        return Quantity(base * Fraction(10) ** int(exponent[1:]), "DecimalExponent")
    if suffix in _BINARY:
        return Quantity(base * 2 ** _BINARY[suffix], "BinarySI")
    return Quantity(base * Fraction(10) ** _DECIMAL[suffix or ""], "DecimalSI")


def try_parse(value: Any) -> Quantity | None:
    try:
        return parse(value)
    except ValueError:
        return None


def canonical(value: Fraction, fmt: Format = "DecimalSI") -> str:
    """Quantity.String: the canonical text of a value in a format."""
    if value == 0:
        return "0"
    if fmt == "BinarySI":
        if -1024 < value < 1024 or value.denominator != 1:
            fmt = "DecimalSI"
        else:
            mantissa, exp = int(value), 0
            while mantissa % 1024 == 0 and exp < 60:
                mantissa //= 1024
                exp += 10
            return f"{mantissa}{_BINARY_SUFFIX.get(exp, '')}"
    sign = -1 if value < 0 else 1
    # Quantities keep nano precision; anything finer rounds up (away from zero).
    mantissa = math.ceil(abs(value) * 10**9)
    exp = -9
    while mantissa % 1000 == 0 and exp < 18:
        mantissa //= 1000
        exp += 3
    text = str(sign * mantissa)
    if fmt == "DecimalExponent":
        return text if exp == 0 else f"{text}e{exp}"
    return f"{text}{_DECIMAL_SUFFIX[exp]}"


def canonicalize(value: Any) -> Any:
    """The stored form of a quantity field; an unparsable value is left for validation."""
    q = try_parse(value)
    return value if q is None else str(q)


def canonicalize_list(resources: dict[str, Any] | None) -> None:
    """Canonicalize a ResourceList in place."""
    if not resources:
        return
    for key, value in list(resources.items()):
        resources[key] = canonicalize(value)


def pretty(resources: dict[str, Quantity]) -> str:
    """quota prettyPrint: `k=v,...` sorted by key."""
    return ",".join(f"{key}={resources[key]}" for key in sorted(resources))
