"""A scripted OpenAI-compatible chat server on loopback, for testing the model path end to end.

`ScriptedOpenAI` serves `POST /v1/chat/completions` with aiohttp on
127.0.0.1 (in its own thread and event loop) and answers each request with
the next step of a script:

- `tool_calls([...])`: an assistant message asking for tool calls;
- `answer(obj_or_text)`: an assistant message whose content is that JSON (or raw text,
  e.g. invalid JSON);
- `cut_off(text)`: an answer cut at max_tokens (finish_reason "length");
- `status(429)`: an HTTP error with an OpenAI-style error body (and Retry-After: 0);
- `slow(seconds, step)`: waits, then answers with `step` (for client timeouts).

It records every request body, so tests can check what the client sent (the
tools it bound, the response_format, max_tokens, the tool messages). When the
script runs out it answers with `default`, or else HTTP 500 naming the request
number, so a test that made more calls than scripted fails loudly.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: Tokens each scripted reply reports as used, so token accounting can be checked.
PROMPT_TOKENS = 100
COMPLETION_TOKENS = 20


@dataclass
class Step:
    """One scripted reply."""

    content: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    #: Why generation stopped; "length" is an answer cut at max_tokens.
    finish: str = ""


def tool_calls(*calls: tuple[str, dict[str, Any]] | tuple[str, str]) -> Step:
    """An assistant turn calling tools: (name, args dict) or (name, raw argument text)."""
    return Step(
        calls=[
            {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}
            for name, args in calls
        ]
    )


def answer(value: Any) -> Step:
    """An assistant turn whose content is `value` as JSON, or the text itself when a str."""
    return Step(content=value if isinstance(value, str) else json.dumps(value))


def cut_off(text: str) -> Step:
    """An answer that ran into max_tokens: the text so far, finish_reason "length"."""
    return Step(content=text, finish="length")


def status(code: int) -> Step:
    return Step(status=code)


def slow(seconds: float, then: Step) -> Step:
    return Step(
        content=then.content,
        calls=then.calls,
        status=then.status,
        delay_s=seconds,
        finish=then.finish,
    )


class ScriptedOpenAI:
    """The server; `base_url` is what ChatOpenAI's `base_url` takes."""

    def __init__(self, script: list[Step] | None = None, *, default: Step | None = None) -> None:
        self.script: list[Step] = list(script or [])
        #: The answer once the script has run out (None: HTTP 500, so extra calls fail loudly).
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *steps: Step) -> None:
        with self._lock:
            self.script.extend(steps)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self.script)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            number = len(self.requests)
            step = self.script.pop(0) if self.script else self.default
        if step is None:
            return _error(500, f"script exhausted at request {number}")
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        if step.status != 200:
            headers = {"retry-after": "0", "retry-after-ms": "0"}
            return _error(step.status, f"scripted HTTP {step.status}", headers=headers)
        message: dict[str, Any] = {"role": "assistant", "content": step.content}
        finish = "stop"
        if step.calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{number}_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for i, c in enumerate(step.calls)
            ]
            finish = "tool_calls"
        finish = step.finish or finish
        return web.json_response(
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": COMPLETION_TOKENS,
                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                },
            }
        )

    def start(self) -> ScriptedOpenAI:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._handle)
            runner = web.AppRunner(app, handle_signals=False)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                server = site._server
                assert isinstance(server, asyncio.base_events.Server)
                self.port = server.sockets[0].getsockname()[1]
                self._runner = runner
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="scripted-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None
        self._thread = None


def _error(code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "scripted_error", "code": code}},
        status=code,
        headers=headers,
    )


@contextmanager
def scripted_openai(*steps: Step, default: Step | None = None) -> Iterator[ScriptedOpenAI]:
    server = ScriptedOpenAI(list(steps), default=default).start()
    try:
        yield server
    finally:
        server.stop()
