"""The Discord emulator against a real, unmodified discord.py 2.7.1 client on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from localdev.discord_emulator import DiscordEmulator

WAIT = 10.0  # generous upper bound for "eventually"; tests finish as soon as the event happens


class EchoBot(discord.Client):
    """Replies "pong" to "ping" (as the project's replies do: nonce, no mentions); defers slash commands."""

    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.message_content = True
        # Documented knobs, set for speed: discord.py otherwise waits 2 s after the last GUILD_CREATE.
        super().__init__(intents=intents, guild_ready_timeout=0.1)
        self.seen: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.interactions: asyncio.Queue[discord.Interaction] = asyncio.Queue()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py sleeps 5 s before re-identifying; the emulator has no identify limit

    async def on_message(self, message: discord.Message) -> None:
        if message.author == self.user:
            return  # the bot's own messages come back over the gateway too
        await self.seen.put(message)
        if message.content == "ping":
            await message.channel.send("pong", nonce=message.id, allowed_mentions=discord.AllowedMentions.none())

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await self.interactions.put(interaction)
        name = interaction.data.get("name") if interaction.data else None
        await interaction.edit_original_response(content=f"done: {name}",
                                                 allowed_mentions=discord.AllowedMentions.none())


@pytest.fixture
async def emu() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(heartbeat_interval_ms=5000) as emulator:
        yield emulator


@pytest.fixture
async def bot(emu: DiscordEmulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EchoBot]:
    # What the project does to point discord.py at another Discord; monkeypatch restores both.
    monkeypatch.setattr(Route, "BASE", emu.api_url)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(emu.gateway_url))
    client = EchoBot()
    task = asyncio.create_task(client.start(emu.token))
    try:
        # Not client.wait_until_ready() at once: before start() has run its set-up (on Python 3.13's
        # scheduling, not yet), discord.py refuses it as "not properly initialised".
        async with asyncio.timeout(WAIT):
            while not client.is_ready():
                if task.done():
                    task.result()  # start() failed: its error, not a timeout
                await asyncio.sleep(0.02)
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, WAIT)


async def test_client_connects_receives_and_replies_with_valid_requests(emu: DiscordEmulator, bot: EchoBot) -> None:
    identify = emu.identify_payloads[0]
    wanted = discord.Intents(guilds=True, guild_messages=True, message_content=True).value
    assert identify["intents"] & wanted == wanted and emu.intents == identify["intents"]
    assert identify["token"] == "***"  # the token is never kept
    assert [g.name for g in bot.guilds] == ["Local Guild"]
    assert bot.user is not None and bot.user.bot and bot.user.name == "LocalBot"
    assert bot.get_channel(int(emu.channel_id)) is not None

    sent = emu.send_message("ping", username="alice")
    received = await asyncio.wait_for(bot.seen.get(), WAIT)
    assert (received.content, received.author.name, received.id) == ("ping", "alice", int(sent["id"]))
    assert isinstance(received.author, discord.Member)

    reply = await emu.wait_for_bot_message(channel_id=emu.channel_id, after=sent["id"], timeout=WAIT)
    assert reply["content"] == "pong"
    assert reply["author"]["id"] == emu.bot_user_id
    create = [r for r in emu.requests if r.template == "/channels/{channel_id}/messages"]
    assert len(create) == 1
    assert create[0].json["nonce"] == sent["id"] and create[0].json["enforce_nonce"] is True
    assert create[0].json["allowed_mentions"] == {"parse": []}
    assert "Authorization" not in create[0].headers
    assert emu.invalid_requests == []


async def test_discord_py_waits_out_an_injected_429_and_posts_once(emu: DiscordEmulator, bot: EchoBot) -> None:
    emu.inject_rest_fault("POST /channels/{channel_id}/messages", 429, retry_after=0.05)
    sent = emu.send_message("ping")
    reply = await emu.wait_for_bot_message(after=sent["id"], timeout=WAIT)
    assert reply["content"] == "pong"
    creates = [r for r in emu.requests if r.template == "/channels/{channel_id}/messages"]
    assert [r.status for r in creates] == [429, 200]
    assert len(emu.bot_messages) == 1 and emu.invalid_requests == []


