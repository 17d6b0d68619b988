"""Prefix parsing and routing: ``!catfact`` -> ("catfact", ""), ``!foo`` -> ("help", "foo").

Pure functions, no discord.py: the listener calls them for every message, so they
must be cheap and must never raise on hostile input.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.registry import COMMANDS, HELP_COMMAND

MAX_COMMAND_NAME = 32  # Discord's own limit for command names


@dataclass(frozen=True)
class Routed:
    command: str  # a registry name
    args: str
    requested: str  # what the user typed (differs from command when routed to help)

    @property
    def known(self) -> bool:
        return self.command == self.requested


def parse_prefix(content: str, prefix: str) -> tuple[str, str] | None:
    """Split ``<prefix><name> <args>``; None when the message is not a command."""
    if not content.startswith(prefix):
        return None
    body = content[len(prefix):]
    if not body or body[0].isspace():
        return None
    parts = body.split(maxsplit=1)
    return parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")


def route(name: str, args: str) -> Routed:
    """Known commands go to their queue; anything else goes to help, which explains."""
    if name in COMMANDS:
        return Routed(command=name, args=args, requested=name)
    return Routed(command=HELP_COMMAND, args=name[:MAX_COMMAND_NAME], requested=name[:MAX_COMMAND_NAME])


def parse_message(content: str, prefix: str) -> Routed | None:
    parsed = parse_prefix(content, prefix)
    return route(*parsed) if parsed else None
