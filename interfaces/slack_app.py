"""kubemedic in Slack: a mention or a DM starts an investigation; approvals are buttons.

One `SlackResponder` runs a Bolt `AsyncApp` over the graph runner of
interfaces/runner.py (`agent_context`, `open_checkpointer`, `compile_graph`,
`drive`): the same graph, checkpoints and approval node as the terminal,
only the trigger, the progress sink and the approver differ.

- A message that mentions the app in a channel, or any message in a DM with
  it, is a question. The graph thread is the Slack thread (channel and
  thread_ts), so a follow-up in the same Slack thread continues the same
  incident. Progress is one message, edited with chat.update as nodes finish;
  the answer is a second message in the thread.
- When the graph interrupts for approval, an interactive message lists each
  action with its dry-run, the gate's reasons and the evidence, with Approve
  and Reject buttons whose value carries the request id and incident id. A
  click (block_actions) from an allowed person resumes the graph with
  `{decision, by, via: "slack", at, request_id, action_indexes}`; the
  approval node (policies/approvals.py) still checks every answer. A click on
  an answered, stale or unknown request is refused with the same checks, and
  the refusal is posted in the thread.
- Requests over HTTP are verified with the signing secret (Bolt's v0
  signature check, which also refuses timestamps more than five minutes off);
  Socket Mode connects out with the app-level token.

Slack messages are untrusted data: a question becomes `IncidentInput.question`
and nothing else (never a mode, an approval or an action), and every text
posted back is redacted and escaped (interfaces/slack_format.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from langgraph.types import Command
from pydantic import ValidationError
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from agents.context import AgentContext
from agents.transcript import clip
from graph import compile_graph
from interfaces import slack_format as fmt
from interfaces.checkpoints import open_checkpointer
from interfaces.run_cmd import describe_update
from interfaces.runner import Approver, agent_context, drive
from interfaces.slack_notify import SlackNotConfigured, web_client
from policies.approvals import check_approval
from settings import Settings
from state import Approval, IncidentInput, IncidentState, Mode, dns1123_label
from tools.clock import ClusterClock, WallClock
from tools.redact import redact
from tools.registry import Toolbox

if TYPE_CHECKING:
    from interfaces.worker import IncidentQueue

log = logging.getLogger(__name__)

#: Where Slack POSTs events and interactions in HTTP mode (the app manifest's request URL path).
EVENTS_PATH = "/slack/events"
#: The slash command (the app manifest declares it): `/kubemedic why is checkout failing?`.
SLASH_COMMAND = "/kubemedic"
#: Longest question taken from a message; the rest is cut (and said so).
MAX_QUESTION_CHARS = 2000
#: Message keys remembered to drop Slack's retries and duplicate deliveries.
SEEN_EVENTS = 2048
#: Slack threads kept in memory (locks, waiting requests); idle ones are forgotten past this.
MAX_THREADS = 4096
#: Answered request ids remembered to refuse a second click quickly.
ANSWERED_REQUESTS = 4096
#: Minimum seconds between two edits of the progress message (chat.update is rate limited,
#: about one call a second per channel).
PROGRESS_INTERVAL_S = 1.0
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_WORD = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_REQUEST_ID = re.compile(r"^apr-[0-9a-f]{16}-[0-9a-f]{12}$")
_THREAD_ID = re.compile(r"^slack-[A-Z0-9]+-[0-9]+\.[0-9]+$")
#: Incidents the webhook worker started (agents.intake.new_incident_id); answered via its queue.
_QUEUED_ID = re.compile(r"^inc-[0-9A-Za-z-]{1,120}$")
#: Namespaces never inferred as a question's scope.
_SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default"})


def _now() -> str:
    """When a person answered, on the app's wall clock (recorded, not compared)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def thread_key(channel: str, thread_ts: str) -> str:
    """The graph thread (and incident id) of a Slack thread: `slack-<channel>-<thread_ts>`."""
    thread_id = f"slack-{channel}-{thread_ts}"
    if not _THREAD_ID.match(thread_id):
        raise ValueError(f"not a Slack channel and thread timestamp: {channel!r}, {thread_ts!r}")
    return thread_id


