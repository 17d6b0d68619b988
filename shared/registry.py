"""The command registry: one table both sides read.

The listener looks commands up here to route them (and to register slash commands);
function_app.py builds one queue-triggered function per row, running the ``handle`` of
the row's module (:attr:`CommandSpec.module`); ``help`` is generated from it. Adding a
command = one row here + one module ``command_functions/<name>.py`` with ``handle(ctx) -> str``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

QUEUE_PREFIX = "cmd-"
COMMAND_PACKAGE = "command_functions"  # where each command's module lives, named after the command
POISON_SUFFIX = "-poison"
MESSAGING_SYSTEM = "azure_queue_storage"  # messaging.system on both sides of the queue hop


@dataclass(frozen=True)
class SlashOption:
    """One option of the slash-command form (Discord option type 3 = STRING, 4 = INTEGER)."""

    name: str
    description: str
    type: int = 3
    required: bool = False


@dataclass(frozen=True)
class CommandSpec:
    name: str
    description: str  # one line, shown by help and as the slash-command description
    usage: str  # arguments, e.g. "<criteria>"; "" for none
    flag: str | None = None  # feature flag that gates it; None = everyone may run it
    options: tuple[SlashOption, ...] = field(default=())
    # Flags that also let an author run it, each for some subcommands the command checks itself
    # (``mc-admin`` for ``!mc`` beyond the whitelist); evaluated with the others.
    sub_flags: tuple[str, ...] = field(default=())

    @property
    def flags(self) -> tuple[str, ...]:
        """Every flag this command reads: its gate first, then its subcommands' flags."""
        return ((self.flag,) if self.flag else ()) + self.sub_flags

    @property
    def queue(self) -> str:
        return queue_name(self.name)

    @property
    def module(self) -> str:
        """The module holding this command's ``handle(ctx) -> str`` (imported by the function app only)."""
        return f"{COMMAND_PACKAGE}.{self.name}"


REMINDERS_DUE_QUEUE = "reminders-due"  # delayed messages: one per pending reminder, visible when due
REMINDERS_TABLE = "reminders"
COMMAND_RUNS_TABLE = "commandruns"  # at-most-once claims of side effects, per Discord message/interaction id
NON_COMMAND_QUEUES = (REMINDERS_DUE_QUEUE,)  # other queues the function app reads (infra creates them too)


def queue_name(command: str) -> str:
    return f"{QUEUE_PREFIX}{command}"


def poison_queue_name(queue: str) -> str:
    return f"{queue}{POISON_SUFFIX}"


_SPECS = (
    CommandSpec("help", "List the commands you can run, or show one command's usage", "[command]",
                options=(SlashOption("command", "A command to explain"),)),
    CommandSpec("ping", "Check the bot is alive", ""),
    CommandSpec("source", "Where the bot's source code lives", ""),
    CommandSpec("catfact", "A random cat fact", ""),
    CommandSpec("mtg", "Scryfall search link for a Commander deck: commander name plus criteria",
                "<commander> [types] [p/t] [cmc<n]",
                options=(SlashOption("criteria", "Commander name plus criteria, or 'help'", required=True),)),
    CommandSpec("relationships", "A random synergy or objective to build around", "[objective]",
                flag="relationships", options=(SlashOption("mode", "'objective' for an objective"),)),
    CommandSpec("roll", "Chronicles of Darkness dice: n ten-sided dice or a chance die", "<n|c> [8a|9a]",
                flag="roll", options=(SlashOption("dice", "Number of dice, or c for a chance die", required=True),
                                      SlashOption("again", "8a or 9a to widen re-rolls"))),
    CommandSpec("remindme", "A reminder in this channel: text plus when, e.g. 10m, 2h, 3d, 1M; or list/cancel",
                "<text> <N><m|h|d|M> | list [all] | cancel <id> | help",
                options=(SlashOption("text", "What to remember, or list / list all / cancel <id> / help",
                                     required=True),
                         SlashOption("in", "When: 10m, 2h, 3d or 1M (minutes, hours, days, months)"))),
    CommandSpec("mc", "Manage the Minecraft server over RCON: whitelist add|remove|list, or any server command",
                "whitelist add|remove|list [player] | <command>", flag="mc", sub_flags=("mc-admin",),
                options=(SlashOption("command", "e.g. whitelist add Steve, or list", required=True),)),
)

COMMANDS: MappingProxyType[str, CommandSpec] = MappingProxyType({s.name: s for s in _SPECS})
HELP_COMMAND = "help"
SOURCE_URL = "https://github.com/your-org/discord-functions-bot"
