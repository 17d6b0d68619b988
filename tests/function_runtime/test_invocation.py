"""One trace across the queue hop: listener dispatch -> real Azurite -> invoke -> emulator.

Both sides run in this process with one in-memory exporter; the queue, the REST
requests and the replies are real (Azurite, DiscordRest, the Discord emulator).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from command_functions import ping
from function_runtime.context import CommandContext
from function_runtime.discord_rest import DiscordRest
from function_runtime.errors import DiscordUnavailableError, ExternalApiError
from function_runtime.invocation import invoke
from function_runtime.runtime import Runtime, _queue_poison_sink
from function_runtime.startup import StartupMarks
from gateway_listener.dispatch import Incoming, Outcome, dispatch
from gateway_listener.enqueuer import Enqueuer
from gateway_listener.parsing import parse_message
from localdev.discord_emulator import EmulatorThread
from shared.envelope import Envelope, Ids
from shared.queues import queue_client
from shared.registry import COMMANDS, poison_queue_name
from shared.settings import Secret, Settings
from tests.tracing import by_name

TRACE_FIELDS = ("app.command", "discord.guild.id", "discord.channel.id", "discord.author.id")


class StaticFlags:
    """The edge fake for the flag store: fixed answers."""

    def __init__(self, on: dict[str, bool] | None = None) -> None:
        self.on = on or {}

    def evaluate(self, names: list[str], envelope: Envelope) -> dict[str, bool]:
        return {name: self.on.get(name, False) for name in names}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as emu:
        yield emu


@pytest.fixture
def runtime(settings: Settings, emulator: EmulatorThread) -> Runtime:
    s = replace(settings, discord_api_base_url=emulator.api_url, discord_token=Secret(emulator.token))
    return Runtime(
        settings=s,
        rest=DiscordRest(emulator.api_url, Secret(emulator.token), max_total_wait=2.0, sleep=lambda _: None),
        http=requests.Session(),
        flags=StaticFlags(),
        poison=_queue_poison_sink(s),
        marks=StartupMarks(process_start_ns=time.time_ns()),
    )


def _incoming(emulator: EmulatorThread, content: str, **ids: str) -> Incoming:
    routed = parse_message(content, "!")
    assert routed is not None
    message = emulator.send_message(content)  # a real message id the reply can reference
    return Incoming(
        kind="message",
        routed=routed,
        ids=Ids(message=str(ids.get("message", message["id"])), channel=emulator.channel_id,
                author=message["author"]["id"], guild=emulator.guild_id),
        author_name="you",
    )


async def _enqueue(runtime: Runtime, incoming: Incoming) -> str:
    queue = COMMANDS[incoming.routed.command].queue
    client = queue_client(runtime.settings.storage, queue)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    client.clear_messages()  # what earlier tests left
    enqueuer = Enqueuer(runtime.settings.storage, workers=1)
    await enqueuer.start()
    outcome, trace_id = dispatch(incoming, enqueuer)
    assert outcome is Outcome.QUEUED
    assert await enqueuer.drain(10)
    await enqueuer.close()
    return trace_id


def _receive(runtime: Runtime, queue: str) -> QueueMessage:
    client = queue_client(runtime.settings.storage, queue)
    msg = next(iter(client.receive_messages(max_messages=1, visibility_timeout=30)))
    client.delete_message(msg)
    return QueueMessage(id=msg.id, body=msg.content, dequeue_count=msg.dequeue_count, insertion_time=msg.inserted_on,
                        expiration_time=msg.expires_on, pop_receipt=msg.pop_receipt)


def _bot_replies(emulator: EmulatorThread, source_id: str) -> list[dict[str, Any]]:
    return [m for m in emulator.bot_messages
            if (m.get("message_reference") or {}).get("message_id") == source_id]


async def test_one_trace_from_listener_to_discord(runtime: Runtime, emulator: EmulatorThread,
                                                  spans: InMemorySpanExporter) -> None:
    incoming = _incoming(emulator, "!ping")
    trace_id = await _enqueue(runtime, incoming)
    invoke(_receive(runtime, "cmd-ping"), COMMANDS["ping"], ping.handle,
           runtime)

    finished = spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in finished} == {trace_id}
    root, producer = by_name(finished, "discord.command"), by_name(finished, "cmd-ping send")
    process = by_name(finished, "cmd-ping process")
    assert root.parent is None and root.kind is SpanKind.CONSUMER
    assert producer.kind is SpanKind.PRODUCER and producer.parent.span_id == root.context.span_id
    assert process.kind is SpanKind.CONSUMER and process.parent.span_id == producer.context.span_id
    assert producer.attributes["messaging.message.id"] == process.attributes["messaging.message.id"]
    assert process.attributes["faas.trigger"] == "pubsub"
    assert process.attributes["messaging.message.delivery_count"] == 1
    assert 0 < process.attributes["app.end_to_end_ms"] < 60_000
    for name in ("queue.wait", "feature_flags", "ping", "discord.send_response"):
        assert by_name(finished, name).parent.span_id == process.context.span_id
    send = by_name(finished, "discord.send_response")
    assert send.attributes["app.response"] == "pong"
    rest = [s for s in finished if s.parent is not None and s.parent.span_id == send.context.span_id]
    assert [s.kind for s in rest] == [SpanKind.CLIENT]
    assert rest[0].attributes["http.response.status_code"] == 200
    for span in finished:
        for key in TRACE_FIELDS:
            assert key in span.attributes, f"{key} missing on {span.name}"
        assert span.attributes["app.command"] == "ping"
    replies = _bot_replies(emulator, incoming.ids.message)
    assert [r["content"] for r in replies] == ["pong"]
    assert emulator.invalid_requests == []


async def test_cold_start_only_on_first_invocation(runtime: Runtime, emulator: EmulatorThread,
                                                   spans: InMemorySpanExporter) -> None:
    handle = ping.handle
    await _enqueue(runtime, _incoming(emulator, "!ping"))
    # The process "started" after the message was enqueued: all of its start-up is on this message.
    now = time.time_ns()
    runtime.marks.process_start_ns = now
    runtime.marks.phases.update({"worker_start": (now, now + 2_000_000),
                                 "indexing": (now + 2_000_000, now + 8_000_000),
                                 "telemetry_setup": (now + 5_000_000, now + 7_000_000)})
    invoke(_receive(runtime, "cmd-ping"), COMMANDS["ping"], handle, runtime)
    first = spans.get_finished_spans()
    cold = by_name(first, "cold_start")
    assert by_name(first, "cmd-ping process").attributes["faas.coldstart"] is True
    assert {s.name for s in first if s.parent and s.parent.span_id == cold.context.span_id} == {
        "worker_start", "indexing"}
    assert by_name(first, "telemetry_setup").parent.span_id == by_name(first, "indexing").context.span_id
    assert cold.end_time - cold.start_time == 8_000_000

    spans.clear()
    await _enqueue(runtime, _incoming(emulator, "!ping"))
    invoke(_receive(runtime, "cmd-ping"), COMMANDS["ping"], handle, runtime)
    second = spans.get_finished_spans()
    assert not [s for s in second if s.name == "cold_start"]
    assert by_name(second, "cmd-ping process").attributes["faas.coldstart"] is False


async def test_malformed_traceparent_starts_new_root_and_still_replies(
    runtime: Runtime, emulator: EmulatorThread, spans: InMemorySpanExporter
) -> None:
    incoming = _incoming(emulator, "!ping")
    listener_trace = await _enqueue(runtime, incoming)
    msg = _receive(runtime, "cmd-ping")
    doc = json.loads(msg.get_body())
    doc["trace"]["traceparent"] = "00-zzzz-not-a-trace-01"
    bad = QueueMessage(id=msg.id, body=json.dumps(doc).encode(), dequeue_count=1, insertion_time=msg.insertion_time)
    spans.clear()
    invoke(bad, COMMANDS["ping"], ping.handle, runtime)
    process = by_name(spans.get_finished_spans(), "cmd-ping process")
    assert process.parent is None
    assert format(process.context.trace_id, "032x") != listener_trace
    assert "malformed traceparent" in process.attributes["app.trace_context_error"]
    assert process.attributes["discord.author.id"] == incoming.ids.author  # baggage rebuilt from the envelope
    assert [r["content"] for r in _bot_replies(emulator, incoming.ids.message)] == ["pong"]


def _clear_poison(runtime: Runtime, queue: str) -> None:
    client = queue_client(runtime.settings.storage, poison_queue_name(queue))
    with contextlib.suppress(ResourceNotFoundError):
        client.clear_messages()


def _poison(runtime: Runtime, queue: str) -> list[dict[str, Any]]:
    client = queue_client(runtime.settings.storage, poison_queue_name(queue))
    return [json.loads(m.content) for m in client.peek_messages(max_messages=32)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b'{"v": 99}', "unsupported envelope version"),
        (b'{"v": 1, "kind": "message", "command": "catfact", "args": ""}', "ids"),
    ],
)
def test_undecodable_message_goes_to_poison_at_once_with_reason(
    runtime: Runtime, spans: InMemorySpanExporter, body: bytes, reason: str
) -> None:
    _clear_poison(runtime, "cmd-ping")
    invoke(QueueMessage(id="m-1", body=body, dequeue_count=1), COMMANDS["ping"], lambda ctx: "never", runtime)
    process = by_name(spans.get_finished_spans(), "cmd-ping process")
    assert process.status.status_code is StatusCode.ERROR and reason in process.attributes["app.error"]
    parked = _poison(runtime, "cmd-ping")
    assert len(parked) == 1 and reason in parked[0]["reason"]
    assert parked[0]["body"] == body.decode() and parked[0]["trace_id"] == format(process.context.trace_id, "032x")


async def test_failing_command_apologises_with_trace_id(runtime: Runtime, emulator: EmulatorThread,
                                                        spans: InMemorySpanExporter,
                                                        logs: InMemoryLogRecordExporter) -> None:
    incoming = _incoming(emulator, "!catfact")
    trace_id = await _enqueue(runtime, incoming)

    def broken(ctx: CommandContext) -> str:
        raise ExternalApiError("the cat fact service timed out")

    invoke(_receive(runtime, "cmd-catfact"), COMMANDS["catfact"], broken, runtime)
    finished = spans.get_finished_spans()
    process, command = by_name(finished, "cmd-catfact process"), by_name(finished, "catfact")
    assert process.status.status_code is StatusCode.ERROR
    assert "ExternalApiError" in process.attributes["app.error"]
    assert command.status.status_code is StatusCode.ERROR
    assert [e.name for e in command.events] == ["exception"]
    (reply,) = _bot_replies(emulator, incoming.ids.message)
    assert "timed out" in reply["content"] and trace_id in reply["content"]
    # The failed external call is a WARNING inside the trace, under the command's span.
    (warning,) = [r.log_record for r in logs.get_finished_logs() if r.log_record.severity_text == "WARN"]
    assert warning.trace_id == process.context.trace_id and warning.span_id == command.context.span_id
    assert "external API failed: the cat fact service timed out" in str(warning.body)


async def test_gated_command_is_refused_when_flag_is_off(runtime: Runtime, emulator: EmulatorThread,
                                                         spans: InMemorySpanExporter) -> None:
    incoming = _incoming(emulator, "!roll 3")
    await _enqueue(runtime, incoming)
    invoke(_receive(runtime, "cmd-roll"), COMMANDS["roll"], lambda ctx: "rolled!", runtime)
    process = by_name(spans.get_finished_spans(), "cmd-roll process")
    assert process.attributes["app.denied"] is True and process.attributes["feature_flag.roll"] is False
    (reply,) = _bot_replies(emulator, incoming.ids.message)
    assert "not allowed" in reply["content"]


async def test_discord_outage_is_transient_and_403_is_poison(runtime: Runtime, emulator: EmulatorThread,
                                                             spans: InMemorySpanExporter) -> None:
    handle = ping.handle
    await _enqueue(runtime, _incoming(emulator, "!ping"))
    msg = _receive(runtime, "cmd-ping")
    emulator.inject_rest_fault("POST /channels/{channel_id}/messages", status=503, count=10)
    try:
        with pytest.raises(DiscordUnavailableError):
            invoke(msg, COMMANDS["ping"], handle, runtime)  # raised: the queue will redeliver
    finally:
        emulator.clear_faults()

    emulator.inject_rest_fault("POST /channels/{channel_id}/messages", status=403, count=1)
    try:
        _clear_poison(runtime, "cmd-ping")
        invoke(msg, COMMANDS["ping"], handle, runtime)  # returns: a 403 will not fix itself
    finally:
        emulator.clear_faults()
    parked = _poison(runtime, "cmd-ping")
    assert len(parked) == 1 and "DiscordAuthError" in parked[0]["reason"]
