"""!remindme against Azurite's table and queue services: parsing, storing, firing once, restarts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.functions.queue import QueueMessage
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from command_functions import remindme
from function_runtime import reminders_due
from function_runtime.context import CommandContext
from function_runtime.errors import UsageError
from function_runtime.reminders import Reminder, ReminderStore, delay_until, due_message, reminder_id, store_for
from function_runtime.runtime import Runtime
from localdev.azurite import Azurite
from shared import telemetry
from shared.envelope import Envelope, Ids
from shared.queues import queue_client
from shared.registry import COMMANDS, REMINDERS_DUE_QUEUE
from shared.settings import Secret, Settings, StorageSettings
from tests.function_runtime.openapi_oracle import oracle

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "text", "due"), [
    ("check the oven 10m", "check the oven", NOW + timedelta(minutes=10)),
    ("2h call mum", "call mum", NOW + timedelta(hours=2)),
    ("stretch 3H now", "stretch now", NOW + timedelta(hours=3)),
    ("renew 1D", "renew", NOW + timedelta(days=1)),
    ("rent 1M", "rent", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),
    ("buy 2m of cable 3d", "buy 2m of cable", NOW + timedelta(days=3)),
    ("a year 12M", "a year", datetime(2027, 1, 31, 12, 0, tzinfo=UTC)),
])
def test_parse(args: str, text: str, due: datetime) -> None:
    request = remindme.parse(args, NOW)
    assert (request.text, request.due) == (text, due)


@pytest.mark.parametrize(("args", "why"), [
    ("no interval here", "When?"), ("zero 0m", "more than zero"), ("later 13M", "more than a year"),
    ("later 400d", "more than a year"), ("10m", "What should I"), ("x" * 1501 + " 5m", "1500"),
    ("huge 999999d", "more than a year"),
])
def test_bad_input_gets_the_usage(args: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        remindme.parse(args, NOW)


def test_due_message_delay_is_whole_seconds_and_capped() -> None:
    assert delay_until(NOW + timedelta(seconds=2.2), NOW) == 3
    assert delay_until(NOW - timedelta(seconds=5), NOW) == 0
    assert delay_until(NOW + timedelta(days=30), NOW) == 7 * 24 * 3600


# -- against Azurite --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("azurite-data")


@pytest.fixture(scope="module")
def tables(storage_dir: Path) -> Iterator[Azurite]:
    """Queues and tables that live on disk, so a restart keeps them."""
    with Azurite(tables=True, location=storage_dir) as instance:
        yield instance


class RecordingRest:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    def create_message(self, channel_id: str, content: str, *, nonce: str, reply_to: str | None = None,
                       mention_users: tuple[str, ...] = ()) -> dict[str, Any]:
        from function_runtime.discord_rest import _no_mentions, fit_content

        body = {"content": fit_content(content), "allowed_mentions": _no_mentions(mention_users),
                "nonce": nonce, "enforce_nonce": True}
        headers = {"Content-Type": "application/json", "Authorization": "Bot x"}
        oracle().check("POST", f"/channels/{channel_id}/messages", body, headers)
        self.posts.append({"channel": channel_id, **body})
        return {"id": "1"}

    def edit_original_response(self, application_id: str, interaction_token: Secret, content: str) -> dict[str, Any]:
        raise AssertionError("reminders never edit an interaction")


@pytest.fixture
def world(tables: Azurite) -> Iterator[tuple[Settings, ReminderStore, RecordingRest, Runtime]]:
    settings = Settings(storage=StorageSettings(connection_string=Secret(tables.connection_string)))
    store = store_for(settings.storage)
    rest = RecordingRest()
    poisoned: list[dict[str, object]] = []
    runtime = Runtime(settings=settings, rest=rest, http=requests.Session(), flags=None,  # type: ignore[arg-type]
                      poison=lambda queue, doc: poisoned.append(doc))
    store.queue().clear_messages()
    yield settings, store, rest, runtime


def ctx_for(settings: Settings, args: str, *, guild: str, author: str = "3000", message: str | None = None
            ) -> CommandContext:
    env = Envelope(kind="message", command="remindme", args=args,
                   ids=Ids(message=message or str(uuid.uuid4().int)[:18], channel="2000", author=author, guild=guild),
                   author_name="tester", received_at=datetime.now(UTC))
    return CommandContext(envelope=env, spec=COMMANDS["remindme"], settings=settings, http=requests.Session())


def due_messages(settings: Settings, wait_s: float, want: int = 1000) -> list[QueueMessage]:
    """Receive the reminders-due messages that become visible within ``wait_s`` seconds (or ``want`` of them)."""
    client = queue_client(settings.storage, REMINDERS_DUE_QUEUE)
    deadline, out = time.monotonic() + wait_s, list[QueueMessage]()
    while time.monotonic() < deadline and len(out) < want:
        for m in client.receive_messages(max_messages=32, visibility_timeout=30):
            client.delete_message(m)
            out.append(QueueMessage(id=m.id, body=m.content, dequeue_count=m.dequeue_count))
        time.sleep(0.05)
    return out


def due_soon(store: ReminderStore, g: str, *, seconds: float, copies: int = 1) -> Reminder:
    """Make the guild's one pending reminder due in ``seconds`` (tests cannot wait a minute) and arm it."""
    reminder = store.pending(g)[0]
    store.table().update_entity({"PartitionKey": g, "RowKey": reminder.id,
                                 "due": datetime.now(UTC) + timedelta(seconds=seconds)})
    store.queue().clear_messages()
    reminder = store.pending(g)[0]
    for _ in range(copies):
        store.arm(reminder)
    return reminder


