"""`kubemedic twin ...`: serve the simulated cluster, list and validate scenarios."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

#: How far before the wall clock served time starts (before the warm-up).
SERVE_CLOCK_LEAD = timedelta(minutes=2)

twin_app = typer.Typer(help="The twin: a simulated cluster served over the Kubernetes API.")


@twin_app.callback()
def _twin() -> None:
    """The twin: a simulated cluster served over the Kubernetes API."""


@twin_app.command()
def serve(
    scenario: Annotated[
        str | None,
        typer.Option(help="A built-in scenario name or a scenario file (default: healthy shop)."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 0,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall second.", min=0.001)
    ] = 1.0,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="Where to write the kubeconfig (default: a temp file).")
    ] = None,
) -> None:
    """Serve a scenario's cluster until Ctrl-C."""
    from twin.harness import Twin
    from twin.scenario import ScenarioInvalid, default_scenario

    source = scenario if scenario is not None else default_scenario("shop")
    # Served time starts a little before the wall clock (the warm-up runs first), so the
    # ages kubectl computes on its side (describe, events) read as on a live cluster. At
    # speeds above 1x simulated time overtakes the wall clock after a while.
    clock_start = datetime.now(UTC) - SERVE_CLOCK_LEAD
    try:
        twin = Twin.start(
            source, port=port, speed=speed, kubeconfig=kubeconfig, clock_start=clock_start
        )
    except ScenarioInvalid as exc:
        for err in exc.errors:
            typer.echo(_format_error(str(exc.source), err), err=True)
        raise typer.Exit(1) from None
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        typer.echo(f"twin: scenario {twin.scenario.name} at {speed:g}x")
        typer.echo(f"API server: {twin.url}")
        typer.echo(f"kubeconfig: {twin.kubeconfig_path}")
        typer.echo(f"export KUBECONFIG={twin.kubeconfig_path}")
        typer.echo("Ctrl-C stops it.")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        twin.stop()
        typer.echo("twin stopped")


@twin_app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    from twin.scenario import list_builtin

    table = Table(title="Built-in scenarios")
    # Names are what people type next: never cut them; the description wraps instead.
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("fault types", no_wrap=True)
    table.add_column("expect", no_wrap=True)
    table.add_column("description")
    for s in list_builtin():
        table.add_row(s.name, ", ".join(s.fault_types) or "-", s.expect, s.description)
    Console().print(table)


@twin_app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="The scenario file to check.")],
) -> None:
    """Check a scenario file; print every error with its path (exit 1 if any)."""
    from twin.scenario import load_scenario, validate_file

    errors = validate_file(file)
    if errors:
        for err in errors:
            typer.echo(_format_error(str(file), err))
        typer.echo(f"{file}: {len(errors)} error{'s' if len(errors) != 1 else ''}")
        raise typer.Exit(1)
    sc = load_scenario(file)
    faults = ", ".join(sc.fault_types()) or "no fault"
    typer.echo(f"{file}: valid scenario {sc.name!r} ({faults}; expect {sc.truth.expect})")


def _format_error(source: str, err: object) -> str:
    line = getattr(err, "line", None)
    where = f"{source}:{line}" if line else source
    return f"{where}: {err}"
