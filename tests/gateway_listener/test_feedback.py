"""The typing indicator against the Discord emulator: real requests, real spans."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from gateway_listener.feedback import TYPING_ROUTE, TypingIndicator
from localdev.azurite import free_port
from localdev.discord_emulator import EmulatorThread
from localdev.redis_server import RedisServer
from shared.discord_limits import SharedLimits, redis_client
from shared.settings import Secret
from tests.tracing import by_name

_tracer = trace.get_tracer(__name__)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as emu:
        yield emu


def _typing_requests(emu: EmulatorThread) -> list[object]:
    return [r for r in emu.requests if r.template == TYPING_ROUTE]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _trigger_all(indicator: TypingIndicator, channels: list[str]) -> list[bool]:
    with _tracer.start_as_current_span("discord.command"):
        scheduled = [indicator.trigger(c) for c in channels]
    await indicator.close()
    return scheduled


def test_typing_reaches_discord_as_a_child_span_of_the_command(
    emulator: EmulatorThread, spans: InMemorySpanExporter
) -> None:
    before = len(_typing_requests(emulator))
    indicator = TypingIndicator(emulator.api_url, Secret(emulator.token))
    assert asyncio.run(_trigger_all(indicator, [emulator.channel_id])) == [True]
    requests = _typing_requests(emulator)[before:]
    assert len(requests) == 1 and requests[0].status == 204  # type: ignore[attr-defined]
    assert emulator.invalid_requests == []  # authenticated, valid against Discord's OpenAPI file
    assert emulator.typing_events[-1].channel_id == emulator.channel_id
    finished = spans.get_finished_spans()
    typing_span, command = by_name(finished, "discord.typing"), by_name(finished, "discord.command")
    assert typing_span.parent is not None and typing_span.parent.span_id == command.context.span_id
    assert typing_span.kind is trace.SpanKind.CLIENT
    assert typing_span.attributes is not None
    assert typing_span.attributes["http.response.status_code"] == 204
    assert typing_span.attributes["http.route"] == TYPING_ROUTE
    assert emulator.token not in str(dict(typing_span.attributes))


def test_one_typing_request_per_channel_per_cooldown(emulator: EmulatorThread) -> None:
    clock = FakeClock()
    indicator = TypingIndicator(emulator.api_url, Secret(emulator.token), cooldown_s=3.0, clock=clock)
    before = len(_typing_requests(emulator))

    async def scenario() -> list[bool]:
        first = [indicator.trigger(emulator.channel_id), indicator.trigger(emulator.channel_id)]
        clock.now += 2.9
        first.append(indicator.trigger(emulator.channel_id))
        clock.now += 0.1  # 3.0 s after the first: the cooldown is over
        first.append(indicator.trigger(emulator.channel_id))
        await indicator.close()
        return first

    assert asyncio.run(scenario()) == [True, False, False, True]
    assert len(_typing_requests(emulator)) - before == 2


def test_a_429_on_typing_is_dropped_not_retried(emulator: EmulatorThread, spans: InMemorySpanExporter) -> None:
    emulator.inject_rest_fault(TYPING_ROUTE, 429, count=1, retry_after=0.05)
    before = len(_typing_requests(emulator))
    indicator = TypingIndicator(emulator.api_url, Secret(emulator.token))
    asyncio.run(_trigger_all(indicator, [emulator.channel_id]))
    requests = _typing_requests(emulator)[before:]
    assert [r.status for r in requests] == [429]  # type: ignore[attr-defined]
    typing_span = by_name(spans.get_finished_spans(), "discord.typing")
    assert typing_span.attributes is not None
    assert typing_span.attributes["http.response.status_code"] == 429
    assert "not retried" in str(typing_span.attributes["app.typing.dropped"])


def test_unknown_channel_and_unreachable_discord_end_in_error_spans_not_exceptions(
    emulator: EmulatorThread, spans: InMemorySpanExporter
) -> None:
    dead = TypingIndicator(f"http://127.0.0.1:{free_port()}/api/v10", Secret("x"), timeout_s=1.0)
    asyncio.run(_trigger_all(dead, ["1"]))
    unknown = TypingIndicator(emulator.api_url, Secret(emulator.token))
    asyncio.run(_trigger_all(unknown, ["123456789012345678"]))
    typing_spans = [s for s in spans.get_finished_spans() if s.name == "discord.typing"]
    assert [s.status.status_code for s in typing_spans] == [StatusCode.ERROR, StatusCode.ERROR]
    assert typing_spans[1].attributes is not None
    assert typing_spans[1].attributes["http.response.status_code"] == 404


def test_trigger_outside_an_event_loop_schedules_nothing() -> None:
    indicator = TypingIndicator("http://127.0.0.1:9/api/v10", Secret("x"))
    assert indicator.trigger("1") is False  # logged; the command is never affected


def test_the_bots_reply_ends_the_cooldown(emulator: EmulatorThread) -> None:
    clock = FakeClock()
    indicator = TypingIndicator(emulator.api_url, Secret(emulator.token), cooldown_s=3.0, clock=clock)

    async def scenario() -> list[bool]:
        out = [indicator.trigger(emulator.channel_id)]
        clock.now += 0.5
        indicator.replied(emulator.channel_id)  # the listener saw the bot's message there
        out.append(indicator.trigger(emulator.channel_id))  # a command right after the reply
        out.append(indicator.trigger(emulator.channel_id))
        await indicator.close()
        return out

    assert asyncio.run(scenario()) == [True, True, False]


def test_typing_takes_a_shared_slot_and_is_dropped_first_when_tight(
    emulator: EmulatorThread, redis_server: RedisServer, spans: InMemorySpanExporter
) -> None:
    limits = SharedLimits(redis_client(Secret(redis_server.url), timeout_s=1.0), emulator.token, rate=50)
    before = len(_typing_requests(emulator))
    indicator = TypingIndicator(emulator.api_url, Secret(emulator.token), shared_limits=limits)
    asyncio.run(_trigger_all(indicator, [emulator.channel_id]))
    for _ in range(40):  # replies from other processes fill the shared budget
        limits.acquire("POST /channels/{channel_id}/messages", "channel:2")
    indicator = TypingIndicator(emulator.api_url, Secret(emulator.token), shared_limits=limits)
    asyncio.run(_trigger_all(indicator, [emulator.channel_id]))
    assert len(_typing_requests(emulator)) - before == 1  # the second one never left
    sent, dropped = [s for s in spans.get_finished_spans() if s.name == "discord.typing"]
    assert sent.attributes is not None and sent.attributes["app.ratelimit.shared"] is True
    assert sent.attributes["http.response.status_code"] == 204
    assert dropped.attributes is not None and "http.response.status_code" not in dropped.attributes
    assert dropped.attributes["app.typing.dropped"] == "shared budget: budget tight"
