"""FunctionsHost: runs a function app's queue and HTTP triggers against real storage.

    host = FunctionsHost(AppLocation.of("function_app"), settings, load_host_config(PROJECT_ROOT / "host.json"))
    await host.run(stop_event)           # or: await host.start(); ...; await host.stop()

The app runs in a language worker process (``localdev.functions_worker``, Microsoft's
``azure_functions_runtime`` inside) that the host starts and talks to over the Functions worker
protocol (:mod:`localdev.functions_host.worker_channel`); this process never imports the app.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from localdev.functions_host.hostconfig import LEASE, HostConfig
from localdev.functions_host.invoke import Invoker
from localdev.functions_host.spawn import AppLocation, SpawnedWorker
from localdev.functions_host.triggers import (
    DEFAULT_CONNECTION,
    HttpFunction,
    QueueFunction,
    http_functions,
    queue_functions,
)
from localdev.functions_host.worker_channel import WorkerChannel, WorkerError
from shared.errors import SettingsError
from shared.registry import poison_queue_name
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueServiceClient

    from localdev.functions_host.http_server import HttpServer
    from localdev.functions_host.queue_worker import QueueWorker

# What serving needs (the storage SDK, aiohttp): imported while the worker indexes the app, so the
# host's heaviest imports are not on the cold start's critical path.
SERVING_MODULES = ("azure.core.exceptions", "shared.queues", "localdev.functions_host.queue_worker",
                   "localdev.functions_host.http_server")


def _import_serving_modules() -> None:
    for name in SERVING_MODULES:
        importlib.import_module(name)

_log = logging.getLogger(__name__)

READY_PREFIX = "Functions host ready:"
POLLS_PREFIX = "Storage transactions of polling:"  # bench/human_paced.py reads this line


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("%s stopped unexpectedly", task.get_name(), exc_info=exc)


def _selected(names: list[str], only: Collection[str] | None) -> set[str]:
    """The function names this host runs: all of them, or ``only`` (each must exist)."""
    if only is None:
        return set(names)
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise SettingsError(f"--functions: no queue- or HTTP-triggered function {', '.join(unknown)} "
                            f"(the app has: {', '.join(names)})")
    return set(only)


class FunctionsHost:
    def __init__(
        self,
        app: AppLocation,
        settings: Settings,
        host_config: HostConfig,
        *,
        drain_timeout: float = 10.0,
        lease: timedelta = LEASE,
        only: Collection[str] | None = None,
        worker_env: Mapping[str, str] | None = None,
        prespawned: SpawnedWorker | None = None,
    ) -> None:
        """``drain_timeout``: seconds to wait for in-flight invocations at stop. ``lease``: how long a
        received message stays invisible between renewals while its function runs. ``only``: run
        just these functions (one scale controller instance). ``worker_env``: the worker's
        environment, the app settings (default: this process's). ``prespawned``: its worker, started
        early (``python -m localdev.functions_host`` does, to overlap the two start-ups)."""
        self.app = app
        self.settings = settings
        self.config = host_config
        self.drain_timeout = drain_timeout
        self.lease = lease
        self.only = only
        self.channel = WorkerChannel(app, dict(os.environ if worker_env is None else worker_env),
                                     prespawned=prespawned)
        self.channel.on_exit = lambda generation, code: self.replace_worker(generation, f"it exited (code {code})")
        self._restarting: asyncio.Task[None] | None = None
        self.worker_restarts = 0
        self.functions: list[QueueFunction] = []
        self.http_functions: list[HttpFunction] = []
        self._client: QueueServiceClient | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.workers: dict[str, QueueWorker] = {}
        self.http: HttpServer | None = None  # only when the app has HTTP-triggered functions
        self.ready = asyncio.Event()
        self._started_at: float | None = None

    async def _index(self) -> None:
        """Start the worker, read its function metadata, select and load this host's functions.
        Raises SettingsError for an app that does not index, an unknown ``only`` name or a trigger
        whose connection is not ``AzureWebJobsStorage``."""
        try:
            indexed = await self.channel.start()
        except WorkerError as exc:
            raise SettingsError(f"the worker could not index {self.app.script_file}: {exc}") from None
        queued, served = queue_functions(indexed), http_functions(indexed)
        names = _selected([f.name for f in queued] + [f.name for f in served], self.only)
        self.functions = [f for f in queued if f.name in names]
        self.http_functions = [f for f in served if f.name in names]
        for f in self.functions:
            if f.connection != DEFAULT_CONNECTION:
                raise SettingsError(
                    f"function {f.name}: connection {f.connection!r} is not supported locally; "
                    f"use {DEFAULT_CONNECTION!r}"
                )
        await self.channel.load_all([f.indexed for f in self.functions] + [f.indexed for f in self.http_functions])

    async def start(self) -> None:
        """Start the worker, index, create missing trigger queues and start polling. Storage being
        down is not fatal: the workers keep retrying. A taken FUNCTIONS_HTTP_PORT is (SettingsError)."""
        serving = asyncio.create_task(asyncio.to_thread(_import_serving_modules))
        try:
            await self._index()
        finally:
            await serving
        from azure.core.exceptions import AzureError

        from localdev.functions_host.http_server import HttpServer
        from localdev.functions_host.queue_worker import QueueWorker
        from shared.queues import async_service_client

        timeout = self.config.function_timeout
        if self.http_functions:
            invokers = [(f, Invoker(self.channel, f.indexed, f.arg_name, timeout, self._timed_out))
                        for f in self.http_functions]
            self.http = HttpServer(invokers, self.settings.functions_http_port,
                                   route_prefix=self.config.http_route_prefix)
            await self.http.start()
        client = self._client = async_service_client(self.settings.storage)
        for f in self.functions:
            # No encode/decode policy: the host sees the raw text (to apply messageEncoding
            # itself and to forward undecodable messages to the poison queue unchanged).
            queue = client.get_queue_client(f.queue_name, message_encode_policy=None, message_decode_policy=None)
            poison = client.get_queue_client(
                poison_queue_name(f.queue_name), message_encode_policy=None, message_decode_policy=None
            )
            invoker = Invoker(self.channel, f.indexed, f.arg_name, timeout, self._timed_out)
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
        names = ", ".join([f.name for f in self.functions] + [f.name for f in self.http_functions])
        _log.info("%s %d functions (%s; worker pid %s)", READY_PREFIX,
                  len(self.functions) + len(self.http_functions), names, self.channel.pid)
        for line in self.http.urls() if self.http is not None else []:
            _log.info("  %s", line)
        self.ready.set()

    def _timed_out(self, generation: int) -> None:
        self.replace_worker(generation, "a function ran past functionTimeout")

    def replace_worker(self, generation: int, reason: str) -> None:
        """Start a new worker in place of worker ``generation`` (once, however many ask), as the real
        host does when its worker dies or a function times out: what ran there is lost (its messages
        reappear and are retried); the new worker indexes the app and loads the same functions."""
        if self._stop.is_set() or generation != self.channel.generation:
            return
        if self._restarting is not None and not self._restarting.done():
            return
        _log.warning("restarting the language worker (pid %s): %s", self.channel.pid, reason)
        self._restarting = asyncio.create_task(self._restart(), name="worker-restart")

    async def _restart(self) -> None:
        for attempt in range(1, 4):
            try:
                await self.channel.restart()
            except WorkerError as exc:
                _log.error("language worker restart %d/3 failed: %s", attempt, exc)
                await asyncio.sleep(attempt)
                continue
            self.worker_restarts += 1
            _log.info("language worker restarted (pid %s)", self.channel.pid)
            return
        _log.error("the language worker could not be restarted; invocations fail until this host is restarted")

    async def stop(self) -> None:
        """Stop receiving, drain in-flight invocations (bounded), release the rest, close clients."""
        self._stop.set()
        if self.http is not None:
            await self.http.stop()  # no new requests; answers in flight were awaited by aiohttp
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._restarting is not None:
            self._restarting.cancel()
            await asyncio.gather(self._restarting, return_exceptions=True)
        await self.channel.stop()
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
