"""Where the graph keeps its checkpoints: PostgreSQL when a DSN is set, else a SQLite file.

One thread per incident (thread_id = the incident id), so an incident that
waits for a person's approval can be resumed later, by another process, and
a chat investigation can continue with a follow-up question.

The serializer is told which of kubemedic's own types it may rebuild from a
checkpoint (state.py's pydantic models); anything else is refused rather
than imported, and resuming logs no "unregistered type" warnings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

import state
from settings import Settings


def state_types() -> list[tuple[str, str]]:
    """(module, class) of every pydantic model in state.py: what a checkpoint may hold."""
    return sorted(
        (obj.__module__, obj.__name__)
        for obj in vars(state).values()
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == "state"
    )


def make_serializer() -> JsonPlusSerializer:
    """A serializer that rebuilds kubemedic's state types, and no others beyond LangGraph's."""
    return JsonPlusSerializer(allowed_msgpack_modules=state_types())


def describe(settings: Settings) -> str:
    """Where checkpoints go, said aloud at start (never the DSN's password)."""
    if settings.checkpoint.postgres_dsn is not None:
        return "PostgreSQL (settings.checkpoint.postgres_dsn)"
    return f"SQLite file {settings.sqlite_path}"


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The configured checkpointer, set up and ready; closed on exit."""
    serde = make_serializer()
    dsn = settings.checkpoint.postgres_dsn
    if dsn is not None:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(dsn.get_secret_value(), serde=serde) as pg:
            await pg.setup()
            yield pg
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(path)) as conn:
        sqlite = AsyncSqliteSaver(conn, serde=serde)
        await sqlite.setup()
        yield sqlite
