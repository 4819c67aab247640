"""Executor-side functions: one per action, each a server-side dry-run and then the real call.

Each function reads the target, checks the action's preconditions against the
live object (the revision exists, the image ran before, the container and
ports exist), sends the change with dryRun=All, and only if that passes sends
it for real. It returns what changed (before and after) and the inverse
action where one exists. They are pure API calls with their checks: the
policy gate (policies/) decides whether to call them at all, and the
executor node (agents/) is the one place that catches broadly.

API failures come back as an outcome with the error's kind (NotFound,
Forbidden, Invalid, ...), not as exceptions; a bug still raises.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.actions import (
    Action,
    CordonAction,
    DeletePodAction,
    EscalateAction,
    NoParams,
    PatchServiceAction,
    PatchServiceParams,
    PortFix,
    ResourceValues,
    RestartAction,
    RollbackAction,
    RollbackParams,
    ScaleAction,
    ScaleParams,
    SetHpaAction,
    SetHpaParams,
    SetImageAction,
    SetImageParams,
    SetResourcesAction,
    SetResourcesParams,
    ShiftTrafficAction,
    ShiftTrafficParams,
    UncordonAction,
)
from tools.connection import ClusterConnection
from tools.errors import ToolError
from tools.kube import KINDS, Obj, meta
from tools.objects import GATEWAY_GROUP, GATEWAY_VERSION
from tools.rollout import REVISION, owned_replica_sets, revision_of

OutcomeStatus = Literal["applied", "dry_run_passed", "rejected", "failed", "no_change", "escalated"]

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: Annotations `kubectl rollout undo` keeps from the Deployment rather than the ReplicaSet.
ROLLBACK_SKIPPED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)


class Change(BaseModel):
    field: str
    before: Any = None
    after: Any = None


class ActionOutcome(BaseModel):
    """What executing one action did."""

    action: Action
    status: OutcomeStatus
    message: str
    changes: list[Change] = Field(default_factory=list)
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    inverse: Action | None = None
    error_kind: str | None = None
    requests: list[str] = Field(default_factory=list, description="API calls made, in order")

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "dry_run_passed", "no_change", "escalated")


class _Rejected(Exception):
    """A precondition failed: nothing was sent."""


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    return [
        Change(field=k, before=before.get(k), after=after.get(k))
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]


def _inverse_of(action: Action, **update: Any) -> dict[str, Any]:
    """Fields shared by an inverse: same target, hypothesis and evidence."""
    return {
        "target": action.target,
        "hypothesis_id": action.hypothesis_id,
        "evidence_ids": list(action.evidence_ids),
        "expected_effect": f"undo {action.action} on {action.target}: restore the previous state",
        "verification": f"the {action.target} is back as it was before {action.action}",
        **update,
    }


class _Writer:
    """Sends one change twice (dryRun=All, then for real) and records the requests."""

    def __init__(self, conn: ClusterConnection, dry_run_only: bool) -> None:
        self.conn = conn
        self.dry_run_only = dry_run_only
        self.requests: list[str] = []

    def send(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj | None:
        """Dry-run, then real unless dry_run_only. Returns the server's object (None when dry)."""
        self.requests.append(f"{what} (dryRun=All)")
        self.conn.call(fn, *args, dry_run="All", **kwargs)
        if self.dry_run_only:
            return None
        self.requests.append(what)
        result: Obj = self.conn.call(fn, *args, **kwargs)
        return result


def _patch_fn(conn: ClusterConnection, kind: str, subresource: str = "") -> Callable[..., Any]:
    api = KINDS[kind]
    target = getattr(conn, api.api)
    suffix = f"_{subresource}" if subresource else ""
    if api.namespaced:
        return getattr(target, f"patch_namespaced_{api.plural}{suffix}")  # type: ignore[no-any-return]
    return getattr(target, f"patch_{api.plural}{suffix}")  # type: ignore[no-any-return]


