"""Point discord.py at DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL.

discord.py has no option for either, so this is the one place that patches its
class-level REST base (``Route.BASE``) and default gateway. Used for REST proxies
(nirn-proxy, twilight-http-proxy), gateway proxies, and the local Discord emulator.
"""

from __future__ import annotations

import logging

import discord.gateway
import discord.http
import yarl

from shared.settings import Settings

_log = logging.getLogger(__name__)
DISCORD_DEFAULT_API = "https://discord.com/api/v10"


def apply_endpoints(settings: Settings) -> None:
    if settings.discord_api_base_url != DISCORD_DEFAULT_API:
        discord.http.Route.BASE = settings.discord_api_base_url
        _log.info("Discord REST base: %s", settings.discord_api_base_url)
    if settings.discord_gateway_url:
        set_gateway(settings.discord_gateway_url)


def set_gateway(url: str) -> None:
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
    _log.info("Discord gateway: %s", url)


def needs_gateway_discovery(settings: Settings) -> bool:
    """A custom REST base with no gateway override: ask that server (GET /gateway/bot)."""
    return settings.discord_gateway_url is None and settings.discord_api_base_url != DISCORD_DEFAULT_API
