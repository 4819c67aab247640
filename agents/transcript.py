"""Helpers that make audit-trail lines (TranscriptEntry) stamped with the cluster's clock.

Every node writes what it did into the transcript; the post-mortem is built
from it. The time is the cluster's (the twin's simulated time in eval mode),
so a transcript reads the same way the cluster's events do.
"""

from __future__ import annotations

from typing import Any

from agents.context import AgentContext
from state import TranscriptEntry, TranscriptKind

#: Longest summary kept in one transcript line; longer text is cut and says so.
MAX_SUMMARY_CHARS = 2_000


def entry(
    ctx: AgentContext, node: str, kind: TranscriptKind, summary: str, **data: Any
) -> TranscriptEntry:
    """One transcript line at the cluster's current time."""
    return TranscriptEntry(
        at=ctx.clock.now(), node=node, kind=kind, summary=clip(summary), data=data
    )


def clip(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut]"