def execute(
    conn: ClusterConnection, action: Action, *, dry_run_only: bool = False
) -> ActionOutcome:
    """Carry out one validated action: dry-run, then the real call (or only the dry-run)."""
    handler = _HANDLERS[action.action]
    writer = _Writer(conn, dry_run_only)
    try:
        outcome = handler(conn, action, writer)
    except _Rejected as exc:
        return ActionOutcome(
            action=action,
            status="rejected",
            message=str(exc),
            error_kind="PreconditionFailed",
            requests=writer.requests,
        )
    except ToolError as exc:
        dry = bool(writer.requests) and writer.requests[-1].endswith("(dryRun=All)")
        return ActionOutcome(
            action=action,
            status="rejected" if dry else "failed",
            message=("dry-run failed: " if dry else "") + exc.describe(),
            error_kind=exc.kind,
            requests=writer.requests,
        )
    outcome.requests = writer.requests
    if dry_run_only and outcome.status == "applied":
        outcome.status = "dry_run_passed"
        outcome.message = "dry-run passed; nothing was changed: " + outcome.message
        outcome.after = {}
        outcome.changes = []
    return outcome


# -- restart, delete_pod ------------------------------------------------------------


def restart(conn: ClusterConnection, action: RestartAction, w: _Writer) -> ActionOutcome:
    t = action.target
    obj = KINDS[t.kind].read(conn, t.namespace, t.name)
    if t.kind == "Deployment" and (obj.get("spec") or {}).get("paused"):
        raise _Rejected(f"deployment {t.name!r} in {t.namespace!r} is paused; resume it first")
    template_meta = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    before = {"restartedAt": (template_meta.get("annotations") or {}).get(RESTARTED_AT)}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
    result = w.send(
        f"PATCH {t} template annotation {RESTARTED_AT}",
        _patch_fn(conn, t.kind),
        t.name,
        t.namespace,
        body,
        _content_type=STRATEGIC,
    )
    after_meta = (((result or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
    after = {"restartedAt": (after_meta.get("annotations") or {}).get(RESTARTED_AT)}
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"rollout restart of {t} requested",
        before=before,
        after=after,
        changes=_diff(before, after),
    )


def delete_pod(conn: ClusterConnection, action: DeletePodAction, w: _Writer) -> ActionOutcome:
    t = action.target
    pod = KINDS["Pod"].read(conn, t.namespace, t.name)
    owner = next((o for o in meta(pod).get("ownerReferences") or [] if o.get("controller")), None)
    if owner is None:
        raise _Rejected(
            f"pod {t.name!r} in {t.namespace!r} has no controller: nothing would recreate it"
        )
    if meta(pod).get("deletionTimestamp"):
        return ActionOutcome(
            action=action, status="no_change", message=f"pod {t.name!r} is already terminating"
        )
    w.send(
        f"DELETE pod {t.namespace}/{t.name}", conn.core.delete_namespaced_pod, t.name, t.namespace
    )
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"pod {t.namespace}/{t.name} deleted; {owner.get('kind')} "
        f"{owner.get('name')} will recreate it",
        before={
            "pod": t.name,
            "uid": meta(pod).get("uid"),
            "node": (pod.get("spec") or {}).get("nodeName"),
        },
        after={"pod": None},
        changes=[Change(field="pod", before=t.name, after=None)],
    )


# -- scale, rollback ------------------------------------------------------------------


def scale(conn: ClusterConnection, action: ScaleAction, w: _Writer) -> ActionOutcome:
    t = action.target
    obj = KINDS[t.kind].read(conn, t.namespace, t.name)
    current = int((obj.get("spec") or {}).get("replicas", 1))
    wanted = action.params.replicas
    if current == wanted:
        return ActionOutcome(
            action=action,
            status="no_change",
            message=f"{t} already has {wanted} replicas",
            before={"replicas": current},
            after={"replicas": current},
        )
    result = w.send(
        f"PATCH {t}/scale spec.replicas={wanted}",
        _patch_fn(conn, t.kind, "scale"),
        t.name,
        t.namespace,
        {"spec": {"replicas": wanted}},
        _content_type=MERGE,
    )
    after_replicas = ((result or {}).get("spec") or {}).get("replicas", wanted)
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"{t} scaled from {current} to {after_replicas}",
        before={"replicas": current},
        after={"replicas": after_replicas},
        changes=[Change(field="spec.replicas", before=current, after=after_replicas)],
        inverse=ScaleAction(**_inverse_of(action, params=ScaleParams(replicas=current))),
    )


def _template_without_hash(template: Obj) -> Obj:
    template = copy.deepcopy(template)
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop("pod-template-hash", None)
    return template


