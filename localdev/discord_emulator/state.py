"""What the emulator remembers: messages, the bot's output, interactions, requests.

Everything here is touched only on the emulator's event loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from localdev.discord_emulator.gateway import Dispatch
from localdev.discord_emulator.models import JSON, World
from localdev.discord_emulator.snowflake import SnowflakeGenerator

T = TypeVar("T")

NONCE_WINDOW_S = 300.0  # Discord dedupes enforce_nonce creates for "a few minutes"
INTERACTION_TOKEN_TTL_S = 15 * 60.0


@dataclass
class RecordedRequest:
    """One REST request as the emulator saw it (Authorization header removed)."""

    method: str
    path: str
    template: str | None
    operation_id: str | None
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    timestamp: float
    errors: list[str] = field(default_factory=list)
    status: int | None = None
    fault: str | None = None

    @property
    def invalid(self) -> bool:
        return bool(self.errors)

    def as_dict(self) -> JSON:
        return {
            "method": self.method,
            "path": self.path,
            "template": self.template,
            "operation_id": self.operation_id,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "timestamp": self.timestamp,
            "errors": self.errors,
            "status": self.status,
            "fault": self.fault,
        }


@dataclass(frozen=True)
class TypingEvent:
    """A ``POST /channels/{channel_id}/typing`` the emulator accepted ("the bot is typing…")."""

    channel_id: str
    at: float  # time.monotonic() on arrival (one clock with in-process callers)


@dataclass
class InteractionRecord:
    """An INTERACTION_CREATE the emulator sent, and what the bot did with it."""

    id: str
    token: str
    application_id: str
    channel_id: str
    payload: JSON
    dispatch: Dispatch
    callback: JSON | None = None
    callback_delay_s: float | None = None  # from delivery to the bot to the callback
    original: JSON | None = None  # the response message (after the latest edit)
    edits: list[JSON] = field(default_factory=list)

    def as_dict(self) -> JSON:
        """Public view (the token is a secret: it is not included)."""
        return {
            "id": self.id,
            "application_id": self.application_id,
            "channel_id": self.channel_id,
            "name": self.payload.get("data", {}).get("name"),
            "callback": self.callback,
            "callback_delay_s": self.callback_delay_s,
            "original": self.original,
            "edits": self.edits,
        }


class EmulatorState:
    def __init__(self, world: World, ids: SnowflakeGenerator) -> None:
        self.world = world
        self.ids = ids
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, JSON] = {}  # every message, by id
        self.bot_outputs: list[JSON] = []  # bot messages and interaction edits, in order
        self.interactions: dict[str, InteractionRecord] = {}
        self.typing: list[TypingEvent] = []
        self.commands: dict[str | None, dict[str, JSON]] = {}  # guild id (None = global) -> name -> command
        self._nonces: dict[tuple[str, str, str], tuple[float, JSON]] = {}
        self.nonce_duplicates = 0  # creates answered with an earlier message (redeliveries made harmless)
        self._changed = asyncio.Condition()

    @property
    def invalid_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.invalid]

    # -- messages ----------------------------------------------------------------------------

    def nonce_hit(self, channel_id: str, author_id: str, nonce: str) -> JSON | None:
        entry = self._nonces.get((channel_id, author_id, nonce))
        if entry is None or time.monotonic() - entry[0] > NONCE_WINDOW_S:
            return None
        self.nonce_duplicates += 1
        return entry[1]

    def remember_nonce(self, channel_id: str, author_id: str, nonce: str, message: JSON) -> None:
        self._nonces[(channel_id, author_id, nonce)] = (time.monotonic(), message)

    async def add_bot_output(self, kind: str, message: JSON, *, interaction_id: str | None = None) -> JSON:
        """Record something the bot made visible in a channel and wake long-pollers.

        ``event_id`` orders outputs (an edit gets a fresh one, so ``after=`` cursors see it).
        """
        entry = dict(message)
        entry["event_id"] = message["id"] if kind == "message" else self.ids.next()
        entry["event_kind"] = kind
        if interaction_id is not None:
            entry["interaction_id"] = interaction_id
        self.bot_outputs.append(entry)
        async with self._changed:
            self._changed.notify_all()
        return entry

    def find_bot_output(self, channel_id: str | None, after: str | None) -> JSON | None:
        after_int = int(after) if after else 0
        for entry in self.bot_outputs:
            if int(entry["event_id"]) > after_int and (channel_id is None or entry.get("channel_id") == channel_id):
                return entry
        return None

    async def _wait_for(self, find: Callable[[], T | None], timeout: float) -> T | None:
        """The first non-None ``find()``, re-checked on every state change; None after ``timeout``."""

        async def _wait() -> T:
            async with self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
                return found

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            return None

    async def wait_for_bot_output(self, channel_id: str | None, after: str | None, timeout: float) -> JSON | None:
        return await self._wait_for(lambda: self.find_bot_output(channel_id, after), timeout)

    async def add_typing(self, channel_id: str) -> TypingEvent:
        event = TypingEvent(channel_id, time.monotonic())
        self.typing.append(event)
        async with self._changed:
            self._changed.notify_all()
        return event

    async def wait_for_typing(self, channel_id: str | None, since: float, timeout: float) -> TypingEvent | None:
        """The first typing event in ``channel_id`` (any, if None) at or after monotonic ``since``."""

        def find() -> TypingEvent | None:
            return next((e for e in self.typing if e.at >= since and channel_id in (None, e.channel_id)), None)

        return await self._wait_for(find, timeout)

    # -- interactions ------------------------------------------------------------------------

    def new_interaction_token(self) -> str:
        # Same shape as Discord's: long, URL-safe, secret.
        return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)

    @staticmethod
    def token_matches(rec: InteractionRecord, token: str) -> bool:
        return secrets.compare_digest(rec.token.encode(), token.encode())

    def interaction_by_token(self, token: str) -> InteractionRecord | None:
        for rec in self.interactions.values():
            if self.token_matches(rec, token):
                return rec
        return None

    def interaction_token_alive(self, rec: InteractionRecord) -> bool:
        start = rec.dispatch.sent_at or rec.dispatch.created
        return time.monotonic() - start < INTERACTION_TOKEN_TTL_S
