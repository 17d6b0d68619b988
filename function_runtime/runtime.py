"""The function app's process-wide state: settings, clients, and start-up timing.

``startup()`` runs when function_app.py is imported (the Functions worker imports it
when an instance starts): it loads settings and sets up telemetry, so a bad setting
stops start-up with one clear line. The clients (HTTP session, Discord REST, flags,
poison queue) are built on the first invocation and reused; tests inject their own
with :func:`use_runtime`.

The timestamps recorded here let the first invocation draw a ``cold_start`` span
covering exactly the start-up work its message waited for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

from function_runtime.context import FlagSource
from function_runtime.discord_rest import DiscordRest
from function_runtime.replies import ReplySender
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

_log = logging.getLogger(__name__)

PoisonSink = Callable[[str, dict[str, object]], None]  # (poison queue name, document)


@dataclass
class StartupMarks:
    """Epoch-ns boundaries of this process's start-up phases (None = not reached)."""

    process_start_ns: int
    phases: dict[str, tuple[int, int]] = field(default_factory=dict)
    first_invocation_done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim_first_invocation(self) -> bool:
        """True exactly once per process: for the invocation that runs first."""
        with self.lock:
            first = not self.first_invocation_done
            self.first_invocation_done = True
            return first

    def paid_by(self, enqueued_ns: int) -> list[tuple[str, int, int]]:
        """The start-up phases (clipped) that happened after the message was enqueued."""
        out = []
        for name, (start, end) in sorted(self.phases.items(), key=lambda kv: kv[1][0]):
            start = max(start, enqueued_ns)
            if end > start:
                out.append((name, start, end))
        return out


MARKS = StartupMarks(process_start_ns=time.time_ns())


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    rest: ReplySender
    http: requests.Session
    flags: FlagSource
    poison: PoisonSink
    marks: StartupMarks = field(default_factory=lambda: MARKS)


def _process_start_ns() -> int:
    from shared.telemetry import PROCESS_START_NS

    return PROCESS_START_NS

_settings: Settings | None = None
_runtime: Runtime | None = None
_lock = threading.Lock()


def startup(settings: Settings | None = None) -> Settings:
    """Load settings and set up telemetry once per process (safe to call again)."""
    global _settings
    with _lock:
        if _settings is not None:
            return _settings
        from shared import telemetry

        MARKS.process_start_ns = _process_start_ns()
        imported_ns = time.time_ns()
        MARKS.phases["import"] = (MARKS.process_start_ns, imported_ns)
        _settings = settings or load_settings()
        telemetry.setup_telemetry(_settings, "functions")
        if telemetry.TELEMETRY_SETUP_NS is not None:
            MARKS.phases["telemetry_setup"] = telemetry.TELEMETRY_SETUP_NS
        return _settings


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


def build_runtime(settings: Settings) -> Runtime:
    from function_runtime.flags import load_flag_source

    http = requests.Session()
    http.headers["User-Agent"] = f"discord-functions-bot/{settings.service_version}"
    return Runtime(
        settings=settings,
        rest=DiscordRest(settings.discord_api_base_url, settings.discord_token),
        http=http,
        flags=load_flag_source(settings),
        poison=_queue_poison_sink(settings),
    )


def get_runtime() -> Runtime:
    """The process's Runtime, built on first use (its build time is a cold-start phase)."""
    global _runtime
    if _runtime is not None:
        return _runtime
    settings = startup()
    with _lock:
        if _runtime is None:
            began = time.time_ns()
            _runtime = build_runtime(settings)
            MARKS.phases["runtime_setup"] = (began, time.time_ns())
        return _runtime


def use_runtime(runtime: Runtime | None) -> None:
    """Install (or clear) the runtime; for tests and benchmarks."""
    global _runtime
    _runtime = runtime
