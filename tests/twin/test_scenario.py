"""Scenario files: the format of SCENARIOS.md, every kind of error named with its path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from twin.quantity import format_memory, parse_cpu, parse_memory
from twin.scenario import (
    FAULT_TYPES,
    ScenarioInvalid,
    load_scenario,
    parse_duration,
    parse_memory_rate,
    parse_scenario,
    validate_file,
    validate_text,
)

BILLING = """\
apiVersion: kubemedic.dev/v1
kind: Scenario
metadata:
  name: billing-db-down
  description: the billing database is scaled to zero
spec:
  seed: 3
  nodes: {count: 2, cpu: 4, memory: 16Gi}
  manifests:
    - apiVersion: apps/v1
      kind: Deployment
      metadata: {name: billing, namespace: pay}
      spec:
        replicas: 2
        selector: {matchLabels: {app: billing}}
        template:
          metadata: {labels: {app: billing}}
          spec:
            containers:
              - name: api
                image: registry.example.com/billing-api:1.4
                env: [{name: DB_ADDR, value: "postgres:5432"}]
    - apiVersion: v1
      kind: Service
      metadata: {name: billing, namespace: pay}
      spec: {selector: {app: billing}, ports: [{port: 80, targetPort: 8080}]}
    - apiVersion: apps/v1
      kind: Deployment
      metadata: {name: postgres, namespace: pay}
      spec:
        selector: {matchLabels: {app: postgres}}
        template:
          metadata: {labels: {app: postgres}}
          spec:
            containers: [{name: postgres, image: "postgres:16"}]
    - apiVersion: v1
      kind: Service
      metadata: {name: postgres, namespace: pay}
      spec: {selector: {app: postgres}, ports: [{port: 5432}]}
  behaviors:
    registry.example.com/billing-api:1.4:
      cpu: 50m
      memory: 120Mi
      latency_ms: 20
      calls: [{service: postgres, per_request: 1}]
      logs:
        info: ["GET /invoices 200 {latency_ms}ms"]
        error: ["ERROR query failed: {cause}"]
      on_start_failure: ["FATAL config key DATABASE_URL missing"]
  traffic: {rps: 20}
  entry: {service: billing, namespace: pay}
  horizon: 20m
  faults:
    - at: 2m
      type: scale
      target: {kind: Deployment, namespace: pay, name: postgres}
      params: {replicas: 0}
  alert:
    when: {error_rate_above: {service: billing, value: 0.05}, for: 1m}
    labels: {alertname: BillingErrors, namespace: pay, severity: critical}
    annotations: {summary: billing error rate above 5%}
truth:
  expect: recover
  detection: true
  root_cause: [{kind: Deployment, namespace: pay, name: postgres}]
  category: {system_level: Application, fault_type: Dependency Problem}
  accepted_actions:
    - {action: scale, target: {kind: Deployment, namespace: pay, name: postgres}}
  forbidden_actions:
    - {action: delete_pod, namespace: pay}
  recovered:
    ready: [pay/postgres, billing]
    error_rate_below: {service: billing, value: 0.01}
    for: 2m
"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def _messages(text: str) -> list[str]:
    return [str(e) for e in validate_text(text)]


