"""One queue-triggered function's poll/dispatch loop, as the real host's QueueListener runs it.

- Receives up to ``batchSize`` messages; fetches the next batch once the number in flight
  has dropped to ``newBatchThreshold`` (so at most batchSize + newBatchThreshold run at once).
- Received messages are leased (invisible) for :data:`LEASE` and the lease is renewed at
  half-time while the function runs, so a long invocation is not handed out twice while a
  crashed host's messages reappear within a minute.
- Success deletes; failure makes the message visible again after ``visibilityTimeout``;
  a failure at ``maxDequeueCount`` moves the raw message to ``<queue>-poison``.
- Idle polling backs off from 100 ms to ``maxPollingInterval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from datetime import timedelta
from enum import Enum
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueMessage as StorageQueueMessage
from azure.storage.queue.aio import QueueClient

from localdev.functions_host.backoff import PollingBackoff
from localdev.functions_host.hostconfig import LEASE, QueuesConfig
from localdev.functions_host.invoke import BodyDecodeError, Invoker, decode_body, payload, queue_trigger_metadata
from localdev.functions_host.worker_channel import FunctionFailed, WorkerError

_log = logging.getLogger(__name__)

SETTLE_TIMEOUT = 10.0  # bound on delete/release/poison calls at shutdown


class Outcome(Enum):
    """How one invocation ended; the value is what the host's "Executed" log line says."""

    SUCCEEDED = "Succeeded"  # deleted
    FAILED = "Failed"  # released for a retry, or poisoned at maxDequeueCount
    TIMED_OUT = "Timed out"  # like FAILED
    POISONED = "Poisoned (dequeued too often before)"  # moved to <queue>-poison without a call
    CANCELLED = "Cancelled (host shutting down)"  # released at once; does not count as a failure


