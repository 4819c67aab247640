"""The built-in `shop` app: Google's Online Boutique v0.10.6, as its release manifest ships it.

`manifests` returns every object of `release/kubernetes-manifests.yaml` (the
Namespace is the caller's), field for field as shared/reference/online-boutique.md
lists them; `register_behaviors` tells the twin what each image does: the RPCs
each route and method makes (from the services' source), CPU and memory at
the reference load, own service time, and the log lines each runtime prints
(logrus, pino, python-json-logger, the .NET console, log4j2, Redis, Locust).

The reference load is the twin's default traffic, 40 requests per second into
frontend, mixed as the load generator's tasks mix them; `reference_rps` of
each profile is the rate its service receives at that load, so CPU scales
from there. Log templates follow twin/traffic_logs.py (JSON records carry
structured fields; `{{`/`}}` are literal braces).
"""

from __future__ import annotations

import json
from typing import Any

from twin.behavior import BehaviorProfile, BehaviorRegistry, Call, Operation

APP = "shop"
#: The Service the load enters at (the load generator's FRONTEND_ADDR).
ENTRY = "frontend"

REGISTRY = "us-central1-docker.pkg.dev/online-boutique-ci/microservices-demo"
VERSION = "v0.10.6"
REDIS_IMAGE = "redis:alpine"
BUSYBOX_IMAGE = (
    "busybox:1.38.0@sha256:fd8d9aa63ba2f0982b5304e1ee8d3b90a210bc1ffb5314d980eb6962f1a9715d"
)

Obj = dict[str, Any]

Mi = 2**20


def image(service: str) -> str:
    """The release image of one of the app's first-party services."""
    return f"{REGISTRY}/{service}:{VERSION}"


# -- manifests ------------------------------------------------------------------------------

_POD_SECURITY = {"fsGroup": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "runAsUser": 1000}


def _container_security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
    }


def _env(pairs: list[tuple[str, str]]) -> list[Obj]:
    return [{"name": k, "value": v} for k, v in pairs]


def _resources(req_cpu: str, req_mem: str, lim_cpu: str, lim_mem: str) -> Obj:
    return {
        "requests": {"cpu": req_cpu, "memory": req_mem},
        "limits": {"cpu": lim_cpu, "memory": lim_mem},
    }


def _grpc_probe(port: int, *, initial: int | None = None, period: int | None = None) -> Obj:
    probe: Obj = {}
    if initial is not None:
        probe["initialDelaySeconds"] = initial
    if period is not None:
        probe["periodSeconds"] = period
    probe["grpc"] = {"port": port}
    return probe


def _deployment(
    name: str,
    namespace: str,
    containers: list[Obj],
    *,
    service_account: bool = True,
    grace: int | None = None,
    annotations: dict[str, str] | None = None,
    replicas: int | None = None,
    pod_extra: Obj | None = None,
) -> Obj:
    template_meta: Obj = {"labels": {"app": name}}
    if annotations:
        template_meta["annotations"] = dict(annotations)
    pod: Obj = {}
    if service_account:
        pod["serviceAccountName"] = name
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    for key, value in (pod_extra or {}).items():
        if key not in ("initContainers", "volumes"):
            pod[key] = value
    pod["securityContext"] = dict(_POD_SECURITY)
    if pod_extra and "initContainers" in pod_extra:
        pod["initContainers"] = pod_extra["initContainers"]
    pod["containers"] = containers
    if pod_extra and "volumes" in pod_extra:
        pod["volumes"] = pod_extra["volumes"]
    spec: Obj = {"selector": {"matchLabels": {"app": name}}}
    if replicas is not None:
        spec["replicas"] = replicas
    spec["template"] = {"metadata": template_meta, "spec": pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": spec,
    }


def _service(
    name: str,
    namespace: str,
    port: int,
    target: int,
    port_name: str,
    *,
    app: str | None = None,
    type_: str = "ClusterIP",
) -> Obj:
    app = app or name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {
            "type": type_,
            "selector": {"app": app},
            "ports": [{"name": port_name, "port": port, "targetPort": target}],
        },
    }


def _service_account(name: str, namespace: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }


def _server(
    service: str,
    port: int,
    env: list[tuple[str, str]],
    resources: Obj,
    readiness: Obj,
    liveness: Obj,
    *,
    port_name: str | None = None,
) -> Obj:
    container_port: Obj = {"containerPort": port}
    if port_name:
        container_port = {"name": port_name, "containerPort": port}
    container: Obj = {
        "name": "server",
        "securityContext": _container_security(),
        "image": image(service),
        "ports": [container_port],
    }
    if env:
        container["env"] = _env(env)
    container["resources"] = resources
    container["readinessProbe"] = readiness
    container["livenessProbe"] = liveness
    return container


_FRONTEND_CHECK = """MAX_RETRIES=12
RETRY_INTERVAL=10
for i in $(seq 1 $MAX_RETRIES); do
  echo "Attempt $i: Pinging frontend: ${FRONTEND_ADDR}..."
  STATUSCODE=$(wget --server-response http://${FRONTEND_ADDR} 2>&1 | awk '/^  HTTP/{print $2}')
  if [ $STATUSCODE -eq 200 ]; then
      echo "Frontend is reachable."
      exit 0
  fi
  echo "Error: Could not reach frontend - Status code: ${STATUSCODE}"
  sleep $RETRY_INTERVAL
done
echo "Failed to reach frontend after $MAX_RETRIES attempts."
exit 1
"""

