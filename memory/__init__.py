"""kubemedic's incident memory: what it remembers of past incidents, and how actions fared.

`make_memory(settings)` picks the store: Redis when `settings.redis.url` is
set (shared by replicas, kept across restarts), else the in-process store
(forgotten at exit). Its `description` is what kubemedic says at start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memory.base import ActionOutcome, IncidentRecord, MemoryStore, MemoryStoreError
from memory.inprocess import InProcessMemory

if TYPE_CHECKING:
    from settings import Settings

__all__ = [
    "ActionOutcome",
    "InProcessMemory",
    "IncidentRecord",
    "MemoryStore",
    "MemoryStoreError",
    "make_memory",
]


def make_memory(settings: Settings) -> MemoryStore:
    """The store the settings ask for: Redis when a URL is set, else in-process."""
    cfg = settings.redis
    if cfg.url is None:
        return InProcessMemory(retention_days=cfg.retention_days, max_incidents=cfg.max_incidents)
    # Imported here so that the in-process default needs neither redis nor datasketch loaded.
    from memory.redis_store import RedisMemory

    return RedisMemory(
        cfg.url.get_secret_value(),
        prefix=cfg.key_prefix,
        retention_days=cfg.retention_days,
        max_incidents=cfg.max_incidents,
    )