async def _wait_any(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return when any event is set, or after ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class _Lease:
    """The current pop receipt of a message being processed (renewals change it)."""

    def __init__(self, msg: StorageQueueMessage) -> None:
        self.id: str = msg.id
        self.pop_receipt: str | None = msg.pop_receipt


class QueueWorker:
    def __init__(
        self,
        invoker: Invoker,
        queue: QueueClient,
        poison: QueueClient,
        config: QueuesConfig,
        *,
        lease: timedelta = LEASE,
    ) -> None:
        self.invoker = invoker
        self.name = invoker.name
        self._queue = queue
        self._poison = poison
        self._config = config
        self._lease = max(1, int(lease.total_seconds()))
        self._backoff = PollingBackoff(config.max_polling_interval)
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._poison_ready = False
        self._storage_down = False
        self.max_in_flight = 0  # high-water mark, for tests and diagnostics
        self.polls = 0  # receive requests sent: each is a billed storage transaction

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def ensure_queue(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self._queue.create_queue()

    async def run(self, stop: asyncio.Event, drain_timeout: float = 10.0) -> None:
        """Poll and dispatch until ``stop`` is set, then drain (see :meth:`drain`)."""
        try:
            while not stop.is_set():
                while self.in_flight > self._config.new_batch_threshold and not stop.is_set():
                    self._slot_freed.clear()
                    await _wait_any(self._slot_freed, stop)
                if stop.is_set():
                    break
                batch = await self._receive()
                if batch:
                    self._backoff.reset()
                    for msg in batch:
                        self._spawn(msg)
                else:
                    await _wait_any(stop, timeout=self._backoff.next_delay())
        finally:
            await self.drain(drain_timeout)

    async def _receive(self) -> list[StorageQueueMessage]:
        self.polls += 1
        try:
            pages = self._queue.receive_messages(
                messages_per_page=self._config.batch_size, visibility_timeout=self._lease
            ).by_page()
            batch: list[StorageQueueMessage] = []
            async for page in pages:
                batch.extend([m async for m in page])
                break  # one request per poll, as the real host does
        except ResourceNotFoundError:
            _log.warning("%s: queue %s is missing; creating it", self.name, self._queue.queue_name)
            await self._try(self.ensure_queue())
            return []
        except (AzureError, OSError) as exc:
            if not self._storage_down:
                _log.warning("%s: cannot reach storage (%s); retrying", self.name, type(exc).__name__)
            self._storage_down = True
            return []
        if self._storage_down:
            _log.info("%s: storage reachable again", self.name)
            self._storage_down = False
        return batch

    def _spawn(self, msg: StorageQueueMessage) -> None:
        task = asyncio.create_task(self._process(msg), name=f"{self.name}:{msg.id}")
        self._tasks.add(task)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    async def _process(self, msg: StorageQueueMessage) -> None:
        started = time.monotonic()
        lease = _Lease(msg)
        renewer = asyncio.create_task(self._renew(lease))
        outcome = Outcome.FAILED
        try:
            if msg.dequeue_count is not None and msg.dequeue_count > self._config.max_dequeue_count:
                outcome = Outcome.POISONED
            else:
                body = decode_body(msg.content, self._config.message_encoding)
                await self.invoker(payload(body), queue_trigger_metadata(msg))
                outcome = Outcome.SUCCEEDED
        except BodyDecodeError as exc:
            _log.error("%s: message %s not delivered to the function: %s", self.name, msg.id, exc)
        except TimeoutError:
            outcome = Outcome.TIMED_OUT
            _log.error("%s: message %s: function ran past functionTimeout", self.name, msg.id)
        except asyncio.CancelledError:
            outcome = Outcome.CANCELLED
        except FunctionFailed as exc:
            _log.error("%s: message %s: function raised %s\n%s", self.name, msg.id, exc, exc.stack_trace.rstrip())
        except WorkerError as exc:
            _log.error("%s: message %s: %s", self.name, msg.id, exc)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        await self._settle(msg, lease, outcome)
        duration_ms = (time.monotonic() - started) * 1000
        _log.info(
            "Executed '%s' (%s, message=%s, dequeue_count=%s, duration=%.0fms)",
            self.name, outcome.value, msg.id, msg.dequeue_count, duration_ms,
        )  # fmt: skip

    async def _settle(self, msg: StorageQueueMessage, lease: _Lease, outcome: Outcome) -> None:
        if outcome is Outcome.SUCCEEDED:
            await self._try(self._queue.delete_message(lease.id, lease.pop_receipt))
        elif outcome is Outcome.CANCELLED or (msg.dequeue_count or 0) < self._config.max_dequeue_count:
            visible_in = int(self._config.visibility_timeout.total_seconds())
            await self._try(self._queue.update_message(lease.id, lease.pop_receipt, visibility_timeout=visible_in))
        else:
            await self._move_to_poison(msg, lease)

    async def _move_to_poison(self, msg: StorageQueueMessage, lease: _Lease) -> None:
        try:
            if not self._poison_ready:
                with contextlib.suppress(ResourceExistsError):
                    await self._poison.create_queue()
                self._poison_ready = True
            # Raw text, unchanged: the poison queue holds what the producer sent.
            await asyncio.wait_for(self._poison.send_message(msg.content), SETTLE_TIMEOUT)
        except (AzureError, OSError, TimeoutError) as exc:
            if isinstance(exc, ResourceNotFoundError):
                self._poison_ready = False  # storage restarted (in-memory Azurite): recreate it next time
            # Left leased: it reappears, and a dequeue count past the maximum sends it here again.
            _log.error("%s: could not move message %s to %s (%s)", self.name, msg.id, self._poison.queue_name, exc)
            return
        await self._try(self._queue.delete_message(lease.id, lease.pop_receipt))
        _log.warning(
            "%s: message %s moved to %s after %s dequeues",
            self.name, msg.id, self._poison.queue_name, msg.dequeue_count,
        )  # fmt: skip

    async def _renew(self, lease: _Lease) -> None:
        while True:
            await asyncio.sleep(self._lease / 2)
            try:
                receipt = await self._queue.update_message(lease.id, lease.pop_receipt, visibility_timeout=self._lease)
                lease.pop_receipt = receipt.pop_receipt
            except (AzureError, OSError) as exc:
                _log.warning("%s: could not renew the lease of message %s (%s)", self.name, lease.id, exc)

    async def _try(self, call: Awaitable[Any]) -> None:
        """Await a storage call, bounded; a failure is logged (an unsettled message reappears by itself)."""
        try:
            await asyncio.wait_for(call, SETTLE_TIMEOUT)
        except (AzureError, OSError, TimeoutError) as exc:
            first_line = (str(exc).splitlines() or [""])[0]  # the SDK appends request ids and the raw response
            _log.warning("%s: storage call failed (%s: %s)", self.name,
                         type(exc).__name__, first_line)

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for in-flight invocations, then cancel the rest; cancelled
        ones are released (not deleted) so they become visible again."""
        if not self._tasks:
            return
        _log.info("%s: waiting up to %.0fs for %d in-flight invocation(s)", self.name, timeout, self.in_flight)
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=SETTLE_TIMEOUT + 1)
