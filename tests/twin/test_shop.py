"""The built-in shop app: its manifests are Online Boutique v0.10.6's, its profiles fit them."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from twin.apps import BUILTIN, get_app, shop
from twin.behavior import BehaviorRegistry
from twin.quantity import parse_cpu, parse_memory
from twin.traffic_logs import render
from twin.traffic_net import call_target, parse_address

from .test_traffic_support import runtime_of, shop_world

Obj = dict[str, Any]

APP_SERVICES = (
    "frontend",
    "adservice",
    "currencyservice",
    "cartservice",
    "recommendationservice",
    "checkoutservice",
    "emailservice",
    "paymentservice",
    "shippingservice",
    "productcatalogservice",
)


def by_kind(kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in shop.manifests() if o["kind"] == kind}


def container(name: str) -> Obj:
    c: Obj = by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
    return c


def env_of(name: str) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(name).get("env") or []}


def test_app_registry() -> None:
    assert get_app("shop") is shop
    assert {"shop": shop} == BUILTIN
    with pytest.raises(KeyError, match="unknown app 'nope'; built-in apps: shop"):
        get_app("nope")


def test_manifest_objects_in_release_order() -> None:
    objs = shop.manifests("boutique")
    assert all(o["metadata"]["namespace"] == "boutique" for o in objs)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert kinds[:4] == [
        ("Deployment", "frontend"),
        ("Service", "frontend"),
        ("Service", "frontend-external"),
        ("ServiceAccount", "frontend"),
    ]
    deployments = [n for k, n in kinds if k == "Deployment"]
    assert sorted(deployments) == sorted([*APP_SERVICES, "redis-cart", "loadgenerator"])
    services = {n for k, n in kinds if k == "Service"}
    assert services == ({*APP_SERVICES, "redis-cart", "frontend-external"})
    accounts = {n for k, n in kinds if k == "ServiceAccount"}
    assert accounts == {*APP_SERVICES, "loadgenerator"}
    assert "Namespace" not in {k for k, _ in kinds}
    assert len(objs) == 35


def test_labels_selectors_and_service_types() -> None:
    for name, d in by_kind("Deployment").items():
        assert d["metadata"]["labels"] == {"app": name}
        assert d["spec"]["selector"] == {"matchLabels": {"app": name}}
        assert d["spec"]["template"]["metadata"]["labels"] == {"app": name}
        assert ("replicas" in d["spec"]) == (name == "loadgenerator")
    for name, s in by_kind("Service").items():
        app = "frontend" if name == "frontend-external" else name
        assert s["spec"]["selector"] == {"app": app}
        assert s["metadata"]["labels"] == {"app": app}
        assert s["spec"]["type"] == ("LoadBalancer" if name == "frontend-external" else "ClusterIP")
    assert by_kind("Deployment")["loadgenerator"]["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("service", "port", "target", "port_name"),
    [
        ("frontend", 80, 8080, "http"),
        ("frontend-external", 80, 8080, "http"),
        ("adservice", 9555, 9555, "grpc"),
        ("currencyservice", 7000, 7000, "grpc"),
        ("cartservice", 7070, 7070, "grpc"),
        ("redis-cart", 6379, 6379, "tcp-redis"),
        ("recommendationservice", 8080, 8080, "grpc"),
        ("checkoutservice", 5050, 5050, "grpc"),
        ("emailservice", 5000, 8080, "grpc"),
        ("paymentservice", 50051, 50051, "grpc"),
        ("shippingservice", 50051, 50051, "grpc"),
        ("productcatalogservice", 3550, 3550, "grpc"),
    ],
)
def test_service_ports(service: str, port: int, target: int, port_name: str) -> None:
    ports = by_kind("Service")[service]["spec"]["ports"]
    assert ports == [{"name": port_name, "port": port, "targetPort": target}]


@pytest.mark.parametrize(
    ("name", "requests", "limits"),
    [
        ("frontend", ("100m", "64Mi"), ("200m", "128Mi")),
        ("adservice", ("200m", "180Mi"), ("300m", "300Mi")),
        ("currencyservice", ("100m", "64Mi"), ("200m", "128Mi")),
        ("cartservice", ("200m", "64Mi"), ("300m", "128Mi")),
        ("redis-cart", ("70m", "200Mi"), ("125m", "256Mi")),
        ("loadgenerator", ("300m", "256Mi"), ("500m", "512Mi")),
        ("recommendationservice", ("100m", "220Mi"), ("200m", "450Mi")),
        ("checkoutservice", ("100m", "64Mi"), ("200m", "128Mi")),
        ("emailservice", ("100m", "64Mi"), ("200m", "128Mi")),
        ("paymentservice", ("100m", "64Mi"), ("200m", "128Mi")),
        ("shippingservice", ("100m", "64Mi"), ("200m", "128Mi")),
        ("productcatalogservice", ("100m", "64Mi"), ("200m", "128Mi")),
    ],
)
def test_resources(name: str, requests: tuple[str, str], limits: tuple[str, str]) -> None:
    res = container(name)["resources"]
    assert (res["requests"]["cpu"], res["requests"]["memory"]) == requests
    assert (res["limits"]["cpu"], res["limits"]["memory"]) == limits


def test_probes() -> None:
    fe = container("frontend")
    assert fe["readinessProbe"] == {
        "initialDelaySeconds": 10,
        "httpGet": {
            "path": "/_healthz",
            "port": 8080,
            "httpHeaders": [{"name": "Cookie", "value": "shop_session-id=x-readiness-probe"}],
        },
    }
    assert fe["livenessProbe"]["httpGet"]["httpHeaders"] == [
        {"name": "Cookie", "value": "shop_session-id=x-liveness-probe"}
    ]
    assert container("adservice")["readinessProbe"] == {
        "initialDelaySeconds": 20,
        "periodSeconds": 15,
        "grpc": {"port": 9555},
    }
    assert container("currencyservice")["livenessProbe"] == {"grpc": {"port": 7000}}
    assert container("cartservice")["readinessProbe"] == {
        "initialDelaySeconds": 15,
        "grpc": {"port": 7070},
    }
    assert container("cartservice")["livenessProbe"] == {
        "initialDelaySeconds": 15,
        "periodSeconds": 10,
        "grpc": {"port": 7070},
    }
    assert container("redis-cart")["readinessProbe"] == {
        "periodSeconds": 5,
        "tcpSocket": {"port": 6379},
    }
    assert container("shippingservice")["readinessProbe"] == {
        "periodSeconds": 5,
        "grpc": {"port": 50051},
    }
    assert container("shippingservice")["livenessProbe"] == {"grpc": {"port": 50051}}
    assert container("emailservice")["readinessProbe"] == {
        "periodSeconds": 5,
        "grpc": {"port": 8080},
    }
    assert "readinessProbe" not in container("loadgenerator")


def test_security_contexts_grace_and_accounts() -> None:
    graces = {"adservice", "currencyservice", "cartservice", "loadgenerator"}
    graces |= {"recommendationservice", "emailservice", "paymentservice", "productcatalogservice"}
    for name, d in by_kind("Deployment").items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "fsGroup": 1000,
            "runAsGroup": 1000,
            "runAsNonRoot": True,
            "runAsUser": 1000,
        }
        for c in [*pod["containers"], *pod.get("initContainers", [])]:
            assert c["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "privileged": False,
                "readOnlyRootFilesystem": True,
            }
        assert pod.get("serviceAccountName") == (None if name == "redis-cart" else name)
        assert pod.get("terminationGracePeriodSeconds") == (5 if name in graces else None)
    for name in ("frontend", "loadgenerator"):
        annotations = by_kind("Deployment")[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"sidecar.istio.io/rewriteAppHTTPProbers": "true"}


def test_images() -> None:
    for name in [*APP_SERVICES, "loadgenerator"]:
        assert container(name)["image"] == (
            f"us-central1-docker.pkg.dev/online-boutique-ci/microservices-demo/{name}:v0.10.6"
        )
    assert container("redis-cart")["image"] == "redis:alpine"
    assert container("redis-cart")["name"] == "redis"
    assert container("loadgenerator")["name"] == "main"
    assert container("frontend")["name"] == "server"


def test_redis_volume_and_loadgenerator_init() -> None:
    redis = by_kind("Deployment")["redis-cart"]["spec"]["template"]["spec"]
    assert redis["containers"][0]["volumeMounts"] == [{"mountPath": "/data", "name": "redis-data"}]
    assert redis["volumes"] == [{"name": "redis-data", "emptyDir": {}}]
    lg = by_kind("Deployment")["loadgenerator"]["spec"]["template"]["spec"]
    assert lg["restartPolicy"] == "Always"
    (init,) = lg["initContainers"]
    assert init["name"] == "frontend-check"
    assert init["image"] == (
        "busybox:1.38.0@sha256:fd8d9aa63ba2f0982b5304e1ee8d3b90a210bc1ffb5314d980eb6962f1a9715d"
    )
    assert init["command"][:2] == ["/bin/sh", "-exc"]
    script = init["command"][2]
    assert "MAX_RETRIES=12" in script
    assert "RETRY_INTERVAL=10" in script
    assert 'echo "Attempt $i: Pinging frontend: ${FRONTEND_ADDR}..."' in script
    assert 'echo "Frontend is reachable."' in script
    assert 'echo "Failed to reach frontend after $MAX_RETRIES attempts."' in script
    assert init["env"] == [{"name": "FRONTEND_ADDR", "value": "frontend:80"}]
    assert env_of("loadgenerator") == {"FRONTEND_ADDR": "frontend:80", "USERS": "10", "RATE": "1"}


def test_environment() -> None:
    fe = env_of("frontend")
    assert list(fe) == [
        "PORT",
        "PRODUCT_CATALOG_SERVICE_ADDR",
        "CURRENCY_SERVICE_ADDR",
        "CART_SERVICE_ADDR",
        "RECOMMENDATION_SERVICE_ADDR",
        "SHIPPING_SERVICE_ADDR",
        "CHECKOUT_SERVICE_ADDR",
        "AD_SERVICE_ADDR",
        "SHOPPING_ASSISTANT_SERVICE_ADDR",
        "ENABLE_PROFILER",
    ]
    assert fe["SHOPPING_ASSISTANT_SERVICE_ADDR"] == "shoppingassistantservice:80"
    assert env_of("cartservice") == {"REDIS_ADDR": "redis-cart:6379"}
    assert env_of("checkoutservice")["EMAIL_SERVICE_ADDR"] == "emailservice:5000"
    assert env_of("currencyservice") == {"PORT": "7000", "DISABLE_PROFILER": "1"}
    assert env_of("adservice") == {"PORT": "9555"}
    assert container("currencyservice")["ports"] == [{"name": "grpc", "containerPort": 7000}]


def test_every_image_has_a_profile() -> None:
    registry = BehaviorRegistry()
    shop.register_behaviors(registry)
    images = {
        c["image"]
        for d in by_kind("Deployment").values()
        for c in [
            *d["spec"]["template"]["spec"]["containers"],
            *d["spec"]["template"]["spec"].get("initContainers", []),
        ]
    }
    assert images <= set(registry.images())
    assert all(registry.known(i) for i in images)


def test_profiles_fit_their_containers() -> None:
    """Steady CPU and memory stay below the limits with headroom; calls dial real Services."""
    services = by_kind("Service")
    for name, d in by_kind("Deployment").items():
        c = d["spec"]["template"]["spec"]["containers"][0]
        profile = shop.PROFILES[c["image"]]
        limits = c["resources"]["limits"]
        assert profile.cpu <= 0.6 * parse_cpu(limits["cpu"]), name
        assert profile.memory <= 0.8 * parse_memory(limits["memory"]), name
        env = {e["name"]: e["value"] for e in c.get("env") or []}
        for call in profile.calls:
            assert call.address_env in env, (name, call)
            host, port = call_target(call, env)
            assert host == call.service
            svc = services[host]
            assert port in [p["port"] for p in svc["spec"]["ports"]], (name, call)
            assert not call.operations or set(call.operations) <= {
                o.name for o in profile.operations
            }
            target = shop.PROFILES[container(host)["image"]]
            if call.operation:
                assert call.operation in {o.name for o in target.operations}, call


def test_runtimes_and_loggers() -> None:
    expected = {
        "frontend": ("logrus", "http"),
        "checkoutservice": ("logrus", "grpc"),
        "shippingservice": ("logrus", "grpc"),
        "productcatalogservice": ("logrus", "grpc"),
        "currencyservice": ("pino", "grpc"),
        "paymentservice": ("pino", "grpc"),
        "emailservice": ("python-json", "grpc"),
        "recommendationservice": ("python-json", "grpc"),
        "cartservice": ("dotnet", "grpc"),
        "adservice": ("log4j", "grpc"),
        "loadgenerator": ("locust", "http"),
        "redis-cart": ("redis", "redis"),
    }
    for name, (style, protocol) in expected.items():
        profile = shop.PROFILES[container(name)["image"]]
        assert (profile.log_style, profile.protocol) == (style, protocol), name
    assert shop.CURRENCY.logger == "currencyservice-server"
    assert shop.PAYMENT.logger == "paymentservice-server"
    assert shop.EMAIL.logger == "emailservice-server"
    assert shop.RECOMMENDATION.logger == "recommendationservice-server"
    assert shop.AD.logger == "hipstershop.AdService"
    assert "/_healthz" in shop.FRONTEND.http_paths
    assert {"/", "/cart", "/setCurrency", "/cart/checkout"} <= set(shop.FRONTEND.http_paths)


def test_frontend_operations_follow_the_locust_tasks() -> None:
    ops = {o.name: o for o in shop.FRONTEND.operations}
    assert set(ops) == {
        "index",
        "setCurrency",
        "browseProduct",
        "addToCart",
        "viewCart",
        "checkout",
    }
    # Each addToCart and checkout task GETs a product first; checkout also POSTs /cart.
    assert {n: o.weight for n, o in ops.items()} == {
        "index": 1,
        "setCurrency": 2,
        "browseProduct": 13,
        "addToCart": 3,
        "viewCart": 3,
        "checkout": 1,
    }
    assert (ops["checkout"].method, ops["checkout"].path) == ("POST", "/cart/checkout")
    soft = {c.operation for c in shop.FRONTEND.calls if c.soft}
    assert soft == {
        "hipstershop.AdService/GetAds",
        "hipstershop.RecommendationService/ListRecommendations",
        "hipstershop.ProductCatalogService/GetProduct",
    }
    ads = next(c for c in shop.FRONTEND.calls if c.service == "adservice")
    assert ads.timeout_ms == 100
    hard = {c.service for c in shop.FRONTEND.calls if not c.soft}
    assert hard == {
        "currencyservice",
        "productcatalogservice",
        "cartservice",
        "shippingservice",
        "checkoutservice",
    }


def test_startup_logs_in_order() -> None:
    assert shop.FRONTEND.startup_logs == (
        "Tracing disabled.",
        "Profiling disabled.",
        "starting server on :{port}",
    )
    assert shop.CATALOG.startup_logs[-2:] == (
        "loading catalog from local products.json file...",
        "successfully parsed product catalog json",
    )
    assert shop.SHIPPING.startup_logs[-1] == "Shipping Service listening on port 50051"
    assert shop.REDIS.startup_logs[-1] == "Ready to accept connections tcp"
    assert shop.CURRENCY.startup_logs[-1] == "CurrencyService gRPC server started on port 7000"
    assert shop.EMAIL.startup_logs[0] == "starting the email service in dummy mode."


STAMP = datetime(2026, 7, 11, 3, 10, 29, 123456, tzinfo=UTC)


def lines(profile: Any, template: str, severity: str = "info", **values: Any) -> list[str]:
    return render(
        profile, template, severity, STAMP, values, hostname="pod-1", rng=random.Random(1)
    )


def test_frontend_request_logs_are_logrus_json() -> None:
    index = next(o for o in shop.FRONTEND.operations if o.name == "index")
    out = lines(
        shop.FRONTEND,
        index.info_logs[0],
        req_id="r-1",
        session="s-1",
        method="GET",
        path="/",
        latency_ms=42,
    )
    assert out[2] == "env platform is either empty or invalid"
    started, home, _raw, platform, complete = out
    assert json.loads(started) == {
        "http.req.id": "r-1",
        "http.req.method": "GET",
        "http.req.path": "/",
        "message": "request started",
        "session": "s-1",
        "severity": "debug",
        "timestamp": "2026-07-11T03:10:29.123456000Z",
    }
    assert list(json.loads(home)) == sorted(json.loads(home))
    assert json.loads(home)["message"] == "home"
    assert json.loads(home)["severity"] == "info"
    assert json.loads(home)["currency"] in shop.CURRENCIES
    assert json.loads(platform)["message"] == "ENV_PLATFORM is: local"
    done = json.loads(complete)
    assert done["http.resp.took_ms"] == 42
    assert done["http.resp.status"] == 200
    error = lines(
        shop.FRONTEND,
        shop.FRONTEND.error_logs[0],
        "error",
        cause="could not retrieve cart: rpc error: code = Unavailable desc = x",
        req_id="r",
        session="s",
        method="GET",
        path="/cart",
        latency_ms=3,
    )
    record = json.loads(error[1])
    assert record["message"] == "request error"
    assert record["severity"] == "error"
    assert record["error"].startswith("could not retrieve cart: rpc error")
    assert json.loads(error[2])["http.resp.status"] == 500


def test_other_runtimes_render_their_own_shapes() -> None:
    (pino,) = lines(shop.CURRENCY, shop.CURRENCY.error_logs[0], "error", cause="boom")
    body = json.loads(pino)
    assert list(body)[:5] == ["severity", "time", "pid", "hostname", "name"]
    assert body["message"] == "conversion request failed: boom"
    assert body["name"] == "currencyservice-server"
    (dotnet,) = lines(
        shop.CART,
        shop.CART.error_logs[0],
        "error",
        cause="Can't access cart storage. x",
        code="FailedPrecondition",
    )
    assert dotnet.startswith("info: Grpc.AspNetCore.Server.ServerCallHandler[7]\n      ")
    assert (
        "Error status code 'FailedPrecondition' with detail 'Can't access cart storage. x' raised."
        in dotnet
    )
    get_cart = next(o for o in shop.CART.operations if o.name.endswith("GetCart"))
    assert lines(shop.CART, get_cart.info_logs[0], session="u-1") == [
        "GetCartAsync called with userId=u-1"
    ]
    assert lines(shop.CART, shop.CART.probe_logs[0]) == ["Checking CartService Health"]
    charge = next(o for o in shop.PAYMENT.operations if o.name.endswith("Charge"))
    invoked, processed = lines(shop.PAYMENT, charge.info_logs[0])
    assert json.loads(invoked)["message"].startswith(
        'PaymentService#Charge invoked with request {"amount":{"currency_code":"USD"'
    )
    assert json.loads(processed)["name"] == "paymentservice-charge"
    assert "visa ending 0454     Amount: USD" in json.loads(processed)["message"]
    (ad,) = lines(shop.AD, shop.AD.operations[0].info_logs[0])
    assert json.loads(ad)["loggerName"] == "hipstershop.AdService"
    assert json.loads(ad)["message"].startswith("received ad request (context_words=[")
    (redis,) = lines(shop.REDIS, shop.REDIS.periodic_logs[0][1])
    assert redis.startswith("1:M 11 Jul 2026 03:10:29.123 * ")
    (rec,) = lines(shop.RECOMMENDATION, shop.RECOMMENDATION.operations[0].info_logs[0])
    assert json.loads(rec)["message"].startswith("[Recv ListRecommendations] product_ids=['")


def test_reference_rates_match_the_traffic_model() -> None:
    """Each profile's reference_rps is the rate its service gets at 40 rps into frontend."""
    cluster, _traffic = shop_world(seed=1)
    cluster.advance(10)
    for name, d in by_kind("Deployment").items():
        profile = shop.PROFILES[d["spec"]["template"]["spec"]["containers"][0]["image"]]
        if name == "loadgenerator":
            continue
        (prt,) = runtime_of(cluster, name)
        assert prt.rps == pytest.approx(profile.reference_rps, rel=0.15), name
        c = next(iter(prt.containers.values()))
        assert c.cpu == pytest.approx(profile.cpu, rel=0.25), name


def test_parse_address_forms() -> None:
    assert parse_address("redis-cart:6379") == ("redis-cart", 6379)
    assert parse_address("frontend") == ("frontend", None)
    assert parse_address("postgres://app:pw@db.data.svc:5432/app") == ("db.data.svc", 5432)
    assert parse_address("http://api:8080/v1") == ("api", 8080)
