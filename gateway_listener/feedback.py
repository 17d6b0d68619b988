"""Instant feedback: Discord's typing indicator the moment a prefix command is accepted.

The reply comes from a function behind a queue, hundreds of milliseconds later (seconds
on a cold start); "the bot is typing…" shows the user at once that the command was heard.
Best effort and never in the enqueue's way: :meth:`TypingIndicator.trigger` only schedules
a task; the request is one ``POST /channels/{channel_id}/typing`` with a short timeout,
a 429 (or any failure) is dropped, not retried, and a channel gets at most one request
per :data:`TYPING_COOLDOWN_S` (Discord shows the indicator for ~10 s, or until the bot's
message arrives). Each request is a ``discord.typing`` CLIENT span under the command's
``discord.command`` span.

Sent with the listener's own small aiohttp session rather than discord.py's HTTP client,
which would wait out a 429 and retry.

With ``REDIS_URL`` each request first takes a slot of the bot's shared budget
(shared/discord_limits.py) as a *droppable* request: only a slot that is free right now, none
while the invalid-request count is past its limit; a request that gets none is dropped
(``app.typing.dropped``), so typing is the first thing to give way when the budget is tight.
The per-channel cooldown ends when the bot's own message arrives in that channel
(:meth:`TypingIndicator.replied`): a command sent right after a reply shows "typing" again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.discord_limits import SharedLimits
from shared.settings import Secret
from shared.useragent import user_agent

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

TYPING_ROUTE = "/channels/{channel_id}/typing"
TYPING_COOLDOWN_S = 3.0  # at most one typing request per channel in this window
TYPING_TIMEOUT_S = 2.0  # past this the indicator is no longer "instant": give up
MAX_TRACKED_CHANNELS = 10_000  # bound on the per-channel cooldown table


class TypingIndicator:
    """Schedules best-effort typing requests; one instance per listener, used on its event loop."""

    def __init__(
        self,
        api_base_url: str,
        token: Secret,
        *,
        user_agent_header: str = user_agent("discord"),
        cooldown_s: float = TYPING_COOLDOWN_S,
        timeout_s: float = TYPING_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        shared_limits: SharedLimits | None = None,
    ) -> None:
        self._shared = shared_limits
        self._base = api_base_url.rstrip("/")
        self._headers = {"Authorization": f"Bot {token.reveal()}", "User-Agent": user_agent_header}
        self._cooldown = cooldown_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def trigger(self, channel_id: str) -> bool:
        """Schedule a typing request for ``channel_id`` unless one went out within the cooldown.

        Call it with the command's span current: the request's span becomes its child.
        Never raises and never waits; returns whether a request was scheduled.
        """
        try:
            now = self._clock()
            last = self._last.get(channel_id)
            if last is not None and now - last < self._cooldown:
                return False
            task = asyncio.get_running_loop().create_task(self._send(channel_id, context.get_current()))
            self._remember(channel_id, now)
        except Exception:  # feedback must never cost the command
            _log.exception("typing indicator not scheduled")
            return False
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def replied(self, channel_id: str) -> None:
        """The bot's own message arrived in ``channel_id``: Discord hid the indicator, so end the cooldown."""
        self._last.pop(channel_id, None)

    def _remember(self, channel_id: str, now: float) -> None:
        if len(self._last) >= MAX_TRACKED_CHANNELS:
            self._last = {c: t for c, t in self._last.items() if now - t < self._cooldown}
        self._last[channel_id] = now

    async def _send(self, channel_id: str, parent: context.Context) -> None:
        path = TYPING_ROUTE.format(channel_id=channel_id)
        attrs: dict[str, Any] = {
            "http.request.method": "POST",
            "http.route": TYPING_ROUTE,
            "url.full": self._base + path,
            "discord.channel.id": channel_id,
        }
        with _tracer.start_as_current_span("discord.typing", context=parent, kind=SpanKind.CLIENT,
                                           attributes=attrs, record_exception=False,
                                           set_status_on_exception=False) as span:
            try:
                major = f"channel:{channel_id}"
                if self._shared is not None:
                    grant = await asyncio.to_thread(self._shared.acquire, "POST " + TYPING_ROUTE, major,
                                                    droppable=True)
                    span.set_attributes(grant.span_attributes())
                    if grant.dropped:
                        span.set_attribute("app.typing.dropped", f"shared budget: {grant.dropped}")
                        return
                if self._session is None or self._session.closed:
                    self._session = aiohttp.ClientSession(timeout=self._timeout)
                async with self._session.post(self._base + path, headers=self._headers) as resp:
                    span.set_attribute("http.response.status_code", resp.status)
                    if self._shared is not None:
                        await asyncio.to_thread(self._observe, major, resp)
                    if resp.status == 429:
                        span.set_attribute("app.typing.dropped", "rate limited (429): not retried")
                    elif resp.status >= 400:
                        span.set_status(Status(StatusCode.ERROR, f"HTTP {resp.status}"))
                        _log.debug("typing indicator in %s: HTTP %s", channel_id, resp.status)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.set_attribute("error.type", type(exc).__name__)
                _log.debug("typing indicator in %s failed: %s", channel_id, type(exc).__name__)

    def _observe(self, major: str, resp: aiohttp.ClientResponse) -> None:
        assert self._shared is not None
        self._shared.observe_headers("POST " + TYPING_ROUTE, major, resp.status, resp.headers)

    async def close(self) -> None:
        """Let requests in flight finish (each is bounded by its timeout), then close the session."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self._timeout.total)
        if self._session is not None:
            await self._session.close()
            self._session = None
