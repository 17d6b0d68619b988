"""The queue trigger every command gets, built from its registry row.

A command module holds only its plain ``handle(ctx) -> str``; :func:`command_blueprint`
wraps it in the one trigger shape all commands share, so the trigger is never written by
hand: function name = command name, queue = ``cmd-<command>``, binding argument ``msg``
(the Functions worker matches the binding to the parameter of that name).
"""

from __future__ import annotations

import importlib

import azure.functions as func

from function_runtime.context import CommandContext, Handler
from function_runtime.invocation import invoke
from shared.registry import CommandSpec

STORAGE_CONNECTION = "AzureWebJobsStorage"  # the app setting holding the queue connection


def command_blueprint(spec: CommandSpec, handle: Handler) -> func.Blueprint:
    """A Blueprint with one queue-triggered function that runs ``handle`` for ``spec``."""
    bp = func.Blueprint()

    def trigger(msg: func.QueueMessage) -> None:
        invoke(msg, spec, handle)

    # Named after the command, so host logs and the worker's function index read as the command.
    trigger.__name__ = trigger.__qualname__ = spec.name
    bp.function_name(spec.name)(bp.queue_trigger(arg_name="msg", queue_name=spec.queue,
                                                 connection=STORAGE_CONNECTION)(trigger))
    return bp


def lazy_handler(spec: CommandSpec) -> Handler:
    """The ``handle`` of ``spec``'s module, imported when the command first runs.

    With per-function scaling an instance runs one command: its cold start should not
    import the others (Scryfall's query parser alone is tens of milliseconds). A module
    that fails to import fails its own command's invocations (logged, the user gets the
    apology with the trace id), not the whole app.
    """
    loaded: list[Handler] = []

    def handle(ctx: CommandContext) -> str:
        if not loaded:
            loaded.append(importlib.import_module(spec.module).handle)
        return loaded[0](ctx)

    handle.__name__ = handle.__qualname__ = f"{spec.name}_handle"
    return handle
