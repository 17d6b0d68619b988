"""Gateway-less slash commands: the emulator POSTs signed interactions to the local host's
``interactions`` function, which enqueues; the command function edits @original. One trace.

The bot (tests/localdev/http_delivery_app.py) runs in the host's worker process; its spans are
read back from the trace file it writes (``LOCAL_TRACE_FILE``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from azure.core.exceptions import ResourceExistsError
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from command_functions import ping, roll
from localdev.azurite import free_port
from localdev.discord_emulator import DiscordEmulator, EndpointRejected
from localdev.functions_host import AppLocation, FunctionsHost
from shared.queues import queue_client
from shared.settings import Settings
from tests.localdev.test_functions_host import FAST, eventually

BOT_APP = AppLocation.of("tests.localdev.http_delivery_app")


def _clear(settings: Settings, *queues: str) -> None:
    for queue in queues:
        client = queue_client(settings.storage, queue)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        client.clear_messages()  # what earlier tests left


@contextlib.asynccontextmanager
async def gateway_less_bot(settings: Settings, emu: DiscordEmulator, trace_file: Path) -> AsyncIterator[str]:
    """The function app (interactions + roll + ping) in the local host; yields the endpoint URL."""
    s = replace(settings, functions_http_port=free_port())
    _clear(s, roll.SPEC.queue, ping.SPEC.queue)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HONEYCOMB_", "APPLICATIONINSIGHTS_"))}
    env |= {
        "AzureWebJobsStorage": s.storage.connection_string.reveal() if s.storage.connection_string else "",
        "DISCORD_API_BASE_URL": emu.api_url, "DISCORD_TOKEN": emu.token, "DISCORD_PUBLIC_KEY": emu.public_key,
        "FUNCTIONS_HTTP_PORT": str(s.functions_http_port), "LOCAL_TRACE_FILE": str(trace_file),
    }  # fmt: skip
    host = FunctionsHost(BOT_APP, s, FAST, drain_timeout=2, worker_env=env)
    try:
        await host.start()
        yield f"http://127.0.0.1:{s.functions_http_port}/api/interactions"
    finally:
        await host.stop()


def _spans(trace_file: Path) -> list[dict[str, Any]]:
    """The finished spans the worker wrote (complete lines only)."""
    if not trace_file.exists():
        return []
    text = trace_file.read_text(encoding="utf-8")
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def _by_name(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [s for s in spans if s["name"] == name]
    assert len(matches) == 1, f"expected one {name!r} span, got {[s['name'] for s in spans]}"
    return matches[0]


async def _answer(emu: DiscordEmulator, interaction_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The user-visible outcome: the edit of @original, an immediate response, or the failure."""
    after = interaction_id
    while True:
        out = await emu.wait_for_bot_message(after=after, timeout=timeout)
        if out.get("interaction_id") == interaction_id and out["event_kind"] != "message":
            return out
        after = out["event_id"]


