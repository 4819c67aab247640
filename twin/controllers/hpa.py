"""The HorizontalPodAutoscaler controller (autoscaling/v2, resource metrics).

Every 15 s each HPA reads its target's scale, the CPU (or memory) each of
the target's pods uses now (`cluster.pods[uid].containers[name].cpu`, cores,
written by the traffic model, as metrics-server would report it) and the
pods' requests, and computes the replica count the way replica_calculator.go
does: utilization = 100 * usage / requests over the pods with metrics, a
0.1 tolerance, unready and missing pods treated conservatively. Without a
`behavior`, scale-downs are stabilized over 300 s and scale-ups limited to
max(2x, 4); with one, its windows and policies apply. The result is clamped
to min/max, written through the scale path, and reported with
`SuccessfulRescale` events (`New size: 4; reason: cpu resource utilization
(percentage of request) above target`), status (currentReplicas,
desiredReplicas, currentMetrics, lastScaleTime) and the AbleToScale,
ScalingActive and ScalingLimited conditions.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from twin.clock import parse_rfc3339
from twin.controllers import quantities
from twin.controllers.base import Index, Key, get_condition, int_field, key_of, now_str
from twin.errors import ApiError
from twin.store import EventType, Obj

if TYPE_CHECKING:
    from twin.cluster import Cluster

COMPONENT = "horizontal-pod-autoscaler"
#: --horizontal-pod-autoscaler-sync-period.
SYNC_PERIOD = 15.0
TOLERANCE = 0.1
#: --horizontal-pod-autoscaler-downscale-stabilization.
DOWNSCALE_STABILIZATION = 300.0
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0
#: metrics-server's resolution: a sample covers this window.
METRIC_WINDOW = 15.0
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


_NO_METRICS = (
    "unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
)
UP_STABILIZED = (
    "recent recommendations were lower than current one, applying the lowest recent recommendation"
)
DOWN_STABILIZED = (
    "recent recommendations were higher than current one, "
    "applying the highest recent recommendation"
)
SCALE_UP_LIMIT = "the desired replica count is increasing faster than the maximum scale rate"
SCALE_DOWN_LIMIT = "the desired replica count is decreasing faster than the maximum scale rate"
TOO_MANY = "the desired replica count is more than the maximum replica count"
TOO_FEW = "the desired replica count is less than the minimum replica count"
WITHIN_RANGE = "the desired count is within the acceptable range"


class MetricError(Exception):
    """A metric that could not be computed; the message is what the controller reports."""


@dataclass
class _State:
    next_sync: float = 0.0
    generation: int = 0
    recommendations: list[tuple[int, float]] = field(default_factory=list)
    scale_up: list[tuple[int, float]] = field(default_factory=list)
    scale_down: list[tuple[int, float]] = field(default_factory=list)


def set_condition(hpa: Obj, type_: str, status: str, reason: str, message: str, now: str) -> None:
    """setConditionInList: in place; the transition time moves only with the status."""
    conditions = hpa.setdefault("status", {}).setdefault("conditions", [])
    cond = get_condition(hpa["status"], type_)
    if cond is None:
        cond = {"type": type_}
        conditions.append(cond)
    if cond.get("status") != status:
        cond["lastTransitionTime"] = now
    cond["status"] = status
    cond["reason"] = reason
    cond["message"] = message
    for name in ("type", "status", "lastTransitionTime", "reason", "message"):
        cond[name] = cond.pop(name, None)


@dataclass
class _PodSample:
    name: str
    value: int  # milli-units
    request: int | None


class HPAController:
    name = COMPONENT

    def __init__(self, cluster: Cluster, index: Index) -> None:
        self.index = index
        self.rt = cluster.rt("HorizontalPodAutoscaler")
        self._states: dict[Key, _State] = {}
        with cluster.lock:
            for hpa in cluster.store.iter_live(self.rt):
                self._states[key_of(hpa)] = _State(cluster.elapsed)
        index.on(self.rt.key, self._on_hpa)
        self._clock = cluster.clock

    def _on_hpa(self, etype: EventType, hpa: Obj) -> None:
        key = key_of(hpa)
        if etype == "DELETED":
            self._states.pop(key, None)
            return
        generation = int_field(hpa["metadata"], "generation", 1)
        state = self._states.get(key)
        if state is None:
            self._states[key] = _State(self._clock.elapsed, generation)
        elif state.generation != generation:
            state.generation = generation
            state.next_sync = min(state.next_sync, self._clock.elapsed)

    def step(self, cluster: Cluster, dt: float) -> None:
        now = cluster.elapsed
        for key, state in sorted(self._states.items()):
            if state.next_sync > now + 1e-9:
                continue
            state.next_sync = now + SYNC_PERIOD
            hpa = cluster.store.find(self.rt, *key)
            if hpa is not None:
                self.reconcile(cluster, hpa, state)

    # -- reconcile --------------------------------------------------------------------------------

    def reconcile(self, cluster: Cluster, hpa: Obj, state: _State) -> None:
        stamp = now_str(cluster)
        before = copy.deepcopy(hpa.get("status") or {})
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
        namespace = str(hpa["metadata"].get("namespace", ""))
        target = None
        target_rt = None
        try:
            target_rt = cluster.rt(kind, ref.get("apiVersion"))
            target = cluster.store.find(target_rt, namespace, name)
        except KeyError:
            pass
        if target is None or target_rt is None:
            plural = (
                f"{target_rt.plural}.{target_rt.group}"
                if target_rt and target_rt.group
                else kind.lower()
            )
            err = f'{plural} "{name}" not found'
            cluster.recorder.event(hpa, "Warning", "FailedGetScale", err, component=COMPONENT)
            set_condition(
                hpa,
                "AbleToScale",
                "False",
                "FailedGetScale",
                f"the HPA controller was unable to get the target's current scale: {err}",
                stamp,
            )
            self._commit(cluster, hpa, before)
            return
        set_condition(
            hpa,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
            stamp,
        )
        current = int_field(target.get("spec"), "replicas", 1)
        now = cluster.elapsed
        if not state.recommendations:
            state.recommendations.append((current, now))
        min_replicas = int_field(spec, "minReplicas", 1)
        max_replicas = int_field(spec, "maxReplicas", 1)
        metric_statuses: list[Obj] = []
        reason = ""
        if current == 0 and min_replicas != 0:
            desired = 0
            rescale = False
            set_condition(
                hpa,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
                stamp,
            )
        elif current > max_replicas:
            reason = "Current number of replicas above Spec.MaxReplicas"
            desired = max_replicas
            rescale = desired != current
        elif current < min_replicas:
            reason = "Current number of replicas below Spec.MinReplicas"
            desired = min_replicas
            rescale = desired != current
        else:
            proposal = self.compute_metrics(cluster, hpa, target, current, metric_statuses, stamp)
            if proposal is None:
                self._set_status(hpa, current, current, metric_statuses, False, stamp)
                self._commit(cluster, hpa, before)
                return
            metric_desired, metric_name = proposal
            desired = 0
            rescale_metric = ""
            if metric_desired > desired:
                desired = metric_desired
                rescale_metric = metric_name
            if desired > current:
                reason = f"{rescale_metric} above target"
            if desired < current:
                reason = "All metrics below target"
            if spec.get("behavior") is None:
                desired = self.normalize(
                    hpa, state, current, desired, min_replicas, max_replicas, now, stamp
                )
            else:
                desired = self.normalize_with_behaviors(
                    hpa, state, current, desired, min_replicas, max_replicas, now, stamp
                )
            rescale = desired != current
        if rescale:
            scaled = copy.deepcopy(target)
            scaled.setdefault("spec", {})["replicas"] = desired
            try:
                assert target_rt is not None
                cluster.replace(target_rt, scaled, check_version=False)
            except ApiError as exc:
                cluster.recorder.event(
                    hpa,
                    "Warning",
                    "FailedRescale",
                    f"New size: {desired}; reason: {reason}; error: {exc.message}",
                    component=COMPONENT,
                )
                set_condition(
                    hpa,
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    f"the HPA controller was unable to update the target scale: {exc.message}",
                    stamp,
                )
                self._set_status(hpa, current, current, metric_statuses, False, stamp)
                self._commit(cluster, hpa, before)
                return
            set_condition(
                hpa,
                "AbleToScale",
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
                stamp,
            )
            cluster.recorder.event(
                hpa,
                "Normal",
                "SuccessfulRescale",
                f"New size: {desired}; reason: {reason}",
                component=COMPONENT,
            )
            if spec.get("behavior") is not None:
                events = state.scale_up if desired > current else state.scale_down
                events.append((abs(desired - current), now))
        else:
            desired = current
        self._set_status(hpa, current, desired, metric_statuses, rescale, stamp)
        self._commit(cluster, hpa, before)

    def _set_status(
        self, hpa: Obj, current: int, desired: int, metrics: list[Obj], rescale: bool, stamp: str
    ) -> None:
        old = hpa.get("status") or {}
        status: Obj = {}
        if rescale:
            status["lastScaleTime"] = stamp
        elif old.get("lastScaleTime"):
            status["lastScaleTime"] = old["lastScaleTime"]
        status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        if metrics:
            status["currentMetrics"] = metrics
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        hpa["status"] = status

    def _commit(self, cluster: Cluster, hpa: Obj, before: Obj) -> None:
        if hpa.get("status") != before:
            cluster.store.commit(self.rt, hpa)

    # -- metrics ----------------------------------------------------------------------------------

    def compute_metrics(
        self, cluster: Cluster, hpa: Obj, target: Obj, current: int, statuses: list[Obj], stamp: str
    ) -> tuple[int, str] | None:
        """computeReplicasForMetrics: the largest proposal, or None when every metric failed."""
        specs = (hpa.get("spec") or {}).get("metrics") or []
        replicas = 0
        metric = ""
        invalid = 0
        first_error = ""
        first_condition: tuple[str, str] | None = None
        for metric_spec in specs:
            try:
                proposal, name, metric_status = self.resource_metric(
                    cluster, hpa, target, current, metric_spec
                )
            except MetricError as exc:
                kind = str(
                    ((metric_spec.get("resource") or {}).get("name")) or metric_spec.get("type", "")
                )
                reason = "FailedGetResourceMetric"
                if metric_spec.get("type") != "Resource":
                    reason = f"FailedGet{metric_spec.get('type', '')}Metric"
                cluster.recorder.event(hpa, "Warning", reason, str(exc), component=COMPONENT)
                if invalid == 0:
                    first_error = f"failed to get {kind} resource metric value: {exc}"
                    first_condition = (
                        reason,
                        f"the HPA was unable to compute the replica count: {exc}",
                    )
                invalid += 1
                continue
            statuses.append(metric_status)
            if replicas == 0 or proposal > replicas:
                replicas = proposal
                metric = name
        if invalid and (invalid >= len(specs) or replicas < current):
            assert first_condition is not None
            set_condition(
                hpa, "ScalingActive", "False", first_condition[0], first_condition[1], stamp
            )
            cluster.recorder.event(
                hpa,
                "Warning",
                "FailedComputeMetricsReplicas",
                f"invalid metrics ({invalid} invalid out of {len(specs)}), "
                f"first error is: {first_error}",
                component=COMPONENT,
            )
            return None
        set_condition(
            hpa,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {metric}",
            stamp,
        )
        return replicas, metric

    def resource_metric(
        self, cluster: Cluster, hpa: Obj, target: Obj, current: int, metric_spec: Obj
    ) -> tuple[int, str, Obj]:
        if metric_spec.get("type") != "Resource":
            raise MetricError(f"unsupported metric source type {metric_spec.get('type')!r}")
        resource = metric_spec.get("resource") or {}
        name = str(resource.get("name", "cpu"))
        goal = resource.get("target") or {}
        namespace = str(hpa["metadata"].get("namespace", ""))
        selector = (target.get("spec") or {}).get("selector")
        pods = self.index.select_labels(namespace, selector) if selector else []
        utilization = (
            goal.get("type", "Utilization") == "Utilization"
            and goal.get("averageUtilization") is not None
        )
        try:
            samples, missing, unready, ready_count = self.sample(cluster, pods, name)
        except MetricError as exc:
            kind = "utilization" if utilization else "usage"
            raise MetricError(f"failed to get {name} {kind}: {exc}") from None
        if utilization:
            target_util = int(goal["averageUtilization"])
            try:
                replicas, util, raw = self.utilization_replicas(
                    current, target_util, name, pods, samples, missing, unready, ready_count
                )
            except MetricError as exc:
                raise MetricError(f"failed to get {name} utilization: {exc}") from None
            value = _milli_text(raw)
            status = {
                "type": "Resource",
                "resource": {
                    "name": name,
                    "current": {"averageUtilization": util, "averageValue": value},
                },
            }
            return replicas, f"{name} resource utilization (percentage of request)", status
        raw_target = quantities.try_parse(goal.get("averageValue"))
        if raw_target is None:
            raise MetricError(
                "invalid resource metric source: neither a utilization target nor a value target"
            )
        try:
            replicas, usage = self.raw_replicas(
                current, raw_target.milli, samples, missing, unready, ready_count
            )
        except MetricError as exc:
            raise MetricError(f"failed to get {name} usage: {exc}") from None
        status = {
            "type": "Resource",
            "resource": {"name": name, "current": {"averageValue": _milli_text(usage)}},
        }
        return replicas, f"{name} resource", status

    def sample(
        self, cluster: Cluster, pods: list[Obj], resource: str
    ) -> tuple[dict[str, _PodSample], set[str], set[str], int]:
        """Metrics per pod plus groupPods: (samples, missing, unready, ready count)."""
        if not pods:
            raise MetricError(_NO_METRICS.format(resource=resource))
        now = cluster.clock.now()
        samples: dict[str, _PodSample] = {}
        missing: set[str] = set()
        unready: set[str] = set()
        ready_count = 0
        any_metric = False
        for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
            name = str(pod["metadata"]["name"])
            runtime = cluster.pods.get(str(pod["metadata"].get("uid", "")))
            value: int | None = None
            if runtime is not None and (pod.get("status") or {}).get("phase") == "Running":
                total = 0.0
                for c in runtime.containers.values():
                    total += c.cpu if resource == "cpu" else c.memory
                value = round(total * 1000)
                any_metric = True
            request = _pod_request(pod, resource)
            samples[name] = _PodSample(name, value if value is not None else 0, request)
            status = pod.get("status") or {}
            if pod["metadata"].get("deletionTimestamp") or status.get("phase") == "Failed":
                del samples[name]
                continue
            if status.get("phase") == "Pending":
                unready.add(name)
                continue
            if value is None:
                missing.add(name)
                continue
            if resource == "cpu":
                cond = get_condition(status, "Ready")
                started = status.get("startTime")
                if cond is None or not started:
                    unready.add(name)
                    continue
                start = parse_rfc3339(str(started))
                changed = parse_rfc3339(str(cond.get("lastTransitionTime") or started))
                if (now - start).total_seconds() < CPU_INITIALIZATION_PERIOD:
                    bad = (
                        cond.get("status") == "False"
                        or (now - changed).total_seconds() < METRIC_WINDOW
                    )
                else:
                    bad = (
                        cond.get("status") == "False"
                        and (changed - start).total_seconds() < INITIAL_READINESS_DELAY
                    )
                if bad:
                    unready.add(name)
                    continue
            ready_count += 1
        if not any_metric:
            raise MetricError(_NO_METRICS.format(resource=resource))
        return samples, missing, unready, ready_count

    def utilization_replicas(
        self,
        current: int,
        target: int,
        resource: str,
        pods: list[Obj],
        samples: dict[str, _PodSample],
        missing: set[str],
        unready: set[str],
        ready_count: int,
    ) -> tuple[int, int, int]:
        """ReplicaCalculator.GetResourceReplicas: (replicas, utilization %, raw average)."""
        for pod in pods:
            for c in (pod.get("spec") or {}).get("containers") or []:
                if resource not in ((c.get("resources") or {}).get("requests") or {}):
                    raise MetricError(
                        f"missing request for {resource} in container {c.get('name')} "
                        f"of Pod {pod['metadata']['name']}"
                    )
        metrics = {n: s.value for n, s in samples.items() if n not in missing and n not in unready}
        requests = {n: s.request or 0 for n, s in samples.items()}
        if not metrics:
            raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
        ratio, util, raw = _utilization_ratio(metrics, requests, target)
        scale_up_with_unready = bool(unready) and ratio > 1.0
        if not scale_up_with_unready and not missing:
            if 1.0 - TOLERANCE <= ratio <= 1.0 + TOLERANCE:
                return current, util, raw
            return math.ceil(ratio * ready_count), util, raw
        if missing:
            for name in missing:
                if ratio < 1.0:
                    metrics[name] = requests[name] * max(100, target) // 100
                elif ratio > 1.0:
                    metrics[name] = 0
        if scale_up_with_unready:
            for name in unready:
                metrics[name] = 0
        new_ratio, _, _ = _utilization_ratio(metrics, requests, target)
        if (
            1.0 - TOLERANCE <= new_ratio <= 1.0 + TOLERANCE
            or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)
        ):
            return current, util, raw
        replicas = math.ceil(new_ratio * len(metrics))
        if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
            return current, util, raw
        return replicas, util, raw

    def raw_replicas(
        self,
        current: int,
        target_milli: int,
        samples: dict[str, _PodSample],
        missing: set[str],
        unready: set[str],
        ready_count: int,
    ) -> tuple[int, int]:
        """calcPlainMetricReplicas for an averageValue target: (replicas, average usage)."""
        metrics = {n: s.value for n, s in samples.items() if n not in missing and n not in unready}
        if not metrics or target_milli <= 0:
            raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
        usage = sum(metrics.values()) // len(metrics)
        ratio = usage / target_milli
        if not unready and not missing:
            if 1.0 - TOLERANCE <= ratio <= 1.0 + TOLERANCE:
                return current, usage
            return math.ceil(ratio * ready_count), usage
        for name in missing:
            metrics[name] = target_milli if ratio < 1.0 else 0
        if ratio > 1.0:
            for name in unready:
                metrics[name] = 0
        new_ratio = sum(metrics.values()) / len(metrics) / target_milli
        if (
            1.0 - TOLERANCE <= new_ratio <= 1.0 + TOLERANCE
            or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)
        ):
            return current, usage
        return math.ceil(new_ratio * len(metrics)), usage

    # -- normalization -------------------------------------------------------------------

    def normalize(
        self,
        hpa: Obj,
        state: _State,
        current: int,
        desired: int,
        min_replicas: int,
        max_replicas: int,
        now: float,
        stamp: str,
    ) -> int:
        """normalizeDesiredReplicas: 300 s downscale stabilization, then the limits."""
        stabilized = desired
        cutoff = now - DOWNSCALE_STABILIZATION
        old_index: int | None = None
        for i, (rec, when) in enumerate(state.recommendations):
            if when < cutoff:
                old_index = i
            elif rec > stabilized:
                stabilized = rec
        if old_index is not None:
            state.recommendations[old_index] = (desired, now)
        else:
            state.recommendations.append((desired, now))
        if stabilized != desired:
            set_condition(
                hpa,
                "AbleToScale",
                "True",
                "ScaleDownStabilized",
                DOWN_STABILIZED,
                stamp,
            )
        else:
            set_condition(
                hpa,
                "AbleToScale",
                "True",
                "ReadyForNewScale",
                "recommended size matches current size",
                stamp,
            )
        scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
        if max_replicas > scale_up_limit:
            maximum = scale_up_limit
            condition = ("ScaleUpLimit", SCALE_UP_LIMIT)
        else:
            maximum = max_replicas
            condition = ("TooManyReplicas", TOO_MANY)
        if stabilized < min_replicas:
            result = min_replicas
            condition = ("TooFewReplicas", TOO_FEW)
        elif stabilized > maximum:
            result = maximum
        else:
            result = stabilized
            condition = ("DesiredWithinRange", WITHIN_RANGE)
        limited = "False" if result == stabilized else "True"
        set_condition(hpa, "ScalingLimited", limited, condition[0], condition[1], stamp)
        return result

    def normalize_with_behaviors(
        self,
        hpa: Obj,
        state: _State,
        current: int,
        desired: int,
        min_replicas: int,
        max_replicas: int,
        now: float,
        stamp: str,
    ) -> int:
        behavior = (hpa.get("spec") or {}).get("behavior") or {}
        up = behavior.get("scaleUp") or {}
        down = behavior.get("scaleDown") or {}
        up_window = float(up.get("stabilizationWindowSeconds") or 0)
        down_window = float(
            down["stabilizationWindowSeconds"]
            if down.get("stabilizationWindowSeconds") is not None
            else DOWNSCALE_STABILIZATION
        )
        up_rec, down_rec = desired, desired
        old_index: int | None = None
        for i, (rec, when) in enumerate(state.recommendations):
            if when > now - up_window:
                up_rec = min(rec, up_rec)
            if when > now - down_window:
                down_rec = max(rec, down_rec)
            if when < now - up_window and when < now - down_window:
                old_index = i
        stabilized = max(current, up_rec)
        stabilized = min(stabilized, down_rec)
        if old_index is not None:
            state.recommendations[old_index] = (desired, now)
        else:
            state.recommendations.append((desired, now))
        if stabilized != desired:
            if desired >= current:
                set_condition(
                    hpa,
                    "AbleToScale",
                    "True",
                    "ScaleUpStabilized",
                    UP_STABILIZED,
                    stamp,
                )
            else:
                set_condition(
                    hpa,
                    "AbleToScale",
                    "True",
                    "ScaleDownStabilized",
                    DOWN_STABILIZED,
                    stamp,
                )
        else:
            set_condition(
                hpa,
                "AbleToScale",
                "True",
                "ReadyForNewScale",
                "recommended size matches current size",
                stamp,
            )
        result, reason, message = stabilized, "DesiredWithinRange", WITHIN_RANGE
        if stabilized > current:
            limit = _scale_limit(current, state, up, now, up=True)
            limit = max(limit, current)
            if max_replicas > limit:
                maximum = limit
                reason, message = "ScaleUpLimit", SCALE_UP_LIMIT
            else:
                maximum = max_replicas
                reason, message = "TooManyReplicas", TOO_MANY
            if stabilized > maximum:
                result = maximum
            else:
                reason, message = "DesiredWithinRange", WITHIN_RANGE
        elif stabilized < current:
            limit = _scale_limit(current, state, down, now, up=False)
            limit = min(limit, current)
            if min_replicas < limit:
                minimum = limit
                reason, message = "ScaleDownLimit", SCALE_DOWN_LIMIT
            else:
                minimum = min_replicas
                reason, message = "TooFewReplicas", TOO_FEW
            if stabilized < minimum:
                result = minimum
            else:
                reason, message = "DesiredWithinRange", WITHIN_RANGE
        limited = "False" if result == stabilized else "True"
        set_condition(hpa, "ScalingLimited", limited, reason, message, stamp)
        return result


def _scale_limit(current: int, state: _State, rules: Obj, now: float, *, up: bool) -> int:
    """calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors."""
    select = rules.get("selectPolicy", "Max")
    if select == "Disabled":
        return current
    policies: list[Any] = rules.get("policies") or []
    use_min = (select == "Min") == up
    result: int | None = None
    for policy in policies:
        period = float(policy.get("periodSeconds", 15))
        added = sum(change for change, when in state.scale_up if when > now - period)
        removed = sum(change for change, when in state.scale_down if when > now - period)
        start = current - added + removed
        value = int(policy.get("value", 0))
        if policy.get("type") == "Pods":
            proposed = start + value if up else start - value
        elif up:
            proposed = math.ceil(start * (1 + value / 100))
        else:
            proposed = int(start * (1 - value / 100))
        if result is None:
            result = proposed
        else:
            result = min(result, proposed) if use_min else max(result, proposed)
    return current if result is None else result


def _utilization_ratio(
    metrics: dict[str, int], requests: dict[str, int], target: int
) -> tuple[float, int, int]:
    """metricsclient.GetResourceUtilizationRatio."""
    total = requested = entries = 0
    for name, value in metrics.items():
        if name not in requests:
            continue
        total += value
        requested += requests[name]
        entries += 1
    if requested == 0:
        raise MetricError("no metrics returned matched known pods")
    util = total * 100 // requested
    return util / target, util, total // entries


def _milli_text(milli: int) -> str:
    """resource.NewMilliQuantity(v, DecimalSI).String()."""
    return quantities.canonical(Fraction(milli, 1000))


def _pod_request(pod: Obj, resource: str) -> int | None:
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        raw = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        q = quantities.try_parse(raw) if raw is not None else None
        if q is None:
            return None
        total += q.milli
    return total
