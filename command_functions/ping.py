"""``!ping``: the smallest command, for checking the whole chain is alive."""

from __future__ import annotations

from function_runtime.context import CommandContext
from shared.registry import COMMANDS

SPEC = COMMANDS["ping"]


def handle(ctx: CommandContext) -> str:
    return "pong"

