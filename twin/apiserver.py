"""The twin's Kubernetes API server: the cluster over the real REST API, on loopback.

kubemedic talks to the twin through the official `kubernetes` client and an
operator can point kubectl at it; neither knows it is not a real cluster.
This module serves discovery, list/get/create/replace/patch/delete for every
registered kind (namespaced, cluster-scoped and all-namespace paths), label
and field selectors, watch, Table output for kubectl, the status, scale,
log, binding and eviction subresources, computed views (metrics.k8s.io from
the pod runtime; events.k8s.io Events and discovery.k8s.io EndpointSlices
from the core kinds that store them), and server-side dry-run on every
write. Every write goes through `Cluster.create/replace/delete` (so
admission applies) under the cluster lock, and is recorded in
`cluster.write_log`, refused and dry-run ones too.

It runs on aiohttp in a thread of its own (`serve_in_thread`); other parts
mount their own endpoints (telemetry, alerts) with `extra_routes`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

from twin import errors, tables
from twin.api_discovery import (
    AGGREGATED_KINDS,
    SERVER_VERSION,
    aggregated_content_type,
    aggregated_discovery,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
    openapi_v3_document,
    openapi_v3_root,
)
from twin.api_protobuf import ProtobufError
from twin.api_protobuf import decode as decode_protobuf
from twin.api_validation import (
    invalid,
    prepare_create,
    qualified_kind,
    validate_create,
    validate_update,
)
from twin.api_views import (
    EVENTS_GROUP,
    METRICS_GROUP,
    core_to_events_v1,
    endpoints_name_of_slice,
    endpoints_to_slice,
    events_v1_to_core,
    node_metrics,
    pod_metrics,
)
from twin.api_watch import TooOld, WatchHub, object_key
from twin.clock import parse_rfc3339, rfc3339
from twin.cluster import Cluster, WriteRecord
from twin.patch import (
    APPLY_PATCH,
    MERGE_PATCH,
    PATCH_TYPES,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
)
from twin.resources import ResourceType
from twin.selectors import (
    SelectorError,
    match_labels,
    parse_field_selector,
    parse_label_selector,
)
from twin.store import EventType, Obj
from twin.tables import BUILTIN_GROUPS, format_label_selector

log = logging.getLogger(__name__)

RouteInstaller = Callable[[web.Application], None]

JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
#: Without timeoutSeconds the API server ends a watch after 30 to 60 minutes.
DEFAULT_WATCH_SECONDS = 1800.0
_REDACTED = "<redacted>"
_APP_KEY: web.AppKey[ApiServer] = web.AppKey("twin_apiserver")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _not_found_path() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource")


def _unsupported_patch(builtin: bool) -> errors.ApiError:
    """415 for a patch type the resource does not take (custom resources: no strategic merge)."""
    accepted = ", ".join(t for t in PATCH_TYPES if builtin or t != STRATEGIC_MERGE_PATCH)
    return errors.ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{accepted}",
    )


def _unsupported_body(content_type: str, why: str) -> errors.ApiError:
    return errors.ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json, application/yaml ({content_type}: {why})",
    )


def _status_success(code: int = 200, details: Obj | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    if code != 200:
        body["code"] = code
    return body


def _media_types(accept: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        params = {}
        for p in pieces[1:]:
            key, _, value = p.partition("=")
            params[key.strip()] = value.strip()
        out.append((pieces[0].lower(), params))
    return out


def table_version(accept: str) -> str | None:
    """The meta.k8s.io version of Table the client asked for first, or None for plain JSON."""
    for mime, params in _media_types(accept):
        if mime in (JSON, "*/*", "application/*") and params.get("as") == "Table":
            if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                return params["v"]
        elif mime in (JSON, "*/*", "application/*") and not params.get("as"):
            return None
    return None


def _aggregated_version(accept: str) -> str | None:
    for mime, params in _media_types(accept):
        if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
            if params.get("v") in AGGREGATED_KINDS:
                return params["v"]
        elif mime in (JSON, "*/*", "application/*") and not params.get("as"):
            return None
    return None


def _is_discovery_path(path: str) -> bool:
    """/version, /openapi/..., and /api, /apis down to a group version: read-only documents."""
    segs = path.strip("/").split("/")
    if segs[0] in ("version", "openapi"):
        return True
    if segs[0] == "api":
        return len(segs) <= 2
    if segs[0] == "apis":
        return len(segs) <= 3
    return False


def _body_name(body: Any) -> str:
    """The name a create request's object carries (the path names none)."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.bad_request(f"invalid value {raw!r} for {name}: must be an integer") from exc


def _redact(rt_key: str, body: Any) -> Any:
    """A request body fit for the write log: Secret values replaced."""
    if rt_key != "secrets":
        return body
    if isinstance(body, dict):
        out = dict(body)
        for field_name in ("data", "stringData"):
            if isinstance(out.get(field_name), dict):
                out[field_name] = dict.fromkeys(out[field_name], _REDACTED)
        return out
    if isinstance(body, list):
        ops = []
        for op in body:
            if isinstance(op, dict) and "value" in op:
                path = str(op.get("path", ""))
                if path in ("", "/") or path.startswith(("/data", "/stringData")):
                    op = {**op, "value": _REDACTED}
            ops.append(op)
        return ops
    return body


