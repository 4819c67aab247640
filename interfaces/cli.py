"""The `kubemedic` command: one entry point for every way people use kubemedic."""

from __future__ import annotations

import typer

from interfaces.tools_cmd import tools_app
from interfaces.twin_cmd import twin_app

app = typer.Typer(
    name="kubemedic",
    help="An autonomous incident responder for Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(twin_app, name="twin")
app.add_typer(tools_app, name="tools")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
