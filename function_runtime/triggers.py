"""The queue trigger every command gets, built from its registry row.

A command module holds only its plain ``handle(ctx) -> str``; :func:`command_blueprint`
wraps it in the one trigger shape all commands share, so the trigger is never written by
hand: function name = command name, queue = ``cmd-<command>``, binding argument ``msg``
(the Functions worker matches the binding to the parameter of that name).
"""

from __future__ import annotations

import azure.functions as func

from function_runtime.context import Handler
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