def rollback(conn: ClusterConnection, action: RollbackAction, w: _Writer) -> ActionOutcome:
    """kubectl rollout undo --to-revision: put that revision's template back on the Deployment."""
    t = action.target
    deployment = KINDS["Deployment"].read(conn, t.namespace, t.name)
    if (deployment.get("spec") or {}).get("paused"):
        raise _Rejected(f"deployment {t.name!r} in {t.namespace!r} is paused; cannot roll back")
    current = revision_of(deployment)
    revisions = owned_replica_sets(conn, deployment)
    wanted = action.params.to_revision
    target_rs = next((rs for rs in revisions if revision_of(rs) == wanted), None)
    if target_rs is None:
        known = ", ".join(str(revision_of(rs)) for rs in revisions) or "none"
        raise _Rejected(
            f"deployment {t.name!r} in {t.namespace!r} has no revision {wanted} "
            f"(revisions: {known})"
        )
    template = _template_without_hash((target_rs.get("spec") or {}).get("template") or {})
    live_template = (deployment.get("spec") or {}).get("template") or {}
    if _template_without_hash(live_template) == template:
        return ActionOutcome(
            action=action,
            status="no_change",
            message=f"skipped rollback (current template already matches revision {wanted})",
            before={"revision": current},
            after={"revision": current},
        )
    d_ann = meta(deployment).get("annotations") or {}
    annotations = {k: d_ann[k] for k in ROLLBACK_SKIPPED_ANNOTATIONS if k in d_ann}
    for k, v in (meta(target_rs).get("annotations") or {}).items():
        if k not in ROLLBACK_SKIPPED_ANNOTATIONS:
            annotations[k] = v
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    before_images = {
        c.get("name"): c.get("image")
        for c in (live_template.get("spec") or {}).get("containers") or []
    }
    result = w.send(
        f"PATCH deployment {t.namespace}/{t.name} (JSON patch: template of revision {wanted})",
        conn.apps.patch_namespaced_deployment,
        t.name,
        t.namespace,
        patch,
        _content_type=JSON_PATCH,
    )
    after_template = ((result or {}).get("spec") or {}).get("template") or {}
    after_images = {
        c.get("name"): c.get("image")
        for c in (after_template.get("spec") or {}).get("containers") or []
    }
    before = {"revision": current, "images": before_images}
    after = {"template_of_revision": wanted, "images": after_images}
    inverse = None
    if current and current != wanted:
        inverse = RollbackAction(**_inverse_of(action, params=RollbackParams(to_revision=current)))
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"deployment {t.namespace}/{t.name} rolled back to the template of revision "
        f"{wanted} (was revision {current}); the controller gives it a new revision number",
        before=before,
        after=after,
        changes=[Change(field="spec.template (images)", before=before_images, after=after_images)],
        inverse=inverse,
    )


# -- set_resources, set_image ----------------------------------------------------------


def _container(obj: Obj, name: str, t: Any) -> Obj:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    for c in containers:
        if c.get("name") == name:
            return dict(c)
    names = ", ".join(str(c.get("name")) for c in containers) or "none"
    raise _Rejected(f"{t} has no container {name!r} (containers: {names})")


def set_resources(conn: ClusterConnection, action: SetResourcesAction, w: _Writer) -> ActionOutcome:
    t = action.target
    p = action.params
    obj = KINDS[t.kind].read(conn, t.namespace, t.name)
    container = _container(obj, p.container, t)
    current = container.get("resources") or {}
    change: dict[str, dict[str, str]] = {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for section, values in (("requests", p.requests), ("limits", p.limits)):
        if values is None:
            continue
        for key, value in values.as_dict().items():
            old = (current.get(section) or {}).get(key)
            before[f"{section}.{key}"] = old
            after[f"{section}.{key}"] = value
            if old != value:
                change.setdefault(section, {})[key] = value
    if not change:
        return ActionOutcome(
            action=action,
            status="no_change",
            message=f"container {p.container!r} of {t} already has these values",
            before=before,
            after=before,
        )
    body = {
        "spec": {"template": {"spec": {"containers": [{"name": p.container, "resources": change}]}}}
    }
    result = w.send(
        f"PATCH {t} container {p.container} resources {change}",
        _patch_fn(conn, t.kind),
        t.name,
        t.namespace,
        body,
        _content_type=STRATEGIC,
    )
    if result is not None:
        res = _container(result, p.container, t).get("resources") or {}
        after = {k: (res.get(k.split(".")[0]) or {}).get(k.split(".")[1]) for k in before}
    inverse = None
    if all(v is not None for v in before.values()):
        old_req = {k.split(".")[1]: v for k, v in before.items() if k.startswith("requests.")}
        old_lim = {k.split(".")[1]: v for k, v in before.items() if k.startswith("limits.")}
        inverse = SetResourcesAction(
            **_inverse_of(
                action,
                params=SetResourcesParams(
                    container=p.container,
                    requests=ResourceValues(**old_req) if old_req else None,
                    limits=ResourceValues(**old_lim) if old_lim else None,
                ),
            )
        )
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"resources of container {p.container!r} of {t} changed"
        + ("" if inverse else "; no inverse: some values were unset before"),
        before=before,
        after=after,
        changes=_diff(before, after),
        inverse=inverse,
    )


