"""`kubemedic incidents list|show` and `kubemedic postmortem INCIDENT_ID`.

`incidents` reads the incident memory: Redis when `KUBEMEDIC_REDIS__URL` is
set. Without Redis, memory lives in the process that ran the incident and is
gone, so these commands read the same records from the transcripts the learner
left under the data directory (and say so).

`postmortem` renders one incident's transcript as Markdown, JSON or HTML
(interfaces/postmortem.py), to a file or to standard output.

Mounted by interfaces/cli.py:
    app.add_typer(incidents_app, name="incidents")
    app.command("postmortem")(postmortem_cmd)
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agents.learner import build_record
from interfaces.postmortem import (
    SUFFIX,
    Format,
    PostmortemError,
    build_postmortem,
    load_report,
    render,
)
from memory import IncidentRecord, MemoryStoreError, make_memory
from settings import Settings, load_settings
from state import ActionStats, IncidentInput, IncidentReport, IncidentState

incidents_app = typer.Typer(
    name="incidents",
    help="Past incidents: what broke, what kubemedic did, whether it worked.",
    no_args_is_help=True,
    add_completion=False,
)

#: Incident ids are directory names under the data directory: no separators, no "..".
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="kubemedic's data directory (default: settings, .kubemedic)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _settings(data_dir: Path | None) -> Settings:
    return load_settings(data_dir=data_dir) if data_dir else load_settings()


def _check_id(incident_id: str) -> str:
    if not _INCIDENT_ID.match(incident_id) or ".." in incident_id:
        raise typer.BadParameter(
            f"{incident_id!r} is not an incident id (letters, digits, '.', '_', '-')"
        )
    return incident_id


def record_from_report(report: IncidentReport, settings: Settings) -> IncidentRecord:
    """The memory record of an incident, rebuilt from its transcript (as the learner built it)."""
    state = IncidentState(
        input=IncidentInput(trigger=report.incident.trigger, mode=report.incident.mode),
        incident=report.incident,
        evidence=report.evidence,
        log_findings=report.log_findings,
        plan=report.plan,
        executed=report.actions,
        verifications=report.verifications,
        outcome=report.outcome,
        detected_at=report.detected_at,
        localized_at=report.localized_at,
        mitigated_at=report.mitigated_at,
    )
    closed = max((t.at for t in report.transcript), default=report.incident.opened_at)
    return build_record(
        state,
        outcome=report.outcome or "unfinished",
        closed_at=closed,
        incident_dir=settings.incident_dir(report.incident.id),
    )


def _from_transcripts(settings: Settings) -> list[IncidentRecord]:
    records = []
    for path in sorted((settings.data_dir / "incidents").glob("*/transcript.json")):
        try:
            records.append(record_from_report(load_report(path), settings))
        except PostmortemError:
            continue  # not a transcript (or half-written): not an incident to list
    return sorted(records, key=lambda r: r.closed_at, reverse=True)


async def _from_memory(
    settings: Settings, incident_id: str | None, limit: int
) -> tuple[list[IncidentRecord], list[ActionStats], str]:
    store = make_memory(settings)
    try:
        if incident_id is None:
            return await store.list(limit=limit), [], store.description
        record = await store.get(incident_id)
        if record is None:
            return [], [], store.description
        stats = await store.stats(record.cause_kind) if record.cause_kind else []
        return [record], stats, store.description
    finally:
        await store.aclose()


def _load(
    settings: Settings, incident_id: str | None, limit: int
) -> tuple[list[IncidentRecord], list[ActionStats], str]:
    if settings.redis.url is not None:
        try:
            return asyncio.run(_from_memory(settings, incident_id, limit))
        except MemoryStoreError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    source = (
        f"transcripts in {settings.data_dir / 'incidents'} (no Redis configured: "
        "the in-process memory does not outlive a run)"
    )
    records = _from_transcripts(settings)
    if incident_id is not None:
        records = [r for r in records if r.incident_id == incident_id]
    return records[:limit], [], source


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


@incidents_app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest first, at most.")] = 20,
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """List remembered incidents, newest first."""
    settings = _settings(data_dir)
    records, _, source = _load(settings, None, limit)
    if as_json:
        payload = {"source": source, "incidents": [r.model_dump(mode="json") for r in records]}
        typer.echo(json.dumps(payload, indent=2))
        return
    # Wide enough for ids and targets when the output is a file or a pipe, not a terminal.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    console.print(f"from {source}", markup=False)
    if not records:
        console.print("no incidents remembered yet")
        return
    table = Table("closed", "incident", "cause", "root cause", "actions", "outcome", "recovered in")
    for r in records:
        table.add_row(
            _ts(r.closed_at),
            r.incident_id,
            r.cause_kind or "-",
            str(r.root_cause) if r.root_cause else "-",
            ", ".join(f"{a.action} ({a.status})" for a in r.actions) or "-",
            r.outcome or "-",
            _ago(r.time_to_recover_s),
        )
    console.print(table)


@incidents_app.command("show")
def show_cmd(
    incident_id: Annotated[str, typer.Argument(help="The incident's id.")],
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """Show one remembered incident: fingerprint, cause, actions, outcome, what was learned."""
    _check_id(incident_id)
    settings = _settings(data_dir)
    records, stats, source = _load(settings, incident_id, 1)
    if not records:
        typer.echo(f"error: no incident {incident_id!r} in {source}", err=True)
        raise typer.Exit(1)
    r = records[0]
    if as_json:
        payload = {
            "source": source,
            "incident": r.model_dump(mode="json"),
            "stats": [s.model_dump(mode="json") for s in stats],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    out = typer.echo
    out(f"{r.incident_id}: {r.title}")
    out(f"from {source}")
    out(
        f"opened {_ts(r.opened_at)}, closed {_ts(r.closed_at)}, outcome {r.outcome or '-'}, "
        f"recovered in {_ago(r.time_to_recover_s)}"
    )
    if r.root_cause:
        category = f" ({r.category.system_level} / {r.category.fault_type})" if r.category else ""
        out(f"root cause: {r.cause_kind} in {r.root_cause}{category}")
    for a in r.actions:
        verdict = "recovered" if a.recovered else "did not recover" if a.verified else "unverified"
        took = f" in {_ago(a.time_to_recover_s)}" if a.time_to_recover_s is not None else ""
        out(f"  {a.action} {a.target} {json.dumps(a.params)}: {a.status}, {verdict}{took}")
    out("fingerprint: " + ", ".join(r.fingerprint))
    for s in stats:
        out(
            f"learned: for {s.cause_kind}, {s.action} worked {s.successes} of "
            f"{s.successes + s.failures} times"
        )
    out(f"transcript: {r.transcript_path}")
    out(f"post-mortem: kubemedic postmortem {r.incident_id} --format md|json|html")


def postmortem_cmd(
    incident: Annotated[
        str,
        typer.Argument(help="The incident's id, or the path of a transcript.json."),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, json or html.")] = "md",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write here instead of standard output."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Write an incident's post-mortem, built from its transcript alone."""
    if fmt not in SUFFIX:
        raise typer.BadParameter(f"--format {fmt!r}: choose md, json or html")
    chosen: Format = "md" if fmt == "md" else "json" if fmt == "json" else "html"
    as_path = Path(incident)
    if incident.endswith(".json") or as_path.is_dir():
        path = as_path
    else:
        path = _settings(data_dir).incident_dir(_check_id(incident)) / "transcript.json"
    try:
        text = render(build_postmortem(load_report(path)), chosen)
    except PostmortemError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: cannot write {out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {out}", err=True)
