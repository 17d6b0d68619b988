"""Register the slash commands from the registry: ``python -m gateway_listener.sync_commands [--guild ID]``.

A bulk overwrite (PUT) of the application's commands, so running it twice changes
nothing. Run it at deploy time, not at every start: Discord rate-limits command
registration hard. ``--guild`` registers in one guild (instant; global commands can
take a while to appear everywhere).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import requests

from shared.errors import SettingsError
from shared.registry import COMMANDS, CommandSpec
from shared.settings import Settings, load_settings
from shared.useragent import user_agent

CHAT_INPUT = 1


def command_payload(spec: CommandSpec) -> dict[str, Any]:
    """One command in Discord's ApplicationCommand shape."""
    return {
        "name": spec.name,
        "type": CHAT_INPUT,
        "description": spec.description[:100],
        "options": [
            {"type": opt.type, "name": opt.name, "description": opt.description[:100], "required": opt.required}
            for opt in spec.options
        ],
    }


def sync_commands(settings: Settings, guild_id: str | None = None, session: requests.Session | None = None) -> int:
    """Overwrite the application's commands with the registry's; returns how many Discord now has."""
    if settings.discord_token is None:
        raise SettingsError("DISCORD_TOKEN: required to register slash commands")
    http = session or requests.Session()
    headers = {
        "Authorization": f"Bot {settings.discord_token.reveal()}",
        "User-Agent": user_agent("discord", settings.service_version),
    }
    base = settings.discord_api_base_url
    app = http.get(f"{base}/applications/@me", headers=headers, timeout=10)
    app.raise_for_status()
    app_id = app.json()["id"]
    path = f"/applications/{app_id}/guilds/{guild_id}/commands" if guild_id else f"/applications/{app_id}/commands"
    body = [command_payload(spec) for spec in COMMANDS.values()]
    resp = http.put(f"{base}{path}", json=body, headers=headers, timeout=30)
    if resp.status_code == 429:
        raise SystemExit(f"rate limited by Discord: retry after {resp.json().get('retry_after')} s")
    resp.raise_for_status()
    return len(resp.json())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--guild", help="register in this guild only (instant)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        count = sync_commands(load_settings(require_storage=False), args.guild)
    except SettingsError as exc:
        print(f"sync_commands: {exc}", file=sys.stderr)
        return 2
    except requests.HTTPError as exc:
        print(f"sync_commands: Discord answered {exc.response.status_code}: {exc.response.text[:300]}", file=sys.stderr)
        return 1
    print(f"registered {count} commands" + (f" in guild {args.guild}" if args.guild else " globally"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
