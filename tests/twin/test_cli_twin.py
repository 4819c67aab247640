"""`kubemedic twin scenarios`, `validate` (CliRunner) and `serve` (a real subprocess)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interfaces.cli import app
from twin.scenario import builtin_dir, builtin_names

runner = CliRunner()


def test_scenarios_lists_every_builtin_with_its_fault_types() -> None:
    result = runner.invoke(app, ["twin", "scenarios"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in builtin_names():
        assert name in result.output
    assert "cart-redis-down" in result.output
    assert "secret-rotated" in result.output
    assert "nothing" in result.output


def test_validate_a_valid_file_exits_zero() -> None:
    path = builtin_dir() / "cart-redis-down.yaml"
    result = runner.invoke(app, ["twin", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid scenario 'cart-redis-down' (scale; expect recover)" in result.output


def test_validate_prints_every_error_with_its_path_and_exits_one(tmp_path: Path) -> None:
    text = (builtin_dir() / "cart-redis-down.yaml").read_text()
    text = text.replace("params: {replicas: 0}", "params: {replicas: -2}")
    text = text.replace("service: frontend, value: 0.05", "service: frontnd, value: 0.05")
    text = text.replace("horizon: 30m", "horizon: 30m\n  surprise: true")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = runner.invoke(app, ["twin", "validate", str(bad)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(
        "spec.faults[0].params.replicas: Input should be greater than or equal to 0" in line
        for line in lines
    )
    assert any("spec.surprise: Extra inputs are not permitted" in line for line in lines)
    assert f"{bad}: 2 errors" in lines
    # Every error line says where it is: file and line.
    assert all(line.startswith(f"{bad}:") for line in lines)


def test_validate_a_yaml_syntax_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("apiVersion: kubemedic.dev/v1\nkind: [Scenario\n")
    result = runner.invoke(app, ["twin", "validate", str(bad)])
    assert result.exit_code == 1
    assert "YAML syntax error: line 3, column 1" in result.output


@pytest.mark.kubectl
def test_serve_runs_until_terminated_and_kubectl_sees_the_shop(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "interfaces.cli",
            "twin",
            "serve",
            "--speed",
            "20",
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("export KUBECONFIG="):
                break
        assert f"export KUBECONFIG={kubeconfig}" in lines, lines
        assert any(line.startswith("API server: http://127.0.0.1:") for line in lines)
        assert f"kubeconfig: {kubeconfig}" in lines
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        out = subprocess.run(
            [shutil.which("kubectl") or "/usr/bin/kubectl", "get", "pods", "-A"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert out.splitlines()[0].split() == [
            "NAMESPACE",
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
        ]
        shop = [row for row in out.splitlines() if row.startswith("shop ")]
        assert len(shop) >= 11
        assert any("frontend-" in row and "Running" in row for row in shop)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rest, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "twin stopped" in rest


def test_serve_with_an_invalid_scenario_exits_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: kubemedic.dev/v1\nkind: Scenario\nmetadata: {name: Bad}\n")
    result = runner.invoke(app, ["twin", "serve", "--scenario", str(bad)])
    assert result.exit_code == 1
    assert "metadata.name: String should match pattern" in result.output
