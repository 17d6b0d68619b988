"""The functions the host runs, read from the worker's function metadata (``raw_bindings``): queue
triggers (polled by queue_worker.py) and HTTP triggers (served by http_server.py).

The worker library indexes the app (``app.get_functions()`` inside ``azure_functions_runtime``);
the host sees only what the real host sees: each function's name, id and bindings as JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from localdev.functions_host.worker_channel import IndexedFunction
from shared.errors import SettingsError

_log = logging.getLogger(__name__)

DEFAULT_CONNECTION = "AzureWebJobsStorage"
SERVED_ELSEWHERE = frozenset({"httpTrigger"})  # localdev/functions_host/http_server.py


@dataclass(frozen=True)
class QueueFunction:
    indexed: IndexedFunction
    queue_name: str
    connection: str  # app setting name, e.g. "AzureWebJobsStorage"
    arg_name: str  # the binding (parameter) that receives the QueueMessage

    @property
    def name(self) -> str:
        return self.indexed.name


def queue_functions(functions: Sequence[IndexedFunction]) -> list[QueueFunction]:
    """The queue-triggered functions among the indexed ones."""
    found: list[QueueFunction] = []
    for function in functions:
        trigger = function.trigger
        kind = trigger.get("type")
        if kind != "queueTrigger":
            if kind not in SERVED_ELSEWHERE:
                _log.warning("function %s: trigger %s is not served by the local host; skipped", function.name, kind)
            continue
        queue_name = str(trigger.get("queueName", ""))
        if "%" in queue_name or "{" in queue_name:
            raise SettingsError(f"function {function.name}: binding expressions in queue names are not "
                                "supported locally")
        extra = [b.get("name") for b in function.bindings if b is not trigger]
        if extra:
            _log.warning("function %s: bindings %s are ignored by the local host", function.name, extra)
        found.append(QueueFunction(
            indexed=function,
            queue_name=queue_name,
            connection=str(trigger.get("connection") or DEFAULT_CONNECTION),
            arg_name=str(trigger.get("name", "")),
        ))
    return found


@dataclass(frozen=True)
class HttpFunction:
    indexed: IndexedFunction
    route: str  # the route template without the prefix, e.g. "interactions" or "items/{id}"
    methods: frozenset[str]  # empty: every method
    arg_name: str  # the binding that receives the HttpRequest

    @property
    def name(self) -> str:
        return self.indexed.name


def http_functions(functions: Sequence[IndexedFunction]) -> list[HttpFunction]:
    """The HTTP-triggered functions among the indexed ones."""
    found = []
    for function in functions:
        trigger = function.trigger
        if trigger.get("type") != "httpTrigger":
            continue
        found.append(HttpFunction(
            indexed=function,
            route=str(trigger.get("route") or function.name).strip("/"),
            methods=frozenset(str(m).upper() for m in trigger.get("methods") or []),
            arg_name=str(trigger.get("name", "")),
        ))
    return found
