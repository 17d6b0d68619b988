"""The raw gateway protocol, the HTTP control API, EmulatorThread and ``python -m``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from localdev.discord_emulator import DiscordEmulator, EmulatorThread

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0


class RawGateway:
    """A minimal gateway client that decodes zlib-stream the way discord.py does."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._inflate = zlib.decompressobj()

    async def recv(self) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), WAIT)
        if msg.type is aiohttp.WSMsgType.BINARY:
            assert msg.data.endswith(b"\x00\x00\xff\xff")  # one sync-flushed message per frame
            return json.loads(self._inflate.decompress(msg.data))
        if msg.type is aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data)
        raise ConnectionError(f"socket closed: {msg.type} {self.ws.close_code}")

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": d}))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _connect(http: aiohttp.ClientSession, emu: DiscordEmulator) -> RawGateway:
    ws = await http.ws_connect(f"{emu.gateway_url}/?v=10&encoding=json&compress=zlib-stream")
    return RawGateway(ws)


async def test_raw_handshake_many_guilds_heartbeat_and_resume(http: aiohttp.ClientSession) -> None:
    async with DiscordEmulator(guild_count=100, heartbeat_interval_ms=1234) as emu:
        gw = await _connect(http, emu)
        hello = await gw.recv()
        assert hello == {"op": 10, "d": {"heartbeat_interval": 1234}}
        await gw.send(1, None)
        assert (await gw.recv())["op"] == 11
        await gw.send(2, {"token": emu.token, "intents": 33281, "properties": {}})
        ready = await gw.recv()
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["user"]["bot"] is True and len(ready["d"]["guilds"]) == 100
        creates = [await gw.recv() for _ in range(100)]
        assert {c["t"] for c in creates} == {"GUILD_CREATE"}
        assert creates[-1]["s"] == 101
        assert any(m["user"]["id"] == emu.bot_user_id for m in creates[0]["d"]["members"])

        # Drop the socket, inject while away, RESUME: the missed dispatch is replayed, then RESUMED.
        assert await emu.drop_connection()
        sent = emu.send_message("while away")
        gw2 = await _connect(http, emu)
        await gw2.recv()  # HELLO
        await gw2.send(6, {"token": emu.token, "session_id": ready["d"]["session_id"], "seq": 101})
        replayed, resumed = await gw2.recv(), await gw2.recv()
        assert (replayed["t"], replayed["s"], replayed["d"]["id"]) == ("MESSAGE_CREATE", 102, sent["id"])
        assert resumed["t"] == "RESUMED"


async def test_bad_token_closes_4004_and_unknown_session_is_invalid(http: aiohttp.ClientSession) -> None:
    async with DiscordEmulator() as emu:
        gw = await _connect(http, emu)
        await gw.recv()
        await gw.send(6, {"token": emu.token, "session_id": "nope", "seq": 3})
        assert await gw.recv() == {"op": 9, "d": False}
        await gw.send(2, {"token": "wrong", "intents": 1, "properties": {}})
        with pytest.raises(ConnectionError):
            await gw.recv()
        assert gw.ws.close_code == 4004


async def test_messages_injected_before_identify_are_delivered_after_ready(http: aiohttp.ClientSession) -> None:
    async with DiscordEmulator() as emu:
        early = emu.send_message("early bird")
        gw = await _connect(http, emu)
        await gw.recv()
        await gw.send(2, {"token": emu.token, "intents": 1, "properties": {}})
        events = [await gw.recv() for _ in range(3)]
        assert [e["t"] for e in events] == ["READY", "GUILD_CREATE", "MESSAGE_CREATE"]
        assert events[2]["d"]["id"] == early["id"]


async def test_http_control_api(http: aiohttp.ClientSession) -> None:
    async with DiscordEmulator() as emu:
        ctl = f"{emu.base_url}/_emulator"
        async with http.get(ctl) as resp:
            info = await resp.json()
        assert info["api_url"] == emu.api_url and info["channel_id"] == emu.channel_id
        async with http.post(f"{ctl}/messages", json={"content": "!catfact", "username": "bob"}) as resp:
            injected = await resp.json()
        assert injected["author"]["username"] == "bob" and injected["guild_id"] == emu.guild_id

        async def bot_replies() -> None:
            headers = {"Authorization": f"Bot {emu.token}"}
            await http.post(f"{emu.api_url}/channels/{emu.channel_id}/messages", json={"content": "a fact"},
                            headers=headers)

        poll = http.get(f"{ctl}/bot-messages", params={"after": injected["id"], "timeout": "10"})
        (resp, _) = await asyncio.gather(poll, bot_replies())
        async with resp:
            assert [m["content"] for m in (await resp.json())["messages"]] == ["a fact"]

        async with http.post(f"{ctl}/faults", json={"route": "GET /users/@me", "status": 503}) as resp:
            assert (await resp.json())["remaining"] == 1
        async with http.get(f"{emu.api_url}/users/@me", headers={"Authorization": f"Bot {emu.token}"}) as resp:
            assert resp.status == 503
        async with http.get(f"{ctl}/requests", params={"invalid": "1"}) as resp:
            assert await resp.json() == []
        async with http.get(f"{ctl}/requests") as resp:
            assert [r["status"] for r in await resp.json()] == [200, 503]
        async with http.post(f"{ctl}/interactions", json={"name": "ping"}) as resp:
            assert (await resp.json())["data"]["name"] == "ping"
        async with http.post(f"{ctl}/gateway/reconnect") as resp:
            assert await resp.json() == {"done": False}  # no bot connected
        async with http.get(f"{ctl}/wait-identified", params={"timeout": "0"}) as resp:
            assert resp.status == 408


def test_emulator_thread_serves_synchronous_callers() -> None:
    with EmulatorThread(guild_count=2) as emu:
        request = urllib.request.Request(f"{emu.api_url}/users/@me", headers={"Authorization": f"Bot {emu.token}"})
        with urllib.request.urlopen(request, timeout=WAIT) as resp:
            assert json.load(resp)["username"] == "LocalBot"
        sent = emu.send_message("hi from a thread")
        assert sent["content"] == "hi from a thread"
        body = json.dumps({"content": "reply"}).encode()
        post = urllib.request.Request(f"{emu.api_url}/channels/{emu.channel_id}/messages", data=body, method="POST",
                                      headers={"Authorization": f"Bot {emu.token}", "Content-Type": "application/json"})
        urllib.request.urlopen(post, timeout=WAIT).close()
        assert emu.wait_for_bot_message(after=sent["id"], timeout=WAIT)["content"] == "reply"
        assert emu.requests[0].path == "/users/@me"
        assert emu.invalid_requests == []


def test_python_dash_m_prints_urls_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "localdev.discord_emulator", "--port", "0", "--guilds", "3"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Discord emulator: http://127.0.0.1:")
        base = first.split(": ", 1)[1].strip()
        with urllib.request.urlopen(f"{base}/_emulator", timeout=WAIT) as resp:
            assert json.load(resp)["guild_count"] == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
