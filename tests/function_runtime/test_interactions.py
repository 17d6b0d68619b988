"""The interactions endpoint's logic: signatures, PING, commands onto the real queue, spans, fuzz."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceExistsError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from function_runtime import interactions
from function_runtime.interactions import InteractionsEndpoint, parse_command
from function_runtime.queue_sender import QueueSender, RestQueueSender, SdkQueueSender, make_sender
from function_runtime.signature import Verifier
from function_runtime.startup import StartupMarks
from localdev.discord_emulator import sign_request
from shared.envelope import decode
from shared.queues import queue_client
from shared.settings import Settings
from tests.tracing import by_name

KEY = SigningKey.generate()
TOKEN = "aW50ZXJhY3Rpb246" + "s3cr3t-token-" * 8


class Recording:
    """A sender that keeps what it was given (for tests about the HTTP side only)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = fail

    def send(self, queue: str, text: str) -> str:
        if self.fail:
            raise TimeoutError("storage did not answer")
        self.sent.append((queue, text))
        return f"msg-{len(self.sent)}"


def command(name: str = "roll", options: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """An APPLICATION_COMMAND interaction as Discord POSTs it (guild context)."""
    doc: dict[str, Any] = {
        "id": "1200000000000000001", "application_id": "1100000000000000001", "type": 2, "version": 1,
        "token": TOKEN, "channel_id": "1300000000000000001", "guild_id": "1400000000000000001",
        "data": {"id": "1500000000000000001", "name": name, "type": 1,
                 "options": options if options is not None else [{"name": "dice", "type": 3, "value": "3"}]},
        "member": {"user": {"id": "1600000000000000001", "username": "alice"}, "roles": ["1700000000000000001"]},
        "locale": "en-US", "app_permissions": "0", "entitlements": [],
    }
    doc.update(extra)
    return doc


def post(endpoint: InteractionsEndpoint, doc: Any, headers: dict[str, str] | None = None) -> interactions.Answer:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return endpoint.handle(sign_request(KEY, body) if headers is None else headers, body)


def make_endpoint(sender: QueueSender, marks: StartupMarks | None = None) -> InteractionsEndpoint:
    """An endpoint with this test's own start-up marks (the process's belong to no test)."""
    return InteractionsEndpoint(Verifier.from_public_key(bytes(KEY.verify_key)), sender,
                                marks=marks or StartupMarks(process_start_ns=time.time_ns()))


@pytest.fixture
def sender() -> Recording:
    return Recording()


@pytest.fixture
def endpoint(sender: Recording) -> InteractionsEndpoint:
    return make_endpoint(sender)


def test_ping_is_answered_with_pong(endpoint: InteractionsEndpoint, sender: Recording,
                                    spans: InMemorySpanExporter) -> None:
    answer = post(endpoint, {"type": 1, "id": "1", "application_id": "2", "token": "t", "version": 1})
    assert (answer.status, answer.body) == (200, {"type": 1})
    assert sender.sent == []
    span = by_name(spans.get_finished_spans(), "POST /api/interactions")
    assert span.kind is SpanKind.SERVER and span.attributes["http.response.status_code"] == 200
    assert span.attributes["app.interaction.type"] == 1


@pytest.mark.parametrize("headers", [
    {},
    {"X-Signature-Ed25519": "00" * 64, "X-Signature-Timestamp": "1700000000"},
    sign_request(SigningKey.generate(), b'{"type":1}'),  # another application's key
    sign_request(KEY, b'{"type":1}', 1_000_000_000),  # stale
])
def test_unsigned_requests_get_401(endpoint: InteractionsEndpoint, headers: dict[str, str],
                                   spans: InMemorySpanExporter) -> None:
    answer = post(endpoint, b'{"type":1}', headers)
    assert answer.status == 401
    span = by_name(spans.get_finished_spans(), "POST /api/interactions")
    assert span.status.status_code is StatusCode.ERROR and span.attributes["http.response.status_code"] == 401


def test_without_a_public_key_everything_is_refused(sender: Recording, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = InteractionsEndpoint(None, sender, marks=StartupMarks(process_start_ns=time.time_ns()))
    assert post(endpoint, {"type": 1}).status == 401
    assert "DISCORD_PUBLIC_KEY is not set" in caplog.text


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"type": 99}', b'{"type": true}',
                                  b'{"type": 2}', b'{"type": 2, "data": {"name": "roll"}}', b"[" * 100_000])
def test_signed_garbage_is_400(endpoint: InteractionsEndpoint, sender: Recording, body: bytes) -> None:
    assert post(endpoint, body).status in (400, 401)  # the deep nesting one is over the size limit
    assert sender.sent == []


