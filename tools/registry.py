"""The read tools' registry, and the wrapper that makes every tool call return a ToolResult.

A read tool is a typed function `fn(box, args) -> Answer` with a pydantic
argument model and a Google-style docstring. `@read_tool` registers it and
wraps it so that a call never raises for a reason the caller could fix: bad
arguments come back as an `InvalidArguments` error result, a failed API call
as an error result naming the request and the server's message. The
docstring's `Args:` section is what a model reads about each argument; it is
copied into the JSON schema, and `check_docstrings` proves it matches the
argument model, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import ValidationError

from state import format_validation_error
from tools.args import ToolArgs
from tools.errors import NoClusterConfigured, ToolError
from tools.result import ToolResult, Truncation

if TYPE_CHECKING:
    from tools.connection import ClusterConnection
    from tools.metrics import MetricsSource
    from tools.traces import TraceSource

A = TypeVar("A", bound=ToolArgs)


@dataclass
class Toolbox:
    """What a tool reads from: a cluster, and optionally metrics and traces backends."""

    cluster: ClusterConnection | None = None
    metrics: MetricsSource | None = None
    traces: TraceSource | None = None
    #: Why there is no cluster, when connecting failed (said by every Kubernetes tool).
    cluster_problem: str | None = None

    def kube(self) -> ClusterConnection:
        if self.cluster is None:
            raise NoClusterConfigured(
                self.cluster_problem or "no cluster connection was given to the tools"
            )
        return self.cluster

    def call(self, name: str, args: Mapping[str, Any] | None = None) -> ToolResult:
        """Run a read tool by name with JSON-shaped arguments."""
        tool = REGISTRY.get(name)
        if tool is None:
            return ToolResult.bad_arguments(
                name,
                dict(args or {}),
                f"unknown tool {name!r}; tools: {', '.join(sorted(REGISTRY))}",
            )
        return tool(self, args or {})

    async def acall(self, name: str, args: Mapping[str, Any] | None = None) -> ToolResult:
        """`call` from async code (graph nodes): the blocking client runs in a worker thread."""
        return await asyncio.to_thread(self.call, name, args)


@dataclass
class Answer:
    """What a tool function returns; the wrapper turns it into a ToolResult."""

    data: Any
    query: str | None = None
    truncations: list[Truncation] = field(default_factory=list)
    #: None: empty when data is an empty list/dict.
    empty: bool | None = None


_ARGS_HEADER = re.compile(r"^\s*Args:\s*$")
_SECTION = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?):\s*$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description without the Args section, {argument: its description})."""
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    in_args = False
    current = ""
    for line in lines:
        if _ARGS_HEADER.match(line):
            in_args = True
            continue
        if in_args and (_SECTION.match(line) or (line and not line.startswith(" "))):
            in_args = False
        if not in_args:
            description.append(line)
            continue
        m = re.match(r"^    (\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if m:
            current = m.group(1)
            args[current] = m.group(2).strip()
        elif line.strip() and current:
            args[current] = f"{args[current]} {line.strip()}"
    return "\n".join(description).strip(), args


class ReadTool(Generic[A]):
    """A registered read tool; call it with a Toolbox and JSON-shaped args (or an args model)."""

    def __init__(self, fn: Callable[[Toolbox, A], Answer], args_model: type[A]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.args_model = args_model
        self.description, self.arg_docs = parse_docstring(fn.__doc__ or "")
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def schema(self) -> dict[str, Any]:
        """The argument model's JSON schema, each property described from the docstring."""
        schema = self.args_model.model_json_schema()
        for prop, spec in schema.get("properties", {}).items():
            if prop in self.arg_docs and "description" not in spec:
                spec["description"] = self.arg_docs[prop]
        schema["description"] = self.description
        schema["title"] = self.name
        return schema

    def __call__(self, box: Toolbox, args: Mapping[str, Any] | A | None = None) -> ToolResult:
        raw: dict[str, Any]
        if isinstance(args, ToolArgs):
            raw = args.model_dump(exclude_none=True)
        else:
            raw = dict(args or {})
        try:
            parsed = (
                args if isinstance(args, self.args_model) else self.args_model.model_validate(raw)
            )
        except ValidationError as exc:
            return ToolResult.bad_arguments(
                self.name, raw, f"invalid arguments: {format_validation_error(exc)}"
            )
        params = parsed.model_dump(exclude_none=True)
        try:
            answer = self.fn(box, parsed)
        except ToolError as exc:
            return ToolResult.failed(self.name, params, exc)
        return ToolResult.ok(
            self.name,
            params,
            answer.data,
            query=answer.query,
            truncations=answer.truncations,
            empty=answer.empty,
        )


REGISTRY: dict[str, ReadTool[Any]] = {}


def read_tool(args_model: type[A]) -> Callable[[Callable[[Toolbox, A], Answer]], ReadTool[A]]:
    """Register `fn` as a read tool taking `args_model`."""

    def register(fn: Callable[[Toolbox, A], Answer]) -> ReadTool[A]:
        tool = ReadTool(fn, args_model)
        if tool.name in REGISTRY:
            raise ValueError(f"read tool {tool.name!r} registered twice")
        REGISTRY[tool.name] = tool
        return tool

    return register


def check_docstrings() -> list[str]:
    """Every mismatch between a tool's docstring and its argument model (empty when none)."""
    problems = []
    for name, tool in sorted(REGISTRY.items()):
        fields = set(tool.args_model.model_fields)
        documented = set(tool.arg_docs)
        if not tool.description:
            problems.append(f"{name}: no description")
        for missing in sorted(fields - documented):
            problems.append(f"{name}: argument {missing!r} is not in the docstring's Args")
        for extra in sorted(documented - fields):
            problems.append(f"{name}: docstring documents {extra!r}, which is no argument")
    return problems
