"""The function app's process-wide clients, built once while the instance starts.

function_app.py calls :func:`get_runtime` at import (the Functions worker imports it when
an instance starts): that runs :func:`function_runtime.startup.startup` (settings, then
telemetry), then builds the clients (HTTP session, Discord REST, flags, poison queue)
that every invocation reuses; the build is timed as the ``runtime_setup`` start-up
phase. Tests and benchmarks install their own with :func:`use_runtime`.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

from function_runtime.context import FlagSource
from function_runtime.discord_rest import DiscordRest
from function_runtime.http import TracedSession
from function_runtime.replies import ReplySender
from function_runtime.startup import MARKS, StartupMarks, startup
from shared.envelope import Envelope
from shared.settings import Settings
from shared.useragent import user_agent

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

__all__ = ["PoisonSink", "Runtime", "build_runtime", "get_runtime", "use_runtime"]

PoisonSink = Callable[[str, dict[str, object]], None]  # (poison queue name, document)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    rest: ReplySender
    http: requests.Session
    flags: FlagSource
    poison: PoisonSink
    marks: StartupMarks = field(default_factory=lambda: MARKS)


_runtime: Runtime | None = None
_lock = threading.Lock()


def _queue_poison_sink(settings: Settings) -> PoisonSink:
    from shared.queues import queue_client

    clients: dict[str, QueueClient] = {}  # one per poison queue, created (and the queue made) once

    def send(queue: str, document: dict[str, object]) -> None:
        client = clients.get(queue)
        if client is None:
            client = queue_client(settings.storage, queue)
            with contextlib.suppress(Exception):  # ResourceExistsError is the usual case
                client.create_queue()
            clients[queue] = client
        client.send_message(json.dumps(document, ensure_ascii=False))

    return send


class _FlagsOnFirstUse(FlagSource):
    """The flag source, built on the first evaluation: a reply that needs no flag never waits
    for featuremanagement's import, the flags file or App Configuration."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._source: FlagSource | None = None
        self._lock = threading.Lock()

    def evaluate(self, names: list[str], envelope: Envelope) -> dict[str, bool]:
        with self._lock:
            if self._source is None:
                from function_runtime.flags import load_flag_source

                self._source = load_flag_source(self._settings)
        return self._source.evaluate(names, envelope)


def build_runtime(settings: Settings) -> Runtime:
    from shared.discord_limits import SharedLimits, log_if_unshared

    # Flex Consumption (faas.name) and the local scale controller (faas.instance) run many instances.
    log_if_unshared(settings, "this function app instance", more_than_one=bool(settings.azure_resource))
    http = TracedSession()
    http.headers["User-Agent"] = user_agent("external", settings.service_version)
    return Runtime(
        settings=settings,
        rest=DiscordRest(settings.discord_api_base_url, settings.discord_token,
                         user_agent=user_agent("discord", settings.service_version),
                         shared_limits=SharedLimits.from_settings(settings)),
        http=http,
        flags=_FlagsOnFirstUse(settings),
        poison=_queue_poison_sink(settings),
    )


def get_runtime() -> Runtime:
    """The process's Runtime, built once (function_app.py does so at import)."""
    global _runtime
    if _runtime is not None:
        return _runtime
    settings = startup()
    with _lock:
        if _runtime is None:
            with MARKS.phase("runtime_setup"):
                _runtime = build_runtime(settings)
        return _runtime


def use_runtime(runtime: Runtime | None) -> None:
    """Install (or clear) the runtime; for tests and benchmarks."""
    global _runtime
    _runtime = runtime
