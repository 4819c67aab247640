"""Read tools over metrics and traces: the golden signals per Service and edge, resource
pressure per workload, and traces (errors first)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field

from tools.args import Name, Namespace, ServiceName, ToolArgs
from tools.errors import BackendUnavailable, ToolError
from tools.metrics import MetricsSource, SeriesResult, Window
from tools.registry import Answer, Toolbox, read_tool
from tools.result import Truncation
from tools.traces import TraceSource

Minutes = Annotated[int, Field(ge=1, le=24 * 60)]
StepSeconds = Annotated[int, Field(ge=5, le=3600)]


def _metrics(box: Toolbox) -> MetricsSource:
    if box.metrics is None:
        raise BackendUnavailable("no metrics backend is configured (Prometheus or the twin)")
    return box.metrics


def _traces(box: Toolbox) -> TraceSource:
    if box.traces is None:
        raise BackendUnavailable("no trace backend is configured (Jaeger or the twin)")
    return box.traces


def _window(box: Toolbox, minutes: int, step: int) -> Window:
    end = _metrics(box).now()
    return Window.last(minutes, end=end, step=float(step), rate_seconds=float(max(2 * step, 60)))


def _collect(
    results: list[SeriesResult], points: bool
) -> tuple[dict[str, object], list[Truncation]]:
    data: dict[str, object] = {}
    cuts: list[Truncation] = []
    for r in results:
        data[r.signal] = {**r.as_data(points=points), "query": r.query}
        cuts += r.truncations
    return data, cuts


class ServiceMetricsArgs(ToolArgs):
    namespace: Namespace
    service: ServiceName
    source: Name | None = None
    minutes: Minutes = 30
    step_seconds: StepSeconds = 60
    include_points: bool = True


@read_tool(ServiceMetricsArgs)
def service_metrics(box: Toolbox, args: ServiceMetricsArgs) -> Answer:
    """Request rate, error ratio and p50/p99 latency of a Service, or of one edge into it.

    With source set, the numbers are for calls from that workload to the
    Service as the caller saw them (they include failures of a callee that is
    down). Each signal carries the query that produced it and last/min/max/mean.

    Args:
        namespace: The Service's namespace.
        service: The Service (the callee).
        source: A caller workload's name, for the edge source -> service.
        minutes: How far back to look (1-1440).
        step_seconds: Resolution in seconds (5-3600); coarsened to fit 120 points.
        include_points: Return every point, not only the summary.
    """
    metrics = _metrics(box)
    window = _window(box, args.minutes, args.step_seconds)
    results = [
        metrics.request_rate(args.namespace, args.service, window, source=args.source),
        metrics.error_ratio(args.namespace, args.service, window, source=args.source),
        metrics.latency_quantile(args.namespace, args.service, 0.5, window, source=args.source),
        metrics.latency_quantile(args.namespace, args.service, 0.99, window, source=args.source),
    ]
    data, cuts = _collect(results, args.include_points)
    target = f"{args.source} -> {args.service}" if args.source else args.service
    empty = all(not r.series for r in results)
    return Answer(
        {"target": target, "namespace": args.namespace, **data},
        query="; ".join(r.query for r in results),
        truncations=cuts,
        empty=empty,
    )


class WorkloadMetricsArgs(ToolArgs):
    namespace: Namespace
    workload: Name
    minutes: Minutes = 30
    step_seconds: StepSeconds = 60
    include_points: bool = False


@read_tool(WorkloadMetricsArgs)
def workload_resource_metrics(box: Toolbox, args: WorkloadMetricsArgs) -> Answer:
    """Memory and CPU of a workload's containers as a share of their limits, and restarts over time.

    A memory ratio climbing toward 1.0 followed by a restart is an OOM kill;
    CPU pinned near 1.0 of its limit means throttling.

    Args:
        namespace: The workload's namespace.
        workload: The Deployment, StatefulSet or DaemonSet name (its pods are matched by name).
        minutes: How far back to look (1-1440).
        step_seconds: Resolution in seconds (5-3600); coarsened to fit 120 points.
        include_points: Return every point, not only the summary.
    """
    metrics = _metrics(box)
    window = _window(box, args.minutes, args.step_seconds)
    results = [
        metrics.memory_vs_limit(args.namespace, args.workload, window),
        metrics.cpu_vs_limit(args.namespace, args.workload, window),
        metrics.restarts(args.namespace, args.workload, window),
    ]
    data, cuts = _collect(results, args.include_points)
    return Answer(
        {"workload": args.workload, "namespace": args.namespace, **data},
        query="; ".join(r.query for r in results),
        truncations=cuts,
        empty=all(not r.series for r in results),
    )


class TraceServicesArgs(ToolArgs):
    pass


@read_tool(TraceServicesArgs)
def list_trace_services(box: Toolbox, args: TraceServicesArgs) -> Answer:
    """List the service names that traces are recorded for (use them in find_traces)."""
    return Answer(_traces(box).services(), query="GET /api/services")


class FindTracesArgs(ToolArgs):
    service: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.\-]+$")]
    operation: Annotated[str, Field(max_length=253)] | None = None
    errors_only: bool = True
    minutes: Minutes = 30
    min_duration_ms: Annotated[float, Field(ge=0)] | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 10


@read_tool(FindTracesArgs)
def find_traces(box: Toolbox, args: FindTracesArgs) -> Answer:
    """Find recent traces through a service, errors only by default, summarised span by span.

    Each trace lists its error spans (service, operation, status) and up to 40
    spans with parents, so the deepest failing callee is visible.

    Args:
        service: A traced service name (see list_trace_services).
        operation: Only this operation.
        errors_only: Only traces with an error span.
        minutes: How far back to look (1-1440).
        min_duration_ms: Only traces at least this slow.
        limit: Most traces to return (1-50).
    """
    traces = _traces(box).traces(
        args.service,
        operation=args.operation,
        errors_only=args.errors_only,
        lookback=timedelta(minutes=args.minutes),
        limit=args.limit,
        min_duration_ms=args.min_duration_ms,
    )
    cuts = [
        Truncation(
            what="spans",
            limit=40,
            kept=len(t.spans),
            total=t.span_count,
            note=f"trace {t.trace_id}",
        )
        for t in traces
        if t.spans_truncated
    ]
    return Answer(
        [t.model_dump() for t in traces],
        query=f"GET /api/traces service={args.service}"
        + (" tags={error:true}" if args.errors_only else ""),
        truncations=cuts,
    )


class DependenciesArgs(ToolArgs):
    minutes: Minutes = 60


@read_tool(DependenciesArgs)
def trace_dependencies(box: Toolbox, args: DependenciesArgs) -> Answer:
    """The call graph seen in traces: parent service -> child service with call counts.

    Args:
        minutes: How far back to look (1-1440).
    """
    deps = _traces(box).dependencies(timedelta(minutes=args.minutes))
    return Answer([d.model_dump() for d in deps], query="GET /api/dependencies")


def trace_edges_or_none(
    box: Toolbox, minutes: int
) -> tuple[list[tuple[str, str, int]], str | None]:
    """Trace edges for the service graph, or the reason they are missing."""
    if box.traces is None:
        return [], "no trace backend configured"
    try:
        deps = box.traces.dependencies(timedelta(minutes=minutes))
    except ToolError as exc:
        return [], exc.describe()
    return [(d.parent, d.child, d.call_count) for d in deps], None
