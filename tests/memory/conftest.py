"""Fixtures for the memory tests: the machine's Redis under a unique prefix, or in-process.

Async tests run on asyncio through anyio's pytest plugin.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from memory.base import MemoryStore
from memory.inprocess import InProcessMemory
from memory.redis_store import RedisMemory

#: The machine's Redis (CI starts one); tests use their own key prefix and delete it after.
REDIS_URL = os.environ.get("KUBEMEDIC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL} ({exc}); start redis-server to run this test")
    return REDIS_URL


def unique_prefix() -> str:
    return f"kmtest:{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_memory(redis_url: str) -> AsyncIterator[RedisMemory]:
    store = RedisMemory(redis_url, prefix=unique_prefix())
    try:
        yield store
    finally:
        await store.delete_all()
        await store.aclose()


@pytest.fixture(params=["inprocess", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MemoryStore]:
    """Each store, for tests of the MemoryStore contract."""
    if request.param == "inprocess":
        yield InProcessMemory()
        return
    url = request.getfixturevalue("redis_url")
    mem = RedisMemory(url, prefix=unique_prefix())
    try:
        yield mem
    finally:
        await mem.delete_all()
        await mem.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class OwnRedis:
    """A redis-server this test started, on its own port, that the test may kill."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    server = OwnRedis(port=free_port(), workdir=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
