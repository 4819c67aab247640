"""Label and field selectors, parsed as the API server parses them.

Label selectors support equality (`a=b`, `a==b`, `a!=b`) and set-based
(`a in (x,y)`, `a notin (x)`, `a`, `!a`) requirements; field selectors
support `=`, `==` and `!=` on any dotted path of the object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Matcher = Callable[[Mapping[str, Any]], bool]


class SelectorError(ValueError):
    """A selector string the API server would reject (400 BadRequest)."""


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_requirements(selector: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p for p in (p.strip() for p in parts) if p]


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def __call__(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "=":
            return value == next(iter(self.values))
        if self.op == "!=":
            return value != next(iter(self.values))
        if self.op == "in":
            return value in self.values
        if self.op == "notin":
            return value not in self.values
        if self.op == "exists":
            return self.key in labels
        return self.key not in labels


def parse_label_selector(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """Compile a label selector string into a predicate over a labels mapping."""
    if not selector or not selector.strip():
        return lambda _labels: True
    reqs: list[_Requirement] = []
    for req in _split_requirements(selector):
        m = _EQ_RE.match(req)
        if m:
            key, op, value = m.groups()
            reqs.append(_Requirement(key, "!=" if op == "!=" else "=", frozenset([value])))
            continue
        m = _SET_RE.match(req)
        if m:
            neg, key, op, values = m.groups()
            if op:
                vals = frozenset(v.strip() for v in values.split(",") if v.strip())
                reqs.append(_Requirement(key, op, vals))
            else:
                reqs.append(_Requirement(key, "!" if neg else "exists"))
            continue
        raise SelectorError(f"unable to parse requirement: {req!r}")
    return lambda labels: all(r(labels) for r in reqs)


def match_labels(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Match a structured LabelSelector ({matchLabels, matchExpressions}).

    An empty or missing selector matches everything, as for NetworkPolicy and
    PDB; a Service with no selector is handled by its controller, not here.
    """
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key", "")
        op = expr.get("operator", "")
        values = set(expr.get("values") or [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def get_path(obj: Mapping[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def parse_field_selector(selector: str | None) -> Matcher:
    """Compile a field selector; values compare as strings, missing as ""."""
    if not selector or not selector.strip():
        return lambda _obj: True
    preds: list[Matcher] = []
    for req in _split_requirements(selector):
        m = _EQ_RE.match(req)
        if not m:
            raise SelectorError(f"invalid field selector: {req!r}")
        path, op, value = m.groups()

        def pred(obj: Mapping[str, Any], p: str = path, o: str = op, v: str = value) -> bool:
            raw = get_path(obj, p)
            actual = "" if raw is None else str(raw)
            return actual != v if o == "!=" else actual == v

        preds.append(pred)
    return lambda obj: all(p(obj) for p in preds)
