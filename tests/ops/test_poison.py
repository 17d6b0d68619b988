"""python -m ops.poison against Azurite: a poisoned message listed with its reason and trace id,
replayed once onto its command's queue in a new trace linked to the original, and purged by age.

Both kinds of poison message are covered: the document our function code parks (reason inside)
and the original message the Functions host moves unchanged after maxDequeueCount (reason only
in the trace, whose id comes from the envelope's traceparent).
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from localdev.azurite import Azurite
from ops import poison
from shared.envelope import Envelope, Ids, decode, encode
from shared.settings import Settings

ORIGINAL_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ORIGINAL_SPAN = "00f067aa0ba902b7"
COMMAND = "source"  # its queues are used by no other test


def _envelope(message_id: str) -> str:
    return encode(Envelope(kind="message", command=COMMAND, args="2d6",
                           ids=Ids(message=message_id, channel="1100000000000000002", author="1100000000000000003",
                                   guild="1100000000000000004"),
                           author_name="you", received_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
                           trace={"traceparent": f"00-{ORIGINAL_TRACE}-{ORIGINAL_SPAN}-01"}))


def _client(azurite: Azurite, queue: str) -> QueueClient:
    client = QueueClient.from_connection_string(azurite.connection_string, queue,
                                                message_encode_policy=TextBase64EncodePolicy())
    with contextlib.suppress(Exception):
        client.create_queue()
    client.clear_messages()
    return client


@pytest.fixture
def queues(azurite: Azurite) -> Iterator[tuple[QueueClient, QueueClient]]:
    work, parked = _client(azurite, f"cmd-{COMMAND}"), _client(azurite, f"cmd-{COMMAND}-poison")
    yield work, parked
    work.clear_messages()
    parked.clear_messages()


def _env(azurite: Azurite) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string}


def test_list_replay_and_purge_round_trip(azurite: Azurite, settings: Settings, queues: tuple[QueueClient, QueueClient],
                                          spans: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]) -> None:
    work, parked = queues
    # As function_runtime.invocation parks a permanent failure, and as the host moves a message.
    ours = parked.send_message(json.dumps({
        "reason": "DiscordNotFoundError: Discord answered 404", "source_queue": f"cmd-{COMMAND}", "message_id": "m-1",
        "dequeue_count": 1, "trace_id": ORIGINAL_TRACE, "body": _envelope("1100000000000000011")}))
    moved = parked.send_message(_envelope("1100000000000000012"))

    assert poison.main(["list", "--queue", COMMAND], _env(azurite)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"cmd-{COMMAND}-poison: 2 messages, oldest ")
    assert f"{ours.id}" in out and "DiscordNotFoundError: Discord answered 404" in out
    assert f"{moved.id}" in out and "failed 5 deliveries on cmd-source (host maxDequeueCount)" in out
    assert out.count(f"trace {ORIGINAL_TRACE}") == 2  # the host-moved one: from the envelope's traceparent

    assert poison.main(["list", "--queue", f"cmd-{COMMAND}-poison", "--json"], _env(azurite)) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["parked_by"] for r in rows} == {"function", "host"} and all(r["age_s"] >= 0 for r in rows)

    # Replay one: back on its queue, in a new trace linked to the original, gone from the poison queue.
    spans.clear()
    assert poison.main(["replay", "--queue", COMMAND, "--id", ours.id], _env(azurite)) == 0
    out = capsys.readouterr().out
    assert f"{ours.id}: replayed: sent to cmd-{COMMAND}" in out
    [replayed] = work.peek_messages(max_messages=32)
    env = decode(base64.b64decode(replayed.content))
    assert env.ids.message == "1100000000000000011" and env.args == "2d6"
    new_trace = env.trace["traceparent"].split("-")[1]
    assert new_trace != ORIGINAL_TRACE and f"(new trace {new_trace})" in out
    [send] = [s for s in spans.get_finished_spans() if s.name == f"cmd-{COMMAND} send"]
    assert format(send.context.trace_id, "032x") == new_trace and send.parent is None
    assert [(format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) for link in send.links] \
        == [(ORIGINAL_TRACE, ORIGINAL_SPAN)]
    assert send.attributes["app.replay.of_trace_id"] == ORIGINAL_TRACE
    assert "app.command=source" in env.trace["baggage"]  # the trace fields ride again, for every span
    remaining = [m.id for m in parked.peek_messages(max_messages=32)]
    assert remaining == [moved.id]

    # At most once: the same id again finds nothing to replay.
    assert poison.main(["replay", "--queue", COMMAND, "--id", ours.id], _env(azurite)) == 1
    assert f"{ours.id}: not found" in capsys.readouterr().out
    assert len(work.peek_messages(max_messages=32)) == 1

    # Purge by age: nothing is older than a day; everything is older than zero seconds.
    assert poison.purge(settings, f"cmd-{COMMAND}-poison", timedelta(days=1)) == 0
    assert [m.id for m in parked.peek_messages(max_messages=32)] == [moved.id]
    assert poison.main(["purge", "--queue", COMMAND, "--older-than", "0s"], _env(azurite)) == 0
    assert "cmd-source-poison: 1 deleted" in capsys.readouterr().out
    assert parked.peek_messages(max_messages=32) == []


def test_a_replay_cut_off_after_its_marker_is_not_sent_twice(azurite: Azurite, settings: Settings,
                                                              queues: tuple[QueueClient, QueueClient]) -> None:
    work, parked = queues
    parked.send_message(_envelope("1100000000000000021"))
    # The first replay wrote its marker, then died before sending (its lease ran out): simulate with
    # a send that fails after the marker is written.
    original_send = poison._replay_trace

    @contextlib.contextmanager
    def dies_before_sending(p: poison.Parked) -> Iterator[tuple[str, object]]:
        with original_send(p) as (trace_id, _send):
            def crash(_settings: Settings) -> None:
                raise RuntimeError("process killed")
            yield trace_id, crash

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(poison, "_replay_trace", dies_before_sending)
        mp.setattr(poison, "LEASE_S", 1)
        with pytest.raises(RuntimeError):
            poison.replay(settings, f"cmd-{COMMAND}-poison", None)
    # The lease expires; the message is back, carrying the marker: refused, not sent.
    deadline = time.monotonic() + 15  # a wait for the 1 s lease to lapse, not a timing assertion
    while not (outcomes := poison.replay(settings, f"cmd-{COMMAND}-poison", None)) and time.monotonic() < deadline:
        time.sleep(0.2)
    [refused] = outcomes
    assert refused.result == "refused" and "may have been sent" in refused.detail
    assert work.peek_messages(max_messages=32) == []
    [forced] = poison.replay(settings, f"cmd-{COMMAND}-poison", None, force=True)
    assert forced.result == "replayed" and len(work.peek_messages(max_messages=32)) == 1


def test_unknown_queue_and_bad_duration_are_one_line(azurite: Azurite, capsys: pytest.CaptureFixture[str]) -> None:
    assert poison.main(["list", "--queue", "nope"], _env(azurite)) == 2
    assert "not a command's poison queue" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        poison.main(["purge", "--older-than", "soon"], _env(azurite))
