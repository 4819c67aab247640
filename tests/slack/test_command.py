"""`kubemedic slack` as a real process: settings from the environment, HTTP on loopback.

The command runs in a subprocess against a twin (through its kubeconfig) and
the Slack stand-in; a signed mention gets an answer; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import typer
from typer.testing import CliRunner

from interfaces.slack_cmd import slack_command
from tests.slack.support.harness import CHANNEL
from tests.slack.support.signing import SIGNING_SECRET, mention, send_event
from tests.slack.support.slack_api import APP_TOKEN, BOT_TOKEN, SlackStandIn
from twin.harness import Twin

REPO = Path(__file__).resolve().parents[2]
#: Mount the command the way the root CLI does, for this test.
LAUNCH = (
    "import typer; from interfaces.slack_cmd import slack_command; "
    "app = typer.Typer(); app.command('slack')(slack_command); app.command('x')(lambda: None); "
    "app()"
)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("slack")(slack_command)
    app.command("other")(lambda: None)
    return app


def test_missing_tokens_are_named(tmp_path: Path) -> None:
    runner = CliRunner(env={"KUBEMEDIC_DATA_DIR": str(tmp_path)})
    result = runner.invoke(_app(), ["slack"])
    assert result.exit_code == 2
    assert "KUBEMEDIC_SLACK__BOT_TOKEN" in result.output
    assert "KUBEMEDIC_SLACK__SIGNING_SECRET" in result.output
    result = runner.invoke(
        _app(), ["slack", "--socket-mode"], env={"KUBEMEDIC_SLACK__BOT_TOKEN": "xoxb-1"}
    )
    assert result.exit_code == 2
    assert "KUBEMEDIC_SLACK__APP_TOKEN" in result.output
    assert "SIGNING_SECRET" not in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_command_serves_signed_events_and_stops_on_sigterm(tmp_path: Path) -> None:
    with Twin.start("cart-redis-down") as twin:
        assert twin.run_until_alert() is not None
        cause = twin.truth.root_cause[0]

        async def scenario() -> tuple[int, str]:
            async with SlackStandIn() as api:
                port = _free_port()
                env = {
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("KUBEMEDIC_", "SLACK_"))
                }
                env.update(
                    KUBEMEDIC_DATA_DIR=str(tmp_path),
                    KUBEMEDIC_SLACK__BOT_TOKEN=BOT_TOKEN,
                    KUBEMEDIC_SLACK__APP_TOKEN=APP_TOKEN,
                    KUBEMEDIC_SLACK__SIGNING_SECRET=SIGNING_SECRET,
                    KUBEMEDIC_SLACK__API_URL=api.api_url,
                )
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    LAUNCH,
                    "slack",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--kubeconfig",
                    str(twin.kubeconfig_path),
                    "--mode",
                    "observe",
                    cwd=REPO,
                    env=env,
                    stderr=subprocess.PIPE,
                )
                try:
                    url = f"http://127.0.0.1:{port}/slack/events"
                    deadline = time.monotonic() + 30
                    while True:
                        try:
                            ev = mention(CHANNEL, "1700000900.000100", "UALICE", "what is down?")
                            reply = await send_event(url, ev)
                            break
                        except OSError:
                            assert time.monotonic() < deadline, "kubemedic slack did not start"
                            await asyncio.sleep(0.2)
                    assert reply.status == 200
                    while len(api.thread(CHANNEL, "1700000900.000100")) < 2:
                        assert time.monotonic() < deadline + 60, "no answer was posted"
                        await asyncio.sleep(0.2)
                    answer = api.thread(CHANNEL, "1700000900.000100")[-1]
                    body = answer.text + json.dumps(answer.blocks)
                    assert f"{cause.kind}/{cause.namespace}/{cause.name}" in body
                finally:
                    proc.send_signal(signal.SIGTERM)
                    _, err = await asyncio.wait_for(proc.communicate(), 30)
                return int(proc.returncode or 0), err.decode()

        code, err = asyncio.run(scenario())
    assert code == 0, err
    assert "observe mode" in err
    assert BOT_TOKEN not in err
    assert SIGNING_SECRET not in err
