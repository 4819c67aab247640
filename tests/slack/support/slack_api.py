"""A local stand-in for Slack's Web API (and its Socket Mode endpoint), on loopback.

`SlackStandIn` is an aiohttp server on 127.0.0.1 that answers the Web API
methods kubemedic's Slack app calls, the way Slack does (form or JSON bodies,
`Authorization: Bearer`, `{"ok": false, "error": ...}` on a bad token or a
missing argument), keeps the messages it was sent per channel with their ts,
and records every call, so tests judge what the app really sent over HTTP.
Point `AsyncWebClient(base_url=stand_in.api_url)` at it.

Methods: auth.test, chat.postMessage, chat.update, chat.postEphemeral,
conversations.replies, reactions.add, apps.connections.open. The last returns
a ws:// URL on this server where a Socket Mode client connects; the test then
pushes envelopes with `send_envelope` and reads the client's acks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-000000000001-000000000002-standinbottoken0000"
APP_TOKEN = "xapp-1-A0000000001-000000000003-standinapptoken"
BOT_USER = "UKUBEMEDIC"
BOT_ID = "BKUBEMEDIC"
TEAM = "T0000TEST"


@dataclass
class Call:
    """One Web API call as received."""

    method: str
    args: dict[str, Any]


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    updates: int = 0


class SlackStandIn:
    """The Web API on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, list[Message]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._acked = asyncio.Event()
        self._connected = asyncio.Event()
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def __aenter__(self) -> SlackStandIn:
        app = web.Application()
        app.add_routes([web.post("/api/{method}", self._api), web.get("/socket", self._socket)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests read --------------------------------------------------------------------------

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """The replies in a thread, oldest first (the parent itself is not ours)."""
        return [m for m in self.messages.get(channel, []) if m.thread_ts == thread_ts]

    def everything_sent(self) -> str:
        """Every argument of every call, as one text (for "no secret was posted" checks)."""
        return "\n".join(json.dumps(c.args, default=str) for c in self.calls)

    def new_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    # -- the Web API ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any]
        if request.content_type == "application/json":
            args = await request.json() if request.can_read_body else {}
        else:
            args = dict(await request.post())
        for key in ("blocks", "attachments"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        self.calls.append(Call(method, args))
        auth = request.headers.get("Authorization", "")
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if auth != f"Bearer {expected}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(args)
        return web.json_response(result)

    def _auth_test(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://standin.slack.test/",
            "team": "stand-in",
            "user": "kubemedic",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        msg = Message(
            channel=channel,
            ts=self.new_ts(),
            text=str(args.get("text") or ""),
            blocks=list(args.get("blocks") or []),
            thread_ts=str(args["thread_ts"]) if args.get("thread_ts") else None,
        )
        self.messages.setdefault(channel, []).append(msg)
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": self._json(msg)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        for msg in self.messages.get(channel, []):
            if msg.ts == ts:
                msg.text = str(args.get("text") or msg.text)
                msg.blocks = list(args.get("blocks") or msg.blocks)
                msg.updates += 1
                return {"ok": True, "channel": channel, "ts": ts, "text": msg.text}
        return {"ok": False, "error": "message_not_found"}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self.new_ts()}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        replies = [self._json(m) for m in self.thread(channel, ts)]
        return {"ok": True, "messages": replies, "has_more": False}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("name") or not args.get("timestamp"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _apps_connections_open(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    @staticmethod
    def _json(msg: Message) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "ts": msg.ts,
            "text": msg.text,
            "blocks": msg.blocks,
            "bot_id": BOT_ID,
        }
        if msg.thread_ts:
            out["thread_ts"] = msg.thread_ts
        return out

    # -- Socket Mode ------------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self._connected.set()
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {}})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    self.acks[str(data["envelope_id"])] = data
                    self._acked.set()
        return ws

    async def connected(self) -> None:
        await self._connected.wait()

    async def send_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Push one Socket Mode envelope (events_api, interactive) to the client; its id."""
        await self.connected()
        envelope_id = str(uuid.uuid4())
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    async def ack_of(self, envelope_id: str) -> dict[str, Any]:
        while envelope_id not in self.acks:
            self._acked.clear()
            await self._acked.wait()
        return self.acks[envelope_id]