def test_a_command_is_enqueued_with_the_listeners_envelope_and_deferred(
    endpoint: InteractionsEndpoint, sender: Recording, spans: InMemorySpanExporter
) -> None:
    answer = post(endpoint, command(options=[{"name": "dice", "type": 3, "value": "3"},
                                             {"name": "again", "type": 3, "value": "9a"}]))
    assert (answer.status, answer.body) == (200, {"type": 5})
    [(queue, text)] = sender.sent
    env = decode(text)
    assert queue == "cmd-roll"
    assert (env.kind, env.command, env.args) == ("interaction", "roll", "3 9a")
    assert (env.ids.interaction, env.ids.message, env.ids.channel, env.ids.guild, env.ids.author) == (
        "1200000000000000001", "1200000000000000001", "1300000000000000001", "1400000000000000001",
        "1600000000000000001")
    assert env.author_name == "alice" and env.roles == ("1700000000000000001",)
    assert env.interaction is not None and env.interaction.token.reveal() == TOKEN
    assert env.interaction.application_id == "1100000000000000001"

    finished = spans.get_finished_spans()
    root, producer = by_name(finished, "discord.command"), by_name(finished, "cmd-roll send")
    assert root.kind is SpanKind.SERVER and root.parent is None
    assert root.attributes["http.route"] == "/api/interactions" and root.attributes["http.response.status_code"] == 200
    assert root.attributes["app.trigger"] == "slash" and root.attributes["faas.trigger"] == "http"
    assert producer.parent.span_id == root.context.span_id and producer.attributes["messaging.message.id"] == "msg-1"
    assert env.trace["traceparent"].split("-")[2] == format(producer.context.span_id, "016x")
    assert "app.command=roll" in env.trace["baggage"]


def test_an_incoming_traceparent_is_continued(endpoint: InteractionsEndpoint, spans: InMemorySpanExporter) -> None:
    body = json.dumps(command()).encode()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    endpoint.handle({**sign_request(KEY, body), "traceparent": parent}, body)
    root = by_name(spans.get_finished_spans(), "discord.command")
    assert format(root.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert root.parent is not None and format(root.parent.span_id, "016x") == "b7ad6b7169203331"


def test_unknown_commands_get_an_ephemeral_explanation(endpoint: InteractionsEndpoint, sender: Recording) -> None:
    answer = post(endpoint, command("nope", options=[]))
    assert answer.status == 200 and answer.body["type"] == 4
    assert answer.body["data"]["flags"] == 64 and "Unknown command `/nope`" in answer.body["data"]["content"]
    assert answer.body["data"]["allowed_mentions"] == {"parse": []}
    assert sender.sent == []


def test_storage_down_is_told_to_the_user_inside_the_deadline(spans: InMemorySpanExporter) -> None:
    endpoint = make_endpoint(Recording(fail=True))
    answer = post(endpoint, command())
    assert answer.status == 200 and answer.body["data"]["flags"] == 64
    assert "couldn't take that command" in answer.body["data"]["content"]
    root = by_name(spans.get_finished_spans(), "discord.command")
    assert root.status.status_code is StatusCode.ERROR and "enqueue failed" in root.attributes["app.error"]


def test_dm_interactions_carry_user_instead_of_member() -> None:
    doc = command()
    del doc["member"], doc["guild_id"]
    doc["user"] = {"id": "1600000000000000002", "username": "bob"}
    incoming = parse_command(doc)
    assert incoming.ids.author == "1600000000000000002" and incoming.ids.guild is None and incoming.roles == ()


def test_the_token_reaches_neither_spans_nor_logs(endpoint: InteractionsEndpoint, spans: InMemorySpanExporter,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    post(endpoint, command())
    post(endpoint, command("nope"))
    failing = make_endpoint(Recording(fail=True))
    post(failing, command())
    post(endpoint, {**command(), "token": None})
    dumped = [json.dumps({"a": dict(s.attributes or {}), "e": [dict(e.attributes or {}) for e in s.events]},
                         default=str) for s in spans.get_finished_spans()]
    assert dumped and not any(TOKEN in d or TOKEN[:40] in d for d in dumped)
    assert TOKEN[:40] not in caplog.text


def test_the_http_function_answers_through_the_workers_types(sender: Recording) -> None:
    interactions.use_endpoint(make_endpoint(sender))
    try:
        body = json.dumps(command()).encode()
        req = func.HttpRequest("POST", "http://127.0.0.1:7071/api/interactions", headers=sign_request(KEY, body),
                               body=body)
        response = interactions.interactions(req)
    finally:
        interactions.use_endpoint(None)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert json.loads(response.get_body()) == {"type": 5}


@pytest.mark.parametrize("kind", ["rest", "sdk"])
def test_senders_put_base64_envelopes_on_the_real_queue(settings: Settings, kind: str) -> None:
    sender = make_sender(settings.storage) if kind == "rest" else SdkQueueSender(settings.storage)
    assert isinstance(sender, RestQueueSender) == (kind == "rest")
    endpoint = make_endpoint(sender)
    client = queue_client(settings.storage, "cmd-roll")
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    client.clear_messages()
    assert post(endpoint, command()).body == {"type": 5}
    raw = queue_client(settings.storage, "cmd-roll", message_decode_policy=None).receive_message()
    assert raw is not None
    client.clear_messages()
    env = decode(base64.b64decode(raw.content))  # host.json messageEncoding: base64
    assert env.command == "roll" and env.args == "3"


@pytest.mark.parametrize("kind", ["rest", "sdk"])
def test_senders_create_a_missing_queue(settings: Settings, queue_names: Iterator[str], kind: str) -> None:
    queue = next(queue_names)
    sender = make_sender(settings.storage) if kind == "rest" else SdkQueueSender(settings.storage)
    message_id = sender.send(queue, "hello")
    [got] = queue_client(settings.storage, queue).receive_messages()
    assert (got.id, got.content) == (message_id, b"hello")
    queue_client(settings.storage, queue).delete_queue()


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage() + str(record.exc_info))


# -- fuzz ------------------------------------------------------------------------------------------

HEADER_NAMES = st.sampled_from(["X-Signature-Ed25519", "X-Signature-Timestamp", "x-signature-ed25519",
                                "traceparent", "Content-Type", "X-Other"])
HEADER_VALUES = st.one_of(st.text(max_size=140), st.binary(min_size=64, max_size=64).map(bytes.hex),
                          st.integers(0, 2**40).map(str))
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5), body=st.binary(max_size=512))
def test_fuzz_unsigned_requests_are_never_accepted(headers: dict[str, str], body: bytes) -> None:
    sender = Recording()
    endpoint = make_endpoint(sender)
    answer = endpoint.handle(headers, body)
    assert answer.status == 401 and sender.sent == []


