"""Gateway-less slash commands: the emulator POSTs signed interactions to the local host's
``interactions`` function, which enqueues; the command function edits @original. One trace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import azure.functions as func
import pytest
import requests
from aiohttp import web
from azure.core.exceptions import ResourceExistsError
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from command_functions import ping, roll
from function_runtime import interactions
from function_runtime import runtime as runtime_module
from function_runtime.discord_rest import DiscordRest
from function_runtime.interactions import InteractionsEndpoint
from function_runtime.queue_sender import make_sender
from function_runtime.runtime import Runtime, _queue_poison_sink
from function_runtime.signature import Verifier
from function_runtime.startup import StartupMarks
from function_runtime.triggers import command_blueprint
from localdev.azurite import free_port
from localdev.discord_emulator import DiscordEmulator, EndpointRejected
from localdev.functions_host import FunctionsHost
from shared.envelope import Envelope
from shared.queues import queue_client
from shared.settings import Secret, Settings
from tests.localdev.test_functions_host import FAST
from tests.tracing import by_name


class AllFlagsOn:
    def evaluate(self, names: list[str], envelope: Envelope) -> dict[str, bool]:
        return dict.fromkeys(names, True)


def _clear(settings: Settings, *queues: str) -> None:
    for queue in queues:
        client = queue_client(settings.storage, queue)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        client.clear_messages()  # what earlier tests left


@contextlib.asynccontextmanager
async def gateway_less_bot(settings: Settings, emu: DiscordEmulator) -> AsyncIterator[str]:
    """The function app (interactions + roll + ping) in the local host; yields the endpoint URL."""
    s = replace(settings, discord_api_base_url=emu.api_url, discord_token=Secret(emu.token),
                functions_http_port=free_port(), discord_public_key=bytes.fromhex(emu.public_key))
    _clear(s, roll.SPEC.queue, ping.SPEC.queue)
    marks = StartupMarks(process_start_ns=time.time_ns())  # this test's "process"
    runtime_module.use_runtime(Runtime(
        settings=s, rest=DiscordRest(emu.api_url, Secret(emu.token)), http=requests.Session(), flags=AllFlagsOn(),
        poison=_queue_poison_sink(s), marks=marks))
    interactions.use_endpoint(InteractionsEndpoint(Verifier.from_public_key(bytes.fromhex(emu.public_key)),
                                                   make_sender(s.storage), marks=marks))
    app = func.FunctionApp()
    app.register_functions(interactions.bp)
    for module in (roll, ping):
        app.register_functions(command_blueprint(module.SPEC, module.handle))
    host = FunctionsHost(app, s, FAST, drain_timeout=2)
    await host.start()
    try:
        yield f"http://127.0.0.1:{s.functions_http_port}/api/interactions"
    finally:
        await host.stop()
        runtime_module.use_runtime(None)
        interactions.use_endpoint(None)


async def _answer(emu: DiscordEmulator, interaction_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The user-visible outcome: the edit of @original, an immediate response, or the failure."""
    after = interaction_id
    while True:
        out = await emu.wait_for_bot_message(after=after, timeout=timeout)
        if out.get("interaction_id") == interaction_id and out["event_kind"] != "message":
            return out
        after = out["event_id"]


async def test_roll_end_to_end_over_http_in_one_trace(settings: Settings, spans: InMemorySpanExporter,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with DiscordEmulator() as emu, gateway_less_bot(settings, emu) as url:
        await emu.set_interactions_endpoint(url)  # verified with a good and a forged PING first
        assert emu.world.application_payload()["verify_key"] == emu.public_key
        sent = emu.send_interaction("roll", {"dice": "3"})
        out = await _answer(emu, sent["id"])
        delivery = emu.http_delivery.deliveries[-1]
        record = emu.interaction(sent["id"])
        invalid = emu.invalid_requests

    assert out["event_kind"] == "interaction_edit" and out["content"].startswith("3 dice (10-again)")
    assert delivery.ok and delivery.status == 200 and delivery.response == {"type": 5}
    assert delivery.elapsed_s is not None and delivery.elapsed_s < 3.0
    assert record.callback == {"type": 5} and len(record.edits) == 1
    assert invalid == []  # the edit validated against Discord's OpenAPI description

    finished = spans.get_finished_spans()
    root = by_name(finished, "discord.command")
    trace = [s for s in finished if s.context.trace_id == root.context.trace_id]
    assert root.kind is SpanKind.SERVER and root.parent is None and root.attributes["faas.trigger"] == "http"
    producer, process = by_name(trace, "cmd-roll send"), by_name(trace, "cmd-roll process")
    assert producer.parent.span_id == root.context.span_id
    assert process.parent.span_id == producer.context.span_id
    assert by_name(trace, "roll").parent.span_id == process.context.span_id
    send = by_name(trace, "discord.send_response")
    patch = [s for s in trace if s.parent is not None and s.parent.span_id == send.context.span_id]
    assert [s.kind for s in patch] == [SpanKind.CLIENT]
    assert all(s.attributes["app.command"] == "roll" for s in trace)

    token = sent["token"]
    dumped = json.dumps([{"n": s.name, "a": dict(s.attributes or {}), "e": [dict(e.attributes or {})
                                                                             for e in s.events]}
                         for s in finished], default=str)
    assert token not in dumped and token[:40] not in dumped
    assert token[:40] not in caplog.text


async def test_unknown_commands_are_answered_at_once_and_only_to_the_user(settings: Settings) -> None:
    async with DiscordEmulator() as emu, gateway_less_bot(settings, emu) as url:
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


async def test_the_control_api_sets_and_shows_the_endpoint(settings: Settings) -> None:
    async with DiscordEmulator() as emu, gateway_less_bot(settings, emu) as url, aiohttp.ClientSession() as http:
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
