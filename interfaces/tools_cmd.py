"""`kubemedic tools ...`: list the read tools and run one by hand, as an agent would.

Only read tools are callable here. Actions are data that the executor alone
carries out after the policy gate; there is deliberately no command that
writes to a cluster.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import tools
from tools.actions import ACTION_NAMES
from tools.connection import connect
from tools.errors import ToolError
from tools.metrics import MetricsSource, PrometheusMetricsSource, TwinMetricsSource
from tools.registry import REGISTRY, Toolbox
from tools.result import ToolResult
from tools.traces import JaegerTraceSource, TraceSource

tools_app = typer.Typer(
    help="kubemedic's read tools: list them, or run one against a cluster.",
    no_args_is_help=True,
)

_ = tools  # importing the package registers every read tool


@tools_app.command("list")
def list_tools(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print names, descriptions, schemas.")
    ] = False,
) -> None:
    """Print every read tool with its argument JSON schema."""
    if as_json:
        payload = [
            {"name": name, "description": tool.description, "parameters": tool.schema()}
            for name, tool in sorted(REGISTRY.items())
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="kubemedic read tools", show_lines=True)
    table.add_column("tool", style="bold")
    table.add_column("what it does")
    table.add_column("arguments (JSON schema)")
    for name, tool in sorted(REGISTRY.items()):
        props = tool.schema().get("properties", {})
        required = set(tool.schema().get("required", []))
        args = "\n".join(
            f"{p}{'*' if p in required else ''}: {_type_of(spec)}" for p, spec in props.items()
        )
        table.add_row(name, tool.description.splitlines()[0], args or "(none)")
    Console(width=160).print(table)


def _type_of(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "|".join(str(v) for v in spec["enum"])
    if "anyOf" in spec:
        return " or ".join(_type_of(s) for s in spec["anyOf"])
    return str(spec.get("type", "any"))


@tools_app.command("call")
def call_tool(
    name: Annotated[str, typer.Argument(help="A read tool's name (see `kubemedic tools list`).")],
    args: Annotated[str, typer.Argument(help="The tool's arguments as a JSON object.")] = "{}",
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Path of the kubeconfig to use.")
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="The kubeconfig context (cluster) to use.")
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus base URL for metrics tools.")
    ] = None,
    jaeger: Annotated[
        str | None, typer.Option("--jaeger", help="Jaeger query base URL for trace tools.")
    ] = None,
    twin: Annotated[
        str | None,
        typer.Option("--twin", help="A twin's base URL: its metrics and traces (and no others)."),
    ] = None,
) -> None:
    """Run one read tool and print its result as JSON (exit 1 when the result is an error)."""
    if name in ACTION_NAMES:
        _fail(
            name,
            f"{name!r} is an action, not a read tool: actions are carried out only by the executor "
            "after the policy gate, never from this command",
        )
    if name not in REGISTRY:
        _fail(name, f"unknown tool {name!r}; tools: {', '.join(sorted(REGISTRY))}")
    try:
        parsed = json.loads(args)
    except ValueError as exc:
        _fail(name, f"arguments are not JSON: {exc}")
    if not isinstance(parsed, dict):
        _fail(name, 'arguments must be a JSON object, e.g. \'{"namespace": "shop"}\'')
    box = Toolbox()
    try:
        box.cluster = connect(kubeconfig, context)
    except ToolError as exc:
        box.cluster_problem = exc.message
    metrics: MetricsSource | None = None
    traces: TraceSource | None = None
    if twin:
        twin_metrics = TwinMetricsSource(twin)
        metrics = twin_metrics
        traces = JaegerTraceSource.for_twin(twin, clock=twin_metrics.now)
    if prometheus:
        metrics = PrometheusMetricsSource(prometheus)
    if jaeger:
        traces = JaegerTraceSource(jaeger)
    box.metrics, box.traces = metrics, traces
    try:
        result = box.call(name, parsed)
    finally:
        for backend in (box.cluster, metrics, traces):
            close = getattr(backend, "close", None)
            if close is not None:
                close()
    typer.echo(result.model_dump_json(indent=2))
    if result.status in ("error", "denied"):
        raise typer.Exit(1)


def _fail(name: str, message: str) -> None:
    result = ToolResult.bad_arguments(name, {}, message)
    typer.echo(result.model_dump_json(indent=2))
    raise typer.Exit(2)
