"""NetworkPolicies as root causes: an egress policy on a caller that forgets a dependency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agents import signals as sg
from agents.dependency_tracer import localize, network_policies
from agents.signals import EvidenceBook
from state import ObjectRef

NS = "app"


def w(name: str) -> ObjectRef:
    return ObjectRef(kind="Deployment", namespace=NS, name=name)


def svc(name: str) -> ObjectRef:
    return ObjectRef(kind="Service", namespace=NS, name=name)


def snapshot(egress: list[dict[str, Any]]) -> sg.Snapshot:
    """web -> api -> cache, each behind a Service of its name; a default-deny egress policy on
    api with the given rules."""
    g = sg.Graph()
    for n in ("web", "api", "cache"):
        g.add(svc(n).key, w(n).key, "selector")
    g.add(w("web").key, svc("api").key, "env")
    g.add(w("api").key, svc("cache").key, "env")
    snap = sg.Snapshot(scope=sg.Scope(namespaces=(NS,)), now=datetime.now(UTC), graph=g)
    snap.workloads = [
        {"kind": "Deployment", "namespace": NS, "name": n, "selector": {"app": n}}
        for n in ("web", "api", "cache")
    ]
    snap.netpols = [
        {
            "name": "api-egress",
            "namespace": NS,
            "pod_selector": {"matchLabels": {"app": "api"}},
            "policy_types": ["Egress"],
            "ingress": [],
            "egress": egress,
            "created": None,
        }
    ]
    return snap


DNS_ONLY = [
    {
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}],
    }
]


def symptoms(book: EvidenceBook) -> None:
    """What the specialists see: api fails, its calls to cache die on the way."""
    book.add(source="metrics", signal="error_ratio", subject=w("api"), summary="e", severity=0.9)
    book.add(
        source="traces",
        signal="trace_origin",
        subject=svc("cache"),
        summary="t",
        severity=0.8,
        failure="timeout",
        callers=["api"],
    )
    book.add(
        source="traces",
        signal="edge_latency",
        subject=w("cache"),
        summary="slow on the way",
        severity=0.65,
        caller=w("api").key,
    )


def test_an_egress_policy_that_forgets_a_dependency_is_the_root_cause() -> None:
    snap = snapshot(DNS_ONLY)
    book = EvidenceBook("dep", "dependency_tracer", [])
    symptoms(book)
    network_policies(snap, book)
    blocks = [e for e in book.items if e.signal == "network_policy_blocks"]
    assert len(blocks) == 1
    assert blocks[0].subject == ObjectRef(kind="NetworkPolicy", namespace=NS, name="api-egress")
    assert blocks[0].severity >= 0.5
    assert blocks[0].data["selects"] == w("api").key
    assert set(blocks[0].data["blocked"]) == {svc("cache").key, w("cache").key}
    cands = localize(book.items, snap.graph, sg.Scope(namespaces=(NS,), services=(svc("api"),)))
    assert cands[0].subject.kind == "NetworkPolicy"
    # The cut-off callee's timeouts on the way are the policy's doing.
    cache = next(c for c in cands if c.subject == w("cache"))
    assert cache.score < cands[0].score
    assert any(r.kind == "NetworkPolicy" for r in cache.explained_by)


def test_an_egress_policy_that_admits_the_dependency_blames_nothing() -> None:
    admits: list[dict[str, Any]] = [
        *DNS_ONLY,
        {"to": [{"podSelector": {"matchLabels": {"app": "cache"}}}]},
    ]
    everything: list[dict[str, Any]] = [{"to": []}]
    ip_block: list[dict[str, Any]] = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]
    for rules in (admits, everything, ip_block):
        book = EvidenceBook("dep", "dependency_tracer", [])
        symptoms(book)
        network_policies(snapshot(rules), book)
        assert not [e for e in book.items if e.signal == "network_policy_blocks"], rules
