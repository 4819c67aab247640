"""Rendering a behaviour profile's log templates into the lines its runtime prints.

A template is a `str.format` string (``{{``/``}}`` are literal braces) whose
placeholders come from the request being logged ({latency_ms}, {cause},
{operation}, {method}, {path}, {status}, {code}, {req_id}, {session}, {uuid},
{pod}, {namespace}, {port}) or, for any other name, from the profile's
`extra` (one of its `|`-separated values, picked at random). An unknown
placeholder is printed as written.

A template can also be JSON, for runtimes that log structured records:
- an object: one record; ``message`` is the text, ``severity`` overrides the
  level the template is logged at, ``logger`` the logger name, ``raw: true``
  prints the message as is (a `fmt.Println` or `Console.WriteLine` beside the
  structured logger), and every other key is a field of the record; a field
  whose value is exactly one placeholder keeps the value's type (numbers stay
  numbers);
- a list of records or strings: several lines for one request, in order.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from twin.behavior import BehaviorProfile
from twin.logfmt import format_line

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class _Record:
    message: str
    severity: str | None
    logger: str | None
    raw: bool
    fields: tuple[tuple[str, Any], ...]


class _Values(dict[str, Any]):
    """Placeholder values; fills `extra` choices lazily and keeps unknown names verbatim."""

    def __init__(self, base: dict[str, Any], extra: dict[str, str], rng: random.Random) -> None:
        super().__init__(base)
        self._extra = extra
        self._rng = rng

    def __missing__(self, key: str) -> Any:
        if key == "uuid":
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        choices = self._extra.get(key)
        if choices is None:
            return "{" + key + "}"
        value = self._rng.choice(choices.split("|"))
        self[key] = value
        return value


def fill(template: str, values: dict[str, Any]) -> str:
    """`template` with its placeholders replaced; a malformed template is printed as is."""
    if "{" not in template and "}" not in template:
        return template
    try:
        if isinstance(values, _Values):
            return template.format_map(values)
        return _FORMATTER.vformat(template, (), values)
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
        return template


@lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[_Record | str, ...]:
    text = template.lstrip()
    if text[:1] in ("{", "[") and text[1:2] in ('"', "{", "[", "]", " ", "\n"):
        try:
            data = json.loads(text)
        except ValueError:
            return (template,)
        items = data if isinstance(data, list) else [data]
        out: list[_Record | str] = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                out.append(_record(item))
            elif isinstance(item, str):
                out.append(item)
            else:
                return (template,)
        return tuple(out)
    return (template,)


def _record(item: dict[str, Any]) -> _Record:
    reserved = ("message", "severity", "logger", "raw")
    severity = item.get("severity")
    logger = item.get("logger")
    return _Record(
        message=str(item["message"]),
        severity=str(severity) if severity is not None else None,
        logger=str(logger) if logger is not None else None,
        raw=bool(item.get("raw", False)),
        fields=tuple((k, v) for k, v in item.items() if k not in reserved),
    )


def _field_value(value: Any, values: dict[str, Any]) -> Any:
    if not isinstance(value, str):
        return value
    if value.startswith("{") and value.endswith("}") and value.count("{") == 1:
        name = value[1:-1]
        if name.isidentifier():
            got = values[name]
            if isinstance(got, int | float) and not isinstance(got, bool):
                return got
            return str(got)
    return fill(value, values)


def render(
    profile: BehaviorProfile,
    template: str,
    severity: str,
    ts: datetime,
    values: dict[str, Any],
    *,
    hostname: str,
    rng: random.Random,
) -> list[str]:
    """The lines one use of `template` prints, in the profile's log style."""
    scope = _Values(values, profile.extra, rng)
    lines: list[str] = []
    for item in _parse(template):
        if isinstance(item, str):
            lines.append(
                format_line(
                    profile.log_style,
                    severity,
                    fill(item, scope),
                    ts,
                    logger=profile.logger,
                    hostname=hostname,
                )
            )
            continue
        message = fill(item.message, scope)
        if item.raw:
            lines.append(message)
            continue
        fields = {k: _field_value(v, scope) for k, v in item.fields}
        lines.append(
            format_line(
                profile.log_style,
                item.severity or severity,
                message,
                ts,
                logger=item.logger if item.logger is not None else profile.logger,
                hostname=hostname,
                fields=fields,
            )
        )
    return lines


def plain_line(
    profile: BehaviorProfile, severity: str, message: str, ts: datetime, *, hostname: str
) -> str:
    """A literal message (a fault's log line) in the profile's style; JSON text stays as is."""
    if message.lstrip().startswith("{") and message.rstrip().endswith("}"):
        return message
    return format_line(
        profile.log_style, severity, message, ts, logger=profile.logger, hostname=hostname
    )