_FRONTEND_ENV = [
    ("PORT", "8080"),
    ("PRODUCT_CATALOG_SERVICE_ADDR", "productcatalogservice:3550"),
    ("CURRENCY_SERVICE_ADDR", "currencyservice:7000"),
    ("CART_SERVICE_ADDR", "cartservice:7070"),
    ("RECOMMENDATION_SERVICE_ADDR", "recommendationservice:8080"),
    ("SHIPPING_SERVICE_ADDR", "shippingservice:50051"),
    ("CHECKOUT_SERVICE_ADDR", "checkoutservice:5050"),
    ("AD_SERVICE_ADDR", "adservice:9555"),
    ("SHOPPING_ASSISTANT_SERVICE_ADDR", "shoppingassistantservice:80"),
    ("ENABLE_PROFILER", "0"),
]

_CHECKOUT_ENV = [
    ("PORT", "5050"),
    ("PRODUCT_CATALOG_SERVICE_ADDR", "productcatalogservice:3550"),
    ("SHIPPING_SERVICE_ADDR", "shippingservice:50051"),
    ("PAYMENT_SERVICE_ADDR", "paymentservice:50051"),
    ("EMAIL_SERVICE_ADDR", "emailservice:5000"),
    ("CURRENCY_SERVICE_ADDR", "currencyservice:7000"),
    ("CART_SERVICE_ADDR", "cartservice:7070"),
]


def manifests(namespace: str = "shop") -> list[Obj]:
    """Every object of the v0.10.6 release manifest, in its order, in `namespace`."""
    ns = namespace
    frontend_probe_header = {"name": "Cookie", "value": "shop_session-id=x-readiness-probe"}
    frontend = _deployment(
        "frontend",
        ns,
        [
            {
                "name": "server",
                "securityContext": _container_security(),
                "image": image("frontend"),
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {
                    "initialDelaySeconds": 10,
                    "httpGet": {
                        "path": "/_healthz",
                        "port": 8080,
                        "httpHeaders": [frontend_probe_header],
                    },
                },
                "livenessProbe": {
                    "initialDelaySeconds": 10,
                    "httpGet": {
                        "path": "/_healthz",
                        "port": 8080,
                        "httpHeaders": [
                            {"name": "Cookie", "value": "shop_session-id=x-liveness-probe"}
                        ],
                    },
                },
                "env": _env(_FRONTEND_ENV),
                "resources": _resources("100m", "64Mi", "200m", "128Mi"),
            }
        ],
        annotations={"sidecar.istio.io/rewriteAppHTTPProbers": "true"},
    )
    adservice = _deployment(
        "adservice",
        ns,
        [
            _server(
                "adservice",
                9555,
                [("PORT", "9555")],
                _resources("200m", "180Mi", "300m", "300Mi"),
                _grpc_probe(9555, initial=20, period=15),
                _grpc_probe(9555, initial=20, period=15),
            )
        ],
        grace=5,
    )
    currency = _deployment(
        "currencyservice",
        ns,
        [
            _server(
                "currencyservice",
                7000,
                [("PORT", "7000"), ("DISABLE_PROFILER", "1")],
                _resources("100m", "64Mi", "200m", "128Mi"),
                _grpc_probe(7000),
                _grpc_probe(7000),
                port_name="grpc",
            )
        ],
        grace=5,
    )
    cart = _deployment(
        "cartservice",
        ns,
        [
            _server(
                "cartservice",
                7070,
                [("REDIS_ADDR", "redis-cart:6379")],
                _resources("200m", "64Mi", "300m", "128Mi"),
                _grpc_probe(7070, initial=15),
                _grpc_probe(7070, initial=15, period=10),
            )
        ],
        grace=5,
    )
    redis = _deployment(
        "redis-cart",
        ns,
        [
            {
                "name": "redis",
                "securityContext": _container_security(),
                "image": REDIS_IMAGE,
                "ports": [{"containerPort": 6379}],
                "readinessProbe": {"periodSeconds": 5, "tcpSocket": {"port": 6379}},
                "livenessProbe": {"periodSeconds": 5, "tcpSocket": {"port": 6379}},
                "volumeMounts": [{"mountPath": "/data", "name": "redis-data"}],
                "resources": {
                    "limits": {"memory": "256Mi", "cpu": "125m"},
                    "requests": {"cpu": "70m", "memory": "200Mi"},
                },
            }
        ],
        service_account=False,
        pod_extra={"volumes": [{"name": "redis-data", "emptyDir": {}}]},
    )
    loadgenerator = _deployment(
        "loadgenerator",
        ns,
        [
            {
                "name": "main",
                "securityContext": _container_security(),
                "image": image("loadgenerator"),
                "env": _env([("FRONTEND_ADDR", "frontend:80"), ("USERS", "10"), ("RATE", "1")]),
                "resources": _resources("300m", "256Mi", "500m", "512Mi"),
            }
        ],
        grace=5,
        replicas=1,
        annotations={"sidecar.istio.io/rewriteAppHTTPProbers": "true"},
        pod_extra={
            "restartPolicy": "Always",
            "initContainers": [
                {
                    "command": ["/bin/sh", "-exc", _FRONTEND_CHECK],
                    "name": "frontend-check",
                    "securityContext": _container_security(),
                    "image": BUSYBOX_IMAGE,
                    "env": _env([("FRONTEND_ADDR", "frontend:80")]),
                }
            ],
        },
    )
    recommendation = _deployment(
        "recommendationservice",
        ns,
        [
            _server(
                "recommendationservice",
                8080,
                [
                    ("PORT", "8080"),
                    ("PRODUCT_CATALOG_SERVICE_ADDR", "productcatalogservice:3550"),
                    ("DISABLE_PROFILER", "1"),
                ],
                _resources("100m", "220Mi", "200m", "450Mi"),
                _grpc_probe(8080, period=5),
                _grpc_probe(8080, period=5),
            )
        ],
        grace=5,
    )
    checkout = _deployment(
        "checkoutservice",
        ns,
        [
            _server(
                "checkoutservice",
                5050,
                _CHECKOUT_ENV,
                _resources("100m", "64Mi", "200m", "128Mi"),
                _grpc_probe(5050),
                _grpc_probe(5050),
            )
        ],
    )
    email = _deployment(
        "emailservice",
        ns,
        [
            _server(
                "emailservice",
                8080,
                [("PORT", "8080"), ("DISABLE_PROFILER", "1")],
                _resources("100m", "64Mi", "200m", "128Mi"),
                _grpc_probe(8080, period=5),
                _grpc_probe(8080, period=5),
            )
        ],
        grace=5,
    )
    payment = _deployment(
        "paymentservice",
        ns,
        [
            _server(
                "paymentservice",
                50051,
                [("PORT", "50051"), ("DISABLE_PROFILER", "1")],
                _resources("100m", "64Mi", "200m", "128Mi"),
                _grpc_probe(50051),
                _grpc_probe(50051),
            )
        ],
        grace=5,
    )
    shipping = _deployment(
        "shippingservice",
        ns,
        [
            _server(
                "shippingservice",
                50051,
                [("PORT", "50051"), ("DISABLE_PROFILER", "1")],
                _resources("100m", "64Mi", "200m", "128Mi"),
                _grpc_probe(50051, period=5),
                _grpc_probe(50051),
            )
        ],
    )
    catalog = _deployment(
        "productcatalogservice",
        ns,
        [
            _server(
                "productcatalogservice",
                3550,
                [("PORT", "3550"), ("DISABLE_PROFILER", "1")],
                _resources("100m", "64Mi", "200m", "128Mi"),
                _grpc_probe(3550),
                _grpc_probe(3550),
            )
        ],
        grace=5,
    )
    return [
        frontend,
        _service("frontend", ns, 80, 8080, "http"),
        _service("frontend-external", ns, 80, 8080, "http", app="frontend", type_="LoadBalancer"),
        _service_account("frontend", ns),
        adservice,
        _service("adservice", ns, 9555, 9555, "grpc"),
        _service_account("adservice", ns),
        currency,
        _service("currencyservice", ns, 7000, 7000, "grpc"),
        _service_account("currencyservice", ns),
        cart,
        _service("cartservice", ns, 7070, 7070, "grpc"),
        _service_account("cartservice", ns),
        redis,
        _service("redis-cart", ns, 6379, 6379, "tcp-redis"),
        loadgenerator,
        _service_account("loadgenerator", ns),
        recommendation,
        _service("recommendationservice", ns, 8080, 8080, "grpc"),
        _service_account("recommendationservice", ns),
        checkout,
        _service("checkoutservice", ns, 5050, 5050, "grpc"),
        _service_account("checkoutservice", ns),
        email,
        _service("emailservice", ns, 5000, 8080, "grpc"),
        _service_account("emailservice", ns),
        payment,
        _service("paymentservice", ns, 50051, 50051, "grpc"),
        _service_account("paymentservice", ns),
        shipping,
        _service("shippingservice", ns, 50051, 50051, "grpc"),
        _service_account("shippingservice", ns),
        catalog,
        _service("productcatalogservice", ns, 3550, 3550, "grpc"),
        _service_account("productcatalogservice", ns),
    ]


