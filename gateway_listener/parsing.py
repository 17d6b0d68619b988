"""Prefix parsing and routing: ``!catfact`` -> ("catfact", ""), ``!foo`` -> ("help", "foo").

Pure functions, no discord.py: the listener calls them for every message, so they
must be cheap and must never raise on hostile input.
"""

from __future__ import annotations

from shared.ingress import MAX_COMMAND_NAME, Routed, route

__all__ = ["MAX_COMMAND_NAME", "Routed", "parse_message", "parse_prefix", "route"]


def parse_prefix(content: str, prefix: str) -> tuple[str, str] | None:
    """Split ``<prefix><name> <args>``; None when the message is not a command."""
    if not content.startswith(prefix):
        return None
    body = content[len(prefix):]
    if not body or body[0].isspace():
        return None
    parts = body.split(maxsplit=1)
    return parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")


def parse_message(content: str, prefix: str) -> Routed | None:
    parsed = parse_prefix(content, prefix)
    return route(*parsed) if parsed else None