def images_in_history(conn: ClusterConnection, obj: Obj, container: str) -> dict[str, list[int]]:
    """Image -> revisions that ran it in `container`, from ReplicaSets or ControllerRevisions."""
    found: dict[str, list[int]] = {}
    kind = obj.get("kind") or ""
    if kind == "Deployment":
        templates = [
            (revision_of(rs), ((rs.get("spec") or {}).get("template") or {}))
            for rs in owned_replica_sets(conn, obj)
        ]
    else:
        uid = meta(obj).get("uid")
        body = conn.call(conn.apps.list_namespaced_controller_revision, meta(obj).get("namespace"))
        templates = [
            (
                int(cr.get("revision", 0)),
                ((cr.get("data") or {}).get("spec") or {}).get("template") or {},
            )
            for cr in body.get("items") or []
            if any(o.get("uid") == uid for o in meta(cr).get("ownerReferences") or [])
        ]
    for revision, template in templates:
        for c in (template.get("spec") or {}).get("containers") or []:
            if c.get("name") == container and c.get("image"):
                found.setdefault(str(c["image"]), []).append(revision)
    return found


def set_image(conn: ClusterConnection, action: SetImageAction, w: _Writer) -> ActionOutcome:
    t = action.target
    p = action.params
    obj = KINDS[t.kind].read(conn, t.namespace, t.name)
    obj.setdefault("kind", t.kind)
    container = _container(obj, p.container, t)
    current = container.get("image")
    if current == p.image:
        return ActionOutcome(
            action=action,
            status="no_change",
            message=f"container {p.container!r} of {t} already runs {p.image}",
            before={"image": current},
            after={"image": current},
        )
    history = images_in_history(conn, obj, p.container)
    current_revision = revision_of(obj) if t.kind == "Deployment" else None
    earlier = {
        image: revs for image, revs in history.items() if any(r != current_revision for r in revs)
    }
    if p.image not in earlier:
        known = ", ".join(sorted(earlier)) or "none"
        raise _Rejected(
            f"image {p.image!r} was not run by an earlier revision of {t} container "
            f"{p.container!r} (earlier images: {known})"
        )
    body = {
        "spec": {"template": {"spec": {"containers": [{"name": p.container, "image": p.image}]}}}
    }
    result = w.send(
        f"PATCH {t} container {p.container} image={p.image}",
        _patch_fn(conn, t.kind),
        t.name,
        t.namespace,
        body,
        _content_type=STRATEGIC,
    )
    after_image = _container(result, p.container, t).get("image") if result else p.image
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"container {p.container!r} of {t} set from {current} to {after_image} "
        f"(ran in revision {', '.join(str(r) for r in earlier[p.image])})",
        before={"image": current},
        after={"image": after_image},
        changes=[Change(field=f"container {p.container} image", before=current, after=after_image)],
        inverse=SetImageAction(
            **_inverse_of(action, params=SetImageParams(container=p.container, image=str(current)))
        ),
    )


# -- patch_service, set_hpa, shift_traffic -----------------------------------------------


