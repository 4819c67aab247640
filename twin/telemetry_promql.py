"""The PromQL the twin's Prometheus API answers: plain selectors, instant or over a range.

`name{label="v",label=~"re",label!="v",label!~"re"}`, optionally followed by
`[5m]`. Everything else (functions, aggregations, operators, offset, @,
subqueries) is refused with a `bad_data` error that names what was found, so
a client can fall back to fetching raw series and computing in its own code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from twin.telemetry import Series, Telemetry, series_labels

#: Prometheus' default lookback for instant vectors, seconds.
LOOKBACK = 300.0
#: Prometheus refuses range queries with more points per series than this.
MAX_POINTS = 11_000

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
}


class QueryError(ValueError):
    """A query the subset cannot answer; the message names what is unsupported."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        pattern = _regex(self.value)
        found = pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Selector:
    matchers: tuple[Matcher, ...]
    #: Range in seconds for `[5m]`, or None for an instant vector.
    range: float | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    @property
    def name(self) -> str | None:
        for m in self.matchers:
            if m.name == "__name__" and m.op == "=":
                return m.value
        return None


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _regex(value: str) -> re.Pattern[str]:
    got = _REGEX_CACHE.get(value)
    if got is None:
        try:
            got = re.compile(value)
        except re.error as exc:
            raise QueryError(f"invalid regular expression {value!r}: {exc}") from exc
        _REGEX_CACHE[value] = got
    return got


def parse_duration(text: str) -> float:
    """A Prometheus duration (`5m`, `1h30m`, `90s`) or a number of seconds, as seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value < 0 or math.isnan(value) or math.isinf(value):
            raise QueryError(f"invalid duration {text!r}")
        return value
    m = _DURATION.match(text)
    if not text or not m or not any(m.groups()):
        raise QueryError(f'invalid duration "{text}": expected e.g. 30s, 5m, 1h30m')
    total = 0.0
    for unit, group in (("y", 2), ("w", 4), ("d", 6), ("h", 8), ("m", 10), ("s", 12), ("ms", 14)):
        if m.group(group):
            total += int(m.group(group)) * _UNITS[unit]
    return total


def parse_time(text: str) -> float:
    """An API time parameter: Unix seconds (float) or RFC 3339."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise QueryError(f'cannot parse "{text}" to a valid timestamp') from exc


def _unsupported(query: str, found: str) -> QueryError:
    return QueryError(
        f"unsupported expression {query!r}: {found}; this Prometheus API subset answers only "
        'plain vector selectors such as name{label="v",label=~"re",label!="v"}, optionally '
        "with a range such as [5m] (fetch the series and compute rates, sums and quantiles "
        "on the client)"
    )


def parse(query: str) -> Selector:
    """Parse a selector, or raise QueryError naming what is not supported."""
    text = query.strip()
    if not text:
        raise QueryError("empty query")
    pos = 0
    matchers: list[Matcher] = []
    m = _NAME.match(text, pos)
    if m:
        name = m.group(0)
        pos = m.end()
        rest = text[pos:].lstrip()
        if rest.startswith("(") or (name in _AGGREGATIONS and rest[:2] in ("by", "wi")):
            kind = "aggregation" if name in _AGGREGATIONS else "function"
            raise _unsupported(query, f"found the {kind} {name}()")
        if name in ("offset", "bool", "on", "ignoring", "group_left", "group_right"):
            raise _unsupported(query, f"found the keyword {name!r}")
        matchers.append(Matcher("__name__", "=", name))
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] == "{":
        pos = _matchers(query, text, pos + 1, matchers)
    pos = _skip(text, pos)
    rng: float | None = None
    if pos < len(text) and text[pos] == "[":
        end = text.find("]", pos)
        if end < 0:
            raise QueryError(f"unclosed range in {query!r}")
        inner = text[pos + 1 : end]
        if ":" in inner:
            raise _unsupported(query, "found a subquery [range:step]")
        rng = parse_duration(inner)
        if rng <= 0:
            raise QueryError(f"range must be positive in {query!r}")
        pos = _skip(text, end + 1)
    if pos < len(text):
        rest = text[pos:]
        word = rest.split()[0] if rest.split() else rest
        if word in ("offset", "@") or rest.startswith("@"):
            raise _unsupported(query, f"found the modifier {word!r}")
        op = re.match(r"(\*|/|\+|-|%|\^|==|!=|>=|<=|>|<|and|or|unless)", rest)
        if op:
            raise _unsupported(query, f"found the binary operator {op.group(0)!r}")
        raise QueryError(f"unexpected {rest[:20]!r} in {query!r}")
    if not matchers:
        raise _unsupported(query, "found no metric name or label matcher")
    if not any(not mt.matches({}) for mt in matchers):
        raise QueryError("vector selector must contain at least one non-empty matcher")
    return Selector(tuple(matchers), rng)


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _matchers(query: str, text: str, pos: int, out: list[Matcher]) -> int:
    while True:
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == "}":
            return pos + 1
        m = _LABEL.match(text, pos)
        if not m:
            raise QueryError(f"expected a label name at position {pos} in {query!r}")
        label = m.group(0)
        pos = _skip(text, m.end())
        op = next((o for o in ("=~", "!~", "!=", "=") if text.startswith(o, pos)), None)
        if op is None:
            raise QueryError(f"expected =, !=, =~ or !~ after {label!r} in {query!r}")
        pos = _skip(text, pos + len(op))
        value, pos = _string(query, text, pos)
        out.append(Matcher(label, op, value))
        if op in ("=~", "!~"):
            _regex(value)
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        if pos < len(text) and text[pos] == "}":
            return pos + 1
        raise QueryError(f"expected , or }} at position {pos} in {query!r}")


