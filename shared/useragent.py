"""The bot's User-Agent, built in one place from its version and :data:`~shared.registry.SOURCE_URL`.

Discord asks bots for ``DiscordBot ($url, $versionNumber)`` on every REST call (its API
may reject others); external APIs (Scryfall asks for one) get the usual product form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from shared.registry import SOURCE_URL

PRODUCT = "discord-functions-bot"
DEFAULT_VERSION = "0.1.0"  # SERVICE_VERSION's default

Audience = Literal["discord", "external"]
_FORMS: Mapping[Audience, str] = {
    "discord": "DiscordBot ({url}, {version})",
    "external": "{product}/{version} (+{url})",
}


def user_agent(audience: Audience, version: str = DEFAULT_VERSION) -> str:
    """The User-Agent for ``audience`` ("discord" for Discord's API, "external" for anything else)."""
    return _FORMS[audience].format(product=PRODUCT, version=version, url=SOURCE_URL)
