"""A local stand-in for Discord: gateway (websocket), REST API and a control API.

Speaks enough of API v10 for an unmodified discord.py client; validates every REST
request against Discord's OpenAPI description. See DiscordEmulator / EmulatorThread.
"""

from __future__ import annotations

from localdev.discord_emulator.emulator import DEFAULT_HEARTBEAT_MS, DEFAULT_TOKEN, DiscordEmulator
from localdev.discord_emulator.faults import RestFault
from localdev.discord_emulator.http_delivery import EndpointRejected, sign_request
from localdev.discord_emulator.snowflake import SnowflakeGenerator
from localdev.discord_emulator.state import InteractionRecord, RecordedRequest
from localdev.discord_emulator.thread import EmulatorThread

__all__ = [
    "DEFAULT_HEARTBEAT_MS",
    "DEFAULT_TOKEN",
    "DiscordEmulator",
    "EmulatorThread",
    "EndpointRejected",
    "InteractionRecord",
    "RecordedRequest",
    "RestFault",
    "SnowflakeGenerator",
    "sign_request",
]
