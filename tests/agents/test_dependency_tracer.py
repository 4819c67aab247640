"""Localization on the service graph, and the tracer's own readings (traces, ports, selectors).

The localization tests feed `localize` evidence as the specialists would write
it, over a small graph: a cascade, a red herring, two faults at once, a caller
with stale credentials, a node that takes pods down, a Service misconfigured in
front of a healthy workload.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agents import signals as sg
from agents.dependency_tracer import (
    _Blame,
    _blame_errors,
    _blame_latency,
    localize,
    suggest_ports,
    trace,
)
from state import Evidence, ObjectRef
from tests.agents.support import Run

NS = "app"


def w(name: str) -> ObjectRef:
    return ObjectRef(kind="Deployment", namespace=NS, name=name)


def svc(name: str) -> ObjectRef:
    return ObjectRef(kind="Service", namespace=NS, name=name)


def graph(*calls: tuple[str, str]) -> sg.Graph:
    """Workloads each behind a Service of the same name; `calls` are caller -> callee names."""
    g = sg.Graph()
    names = {n for pair in calls for n in pair}
    for n in names:
        g.add(svc(n).key, w(n).key, "selector")
    for a, b in calls:
        g.add(w(a).key, svc(b).key, "env")
    return g


_n = 0


def ev(subject: ObjectRef, signal: str, severity: float, **data: Any) -> Evidence:
    global _n
    _n += 1
    return Evidence(
        id=f"t-{_n}",
        source="metrics",
        signal=signal,
        subject=subject,
        summary=signal,
        severity=severity,
        data=data,
    )


def ranked(cands: list[Any]) -> list[str]:
    return [
        c.subject.name if c.subject.kind != "Service" else f"svc:{c.subject.name}" for c in cands
    ]


def scope(*services: str) -> sg.Scope:
    return sg.Scope(namespaces=(NS,), services=tuple(svc(s) for s in services))


def test_the_most_upstream_anomalous_component_wins_not_the_loudest() -> None:
    g = graph(("web", "api"), ("api", "db"))
    evidence = [
        ev(w("web"), "error_ratio", 0.95, service=svc("web").key),
        ev(w("api"), "error_ratio", 0.9, service=svc("api").key),
        ev(w("api"), "dependency_error", 0.6, dependency=svc("db").key, failure="refused"),
        ev(w("db"), "crash_loop", 0.7),
    ]
    cands = localize(evidence, g, scope("web"))
    assert ranked(cands)[0] == "db"
    by = {c.subject.name: c for c in cands}
    assert by["api"].explained_by
    assert by["web"].explained_by
    assert by["db"].score > 2 * by["web"].score


def test_a_red_herring_off_the_alerting_path_is_demoted() -> None:
    g = graph(("web", "api"), ("web", "ads"), ("batch", "reports"))
    evidence = [
        ev(w("web"), "error_ratio", 0.8, service=svc("web").key),
        ev(w("api"), "error_ratio", 0.8, service=svc("api").key),
        ev(w("api"), "trace_origin", 0.7, callers=["web"]),
        # Loud but off the path: a batch job's dependency errors nobody on the path sees.
        ev(w("reports"), "error_ratio", 0.9, service=svc("reports").key),
        # Error log lines alone are a hint, not an anomaly.
        ev(w("ads"), "error_logs", 0.44),
    ]
    cands = localize(evidence, g, scope("web"))
    names = ranked(cands)
    assert names[0] == "api"
    assert "ads" not in names
    reports = next(c for c in cands if c.subject.name == "reports")
    assert "not on the alerting path" in reports.reasons
    assert reports.score < cands[0].score / 2 + 0.05


def test_two_faults_on_two_branches_are_both_candidates() -> None:
    g = graph(("web", "pricing"), ("web", "auth"), ("pricing", "cache"), ("auth", "users"))
    evidence = [
        ev(w("web"), "error_ratio", 0.9, service=svc("web").key),
        ev(w("pricing"), "error_ratio", 0.8, service=svc("pricing").key),
        ev(w("auth"), "error_ratio", 0.8, service=svc("auth").key),
        ev(w("cache"), "scaled_to_zero", 0.9),
        ev(w("users"), "image_pull_error", 0.9),
    ]
    cands = localize(evidence, g, scope("web"))
    assert set(ranked(cands)[:2]) == {"cache", "users"}
    assert all(c.explained_by for c in cands if c.subject.name in ("web", "pricing", "auth"))


def test_auth_failures_blame_the_caller_not_the_healthy_callee() -> None:
    g = graph(("billing", "postgres"))
    evidence = [
        ev(w("billing"), "error_ratio", 0.9, service=svc("billing").key),
        ev(w("billing"), "auth_error", 0.75, dependency=svc("postgres").key),
        ev(w("billing"), "dependency_error", 0.6, dependency=svc("postgres").key, failure="auth"),
    ]
    cands = localize(evidence, g, scope("billing"))
    assert ranked(cands) == ["billing"]
    assert not cands[0].explained_by


def test_a_node_that_is_down_explains_the_pods_on_it() -> None:
    g = graph(("web", "cart"), ("web", "ads"))
    node = ObjectRef(kind="Node", name="node-1")
    evidence = [
        ev(node, "node_not_ready", 0.9, workloads=[w("cart").key, w("ads").key]),
        ev(w("cart"), "replicas_unavailable", 0.85),
        ev(w("ads"), "replicas_unavailable", 0.85),
        ev(w("web"), "error_ratio", 0.8, service=svc("web").key),
    ]
    cands = localize(evidence, g, scope("web"))
    assert cands[0].subject == node
    assert all(node in c.explained_by for c in cands if c.subject.name in ("cart", "ads"))


def test_a_misconfigured_service_explains_its_workload_s_symptoms() -> None:
    g = graph(("web", "pricing"))
    evidence = [
        ev(svc("pricing"), "target_port_mismatch", 0.95),
        # Measured at the Service, attributed to the workload behind it by the tracer.
        ev(w("pricing"), "error_ratio", 0.9, service=svc("pricing").key),
        ev(w("web"), "error_ratio", 0.8, service=svc("web").key),
    ]
    cands = localize(evidence, g, scope("web"))
    assert cands[0].subject == svc("pricing")
    pricing = next(c for c in cands if c.subject == w("pricing"))
    assert svc("pricing") in pricing.explained_by


def test_nothing_anomalous_means_no_candidate() -> None:
    g = graph(("web", "api"))
    evidence = [ev(w("api"), "error_logs", 0.44), ev(w("api"), "rollout_changed", 0.3)]
    assert localize(evidence, g, scope("web")) == []


def idx() -> sg.NameIndex:
    return sg.NameIndex.build(
        services=[{"namespace": NS, "name": "cart"}, {"namespace": NS, "name": "redis"}],
        workloads=[{"kind": "Deployment", "namespace": NS, "name": "cart"}],
        namespaces=(NS,),
    )


def span(
    sid: str,
    parent: str | None,
    service: str,
    error: bool,
    status: str = "",
    kind: str = "server",
    peer: str | None = None,
    ms: float = 5.0,
) -> dict[str, Any]:
    return {
        "span_id": sid,
        "parent_id": parent,
        "service": service,
        "operation": "op",
        "duration_ms": ms,
        "error": error,
        "status": status,
        "kind": kind,
        "peer": peer,
    }


def test_failing_traces_blame_the_deepest_failing_span() -> None:
    blames: dict[str, _Blame] = {}
    spans = [
        span("1", None, "web", True, "could not get cart"),
        span("2", "1", "web", True, "rpc error", kind="client", peer="cart"),
        span("3", "2", "cart", True, "cart storage"),
        span(
            "4",
            "3",
            "cart",
            True,
            "dial tcp 10.0.0.9:6379: connect: connection refused",
            kind="client",
            peer="redis",
        ),
    ]
    _blame_errors({"spans": spans, "error_spans": spans}, blames, idx())
    assert list(blames) == ["svc:redis"]
    assert blames["svc:redis"].callers == {"cart"}
    assert blames["svc:redis"].classes == {"refused": 1}
    # A peer nothing in the cluster is called: a missing Service.
    blames = {}
    spans = [
        span("1", None, "web", True, "x"),
        span(
            "2",
            "1",
            "web",
            True,
            "dial tcp: lookup currency on 10.96.0.10:53: no such host",
            kind="client",
            peer="currency",
        ),
    ]
    _blame_errors({"spans": spans, "error_spans": spans}, blames, idx())
    assert list(blames) == ["?currency"]


def test_slow_traces_tell_a_slow_hop_from_a_slow_service() -> None:
    slow: dict[tuple[str, str], list[float]] = {}
    origin: dict[str, list[float]] = {}
    hop = [
        span("1", None, "web", False, ms=620),
        span("2", "1", "cart", False, kind="client", peer="redis", ms=600),
    ]
    _blame_latency({"spans": hop, "duration_ms": 620}, slow, origin)
    assert slow == {("cart", "redis"): [600.0]}
    inside = [
        span("1", None, "web", False, ms=900),
        span("2", "1", "web", False, kind="client", peer="cart", ms=880),
        span("3", "2", "cart", False, ms=870),
    ]
    _blame_latency({"spans": inside, "duration_ms": 900}, slow, origin)
    assert origin == {"cart": [870.0]}


def test_a_wrong_target_port_is_fixed_only_to_a_declared_port() -> None:
    svc_row = {
        "ports": [{"name": "http", "port": 80, "targetPort": 8081}],
        "declared_container_ports": [{"container": "api", "containerPort": 8080, "name": "http"}],
    }
    assert suggest_ports(svc_row) == [
        {"port": 80, "target_port": 8080, "was": 8081, "declared_by": "api"}
    ]
    none_declared = {"ports": [{"port": 80, "targetPort": 8081}], "declared_container_ports": []}
    assert suggest_ports(none_declared) == []


def test_tracer_on_the_twin_reads_every_signal_kind_it_needs() -> None:
    """On a live twin (cart-redis-down): the graph, status, events history and traces."""
    run = Run.start("cart-redis-down")
    try:
        result = asyncio.run(trace(run.state, run.ctx))
    finally:
        run.close()
    f = result.findings
    assert f.candidates[0].subject == ObjectRef(
        kind="Deployment", namespace="shop", name="redis-cart"
    )
    zero = next(e for e in result.evidence if e.signal == "scaled_to_zero")
    assert zero.data["previous_replicas"] == 1
    assert {e.signal for e in result.evidence} >= {"no_endpoints", "error_ratio", "trace_origin"}
    assert any(edge.via == "trace" for edge in f.edges)
    assert all(e.id.startswith("dep-") for e in result.evidence)
    assert f.evidence_ids == [e.id for e in result.evidence]
    assert not result.snapshot.log.problems


def test_a_focus_that_names_nothing_real_demotes_nobody() -> None:
    g = graph(("web", "api"))
    evidence = [ev(w("api"), "crash_loop", 0.8)]
    odd = sg.Scope(namespaces=(NS,), workloads=(w("my-app"),))
    cands = localize(evidence, g, odd)
    assert ranked(cands) == ["api"]
    assert "not on the alerting path" not in cands[0].reasons
