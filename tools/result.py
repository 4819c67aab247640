"""The one result shape every read tool returns (after HolmesGPT's StructuredToolResult).

A model reads these. A failed call is still a result: it names the exact
query and carries the server's own message, so the model can correct its
arguments instead of guessing. Anything a tool cut (log lines, bytes, series
points, list items) is listed in `truncations`, so nothing is silently lost.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.errors import Forbidden, ToolError

ToolStatus = Literal["success", "error", "no_data", "denied"]


class Truncation(BaseModel):
    """One cap a tool applied."""

    what: str = Field(description="what was cut, e.g. 'lines', 'bytes', 'points', 'items'")
    limit: int = Field(description="the cap that applied")
    kept: int = Field(description="how many were returned")
    total: int | None = Field(
        default=None, description="how many there were, when known (None: more than `limit`)"
    )
    note: str = ""


class ToolResult(BaseModel):
    """What a tool returns, success or not."""

    status: ToolStatus
    tool: str = Field(description="the tool's name")
    params: dict[str, Any] = Field(default_factory=dict, description="the arguments as given")
    data: Any = Field(default=None, description="the answer (JSON-shaped)")
    error: str | None = Field(default=None, description="what failed, the query, the API's words")
    error_kind: str | None = Field(
        default=None,
        description="a stable label: InvalidArguments, NotFound, Forbidden, ClusterUnreachable",
    )
    query: str | None = Field(default=None, description="the request or query the tool ran")
    truncated: bool = False
    truncations: list[Truncation] = Field(default_factory=list)

    @classmethod
    def ok(
        cls,
        tool: str,
        params: dict[str, Any],
        data: Any,
        *,
        query: str | None = None,
        truncations: list[Truncation] | None = None,
        empty: bool | None = None,
    ) -> ToolResult:
        """Success, or no_data when `empty` (default: data is an empty list or dict)."""
        if empty is None:
            empty = data is None or (isinstance(data, list | dict) and not data)
        cuts = truncations or []
        return cls(
            status="no_data" if empty else "success",
            tool=tool,
            params=params,
            data=data,
            query=query,
            truncated=bool(cuts),
            truncations=cuts,
        )

    @classmethod
    def failed(cls, tool: str, params: dict[str, Any], exc: ToolError) -> ToolResult:
        """An error result from one of our wrapped errors; a 403 is `denied`."""
        return cls(
            status="denied" if isinstance(exc, Forbidden) else "error",
            tool=tool,
            params=params,
            error=exc.describe(),
            error_kind=exc.kind,
            query=exc.request or None,
        )

    @classmethod
    def bad_arguments(cls, tool: str, params: dict[str, Any], message: str) -> ToolResult:
        return cls(
            status="error",
            tool=tool,
            params=params,
            error=message,
            error_kind="InvalidArguments",
        )