@settings(max_examples=300, deadline=None)
@given(doc=st.one_of(JSONISH, st.fixed_dictionaries({"type": st.integers(-1, 6)}, optional={
    "data": JSONISH | st.fixed_dictionaries({"name": st.text(max_size=40), "options": JSONISH}),
    "member": JSONISH, "user": JSONISH, "token": JSONISH, "id": JSONISH, "application_id": JSONISH,
    "channel_id": JSONISH, "guild_id": JSONISH})))
def test_fuzz_signed_bodies_get_200_or_400_never_an_exception(doc: Any) -> None:
    sender = Recording()
    endpoint = make_endpoint(sender)
    errors = _Errors()
    logging.getLogger(interactions.__name__).addHandler(errors)
    try:
        answer = post(endpoint, doc)
    finally:
        logging.getLogger(interactions.__name__).removeHandler(errors)
    assert errors.records == [], "the catch-all answered 400 for a bug"
    assert answer.status in (200, 400)
    assert isinstance(answer.body, dict)
    if sender.sent:
        assert answer.body == {"type": 5}
        decode(sender.sent[0][1])  # whatever got through is a valid envelope


def test_the_background_flusher_never_holds_the_answer_and_shares_flushes() -> None:
    import threading
    import time

    release, flushed = threading.Event(), []

    def slow_flush() -> None:
        release.wait(5)
        flushed.append(time.monotonic())

    flusher = interactions.BackgroundFlusher(slow_flush, idle_s=0.2, name="test-flush")
    began = time.monotonic()
    for _ in range(50):
        flusher.request()
    assert time.monotonic() - began < 0.5  # requests return while the exporter is stuck
    assert sum(t.name == "test-flush" for t in threading.enumerate()) == 1  # not one per request
    release.set()
    time.sleep(0.5)
    assert 1 <= len(flushed) <= 2  # the burst shared its flushes


def test_the_first_request_of_a_process_shows_the_start_up_it_waited_for(sender: Recording,
                                                                          spans: InMemorySpanExporter) -> None:
    marks = StartupMarks(process_start_ns=time.time_ns() - 5_000_000_000)
    now = time.time_ns()
    marks.phases.update({"worker_start": (marks.process_start_ns, now - 600_000_000),
                         "indexing": (now - 600_000_000, now - 300_000_000),
                         "telemetry_setup": (now - 500_000_000, now - 400_000_000)})
    endpoint = make_endpoint(sender, marks)
    body = json.dumps(command()).encode()
    sent = int(time.time()) - 2  # Discord sent it before the instance finished starting
    endpoint.handle(sign_request(KEY, body, sent), body)
    endpoint.handle(sign_request(KEY, body, sent), body)
    roots = [s for s in spans.get_finished_spans() if s.name == "discord.command"]
    assert [r.attributes["faas.coldstart"] for r in roots] == [True, False]
    cold = by_name(spans.get_finished_spans(), "cold_start")
    assert cold.parent.span_id == roots[0].context.span_id
    phases = {s.name: s for s in spans.get_finished_spans() if s.parent and s.parent.span_id == cold.context.span_id}
    assert set(phases) == {"worker_start", "indexing"}
    assert phases["worker_start"].start_time == sent * 1_000_000_000  # clipped to when Discord signed it
    [telemetry] = [s for s in spans.get_finished_spans() if s.name == "telemetry_setup"]
    assert telemetry.parent.span_id == phases["indexing"].context.span_id  # nested: it happened while indexing