async def test_gateway_uses_zlib_stream_when_discord_py_asks(emu: DiscordEmulator, bot: EchoBot) -> None:
    # Without zstandard installed discord.py 2.7.1 asks for compress=zlib-stream.
    expected = discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE
    assert emu.gateway.compress_modes[0] == (expected if expected == "zlib-stream" else None)
    emu.send_message("compressed?")
    assert (await asyncio.wait_for(bot.seen.get(), WAIT)).content == "compressed?"


async def test_slash_command_is_deferred_in_time_and_edited(emu: DiscordEmulator, bot: EchoBot) -> None:
    payload = emu.send_interaction("catfact", {"count": 2})
    interaction = await asyncio.wait_for(bot.interactions.get(), WAIT)
    assert interaction.id == int(payload["id"])
    data: dict[str, Any] = dict(interaction.data or {})
    assert data["options"] == [{"name": "count", "type": 4, "value": 2}]

    edit = await emu.wait_for_bot_message(after=payload["id"], timeout=WAIT)
    assert edit["event_kind"] == "interaction_edit" and edit["content"] == "done: catfact"
    record = emu.interaction(payload["id"])
    assert record.callback is not None and record.callback["type"] == 5
    assert record.callback_delay_s is not None and record.callback_delay_s < 3.0
    assert record.edits and record.edits[0]["content"] == "done: catfact"
    assert emu.invalid_requests == []


async def test_late_or_forged_interaction_callback_is_unknown() -> None:
    # A zero deadline makes every callback "too late" without sleeping 3 s in the test.
    async with DiscordEmulator(interaction_deadline_s=0.0) as emu, aiohttp.ClientSession() as http:
        payload = emu.send_interaction("ping")
        url = f"{emu.api_url}/interactions/{payload['id']}/{payload['token']}/callback"
        async with http.post(url, json={"type": 5}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "Unknown interaction", "code": 10062}
        forged = f"{emu.api_url}/interactions/{payload['id']}/not-the-token/callback"
        async with http.post(forged, json={"type": 5}) as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, 10062)
        assert emu.interaction(payload["id"]).callback is None


@pytest.mark.parametrize("fault", ["reconnect", "drop-4000", "drop-abrupt", "invalid-resumable"])
async def test_resumes_and_loses_nothing_after_a_gateway_fault(emu: DiscordEmulator, bot: EchoBot, fault: str) -> None:
    emu.send_message("before")
    assert (await asyncio.wait_for(bot.seen.get(), WAIT)).content == "before"
    if fault == "reconnect":
        assert await emu.send_reconnect()
    elif fault == "drop-4000":
        assert await emu.drop_connection(4000)
    elif fault == "drop-abrupt":
        assert await emu.drop_connection(None)
    else:
        assert await emu.send_invalid_session(resumable=True)
    emu.send_message("right after")  # injected before the bot is back
    assert (await asyncio.wait_for(bot.seen.get(), WAIT)).content == "right after"
    await emu.wait_until_ready_count(2, WAIT)
    assert len(emu.identify_payloads) == 1  # it resumed, it did not identify again
    assert len(emu.gateway.resume_payloads) == 1
    assert bot.seen.empty()  # and nothing was delivered twice


async def test_invalid_session_not_resumable_reidentifies_and_delivers(emu: DiscordEmulator, bot: EchoBot) -> None:
    assert await emu.send_invalid_session(resumable=False)
    emu.send_message("after invalid session")
    assert (await asyncio.wait_for(bot.seen.get(), WAIT)).content == "after invalid session"
    assert len(emu.identify_payloads) == 2
