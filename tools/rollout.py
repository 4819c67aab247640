"""A Deployment's rollout history, read from its ReplicaSets as `kubectl rollout history` does.

Each ReplicaSet the Deployment owns is one revision (annotation
deployment.kubernetes.io/revision); its pod template is what that revision
ran. The rollback and set_image actions use the same reading.
"""

from __future__ import annotations

from typing import Any

from tools.args import Name, Namespace, ToolArgs
from tools.connection import ClusterConnection
from tools.kube import KINDS, Obj, images_of, meta
from tools.registry import Answer, Toolbox, read_tool

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def owned_replica_sets(conn: ClusterConnection, deployment: Obj) -> list[Obj]:
    """The Deployment's ReplicaSets, oldest revision first."""
    uid = meta(deployment).get("uid")
    namespace = meta(deployment).get("namespace")
    owned = [
        rs
        for rs in KINDS["ReplicaSet"].list(conn, namespace)
        if any(o.get("uid") == uid for o in meta(rs).get("ownerReferences") or [])
    ]
    owned.sort(key=revision_of)
    return owned


def revision_of(obj: Obj) -> int:
    try:
        return int((meta(obj).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def revision_entry(rs: Obj, current: int) -> dict[str, Any]:
    template = (rs.get("spec") or {}).get("template") or {}
    annotations = meta(rs).get("annotations") or {}
    return {
        "revision": revision_of(rs),
        "current": revision_of(rs) == current,
        "replica_set": meta(rs).get("name"),
        "images": images_of(template.get("spec") or {}),
        "change_cause": annotations.get(CHANGE_CAUSE),
        "created": meta(rs).get("creationTimestamp"),
        "replicas": (rs.get("spec") or {}).get("replicas", 0),
        "ready": (rs.get("status") or {}).get("readyReplicas", 0),
    }


class RolloutHistoryArgs(ToolArgs):
    namespace: Namespace
    name: Name


@read_tool(RolloutHistoryArgs)
def rollout_history(box: Toolbox, args: RolloutHistoryArgs) -> Answer:
    """List a Deployment's revisions, oldest first: images, change-cause and creation time.

    Compare revision creation times with when the trouble began: a revision
    created just before the onset is a rollback candidate.

    Args:
        namespace: The Deployment's namespace.
        name: The Deployment's name.
    """
    conn = box.kube()
    deployment = KINDS["Deployment"].read(conn, args.namespace, args.name)
    current = revision_of(deployment)
    revisions = [revision_entry(rs, current) for rs in owned_replica_sets(conn, deployment)]
    return Answer(
        {
            "deployment": args.name,
            "namespace": args.namespace,
            "current_revision": current,
            "revisions": revisions,
        },
        query=f"read deployment {args.namespace}/{args.name} and its ReplicaSets",
        empty=not revisions,
    )
