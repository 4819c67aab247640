"""Choosing the store from the settings, and what kubemedic says about it at start."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from memory import InProcessMemory, make_memory
from memory.redis_store import RedisMemory, redact_url
from settings import RedisSettings, Settings

pytestmark = pytest.mark.anyio


async def test_no_url_means_the_in_process_store() -> None:
    store = make_memory(Settings(redis=RedisSettings(max_incidents=50, retention_days=7)))
    assert isinstance(store, InProcessMemory)
    assert store.description == "in-process (not persisted, not shared between replicas)"
    assert store.max_incidents == 50
    await store.aclose()


async def test_a_url_means_redis_and_the_password_is_never_said() -> None:
    settings = Settings(
        redis=RedisSettings(
            url=SecretStr("redis://kubemedic:s3cret@redis-master.kubemedic.svc:6380/2"),
            key_prefix="prod",
        )
    )
    store = make_memory(settings)
    assert isinstance(store, RedisMemory)
    assert (
        store.description
        == "redis redis://kubemedic:***@redis-master.kubemedic.svc:6380/2 (prefix 'prod')"
    )
    assert "s3cret" not in repr(store.__dict__.get("url"))
    await store.aclose()  # never connected: nothing is sent anywhere


def test_redact_url() -> None:
    assert redact_url("redis://:pw@h:1/0") == "redis://***@h:1/0"
    assert redact_url("rediss://u:pw@h/0") == "rediss://u:***@h/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_a_prefix_with_glob_characters_is_refused() -> None:
    with pytest.raises(ValueError, match=r"redis key prefix 'a\*' must be"):
        RedisMemory("redis://127.0.0.1:6379/0", prefix="a*")