@dataclass
class Target:
    """A resource path: which type, namespace, name and subresource it addresses."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None
    watch_path: bool = False

    @property
    def resource(self) -> str:
        return self.rt.key


@dataclass(frozen=True)
class _View:
    """A kind served from another kind's storage, converted on the way out (and in)."""

    backing: ResourceType
    to_view: Callable[[Obj], Obj]
    #: None: the view is read-only.
    from_view: Callable[[Obj], Obj] | None
    backing_name: Callable[[str], str] = field(default=lambda name: name)
    #: Table rows from the stored object's printer (events) or the view's own (slices).
    print_backing: bool = True


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class ApiServer:
    """Request handling; one per served cluster. Every handler runs under `cluster.lock`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.registry = cluster.store.registry
        self.hub = WatchHub(cluster.store)
        self._views = self._build_views()
        self._queues: set[asyncio.Queue[bytes | None]] = set()
        self.server_address = "127.0.0.1:0"

    # -- lifecycle ------------------------------------------------------------

    async def on_startup(self, _app: web.Application) -> None:
        self.hub.attach()

    async def on_shutdown(self, _app: web.Application) -> None:
        for queue in list(self._queues):
            queue.put_nowait(None)

    async def on_cleanup(self, _app: web.Application) -> None:
        self.hub.detach()

    # -- entry point ------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except errors.ApiError as exc:
            return web.Response(status=exc.code, body=dumps(exc.status()), content_type=JSON)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("twin apiserver: %s %s failed", request.method, request.path)
            err = errors.ApiError(500, "InternalError", f"Internal error occurred: {exc}")
            return web.Response(status=500, body=dumps(err.status()), content_type=JSON)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        accept = request.headers.get("Accept", "")
        if request.method != "GET" and _is_discovery_path(path):
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        if path == "/version":
            return self._json(200, SERVER_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/api":
            agg = _aggregated_version(accept)
            if agg:
                doc = aggregated_discovery(self.registry, core=True, version=agg)
                return self._json(200, doc, aggregated_content_type(agg))
            return self._json(200, api_versions(self.server_address))
        if path == "/apis":
            agg = _aggregated_version(accept)
            if agg:
                doc = aggregated_discovery(self.registry, core=False, version=agg)
                return self._json(200, doc, aggregated_content_type(agg))
            return self._json(200, api_group_list(self.registry))
        if path == "/openapi/v3":
            return self._json(200, openapi_v3_root(self.registry))
        if path.startswith("/openapi/v3/"):
            document = openapi_v3_document(self.registry, path.removeprefix("/openapi/v3/"))
            if document is None:
                raise _not_found_path()
            return self._json(200, document)
        segs = path.strip("/").split("/")
        if segs[0] == "apis" and len(segs) == 2:
            group_doc = api_group(self.registry, segs[1])
            if group_doc is None:
                raise _not_found_path()
            return self._json(200, group_doc)
        if segs[0] == "api" and len(segs) >= 2:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis" and len(segs) >= 3:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise _not_found_path()
        if not rest:
            resource_list = api_resource_list(self.registry, group, version)
            if resource_list is None:
                raise _not_found_path()
            return self._json(200, resource_list)
        method = request.method
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            raw = await request.read()
            try:
                target = self._target(group, version, rest)
            except errors.ApiError as exc:
                self._record_unrouted(request, group, rest, raw, exc.code)
                raise
        else:
            target = self._target(group, version, rest)
        if method == "GET":
            return await self._read(request, target)
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            reply = self._write(request, target, raw)
            return web.Response(
                status=reply.status,
                body=reply.body,
                content_type=reply.content_type,
                headers=reply.headers,
            )
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource"
        )

    def _json(self, status: int, body: Any, content_type: str = JSON) -> web.Response:
        response = web.Response(status=status, body=dumps(body))
        response.headers["Content-Type"] = content_type
        return response

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
            if not rest:
                raise _not_found_path()
        namespace: str | None = None
        ns_rt = self.registry.by_gvr("", "v1", "namespaces")
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (
                group == ""
                and ns_rt is not None
                and len(rest) == 3
                and rest[2] in ns_rt.subresources
                and self.registry.by_gvr(group, version, rest[2]) is None
            )
        ):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _not_found_path()
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        rt = self.registry.by_gvr(group, version, plural)
        if rt is None:
            raise _not_found_path()
        if namespace is not None and not rt.namespaced:
            raise _not_found_path()
        if sub is not None and sub not in rt.subresources:
            raise _not_found_path()
        return Target(rt, namespace, name, sub, watch_path)

    # -- views: kinds served from another kind's storage ------------------------------

    def _build_views(self) -> dict[str, _View]:
        views: dict[str, _View] = {}
        core_events = self.registry.by_gvr("", "v1", "events")
        new_events = self.registry.by_gvr(EVENTS_GROUP, "v1", "events")
        if core_events is not None and new_events is not None:
            views[new_events.key] = _View(core_events, core_to_events_v1, events_v1_to_core)
        endpoints = self.registry.by_gvr("", "v1", "endpoints")
        slices = self.registry.by_gvr("discovery.k8s.io", "v1", "endpointslices")
        if endpoints is not None and slices is not None:
            views[slices.key] = _View(
                endpoints,
                endpoints_to_slice,
                None,
                backing_name=endpoints_name_of_slice,
                print_backing=False,
            )
        return views

    def _backing(self, rt: ResourceType) -> ResourceType:
        view = self._views.get(rt.key)
        return view.backing if view is not None else rt

    def _to_view(self, rt: ResourceType, obj: Obj) -> Obj:
        view = self._views.get(rt.key)
        return view.to_view(obj) if view is not None else obj

    def _from_view(self, rt: ResourceType, obj: Obj) -> Obj:
        view = self._views.get(rt.key)
        if view is None:
            return obj
        if view.from_view is None:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        return view.from_view(obj)

    def _stored(self, rt: ResourceType, namespace: str, name: str, *, live: bool = False) -> Obj:
        """The stored object behind `rt/name` (for a view: the object it is derived from)."""
        view = self._views.get(rt.key)
        if view is None:
            return self.store.get(rt, namespace, name, live=live)
        obj = self.store.find(view.backing, namespace, view.backing_name(name))
        if obj is None or view.to_view(obj)["metadata"].get("name") != name:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj if live else copy.deepcopy(obj)

    def _table(
        self,
        rt: ResourceType,
        objs: list[Obj],
        now: datetime,
        query: Mapping[str, str],
        tv: str,
        list_meta: Obj,
        *,
        with_columns: bool = True,
    ) -> Obj:
        """A Table of stored objects; a view prints as its stored kind or as itself."""
        include = query.get("includeObject", "Metadata")
        view = self._views.get(rt.key)
        if view is None:
            return tables.table(
                rt,
                objs,
                now,
                include_object=include,
                api_version=f"meta.k8s.io/{tv}",
                list_meta=list_meta,
                with_columns=with_columns,
            )
        shown = [view.to_view(o) for o in objs]
        body = tables.table(
            view.backing if view.print_backing else rt,
            objs if view.print_backing else shown,
            now,
            include_object=include,
            api_version=f"meta.k8s.io/{tv}",
            list_meta=list_meta,
            with_columns=with_columns,
        )
        for row, obj in zip(body["rows"], shown, strict=True):
            if include == "Object":
                row["object"] = obj
            elif include != "None":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                }
        return body

    # -- reads ------------------------------------------------------------------

    async def _read(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        rt = target.rt
        if target.sub == "log":
            return self._logs(target, query)
        if target.sub not in (None, "status", "scale"):
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        if target.watch_path or (_truthy(query.get("watch")) and target.sub is None):
            if "watch" not in rt.verbs:
                raise errors.method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            return await self._watch(request, target)
        tv = table_version(request.headers.get("Accept", ""))
        with self.cluster.lock:
            now = self.cluster.clock.now()
            if rt.group == METRICS_GROUP:
                return self._json(200, self._metrics(target, query, tv, now))
            if target.name is None:
                return self._json(200, self._list(target, query, tv, now))
            if target.sub == "scale":
                obj = self.store.get(rt, target.namespace or "", target.name, live=True)
                return self._json(200, self._scale_of(rt, obj))
            obj = self._stored(rt, target.namespace or "", target.name, live=True)
            if tv:
                list_meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                return self._json(200, self._table(rt, [obj], now, query, tv, list_meta))
            return self._json(200, self._to_view(rt, obj))

    def _list(self, target: Target, query: Mapping[str, str], tv: str | None, now: datetime) -> Obj:
        rt = target.rt
        backing = self._backing(rt)
        label_selector = query.get("labelSelector")
        field_selector = query.get("fieldSelector")
        try:
            if backing is rt:
                objs = self.store.list(
                    rt,
                    target.namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    live=True,
                )
            else:
                match_label = parse_label_selector(label_selector)
                match_field = parse_field_selector(field_selector)
                objs = []
                for obj in self.store.list(backing, target.namespace, live=True):
                    view = self._to_view(rt, obj)
                    if match_label(view["metadata"].get("labels") or {}) and match_field(view):
                        objs.append(obj)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        list_meta: Obj = {"resourceVersion": str(self.store.resource_version)}
        objs = self._page(objs, query, list_meta)
        if tv:
            return self._table(rt, objs, now, query, tv, list_meta)
        items = objs if backing is rt else [self._to_view(rt, o) for o in objs]
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": list_meta,
            "items": items,
        }

    def _page(self, objs: list[Obj], query: Mapping[str, str], list_meta: Obj) -> list[Obj]:
        """limit/continue: pages in (namespace, name) order; the token names the last key sent."""
        token = query.get("continue")
        if token:
            try:
                start = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                start_key = (str(start["ns"]), str(start["name"]))
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise errors.bad_request(f"continue key is not valid: {token!r}") from exc
            objs = [o for o in objs if object_key(o) > start_key]
        limit = _int_param(query, "limit")
        if limit and limit > 0 and len(objs) > limit:
            last_ns, last_name = object_key(objs[limit - 1])
            raw = json.dumps({"ns": last_ns, "name": last_name}).encode()
            list_meta["continue"] = base64.urlsafe_b64encode(raw).decode()
            list_meta["remainingItemCount"] = len(objs) - limit
            objs = objs[:limit]
        return objs

    def _metrics(
        self, target: Target, query: Mapping[str, str], tv: str | None, now: datetime
    ) -> Obj:
        rt = target.rt
        try:
            if rt.kind == "PodMetrics":
                items = pod_metrics(self.cluster, target.namespace, query.get("labelSelector"))
            else:
                items = node_metrics(self.cluster, query.get("labelSelector"))
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        if target.name is not None:
            for item in items:
                if item["metadata"]["name"] == target.name:
                    return item
            raise errors.not_found(rt.plural, rt.group, target.name)
        list_meta: Obj = {"resourceVersion": ""}
        if tv:
            return tables.table(
                rt, items, now, api_version=f"meta.k8s.io/{tv}", list_meta=list_meta
            )
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": list_meta,
            "items": items,
        }

    # -- scale ----------------------------------------------------------------------

    def _scale_of(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        selector = format_label_selector(spec.get("selector"))
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
                "creationTimestamp": meta.get("creationTimestamp"),
            },
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {
                "replicas": status.get("replicas", 0),
                "selector": "" if selector == "<none>" else selector,
            },
        }

    # -- logs -----------------------------------------------------------------------

    def _logs(self, target: Target, query: Mapping[str, str]) -> web.Response:
        assert target.name is not None
        name = target.name
        tail = _int_param(query, "tailLines")
        limit_bytes = _int_param(query, "limitBytes")
        since_seconds = _int_param(query, "sinceSeconds")
        since_time = query.get("sinceTime")
        if since_seconds is not None and since_time:
            raise invalid(
                target.rt,
                name,
                [
                    (
                        "sinceSeconds",
                        "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
                    )
                ],
            )
        if limit_bytes is not None and limit_bytes < 1:
            raise invalid(
                target.rt, name, [("limitBytes", "Invalid value: must be greater than 0")]
            )
        if since_seconds is not None and since_seconds < 1:
            raise invalid(
                target.rt, name, [("sinceSeconds", "Invalid value: must be greater than 0")]
            )
        with self.cluster.lock:
            pod = self.store.get(target.rt, target.namespace or "", name, live=True)
            spec = pod.get("spec") or {}
            status = pod.get("status") or {}
            init = [c.get("name", "") for c in spec.get("initContainers") or []]
            main = [c.get("name", "") for c in spec.get("containers") or []]
            ephemeral = [c.get("name", "") for c in spec.get("ephemeralContainers") or []]
            container = query.get("container") or ""
            if not container:
                if len(main) == 1:
                    container = main[0]
                elif not main:
                    raise errors.bad_request(f"a container name must be specified for pod {name}")
                else:
                    choices = " ".join(init + main + ephemeral)
                    raise errors.bad_request(
                        f"a container name must be specified for pod {name}, choose one of: "
                        f"[{choices}]"
                    )
            elif container not in init + main + ephemeral:
                raise errors.bad_request(f"container {container} is not valid for pod {name}")
            if not spec.get("nodeName"):
                return web.Response(body=b"", content_type="text/plain")
            previous = _truthy(query.get("previous"))
            from_previous = self._log_instance(pod, status, container, previous)
            since = None
            if since_seconds is not None:
                since = self.cluster.clock.now() - timedelta(seconds=since_seconds)
            elif since_time:
                try:
                    since = parse_rfc3339(since_time)
                except ValueError as exc:
                    raise errors.bad_request(f"invalid sinceTime {since_time!r}") from exc
            lines = self.cluster.logs.read(
                pod["metadata"].get("uid", ""),
                container,
                previous=from_previous,
                tail_lines=tail if tail is not None and tail >= 0 else None,
                since=since,
                timestamps=_truthy(query.get("timestamps")),
            )
        body = ("\n".join(lines) + "\n").encode() if lines else b""
        if limit_bytes is not None:
            body = body[:limit_bytes]
        return web.Response(body=body, content_type="text/plain")

    def _log_instance(self, pod: Obj, status: Obj, container: str, previous: bool) -> bool:
        """Which kept instance the kubelet would read (True: the previous one), or 400.

        The kubelet reads the running container, else the last terminated one;
        `previous` reads the one before. While a container waits to restart
        (CrashLoopBackOff), the last terminated instance is still the newest
        one kept, so both read the current instance.
        """
        name = pod["metadata"]["name"]
        statuses = (
            list(status.get("containerStatuses") or [])
            + list(status.get("initContainerStatuses") or [])
            + list(status.get("ephemeralContainerStatuses") or [])
        )
        cs = next((s for s in statuses if s.get("name") == container), None)
        uid = pod["metadata"].get("uid", "")
        if cs is None:
            if not previous and self.cluster.logs.has_current(uid, container):
                return False
            raise errors.bad_request(f'container "{container}" in pod "{name}" is not available')
        state = cs.get("state") or {}
        last_terminated = (cs.get("lastState") or {}).get("terminated")
        waiting = state.get("waiting")
        if previous:
            if last_terminated is None:
                raise errors.bad_request(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            return waiting is None
        if state.get("running") is not None or state.get("terminated") is not None:
            return False
        if last_terminated is not None:
            return False
        if waiting is not None:
            reason = waiting.get("reason", "")
            if reason == "ErrImagePull":
                detail = "image can't be pulled"
            elif reason == "ImagePullBackOff":
                detail = "trying and failing to pull image"
            else:
                detail = reason
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: {detail}'
            )
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start - no logs yet'
        )

    # -- watch ----------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        rt = target.rt
        backing = self._backing(rt)
        tv = table_version(request.headers.get("Accept", ""))
        try:
            label_pred = parse_label_selector(query.get("labelSelector"))
            field_pred = parse_field_selector(query.get("fieldSelector"))
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        timeout = _int_param(query, "timeoutSeconds")
        seconds = float(timeout) if timeout and timeout > 0 else DEFAULT_WATCH_SECONDS
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        first_table = [True]
        matched: set[tuple[str, str]] = set()

        def matches(obj: Obj) -> bool:
            view = self._to_view(rt, obj)
            meta = view.get("metadata") or {}
            if target.namespace and meta.get("namespace") != target.namespace:
                return False
            if target.name and meta.get("name") != target.name:
                return False
            return label_pred(meta.get("labels") or {}) and field_pred(view)

        def encode(etype: str, obj: Obj) -> bytes:
            if tv:
                list_meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                body = self._table(
                    rt,
                    [obj],
                    self.cluster.clock.now(),
                    query,
                    tv,
                    list_meta,
                    with_columns=first_table[0],
                )
                if not first_table[0]:
                    body["columnDefinitions"] = []
                first_table[0] = False
                return dumps({"type": etype, "object": body}) + b"\n"
            return dumps({"type": etype, "object": self._to_view(rt, obj)}) + b"\n"

        def send(line: bytes) -> None:
            # A closed loop (the server stopped) raises RuntimeError: the watch is over.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, line)

        def on_change(etype: EventType, obj: Obj) -> None:
            key = object_key(obj)
            was = key in matched
            if etype == "DELETED":
                if was or matches(obj):
                    matched.discard(key)
                    send(encode("DELETED", obj))
                return
            if matches(obj):
                matched.add(key)
                send(encode("ADDED" if not was else etype, obj))
            elif was:
                matched.discard(key)
                send(encode("DELETED", obj))

        initial: list[bytes] = []
        rv_param = query.get("resourceVersion") or ""
        send_initial = _truthy(query.get("sendInitialEvents"))
        with self.cluster.lock:
            current = [
                o for o in self.store.list(backing, target.namespace, live=True) if matches(o)
            ]
            if rv_param not in ("", "0") and not send_initial:
                try:
                    since = int(rv_param)
                except ValueError as exc:
                    raise errors.bad_request(f"invalid resourceVersion {rv_param!r}") from exc
                try:
                    replay = self.hub.changes_since(backing, since)
                except TooOld as exc:
                    gone = errors.ApiError(410, "Expired", str(exc))
                    initial.append(dumps({"type": "ERROR", "object": gone.status()}) + b"\n")
                    replay = None
                if replay is not None:
                    for etype, obj in replay:
                        if matches(obj):
                            initial.append(encode(etype, obj))
                    matched.update(object_key(o) for o in current)
                    cancel = self.hub.watch(backing, on_change)
                else:
                    cancel = None
            else:
                for obj in current:
                    initial.append(encode("ADDED", obj))
                matched.update(object_key(o) for o in current)
                if send_initial:
                    bookmark = {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version,
                        "metadata": {
                            "resourceVersion": str(self.store.resource_version),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    }
                    initial.append(dumps({"type": "BOOKMARK", "object": bookmark}) + b"\n")
                cancel = self.hub.watch(backing, on_change)

        response = web.StreamResponse(status=200)
        response.headers["Content-Type"] = JSON
        response.headers["Cache-Control"] = "no-cache, private"
        response.enable_chunked_encoding()
        self._queues.add(queue)
        try:
            await response.prepare(request)
            if initial:
                await response.write(b"".join(initial))
            if cancel is None:
                return response
            deadline = loop.time() + seconds
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                if item is None:
                    break
                batch = [item]
                ended = False
                while not queue.empty():
                    more = queue.get_nowait()
                    if more is None:
                        ended = True
                        break
                    batch.append(more)
                await response.write(b"".join(batch))
                if ended:
                    break
        except ConnectionResetError:
            pass
        finally:
            self._queues.discard(queue)
            if cancel is not None:
                cancel()
        return response

    # -- writes -------------------------------------------------------------------------

    def _write(self, request: web.Request, target: Target, raw: bytes) -> _Reply:
        method = request.method
        query = request.query
        content_type = request.content_type
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        if method == "DELETE" and target.name is None:
            verb = "deletecollection"
        dry_values = query.getall("dryRun", [])
        patch_type = content_type if method == "PATCH" else ""
        body: Any = None
        code = 500
        with self.cluster.lock:
            try:
                for value in dry_values:
                    if value != "All":
                        raise errors.bad_request(
                            f'dryRun: Unsupported value: "{value}": supported values: "All"'
                        )
                body = self._parse_body(
                    raw, content_type, required=method in ("POST", "PUT", "PATCH")
                )
                dry_run = bool(dry_values)
                if method == "DELETE" and isinstance(body, dict) and body.get("dryRun"):
                    dry_run = True
                reply = self._write_locked(method, target, query, body, content_type, dry_run)
                code = reply.status
                return reply
            except errors.ApiError as exc:
                code = exc.code
                return _Reply(exc.code, dumps(exc.status()))
            finally:
                self._record(
                    verb=verb,
                    resource=target.resource,
                    namespace=target.namespace or "",
                    name=target.name or _body_name(body),
                    subresource=target.sub or "",
                    dry_run=bool(dry_values)
                    or (isinstance(body, dict) and bool(body.get("dryRun"))),
                    code=code,
                    patch_type=patch_type,
                    body=body,
                )

    def _record(
        self,
        *,
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        subresource: str,
        dry_run: bool,
        code: int,
        patch_type: str,
        body: Any,
    ) -> None:
        """Append to the cluster's write log (Secret values redacted). Hold the lock."""
        record_body = body if isinstance(body, dict) else ({"patch": body} if body else {})
        self.cluster.write_log.append(
            WriteRecord(
                time=rfc3339(self.cluster.clock.now()),
                elapsed=self.cluster.clock.elapsed,
                verb=verb,
                resource=resource,
                namespace=namespace,
                name=name,
                subresource=subresource,
                dry_run=dry_run,
                code=code,
                patch_type=patch_type,
                body=_redact(resource, copy.deepcopy(record_body)),
            )
        )

    def _record_unrouted(
        self, request: web.Request, group: str, rest: list[str], raw: bytes, code: int
    ) -> None:
        """Log a write to a path that names no served resource (it failed with `code`)."""
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        try:
            body: Any = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        with self.cluster.lock:
            self._record(
                verb=verb[request.method],
                resource=f"{plural}.{group}" if group else plural,
                namespace=namespace,
                name=rest[1] if len(rest) > 1 else "",
                subresource=rest[2] if len(rest) > 2 else "",
                dry_run="All" in request.query.getall("dryRun", []),
                code=code,
                patch_type=request.content_type if request.method == "PATCH" else "",
                body=body,
            )

    def _parse_body(self, raw: bytes, content_type: str, *, required: bool) -> Any:
        if content_type == PROTOBUF:
            try:
                return decode_protobuf(raw)
            except ProtobufError as exc:
                raise _unsupported_body(content_type, str(exc)) from exc
        if content_type.startswith("application/cbor"):
            raise _unsupported_body(content_type, "CBOR is not served")
        if not raw.strip():
            if required:
                raise errors.bad_request("the body of the request was empty")
            return None
        try:
            if "yaml" in content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(
                f"the body of the request could not be decoded: {exc}"
            ) from exc

    def _write_locked(
        self,
        method: str,
        target: Target,
        query: Mapping[str, str],
        body: Any,
        content_type: str,
        dry_run: bool,
    ) -> _Reply:
        rt = target.rt
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        if method == "DELETE" and target.name is None:
            verb = "deletecollection"
        if verb not in rt.verbs:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        if method == "POST":
            if target.sub == "eviction":
                return self._evict(target, body, dry_run)
            if target.sub == "binding":
                return self._bind(target, body, dry_run)
            if target.name is not None:
                raise errors.method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            created = self._create(rt, target.namespace, self._object_body(body), dry_run)
            return _Reply(201, dumps(self._to_view(rt, created)))
        if method == "DELETE":
            if target.sub is not None:
                raise errors.method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            options = body if isinstance(body, dict) else {}
            if target.name is None:
                return self._delete_collection(target, query, options, dry_run)
            return self._delete(target, query, options, dry_run)
        if target.name is None or target.sub in ("log", "binding", "eviction"):
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        if method == "PUT":
            return self._replace(target, self._object_body(body), dry_run)
        return self._patch(target, query, body, content_type, dry_run)

    @staticmethod
    def _object_body(body: Any) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        return body

    def _check_kind(self, rt: ResourceType, body: Obj) -> None:
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if api_version and api_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f'{kind} in version "{rt.version}" cannot be handled as a {rt.kind}: the object '
                f'kind "{kind}" does not match the expected kind "{rt.kind}"'
            )

    def _require_namespace(self, namespace: str) -> None:
        ns_rt = self.cluster.rt("Namespace")
        if self.store.find(ns_rt, "", namespace) is None:
            raise errors.not_found("namespaces", "", namespace)

    def _create(self, rt: ResourceType, namespace: str | None, body: Obj, dry_run: bool) -> Obj:
        self._check_kind(rt, body)
        obj = copy.deepcopy(body)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if rt.namespaced:
            if namespace is None:
                raise errors.method_not_allowed(
                    f"POST to {rt.plural} must name a namespace: "
                    f"/namespaces/<namespace>/{rt.plural}"
                )
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
            self._require_namespace(namespace)
        else:
            meta.pop("namespace", None)
        backing = self._backing(rt)
        stored = self._from_view(rt, obj)
        validate_create(backing, stored)
        prepare_create(backing, stored)
        return self.cluster.create(backing, stored, dry_run=dry_run)

    def _current(self, target: Target) -> Obj:
        assert target.name is not None
        return self._stored(target.rt, target.namespace or "", target.name)

    def _replace(self, target: Target, body: Obj, dry_run: bool) -> _Reply:
        rt = target.rt
        assert target.name is not None
        if target.sub == "scale":
            return self._update_scale(target, body, dry_run)
        if target.sub is None:
            self._check_kind(rt, body)
        raw_meta = body.get("metadata")
        meta: Obj = raw_meta if isinstance(raw_meta, dict) else {}
        if meta.get("name") and meta["name"] != target.name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({target.name})"
            )
        if (
            rt.namespaced
            and meta.get("namespace")
            and target.namespace
            and meta["namespace"] != target.namespace
        ):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        current = self._current(target)
        new = self._from_view(rt, copy.deepcopy(body))
        new.setdefault("metadata", {})
        if not isinstance(new["metadata"], dict):
            raise errors.bad_request("metadata must be an object")
        new["metadata"]["name"] = target.name
        if rt.namespaced:
            new["metadata"]["namespace"] = target.namespace
        result = self._store_update(target, current, new, dry_run)
        return _Reply(200, dumps(self._to_view(rt, result)))

    def _patch(
        self,
        target: Target,
        query: Mapping[str, str],
        body: Any,
        content_type: str,
        dry_run: bool,
    ) -> _Reply:
        rt = target.rt
        builtin = rt.group in BUILTIN_GROUPS
        if content_type not in PATCH_TYPES or (
            content_type == STRATEGIC_MERGE_PATCH and not builtin
        ):
            raise _unsupported_patch(builtin)
        assert target.name is not None
        if content_type == APPLY_PATCH:
            return self._apply(target, body, dry_run)
        if target.sub == "scale":
            current_obj = self.store.get(rt, target.namespace or "", target.name)
            scale = self._scale_of(rt, current_obj)
            patched_scale = self._apply_patch(rt, scale, body, content_type, "Scale")
            return self._update_scale(target, patched_scale, dry_run)
        current = self._current(target)
        view = self._to_view(rt, copy.deepcopy(current))
        patched = self._from_view(rt, self._apply_patch(rt, view, body, content_type, rt.kind))
        result = self._store_update(target, current, patched, dry_run)
        return _Reply(200, dumps(self._to_view(rt, result)))

    def _apply_patch(
        self, rt: ResourceType, obj: Obj, body: Any, content_type: str, kind: str
    ) -> Obj:
        try:
            return apply_patch(obj, body, content_type, kind)
        except PatchError as exc:
            if exc.malformed:
                raise errors.bad_request(str(exc)) from exc
            name = obj.get("metadata", {}).get("name", "")
            raise errors.ApiError(
                422,
                "Invalid",
                f'{qualified_kind(rt)} "{name}" is invalid: patch: {exc}',
                kind=rt.kind,
                name=name,
                group=rt.group,
            ) from exc

    def _apply(self, target: Target, body: Any, dry_run: bool) -> _Reply:
        """Server-side apply, approximated: create, or a strategic merge of the applied fields."""
        rt = target.rt
        assert target.name is not None
        obj = self._object_body(body)
        try:
            existing: Obj | None = self._stored(rt, target.namespace or "", target.name)
        except errors.ApiError:
            existing = None
        if existing is None:
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["name"] = target.name
            created = self._create(rt, target.namespace, obj, dry_run)
            return _Reply(201, dumps(self._to_view(rt, created)))
        self._check_kind(rt, obj)
        current = copy.deepcopy(existing)
        kind = rt.kind if rt.group in BUILTIN_GROUPS else ""
        patch_type = STRATEGIC_MERGE_PATCH if kind else MERGE_PATCH
        patched = self._from_view(
            rt, self._apply_patch(rt, self._to_view(rt, current), obj, patch_type, kind)
        )
        result = self._store_update(target, current, patched, dry_run)
        return _Reply(200, dumps(self._to_view(rt, result)))

    def _store_update(self, target: Target, current: Obj, new: Obj, dry_run: bool) -> Obj:
        """Replace with the subresource's rules: status writes touch only status."""
        rt = self._backing(target.rt)
        if target.sub == "status":
            merged = copy.deepcopy(current)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            sent_rv = (new.get("metadata") or {}).get("resourceVersion")
            if sent_rv:
                merged["metadata"]["resourceVersion"] = sent_rv
            new = merged
        else:
            if "status" in rt.subresources:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            validate_update(rt, current, new)
        new_meta = new.get("metadata") or {}
        if new_meta.get("uid") and new_meta["uid"] != current["metadata"].get("uid"):
            raise errors.conflict(rt.plural, rt.group, current["metadata"]["name"])
        result = self.cluster.replace(rt, new, dry_run=dry_run)
        meta = result["metadata"]
        finalized = meta.get("deletionTimestamp") and not meta.get("finalizers")
        if finalized and not dry_run and (rt.kind != "Pod" or rt.group != ""):
            self.cluster.delete(rt, meta.get("namespace", ""), meta["name"])
        return result

    def _update_scale(self, target: Target, scale: Obj, dry_run: bool) -> _Reply:
        rt = target.rt
        assert target.name is not None
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{target.name}" is invalid: spec.replicas: Invalid value: '
                f"{json.dumps(replicas)}: must be greater than or equal to 0",
                kind="Scale",
                name=target.name,
                group="autoscaling",
                causes=[
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {json.dumps(replicas)}: must be greater than "
                        "or equal to 0",
                        "field": "spec.replicas",
                    }
                ],
            )
        current = self.store.get(rt, target.namespace or "", target.name)
        sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"].get("resourceVersion"):
            raise errors.conflict(rt.plural, rt.group, target.name)
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = replicas
        result = self.cluster.replace(rt, new, dry_run=dry_run)
        return _Reply(200, dumps(self._scale_of(rt, result)))

    # -- delete --------------------------------------------------------------------------

    def _grace_period(self, query: Mapping[str, str], options: Obj) -> int | None:
        grace = _int_param(query, "gracePeriodSeconds")
        if grace is None and isinstance(options.get("gracePeriodSeconds"), int):
            grace = int(options["gracePeriodSeconds"])
        return grace

    def _delete(
        self, target: Target, query: Mapping[str, str], options: Obj, dry_run: bool
    ) -> _Reply:
        assert target.name is not None
        rt = self._backing(target.rt)
        namespace = target.namespace or ""
        current = self._stored(target.rt, namespace, target.name, live=True)
        deleted = self._delete_one(rt, current, query, options, dry_run)
        if deleted is None:
            meta = current["metadata"]
            details = {
                "name": meta["name"],
                "group": rt.group,
                "kind": rt.plural,
                "uid": meta.get("uid", ""),
            }
            return _Reply(200, dumps(_status_success(details=details)))
        return _Reply(200, dumps(self._to_view(target.rt, deleted)))

    def _delete_one(
        self,
        rt: ResourceType,
        current: Obj,
        query: Mapping[str, str],
        options: Obj,
        dry_run: bool,
    ) -> Obj | None:
        """Delete one live object; returns what to answer with (None: a Success Status)."""
        meta = current["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise errors.ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rt.key} "{name}": Precondition failed: UID in '
                f"precondition: {preconditions['uid']}, UID in object meta: {meta.get('uid')}",
                kind=rt.plural,
                name=name,
                group=rt.group,
            )
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get(
            "resourceVersion"
        ):
            raise errors.conflict(rt.plural, rt.group, name)
        policy = query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise errors.bad_request(f'propagationPolicy: Unsupported value: "{policy}"')
        is_pod = rt.kind == "Pod" and rt.group == ""
        if is_pod:
            grace = self._grace_period(query, options)
            result = self.cluster.delete(rt, namespace, name, dry_run=dry_run)
            pod = self.store.find(rt, namespace, name)
            phase = (current.get("status") or {}).get("phase")
            immediate = (
                grace == 0
                or not (current.get("spec") or {}).get("nodeName")
                or phase in ("Succeeded", "Failed")
            )
            if immediate and not dry_run and pod is not None:
                result = self.store.delete(rt, namespace, name)
            return copy.deepcopy(result)
        if meta.get("finalizers"):
            if dry_run:
                return copy.deepcopy(current)
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = rfc3339(self.cluster.clock.now())
                meta["deletionGracePeriodSeconds"] = 0
                self.store.commit(rt, current)
            return copy.deepcopy(current)
        if policy == "Orphan" and not dry_run:
            self._orphan(meta.get("uid", ""))
        if rt.kind == "Namespace" and rt.group == "":
            return self._delete_namespace(current, dry_run)
        self.cluster.delete(rt, namespace, name, dry_run=dry_run)
        return None

    def _orphan(self, owner_uid: str) -> None:
        for rt in self.registry.all():
            for obj in list(self.store.iter_live(rt)):
                refs = obj.get("metadata", {}).get("ownerReferences") or []
                kept = [r for r in refs if r.get("uid") != owner_uid]
                if len(kept) != len(refs):
                    if kept:
                        obj["metadata"]["ownerReferences"] = kept
                    else:
                        obj["metadata"].pop("ownerReferences", None)
                    self.store.commit(rt, obj)

    def _delete_namespace(self, namespace_obj: Obj, dry_run: bool) -> Obj:
        """Delete a namespace with everything in it (the namespace controller's work, at once)."""
        ns_rt = self.cluster.rt("Namespace")
        name = namespace_obj["metadata"]["name"]
        result = copy.deepcopy(namespace_obj)
        result.setdefault("status", {})["phase"] = "Terminating"
        result["metadata"]["deletionTimestamp"] = rfc3339(self.cluster.clock.now())
        if dry_run:
            return result
        for rt in self.registry.all():
            if not rt.namespaced or rt.group in (METRICS_GROUP, EVENTS_GROUP):
                continue
            for obj in self.store.list(rt, name, live=True):
                if self.store.find(rt, name, obj["metadata"]["name"]) is None:
                    continue  # collected with its owner
                self._delete_one(rt, obj, {}, {"gracePeriodSeconds": 0}, False)
        self.cluster.delete(ns_rt, "", name)
        return result

    def _delete_collection(
        self, target: Target, query: Mapping[str, str], options: Obj, dry_run: bool
    ) -> _Reply:
        rt = self._backing(target.rt)
        if "deletecollection" not in target.rt.verbs:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        try:
            objs = self.store.list(
                rt,
                target.namespace,
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
                live=True,
            )
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        items = []
        for obj in objs:
            meta = obj["metadata"]
            if self.store.find(rt, meta.get("namespace", ""), meta["name"]) is None:
                continue
            snapshot = copy.deepcopy(obj)
            deleted = self._delete_one(rt, obj, query, options, dry_run)
            items.append(self._to_view(target.rt, deleted if deleted is not None else snapshot))
        body = {
            "kind": f"{target.rt.kind}List",
            "apiVersion": target.rt.api_version,
            "metadata": {"resourceVersion": str(self.store.resource_version)},
            "items": items,
        }
        return _Reply(200, dumps(body))

    # -- pods/binding and pods/eviction ------------------------------------------------------

    def _bind(self, target: Target, body: Any, dry_run: bool) -> _Reply:
        assert target.name is not None
        rt = target.rt
        binding = self._object_body(body)
        node = (binding.get("target") or {}).get("name")
        if not node:
            raise invalid(rt, target.name, [("target.name", "Required value")])
        pod = self.store.get(rt, target.namespace or "", target.name)
        name = target.name
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is being '
                "deleted, cannot be assigned to a host",
                kind="pods/binding",
                name=name,
            )
        assigned = (pod.get("spec") or {}).get("nodeName")
        if assigned:
            raise errors.ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is already '
                f'assigned to node "{assigned}"',
                kind="pods/binding",
                name=name,
            )
        pod.setdefault("spec", {})["nodeName"] = node
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(self.cluster.clock.now()),
            }
        )
        status["conditions"] = conditions
        self.cluster.replace(rt, pod, dry_run=dry_run)
        return _Reply(201, dumps(_status_success(201)))

    def _evict(self, target: Target, body: Any, dry_run: bool) -> _Reply:
        assert target.name is not None
        rt = target.rt
        eviction = self._object_body(body)
        namespace = target.namespace or ""
        name = target.name
        evict_name = (eviction.get("metadata") or {}).get("name")
        if evict_name and evict_name != name:
            raise errors.bad_request(
                f"name in URL does not match name in Eviction object: {name} vs {evict_name}"
            )
        pod = self.store.get(rt, namespace, name, live=True)
        phase = (pod.get("status") or {}).get("phase")
        guarded = phase not in ("Succeeded", "Failed", "Pending") and not pod["metadata"].get(
            "deletionTimestamp"
        )
        if guarded:
            pdb_rt = self.cluster.rt("PodDisruptionBudget")
            labels = pod["metadata"].get("labels") or {}
            budgets = [
                pdb
                for pdb in self.store.list(pdb_rt, namespace, live=True)
                if (pdb.get("spec") or {}).get("selector") is not None
                and match_labels(pdb["spec"]["selector"], labels)
            ]
            if len(budgets) > 1:
                raise errors.ApiError(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction "
                    "subresource does not support.",
                )
            if budgets:
                pdb = budgets[0]
                status = pdb.setdefault("status", {})
                if int(status.get("disruptionsAllowed") or 0) <= 0:
                    raise errors.ApiError(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        causes=[
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb['metadata']['name']} "
                                f"needs {int(status.get('desiredHealthy') or 0)} healthy pods "
                                f"and has {int(status.get('currentHealthy') or 0)} currently",
                            }
                        ],
                    )
                if not dry_run:
                    status["disruptionsAllowed"] = int(status["disruptionsAllowed"]) - 1
                    disrupted = status.setdefault("disruptedPods", {})
                    disrupted[name] = rfc3339(self.cluster.clock.now())
                    self.store.commit(pdb_rt, pdb)
        options = eviction.get("deleteOptions") or {}
        self._delete_one(rt, pod, {}, options if isinstance(options, dict) else {}, dry_run)
        return _Reply(201, dumps(_status_success(201)))


