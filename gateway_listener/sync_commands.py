"""Register the slash commands from the registry: ``python -m gateway_listener.sync_commands [--guild ID]``.

A bulk overwrite (PUT) of the application's commands, so running it twice changes
nothing. Run it at deploy time, not at every start: Discord rate-limits command
registration hard. ``--guild`` registers in one guild (instant; global commands can
take a while to appear everywhere). With REDIS_URL, each request waits for the bot's shared
Discord budget (shared/discord_limits.py) and nothing is sent while the bot is past its
invalid-request limit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import requests

from shared.discord_limits import Paused, SharedLimits
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


def sync_commands(settings: Settings, guild_id: str | None = None, session: requests.Session | None = None,
                  limits: SharedLimits | None = None) -> int:
    """Overwrite the application's commands with the registry's; returns how many Discord now has.

    ``limits``: the bot's shared Discord limits (default: from REDIS_URL; none without it)."""
    if settings.discord_token is None:
        raise SettingsError("DISCORD_TOKEN: required to register slash commands")
    http = session or requests.Session()
    limits = limits if limits is not None else SharedLimits.from_settings(settings)

    def send(method: str, template: str, url: str, major: str, **kwargs: Any) -> requests.Response:
        route = f"{method} {template}"
        if limits is not None:
            limits.pace(route, major)
        resp = http.request(method, url, **kwargs)
        if limits is not None:
            limits.observe_headers(route, major, resp.status_code, resp.headers)
        return resp

    headers = {
        "Authorization": f"Bot {settings.discord_token.reveal()}",
        "User-Agent": user_agent("discord", settings.service_version),
    }
    base = settings.discord_api_base_url
    app = send("GET", "/applications/@me", f"{base}/applications/@me", "", headers=headers, timeout=10)
    app.raise_for_status()
    app_id = app.json()["id"]
    template = "/applications/{application_id}" + ("/guilds/{guild_id}/commands" if guild_id else "/commands")
    path = template.format(application_id=app_id, guild_id=guild_id)
    body = [command_payload(spec) for spec in COMMANDS.values()]
    resp = send("PUT", template, f"{base}{path}", app_id, json=body, headers=headers, timeout=30)
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
    except Paused as exc:
        print(f"sync_commands: not sent, the bot is paused: {exc}", file=sys.stderr)
        return 1
    except requests.HTTPError as exc:
        print(f"sync_commands: Discord answered {exc.response.status_code}: {exc.response.text[:300]}", file=sys.stderr)
        return 1
    print(f"registered {count} commands" + (f" in guild {args.guild}" if args.guild else " globally"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
