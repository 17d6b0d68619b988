"""Hands envelopes to the command queues without ever blocking the gateway.

``submit()`` is synchronous and O(1): it puts the encoded envelope in a bounded
buffer and returns False when the buffer is full (the caller tells the user the bot is
busy). The bound counts every message not yet sent, including the ones a worker is
retrying, so ``capacity`` really is the most the listener holds in memory. A few
worker tasks send from the buffer with a QueueSender (gateway_listener/senders.py:
no retries of its own, short timeouts); when storage is
unreachable they retry with capped exponential backoff, so messages wait in the
buffer and are delivered when storage returns. At shutdown :meth:`drain` cuts the
backoff short, so a storage that came back is used at once. Each message's PRODUCER span is
ended when the send really happens, with the queue's message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import Span, Status, StatusCode

from gateway_listener.senders import QueueSender, make_sender
from shared.settings import StorageSettings

_log = logging.getLogger(__name__)


@dataclass
class Outgoing:
    queue: str
    text: str
    span: Span
    buffered_at: float = field(default_factory=time.monotonic)


class Enqueuer:
    def __init__(
        self,
        storage: StorageSettings,
        *,
        capacity: int = 1000,
        workers: int = 8,
        max_backoff: float = 10.0,
        sender: QueueSender | None = None,
    ) -> None:
        self._sender = sender or make_sender(storage)
        # Unbounded queue, bounded by ``_outstanding``: items a worker holds count too.
        self._buffer: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._capacity = max(1, capacity)
        self._outstanding = 0
        self._hurry = asyncio.Event()  # set at shutdown: retry now instead of sleeping out the backoff
        self._ready: set[str] = set()
        self._workers = workers
        self._max_backoff = max_backoff
        self._tasks: list[asyncio.Task[None]] = []
        self.sent = 0
        self.retries = 0

    @property
    def pending(self) -> int:
        """Messages accepted but not sent yet (buffered or being retried)."""
        return self._outstanding

    async def start(self, queues: Sequence[str] = ()) -> None:
        """Start the workers, and create the given queues in the background (best effort).

        Never waits for storage: the gateway connects even while storage is down, and the
        workers create any queue that is still missing when they first send to it.
        """
        self._tasks = [asyncio.create_task(self._work(), name=f"enqueuer-{i}") for i in range(self._workers)]
        if queues:
            self._tasks.append(asyncio.create_task(self._prepare(queues), name="enqueuer-prepare"))

    async def _prepare(self, queues: Sequence[str]) -> None:
        results = await asyncio.gather(*(self._ensure(q) for q in queues), return_exceptions=True)
        if failed := [q for q, r in zip(queues, results, strict=True) if isinstance(r, Exception)]:
            _log.warning("could not create %d queues yet (storage unreachable?): the first send will retry",
                         len(failed))

    def submit(self, queue: str, text: str, span: Span) -> bool:
        """Buffer one message; False (and the span ended as dropped) when the buffer is full."""
        if self._outstanding >= self._capacity:
            span.set_status(Status(StatusCode.ERROR, "listener buffer full"))
            span.set_attribute("app.error", "listener buffer full: message dropped")
            span.end()
            return False
        self._outstanding += 1
        self._buffer.put_nowait(Outgoing(queue, text, span))
        span.set_attribute("app.buffer.depth", self._outstanding)
        return True

    async def drain(self, timeout: float) -> bool:
        """Wait (bounded) until everything buffered has been sent; retries stop backing off."""
        self._hurry.set()
        try:
            await asyncio.wait_for(self._buffer.join(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, drain_timeout: float = 5.0) -> None:
        if not await self.drain(drain_timeout):
            _log.error("shutting down with %d messages still buffered (storage unreachable)", self.pending)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._buffer.empty():  # end their spans so the trace says what happened
            item = self._buffer.get_nowait()
            item.span.set_status(Status(StatusCode.ERROR, "listener stopped before storage returned"))
            item.span.end()
        await self._sender.close()

    async def _ensure(self, queue: str) -> None:
        if queue not in self._ready:
            await self._sender.create_queue(queue)
            self._ready.add(queue)

    async def _work(self) -> None:
        while True:
            item = await self._buffer.get()
            try:
                await self._send_with_retry(item)
            except asyncio.CancelledError:  # stopped mid-retry: the trace should say so
                item.span.set_status(Status(StatusCode.ERROR, "listener stopped before storage returned"))
                item.span.end()
                raise
            finally:
                self._outstanding -= 1
                self._buffer.task_done()

    async def _send_with_retry(self, item: Outgoing) -> None:
        attempt = 0
        while True:
            try:
                await self._ensure(item.queue)
                message_id = await self._sender.send_message(item.queue, item.text)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.retries += 1
                delay = min(self._max_backoff, 0.1 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0)
                self._ready.discard(item.queue)  # the queue may have been lost with the storage
                item.span.add_event("enqueue.retry", {"attempt": attempt, "error.type": type(exc).__name__,
                                                      "retry_in_s": round(delay, 3)})
                if attempt == 1:
                    _log.warning("storage unreachable sending to %s (%s); buffering and retrying",
                                 item.queue, type(exc).__name__)
                if self._hurry.is_set():
                    await asyncio.sleep(min(delay, 0.25))
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry.wait(), delay)
                continue
            self.sent += 1
            item.span.set_attribute("messaging.message.id", message_id)
            item.span.set_attribute("app.buffer.wait_ms", round((time.monotonic() - item.buffered_at) * 1000, 2))
            if attempt:
                item.span.set_attribute("app.enqueue.attempts", attempt + 1)
                _log.info("storage back: delivered buffered message to %s after %d attempts", item.queue, attempt + 1)
            item.span.end()
            return
