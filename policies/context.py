"""What the policy gate knows about the world when it judges one action.

The gate (policies/gate.py) is a pure function: it reads nothing. Everything
it needs, the target's live state, the workload's pods and PodDisruptionBudgets,
the images and revisions it ran, what kubemedic already did, the confidence of
the hypothesis the action serves, the cluster's time and the model budget
spent, arrives in a `GateContext`. agents/gate_context.py gathers it through
read tools right before each judgement; nothing in it is taken from the plan,
because the plan is model output and model output is untrusted.

Fields that could not be read stay `None` (unknown). The gate fails closed on
an unknown it needs: an invariant it cannot check is a denial, never a pass.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from state import Mode, ObjectRef

#: Namespaces no configuration can open for writes (SAFETY.md). kubemedic's own
#: namespace is added by `GateContext.own_namespace`, the operator's extras by
#: PolicyLimits.protected_namespaces.
HARD_PROTECTED_NAMESPACES: frozenset[str] = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "kubemedic"}
)
#: Kubernetes reserves the `kube-` prefix for its own namespaces; any of them is protected too.
PROTECTED_NAMESPACE_PREFIX = "kube-"
#: No scale or HPA bound above this, whatever the policy file says: a runaway scale-up
#: can starve a cluster (and its bill) faster than a person notices.
HARD_MAX_REPLICAS = 100

_CONTEXT = ConfigDict(extra="forbid", frozen=True)


class PodInfo(BaseModel):
    """One pod of the workload an action touches, as the cluster shows it now."""

    model_config = _CONTEXT

    name: str
    ready: bool
    #: It has a deletionTimestamp: it is going away (or stuck going away on a lost node).
    terminating: bool = False
    node: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class PdbInfo(BaseModel):
    """A PodDisruptionBudget that selects the pod (or the workload's pods)."""

    model_config = _CONTEXT

    name: str
    #: status.disruptionsAllowed; None when the controller has not computed it yet.
    disruptions_allowed: int | None = None


class PastAction(BaseModel):
    """An action kubemedic already carried out (this incident or an earlier one)."""

    model_config = _CONTEXT

    action: str
    #: The action's target, `Kind/namespace/name`.
    target: str
    #: The workload it counted against (a pod's owner, else the target itself).
    workload: str
    status: str
    #: Cluster time it was carried out.
    at: datetime
    incident_id: str = ""


class GateContext(BaseModel):
    """Everything the gate reads, gathered from the cluster and the incident, not from the plan."""

    model_config = _CONTEXT

    #: observe, approve or autonomous: the incident's mode.
    mode: Mode
    incident_id: str = ""
    #: The cluster's time now (the twin's simulated time in eval mode): freeze windows, rates.
    now: datetime
    #: kubemedic's own namespace (where it runs): never written.
    own_namespace: str = "kubemedic"

    # -- the target, live ---------------------------------------------------------
    #: The target exists (True), was not found (False), or could not be read (None).
    target_exists: bool | None = None
    #: The kind the cluster reports for the target (must match the action's).
    target_kind: str | None = None
    #: Why the target could not be read, when target_exists is None.
    read_errors: list[str] = Field(default_factory=list)
    #: The workload the target belongs to: a pod's controller (Deployment, StatefulSet,
    #: DaemonSet, or a bare ReplicaSet/Job), else the target itself. None for a bare pod.
    workload: ObjectRef | None = None
    #: spec.replicas of the workload (Deployment, StatefulSet) now.
    current_replicas: int | None = None
    #: The workload's pods now (for delete_pod: the target's siblings and itself).
    pods: list[PodInfo] | None = None
    #: PDBs that select the target pod; None when they could not be listed.
    pdbs: list[PdbInfo] | None = None
    #: Container -> images the workload ran (current template and earlier revisions).
    images_ran: dict[str, list[str]] | None = None
    #: Container -> its resources now ({"requests": {...}, "limits": {...}}), from the template.
    container_resources: dict[str, dict[str, dict[str, str]]] | None = None
    #: Revisions a Deployment can be rolled back to (its ReplicaSets), and the current one.
    revisions: list[int] | None = None
    current_revision: int | None = None
    #: Nodes other than the target that are Ready and schedulable now (a cordon must leave
    #: at least one).
    schedulable_nodes: int | None = None

    #: For patch_service: the pods the Service's selector would select after the patch
    #: (its new selector, or its current one when only ports change), and the container
    #: ports (numbers and names) those pods declare.
    service_selected_pods: int | None = None
    service_declared_ports: list[int | str] | None = None

    #: For shift_traffic: backend -> weight of the route's rule now (None: unknown, or no
    #: such rule).
    route_weights: dict[str, int] | None = None

    # -- what kubemedic did -------------------------------------------------------------
    #: Writes already carried out in this incident.
    executed_in_incident: list[PastAction] = Field(default_factory=list)
    #: Writes on the same workload in the last hour, in this incident or earlier ones.
    executed_on_workload: list[PastAction] = Field(default_factory=list)

    #: The action is the inverse the executor computed for one of this incident's applied
    #: writes (an undo after "worse"): the rate and budget limits do not hold back putting
    #: the cluster back as it was; every hard invariant still applies.
    undoes_own_change: bool = False

    # -- the plan's claim, checked against the state -------------------------------------
    #: Confidence of the hypothesis the action serves (None: the action names no known one).
    hypothesis_confidence: float | None = None

    # -- budget -------------------------------------------------------------------------------
    tokens_used: int = 0
    cost_usd: float = 0.0