def patch_service(conn: ClusterConnection, action: PatchServiceAction, w: _Writer) -> ActionOutcome:
    t = action.target
    p = action.params
    svc = KINDS["Service"].read(conn, t.namespace, t.name)
    spec = svc.get("spec") or {}
    ports = copy.deepcopy(spec.get("ports") or [])
    old_selector = dict(spec.get("selector") or {})
    body: dict[str, Any] = {
        "metadata": {"resourceVersion": meta(svc).get("resourceVersion")},
        "spec": {},
    }
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if p.selector is not None and p.selector != old_selector:
        selector_patch: dict[str, Any] = {k: None for k in old_selector if k not in p.selector}
        selector_patch.update(p.selector)
        body["spec"]["selector"] = selector_patch
        before["selector"] = old_selector
        after["selector"] = dict(p.selector)
    old_ports: list[PortFix] = []
    for fix in p.ports or []:
        port = next((sp for sp in ports if sp.get("port") == fix.port), None)
        if port is None:
            have = ", ".join(str(sp.get("port")) for sp in ports) or "none"
            raise _Rejected(
                f"service {t.name!r} in {t.namespace!r} has no port {fix.port} (ports: {have})"
            )
        old_target = port.get("targetPort", port.get("port"))
        if old_target != fix.target_port:
            before[f"port {fix.port} targetPort"] = old_target
            after[f"port {fix.port} targetPort"] = fix.target_port
            port["targetPort"] = fix.target_port
            old_ports.append(PortFix(port=fix.port, target_port=old_target))
    if old_ports:
        body["spec"]["ports"] = ports
    if not body["spec"]:
        return ActionOutcome(
            action=action, status="no_change", message=f"{t} already has this selector and ports"
        )
    result = w.send(
        f"PATCH service {t.namespace}/{t.name} {body['spec']}",
        conn.core.patch_namespaced_service,
        t.name,
        t.namespace,
        body,
        _content_type=MERGE,
    )
    if result is not None:
        rspec = result.get("spec") or {}
        if "selector" in after:
            after["selector"] = rspec.get("selector") or {}
        for fix in p.ports or []:
            key = f"port {fix.port} targetPort"
            if key in after:
                rp: Obj = next(
                    (sp for sp in rspec.get("ports") or [] if sp.get("port") == fix.port), {}
                )
                after[key] = rp.get("targetPort")
    inverse = PatchServiceAction(
        **_inverse_of(
            action,
            params=PatchServiceParams(
                selector=old_selector if "selector" in before else None,
                ports=old_ports or None,
            ),
        )
    )
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"service {t.namespace}/{t.name} patched",
        before=before,
        after=after,
        changes=_diff(before, after),
        inverse=inverse,
    )


def set_hpa(conn: ClusterConnection, action: SetHpaAction, w: _Writer) -> ActionOutcome:
    t = action.target
    p = action.params
    hpa = KINDS["HorizontalPodAutoscaler"].read(conn, t.namespace, t.name)
    spec = hpa.get("spec") or {}
    before = {"minReplicas": spec.get("minReplicas", 1), "maxReplicas": spec.get("maxReplicas")}
    wanted = {
        "minReplicas": p.min_replicas if p.min_replicas is not None else before["minReplicas"],
        "maxReplicas": p.max_replicas if p.max_replicas is not None else before["maxReplicas"],
    }
    if wanted["maxReplicas"] is not None and wanted["minReplicas"] > wanted["maxReplicas"]:
        raise _Rejected(
            f"HPA {t.name!r}: minReplicas {wanted['minReplicas']} would exceed "
            f"maxReplicas {wanted['maxReplicas']}"
        )
    if wanted == before:
        return ActionOutcome(
            action=action,
            status="no_change",
            message=f"{t} already has these bounds",
            before=before,
            after=before,
        )
    result = w.send(
        f"PATCH hpa {t.namespace}/{t.name} {wanted}",
        conn.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
        t.name,
        t.namespace,
        {"spec": wanted},
        _content_type=MERGE,
    )
    after = dict(wanted)
    if result is not None:
        rspec = result.get("spec") or {}
        after = {
            "minReplicas": rspec.get("minReplicas", 1),
            "maxReplicas": rspec.get("maxReplicas"),
        }
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"HPA {t.namespace}/{t.name} bounds set to "
        f"{after['minReplicas']}-{after['maxReplicas']}",
        before=before,
        after=after,
        changes=_diff(before, after),
        inverse=SetHpaAction(
            **_inverse_of(
                action,
                params=SetHpaParams(
                    min_replicas=before["minReplicas"], max_replicas=before["maxReplicas"]
                ),
            )
        ),
    )