def build_app(cluster: Cluster, *, extra_routes: Sequence[RouteInstaller] = ()) -> web.Application:
    """The aiohttp application serving `cluster` over the Kubernetes REST API.

    `extra_routes` install other endpoints (e.g. /prometheus, /jaeger,
    /alertmanager); they are registered before the Kubernetes catch-all.
    """
    server = ApiServer(cluster)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_APP_KEY] = server
    for install in extra_routes:
        install(app)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    app.on_startup.append(server.on_startup)
    app.on_shutdown.append(server.on_shutdown)
    app.on_cleanup.append(server.on_cleanup)
    return app


def api_server_of(app: web.Application) -> ApiServer:
    return app[_APP_KEY]


class ServerHandle:
    """A running API server: `.url`, `.port`, `.stop()`; a context manager."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        runner: web.AppRunner,
        app: web.Application,
    ) -> None:
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.app = app
        self._loop = loop
        self._thread = thread
        self._runner = runner
        self._stopped = False

    def stop(self, timeout: float = 10.0) -> None:
        """Close open watches, stop serving and join the server thread."""
        if self._stopped:
            return
        self._stopped = True

        async def shutdown() -> None:
            await self._runner.cleanup()

        if self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            try:
                future.result(timeout)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    cluster: Cluster,
    host: str = "127.0.0.1",
    port: int = 0,
    extra_routes: Sequence[RouteInstaller] = (),
) -> ServerHandle:
    """Serve `cluster` on host:port (0 picks a free port) from a thread with its own loop."""
    app = build_app(cluster, extra_routes=extra_routes)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, host, port)
            loop.run_until_complete(site.start())
            state["port"] = runner.addresses[0][1]
        except BaseException as exc:
            state["error"] = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name=f"twin-apiserver-{port}", daemon=True)
    thread.start()
    ready.wait()
    if "error" in state:
        thread.join()
        raise RuntimeError(f"the twin API server could not listen on {host}:{port}") from state[
            "error"
        ]
    bound = int(state["port"])
    api_server_of(app).server_address = f"{host}:{bound}"
    return ServerHandle(host=host, port=bound, loop=loop, thread=thread, runner=runner, app=app)