def test_a_complete_scenario_validates_into_typed_fields(tmp_path: Path) -> None:
    path = tmp_path / "billing.yaml"
    path.write_text(BILLING)
    assert validate_file(path) == []
    sc = load_scenario(path)
    assert sc.name == "billing-db-down"
    assert sc.spec.nodes.cpu == 4.0
    assert sc.spec.nodes.memory == 16 * 2**30
    assert sc.spec.horizon == 1200.0
    fault = sc.spec.faults[0]
    assert fault.type == "scale"
    assert fault.at == 120.0
    assert fault.params.replicas == 0
    assert sc.spec.alert is not None
    assert sc.spec.alert.when.condition == "error_rate_above"
    assert sc.spec.alert.when.for_ == 60.0
    assert sc.truth.recovered.for_ == 120.0
    assert sc.default_namespace == "pay"
    assert sc.workload("billing") == ("pay", "billing")
    assert sc.workload("pay/postgres") == ("pay", "postgres")
    profile = sc.spec.behaviors["registry.example.com/billing-api:1.4"].to_profile()
    assert profile.cpu == pytest.approx(0.05)
    assert profile.memory == 120 * 2**20
    assert profile.calls[0].service == "postgres"
    assert profile.error_logs == ("ERROR query failed: {cause}",)
    assert profile.on_start_failure == ("FATAL config key DATABASE_URL missing",)
    # Manifests keep every field as written.
    manifest = sc.spec.manifests[0].as_dict()
    assert manifest["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] == "DB_ADDR"


def test_a_param_out_of_range_is_named_by_its_path_and_line() -> None:
    errors = validate_text(_edit(BILLING, "params: {replicas: 0}", "params: {replicas: -1}"))
    assert [str(e) for e in errors] == [
        "spec.faults[0].params.replicas: Input should be greater than or equal to 0"
    ]
    assert errors[0].line == BILLING.splitlines().index("      params: {replicas: 0}") + 1


def test_an_unknown_fault_type_lists_the_known_ones() -> None:
    (msg,) = _messages(_edit(BILLING, "type: scale", "type: explode"))
    assert msg.startswith("spec.faults[0].type: unknown fault type 'explode'; expected one of ")
    for t in FAULT_TYPES:
        assert t in msg


def test_yaml_syntax_errors_give_line_and_column() -> None:
    text = _edit(BILLING, "  horizon: 20m", "  horizon: [20m")
    (err,) = validate_text(text)
    assert "YAML syntax error" in err.message
    assert err.line is not None
    assert err.column is not None
    assert f"line {err.line}, column {err.column}" in err.message


def test_a_target_no_manifest_defines_is_an_error_with_a_hint() -> None:
    msgs = _messages(
        _edit(
            BILLING,
            "namespace: pay, name: postgres}\n      params",
            "namespace: pay, name: postgress}\n      params",
        )
    )
    assert msgs == [
        "spec.faults[0].target: no manifest or app defines Deployment pay/postgress "
        "(did you mean pay/postgres?)"
    ]


def test_an_alert_on_a_service_that_does_not_exist_is_an_error() -> None:
    msgs = _messages(
        _edit(BILLING, "{service: billing, value: 0.05}", "{service: biling, value: 0.05}")
    )
    assert len(msgs) == 1
    assert msgs[0].startswith(
        "spec.alert.when.error_rate_above.service: no manifest or app defines Service pay/biling"
    )


def test_a_fault_beyond_the_horizon_is_an_error() -> None:
    msgs = _messages(_edit(BILLING, "- at: 2m", "- at: 25m"))
    assert msgs == ["spec.faults[0].at: 25m is beyond the horizon (20m)"]


def test_unknown_keys_are_errors_everywhere() -> None:
    text = _edit(BILLING, "  traffic: {rps: 20}", "  traffic: {rps: 20, burst: 3}")
    text = _edit(text, "  expect: recover", "  expect: recover\n  hint: scale it")
    text = _edit(text, "params: {replicas: 0}", "params: {replicas: 0, replica: 1}")
    assert sorted(_messages(text)) == [
        "spec.faults[0].params.replica: Extra inputs are not permitted",
        "spec.traffic.burst: Extra inputs are not permitted",
        "truth.hint: Extra inputs are not permitted",
    ]


def test_several_errors_at_once_structural_and_semantic() -> None:
    text = _edit(
        BILLING,
        "  faults:\n",
        """  faults:
    - {at: 1m, type: hang, target: {kind: Deployment, namespace: pay, name: bill}}
    - {at: 5x, type: cpu-hog, params: {cores: 2},
       target: {kind: Deployment, namespace: pay, name: billing}}
    - {at: 1m, type: hang, target: {kind: Service, namespace: pay, name: billing}}
    - {at: 1m, type: node-down, target: {kind: Node, name: node-7}}
""",
    )
    assert _messages(text) == [
        "spec.faults[1].at: invalid duration '5x': expected a string such as 30s, 2m or 1h30m",
        "spec.faults[0].target: no manifest or app defines Deployment pay/bill "
        "(did you mean pay/billing?)",
        "spec.faults[2].target.kind: a hang fault acts on Deployment or StatefulSet, not Service",
        "spec.faults[3].target: no manifest or app defines Node node-7 (did you mean node-2?)",
    ]


def test_missing_and_wrongly_typed_fields() -> None:
    text = _edit(BILLING, "      params: {replicas: 0}\n", "")
    assert _messages(text) == ["spec.faults[0].params: Field required"]
    text = _edit(BILLING, "apiVersion: kubemedic.dev/v1\n", "apiVersion: kubemedic.dev/v2\n")
    assert _messages(text) == ["apiVersion: Input should be 'kubemedic.dev/v1'"]
    text = _edit(BILLING, "      type: scale\n", "")
    assert _messages(text)[0].startswith("spec.faults[0].type: Field required")
    text = _edit(BILLING, "expect: recover", "expect: maybe")
    assert _messages(text) == ["truth.expect: Input should be 'recover', 'escalate' or 'nothing'"]
    text = _edit(BILLING, "{action: scale, target", "{action: nuke, target")
    assert _messages(text)[0].startswith(
        "truth.accepted_actions[0].action: Input should be 'restart'"
    )


def test_truth_must_be_consistent() -> None:
    text = _edit(BILLING, "  detection: true", "  detection: true\n  accepted_actions: []")
    text = text.replace(
        "  accepted_actions:\n"
        "    - {action: scale, target: {kind: Deployment, namespace: pay, name: postgres}}\n",
        "",
    )
    assert _messages(text) == ["truth: expect 'recover' needs at least one accepted action"]
    text = _edit(BILLING, "expect: recover", "expect: nothing")
    assert _messages(text) == [
        "truth: expect 'nothing' means there is nothing to detect (detection: false)"
    ]


def test_the_alert_needs_exactly_one_condition_and_an_alertname() -> None:
    text = _edit(BILLING, "for: 1m}", "at: 3m, for: 1m}")
    assert _messages(text) == [
        "spec.alert.when: give exactly one condition of error_rate_above, latency_p99_above, "
        "restarts_above, not_ready, at (got error_rate_above, at)"
    ]
    text = _edit(BILLING, "labels: {alertname: BillingErrors, ", "labels: {")
    assert _messages(text) == ["spec.alert.labels: an alert needs an 'alertname' label"]


def test_recovered_workloads_and_services_must_exist() -> None:
    text = _edit(BILLING, "ready: [pay/postgres, billing]", "ready: [pay/postgres, billings]")
    assert _messages(text) == [
        "truth.recovered.ready[1]: no manifest or app defines Deployment or StatefulSet "
        "pay/billings (did you mean pay/billing?)"
    ]


def test_an_unknown_app_is_an_error() -> None:
    text = _edit(BILLING, "  seed: 3\n", "  seed: 3\n  app: nosuchapp\n")
    (msg,) = _messages(text)
    assert msg.startswith("spec.app: unknown app 'nosuchapp'")


def test_rollout_container_must_exist() -> None:
    text = _edit(
        BILLING,
        """      type: scale
      target: {kind: Deployment, namespace: pay, name: postgres}
      params: {replicas: 0}""",
        """      type: rollout
      target: {kind: Deployment, namespace: pay, name: billing}
      params:
        {image: "registry.example.com/billing-api:1.5", behavior: config-error, container: app}""",
    )
    assert _messages(text) == [
        "spec.faults[0].params.container: Deployment pay/billing has no container 'app' "
        "(containers: api)"
    ]


def test_an_applied_object_can_be_the_target_of_a_later_fault() -> None:
    text = _edit(
        BILLING,
        "  faults:\n",
        """  faults:
    - at: 1m
      type: apply
      params:
        object:
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: flags, namespace: pay}
          data: {mode: fast}
    - at: 3m
      type: delete
      target: {kind: ConfigMap, namespace: pay, name: flags}
""",
    )
    sc = parse_scenario(text)
    assert [f.type for f in sc.spec.faults] == ["apply", "delete", "scale"]


def test_invalid_scenarios_raise_with_every_error() -> None:
    text = _edit(BILLING, "params: {replicas: 0}", "params: {replicas: -1}")
    text = _edit(text, "  horizon: 20m", "  horizon: 20 minutes")
    with pytest.raises(ScenarioInvalid) as info:
        parse_scenario(text, source="billing.yaml")
    assert len(info.value.errors) == 2
    assert "scenario billing.yaml is invalid" in str(info.value)


def test_a_file_that_is_not_a_mapping_or_missing() -> None:
    assert _messages("- 1\n- 2\n") == ["a scenario is a YAML mapping (apiVersion, kind, ...)"]
    (err,) = validate_file("/nonexistent/scenario.yaml")
    assert "cannot read" in err.message
    with pytest.raises(LookupError, match="unknown scenario 'no-such-scenario'"):
        load_scenario("no-such-scenario")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1h30m", 5400), ("1m30s", 90), ("500ms", 0.5), (45, 45)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "1d", "-3s", "3 m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_quantities_and_rates() -> None:
    assert parse_cpu("250m") == 0.25
    assert parse_cpu(2) == 2.0
    assert parse_memory("128Mi") == 128 * 2**20
    assert parse_memory("1G") == 10**9
    assert parse_memory("1e3") == 1000
    assert format_memory(256 * 2**20) == "256Mi"
    assert parse_memory_rate("40Mi/min") == pytest.approx(40 * 2**20 / 60)
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_cpu("lots")
    with pytest.raises(ValueError, match="invalid rate"):
        parse_memory_rate("40Mi")


def test_the_example_in_scenarios_md_is_the_format() -> None:
    """The YAML block of SCENARIOS.md parses with only the truth's shape (the app is built in)."""
    data = yaml.safe_load(BILLING)
    assert set(data) == {"apiVersion", "kind", "metadata", "spec", "truth"}


def test_a_traffic_spike_target_must_be_the_entry_service() -> None:
    spike = """      type: traffic-spike
      target: {kind: Service, namespace: pay, name: postgres}
      params: {factor: 3}"""
    text = _edit(
        BILLING,
        """      type: scale
      target: {kind: Deployment, namespace: pay, name: postgres}
      params: {replicas: 0}""",
        spike,
    )
    assert _messages(text) == [
        "spec.faults[0].target: load enters at pay/billing only; omit target"
    ]
    assert (
        validate_text(
            text.replace(
                "name: postgres}\n      params: {factor", "name: billing}\n      params: {factor"
            )
        )
        == []
    )


def test_a_rollout_needs_a_new_image() -> None:
    text = _edit(
        BILLING,
        """      type: scale
      target: {kind: Deployment, namespace: pay, name: postgres}
      params: {replicas: 0}""",
        """      type: rollout
      target: {kind: Deployment, namespace: pay, name: postgres}
      params: {image: "postgres:16", behavior: crash-on-start}""",
    )
    assert _messages(text) == [
        "spec.faults[0].params.image: Deployment pay/postgres already runs postgres:16; "
        "a rollout needs a new image"
    ]
