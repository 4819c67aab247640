"""`kubemedic audit INCIDENT_ID`: the audit trail of one incident, from its transcript.

SAFETY.md: every proposal, critic verdict, gate decision, approval (who, when,
from where), dry-run and API call is in the incident transcript with its
timestamp. The learner writes it to `settings.incident_dir(id)/transcript.json`
(a state.IncidentReport); this prints the trail from that file, oldest first,
then the approvals and the executed actions. Text is passed through the
tools' redaction filter once more on the way out: a transcript is supposed to
hold no secret, and printing one must not be the place where that fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from settings import load_settings
from state import IncidentReport, TranscriptEntry, TranscriptKind, format_validation_error
from tools.redact import redact

#: The transcript kinds that make up the audit trail (SAFETY.md); `--all` shows every line.
AUDIT_KINDS: frozenset[TranscriptKind] = frozenset(
    {
        "intake",
        "proposal",
        "verdict",
        "decision",
        "approval",
        "dry_run",
        "api_call",
        "verification",
        "fallback",
        "error",
        "outcome",
    }
)
#: Incident ids are file names under the data directory: no separators, no "..".
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
TRANSCRIPT_FILE = "transcript.json"


class AuditError(Exception):
    """The incident's transcript cannot be read; the message names the file."""


def transcript_path(data_dir: Path | None, incident_id: str) -> Path:
    """Where an incident's transcript is; ValueError for an id that is not a plain name."""
    if not _INCIDENT_ID.match(incident_id) or ".." in incident_id:
        raise ValueError(f"{incident_id!r} is not an incident id (letters, digits, '.', '_', '-')")
    settings = load_settings(data_dir=data_dir) if data_dir else load_settings()
    return settings.incident_dir(incident_id) / TRANSCRIPT_FILE


def load_report(path: Path) -> IncidentReport:
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise AuditError(f"no transcript at {str(path)!r}: is the incident id right?") from None
    except OSError as exc:
        raise AuditError(f"cannot read {str(path)!r}: {exc}") from exc
    try:
        return IncidentReport.model_validate_json(raw)
    except ValidationError as exc:
        raise AuditError(
            f"{str(path)!r} is not an incident transcript: {format_validation_error(exc)}"
        ) from exc


def _clean(text: str) -> str:
    return redact(text)[0]


def _clean_data(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {k: _clean_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_data(v) for v in value]
    return value


def trail(report: IncidentReport, *, everything: bool = False) -> list[TranscriptEntry]:
    """The audit lines of the transcript, oldest first (stable for equal times)."""
    lines = [e for e in report.transcript if everything or e.kind in AUDIT_KINDS]
    return sorted(lines, key=lambda e: e.at)


def render(report: IncidentReport, *, everything: bool = False) -> list[str]:
    """The audit trail as text lines."""
    inc = report.incident
    out = [
        f"incident {inc.id}: {_clean(inc.title)}",
        f"  trigger {inc.trigger}, mode {inc.mode}, opened {inc.opened_at.isoformat()}, "
        f"outcome {report.outcome or 'unfinished'}",
    ]
    if inc.requested_by:
        out.append(f"  requested by {_clean(inc.requested_by)}")
    out.append("")
    for e in trail(report, everything=everything):
        out.append(f"{e.at.isoformat()}  {e.node:<16} {e.kind:<12} {_clean(e.summary)}")
    if report.decisions:
        out += ["", "gate decisions:"]
        for d in report.decisions:
            out.append(
                f"  {d.at.isoformat()}  #{d.action_index} {d.action} {d.target}: {d.decision}"
                + (f" ({_clean('; '.join(d.reasons))})" if d.reasons else "")
            )
    if report.approvals:
        out += ["", "approvals:"]
        for a in report.approvals:
            covers = ", ".join(f"#{i}" for i in a.action_indexes) or "all pending"
            out.append(
                f"  {a.at.isoformat()}  {a.decision} by {_clean(a.by) or '(nobody)'} via {a.via}"
                f" for {covers}, request {a.request_id or '(none)'}"
                + (f": {_clean(a.comment)}" if a.comment else "")
            )
    if report.actions:
        out += ["", "executed:"]
        for x in report.actions:
            line = f"  {x.at.isoformat()}  #{x.action_index} {x.action.action} {x.action.target}"
            line += f": {x.status}" + (f" ({_clean(x.error)})" if x.error else "")
            out.append(line)
    return out


def audit(
    incident_id: Annotated[str, typer.Argument(help="The incident's id.")],
    data_dir: Annotated[
        Path | None,
        typer.Option(help="kubemedic's data directory (default: settings, .kubemedic)."),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every transcript line, not only the audit trail.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The trail as JSON lines.")] = False,
) -> None:
    """Print an incident's audit trail: proposals, verdicts, gate decisions, approvals, writes."""
    try:
        path = transcript_path(data_dir, incident_id)
        report = load_report(path)
    except (ValueError, AuditError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if as_json:
        for e in trail(report, everything=everything):
            row = e.model_dump(mode="json")
            typer.echo(json.dumps(_clean_data(row)))
        return
    for line in render(report, everything=everything):
        typer.echo(line)
