"""The shared evidence helpers: text rules, metric trends, the graph, scope, evidence ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents import signals as sg
from state import AlertInfo, Evidence, Incident, IncidentInput, IncidentState, ObjectRef

T0 = datetime(2026, 7, 11, 3, 0, tzinfo=UTC)


def index() -> sg.NameIndex:
    services = [
        {"namespace": "shop", "name": "redis-cart", "cluster_ip": "10.101.139.109"},
        {"namespace": "shop", "name": "cartservice", "cluster_ip": "10.110.140.102"},
        {"namespace": "pay", "name": "postgres", "cluster_ip": "10.102.160.92"},
    ]
    pods = [
        {
            "namespace": "shop",
            "name": "cartservice-54979c74f7-5wb7v",
            "ip": "10.244.2.2",
            "workload": "Deployment/cartservice",
        },
    ]
    return sg.NameIndex.build(services=services, pods=pods, namespaces=("shop",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-07-11T03:04:27.458222Z", datetime(2026, 7, 11, 3, 4, 27, 458222, tzinfo=UTC)),
        ("2026-07-11T03:04:38.670546000Z", datetime(2026, 7, 11, 3, 4, 38, 670546, tzinfo=UTC)),
        ("2026-07-11T03:04:38+02:00", datetime(2026, 7, 11, 1, 4, 38, tzinfo=UTC)),
        ("not a time", None),
        (None, None),
    ],
)
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    assert sg.parse_time(text) == expected


@pytest.mark.parametrize(
    ("message", "cls"),
    [
        ("dial tcp 10.0.3.7:6379: connect: connection refused", "refused"),
        ('pq: password authentication failed for user "app"', "auth"),
        ("dial tcp: lookup currencyservice on 10.96.0.10:53: no such host", "dns"),
        ("rpc error: code = DeadlineExceeded desc = context deadline exceeded", "timeout"),
        ("read: connection reset by peer", "reset"),
        ("upstream connect error or disconnect/reset before headers", "unavailable"),
        ("everything is fine", "other"),
    ],
)
def test_failure_class(message: str, cls: str) -> None:
    assert sg.failure_class(message) == cls


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("FATAL config key DATABASE_URL missing", "DATABASE_URL"),
        ("error: environment variable REDIS_ADDR is not set", "REDIS_ADDR"),
        ("missing required env: PAYMENT_TOKEN", "PAYMENT_TOKEN"),
        ("couldn't find key api-url in ConfigMap shop/settings", "api-url"),
        ("request served in 12ms", None),
    ],
)
def test_config_key(text: str, key: str | None) -> None:
    assert sg.config_key(text) == key


def test_mentions_map_addresses_names_and_failed_lookups_to_objects() -> None:
    idx = index()
    refused = sg.mentions("dial tcp 10.101.139.109:6379: connect: connection refused", idx)
    assert [m.target for m in refused] == [
        ObjectRef(kind="Service", namespace="shop", name="redis-cart")
    ]
    by_name = sg.mentions("connecting to redis-cart:6379 failed", idx)
    assert by_name[0].target == ObjectRef(kind="Service", namespace="shop", name="redis-cart")
    pod_ip = sg.mentions("upstream 10.244.2.2:7070 reset", idx)
    assert pod_ip[0].target == ObjectRef(kind="Deployment", namespace="shop", name="cartservice")
    url = sg.mentions("GET postgres://app@postgres.pay:5432/db failed", idx)
    assert url[0].target == ObjectRef(kind="Service", namespace="pay", name="postgres")
    # The DNS server after "on" is not a dependency; the looked-up name is, and it does not exist.
    lookup = sg.mentions("dial tcp: lookup currencyservice on 10.96.0.10:53: no such host", idx)
    assert [(m.target, m.host, m.how) for m in lookup] == [(None, "currencyservice", "dns")]
    assert sg.looks_cluster_local("currencyservice", idx)
    assert not sg.looks_cluster_local("rates.example.com", idx)
    # Words that only look like a lookup name nothing.
    assert sg.mentions("surge lookup failed: table returned NaN", idx) == []


def test_trend_ignores_the_warm_up_and_dates_the_onset() -> None:
    points = [
        (T0 + timedelta(seconds=20 * i), v)
        for i, v in enumerate([1.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.4, 0.6, 0.7])
    ]
    now = points[-1][0]
    t = sg.trend(points, now=now, recent_s=75, anomalous=sg.error_anomalous)
    assert t.baseline == 0.0
    assert t.recent == pytest.approx(0.65)
    assert t.onset == points[6][0]
    assert t.window_max == 1.0
    assert sg.error_anomalous(0.3, 0.0)
    assert not sg.error_anomalous(0.04, 0.0)
    assert sg.latency_anomalous(500.0, 80.0)
    assert not sg.latency_anomalous(150.0, 80.0)
    assert sg.rate_increased(120.0, 20.0)
    assert not sg.rate_increased(25.0, 20.0)


def test_evidence_book_numbers_per_agent_and_keeps_the_stronger_repeat() -> None:
    existing = [
        Evidence(
            id="dep-4",
            source="status",
            signal="x",
            subject=ObjectRef(kind="Pod", name="p"),
            summary="s",
        )
    ]
    book = sg.EvidenceBook("dep", "dependency_tracer", existing)
    subject = ObjectRef(kind="Deployment", namespace="shop", name="cart")
    a = book.add(
        source="status", signal="crash_loop", subject=subject, summary="weak", severity=0.6
    )
    assert a.id == "dep-5"
    b = book.add(
        source="events",
        signal="crash_loop",
        subject=subject,
        summary="strong",
        severity=0.9,
        restarts=4,
    )
    assert b.id == "dep-5"
    assert [e.summary for e in book.items] == ["strong"]
    assert book.items[0].data["restarts"] == 4
    c = book.add(
        source="status",
        signal="crash_loop",
        subject=subject,
        summary="other pod",
        severity=0.5,
        key="p2",
    )
    assert c.id == "dep-6"
    assert sg.is_fault(b)
    assert not sg.is_fault(
        book.add(
            source="rollout", signal="rollout_changed", subject=subject, summary="r", severity=0.9
        )
    )


def test_graph_walks_calls_through_services() -> None:
    g = sg.Graph.from_tool(
        {
            "nodes": [],
            "edges": [
                {
                    "from": "Service/shop/frontend",
                    "to": "Deployment/shop/frontend",
                    "sources": ["selector"],
                },
                {
                    "from": "Deployment/shop/frontend",
                    "to": "Service/shop/cart",
                    "sources": ["env", "trace"],
                },
                {
                    "from": "Service/shop/cart",
                    "to": "Deployment/shop/cart",
                    "sources": ["selector"],
                },
                {"from": "Deployment/shop/cart", "to": "Service/shop/redis", "sources": ["env"]},
                {
                    "from": "Service/shop/redis",
                    "to": "Deployment/shop/redis",
                    "sources": ["selector"],
                },
            ],
        }
    )
    assert g.dependencies("Deployment/shop/frontend") == {
        "Service/shop/cart",
        "Deployment/shop/cart",
        "Service/shop/redis",
        "Deployment/shop/redis",
    }
    assert g.callers("Deployment/shop/redis") == {"Deployment/shop/cart"}
    assert g.dependents("Deployment/shop/redis") == {
        "Deployment/shop/cart",
        "Deployment/shop/frontend",
    }
    assert g.services_of("Deployment/shop/cart") == {"Service/shop/cart"}
    assert ("Deployment/shop/frontend", "Service/shop/cart", "trace") in g.edges()


def test_alert_kind_and_scope_from_untrusted_labels() -> None:
    assert sg.alert_kind_of({"alertname": "FrontendLatencyHigh"}, {}) == "latency"
    assert sg.alert_kind_of({"alertname": "KubePodCrashLooping"}, {}) == "restarts"
    assert sg.alert_kind_of({"alertname": "X"}, {"summary": "error rate above 5%"}) == "errors"
    alert = AlertInfo(
        labels={
            "alertname": "Burn",
            "namespace": "shop",
            "service": "frontend",
            "deployment": "Robert'); DROP TABLE--",
            "pod": "cart-1",
        },
        starts_at=T0,
    )
    state = IncidentState(
        input=IncidentInput(trigger="alert", alert=alert),
        incident=Incident(
            id="i",
            title="t",
            trigger="alert",
            namespace="shop",
            fingerprint="f",
            mode="observe",
            alert=alert,
            opened_at=T0,
        ),
    )

    async def run() -> sg.Scope:
        return await sg.resolve_scope(state, None, [])  # type: ignore[arg-type]

    import asyncio

    scope = asyncio.run(run())
    assert scope.namespaces == ("shop",)
    assert scope.services == (ObjectRef(kind="Service", namespace="shop", name="frontend"),)
    # A label value that is no Kubernetes name is dropped, never used in a query.
    assert scope.workloads == ()
    assert scope.pods == (ObjectRef(kind="Pod", namespace="shop", name="cart-1"),)
    assert scope.alert_start == T0


def test_categories_cover_every_cause_kind_the_planner_uses() -> None:
    for kind in ("scaled_to_zero", "selector_mismatch", "node_failure", "auth_failure", "hang"):
        cat = sg.category_for(kind)
        assert cat.system_level in ("Application", "Virtualization", "Hardware", "Operating System")
        assert cat.fault_type
    assert sg.category_for("no-such-kind") == sg.category_for("unknown")
