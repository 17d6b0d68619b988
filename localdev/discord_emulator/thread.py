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
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from localdev.discord_emulator.emulator import DiscordEmulator

T = TypeVar("T")
CALL_TIMEOUT_S = 30.0


class EmulatorThread:
    """Same constructor arguments as :class:`DiscordEmulator`; blocking versions of its API.

    Any attribute not defined here is the emulator's, read on the emulator's loop: a coroutine
    method becomes a blocking call, a plain method runs on the loop, a property is read there
    (lists come back as copies, so the caller never iterates state the loop is changing).
    """

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

    # -- the emulator's API, blocking --------------------------------------------------------

    def _await(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        if not self._thread.is_alive():  # not started yet, or stopped: nothing else touches it
            return fn()

        async def call() -> T:
            return fn()

        return self._await(call(), CALL_TIMEOUT_S)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "emulator":
            raise AttributeError(name)
        if isinstance(getattr(type(self.emulator), name, None), property):
            value = self._on_loop(lambda: getattr(self.emulator, name))
            return list(value) if isinstance(value, list) else value
        method = getattr(self.emulator, name)
        if inspect.iscoroutinefunction(method):
            return self._blocking(method)
        if callable(method):
            return functools.wraps(method)(lambda *args, **kwargs: self._on_loop(lambda: method(*args, **kwargs)))
        return method

    def _blocking(self, method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> T:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            # A method's own timeout fires first; the outer one only guards against a stuck loop.
            inner = bound.arguments.get("timeout")
            return self._await(method(*args, **kwargs), inner + 5.0 if inner is not None else CALL_TIMEOUT_S)

        return call
