"""`kubemedic run`, `kubemedic investigate` and `kubemedic demo`: the incident loop from a terminal.

- `run --scenario NAME|FILE`: a twin with the scenario, the graph on its alert,
  the result (with `--json`, one object: root causes, actions, recovery, score).
- `investigate "QUESTION"`: a chat-style investigation of any cluster,
  read-only unless a mode says otherwise; `--thread` continues a conversation.
- `demo`: a built-in incident on the twin, the whole loop shown live.

Mount on the root app with `register(app)` (commands `run`, `investigate`, `demo`).
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from agents.transcript import clip
from interfaces.checkpoints import describe as describe_checkpoints
from interfaces.runner import (
    Approver,
    GraphRun,
    approve_all,
    close_toolbox,
    cluster_toolbox,
    interactive,
    investigate,
    reject_all,
    run_scenario,
    terminal_approver,
)
from policies.limits import PolicyFileError, load_limits
from settings import Settings, load_settings
from state import IncidentState, Mode
from twin.scenario import ScenarioInvalid

DEMO_SCENARIO = "cart-redis-down"
#: Longest line of a node's findings shown live (the transcript keeps them whole).
SHOWN_CHARS = 200


class ModeChoice(StrEnum):
    observe = "observe"
    approve = "approve"
    autonomous = "autonomous"


def register(app: typer.Typer) -> None:
    """Add `run`, `investigate` and `demo` to the root app."""
    app.command("run")(run_command)
    app.command("investigate")(investigate_command)
    app.command("demo")(demo_command)


def _settings() -> Settings:
    """Settings and the policy file, both checked before anything starts."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        load_limits(settings.policy.file)
    except PolicyFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    return settings


def _approver(mode: Mode, approve: bool, console: Console) -> Approver:
    if approve:
        return approve_all(by="cli", via="terminal")
    if mode != "observe" and interactive():
        return terminal_approver(
            lambda question: typer.confirm(question, default=False),
            lambda text: console.print(escape(text)),
        )
    return reject_all("no person at a terminal to approve (use --approve-all)")


def run_command(
    scenario: Annotated[
        str, typer.Option("--scenario", help="A built-in scenario name or a scenario file.")
    ],
    mode: Annotated[
        ModeChoice, typer.Option(help="observe: never write; approve: a person approves writes.")
    ] = ModeChoice.autonomous,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with the result.")
    ] = False,
    approve: Annotated[
        bool,
        typer.Option("--approve-all", help="Approve every request (non-interactive runs)."),
    ] = False,
) -> None:
    """Run a scenario on the twin: its alert, the incident loop, the score."""
    settings = _settings()
    console = Console(stderr=as_json)
    printer = None if as_json else LivePrinter(console, compact=True)
    if printer is not None:
        printer.intro(settings, scenario, mode.value)
    try:
        result = asyncio.run(
            run_scenario(
                scenario,
                mode=mode.value,
                settings=settings,
                approver=_approver(mode.value, approve, console),
                progress=printer.progress if printer else None,
                on_event=printer.event if printer else None,
            )
        )
    except ScenarioInvalid as exc:
        for err in exc.errors:
            typer.echo(f"{exc.source}: {err}", err=True)
        raise typer.Exit(1) from None
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result.report, default=str))
        return
    print_report(console, result.report)


