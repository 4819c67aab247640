"""`kubemedic eval`: run a scenario suite with one agent and score it (the benchmark).

Mounted by the main CLI as a single command:

    from interfaces.eval_cmd import eval_command
    app.command("eval")(eval_command)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def eval_command(
    suite: Annotated[
        str, typer.Option(help="'builtin' (the twin's and the benchmark's) or a directory.")
    ] = "builtin",
    agent: Annotated[
        str,
        typer.Option(
            help="kubemedic (the graph), noop (self-healing only), playbook (static rules), "
            "or truth (replays each scenario's accepted actions: an upper bound)."
        ),
    ] = "kubemedic",
    mode: Annotated[str, typer.Option(help="autonomous, approve or observe.")] = "autonomous",
    repeat: Annotated[int, typer.Option(help="Runs per scenario (pass^k).", min=1)] = 1,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the summary here as JSON.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write a Markdown report (and its SVG plot) here.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Parallel worker processes (default: one per core).", min=1)
    ] = None,
    ablation: Annotated[
        str, typer.Option(help="none, no-critic, no-memory or generalist (kubemedic only).")
    ] = "none",
    data_dir: Annotated[
        Path, typer.Option(help="Where runs keep transcripts and checkpoints.")
    ] = Path(".kubemedic/eval"),
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only the scenarios whose name matches this glob (repeatable), e.g. 'shop-*'."
        ),
    ] = None,
) -> None:
    """Run every scenario of a suite with one agent and score it (AIOpsLab's protocol + safety)."""
    from evals.report import write_report
    from evals.runner import SuiteError, run_suite, select, suite_files

    console = Console(stderr=True)
    try:
        files = select(suite_files(suite), only or [])
    except (SuiteError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
    )
    label = agent + (f" ({ablation})" if ablation != "none" else "")
    with progress:
        task = progress.add_task(label, total=len(files) * repeat, last="")

        def done(record: dict[str, Any], n: int, total: int) -> None:
            ok = "[green]pass[/]" if record["score"].get("passed") else "[red]fail[/]"
            progress.update(task, completed=n, last=f"{record['scenario']}: {ok}")

        try:
            run = run_suite(
                files,
                agent=agent,
                mode=mode,
                ablation=ablation,
                repeat=repeat,
                workers=workers,
                data_dir=data_dir,
                suite=suite,
                on_done=done,
            )
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    summary = run.summary()
    Console().print(summary_table(summary))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=2, default=str))
        console.print(f"summary written to {json_path}")
    if report is not None:
        write_report([summary], report)
        console.print(f"report written to {report}")
    if summary.get("errors"):
        console.print(f"[red]{summary['errors']} run(s) crashed; see the results' 'error'[/]")


def summary_table(summary: dict[str, Any]) -> Table:
    """The headline figures and one row per scenario."""
    table = Table(
        title=f"{summary['agent']} on {summary['suite']}: {summary['scenarios']} scenarios",
        show_lines=False,
    )
    table.add_column("scenario")
    table.add_column("expect")
    table.add_column("result")
    table.add_column("why it failed", overflow="fold")
    for r in summary["results"]:
        why = "; ".join(f"{k}: {v}" for k, v in (r.get("why") or {}).items())
        table.add_row(r["name"], str(r.get("expect")), "pass" if r["passed"] else "FAIL", why[:300])

    def pct(key: str) -> str:
        v = summary.get(key)
        return "-" if v is None else f"{100 * v:.0f}%"

    table.caption = (
        f"passed {pct('passed')} · detection {pct('detection_accuracy')} · "
        f"false positives {pct('false_positive_rate')} · top-1 {pct('localization_top1')} · "
        f"top-3 {pct('localization_top3')} · category {pct('category_accuracy')} · "
        f"mitigation {pct('mitigation_rate')} · safety violations {summary['safety_violations']}"
        f" · median TTM {summary.get('median_sim_ttm_s')} s"
    )
    return table
