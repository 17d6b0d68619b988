"""The queue-triggered functions of a ``func.FunctionApp``, as the host indexes them."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import SettingsError

_log = logging.getLogger(__name__)

DEFAULT_CONNECTION = "AzureWebJobsStorage"


@dataclass(frozen=True)
class QueueFunction:
    name: str  # the function name (FunctionName / function_name decorator, else the Python name)
    queue_name: str
    connection: str  # app setting name, e.g. "AzureWebJobsStorage"
    arg_name: str  # the parameter that receives the QueueMessage
    func: Callable[..., Any]
    is_async: bool
    wants_context: bool  # the function takes a ``context`` parameter


SERVED_ELSEWHERE = frozenset({"httpTrigger"})  # localdev/functions_host/http_server.py


def queue_functions(functions: Sequence[Any]) -> list[QueueFunction]:
    """The queue-triggered functions among ``app.get_functions()``'s result (which may be
    called only once per app, as the worker does)."""
    found: list[QueueFunction] = []
    for function in functions:
        trigger = function.get_trigger()
        name = function.get_function_name() or "?"
        if trigger is None or trigger.get_binding_name() != "queueTrigger":
            if trigger is None or trigger.get_binding_name() not in SERVED_ELSEWHERE:
                _log.warning("function %s: not queue- or HTTP-triggered; the local host skips it", name)
            continue
        queue_name = str(getattr(trigger, "queue_name", ""))
        if "%" in queue_name or "{" in queue_name:
            raise SettingsError(f"function {name}: binding expressions in queue names are not supported locally")
        extra = [b.name for b in function.get_bindings() if b is not trigger]
        if extra:
            _log.warning("function %s: bindings %s are ignored by the local host", name, extra)
        user_func = function.get_user_function()
        params = inspect.signature(user_func).parameters
        found.append(
            QueueFunction(
                name=name,
                queue_name=queue_name,
                connection=str(getattr(trigger, "connection", "") or DEFAULT_CONNECTION),
                arg_name=trigger.name,
                func=user_func,
                is_async=inspect.iscoroutinefunction(user_func),
                wants_context="context" in params and trigger.name != "context",
            )
        )
    return found