def investigate_command(
    question: Annotated[str, typer.Argument(help="What to look into, in your own words.")],
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Path of the kubeconfig to use.")
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="The kubeconfig context (cluster) to use.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Look in this namespace.")
    ] = None,
    mode: Annotated[
        ModeChoice, typer.Option(help="observe (the default) never writes.")
    ] = ModeChoice.observe,
    thread: Annotated[
        str | None, typer.Option("--thread", help="Continue this conversation (its id).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Investigate a cluster and answer; follow-up questions with --thread continue it."""
    settings = _settings()
    console = Console(stderr=as_json)
    printer = None if as_json else LivePrinter(console, compact=True)
    box = cluster_toolbox(settings, kubeconfig, context)
    if box.cluster is None:
        console.print(f"[red]no cluster: {escape(box.cluster_problem or 'unknown')}[/]")
        raise typer.Exit(2)
    try:
        run = asyncio.run(
            investigate(
                question,
                settings=settings,
                box=box,
                namespace=namespace,
                mode=mode.value,
                thread=thread,
                approver=_approver(mode.value, False, console),
                progress=printer.progress if printer else None,
                on_event=printer.event if printer else None,
            )
        )
    finally:
        close_toolbox(box)
    if as_json:
        typer.echo(json.dumps(answer_json(run), default=str))
        return
    print_answer(console, run)


def demo_command(
    scenario: Annotated[
        str, typer.Option("--scenario", help="The built-in incident to show.")
    ] = DEMO_SCENARIO,
    mode: Annotated[ModeChoice, typer.Option(help="How much kubemedic may do alone.")] = (
        ModeChoice.autonomous
    ),
) -> None:
    """A built-in incident on the twin, the whole loop shown live, then a short report."""
    settings = _settings()
    console = Console()
    printer = LivePrinter(console, compact=False)
    printer.intro(settings, scenario, mode.value)
    with console.status("starting the twin…") as status:
        printer.status = status
        result = asyncio.run(
            run_scenario(
                scenario,
                mode=mode.value,
                settings=settings,
                approver=_approver(mode.value, False, console),
                progress=printer.progress,
                on_event=printer.event,
                on_twin=lambda twin: status.update(
                    f"twin up at {twin.url}: waiting for the scenario's alert…"
                ),
            )
        )
    print_report(console, result.report)


# -- output ------------------------------------------------------------------------------


class LivePrinter:
    """Shows each node as it runs and what it found (rich)."""

    def __init__(self, console: Console, *, compact: bool) -> None:
        self.console = console
        self.compact = compact
        self.status: Any = None

    def intro(self, settings: Settings, scenario: str, mode: str) -> None:
        memory = (
            "Redis (settings.redis.url)"
            if settings.redis.url is not None
            else "in-process (not persisted, not shared between replicas): no Redis configured"
        )
        model = (
            f"{settings.llm.model} at {settings.llm.base_url or 'OpenAI'}"
            if settings.llm.enabled
            else "none: deterministic mode"
        )
        self.console.print(
            Panel.fit(
                f"scenario [bold]{escape(scenario)}[/], mode [bold]{mode}[/]\n"
                f"memory: {memory}\nmodel: {escape(model)}\n"
                f"checkpoints: {escape(describe_checkpoints(settings))}",
                title="kubemedic",
            )
        )

    def progress(self, node: str, message: str) -> None:
        if not self.compact:
            self.console.print(f"    [dim]{escape(node)}: {escape(printable(message))}[/]")

    def event(self, mode: str, chunk: Any) -> None:
        if mode == "tasks" and isinstance(chunk, dict) and "input" in chunk:
            name = str(chunk.get("name"))
            self.console.print(f"[bold cyan]▶ {escape(name)}[/]")
            if self.status is not None:
                self.status.update(f"running {name}…")
            return
        if mode != "updates" or not isinstance(chunk, dict):
            return
        for node, update in chunk.items():
            if node == "__interrupt__":
                self.console.print("[yellow]⏸  waiting for a person to approve[/]")
                continue
            lines = describe_update(node, update or {}, limit=3 if self.compact else 6)
            if lines:
                self.console.print(f"[green]✔ {escape(node)}[/]")
            for line in lines:
                self.console.print(f"    {escape(printable(clip(line, SHOWN_CHARS)))}")


def printable(text: str) -> str:
    """Text from the cluster (log lines, events) without control characters: no terminal
    escape sequence in a log line reaches the operator's terminal."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def describe_update(node: str, update: dict[str, Any], *, limit: int = 6) -> list[str]:
    """What a node's update says, in a few lines."""
    lines: list[str] = []
    incident = update.get("incident")
    if incident is not None:
        lines.append(f"incident {incident.id}: {incident.title}")
    recall = update.get("recall")
    if recall is not None:
        lines.append(f"memory ({recall.store}): {len(recall.similar)} similar past incident(s)")
    evidence = update.get("evidence") or []
    for e in sorted(evidence, key=lambda e: -e.severity)[:limit]:
        lines.append(f"evidence {e.id} [{e.signal}] {e.summary}")
    if len(evidence) > limit:
        lines.append(f"… and {len(evidence) - limit} more evidence items")
    plan = update.get("plan")
    if plan is not None:
        for h in sorted(plan.hypotheses, key=lambda h: -h.confidence)[:limit]:
            lines.append(f"hypothesis {h.confidence:.2f} {h.root_cause} ({h.cause_kind})")
        for a in plan.actions:
            lines.append(f"proposed: {a.action} {a.target}")
        if not plan.actions:
            lines.append("proposed: no action")
    verdict = update.get("verdict")
    if verdict is not None:
        lines.append(f"verdict: {verdict.verdict} ({'; '.join(verdict.reasons[:2])})")
    for d in update.get("decisions") or []:
        lines.append(f"gate: {d.decision} {d.action} {d.target} ({'; '.join(d.reasons[:2])})")
    for a in update.get("approvals") or []:
        lines.append(f"{a.decision} by {a.by} via {a.via}")
    for e in update.get("executed") or []:
        change = f" {e.before} -> {e.after}" if e.before or e.after else ""
        lines.append(f"{e.status}: {e.action.action} {e.action.target}{change}")
    for v in update.get("verifications") or []:
        lines.append(f"verification: {v.status} ({'; '.join(v.checks[:3])})")
    if update.get("outcome"):
        lines.append(f"outcome: {update['outcome']}")
    return lines


def print_report(console: Console, report: dict[str, Any]) -> None:
    """The end-of-run summary of `kubemedic run` / `demo`."""
    table = Table(
        title=f"kubemedic: {report['scenario']} ({report['mode']} mode)", show_header=False
    )
    table.add_column("")
    table.add_column("")
    causes = report.get("root_causes") or []
    top = causes[0] if causes else None
    table.add_row("incident", report["incident_id"])
    table.add_row("detected", "yes" if report["detected"] else "no")
    table.add_row(
        "root cause",
        f"{top['kind']}/{top['namespace']}/{top['name']} ({top['confidence']:.2f})"
        if top
        else "none",
    )
    if report.get("category"):
        cat = report["category"]
        table.add_row("category", f"{cat['system_level']} / {cat['fault_type']}")
    for a in report.get("actions") or []:
        t = a["target"]
        table.add_row(
            "action", f"{a['action']} {t['kind']}/{t['namespace']}/{t['name']}: {a['status']}"
        )
    table.add_row("outcome", str(report.get("outcome")))
    table.add_row("recovered (oracle)", "yes" if report["recovered"] else "no")
    sim = report["sim_seconds"]
    table.add_row(
        "simulated seconds",
        f"detect {sim['detect']}, localize {sim['localize']}, mitigate {sim['mitigate']}",
    )
    table.add_row("wall seconds", f"{report['wall_seconds']:.2f}")
    table.add_row("tokens", f"{report['tokens']['input']} in, {report['tokens']['output']} out")
    score = report["score"]
    table.add_row("score", "passed" if score.get("passed") else f"failed: {score.get('why')}")
    table.add_row("transcript", str(report.get("transcript_path")))
    console.print(table)


def answer_json(run: GraphRun) -> dict[str, Any]:
    s = run.state
    return {
        "thread": s.incident.id if s.incident else s.input.incident_id,
        "outcome": s.outcome,
        "hypotheses": [h.model_dump(mode="json") for h in (s.plan.hypotheses if s.plan else [])],
        "actions": [a.model_dump(mode="json") for a in (s.plan.actions if s.plan else [])],
        "decisions": [d.model_dump(mode="json") for d in s.decisions],
        "evidence": [e.model_dump(mode="json") for e in s.evidence],
        "pending_approval": run.pending,
    }


def print_answer(console: Console, run: GraphRun) -> None:
    """An investigation's answer: what is wrong, why, and what kubemedic recommends."""
    s: IncidentState = run.state
    thread = s.incident.id if s.incident else s.input.incident_id
    hypotheses = sorted(s.plan.hypotheses, key=lambda h: -h.confidence) if s.plan else []
    if not hypotheses:
        console.print("Nothing looks wrong: no hypothesis stands on the evidence.")
    for h in hypotheses[:3]:
        console.print(
            f"[bold]{h.confidence:.0%}[/] {escape(str(h.root_cause))} "
            f"({escape(h.cause_kind)}): {escape(printable(h.statement))}"
        )
        by_id = {e.id: e for e in s.evidence}
        for eid in h.evidence_ids[:4]:
            if eid in by_id:
                console.print(f"    [dim]{eid}: {escape(printable(by_id[eid].summary))}[/]")
    decisions = {d.action_index: d for d in s.decisions}
    for i, a in enumerate(s.plan.actions if s.plan else []):
        d = decisions.get(i)
        console.print(
            f"recommended: {a.action} {escape(str(a.target))}"
            + (f" [dim](gate: {d.decision})[/]" if d else "")
        )
    for e in s.executed:
        console.print(f"done: {e.status} {e.action.action} {escape(str(e.action.target))}")
    console.print(f"[dim]thread {thread}: ask a follow-up with --thread {thread}[/]")
