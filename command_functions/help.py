"""``!help [command]``: generated from the registry, filtered to what the author may run.

Unknown commands are routed here by the listener (``!foo`` arrives as ``help`` with
args ``foo``... only when ``foo`` is not a command), so the user learns what exists.
"""

from __future__ import annotations

from function_runtime.context import CommandContext
from shared.registry import COMMANDS

SPEC = COMMANDS["help"]


def _line(prefix: str, name: str) -> str:
    spec = COMMANDS[name]
    usage = f" {spec.usage}" if spec.usage else ""
    return f"`{prefix}{name}{usage}`: {spec.description}"


def handle(ctx: CommandContext) -> str:
    prefix = ctx.settings.bot_prefix
    wanted = ctx.args.strip().lower().removeprefix(prefix).split(" ", 1)[0] if ctx.args.strip() else ""
    visible = [name for name, spec in COMMANDS.items() if ctx.may_run(spec)]
    if wanted:
        if wanted in visible:
            return _line(prefix, wanted)
        shown = wanted[:32].replace("`", "'")
        return f"Unknown command `{shown}`. Try `{prefix}help` for the list."
    return "Commands you can run:\n" + "\n".join(_line(prefix, name) for name in visible)