async def test_roll_end_to_end_over_http_in_one_trace(settings: Settings, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    trace_file = tmp_path / "traces.jsonl"
    async with DiscordEmulator() as emu, gateway_less_bot(settings, emu, trace_file) as url:
        await emu.set_interactions_endpoint(url)  # verified with a good and a forged PING first
        assert emu.world.application_payload()["verify_key"] == emu.public_key
        sent = emu.send_interaction("roll", {"dice": "3"})
        out = await _answer(emu, sent["id"])
        delivery = emu.http_delivery.deliveries[-1]
        record = emu.interaction(sent["id"])
        invalid = emu.invalid_requests

        def roll_traced() -> bool:
            names = {s["name"] for s in _spans(trace_file)}
            return {"discord.command", "roll", "discord.send_response"} <= names

        await eventually(roll_traced, timeout=20)  # exported in batches by the worker

    assert out["event_kind"] == "interaction_edit" and out["content"].startswith("3 dice (10-again)")
    assert delivery.ok and delivery.status == 200 and delivery.response == {"type": 5}
    assert delivery.elapsed_s is not None and delivery.elapsed_s < 3.0
    assert record.callback == {"type": 5} and len(record.edits) == 1
    assert invalid == []  # the edit validated against Discord's OpenAPI description

    finished = _spans(trace_file)
    root = _by_name(finished, "discord.command")
    trace = [s for s in finished if s["trace_id"] == root["trace_id"]]
    assert root["kind"] == "SERVER" and root["parent_span_id"] is None and root["attributes"]["faas.trigger"] == "http"
    producer, process = _by_name(trace, "cmd-roll send"), _by_name(trace, "cmd-roll process")
    assert producer["parent_span_id"] == root["span_id"]
    assert process["parent_span_id"] == producer["span_id"]
    assert _by_name(trace, "roll")["parent_span_id"] == process["span_id"]
    send = _by_name(trace, "discord.send_response")
    patch = [s for s in trace if s["parent_span_id"] == send["span_id"]]
    assert [s["kind"] for s in patch] == ["CLIENT"]
    assert all(s["attributes"]["app.command"] == "roll" for s in trace)

    token = sent["token"]
    dumped = json.dumps([{"n": s["name"], "a": s["attributes"], "e": [e["attributes"] for e in s["events"]]}
                         for s in finished], default=str)
    assert token not in dumped and token[:40] not in dumped
    assert token[:40] not in caplog.text


async def test_unknown_commands_are_answered_at_once_and_only_to_the_user(settings: Settings,
                                                                          tmp_path: Path) -> None:
    async with DiscordEmulator() as emu, gateway_less_bot(settings, emu, tmp_path / "traces.jsonl") as url:
        await emu.set_interactions_endpoint(url)
        sent = emu.send_interaction("nope", {})
        out = await _answer(emu, sent["id"], timeout=10)
    assert out["event_kind"] == "interaction_response" and out["flags"] & 64
    assert "Unknown command `/nope`" in out["content"]


async def test_without_an_endpoint_interactions_still_go_over_the_gateway() -> None:
    async with DiscordEmulator() as emu:
        emu.send_interaction("ping", {})
        await asyncio.sleep(0.1)
        assert emu.http_delivery.deliveries == []


@contextlib.asynccontextmanager
async def fake_endpoint(handler: Any) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/api/interactions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/api/interactions"
    finally:
        await runner.cleanup()


async def test_an_endpoint_that_does_not_check_signatures_is_not_saved() -> None:
    async def pong_to_anyone(request: web.Request) -> web.Response:
        return web.json_response({"type": 1})

    async with DiscordEmulator() as emu, fake_endpoint(pong_to_anyone) as url:
        with pytest.raises(EndpointRejected, match="bad signature got 200"):
            await emu.set_interactions_endpoint(url)
        assert emu.http_delivery.url is None
    async with DiscordEmulator() as emu:
        with pytest.raises(EndpointRejected, match="could not reach"):
            await emu.set_interactions_endpoint(f"http://127.0.0.1:{free_port()}/api/interactions")


async def test_a_late_or_wrong_answer_fails_the_interaction() -> None:
    emu = DiscordEmulator(interaction_deadline_s=0.5)
    slow = {"on": False}

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.read()
        try:  # a bot that checks signatures properly (so the URL is saved), then answers badly
            VerifyKey(bytes.fromhex(emu.public_key)).verify(
                request.headers["X-Signature-Timestamp"].encode() + body,
                bytes.fromhex(request.headers["X-Signature-Ed25519"]))
        except BadSignatureError:
            return web.json_response({"error": "bad signature"}, status=401)
        if json.loads(body)["type"] == 1:
            return web.json_response({"type": 1})
        if slow["on"]:
            await asyncio.sleep(1.0)
        return web.json_response({"type": 7})  # UPDATE_MESSAGE: not valid for a slash command

    async with emu, fake_endpoint(endpoint) as url:
        await emu.set_interactions_endpoint(url)
        wrong = await _answer(emu, emu.send_interaction("ping", {})["id"], timeout=5)
        slow["on"] = True
        late = await _answer(emu, emu.send_interaction("ping", {})["id"], timeout=5)
        problems = [d.problems for d in emu.http_delivery.deliveries]
    assert wrong["event_kind"] == late["event_kind"] == "interaction_failed"
    assert wrong["content"] == "The application did not respond"
    assert problems == [["response type 7 is not valid for interaction type 2"], ["no answer within 0.5 s"]]


async def test_the_control_api_sets_and_shows_the_endpoint(settings: Settings, tmp_path: Path) -> None:
    async with (
        DiscordEmulator() as emu,
        gateway_less_bot(settings, emu, tmp_path / "traces.jsonl") as url,
        aiohttp.ClientSession() as http,
    ):
        control = f"{emu.base_url}/_emulator/interactions-endpoint"
        async with http.put(control, json={"url": "ftp://nope"}) as response:
            assert response.status == 400
        async with http.put(control, json={"url": url}) as response:
            assert response.status == 200
            view = await response.json()
        assert view["url"] == url and view["public_key"] == emu.public_key
        emu.send_interaction("ping", {})
        await emu.wait_for_bot_message(timeout=10)
        async with http.get(control) as response:
            deliveries = (await response.json())["deliveries"]
        assert [d["response"] for d in deliveries] == [{"type": 5}]
        assert "token" not in json.dumps(deliveries)
        async with http.put(control, json={"url": None}) as response:
            assert (await response.json())["url"] is None
