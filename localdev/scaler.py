"""Scale to zero on one machine: start the functions host when a command waits, stop it when idle.

On Flex Consumption an idle app has no instances; the first message starts one and
pays its cold start. ``python -m localdev`` reproduces that by default, so the first
command's trace shows a real ``cold_start`` span, as it would in Azure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from localdev.stack import Child
from shared.queues import async_service_client, queue_of
from shared.registry import COMMANDS
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient as AsyncQueueClient


class ScaleController:
    def __init__(
        self,
        storage: StorageSettings,
        start_host: Callable[[], Child],
        *,
        idle_s: float = 300.0,
        poll_s: float = 0.1,
        on_change: Callable[[str], None] = lambda _: None,
    ) -> None:
        self._storage = storage
        self._start_host = start_host
        self._idle_s = idle_s
        self._poll_s = poll_s
        self._on_change = on_change
        self.host: Child | None = None
        self.starts = 0

    async def run(self, stop: asyncio.Event) -> None:
        service = async_service_client(self._storage)
        queues = [queue_of(service, spec.queue) for spec in COMMANDS.values()]
        last_work = time.monotonic()
        try:
            while not stop.is_set():
                if await self._any_waiting(queues):
                    last_work = time.monotonic()
                    if self.host is None or not self.host.running:
                        self.starts += 1
                        self.host = self._start_host()
                        self._on_change("scaled out: a command is waiting, starting the functions host (cold start)")
                elif self.host is not None and self.host.running and time.monotonic() - last_work > self._idle_s:
                    await asyncio.to_thread(self.host.stop)
                    self._on_change(f"scaled to zero: no commands for {self._idle_s:.0f} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll_s)
        finally:
            for queue in queues:
                await queue.close()
            await service.close()

    @staticmethod
    async def _any_waiting(queues: list[AsyncQueueClient]) -> bool:
        for queue in queues:
            try:
                if await queue.peek_messages(max_messages=1):
                    return True
            except Exception:
                continue
        return False
