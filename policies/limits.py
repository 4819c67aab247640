"""The tunable limits of the policy gate (policies/default.yaml), validated at start.

A user may tighten or loosen these within the hard invariants, which live in
code (policies/gate.py) and no file can change. An invalid file stops
start-up with the field's path named.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from state import ActionName, format_validation_error

DEFAULT_FILE = Path(__file__).with_name("default.yaml")


class FreezeWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Cron-like weekday set and hours in UTC, e.g. days [sat, sun], from "00:00" to "23:59".
    days: list[str] = Field(default_factory=list)
    start: str = "00:00"
    end: str = "23:59"
    reason: str = ""


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
    #: Hard ceiling is in code; this may only lower it.
    max_replicas: int = Field(default=50, ge=1)
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    max_tokens_per_incident: int = Field(default=200_000, ge=0)
    max_cost_usd_per_incident: float = Field(default=5.0, ge=0.0)
    #: Extra namespaces never written (added to the hard-coded protected ones).
    protected_namespaces: list[str] = Field(default_factory=list)


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
