"""The project's foundation: the package imports and the console command answers."""

from __future__ import annotations

from typer.testing import CliRunner

from interfaces.cli import app


def test_cli_help_lists_twin() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "twin" in result.output
