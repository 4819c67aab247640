"""The cluster's clock: what the verifier waits on.

On a real cluster that is wall time. On the twin in eval mode, the harness
owns simulated time, so waiting advances the twin's clock instead of
sleeping: a two-minute recovery window passes in milliseconds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol


class ClusterClock(Protocol):
    """Now, and a way to let time pass, in the cluster's own time."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    """A real cluster's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