# -- behaviours -----------------------------------------------------------------------------


def _rec(message: str, **fields: Any) -> Obj:
    """One log record of a template list; `severity`, `logger` and `raw` are reserved keys."""
    return {"message": message, **fields}


def _lines(*records: Obj | str) -> str:
    """A template of several log records printed for one request."""
    return json.dumps(list(records))


def _one(record: Obj) -> str:
    return json.dumps(record)


#: Products of the catalog (the load generator picks among them).
PRODUCTS = (
    "0PUK6V6EV0",
    "1YMWWN1N4O",
    "2ZYFJ3GM2N",
    "66VCHSJNUP",
    "6E92ZMYYFZ",
    "9SIQT8TOJO",
    "L9ECAV7KIM",
    "LS4PSXUNUM",
    "OLJCESPC7Z",
)
CURRENCIES = ("EUR", "USD", "JPY", "CAD", "GBP", "TRY")

#: Values that placeholders in the templates choose from (`|`-separated).
_EXTRA = {
    "id": "|".join(PRODUCTS),
    "currency": "|".join(CURRENCIES),
    "quantity": "|".join(str(q) for q in range(1, 11)),
    "email": "|".join(
        (
            "someone@example.com",
            "jessica06@example.org",
            "hwilliams@example.net",
            "mcdonaldbrian@example.com",
            "tammy52@example.org",
        )
    ),
    "product_ids": "|".join(
        (
            "['L9ECAV7KIM', '2ZYFJ3GM2N', '0PUK6V6EV0', '66VCHSJNUP', 'OLJCESPC7Z']",
            "['1YMWWN1N4O', '9SIQT8TOJO', 'LS4PSXUNUM', '6E92ZMYYFZ', '0PUK6V6EV0']",
            "['66VCHSJNUP', 'OLJCESPC7Z', 'L9ECAV7KIM', '1YMWWN1N4O', '2ZYFJ3GM2N']",
            "['6E92ZMYYFZ', 'LS4PSXUNUM', '9SIQT8TOJO', 'OLJCESPC7Z', '1YMWWN1N4O']",
        )
    ),
    "context_words": "|".join(("", "clothing, tops", "accessories", "kitchen", "footwear")),
    "amount": "|".join(("USD12.990000000", "USD104.979999999", "USD67.990000000")),
}

