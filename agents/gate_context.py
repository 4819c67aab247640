"""Gather what the policy gate needs to judge one action, from the cluster, not from the plan.

The plan is model output: it may claim a pod belongs to nothing, an image
ran before, a PDB allows a disruption. The gate believes none of it. Right
before each judgement (the policy_gate node, and again in the executor just
before the API call) `gather_gate_context` reads the target and its
surroundings through the read tools (describe_workload, describe_pod,
list_pods, list_pdbs, list_services, list_hpas, list_httproutes,
list_nodes), and the incident's own record of what it did. What cannot be
read stays unknown, and the gate fails closed on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from agents.context import AgentContext
from memory.base import MemoryStoreError
from policies.budgets import WRITE_STATUSES
from policies.context import GateContext, PastAction, PdbInfo, PodInfo
from state import Action, IncidentState, ObjectRef, PatchServiceAction, ShiftTrafficAction

#: Workload kinds describe_workload reads.
_WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
#: Most pods list_pods returns; a workload with more is "unknown" to the gate.
_POD_LIMIT = 500
#: How far back earlier incidents' actions count against a workload (the gate's rate window).
_HISTORY = timedelta(hours=1)
#: Earlier incidents looked at for actions on the same workload.
_MEMORY_INCIDENTS = 50


async def gather_gate_context(
    ctx: AgentContext, state: IncidentState, action: Action
) -> GateContext:
    """The GateContext for `action`, read from the cluster now."""
    now = ctx.clock.now()
    fields: dict[str, Any] = {
        "mode": state.incident.mode if state.incident else state.input.mode,
        "incident_id": state.incident.id if state.incident else state.input.incident_id,
        "now": now,
        "own_namespace": ctx.settings.policy.own_namespace,
        "hypothesis_confidence": _confidence(state, action.hypothesis_id),
        "tokens_used": state.tokens.input + state.tokens.output,
        "cost_usd": state.tokens.cost_usd,
    }
    if action.action != "escalate":
        reader = _Reader(ctx)
        await reader.read(action)
        fields.update(reader.fields)
        workload = fields.get("workload")
        key = str(workload) if isinstance(workload, ObjectRef) else _ref(action).key
        incident_id = str(fields["incident_id"])
        mine = _executed(state, incident_id)
        earlier = await _remembered(ctx, now, incident_id)
        fields["executed_in_incident"] = mine
        fields["undoes_own_change"] = any(
            e.status == "applied" and e.inverse is not None and e.inverse == action
            for e in state.executed
        )
        fields["executed_on_workload"] = [
            p for p in [*mine, *earlier] if _same_workload(p, key) and p.at >= now - _HISTORY
        ]
    return GateContext(**fields)


def _ref(action: Action) -> ObjectRef:
    t = action.target
    return ObjectRef(kind=t.kind, namespace=t.namespace or "", name=t.name)


def _confidence(state: IncidentState, hypothesis_id: str) -> float | None:
    if state.plan is None:
        return None
    found = next((h for h in state.plan.hypotheses if h.id == hypothesis_id), None)
    return found.confidence if found else None


def _same_workload(past: PastAction, key: str) -> bool:
    """Whether a past action hit the workload `key` (`Kind/ns/name`).

    A deleted pod is gone, so its owner cannot be read any more; pods carry
    their controller's name as a prefix (generateName: `<deployment>-<hash>-<id>`,
    `<statefulset>-<ordinal>`), which counts the pod against the workload. The
    match errs towards counting, which only makes the rate limit stricter.
    """
    if past.workload == key:
        return True
    kind, _, rest = past.target.partition("/")
    if kind != "Pod":
        return False
    ns, _, pod = rest.partition("/")
    w_kind, _, w_rest = key.partition("/")
    w_ns, _, w_name = w_rest.partition("/")
    return w_kind != "Pod" and ns == w_ns and pod.startswith(f"{w_name}-")


def _executed(state: IncidentState, incident_id: str) -> list[PastAction]:
    return [
        PastAction(
            action=e.action.action,
            target=str(e.action.target),
            workload=str(e.action.target),
            status=e.status,
            at=e.at,
            incident_id=incident_id,
        )
        for e in state.executed
        if e.status in WRITE_STATUSES and e.action.action != "escalate"
    ]


async def _remembered(ctx: AgentContext, now: datetime, incident_id: str) -> list[PastAction]:
    """Writes of earlier incidents closed within the rate window (best effort)."""
    try:
        records = await ctx.memory.list(limit=_MEMORY_INCIDENTS)
    except MemoryStoreError as exc:
        # Memory is advisory here (the incident's own record still counts, and the in-process
        # store is the default): an unreachable Redis must not stop the gate from judging.
        ctx.say("gate", f"memory unavailable for the action history ({type(exc).__name__})")
        return []
    out: list[PastAction] = []
    for record in records:
        if record.incident_id == incident_id or record.closed_at < now - _HISTORY:
            continue
        for a in record.actions:
            if a.status in WRITE_STATUSES and a.action != "escalate":
                out.append(
                    PastAction(
                        action=a.action,
                        target=a.target,
                        workload=a.target,
                        status=a.status,
                        at=record.closed_at,
                        incident_id=record.incident_id,
                    )
                )
    return out


class _Reader:
    """Reads the target of one action and what around it the gate needs."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.fields: dict[str, Any] = {}
        self.errors: list[str] = []

    async def call(self, tool: str, args: Mapping[str, Any]) -> Any:
        """The tool's data, or None after noting why it failed."""
        result = await self.ctx.toolbox.acall(tool, args)
        if result.status in ("success", "no_data"):
            return result.data
        if result.error_kind == "NotFound":
            return _NOT_FOUND
        self.errors.append(f"{tool}: {result.error or result.status}")
        return None

    async def read(self, action: Action) -> None:
        t = action.target
        kind = t.kind
        if kind in _WORKLOAD_KINDS:
            await self.workload(ObjectRef(kind=kind, namespace=t.namespace or "", name=t.name))
        elif kind == "Pod":
            await self.pod(t.namespace or "", t.name)
        elif kind == "Node":
            await self.node(t.name)
        else:
            tool = {
                "Service": "list_services",
                "HorizontalPodAutoscaler": "list_hpas",
                "HTTPRoute": "list_httproutes",
            }[kind]
            data = await self.call(tool, {"namespace": t.namespace, "name": t.name})
            rows = data if data is None or data is _NOT_FOUND else _named(data, t.name)
            self.found(kind, rows)
            if self.fields.get("target_exists"):
                self.fields["workload"] = ObjectRef(
                    kind=kind, namespace=t.namespace or "", name=t.name
                )
                if isinstance(action, PatchServiceAction) and isinstance(rows, list):
                    await self.service(action, rows[0])
                if isinstance(action, ShiftTrafficAction) and isinstance(rows, list):
                    self.fields["route_weights"] = _rule_weights(rows[0], action.params.rule_index)
        self.fields["read_errors"] = list(self.errors)

    async def service(self, action: PatchServiceAction, row: Mapping[str, Any]) -> None:
        """The pods the patched Service would select, and the ports the selected ones declare."""
        selector = action.params.selector
        if selector is None:
            count = row.get("selected_pods")
            self.fields["service_selected_pods"] = count if isinstance(count, int) else None
            declared: list[int | str] = []
            for port in row.get("declared_container_ports") or []:
                if isinstance(port.get("containerPort"), int):
                    declared.append(port["containerPort"])
                if isinstance(port.get("name"), str):
                    declared.append(port["name"])
            self.fields["service_declared_ports"] = declared
            return
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        result = await self.ctx.toolbox.acall(
            "list_pods",
            {"namespace": action.target.namespace, "label_selector": label_selector, "limit": 20},
        )
        if result.status in ("success", "no_data"):
            live = [p for p in result.data or [] if not p.get("deleting_since")]
            self.fields["service_selected_pods"] = len(live) if not result.truncated else 1
        else:
            self.errors.append(f"list_pods {label_selector!r}: {result.error or result.status}")

    def found(self, kind: str, data: Any) -> None:
        if data is None:
            self.fields["target_exists"] = None
        elif data is _NOT_FOUND or not data:
            self.fields["target_exists"] = False
        else:
            self.fields["target_exists"] = True
            self.fields["target_kind"] = kind

    async def workload(self, ref: ObjectRef) -> None:
        data = await self.call(
            "describe_workload", {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}
        )
        self.found(ref.kind, data)
        if not isinstance(data, dict):
            return
        self.fields["workload"] = ref
        desired = (data.get("replicas") or {}).get("desired")
        if isinstance(desired, int):
            self.fields["current_replicas"] = desired
        images: dict[str, list[str]] = {}
        resources: dict[str, dict[str, dict[str, str]]] = {}
        for c in (data.get("template") or {}).get("containers") or []:
            _add(images, c.get("name"), c.get("image"))
            if isinstance(c.get("name"), str):
                res = c.get("resources") or {}
                resources[c["name"]] = {
                    section: {str(k): str(v) for k, v in (res.get(section) or {}).items()}
                    for section in ("requests", "limits")
                }
        self.fields["container_resources"] = resources
        for rs in data.get("replica_sets") or []:
            for container, image in (rs.get("images") or {}).items():
                _add(images, container, image)
        self.fields["images_ran"] = images
        if ref.kind == "Deployment":
            revisions = [rs.get("revision") for rs in data.get("replica_sets") or []]
            self.fields["revisions"] = sorted({r for r in revisions if isinstance(r, int)})
            if isinstance(data.get("revision"), int):
                self.fields["current_revision"] = data["revision"]
        self.fields["pods"] = await self.pods(ref, data.get("selector"))

    async def pods(self, ref: ObjectRef, selector: Any) -> list[PodInfo] | None:
        args: dict[str, Any] = {"namespace": ref.namespace, "limit": _POD_LIMIT}
        if (
            isinstance(selector, dict)
            and selector
            and all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items())
        ):
            args["label_selector"] = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        result = await self.ctx.toolbox.acall("list_pods", args)
        if result.status not in ("success", "no_data") or result.truncated:
            self.errors.append(
                f"list_pods: {result.error or 'truncated: too many pods to judge one at a time'}"
            )
            return None
        wanted = f"{ref.kind}/{ref.name}"
        return [_pod_info(p) for p in result.data or [] if p.get("workload") == wanted]

    async def pod(self, namespace: str, name: str) -> None:
        data = await self.call("describe_pod", {"namespace": namespace, "name": name})
        self.found("Pod", data)
        if not isinstance(data, dict):
            return
        owner = str(data.get("workload") or "")
        kind, _, owner_name = owner.partition("/")
        if kind in _WORKLOAD_KINDS and owner_name:
            ref = ObjectRef(kind=kind, namespace=namespace, name=owner_name)
            self.fields["workload"] = ref
            described = await self.call(
                "describe_workload", {"kind": kind, "namespace": namespace, "name": owner_name}
            )
            selector = described.get("selector") if isinstance(described, dict) else None
            self.fields["pods"] = await self.pods(ref, selector)
        elif kind and owner_name:
            # Owned by a controller the gate knows no reader for (a Job, an operator's kind):
            # it will be recreated, but its siblings and their disruption are unknown.
            self.fields["workload"] = ObjectRef(kind=kind, namespace=namespace, name=owner_name)
        labels = data.get("labels") or {}
        self.fields["pdbs"] = await self.pdbs(namespace, labels)

    async def pdbs(self, namespace: str, labels: Mapping[str, str]) -> list[PdbInfo] | None:
        result = await self.ctx.toolbox.acall("list_pdbs", {"namespace": namespace, "limit": 500})
        if result.status not in ("success", "no_data") or result.truncated:
            self.errors.append(f"list_pdbs: {result.error or 'truncated'}")
            return None
        out = []
        for pdb in result.data or []:
            if _selects(pdb.get("selector"), labels):
                allowed = pdb.get("disruptions_allowed")
                out.append(
                    PdbInfo(
                        name=str(pdb.get("name")),
                        disruptions_allowed=allowed if isinstance(allowed, int) else None,
                    )
                )
        return out

    async def node(self, name: str) -> None:
        result = await self.ctx.toolbox.acall("list_nodes", {"limit": 500})
        if result.status not in ("success", "no_data") or result.truncated:
            self.errors.append(f"list_nodes: {result.error or 'truncated'}")
            self.fields["target_exists"] = None
            return
        nodes = result.data or []
        self.found("Node", [n for n in nodes if n.get("name") == name])
        self.fields["schedulable_nodes"] = sum(
            1
            for n in nodes
            if n.get("name") != name and n.get("ready") == "True" and not n.get("unschedulable")
        )