def _string(query: str, text: str, pos: int) -> tuple[str, int]:
    if pos >= len(text) or text[pos] not in "\"'`":
        raise QueryError(f"expected a quoted string at position {pos} in {query!r}")
    quote = text[pos]
    pos += 1
    out: list[str] = []
    while pos < len(text):
        ch = text[pos]
        if ch == quote:
            return "".join(out), pos + 1
        if ch == "\\" and quote != "`" and pos + 1 < len(text):
            nxt = text[pos + 1]
            out.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}.get(nxt, "\\" + nxt))
            pos += 2
            continue
        out.append(ch)
        pos += 1
    raise QueryError(f"unterminated string in {query!r}")


# -- evaluation -----------------------------------------------------------------------------


def _candidates(tel: Telemetry, sel: Selector) -> list[Series]:
    name = sel.name
    keys = tel.by_name.get(name, []) if name is not None else list(tel.series)
    out = []
    for key in keys:
        s = tel.series.get(key)
        if s is not None and sel.matches(series_labels(s.name, s.labels)):
            out.append(s)
    return out


def _sample(t: float, v: float) -> list[object]:
    return [_ts(t), _value(v)]


def _ts(t: float) -> float | int:
    r = round(t, 3)
    return int(r) if r == int(r) else r


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def instant(tel: Telemetry, query: str, at: float) -> dict[str, object]:
    """The `data` of /api/v1/query."""
    sel = parse(query)
    result: list[dict[str, object]] = []
    if sel.range is not None:
        for s in _candidates(tel, sel):
            samples = tel.samples_between(s, at - sel.range, at)
            if samples:
                result.append(
                    {
                        "metric": series_labels(s.name, s.labels),
                        "values": [_sample(t, v) for t, v in samples],
                    }
                )
        return {"resultType": "matrix", "result": result}
    for s in _candidates(tel, sel):
        v = tel.value_at(s, at, LOOKBACK)
        if v is not None:
            result.append({"metric": series_labels(s.name, s.labels), "value": _sample(at, v)})
    return {"resultType": "vector", "result": result}


def range_query(
    tel: Telemetry, query: str, start: float, end: float, step: float
) -> dict[str, object]:
    """The `data` of /api/v1/query_range."""
    if step <= 0:
        raise QueryError(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
        )
    if end < start:
        raise QueryError("end timestamp must not be before start time")
    if (end - start) / step > MAX_POINTS:
        raise QueryError(
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    sel = parse(query)
    if sel.range is not None:
        raise QueryError(
            'invalid expression type "range vector" for range query, '
            "must be Scalar or instant Vector"
        )
    steps = []
    t = start
    while t <= end + 1e-9:
        steps.append(t)
        t += step
    result: list[dict[str, object]] = []
    at = tel.steps_at(steps, LOOKBACK)
    stamps = [_ts(t) for t in steps]
    for s in _candidates(tel, sel):
        values = [
            [stamp, _value(v)]
            for stamp, v in zip(stamps, tel.values_at(s, at), strict=True)
            if v is not None
        ]
        if values:
            result.append({"metric": series_labels(s.name, s.labels), "values": values})
    return {"resultType": "matrix", "result": result}


def series(
    tel: Telemetry, matches: list[str], start: float | None, end: float | None
) -> list[dict[str, str]]:
    """The label sets of the series matching any of `matches` with samples in [start, end]."""
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, str]] = {}
    for query in matches:
        sel = parse(query)
        if sel.range is not None:
            raise QueryError(f"range selectors are not valid in match[]: {query!r}")
        for s in _candidates(tel, sel):
            if not _in_range(tel, s, start, end):
                continue
            seen.setdefault((s.name, s.labels), series_labels(s.name, s.labels))
    return [seen[k] for k in sorted(seen)]


def _in_range(tel: Telemetry, s: Series, start: float | None, end: float | None) -> bool:
    lo = -math.inf if start is None else start - 1e-9
    hi = math.inf if end is None else end
    return bool(tel.samples_between(s, lo, hi))


def label_names(
    tel: Telemetry, matches: list[str], start: float | None, end: float | None
) -> list[str]:
    names: set[str] = set()
    for labels in _matching(tel, matches, start, end):
        names.update(labels)
    return sorted(names)


def label_values(
    tel: Telemetry, name: str, matches: list[str], start: float | None, end: float | None
) -> list[str]:
    values: set[str] = set()
    for labels in _matching(tel, matches, start, end):
        if name in labels:
            values.add(labels[name])
    return sorted(values)


def _matching(
    tel: Telemetry, matches: list[str], start: float | None, end: float | None
) -> list[dict[str, str]]:
    if matches:
        return series(tel, matches, start, end)
    out = []
    for s in tel.series.values():
        if (start is None and end is None) or _in_range(tel, s, start, end):
            out.append(series_labels(s.name, s.labels))
    return out