def question_text(text: str) -> str:
    """A message's text as a question: mentions removed, whitespace folded, length capped.

    Secrets pasted into a message (a token, a password in a URL) are masked here, before
    the question reaches the state, the checkpoints, the transcript or a model.
    """
    plain = " ".join(_MENTION.sub(" ", text).split())
    return clip(redact(plain)[0], MAX_QUESTION_CHARS)


def namespace_hint(question: str, namespaces: set[str]) -> str | None:
    """The one existing namespace the question names as a word, if exactly one."""
    named = {m.group(0) for m in _WORD.finditer(question.lower())} & namespaces
    return next(iter(named)) if len(named) == 1 else None


@dataclass
class _Waiter:
    """An approval request posted in Slack, waiting for a click."""

    future: asyncio.Future[dict[str, Any]]
    payload: dict[str, Any]
    thread_id: str
    channel: str
    message_ts: str


@dataclass
class _Thread:
    """One Slack thread = one graph thread."""

    thread_id: str
    channel: str
    thread_ts: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Request ids of this thread now waiting for a click.
    waiting: set[str] = field(default_factory=set)


class Progress:
    """The progress message of one run: posted once, then edited as nodes finish (not a flood)."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        question: str,
        *,
        interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.view = fmt.ProgressView(question=question)
        self.interval_s = interval_s
        self.ts: str | None = None
        #: Things a person must see as their own message (refused answers).
        self.notices: list[str] = []
        self._dirty = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        text, blocks = self.view.render()
        resp = await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=blocks
        )
        self.ts = str(resp["ts"])
        self._flusher = asyncio.create_task(self._flush_loop())

    def event(self, mode: str, chunk: Any) -> None:
        """The runner's EventSink: node starts and finished updates."""
        if not isinstance(chunk, dict):
            return
        if mode == "tasks" and "input" in chunk:
            self.view.running.append(str(chunk.get("name")))
        elif mode == "tasks" and "result" in chunk:
            name = str(chunk.get("name"))
            if name in self.view.running:
                self.view.running.remove(name)
        elif mode == "updates":
            for node, update in chunk.items():
                if node == "__interrupt__":
                    self.view.lines.append(":raising_hand: waiting for a person to approve")
                elif isinstance(update, dict):
                    self.view.lines.append(fmt.node_line(node, describe_update(node, update)))
        self._dirty.set()

    def say(self, node: str, message: str) -> None:
        """The agents' progress sink: refused answers are shown in the thread."""
        if node == "approval" and message.startswith("answer refused"):
            self.notices.append(message)
            self.view.lines.append(f":no_entry: `approval`: {fmt.safe(message, 300)}")
            self._dirty.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._update()
            await asyncio.sleep(self.interval_s)

    async def _update(self) -> None:
        if self.ts is None:
            return
        text, blocks = self.view.render()
        try:
            await self.client.chat_update(
                channel=self.channel, ts=self.ts, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            log.warning("could not update the progress message in %s: %s", self.channel, exc)

    async def flush(self) -> None:
        """Show the latest state now (before a message that must come after it)."""
        self._dirty.clear()
        await self._update()

    async def close(self, status: str) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.view.status = status
        self.view.running.clear()
        await self._update()


class SlackResponder:
    """The Slack app: Bolt listeners over the incident graph (see the module docstring).

    Use as an async context manager: entering opens the agents' context (model,
    memory), the checkpointer and the compiled graph, shared by every thread;
    leaving cancels what still runs and closes them.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        box: Toolbox,
        mode: Mode | None = None,
        clock: ClusterClock | None = None,
        client: AsyncWebClient | None = None,
        socket_mode: bool = False,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self.box = box
        self.mode: Mode = mode or settings.policy.mode
        self.clock: ClusterClock = clock or WallClock()
        self.client = client or web_client(settings)
        self.progress_interval_s = progress_interval_s
        secret = settings.slack.signing_secret
        if not socket_mode and secret is None:
            raise SlackNotConfigured(
                "settings.slack.signing_secret (KUBEMEDIC_SLACK__SIGNING_SECRET) is not set: "
                "HTTP mode verifies every request with it"
            )
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret.get_secret_value() if secret else "",
            # Socket Mode requests come over the app's own authenticated connection.
            request_verification_enabled=not socket_mode,
            process_before_response=False,
        )
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.command(SLASH_COMMAND)(self._on_command)
        self.app.action(fmt.APPROVE_ACTION)(self._on_click)
        self.app.action(fmt.REJECT_ACTION)(self._on_click)
        self._threads: dict[str, _Thread] = {}
        self._waiters: dict[str, _Waiter] = {}
        self._answered: OrderedDict[str, str] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stack: AsyncExitStack | None = None
        self._ctx: AgentContext | None = None
        self._graph: Any = None
        #: The webhook worker's queue, opened at the first click on an alert incident's request.
        self._queue: IncidentQueue | None = None
        #: Investigations and resumes started (tests and the health endpoint read it).
        self.runs_started = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> SlackResponder:
        stack = AsyncExitStack()
        try:
            self._ctx = await stack.enter_async_context(
                agent_context(self.settings, self.box, self.clock)
            )
            saver = await stack.enter_async_context(open_checkpointer(self.settings))
        except BaseException:
            await stack.aclose()
            raise
        self._graph = compile_graph(saver)
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._queue is not None:
            await self._queue.aclose()
            self._queue = None
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    async def wait_idle(self) -> None:
        """Wait until no run is in progress (tests; a graceful shutdown); bound it by the caller."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def wait_for_approval(self) -> dict[str, Any]:
        """The payload of the first approval request waiting for a click (tests)."""
        while not self._waiters:
            if not self._tasks:
                raise LookupError("no run is in progress: no approval will be requested")
            await asyncio.sleep(0.02)
        return next(iter(self._waiters.values())).payload

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(self._guarded(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        # The boundary of a background run: one failed investigation is logged and
        # reported in its thread, and never takes the app down. Cancellation goes through.
        try:
            await coro
        except SlackApiError as exc:
            log.error("%s: Slack refused a call: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)

    # -- HTTP and Socket Mode -------------------------------------------------------------------

    def web_app(self, path: str = EVENTS_PATH) -> web.Application:
        """An aiohttp application: Slack's events and interactions at `path`, a health check."""

        async def events(request: web.Request) -> web.Response:
            bolt_resp = await self.app.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(bolt_resp)

        async def health(_request: web.Request) -> web.Response:
            return web.json_response({"ok": True, "mode": self.mode, "running": len(self._tasks)})

        app = web.Application()
        app.add_routes([web.post(path, events), web.get("/healthz", health)])
        return app

    @asynccontextmanager
    async def serve_http(
        self, host: str = "127.0.0.1", port: int = 0, path: str = EVENTS_PATH
    ) -> AsyncIterator[str]:
        """Serve the events endpoint; yields its URL (port 0: a free port)."""
        runner = web.AppRunner(self.web_app(path), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        try:
            yield f"http://{host}:{bound}{path}"
        finally:
            await runner.cleanup()

    @asynccontextmanager
    async def socket_mode(self) -> AsyncIterator[AsyncSocketModeHandler]:
        """Connect over Socket Mode with the app-level token; disconnect on exit."""
        token = self.settings.slack.app_token
        if token is None:
            raise SlackNotConfigured(
                "settings.slack.app_token (KUBEMEDIC_SLACK__APP_TOKEN) is not set: "
                "Socket Mode needs an app-level token with connections:write"
            )
        handler = AsyncSocketModeHandler(self.app, token.get_secret_value())
        await handler.connect_async()  # type: ignore[no-untyped-call]
        try:
            yield handler
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]

    # -- questions ------------------------------------------------------------------------------

    async def _on_mention(self, event: dict[str, Any]) -> None:
        self._take_message(event)

    async def _on_message(self, event: dict[str, Any]) -> None:
        # Only direct messages: in channels, kubemedic answers when it is mentioned.
        if event.get("channel_type") == "im":
            self._take_message(event)

    def _take_message(self, event: Mapping[str, Any]) -> None:
        if event.get("subtype") or event.get("bot_id"):
            return  # edits, joins, other bots (and ourselves): not questions
        channel = str(event.get("channel") or "")
        ts = str(event.get("ts") or "")
        user = str(event.get("user") or "")
        key = f"{channel}:{ts}"
        if not channel or not ts or not user or key in self._seen:
            return  # a retry, or the same message as both app_mention and message.im
        self._seen[key] = None
        while len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        thread_ts = str(event.get("thread_ts") or ts)
        try:
            thread_id = thread_key(channel, thread_ts)
        except ValueError as exc:
            log.warning("ignored a message: %s", exc)
            return
        question = question_text(str(event.get("text") or ""))
        thread = self._thread(thread_id, channel, thread_ts)
        self._spawn(self._answer(thread, question, user), f"question in {thread_id}")

    def _thread(self, thread_id: str, channel: str, thread_ts: str) -> _Thread:
        """The thread's in-process record (a new one after a restart: the graph has the rest)."""
        thread = self._threads.get(thread_id)
        if thread is None:
            if len(self._threads) >= MAX_THREADS:
                # Forget idle threads first: their incidents live on in the checkpoints.
                for key, old in list(self._threads.items()):
                    if not old.lock.locked() and not old.waiting:
                        del self._threads[key]
                    if len(self._threads) < MAX_THREADS // 2:
                        break
            thread = self._threads[thread_id] = _Thread(thread_id, channel, thread_ts)
        return thread

    async def _on_command(self, ack: Callable[..., Any], command: dict[str, Any]) -> None:
        await ack("Looking into it; I will answer in a thread.")
        self._spawn(self._slash(command), "slash command")

    async def _slash(self, command: Mapping[str, Any]) -> None:
        """A slash command: a message in the channel starts the thread the answer goes to."""
        channel = str(command.get("channel_id") or "")
        user = str(command.get("user_id") or "")
        question = question_text(str(command.get("text") or ""))
        if not channel or not user:
            return
        text = f"{fmt.mention(user)} asked: _{fmt.safe(question, 500) or '(nothing)'}_"
        resp = await self.client.chat_postMessage(
            channel=channel, text=text, blocks=[fmt.section(text)]
        )
        ts = str(resp["ts"])
        thread_id = thread_key(channel, ts)
        await self._answer(self._thread(thread_id, channel, ts), question, user)

    async def _answer(self, thread: _Thread, question: str, user: str) -> None:
        if not question:
            await self._post(
                thread, "Ask me about the cluster, e.g. _why is checkout failing in shop?_"
            )
            return
        if thread.waiting:
            await self._post(
                thread,
                "I am waiting for an answer to the approval request above; approve or reject "
                "it first, then ask again.",
            )
            return
        if thread.lock.locked():
            await self._post(thread, "Still working on the previous question; this one is next.")
        async with thread.lock:
            earlier = await self._state(thread.thread_id)
            if earlier is not None and earlier.pending_approval:
                # Checkpointed while waiting (the app restarted): a new question would drop
                # the request; it must be answered first.
                await self._post(
                    thread,
                    f"This incident waits for an answer to approval request "
                    f"`{fmt.safe(earlier.pending_approval, 80)}` above; approve or reject it "
                    "first, then ask again.",
                )
                return
            first = IncidentInput(
                trigger="slack",
                question=question,
                namespace=await self._namespace_for(thread, question),
                mode=self.mode,
                requested_by=f"slack:{user}",
                incident_id=thread.thread_id,
            )
            await self._run(thread, {"input": first}, question)

    async def _namespace_for(self, thread: _Thread, question: str) -> str | None:
        """The namespace the question names; else the one this thread already looked at."""
        names: set[str] = set()
        result = await self.box.acall("list_workloads", {"limit": 500})
        if result.status == "success" and isinstance(result.data, list):
            names = {
                str(w.get("namespace"))
                for w in result.data
                if isinstance(w, dict) and w.get("namespace")
            } - _SYSTEM_NAMESPACES
        hint = namespace_hint(question, names)
        if hint is not None:
            return dns1123_label(hint)
        earlier = await self._state(thread.thread_id)
        if earlier is not None and earlier.incident is not None:
            return earlier.incident.namespace
        return None

    async def _run(self, thread: _Thread, first: Any, question: str) -> None:
        """Drive the graph on the thread to its end; progress in one message, then the answer."""
        assert self._ctx is not None
        self.runs_started += 1
        progress = Progress(
            self.client,
            thread.channel,
            thread.thread_ts,
            question,
            interval_s=self.progress_interval_s,
        )
        await progress.open()
        ctx = replace(self._ctx, progress=progress.say)
        try:
            run = await drive(
                self._graph,
                first,
                thread_id=thread.thread_id,
                ctx=ctx,
                approver=self._approver(thread, progress),
                on_event=progress.event,
            )
        except Exception as exc:
            await progress.close("stopped")
            text, blocks = fmt.failure_message(f"{type(exc).__name__}: {exc}")
            await self._post(thread, text, blocks)
            raise
        await progress.close(f"done ({run.steps} steps)")
        text, blocks = fmt.answer_message(run.state, thread_id=thread.thread_id)
        await self._post(thread, text, blocks)

    async def _post(self, thread: _Thread, text: str, blocks: fmt.Blocks | None = None) -> str:
        resp = await self.client.chat_postMessage(
            channel=thread.channel,
            thread_ts=thread.thread_ts,
            text=text,
            blocks=blocks or [fmt.section(text)],
        )
        return str(resp["ts"])

    async def _state(self, thread_id: str) -> IncidentState | None:
        snapshot = await self._graph.aget_state({"configurable": {"thread_id": thread_id}})
        if not snapshot.values:
            return None
        return IncidentState(**snapshot.values)

    # -- approvals ------------------------------------------------------------------------------

    def _approver(self, thread: _Thread, progress: Progress) -> Approver:
        async def answer(payload: dict[str, Any]) -> dict[str, Any]:
            request_id = str(payload.get("request_id", ""))
            await progress.flush()
            # Asked again (the last answer was refused by the approval node): answerable anew.
            self._answered.pop(request_id, None)
            text, blocks = fmt.approval_message(payload, thread_id=thread.thread_id)
            ts = await self._post(thread, text, blocks)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._waiters[request_id] = _Waiter(
                future, payload, thread.thread_id, thread.channel, ts
            )
            thread.waiting.add(request_id)
            ttl = self._ctx.limits.approval_ttl_s if self._ctx else 3600.0
            try:
                return await asyncio.wait_for(future, timeout=ttl)
            except TimeoutError:
                at = _now()
                note = f"no answer in Slack within {ttl:.0f}s (approval_ttl_s): nothing is done"
                text, blocks = fmt.decided_message(
                    payload, decision="reject", user_id="kubemedic", at=at, note=note
                )
                await self.client.chat_update(
                    channel=thread.channel, ts=ts, text=text, blocks=blocks
                )
                return {
                    "decision": "reject",
                    "by": "kubemedic",
                    "via": "slack",
                    "at": at,
                    "request_id": request_id,
                    "comment": note,
                }
            finally:
                self._waiters.pop(request_id, None)
                thread.waiting.discard(request_id)

        return answer

    async def _on_click(self, ack: Callable[[], Any], body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._click(body), "approval click")

    async def _click(self, body: Mapping[str, Any]) -> None:
        user = body.get("user") or {}
        user_id = str(user.get("id") or "")
        name = str(user.get("username") or user.get("name") or "")
        channel = str((body.get("channel") or {}).get("id") or "")
        actions = body.get("actions") or []
        if not actions or not user_id or not channel:
            return
        clicked = actions[0]
        decision: Literal["approve", "reject"] = (
            "approve" if clicked.get("action_id") == fmt.APPROVE_ACTION else "reject"
        )
        try:
            value = json.loads(str(clicked.get("value") or ""))
            request_id = str(value["request_id"])
            thread_id = str(value["incident_id"])
            indexes = [int(i) for i in value.get("actions") or []]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a malformed approval button value was refused: %s", exc)
            return
        if not _REQUEST_ID.match(request_id) or not (
            _THREAD_ID.match(thread_id) or _QUEUED_ID.match(thread_id)
        ):
            log.warning("an approval click named no request of ours: %r", clip(request_id, 80))
            return
        if _QUEUED_ID.match(thread_id):
            message = body.get("message") or {}
            await self._answer_queued(
                channel,
                str(message.get("ts") or ""),
                thread_id,
                user_id=user_id,
                name=name,
                decision=decision,
                request_id=request_id,
                indexes=indexes,
            )
            return
        thread = self._threads.get(thread_id)
        if thread is None:
            # The app restarted since the request was posted: the thread is in the checkpoints.
            ts = thread_id.removeprefix(f"slack-{channel}-")
            if ts == thread_id:
                await self._refuse(
                    channel, None, user_id, request_id, ["the button is not from this channel"]
                )
                return
            thread = self._thread(thread_id, channel, ts)
        if thread.channel != channel:
            await self._refuse(
                channel, None, user_id, request_id, ["the button is not from this channel"]
            )
            return
        not_allowed = self._may_not_approve(user_id, name)
        if not_allowed:
            await self._refuse(channel, thread, user_id, request_id, [not_allowed])
            return
        at = _now()
        answer: dict[str, Any] = {
            "decision": decision,
            "by": user_id,
            "via": "slack",
            "at": at,
            "request_id": request_id,
            "action_indexes": indexes if decision == "approve" else [],
            "comment": f"Slack user {clip(name, 80)}" if name else "",
        }
        waiter = self._waiters.get(request_id)
        if waiter is not None and waiter.thread_id == thread_id and not waiter.future.done():
            self._remember_answer(request_id, user_id)
            waiter.future.set_result(answer)
            text, blocks = fmt.decided_message(
                waiter.payload, decision=decision, user_id=user_id, at=at
            )
            await self.client.chat_update(
                channel=channel, ts=waiter.message_ts, text=text, blocks=blocks
            )
            return
        reasons = await self._why_not(thread, answer)
        if reasons:
            await self._refuse(channel, thread, user_id, request_id, reasons)
            return
        # Nobody waits in this process (it restarted): resume the checkpointed thread. Two
        # clicks may both have passed the checks above while reading the checkpoint: the
        # first to get here answers, the other is a replay.
        if request_id in self._answered:
            await self._refuse(
                channel,
                thread,
                user_id,
                request_id,
                [f"request {request_id!r} was already answered (replay)"],
            )
            return
        self._remember_answer(request_id, user_id)
        async with thread.lock:
            await self._run(thread, Command(resume=answer), "resuming after an approval")

    async def _answer_queued(
        self,
        channel: str,
        message_ts: str,
        incident_id: str,
        *,
        user_id: str,
        name: str,
        decision: Literal["approve", "reject"],
        request_id: str,
        indexes: list[int],
    ) -> None:
        """A click on an alert-started incident's request: answered through the worker's queue."""
        # Imported here: only clicks on alert incidents need the webhook worker's queue.
        from interfaces.worker import AnswerRefused, answer_approval, open_queue

        reasons: list[str] = []
        not_allowed = self._may_not_approve(user_id, name)
        if not_allowed:
            reasons.append(not_allowed)
        else:
            if self._queue is None:
                self._queue = open_queue(self.settings)
            record = await self._queue.get(incident_id)
            try:
                await answer_approval(
                    self._queue,
                    incident_id,
                    request_id=request_id,
                    decision=decision,
                    by=user_id,
                    via="slack",
                    action_indexes=indexes if decision == "approve" else (),
                    comment=f"Slack user {clip(name, 80)}" if name else "",
                )
            except AnswerRefused as exc:
                reasons.append(str(exc))
            else:
                asked = {
                    "request_id": request_id,
                    "actions": record.approval_actions if record else [],
                }
                text, blocks = fmt.decided_message(
                    asked,
                    decision=decision,
                    user_id=user_id,
                    at=_now(),
                    note="a worker resumes the incident from its checkpoint",
                )
                await self.client.chat_update(
                    channel=channel, ts=message_ts, text=text, blocks=blocks
                )
                return
        text, blocks = fmt.refusal_message(user_id, request_id, reasons)
        await self.client.chat_postMessage(
            channel=channel, thread_ts=message_ts or None, text=text, blocks=blocks
        )

    def _may_not_approve(self, user_id: str, name: str) -> str:
        """Why this Slack user may not answer approvals ('' when they may)."""
        allowed = self.settings.slack.approvers
        if allowed and user_id not in allowed and (not name or name not in allowed):
            return "not one of the Slack approvers (settings.slack.approvers)"
        named = self._ctx.limits.approvers if self._ctx else []
        if named and user_id not in named:
            return "not one of the approvers the policy names (approvers in the policy file)"
        return ""

    async def _why_not(self, thread: _Thread, answer: dict[str, Any]) -> list[str]:
        """Every reason an answer that no run waits for cannot count (policies/approvals)."""
        request_id = str(answer["request_id"])
        reasons: list[str] = []
        if request_id in self._answered:
            reasons.append(
                f"request {request_id!r} was already answered by "
                f"{fmt.mention(self._answered[request_id])} (replay)"
            )
        if thread.lock.locked():
            reasons.append("the incident is busy: its graph is running, not waiting for this")
        state = await self._state(thread.thread_id)
        if state is None:
            return [*reasons, f"no incident {thread.thread_id!r} is known here"]
        try:
            approval = Approval.model_validate(answer)
        except ValidationError as exc:
            return [*reasons, f"the answer is malformed: {exc.error_count()} errors"]
        pending = [d.action_index for d in state.decisions if d.decision == "needs_approval"]
        reasons.extend(
            r
            for r in check_approval(
                approval,
                state.pending_approval,
                pending,
                self.clock.now(),
                previous=state.approvals,
                actions=state.plan.actions if state.plan else None,
                limits=self._ctx.limits if self._ctx else None,
            )
            if r not in reasons
        )
        return reasons

    def _remember_answer(self, request_id: str, user_id: str) -> None:
        self._answered[request_id] = user_id
        while len(self._answered) > ANSWERED_REQUESTS:
            self._answered.popitem(last=False)

    async def _refuse(
        self,
        channel: str,
        thread: _Thread | None,
        user_id: str,
        request_id: str,
        reasons: list[str],
    ) -> None:
        log.warning("refused %s's answer to %s: %s", user_id, request_id, "; ".join(reasons))
        text, blocks = fmt.refusal_message(user_id, request_id, reasons)
        if thread is not None:
            await self._post(thread, text, blocks)
        else:
            await self.client.chat_postEphemeral(
                channel=channel, user=user_id, text=text, blocks=blocks
            )