class _NotFound:
    """Marks a 404: the target does not exist (as opposed to: could not be read)."""


_NOT_FOUND = _NotFound()


def _rule_weights(route: Mapping[str, Any], index: int) -> dict[str, int] | None:
    rule = next((r for r in route.get("rules") or [] if r.get("index") == index), None)
    if rule is None:
        return None
    return {
        str(b.get("name")): int(b.get("weight", 1))
        for b in rule.get("backends") or []
        if isinstance(b.get("weight", 1), int)
    }


def _named(data: Any, name: str) -> list[Any]:
    return [row for row in data or [] if isinstance(row, dict) and row.get("name") == name]


def _add(images: dict[str, list[str]], container: Any, image: Any) -> None:
    if isinstance(container, str) and isinstance(image, str):
        seen = images.setdefault(container, [])
        if image not in seen:
            seen.append(image)


def _pod_info(row: Mapping[str, Any]) -> PodInfo:
    ready_text = str(row.get("ready") or "0/1")
    have, _, want = ready_text.partition("/")
    terminating = bool(row.get("deleting_since")) or row.get("status") == "Terminating"
    return PodInfo(
        name=str(row.get("name")),
        ready=have == want and have not in ("", "0") and not terminating,
        terminating=terminating,
        node=row.get("node"),
    )


def _selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """Whether a PDB's selector (matchLabels, or a full LabelSelector) selects these labels.

    A selector the gate cannot read counts as selecting: the PDB then guards the pod.
    """
    if selector is None:
        # policy/v1: a null selector selects nothing; an empty one ({}) selects every pod.
        return False
    if not isinstance(selector, dict):
        return True
    if "matchLabels" in selector or "matchExpressions" in selector:
        match = selector.get("matchLabels") or {}
        expressions = selector.get("matchExpressions") or []
    else:
        match, expressions = selector, []
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    return all(_expression(e, labels) for e in _as_list(expressions))


def _as_list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else [value]


def _expression(expr: Any, labels: Mapping[str, str]) -> bool:
    if not isinstance(expr, dict):
        return True
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return labels.get(str(key)) in values
    if op == "NotIn":
        return labels.get(str(key)) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return True
