"""EmulatorThread: the emulator on its own event loop in a background thread.

For synchronous tests and for tests that run discord.py in subprocesses::

    with EmulatorThread(guild_count=1) as emu:
        env = {"DISCORD_API_BASE_URL": emu.api_url, "DISCORD_GATEWAY_URL": emu.gateway_url}
        ...start the listener...
        emu.wait_until_identified(10)
        sent = emu.send_message("!ping")
        reply = emu.wait_for_bot_message(after=sent["id"], timeout=10)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from localdev.discord_emulator.emulator import DiscordEmulator
from localdev.discord_emulator.faults import RestFault
from localdev.discord_emulator.models import JSON
from localdev.discord_emulator.state import InteractionRecord, RecordedRequest, TypingEvent

T = TypeVar("T")


class EmulatorThread:
    """Same constructor arguments as :class:`DiscordEmulator`; blocking versions of its methods."""

    def __init__(self, **kwargs: Any) -> None:
        self.emulator = DiscordEmulator(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="discord-emulator", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.emulator.start())
        except BaseException as exc:  # report start failures to the caller's thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.emulator.stop())
        self._loop.close()

    def start(self, timeout: float = 30.0) -> EmulatorThread:
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("discord emulator did not start")
        if self._error is not None:
            raise RuntimeError("discord emulator failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- plumbing ----------------------------------------------------------------------------

    def _await(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def _call(self, fn: Callable[[], T]) -> T:
        async def _on_loop() -> T:
            return fn()

        return self._await(_on_loop(), 30.0)

    def _wait(self, awaitable: Awaitable[T], timeout: float) -> T:
        async def _on_loop() -> T:
            return await awaitable

        # The inner timeout fires first; the outer one only guards against a stuck loop.
        return self._await(_on_loop(), timeout + 5.0)

    # -- same API as DiscordEmulator, blocking ----------------------------------------------

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def api_url(self) -> str:
        return self.emulator.api_url

    @property
    def gateway_url(self) -> str:
        return self.emulator.gateway_url

    @property
    def token(self) -> str:
        return self.emulator.token

    @property
    def guild_id(self) -> str:
        return self.emulator.guild_id

    @property
    def channel_id(self) -> str:
        return self.emulator.channel_id

    @property
    def application_id(self) -> str:
        return self.emulator.application_id

    @property
    def bot_user_id(self) -> str:
        return self.emulator.bot_user_id

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._call(lambda: list(self.emulator.requests))

    @property
    def invalid_requests(self) -> list[RecordedRequest]:
        return self._call(lambda: list(self.emulator.invalid_requests))

    @property
    def identify_payloads(self) -> list[JSON]:
        return self._call(lambda: list(self.emulator.identify_payloads))

    @property
    def bot_messages(self) -> list[JSON]:
        return self._call(lambda: list(self.emulator.bot_messages))

    @property
    def heartbeat_count(self) -> int:
        """Heartbeats received from the bot (each one is ACKed)."""
        return self._call(lambda: len(self.emulator.gateway.heartbeats))

    @property
    def nonce_duplicates(self) -> int:
        """Message creates that repeated an enforced nonce and got the first message back."""
        return self._call(lambda: self.emulator.state.nonce_duplicates)

    @property
    def ready_count(self) -> int:
        return self._call(lambda: self.emulator.ready_count)

    def wait_until_identified(self, timeout: float = 10.0) -> JSON:
        return self._wait(self.emulator.wait_until_identified(timeout), timeout)

    def wait_until_ready_count(self, count: int, timeout: float = 10.0) -> None:
        self._wait(self.emulator.wait_until_ready_count(count, timeout), timeout)

    def wait_for_bot_message(self, channel_id: str | None = None, after: str | None = None,
                             timeout: float = 10.0) -> JSON:
        return self._wait(self.emulator.wait_for_bot_message(channel_id, after, timeout), timeout)

    def wait_for_typing(self, channel_id: str | None = None, since: float = 0.0,
                        timeout: float = 10.0) -> TypingEvent | None:
        """The bot's first typing request in the channel at or after monotonic ``since`` (None: timed out)."""
        return self._wait(self.emulator.state.wait_for_typing(channel_id, since, timeout), timeout)

    @property
    def typing_events(self) -> list[TypingEvent]:
        return self._call(lambda: list(self.emulator.state.typing))

    def send_message(self, content: str, **kwargs: Any) -> JSON:
        return self._call(lambda: self.emulator.send_message(content, **kwargs))

    def send_interaction(self, name: str, options: dict[str, Any] | None = None, **kwargs: Any) -> JSON:
        return self._call(lambda: self.emulator.send_interaction(name, options, **kwargs))

    def interaction(self, interaction_id: str) -> InteractionRecord:
        return self._call(lambda: self.emulator.interaction(interaction_id))

    def inject_rest_fault(self, route: str, status: int = 429, count: int = 1, **kwargs: Any) -> RestFault:
        return self._call(lambda: self.emulator.inject_rest_fault(route, status, count, **kwargs))

    def clear_faults(self) -> None:
        self._call(self.emulator.clear_faults)

    def drop_connection(self, code: int | None = 4000) -> bool:
        return self._await(self.emulator.drop_connection(code), 30.0)

    def send_reconnect(self) -> bool:
        return self._await(self.emulator.send_reconnect(), 30.0)

    def send_invalid_session(self, resumable: bool) -> bool:
        return self._await(self.emulator.send_invalid_session(resumable), 30.0)