# Frontend (Go, logrus at Debug): the logHandler middleware wraps every request
# in "request started" / "request complete" with the request's fields.
_REQ = {
    "http.req.id": "{req_id}",
    "http.req.method": "{method}",
    "http.req.path": "{path}",
    "session": "{session}",
}


def _started() -> Obj:
    return _rec("request started", severity="debug", **_REQ)


def _complete(status: int, size: int) -> Obj:
    return _rec(
        "request complete",
        severity="debug",
        **{
            "http.resp.bytes": size,
            "http.resp.status": status,
            "http.resp.took_ms": "{latency_ms}",
        },
        **_REQ,
    )


_FRONTEND_OPERATIONS = (
    # Weights are requests, not tasks: every addToCart and checkout task first
    # GETs a product page, and checkout also POSTs /cart (locustfile.py).
    Operation(
        "index",
        1,
        method="GET",
        path="/",
        latency_ms=9.0,
        info_logs=(
            _lines(
                _started(),
                _rec("home", severity="info", currency="{currency}", **_REQ),
                _rec("env platform is either empty or invalid", raw=True),
                _rec("ENV_PLATFORM is: local", severity="debug", **_REQ),
                _complete(200, 10_234),
            ),
        ),
    ),
    Operation(
        "setCurrency",
        2,
        method="POST",
        path="/setCurrency",
        latency_ms=1.5,
        info_logs=(
            _lines(
                _started(),
                _rec(
                    "setting currency",
                    severity="debug",
                    **{"curr.new": "{currency}", "curr.old": "USD"},
                    **_REQ,
                ),
                _complete(302, 0),
            ),
        ),
    ),
    Operation(
        "browseProduct",
        13,
        method="GET",
        path="/product/{id}",
        latency_ms=6.0,
        info_logs=(
            _lines(
                _started(),
                _rec(
                    "serving product page",
                    severity="debug",
                    currency="{currency}",
                    id="{id}",
                    **_REQ,
                ),
                _complete(200, 8_112),
            ),
        ),
    ),
    Operation(
        "addToCart",
        3,
        method="POST",
        path="/cart",
        latency_ms=2.0,
        info_logs=(
            _lines(
                _started(),
                _rec(
                    "adding to cart",
                    severity="debug",
                    product="{id}",
                    quantity="{quantity}",
                    **_REQ,
                ),
                _complete(302, 0),
            ),
        ),
    ),
    Operation(
        "viewCart",
        3,
        method="GET",
        path="/cart",
        latency_ms=6.0,
        info_logs=(
            _lines(
                _started(),
                _rec("view user cart", severity="debug", **_REQ),
                _complete(200, 9_377),
            ),
        ),
    ),
    Operation(
        "checkout",
        1,
        method="POST",
        path="/cart/checkout",
        latency_ms=5.0,
        info_logs=(
            _lines(
                _started(),
                _rec("placing order", severity="debug", **_REQ),
                _rec("order placed", severity="info", order="{uuid}", **_REQ),
                _complete(200, 7_489),
            ),
        ),
    ),
)

_ADS_WARNING = _one(_rec("failed to retrieve ads", severity="warning", error="{cause}", **_REQ))
_RECS_WARNING = _one(
    _rec("failed to get product recommendations", severity="warning", error="{cause}", **_REQ)
)


def _fe(
    service: str,
    operation: str,
    operations: tuple[str, ...],
    env: str,
    per_request: float = 1,
    **kw: Any,
) -> Call:
    return Call(
        service,
        per_request,
        operations=operations,
        operation=f"hipstershop.{operation}",
        address_env=env,
        **kw,
    )


_CATALOG_ENV = "PRODUCT_CATALOG_SERVICE_ADDR"
_CURRENCY_ENV = "CURRENCY_SERVICE_ADDR"

