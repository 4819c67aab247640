"""The `kubemedic` command: one entry point for every way people use kubemedic."""

from __future__ import annotations

import typer

from interfaces import run_cmd, serve_cmd
from interfaces.audit_cmd import audit
from interfaces.eval_cmd import eval_command
from interfaces.incidents_cmd import incidents_app, postmortem_cmd
from interfaces.slack_cmd import slack_command
from interfaces.tools_cmd import tools_app
from interfaces.twin_cmd import twin_app

app = typer.Typer(
    name="kubemedic",
    help="An autonomous incident responder for Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
)
run_cmd.register(app)
serve_cmd.register(app)
app.command("slack")(slack_command)
app.command("eval")(eval_command)
app.command("audit")(audit)
app.command("postmortem")(postmortem_cmd)
app.add_typer(incidents_app, name="incidents")
app.add_typer(twin_app, name="twin")
app.add_typer(tools_app, name="tools")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