def shift_traffic(conn: ClusterConnection, action: ShiftTrafficAction, w: _Writer) -> ActionOutcome:
    t = action.target
    p = action.params
    route = conn.call(
        conn.custom.get_namespaced_custom_object,
        GATEWAY_GROUP,
        GATEWAY_VERSION,
        t.namespace,
        "httproutes",
        t.name,
    )
    rules = copy.deepcopy((route.get("spec") or {}).get("rules") or [])
    if p.rule_index >= len(rules):
        raise _Rejected(f"HTTPRoute {t.name!r} has {len(rules)} rules; no rule {p.rule_index}")
    backends = rules[p.rule_index].get("backendRefs") or []
    names = [str(b.get("name")) for b in backends]
    unknown = sorted(set(p.weights) - set(names))
    if unknown:
        raise _Rejected(
            f"HTTPRoute {t.name!r} rule {p.rule_index} has no backend {', '.join(unknown)} "
            f"(backends: {', '.join(names) or 'none'})"
        )
    before = {b["name"]: int(b.get("weight", 1)) for b in backends}
    after = {**before, **p.weights}
    if sum(after.values()) <= 0:
        raise _Rejected("every backend weight would be 0: the route would serve nothing")
    if after == before:
        return ActionOutcome(
            action=action,
            status="no_change",
            message=f"{t} already has these weights",
            before=before,
            after=before,
        )
    for b in backends:
        b["weight"] = after[b["name"]]
    body = {
        "metadata": {"resourceVersion": meta(route).get("resourceVersion")},
        "spec": {"rules": rules},
    }
    result = w.send(
        f"PATCH httproute {t.namespace}/{t.name} rule {p.rule_index} weights {after}",
        conn.custom.patch_namespaced_custom_object,
        GATEWAY_GROUP,
        GATEWAY_VERSION,
        t.namespace,
        "httproutes",
        t.name,
        body,
        _content_type=MERGE,
    )
    if result is not None:
        rrules = (result.get("spec") or {}).get("rules") or []
        if p.rule_index < len(rrules):
            after = {
                b["name"]: int(b.get("weight", 1))
                for b in rrules[p.rule_index].get("backendRefs") or []
            }
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"HTTPRoute {t.namespace}/{t.name} rule {p.rule_index} weights {before} -> {after}",
        before=before,
        after=after,
        changes=_diff(before, after),
        inverse=ShiftTrafficAction(
            **_inverse_of(
                action, params=ShiftTrafficParams(rule_index=p.rule_index, weights=before)
            )
        ),
    )


# -- cordon, uncordon, escalate -------------------------------------------------------------


def _set_schedulable(
    conn: ClusterConnection, action: CordonAction | UncordonAction, w: _Writer, unschedulable: bool
) -> ActionOutcome:
    t = action.target
    node = KINDS["Node"].read(conn, None, t.name)
    current = bool((node.get("spec") or {}).get("unschedulable"))
    verb = "cordon" if unschedulable else "uncordon"
    if current == unschedulable:
        return ActionOutcome(
            action=action,
            status="no_change",
            message=f"node {t.name!r} is already {'cordoned' if current else 'schedulable'}",
            before={"unschedulable": current},
            after={"unschedulable": current},
        )
    result = w.send(
        f"PATCH node {t.name} spec.unschedulable={unschedulable}",
        conn.core.patch_node,
        t.name,
        {"spec": {"unschedulable": True if unschedulable else None}},
        _content_type=MERGE,
    )
    after = (
        bool(((result or {}).get("spec") or {}).get("unschedulable")) if result else unschedulable
    )
    inverse_cls = UncordonAction if unschedulable else CordonAction
    return ActionOutcome(
        action=action,
        status="applied",
        message=f"node {t.name} {verb}ed",
        before={"unschedulable": current},
        after={"unschedulable": after},
        changes=[Change(field="spec.unschedulable", before=current, after=after)],
        inverse=inverse_cls(**_inverse_of(action, params=NoParams())),
    )


def cordon(conn: ClusterConnection, action: CordonAction, w: _Writer) -> ActionOutcome:
    return _set_schedulable(conn, action, w, True)


def uncordon(conn: ClusterConnection, action: UncordonAction, w: _Writer) -> ActionOutcome:
    return _set_schedulable(conn, action, w, False)


def escalate(conn: ClusterConnection, action: EscalateAction, w: _Writer) -> ActionOutcome:
    """Writes nothing to the cluster: the notifier (interfaces/) pages a person."""
    return ActionOutcome(
        action=action,
        status="escalated",
        message=f"escalated ({action.params.severity}): {action.params.summary}",
    )


_HANDLERS: dict[str, Callable[[ClusterConnection, Any, _Writer], ActionOutcome]] = {
    "restart": restart,
    "delete_pod": delete_pod,
    "scale": scale,
    "rollback": rollback,
    "set_resources": set_resources,
    "set_image": set_image,
    "patch_service": patch_service,
    "set_hpa": set_hpa,
    "shift_traffic": shift_traffic,
    "cordon": cordon,
    "uncordon": uncordon,
    "escalate": escalate,
}
