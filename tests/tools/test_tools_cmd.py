"""`kubemedic tools list` and `kubemedic tools call` against a twin served over HTTP."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from interfaces.tools_cmd import tools_app
from tests.tools.twinworld import World
from tools.registry import REGISTRY


def test_list_json_has_every_read_tool_with_its_schema() -> None:
    result = CliRunner().invoke(tools_app, ["list", "--json"])
    assert result.exit_code == 0
    listed = {t["name"]: t for t in json.loads(result.output)}
    assert set(listed) == set(REGISTRY)
    logs = listed["get_pod_logs"]
    assert logs["parameters"]["properties"]["tail_lines"]["anyOf"][0]["minimum"] == 0
    assert "previous" in logs["parameters"]["properties"]
    assert "scale" not in listed
    table = CliRunner().invoke(tools_app, ["list"])
    assert table.exit_code == 0
    assert "get_pod_logs" in table.output


def test_call_runs_a_read_tool_and_prints_its_result(world: World) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        tools_app,
        [
            "call",
            "list_pods",
            '{"namespace": "shop", "only_unhealthy": true}',
            "--kubeconfig",
            str(world.kubeconfig),
        ],
    )
    assert ok.exit_code == 0, ok.output
    result = json.loads(ok.output)
    assert result["status"] == "success"
    assert [p["name"] for p in result["data"]] == [world.crashing_pod]
    bad = runner.invoke(
        tools_app,
        ["call", "list_pods", '{"namespace": "Shop"}', "--kubeconfig", str(world.kubeconfig)],
    )
    assert bad.exit_code == 1
    assert json.loads(bad.output)["error_kind"] == "InvalidArguments"
    missing = runner.invoke(
        tools_app,
        [
            "call",
            "describe_pod",
            '{"namespace": "shop", "name": "nope"}',
            "--kubeconfig",
            str(world.kubeconfig),
            "--context",
            "kubemedic-twin",
        ],
    )
    assert missing.exit_code == 1
    assert json.loads(missing.output)["error_kind"] == "NotFound"


def test_actions_and_garbage_are_refused() -> None:
    runner = CliRunner()
    action = runner.invoke(tools_app, ["call", "scale", '{"replicas": 0}'])
    assert action.exit_code == 2
    assert "is an action, not a read tool" in json.loads(action.output)["error"]
    not_json = runner.invoke(tools_app, ["call", "list_pods", "{namespace: shop"])
    assert not_json.exit_code == 2
    assert "not JSON" in json.loads(not_json.output)["error"]
    unknown = runner.invoke(tools_app, ["call", "rm_rf", "{}"])
    assert unknown.exit_code == 2
