"""`kubemedic twin ...`: serve the simulated cluster, list and validate scenarios."""

from __future__ import annotations

import typer

twin_app = typer.Typer(help="The twin: a simulated cluster served over the Kubernetes API.")


@twin_app.callback()
def _twin() -> None:
    """The twin: a simulated cluster served over the Kubernetes API."""
