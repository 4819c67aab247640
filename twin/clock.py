"""The twin's simulated clock.

Every timestamp the twin writes (creationTimestamp, event times, log lines,
metric samples) comes from here, so a scenario that spans thirty simulated
minutes can run in seconds and the same seed replays the same run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

#: Where simulated time starts in eval mode: fixed, so runs are reproducible.
DEFAULT_EPOCH = datetime(2026, 7, 11, 3, 0, 0, tzinfo=UTC)


class SimClock:
    """Simulated time: seconds since `start`, advanced only by the cluster."""

    def __init__(self, start: datetime = DEFAULT_EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware")
        self.start = start
        self.elapsed = 0.0

    def now(self) -> datetime:
        """The current simulated time."""
        return self.start + timedelta(seconds=self.elapsed)

    def at(self, elapsed: float) -> datetime:
        """The datetime for a number of simulated seconds since the start."""
        return self.start + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds})")
        self.elapsed += seconds


def rfc3339(ts: datetime) -> str:
    """Kubernetes' second-precision timestamp (metav1.Time)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: datetime) -> str:
    """Kubernetes' microsecond timestamp (metav1.MicroTime), as eventTime uses."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def go_duration(seconds: float) -> str:
    """Format a duration as Go's time.Duration.String does: 10s, 5m0s, 1h2m3s."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{s}s"
    return f"{m}m{s}s"