# In the order the handlers make them (handlers.go): a request that fails at a hard
# dependency makes none of the calls after it.
_FRONTEND_CALLS = (
    _fe(
        "productcatalogservice",
        "ProductCatalogService/GetProduct",
        ("browseProduct", "addToCart"),
        _CATALOG_ENV,
        error="could not retrieve product: {cause}",
    ),
    _fe(
        "currencyservice",
        "CurrencyService/GetSupportedCurrencies",
        ("index", "browseProduct", "viewCart"),
        _CURRENCY_ENV,
        error="could not retrieve currencies: {cause}",
    ),
    _fe(
        "productcatalogservice",
        "ProductCatalogService/ListProducts",
        ("index",),
        _CATALOG_ENV,
        error="could not retrieve products: {cause}",
    ),
    _fe(
        "cartservice",
        "CartService/GetCart",
        ("index", "browseProduct", "viewCart"),
        "CART_SERVICE_ADDR",
        error="could not retrieve cart: {cause}",
    ),
    _fe(
        "currencyservice",
        "CurrencyService/Convert",
        ("index",),
        _CURRENCY_ENV,
        len(PRODUCTS),
        error="failed to do currency conversion for product {id}: {cause}",
    ),
    _fe(
        "currencyservice",
        "CurrencyService/Convert",
        ("browseProduct",),
        _CURRENCY_ENV,
        error="failed to convert currency: {cause}",
    ),
    _fe(
        "cartservice",
        "CartService/AddItem",
        ("addToCart",),
        "CART_SERVICE_ADDR",
        error="failed to add to cart: {cause}",
    ),
    _fe(
        "checkoutservice",
        "CheckoutService/PlaceOrder",
        ("checkout",),
        "CHECKOUT_SERVICE_ADDR",
        error="failed to complete the order: {cause}",
    ),
    # getRecommendations, then a GetProduct per recommended product (up to 5; 4 shown).
    _fe(
        "recommendationservice",
        "RecommendationService/ListRecommendations",
        ("browseProduct", "viewCart"),
        "RECOMMENDATION_SERVICE_ADDR",
        soft=True,
        warning=_RECS_WARNING,
    ),
    _fe(
        "productcatalogservice",
        "ProductCatalogService/GetProduct",
        ("browseProduct", "viewCart"),
        _CATALOG_ENV,
        4,
        soft=True,
        error="failed to get recommended product info (#{id}): {cause}",
        warning=_RECS_WARNING,
    ),
    # After an order: `recommendations, _ := fe.getRecommendations(...)`, errors ignored.
    _fe(
        "recommendationservice",
        "RecommendationService/ListRecommendations",
        ("checkout",),
        "RECOMMENDATION_SERVICE_ADDR",
        soft=True,
    ),
    _fe(
        "productcatalogservice",
        "ProductCatalogService/GetProduct",
        ("checkout",),
        _CATALOG_ENV,
        4,
        soft=True,
    ),
    _fe(
        "currencyservice",
        "CurrencyService/GetSupportedCurrencies",
        ("checkout",),
        _CURRENCY_ENV,
        error="could not retrieve currencies: {cause}",
    ),
    # chooseAd: context.WithTimeout(ctx, time.Millisecond*100); errors only logged.
    _fe(
        "adservice",
        "AdService/GetAds",
        ("index", "browseProduct"),
        "AD_SERVICE_ADDR",
        soft=True,
        error="failed to get ads: {cause}",
        warning=_ADS_WARNING,
        timeout_ms=100.0,
    ),
    # viewCartHandler, after the recommendations: the quote, then each item's price.
    _fe(
        "shippingservice",
        "ShippingService/GetQuote",
        ("viewCart",),
        "SHIPPING_SERVICE_ADDR",
        error="failed to get shipping quote: {cause}",
    ),
    _fe(
        "currencyservice",
        "CurrencyService/Convert",
        ("viewCart",),
        _CURRENCY_ENV,
        error=(
            "failed to get shipping quote: failed to convert currency for shipping cost: {cause}"
        ),
    ),
    _fe(
        "productcatalogservice",
        "ProductCatalogService/GetProduct",
        ("viewCart",),
        _CATALOG_ENV,
        3,
        error="could not retrieve product #{id}: {cause}",
    ),
    _fe(
        "currencyservice",
        "CurrencyService/Convert",
        ("viewCart",),
        _CURRENCY_ENV,
        3,
        error="could not convert currency for product #{id}: {cause}",
    ),
)

FRONTEND = BehaviorProfile(
    cpu=0.085,
    memory=38 * Mi,
    latency_ms=5.0,
    calls=_FRONTEND_CALLS,
    operations=_FRONTEND_OPERATIONS,
    reference_rps=40.0,
    error_logs=(
        _lines(
            _started(),
            _rec("request error", severity="error", error="{cause}", **_REQ),
            _complete(500, 2_304),
        ),
    ),
    startup_logs=("Tracing disabled.", "Profiling disabled.", "starting server on :{port}"),
    # mustMapEnv panics naming the variable ({key}: the missing one).
    on_start_failure=(
        'panic: environment variable "{key}" not set',
        "",
        "goroutine 1 [running]:",
        "main.mustMapEnv(...)",
        "\t/src/main.go:220",
    ),
    required_env=(
        "PRODUCT_CATALOG_SERVICE_ADDR",
        "CURRENCY_SERVICE_ADDR",
        "CART_SERVICE_ADDR",
        "RECOMMENDATION_SERVICE_ADDR",
        "SHIPPING_SERVICE_ADDR",
        "CHECKOUT_SERVICE_ADDR",
        "AD_SERVICE_ADDR",
        "SHOPPING_ASSISTANT_SERVICE_ADDR",
    ),
    startup_seconds=2.0,
    log_style="logrus",
    protocol="http",
    http_paths=(
        "/",
        "/_healthz",
        "/product/",
        "/cart",
        "/cart/empty",
        "/cart/checkout",
        "/setCurrency",
        "/logout",
        "/assistant",
        "/static/",
        "/robots.txt",
        "/product-meta/",
        "/bot",
    ),
    port=8080,
    extra=dict(_EXTRA),
    error_code="500",
)


def _grpc_op(
    service: str, method: str, weight: float = 1.0, *logs: str, ms: float = 0.0
) -> Operation:
    return Operation(
        f"hipstershop.{service}/{method}", weight, latency_ms=ms, info_logs=tuple(logs)
    )


