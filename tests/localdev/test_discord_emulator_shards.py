"""The emulator's sharding: recommended count, per-shard READY and routing, 4010 and 4011."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from localdev.discord_emulator import DiscordEmulator
from localdev.discord_emulator.snowflake import SnowflakeGenerator, shard_of

WAIT = 10.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=WAIT)
    if msg.type is not aiohttp.WSMsgType.TEXT:
        raise ConnectionError(f"socket closed: {ws.close_code}")
    return json.loads(msg.data)


async def _identify(http: aiohttp.ClientSession, emu: DiscordEmulator, shard: Any) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{emu.gateway_url}/?v=10&encoding=json")
    assert (await _recv(ws))["op"] == 10
    d: dict[str, Any] = {"token": emu.token, "intents": 33281, "properties": {}}
    if shard is not None:
        d["shard"] = shard
    await ws.send_str(json.dumps({"op": 2, "d": d}))
    return ws


def test_next_on_shard_picks_ids_on_that_shard_and_stays_ordered() -> None:
    ids = SnowflakeGenerator()
    made = [ids.next_on_shard(n % 4, 4) for n in range(12)] + [ids.next()]
    assert [shard_of(i, 4) for i in made[:12]] == [n % 4 for n in range(12)]
    assert [int(i) for i in made] == sorted(int(i) for i in made) and len(set(made)) == 13


async def test_gateway_bot_recommends_the_shard_count_and_session_start_limit(http: aiohttp.ClientSession) -> None:
    async with DiscordEmulator(shard_count=3, guild_count=6, max_concurrency=2) as emu:
        async with http.get(f"{emu.api_url}/gateway/bot", headers={"Authorization": f"Bot {emu.token}"}) as resp:
            data = await resp.json()
        assert data["shards"] == 3 and data["session_start_limit"]["max_concurrency"] == 2
        assert sorted(g["shard"] for g in emu.guilds) == [0, 0, 1, 1, 2, 2]


async def test_each_shard_gets_its_own_guilds_and_only_their_events(http: aiohttp.ClientSession) -> None:
    async with DiscordEmulator(shard_count=2, guild_count=4) as emu:
        on = {s: [g for g in emu.guilds if g["shard"] == s] for s in (0, 1)}
        sockets = {s: await _identify(http, emu, [s, 2]) for s in (0, 1)}
        for s, ws in sockets.items():
            ready = await _recv(ws)
            assert ready["t"] == "READY" and ready["d"]["shard"] == [s, 2]
            assert {g["id"] for g in ready["d"]["guilds"]} == {g["id"] for g in on[s]}
            creates = [await _recv(ws) for _ in on[s]]
            assert {c["d"]["id"] for c in creates} == {g["id"] for g in on[s]}

        for s in (0, 1):
            for guild in on[s]:
                sent = emu.send_message(f"hello {guild['name']}", guild_id=guild["id"])
                got = await _recv(sockets[s])
                assert (got["t"], got["d"]["id"]) == ("MESSAGE_CREATE", sent["id"])
        for ws in sockets.values():  # nothing else arrived: each event went to one shard only
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=0.3)


async def test_events_for_a_missing_shard_wait_for_it(http: aiohttp.ClientSession) -> None:
    async with DiscordEmulator(shard_count=2, guild_count=2) as emu:
        shard1 = next(g for g in emu.guilds if g["shard"] == 1)
        ws0 = await _identify(http, emu, [0, 2])
        assert (await _recv(ws0))["t"] == "READY"
        await _recv(ws0)  # GUILD_CREATE
        early = emu.send_message("for shard 1", guild_id=shard1["id"])
        ws1 = await _identify(http, emu, [1, 2])
        events = [await _recv(ws1) for _ in range(3)]
        assert [e["t"] for e in events] == ["READY", "GUILD_CREATE", "MESSAGE_CREATE"]
        assert events[2]["d"]["id"] == early["id"]


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], "0,1", [0]])
async def test_invalid_shard_is_closed_with_4010(http: aiohttp.ClientSession, shard: Any) -> None:
    async with DiscordEmulator() as emu:
        ws = await _identify(http, emu, shard)
        with pytest.raises(ConnectionError):
            await _recv(ws)
        assert ws.close_code == 4010


async def test_too_many_guilds_for_one_connection_is_closed_with_4011(http: aiohttp.ClientSession) -> None:
    async with DiscordEmulator(guild_count=5, shard_count=2, sharding_threshold=3) as emu:
        ws = await _identify(http, emu, None)
        with pytest.raises(ConnectionError):
            await _recv(ws)
        assert ws.close_code == 4011
        sharded = await _identify(http, emu, [0, 2])  # 3 of the 5 guilds: allowed
        assert (await _recv(sharded))["t"] == "READY"
