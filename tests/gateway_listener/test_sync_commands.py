"""Slash-command registration against the emulator: one bulk overwrite, idempotent, valid."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
import requests

from gateway_listener.sync_commands import command_payload, sync_commands
from localdev.discord_emulator import EmulatorThread
from localdev.redis_server import RedisServer
from shared.discord_limits import Paused, SharedLimits
from shared.errors import SettingsError
from shared.registry import COMMANDS
from shared.settings import Secret, Settings


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as emu:
        yield emu


def _settings(settings: Settings, emulator: EmulatorThread) -> Settings:
    return replace(settings, discord_api_base_url=emulator.api_url, discord_token=Secret(emulator.token))


def test_registers_every_command_once_and_again_idempotently(settings: Settings, emulator: EmulatorThread) -> None:
    s = _settings(settings, emulator)
    assert sync_commands(s, guild_id=emulator.guild_id) == len(COMMANDS)
    assert sync_commands(s, guild_id=emulator.guild_id) == len(COMMANDS)
    puts = [r for r in emulator.requests if r.method == "PUT"]
    assert len(puts) == 2 and puts[0].template == "/applications/{application_id}/guilds/{guild_id}/commands"
    assert [c["name"] for c in puts[-1].json] == list(COMMANDS)
    assert emulator.invalid_requests == []
    listed = requests.get(f"{emulator.api_url}/applications/{emulator.application_id}/guilds/{emulator.guild_id}"
                          "/commands", headers={"Authorization": f"Bot {emulator.token}"}, timeout=5).json()
    assert sorted(c["name"] for c in listed) == sorted(COMMANDS)


def test_global_registration_uses_the_global_route(settings: Settings, emulator: EmulatorThread) -> None:
    sync_commands(_settings(settings, emulator))
    assert emulator.requests[-1].template == "/applications/{application_id}/commands"


def test_options_carry_types_and_required_flags() -> None:
    mtg = command_payload(COMMANDS["mtg"])
    assert mtg["options"] == [{"type": 3, "name": "criteria", "description": COMMANDS["mtg"].options[0].description,
                               "required": True}]
    assert command_payload(COMMANDS["ping"])["options"] == []


def test_missing_token_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="DISCORD_TOKEN"):
        sync_commands(settings)


def test_with_redis_it_takes_the_shared_budget_and_holds_back_when_the_bot_is_paused(
        settings: Settings, emulator: EmulatorThread, redis_server: RedisServer) -> None:
    s = replace(_settings(settings, emulator), redis_url=Secret(redis_server.url))
    limits = SharedLimits.from_settings(s)
    assert limits is not None
    before = len(emulator.requests)
    assert sync_commands(s, guild_id=emulator.guild_id, limits=limits) == len(COMMANDS)
    # Both requests went through the shared budget: another process now sees its slots taken.
    assert len(emulator.requests) == before + 2
    assert redis.Redis.from_url(redis_server.url).keys("*global*")
    paused = SharedLimits.from_settings(replace(s, discord_invalid_request_limit=1))
    assert paused is not None
    for _ in range(2):  # two invalid requests recorded by some process of the bot
        paused.observe("GET /applications/@me", "", 401)
    with pytest.raises(Paused):
        sync_commands(s, guild_id=emulator.guild_id, limits=paused)
    assert len(emulator.requests) == before + 2  # nothing sent while paused