CHECKOUT = BehaviorProfile(
    cpu=0.012,
    memory=21 * Mi,
    latency_ms=3.0,
    operations=(
        _grpc_op(
            "CheckoutService",
            "PlaceOrder",
            1.0,
            _lines(
                '[PlaceOrder] user_id="{session}" user_currency="{currency}"',
                "payment went through (transaction_id: {uuid})",
                'order confirmation email sent to "{email}"',
            ),
        ),
    ),
    calls=(
        Call(
            "cartservice",
            1,
            operation="hipstershop.CartService/GetCart",
            address_env="CART_SERVICE_ADDR",
            error="cart failure: failed to get user cart during checkout: {cause}",
        ),
        Call(
            "productcatalogservice",
            3,
            operation="hipstershop.ProductCatalogService/GetProduct",
            address_env="PRODUCT_CATALOG_SERVICE_ADDR",
            # prepOrderItems drops the underlying error.
            error='failed to prepare order: failed to get product #"{id}"',
        ),
        Call(
            "currencyservice",
            3,
            operation="hipstershop.CurrencyService/Convert",
            address_env="CURRENCY_SERVICE_ADDR",
            error='failed to prepare order: failed to convert price of "{id}" to {currency}',
        ),
        Call(
            "shippingservice",
            1,
            operation="hipstershop.ShippingService/GetQuote",
            address_env="SHIPPING_SERVICE_ADDR",
            error="shipping quote failure: failed to get shipping quote: {cause}",
        ),
        Call(
            "currencyservice",
            1,
            operation="hipstershop.CurrencyService/Convert",
            address_env="CURRENCY_SERVICE_ADDR",
            error=(
                "failed to convert shipping cost to currency: failed to convert currency: {cause}"
            ),
        ),
        Call(
            "paymentservice",
            1,
            operation="hipstershop.PaymentService/Charge",
            address_env="PAYMENT_SERVICE_ADDR",
            error="failed to charge card: could not charge the card: {cause}",
        ),
        Call(
            "shippingservice",
            1,
            operation="hipstershop.ShippingService/ShipOrder",
            address_env="SHIPPING_SERVICE_ADDR",
            error="shipping error: shipment failed: {cause}",
            code="Unavailable",
        ),
        # `_ = cs.emptyUserCart(...)`: the result is ignored.
        Call(
            "cartservice",
            1,
            soft=True,
            operation="hipstershop.CartService/EmptyCart",
            address_env="CART_SERVICE_ADDR",
        ),
        Call(
            "emailservice",
            1,
            soft=True,
            operation="hipstershop.EmailService/SendOrderConfirmation",
            address_env="EMAIL_SERVICE_ADDR",
            warning='failed to send order confirmation to "{email}": {cause}',
        ),
    ),
    reference_rps=1.74,
    # PlaceOrder logs its first line, then returns errors without logging them.
    error_logs=(
        _one(_rec('[PlaceOrder] user_id="{session}" user_currency="{currency}"', severity="info")),
    ),
    startup_logs=(
        "Tracing disabled.",
        "Profiling disabled.",
        "service config: &{{UnimplementedCheckoutServiceServer:{{}} "
        "productCatalogSvcAddr:{env:PRODUCT_CATALOG_SERVICE_ADDR} "
        "productCatalogSvcConn:0xc0001c2008 "
        "cartSvcAddr:{env:CART_SERVICE_ADDR} cartSvcConn:0xc0001c2408 "
        "currencySvcAddr:{env:CURRENCY_SERVICE_ADDR} currencySvcConn:0xc0001c2808 "
        "shippingSvcAddr:{env:SHIPPING_SERVICE_ADDR} shippingSvcConn:0xc0001c2c08 "
        "emailSvcAddr:{env:EMAIL_SERVICE_ADDR} emailSvcConn:0xc0001c3008 "
        "paymentSvcAddr:{env:PAYMENT_SERVICE_ADDR} paymentSvcConn:0xc0001c3408}}",
        'starting to listen on tcp: "[::]:{port}"',
    ),
    on_start_failure=('panic: environment variable "{key}" not set',),
    required_env=tuple(k for k, _ in _CHECKOUT_ENV if k != "PORT"),
    startup_seconds=1.0,
    log_style="logrus",
    protocol="grpc",
    port=5050,
    extra=dict(_EXTRA),
    error_code="Internal",
)

# RedisCartStore wraps every store exception: `Can't access cart storage. {ex}`.
_CART_STORAGE_ERROR = (
    "Can't access cart storage. StackExchange.Redis.RedisConnectionException: {cause}"
)

CART = BehaviorProfile(
    cpu=0.1,
    memory=64 * Mi,
    latency_ms=2.0,
    operations=(
        _grpc_op(
            "CartService",
            "GetCart",
            31.3,
            _one(_rec("GetCartAsync called with userId={session}", raw=True)),
        ),
        _grpc_op(
            "CartService",
            "AddItem",
            5.2,
            _one(
                _rec(
                    "AddItemAsync called with userId={session}, productId={id}, "
                    "quantity={quantity}",
                    raw=True,
                )
            ),
        ),
        _grpc_op(
            "CartService",
            "EmptyCart",
            1.7,
            _one(_rec("EmptyCartAsync called with userId={session}", raw=True)),
        ),
    ),
    calls=(
        Call(
            "redis-cart",
            1,
            operations=("hipstershop.CartService/GetCart", "hipstershop.CartService/AddItem"),
            operation="HMGET",
            address_env="REDIS_ADDR",
            error=_CART_STORAGE_ERROR,
            code="FailedPrecondition",
        ),
        Call(
            "redis-cart",
            1,
            operations=("hipstershop.CartService/AddItem", "hipstershop.CartService/EmptyCart"),
            operation="HSET",
            address_env="REDIS_ADDR",
            error=_CART_STORAGE_ERROR,
            code="FailedPrecondition",
        ),
    ),
    reference_rps=38.3,
    # ASP.NET Core gRPC logs a thrown RpcException at Information.
    error_logs=(
        _one(
            _rec(
                "Error status code '{code}' with detail '{cause}' raised.",
                severity="info",
                logger="Grpc.AspNetCore.Server.ServerCallHandler[7]",
            )
        ),
    ),
    startup_logs=(
        _one(_rec("Now listening on: http://[::]:{port}", logger="Microsoft.Hosting.Lifetime[14]")),
        "Application started. Press Ctrl+C to shut down.",
        "Hosting environment: Production",
        "Content root path: /app",
    ),
    probe_logs=(_one(_rec("Checking CartService Health", raw=True)),),
    startup_seconds=4.0,
    log_style="dotnet",
    protocol="grpc",
    logger="Microsoft.Hosting.Lifetime[0]",
    port=7070,
    extra=dict(_EXTRA),
    error_code="FailedPrecondition",
)