def guild() -> str:
    return str(uuid.uuid4().int)[:18]


def test_create_list_cancel(world: tuple[Settings, ReminderStore, RecordingRest, Runtime]) -> None:
    settings, store, _, _ = world
    g = guild()
    reply = remindme.handle(ctx_for(settings, "water the plants 2h", guild=g, message="111"))
    rid = reminder_id("111")
    assert f"`{rid}`" in reply and "<t:" in reply and ":R>" in reply
    remindme.handle(ctx_for(settings, "someone else's 1d", guild=g, author="4000"))
    mine = remindme.handle(ctx_for(settings, "list", guild=g))
    assert rid in mine and "water the plants" in mine and "someone else" not in mine
    assert "someone else" in remindme.handle(ctx_for(settings, "list all", guild=g))
    other = store.pending(g, "4000")[0]
    assert "no reminder" in remindme.handle(ctx_for(settings, f"cancel {other.id}", guild=g))
    assert remindme.handle(ctx_for(settings, f"cancel {rid}", guild=g)) == f"Cancelled reminder `{rid}`."
    assert "no pending" in remindme.handle(ctx_for(settings, "list", guild=g))


def test_redelivered_command_stores_once(world: tuple[Settings, ReminderStore, RecordingRest, Runtime]) -> None:
    settings, store, _, _ = world
    g = guild()
    first = remindme.handle(ctx_for(settings, "once 1h", guild=g, message="222"))
    again = remindme.handle(ctx_for(settings, "once 1h", guild=g, message="222"))
    assert first == again and len(store.pending(g)) == 1


def test_twenty_five_pending_is_the_most(world: tuple[Settings, ReminderStore, RecordingRest, Runtime]) -> None:
    settings, store, _, _ = world
    g = guild()
    for i in range(25):
        remindme.handle(ctx_for(settings, f"r{i} 1d", guild=g))
    with pytest.raises(UsageError, match="25 pending"):
        remindme.handle(ctx_for(settings, "one more 1d", guild=g))
    assert len(store.pending(g)) == 25


def test_fires_once_on_time_pinging_only_the_creator(
    world: tuple[Settings, ReminderStore, RecordingRest, Runtime], spans: InMemorySpanExporter
) -> None:
    settings, store, rest, runtime = world
    g = guild()
    text = "ping @everyone @here <@&55> <@9999> 1m"
    with trace.get_tracer(__name__).start_as_current_span("remindme") as creating:  # as the wrapper runs it
        remindme.handle(ctx_for(settings, text, guild=g, message="333"))
    reminder = due_soon(store, g, seconds=2, copies=2)  # a duplicate, as a redelivered command makes
    received = due_messages(settings, 0.5)
    assert received == []  # invisible until due
    messages = due_messages(settings, 6, want=2)
    assert len(messages) == 2
    for msg in messages:
        reminders_due.fire(msg, runtime, store)
    assert len(rest.posts) == 1
    post = rest.posts[0]
    assert post["content"] == "Hey <@3000>, remember ping @everyone @here <@&55> <@9999>"
    assert post["allowed_mentions"] == {"parse": [], "users": ["3000"]}
    assert post["nonce"] == f"rem-{reminder.id}"
    telemetry.flush(1000)
    fired = [s for s in spans.get_finished_spans() if s.name == "reminders-due process"
             and (s.attributes or {}).get("app.reminder.state") == "fired"]
    assert len(fired) == 1 and fired[0].parent is None and fired[0].kind is SpanKind.CONSUMER
    attrs = fired[0].attributes or {}
    assert attrs["app.reminder.id"] == reminder.id
    lateness = float(attrs["app.reminder.lateness_ms"])  # type: ignore[arg-type]
    assert 0 <= lateness < 3000, lateness
    links = fired[0].links
    assert len(links) == 1 and links[0].context.span_id == creating.get_span_context().span_id
    assert links[0].context.trace_id != fired[0].context.trace_id  # its own trace


def test_rearms_past_the_visibility_limit(world: tuple[Settings, ReminderStore, RecordingRest, Runtime]) -> None:
    settings, store, rest, runtime = world
    g = guild()
    remindme.handle(ctx_for(settings, "far 10d", guild=g))
    reminder = store.pending(g)[0]
    store.queue().clear_messages()
    store.queue().send_message(due_message(reminder))  # as if 7 days had passed
    (msg,) = due_messages(settings, 1, want=1)
    reminders_due.fire(msg, runtime, store)
    assert rest.posts == [] and store.pending(g)  # not yet: armed again
    peeked = store.queue().peek_messages()
    assert peeked == []  # the new leg is invisible


def test_restart_loses_nothing_and_a_missed_one_fires_late(
    world: tuple[Settings, ReminderStore, RecordingRest, Runtime], tables: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, store, rest, runtime = world
    monkeypatch.setattr(reminders_due, "LATE_AFTER", timedelta(seconds=1))
    g = guild()
    remindme.handle(ctx_for(settings, "survive the restart 1m", guild=g, message="444"))
    reminder = due_soon(store, g, seconds=1)
    tables.stop()  # everything down (storage too) while it falls due
    time.sleep(3)
    tables.start()
    fresh = ReminderStore(settings.storage)  # new clients, as a restarted instance has
    (msg,) = due_messages(settings, 2, want=1)
    reminders_due.fire(msg, runtime, fresh)
    assert len(rest.posts) == 1 and "This reminder is late" in rest.posts[0]["content"]
    stored = fresh.get(g, reminder.id)
    assert stored is not None and stored.posted
    reminders_due.fire(msg, runtime, fresh)  # redelivered after all: still once
    assert len(rest.posts) == 1
