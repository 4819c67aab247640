"""Approval requests and the checks an answer must pass before it counts.

An approval is a person's answer, and anything that reaches the approval
node may be replayed, forged or late: a Slack button pressed twice, an old
message's payload posted again, an answer to a plan that has since been
revised. `new_request_id` binds a request to the exact actions it asks
about (a digest) and to one moment (a nonce); `check_approval` returns every
reason to refuse an answer (empty: it counts). Even an accepted approval is
not an authorization: the gate runs again right before each API call.

Times: `now` and `issued_at` must come from the same clock (the cluster's,
ClusterClock.now()). `Approval.at` is when the person answered, on their
clock, and is recorded, not compared.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Collection, Sequence
from datetime import datetime

from policies.limits import PolicyLimits
from state import Action, Approval

#: Request ids look like `apr-<digest>-<nonce>`.
_PREFIX = "apr"
_DIGEST_LEN = 16


def plan_digest(actions: Sequence[Action], indexes: Collection[int]) -> str:
    """A digest of the actions at `indexes` (index and full JSON of each)."""
    body = [
        [i, json.loads(actions[i].model_dump_json())] for i in sorted(indexes) if i < len(actions)
    ]
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:_DIGEST_LEN]


def new_request_id(actions: Sequence[Action], indexes: Collection[int]) -> str:
    """A fresh request id bound to these actions: a digest of them and a random nonce."""
    return f"{_PREFIX}-{plan_digest(actions, indexes)}-{secrets.token_hex(6)}"


def request_digest(request_id: str) -> str | None:
    """The action digest a request id carries (None when it is not one of ours)."""
    parts = request_id.split("-")
    if len(parts) != 3 or parts[0] != _PREFIX or len(parts[1]) != _DIGEST_LEN:
        return None
    return parts[1]


def check_approval(
    approval: Approval,
    request_id: str,
    pending_action_indexes: Collection[int],
    now: datetime,
    *,
    issued_at: datetime | None = None,
    previous: Sequence[Approval] = (),
    actions: Sequence[Action] | None = None,
    limits: PolicyLimits | None = None,
) -> list[str]:
    """Every reason to refuse `approval` as the answer to `request_id`; empty when it counts.

    Args:
        approval: the answer received.
        request_id: the request currently pending (state.pending_approval).
        pending_action_indexes: plan indexes the request asked about.
        now: the cluster's time now.
        issued_at: when the request was made (cluster time); with the TTL, a late answer
            is refused.
        previous: answers already accepted or refused in this incident (state.approvals):
            a second answer to the same request is a replay.
        actions: the current plan's actions; when given, the request must still be about
            exactly these actions (the plan has not changed since).
        limits: for `approvers` and `approval_ttl_s`.
    """
    reasons: list[str] = []
    if not request_id:
        reasons.append("no approval request is pending: nothing to answer")
    if not approval.request_id:
        reasons.append("the answer names no request id (forged or malformed)")
    elif request_id and approval.request_id != request_id:
        reasons.append(
            f"the answer is for request {approval.request_id!r}, but the pending request is "
            f"{request_id!r} (replayed or forged)"
        )
    if approval.request_id and any(p.request_id == approval.request_id for p in previous):
        reasons.append(f"request {approval.request_id!r} was already answered (replay)")
    if not approval.by.strip():
        reasons.append("the answer names no approver")
    elif limits is not None and limits.approvers and approval.by not in limits.approvers:
        reasons.append(f"{approval.by!r} is not one of the approvers the policy names")
    if approval.via == "policy":
        reasons.append("a person's answer cannot claim to come from the policy")
    pending = set(pending_action_indexes)
    if not pending:
        reasons.append("no action is pending approval")
    stray = sorted(set(approval.action_indexes) - pending)
    if stray:
        reasons.append(
            f"the answer covers actions {stray} that are not pending approval "
            f"(pending: {sorted(pending)})"
        )
    if issued_at is not None and limits is not None:
        age = (now - issued_at).total_seconds()
        if age > limits.approval_ttl_s:
            reasons.append(
                f"the request is {age:.0f}s old, past approval_ttl_s "
                f"({limits.approval_ttl_s:.0f}s): the incident may have changed; "
                "gate the plan again"
            )
    if actions is not None and request_id:
        bound = request_digest(request_id)
        if bound is None:
            reasons.append(f"request id {request_id!r} is not bound to a plan")
        elif bound != plan_digest(actions, pending):
            reasons.append(
                "the plan changed since the request was made: its answer no longer applies; "
                "gate the plan again"
            )
    return reasons


def approved_indexes(approval: Approval, pending_action_indexes: Collection[int]) -> set[int]:
    """The plan indexes an accepted `approve` answer covers (all pending when it lists none)."""
    if approval.decision != "approve":
        return set()
    pending = set(pending_action_indexes)
    return set(approval.action_indexes) & pending if approval.action_indexes else pending