REDIS = BehaviorProfile(
    cpu=0.012,
    memory=9 * Mi,
    latency_ms=0.3,
    operations=(Operation("HMGET", 33.0, latency_ms=0.25), Operation("HSET", 7.0)),
    reference_rps=43.5,
    error_logs=(),
    startup_logs=(
        "oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
        "Redis version=8.2.1, bits=64, commit=00000000, modified=0, pid=1, just started",
        "Warning: no config file specified, using the default config. "
        "In order to specify a config file use redis-server /path/to/redis.conf",
        "monotonic clock: POSIX clock_gettime",
        "Running mode=standalone, port=6379.",
        "Server initialized",
        "Ready to accept connections tcp",
    ),
    periodic_logs=(
        (300.0, "100 changes in 300 seconds. Saving..."),
        (300.0, "Background saving started by pid 23"),
        (300.0, "Background saving terminated with success"),
    ),
    startup_seconds=0.5,
    log_style="redis",
    protocol="redis",
    port=6379,
    http_paths=(),
)

CURRENCY = BehaviorProfile(
    cpu=0.09,
    memory=52 * Mi,
    latency_ms=1.2,
    operations=(
        _grpc_op(
            "CurrencyService", "GetSupportedCurrencies", 31.3, "Getting supported currencies..."
        ),
        _grpc_op("CurrencyService", "Convert", 65.8, "conversion request successful"),
    ),
    reference_rps=97.0,
    error_logs=("conversion request failed: {cause}",),
    startup_logs=(
        "Profiler disabled.",
        "Tracing disabled.",
        "Starting gRPC server on port 7000...",
        "CurrencyService gRPC server started on port 7000",
    ),
    startup_seconds=1.5,
    log_style="pino",
    protocol="grpc",
    logger="currencyservice-server",
    port=7000,
    error_code="Internal",
)

CATALOG = BehaviorProfile(
    cpu=0.06,
    memory=19 * Mi,
    latency_ms=0.6,
    operations=(
        _grpc_op("ProductCatalogService", "ListProducts", 31.3),
        _grpc_op("ProductCatalogService", "GetProduct", 190.0),
        _grpc_op("ProductCatalogService", "SearchProducts", 0.0),
    ),
    reference_rps=198.0,
    # Logs at Info: nothing per request.
    error_logs=(),
    startup_logs=(
        "Tracing disabled.",
        "Profiling disabled.",
        "starting grpc server at :3550",
        "loading catalog from local products.json file...",
        "successfully parsed product catalog json",
    ),
    startup_seconds=1.0,
    log_style="logrus",
    protocol="grpc",
    port=3550,
    error_code="NotFound",
)

RECOMMENDATION = BehaviorProfile(
    cpu=0.07,
    memory=68 * Mi,
    latency_ms=3.5,
    operations=(
        _grpc_op(
            "RecommendationService",
            "ListRecommendations",
            1.0,
            "[Recv ListRecommendations] product_ids={product_ids}",
        ),
    ),
    calls=(
        Call(
            "productcatalogservice",
            1,
            operation="hipstershop.ProductCatalogService/ListProducts",
            address_env="PRODUCT_CATALOG_SERVICE_ADDR",
            error="Exception calling application: {cause}",
            code="Unknown",
        ),
    ),
    reference_rps=29.6,
    # grpc's Python server logs the handler's exception through the root logger, with
    # the text it answers (the call's `error`: "Exception calling application: ...").
    error_logs=(_one(_rec("{cause}", raw=True)),),
    startup_logs=(
        "initializing recommendationservice",
        "Profiler disabled.",
        "Tracing disabled.",
        "product catalog address: productcatalogservice:3550",
        "listening on port: 8080",
    ),
    startup_seconds=2.0,
    log_style="python-json",
    protocol="grpc",
    logger="recommendationservice-server",
    port=8080,
    extra=dict(_EXTRA),
    error_code="Unknown",
)

AD = BehaviorProfile(
    cpu=0.08,
    memory=178 * Mi,
    latency_ms=1.8,
    operations=(
        _grpc_op(
            "AdService", "GetAds", 1.0, "received ad request (context_words=[{context_words}])"
        ),
    ),
    reference_rps=24.3,
    warning_logs=(_one(_rec("GetAds Failed with status {cause}", severity="warning")),),
    error_logs=(_one(_rec("GetAds Failed with status {cause}", severity="warning")),),
    startup_logs=(
        "AdService starting.",
        "Ad Service started, listening on 9555",
        "Stats enabled, but temporarily unavailable",
        "Tracing enabled but temporarily unavailable",
        "See https://github.com/GoogleCloudPlatform/microservices-demo/issues/422 for more info.",
    ),
    startup_seconds=8.0,
    log_style="log4j",
    protocol="grpc",
    logger="hipstershop.AdService",
    port=9555,
    extra=dict(_EXTRA),
    error_code="Internal",
)

