"""One invocation: decode the body, build the trigger argument, call the user function.

Sync functions run on the host's thread pool and async ones on the event loop, as the
Python worker does. A function that outlives ``functionTimeout`` raises TimeoutError; a
sync one cannot be stopped, so its thread is left to finish on its own (the real host
would recycle the worker process).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any, Protocol

from azure.functions.queue import QueueMessage as FuncQueueMessage
from azure.storage.queue import QueueMessage as StorageQueueMessage

from localdev.functions_host.context import LocalContext


class Invocable(Protocol):
    """What the invoker needs of a function (queue- or HTTP-triggered)."""

    @property
    def name(self) -> str: ...
    @property
    def arg_name(self) -> str: ...
    @property
    def func(self) -> Callable[..., Any]: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def wants_context(self) -> bool: ...


class BodyDecodeError(ValueError):
    """The message body does not match host.json's messageEncoding; the function is not called."""


def decode_body(content: object, encoding: str) -> bytes:
    """The raw queue text -> the bytes the function sees, per ``messageEncoding``."""
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content or "")
    if encoding == "none":
        return text.encode("utf-8")
    try:
        # Whitespace is ignored, as .NET's Convert.FromBase64String does; anything else must be base64.
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BodyDecodeError(f"body is not valid base64 ({exc}); host.json says messageEncoding=base64") from None


def trigger_message(msg: StorageQueueMessage, body: bytes) -> FuncQueueMessage:
    """The ``func.QueueMessage`` the real worker builds from the trigger metadata."""
    return FuncQueueMessage(
        id=msg.id,
        body=body,
        dequeue_count=msg.dequeue_count,
        insertion_time=msg.inserted_on,
        expiration_time=msg.expires_on,
        time_next_visible=msg.next_visible_on,
        pop_receipt=msg.pop_receipt,
    )


class Invoker:
    """Calls one function; owns nothing but a reference to the host's thread pool."""

    def __init__(
        self,
        function: Invocable,
        executor: Executor,
        timeout: timedelta | None,
        function_directory: str = "",
    ) -> None:
        self.function = function
        self._executor = executor
        self._timeout = timeout.total_seconds() if timeout is not None else None
        self._directory = function_directory
        self._threads: set[asyncio.Future[Any]] = set()

    def _kwargs(self, message: object) -> dict[str, Any]:
        kwargs: dict[str, Any] = {self.function.arg_name: message}
        if self.function.wants_context:
            kwargs["context"] = LocalContext(str(uuid.uuid4()), self.function.name, self._directory)
        return kwargs

    @property
    def running_threads(self) -> int:
        """Sync invocations whose thread has not returned yet (timed-out ones included)."""
        return len(self._threads)

    def _thread_done(self, future: asyncio.Future[Any]) -> None:
        self._threads.discard(future)
        if not future.cancelled():
            future.exception()  # retrieved: a timed-out thread's late error is not "never retrieved"

    async def __call__(self, message: object) -> Any:
        """The function's result (an HTTP response; None for queue triggers). Raises what the
        function raised, TimeoutError past functionTimeout."""
        kwargs = self._kwargs(message)
        if self.function.is_async:
            return await asyncio.wait_for(self.function.func(**kwargs), self._timeout)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(self.function.func, **kwargs))
        self._threads.add(future)
        future.add_done_callback(self._thread_done)
        # shield: on timeout/cancel only our wait ends; the thread cannot be interrupted.
        return await asyncio.wait_for(asyncio.shield(future), self._timeout)
