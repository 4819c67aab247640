"""The tunable limits of the policy gate (policies/default.yaml), validated at start.

A user may tighten or loosen these within the hard invariants, which live in
code (policies/gate.py) and no file can change. An invalid file stops
start-up with the field's path named.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from policies.context import HARD_MAX_REPLICAS
from state import ActionName, dns1123_label, format_validation_error

DEFAULT_FILE = Path(__file__).with_name("default.yaml")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAMESPACE_PATTERN = re.compile(r"^[a-z0-9*?][-a-z0-9*?]{0,62}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def _minutes(hhmm: str) -> int:
    m = _HHMM.match(hhmm)
    if not m:
        raise ValueError(f"{hhmm!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return int(m.group(1)) * 60 + int(m.group(2))


class FreezeWindow(BaseModel):
    """A change freeze: during it every write needs a person, even in autonomous mode."""

    model_config = ConfigDict(extra="forbid")

    #: Weekdays in UTC (mon ... sun, or full names); empty means every day.
    days: list[str] = Field(default_factory=list)
    #: From start to end inclusive, UTC, HH:MM. An end before the start runs past midnight
    #: into the next day (days name the day the window starts).
    start: str = "00:00"
    end: str = "23:59"
    reason: str = ""

    @field_validator("days")
    @classmethod
    def _days(cls, days: list[str]) -> list[str]:
        out = []
        for day in days:
            short = day.strip().lower()[:3]
            if short not in WEEKDAYS or not day.strip().lower().startswith(short):
                raise ValueError(f"{day!r} is not a weekday ({', '.join(WEEKDAYS)})")
            out.append(short)
        return out

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        _minutes(value)
        return value

    def covers(self, now: datetime) -> bool:
        """Whether `now` (any timezone; naive means UTC) falls in the window."""
        utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        minute = utc.hour * 60 + utc.minute
        start, end = _minutes(self.start), _minutes(self.end)
        today = WEEKDAYS[utc.weekday()]
        yesterday = WEEKDAYS[(utc - timedelta(days=1)).weekday()]
        days = set(self.days) or set(WEEKDAYS)
        if start <= end:
            return today in days and start <= minute <= end
        return (today in days and minute >= start) or (yesterday in days and minute <= end)


def in_freeze_window(windows: Sequence[FreezeWindow], now: datetime) -> FreezeWindow | None:
    """The first freeze window that covers `now`, if any."""
    return next((w for w in windows if w.covers(now)), None)


def _default_auto_actions() -> list[ActionName]:
    return ["restart", "delete_pod", "scale", "rollback", "set_hpa"]


class PolicyLimits(BaseModel):
    """What an operator may tune."""

    model_config = ConfigDict(extra="forbid")

    #: Namespaces where autonomous mode may write without a person ("*" = any not protected).
    autonomous_namespaces: list[str] = Field(default_factory=lambda: ["*"])
    #: Actions that run without approval in autonomous mode (when every other check passes).
    auto_actions: list[ActionName] = Field(default_factory=_default_auto_actions)
    #: Below this hypothesis confidence, every write needs a person.
    min_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    max_actions_per_incident: int = Field(default=5, ge=0)
    max_actions_per_workload_per_hour: int = Field(default=3, ge=0)
    #: Largest change of replicas one scale action may make.
    max_replica_change: int = Field(default=10, ge=1)
    #: Hard ceiling is in code (policies.context.HARD_MAX_REPLICAS); this may only lower it.
    max_replicas: int = Field(default=50, ge=1, le=HARD_MAX_REPLICAS)
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    max_tokens_per_incident: int = Field(default=200_000, ge=0)
    max_cost_usd_per_incident: float = Field(default=5.0, ge=0.0)
    #: Extra namespaces never written (added to the hard-coded protected ones).
    protected_namespaces: list[str] = Field(default_factory=list)
    #: Who may answer approval requests (terminal user names, Slack user ids); empty: anyone
    #: who can reach the approval prompt.
    approvers: list[str] = Field(default_factory=list)
    #: How long an approval request stays answerable; a later answer is refused and the
    #: plan must be gated again.
    approval_ttl_s: float = Field(default=3600.0, gt=0)

    @field_validator("protected_namespaces")
    @classmethod
    def _namespaces(cls, names: list[str]) -> list[str]:
        for name in names:
            dns1123_label(name)
        return names

    @field_validator("autonomous_namespaces")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not _NAMESPACE_PATTERN.match(pattern):
                raise ValueError(
                    f"{pattern!r} is not a namespace or a pattern of one (letters, digits, "
                    "'-', and the wildcards '*' and '?')"
                )
        return patterns

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, approvers: list[str]) -> list[str]:
        if any(not a.strip() for a in approvers):
            raise ValueError("an approver must be named (no empty entries)")
        return approvers


class PolicyFileError(ValueError):
    """The policy file is invalid; the message names each bad field's path."""


def load_limits(path: Path | None = None) -> PolicyLimits:
    """Read and validate a policy file (policies/default.yaml when None)."""
    source = path or DEFAULT_FILE
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except OSError as exc:
        raise PolicyFileError(f"cannot read policy file {str(source)!r}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"policy file {str(source)!r} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyFileError(f"policy file {str(source)!r} must be a mapping at the top level")
    try:
        return PolicyLimits.model_validate(raw)
    except ValidationError as exc:
        raise PolicyFileError(
            f"policy file {str(source)!r} is invalid: {format_validation_error(exc)}"
        ) from exc
