"""Incident states built by hand for the memory tests: what the graph's nodes would leave."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agents.context import AgentContext
from memory.base import MemoryStore
from policies.limits import PolicyLimits
from settings import Settings
from state import (
    AlertInfo,
    Category,
    Evidence,
    ExecutedAction,
    Hypothesis,
    Incident,
    IncidentInput,
    IncidentState,
    LogFindings,
    LogTemplate,
    ObjectRef,
    Plan,
    TranscriptEntry,
    Verification,
    WorkloadLogs,
    parse_action,
)
from tools.registry import Toolbox

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class FixedClock:
    """A cluster clock that moves only when told."""

    t: datetime = T0
    slept: list[float] = field(default_factory=list)

    def now(self) -> datetime:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += timedelta(seconds=seconds)


def runtime(memory: MemoryStore, data_dir: Path, clock: FixedClock | None = None) -> Any:
    ctx = AgentContext(
        settings=Settings(data_dir=data_dir),
        toolbox=Toolbox(),
        clock=clock or FixedClock(),
        memory=memory,
        limits=PolicyLimits(),
    )
    return Runtime(context=ctx)


def incident(
    incident_id: str,
    *,
    alertname: str = "KubePodCrashLooping",
    namespace: str = "shop",
    workload: str = "cartservice",
    opened_at: datetime = T0,
    labels: dict[str, str] | None = None,
    summary: str = "Pod is crash looping.",
) -> Incident:
    alert_labels = {"alertname": alertname, "namespace": namespace, "severity": "warning"}
    alert_labels.update(labels or {})
    return Incident(
        id=incident_id,
        title=f"{alertname} in {namespace}",
        trigger="alert",
        namespace=namespace,
        workload=ObjectRef(kind="Deployment", namespace=namespace, name=workload),
        fingerprint=f"{alertname}/{namespace}/Deployment",
        mode="autonomous",
        alert=AlertInfo(labels=alert_labels, annotations={"summary": summary}),
        opened_at=opened_at,
    )


def oom_state(
    incident_id: str,
    *,
    workload: str = "cartservice",
    namespace: str = "shop",
    recovered: bool = True,
    action: str = "set_resources",
    opened_at: datetime = T0,
    cause_kind: str = "oom",
) -> IncidentState:
    """An OOMKilled workload whose memory limit was raised (and it recovered, or not)."""
    inc = incident(incident_id, workload=workload, namespace=namespace, opened_at=opened_at)
    subject = ObjectRef(kind="Deployment", namespace=namespace, name=workload)
    t = opened_at
    evidence = [
        Evidence(
            id="log-1",
            source="status",
            signal="oom_killed",
            subject=subject,
            summary=f"{workload} last terminated OOMKilled (limit 128Mi, peak 131Mi)",
            severity=0.9,
            data={"reason": "OOMKilled", "limit": "128Mi"},
            agent="log_analyst",
        ),
        Evidence(
            id="log-2",
            source="status",
            signal="crash_loop",
            subject=subject,
            summary=f"{workload} is in CrashLoopBackOff with 4 restarts",
            severity=0.8,
            agent="log_analyst",
        ),
        Evidence(
            id="dep-1",
            source="metrics",
            signal="error_ratio",
            subject=ObjectRef(kind="Service", namespace=namespace, name="frontend"),
            summary="frontend error ratio 0.21",
            severity=0.7,
            data={"error_ratio": 0.21, "service": "frontend"},
            agent="dependency_tracer",
        ),
        Evidence(
            id="dep-2",
            source="metrics",
            signal="latency",
            subject=ObjectRef(kind="Service", namespace=namespace, name="frontend"),
            summary="frontend p99 normal",
            severity=0.1,
            agent="dependency_tracer",
        ),
    ]
    logs = LogFindings(
        workloads=[
            WorkloadLogs(
                workload=subject,
                templates=[
                    LogTemplate(
                        template="fatal error: runtime: out of memory allocating <*> bytes",
                        count=4,
                        level="fatal",
                        new=True,
                    ),
                    LogTemplate(template="GET /cart 200 <*>ms", count=300, level="info"),
                ],
            )
        ]
    )
    hyp = Hypothesis(
        id="h1",
        root_cause=subject,
        cause_kind=cause_kind,
        category=Category(system_level="Application", fault_type="Resource Exhaustion"),
        confidence=0.85,
        statement=f"{workload} runs out of memory at its 128Mi limit",
        evidence_ids=["log-1", "log-2"],
    )
    params: dict[str, Any]
    if action == "set_resources":
        params = {"container": "server", "limits": {"memory": "256Mi"}}
    elif action == "restart":
        params = {}
    else:
        raise ValueError(action)
    act = parse_action(
        {
            "action": action,
            "target": {"kind": "Deployment", "namespace": namespace, "name": workload},
            "params": params,
            "hypothesis_id": "h1",
            "evidence_ids": ["log-1"],
            "expected_effect": "no more OOMKilled restarts",
            "verification": "pods ready, no restarts for 2m",
        }
    )
    plan = Plan(hypotheses=[hyp], actions=[act], reasoning="OOMKilled at the limit")
    applied_at = t + timedelta(seconds=60)
    checked_at = applied_at + timedelta(seconds=120)
    return IncidentState(
        input=IncidentInput(trigger="alert", mode="autonomous"),
        incident=inc,
        evidence=evidence,
        log_findings=logs,
        plan=plan,
        executed=[
            ExecutedAction(
                action_index=0,
                action=act,
                status="applied",
                before={"limits": {"memory": "128Mi"}},
                after={"limits": {"memory": "256Mi"}},
                at=applied_at,
            )
        ],
        verifications=[
            Verification(
                status="recovered" if recovered else "not_yet",
                checks=["pods ready"],
                window_s=120,
                at=checked_at,
            )
        ],
        transcript=[
            TranscriptEntry(at=t, node="intake", kind="intake", summary="alert received"),
        ],
        detected_at=t + timedelta(seconds=10),
        localized_at=t + timedelta(seconds=20),
        mitigated_at=checked_at if recovered else None,
    )
