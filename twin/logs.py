"""Container logs: one bounded buffer per container instance.

A container's instance changes on every restart; `kubectl logs --previous`
reads the instance before the current one, as the kubelet keeps exactly one
previous log per container.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from twin.clock import rfc3339_micro

#: Lines kept per container instance. Large enough for the tools' 100,000-line test.
MAX_LINES_PER_INSTANCE = 150_000


@dataclass
class _Instance:
    lines: deque[tuple[datetime, str]] = field(
        default_factory=lambda: deque(maxlen=MAX_LINES_PER_INSTANCE)
    )


class LogStore:
    """Keyed by (pod uid, container name); holds the current and previous instance."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], _Instance] = {}
        self._previous: dict[tuple[str, str], _Instance] = {}

    def new_instance(self, pod_uid: str, container: str) -> None:
        """A container (re)started: its current log becomes the previous one."""
        key = (pod_uid, container)
        if key in self._current:
            self._previous[key] = self._current[key]
        self._current[key] = _Instance()

    def append(self, pod_uid: str, container: str, ts: datetime, line: str) -> None:
        key = (pod_uid, container)
        inst = self._current.get(key)
        if inst is None:
            inst = self._current[key] = _Instance()
        inst.lines.append((ts, line))

    def has_previous(self, pod_uid: str, container: str) -> bool:
        return (pod_uid, container) in self._previous

    def has_current(self, pod_uid: str, container: str) -> bool:
        return (pod_uid, container) in self._current

    def read(
        self,
        pod_uid: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        since: datetime | None = None,
        limit_bytes: int | None = None,
        timestamps: bool = False,
    ) -> list[str]:
        """Lines as the log subresource returns them, oldest first."""
        source = self._previous if previous else self._current
        inst = source.get((pod_uid, container))
        if inst is None:
            return []
        entries = list(inst.lines)
        if since is not None:
            entries = [(t, line) for t, line in entries if t >= since]
        if tail_lines is not None:
            entries = entries[-tail_lines:] if tail_lines > 0 else []
        out = [f"{rfc3339_micro(t)} {line}" if timestamps else line for t, line in entries]
        if limit_bytes is not None:
            kept: list[str] = []
            total = 0
            for line in out:
                total += len(line.encode()) + 1
                if total > limit_bytes:
                    break
                kept.append(line)
            out = kept
        return out

    def forget(self, pod_uid: str) -> None:
        for store in (self._current, self._previous):
            for key in [k for k in store if k[0] == pod_uid]:
                del store[key]