_CHARGE_REQUEST = (
    '{{"amount":{{"currency_code":"USD","units":"104","nanos":979999999}},'
    '"credit_card":{{"credit_card_number":"4432-8015-6152-0454","credit_card_cvv":672,'
    '"credit_card_expiration_year":2039,"credit_card_expiration_month":1}}}}'
)

PAYMENT = BehaviorProfile(
    cpu=0.01,
    memory=48 * Mi,
    latency_ms=2.5,
    operations=(
        _grpc_op(
            "PaymentService",
            "Charge",
            1.0,
            _lines(
                f"PaymentService#Charge invoked with request {_CHARGE_REQUEST}",
                _rec(
                    "Transaction processed: visa ending 0454     Amount: {amount}",
                    logger="paymentservice-charge",
                ),
            ),
        ),
    ),
    reference_rps=1.74,
    error_logs=("{cause}",),
    startup_logs=(
        "Profiler disabled.",
        "Tracing disabled.",
        "PaymentService gRPC server started on port 50051",
    ),
    startup_seconds=1.5,
    log_style="pino",
    protocol="grpc",
    logger="paymentservice-server",
    port=50051,
    extra=dict(_EXTRA),
    error_code="Internal",
)

SHIPPING = BehaviorProfile(
    cpu=0.008,
    memory=15 * Mi,
    latency_ms=0.9,
    operations=(
        _grpc_op(
            "ShippingService",
            "GetQuote",
            7.0,
            _lines("[GetQuote] received request", "[GetQuote] completed request"),
        ),
        _grpc_op(
            "ShippingService",
            "ShipOrder",
            1.74,
            _lines("[ShipOrder] received request", "[ShipOrder] completed request"),
        ),
    ),
    reference_rps=8.7,
    error_logs=(),
    startup_logs=(
        "Tracing enabled, but temporarily unavailable",
        "See https://github.com/GoogleCloudPlatform/microservices-demo/issues/422 for more info.",
        "Profiling disabled.",
        "Stats enabled, but temporarily unavailable",
        "Shipping Service listening on port 50051",
    ),
    startup_seconds=1.0,
    log_style="logrus",
    protocol="grpc",
    port=50051,
    error_code="Internal",
)

EMAIL = BehaviorProfile(
    cpu=0.01,
    memory=41 * Mi,
    latency_ms=3.0,
    operations=(
        _grpc_op(
            "EmailService",
            "SendOrderConfirmation",
            1.0,
            "A request to send order confirmation email to {email} has been received.",
        ),
    ),
    reference_rps=1.74,
    error_logs=(_one(_rec("Exception calling application: {cause}", raw=True)),),
    startup_logs=(
        "starting the email service in dummy mode.",
        "Profiler disabled.",
        "Tracing disabled.",
        "listening on port: 8080",
    ),
    startup_seconds=2.0,
    log_style="python-json",
    protocol="grpc",
    logger="emailservice-server",
    port=8080,
    extra=dict(_EXTRA),
    error_code="Unknown",
)

LOADGENERATOR = BehaviorProfile(
    cpu=0.12,
    memory=92 * Mi,
    latency_ms=0.0,
    reference_rps=40.0,
    error_logs=(),
    startup_logs=(
        "Starting Locust 2.43.0",
        _one(
            _rec(
                "Ramping to {env:USERS} users at a rate of {env:RATE}.00 per second",
                logger="locust.runners",
            )
        ),
        _one(
            _rec(
                'All users spawned: {{"WebsiteUser": {env:USERS}}} ({env:USERS} total users)',
                logger="locust.runners",
            )
        ),
    ),
    startup_seconds=1.0,
    log_style="locust",
    protocol="http",
    logger="locust.main",
    port=8089,
    http_paths=(),
)

FRONTEND_CHECK = BehaviorProfile(
    cpu=0.001,
    memory=1 * Mi,
    latency_ms=0.0,
    error_logs=(),
    startup_logs=(
        "+ MAX_RETRIES=12",
        "+ RETRY_INTERVAL=10",
        "+ seq 1 12",
        "+ echo 'Attempt 1: Pinging frontend: {env:FRONTEND_ADDR}...'",
        "Attempt 1: Pinging frontend: {env:FRONTEND_ADDR}...",
        "+ wget --server-response http://{env:FRONTEND_ADDR}",
        "+ awk '/^  HTTP/{{print $2}}'",
        "+ STATUSCODE=200",
        "+ '[' 200 -eq 200 ]",
        "+ echo 'Frontend is reachable.'",
        "Frontend is reachable.",
        "+ exit 0",
    ),
    startup_seconds=1.0,
    log_style="plain",
    protocol="tcp",
    http_paths=(),
)

#: Image -> profile, for every image the release manifest runs.
PROFILES: dict[str, BehaviorProfile] = {
    image("frontend"): FRONTEND,
    image("checkoutservice"): CHECKOUT,
    image("cartservice"): CART,
    image("currencyservice"): CURRENCY,
    image("productcatalogservice"): CATALOG,
    image("recommendationservice"): RECOMMENDATION,
    image("adservice"): AD,
    image("paymentservice"): PAYMENT,
    image("shippingservice"): SHIPPING,
    image("emailservice"): EMAIL,
    image("loadgenerator"): LOADGENERATOR,
    REDIS_IMAGE: REDIS,
    BUSYBOX_IMAGE: FRONTEND_CHECK,
}


def register_behaviors(registry: BehaviorRegistry) -> None:
    """Register a behaviour profile for every image of the app."""
    for name, profile in PROFILES.items():
        registry.register(name, profile)
