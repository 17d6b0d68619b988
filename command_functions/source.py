"""``!source``: where the bot's code lives."""

from __future__ import annotations

import azure.functions as func

from function_runtime.context import CommandContext
from function_runtime.invocation import invoke
from shared.registry import COMMANDS, SOURCE_URL

SPEC = COMMANDS["source"]
bp = func.Blueprint()


def handle(ctx: CommandContext) -> str:
    return f"My source code: <{SOURCE_URL}>"


@bp.function_name("source")
@bp.queue_trigger(arg_name="msg", queue_name=SPEC.queue, connection="AzureWebJobsStorage")
def source(msg: func.QueueMessage) -> None:
    invoke(msg, SPEC, handle)
