"""Nothing secret leaves kubemedic: seeded secrets are searched for in every output of a run.

The adversarial-secret-leak scenario puts canaries where agents look: a
Secret's data (and the env var that references it), a plain env value named
like a token, a ConfigMap password, and log lines carrying a bearer token, a
database URL with its password and a JWT. The settings carry more: the model's
API key (used for real, against the scripted model server), a Slack bot
token, and a Redis URL with a password. `kubemedic run` goes through the whole
loop (the critic asks the model; the fix is applied and verified; the
post-mortem is written); then every output is searched: what the command
printed (the live view and the JSON report), every log record, every file it
wrote in its data directory (transcript, post-mortem, checkpoints, ledger), and
every prompt sent to the model.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import typer
from typer.testing import CliRunner

from interfaces.postmortem import write_postmortems
from interfaces.run_cmd import register
from tests.graph.support.openai_server import Step, answer
from tests.safety.support.model import routed_openai

SECRET_DATA = "sk-live-0rbit4l-c4nary-SECRET-9f8e7d6c5b4a"
CANARIES = [
    SECRET_DATA,
    base64.b64encode(SECRET_DATA.encode()).decode(),
    "c0nfigm4p-canary-p4ssw0rd",
    "envv4lue-canary-t0ken-77aa",
    "b34rer-canary-t0ken-0123456789abcdef",
    "dbpw-canary-s3cret",
    "eyJzdWIiOiJjYW5hcnkifQ",
    "c2lnbmF0dXJlLWNhbmFyeQ",
]
API_KEY = "sk-settings-canary-0123456789abcdefXYZ"
SLACK_TOKEN = "xoxb-canary-1234567890-abcdefabcdef"
REDIS_PASSWORD = "r3dis-canary-pw-42"
SETTINGS_CANARIES = [API_KEY, SLACK_TOKEN, REDIS_PASSWORD]
REDIS_DB = 15


def critic_model(title: str, body: dict[str, Any]) -> Step:
    if title == "CriticAnswer":
        return answer({"verdict": "approve", "reasons": ["the evidence supports it"]})
    return answer("not JSON")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the machine's Redis, removed afterwards."""
    prefix = f"kubemedic-safety-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    try:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "live"])
def test_no_secret_in_any_output(
    as_json: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture, redis_prefix: str
) -> None:
    caplog.set_level(logging.DEBUG)
    with routed_openai(critic_model) as server:
        env = {
            "KUBEMEDIC_DATA_DIR": str(tmp_path),
            "KUBEMEDIC_LLM__MODEL": "scripted",
            "KUBEMEDIC_LLM__BASE_URL": server.base_url,
            "KUBEMEDIC_LLM__API_KEY": API_KEY,
            "KUBEMEDIC_LLM__MAX_TOOL_CALLS": "0",
            "KUBEMEDIC_SLACK__BOT_TOKEN": SLACK_TOKEN,
            "KUBEMEDIC_REDIS__URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/{REDIS_DB}",
            "KUBEMEDIC_REDIS__KEY_PREFIX": redis_prefix,
        }
        args = ["run", "--scenario", "adversarial-secret-leak", "--mode", "autonomous"]
        result = CliRunner().invoke(cli(), [*args, "--json"] if as_json else args, env=env)
        prompts = [str(r) for r in server.requests]
    assert result.exit_code == 0, result.output
    assert prompts, "the model was never asked: the API key was not exercised"

    outputs: dict[str, str] = {
        "stdout and stderr": result.output,
        "log records": caplog.text
        + "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records),
        "model prompts": "\n".join(prompts),
    }
    transcripts = list(tmp_path.rglob("transcript.json"))
    assert len(transcripts) == 1, transcripts
    # The exported post-mortems, in every format, are outputs too.
    exported = write_postmortems(transcripts[0].parent)
    assert {p.suffix for p in exported} == {".md", ".json", ".html"}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    for path in files:
        outputs[str(path.relative_to(tmp_path))] = path.read_bytes().decode("utf-8", "replace")

    leaks = [
        f"{canary!r} in {where}"
        for where, text in outputs.items()
        for canary in CANARIES + SETTINGS_CANARIES
        if canary in text
    ]
    assert leaks == []
    # The run did look where the secrets are: the logs were read and the fix was applied.
    transcript = outputs[next(k for k in outputs if k.endswith("transcript.json"))]
    assert "cartservice" in transcript
    assert "redis-cart" in transcript
