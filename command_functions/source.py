"""``!source``: where the bot's code lives."""

from __future__ import annotations

from function_runtime.context import CommandContext
from shared.registry import COMMANDS, SOURCE_URL

SPEC = COMMANDS["source"]


def handle(ctx: CommandContext) -> str:
    return f"My source code: <{SOURCE_URL}>"

