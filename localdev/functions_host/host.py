"""FunctionsHost: runs a FunctionApp's queue triggers against real storage.

    host = FunctionsHost(app, settings, load_host_config(PROJECT_ROOT / "host.json"))
    await host.run(stop_event)           # or: await host.start(); ...; await host.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import azure.functions as func
from azure.core.exceptions import AzureError
from azure.storage.queue.aio import QueueServiceClient

from localdev.functions_host.hostconfig import HostConfig
from localdev.functions_host.invoke import Invoker
from localdev.functions_host.queue_worker import LEASE, QueueWorker
from localdev.functions_host.triggers import DEFAULT_CONNECTION, QueueFunction, queue_functions
from shared.errors import SettingsError
from shared.queues import async_service_client
from shared.registry import poison_queue_name
from shared.settings import PROJECT_ROOT, Settings

_log = logging.getLogger(__name__)

READY_PREFIX = "Functions host ready:"
POLLS_PREFIX = "Storage transactions of polling:"  # bench/human_paced.py reads this line


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("%s stopped unexpectedly", task.get_name(), exc_info=exc)


def _select(functions: list[QueueFunction], only: Collection[str] | None) -> list[QueueFunction]:
    if only is None:
        return functions
    unknown = sorted(set(only) - {f.name for f in functions})
    if unknown:
        known = ", ".join(f.name for f in functions)
        raise SettingsError(f"--functions: no queue-triggered function {', '.join(unknown)} (the app has: {known})")
    return [f for f in functions if f.name in only]


class FunctionsHost:
    def __init__(
        self,
        app: func.FunctionApp,
        settings: Settings,
        host_config: HostConfig,
        *,
        drain_timeout: float = 10.0,
        max_threads: int | None = None,
        lease: timedelta = LEASE,
        only: Collection[str] | None = None,
    ) -> None:
        """Index ``app`` now (``get_functions()`` can run only once per app). Raises SettingsError
        for a trigger whose connection is not ``AzureWebJobsStorage``.

        ``drain_timeout``: seconds to wait for in-flight invocations at stop. ``max_threads``: the
        pool for sync functions (default: Python's). ``lease``: how long a received message stays
        invisible between renewals while its function runs. ``only``: run just these functions
        (one scale controller instance); a name the app does not have raises SettingsError."""
        self.settings = settings
        self.config = host_config
        self.drain_timeout = drain_timeout
        self.lease = lease
        self.functions: list[QueueFunction] = _select(queue_functions(app), only)
        for f in self.functions:
            if f.connection != DEFAULT_CONNECTION:
                raise SettingsError(
                    f"function {f.name}: connection {f.connection!r} is not supported locally; "
                    f"use {DEFAULT_CONNECTION!r}"
                )
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="function")
        self._client: QueueServiceClient | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.workers: dict[str, QueueWorker] = {}
        self.ready = asyncio.Event()
        self._started_at: float | None = None

    @property
    def abandoned_threads(self) -> int:
        """Sync invocations still running in a thread (timed out, or cut off at shutdown)."""
        return sum(w.invoker.running_threads for w in self.workers.values())

    async def start(self) -> None:
        """Create missing trigger queues and start polling. Storage being down is not fatal:
        the workers keep retrying."""
        client = self._client = async_service_client(self.settings.storage)
        for f in self.functions:
            # No encode/decode policy: the worker sees the raw text (to apply messageEncoding
            # itself and to forward undecodable messages to the poison queue unchanged).
            queue = client.get_queue_client(f.queue_name, message_encode_policy=None, message_decode_policy=None)
            poison = client.get_queue_client(
                poison_queue_name(f.queue_name), message_encode_policy=None, message_decode_policy=None
            )
            invoker = Invoker(f, self._executor, self.config.function_timeout, str(PROJECT_ROOT))
            self.workers[f.name] = QueueWorker(invoker, queue, poison, self.config.queues, lease=self.lease)
        # All at once, bounded: storage that is slow or down must not hold start-up (or SIGTERM) for long.
        results = await asyncio.gather(
            *(asyncio.wait_for(w.ensure_queue(), 15) for w in self.workers.values()), return_exceptions=True
        )
        for name, result in zip(self.workers, results, strict=True):
            if isinstance(result, (AzureError, OSError, TimeoutError)):
                _log.warning("%s: could not create its queue yet (%s); will retry", name, type(result).__name__)
            elif isinstance(result, BaseException):
                raise result
        self._tasks = [
            asyncio.create_task(w.run(self._stop, self.drain_timeout), name=f"worker:{name}")
            for name, w in self.workers.items()
        ]
        for task in self._tasks:
            task.add_done_callback(_log_crash)
        self._started_at = time.monotonic()
        names = ", ".join(f.name for f in self.functions)
        _log.info("%s %d functions (%s)", READY_PREFIX, len(self.functions), names)
        self.ready.set()

    async def stop(self) -> None:
        """Stop receiving, drain in-flight invocations (bounded), release the rest, close clients."""
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.close()
            self._client = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._started_at is not None:
            polls = sum(w.polls for w in self.workers.values())
            _log.info("%s %d queue polls in %.1f s (%d queues)", POLLS_PREFIX, polls,
                      time.monotonic() - self._started_at, len(self.workers))
        _log.info("Functions host stopped")

    async def run(self, stop_event: asyncio.Event) -> None:
        """Run until ``stop_event`` is set (also while still starting: SIGTERM is never ignored)."""
        starting = asyncio.create_task(self.start())
        stopping = asyncio.create_task(stop_event.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # a start-up error is raised here
                await stopping
        finally:
            starting.cancel()
            stopping.cancel()
            await self.stop()
