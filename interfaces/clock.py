"""The twin's clock as the agents' ClusterClock: now is simulated time, sleeping advances it.

In eval mode the harness owns the twin's time, so a verifier that waits two
minutes for a recovery window advances the twin by two minutes instead of
sleeping: the wait passes in milliseconds and replays exactly.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from twin.harness import Twin


class TwinClock:
    """`now()` is the twin's simulated time; `sleep(s)` runs the twin for `s` simulated seconds."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin

    def now(self) -> datetime:
        return self.twin.cluster.clock.now()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        # The twin steps its controllers synchronously; a worker thread keeps the loop free.
        await asyncio.to_thread(self.twin.advance, seconds)
