"""``!ping``: the smallest command, for checking the whole chain is alive."""

from __future__ import annotations

import azure.functions as func

from function_runtime.context import CommandContext
from function_runtime.invocation import invoke
from shared.registry import COMMANDS

SPEC = COMMANDS["ping"]
bp = func.Blueprint()


def handle(ctx: CommandContext) -> str:
    return "pong"


@bp.function_name("ping")
@bp.queue_trigger(arg_name="msg", queue_name=SPEC.queue, connection="AzureWebJobsStorage")
def ping(msg: func.QueueMessage) -> None:
    invoke(msg, SPEC, handle)
