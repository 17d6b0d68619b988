"""Delivery guarantees with the real functions host process, Azurite and the Discord emulator.

Messages are put on the real ``cmd-ping`` queue directly (no listener needed): duplicates,
garbage, permanent and transient Discord failures. One host serves the whole module, and
the last test checks it still answers after all of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from localdev.azurite import Azurite
from shared.envelope import encode
from shared.registry import poison_queue_name
from tests.reliability.harness import (
    CREATE_MESSAGE,
    Stack,
    approximate_count,
    peek_texts,
    poison_documents,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(azurite, tmp_path_factory.mktemp("delivery")) as s:
        s.start_host()
        yield s


def _clear(stack: Stack) -> None:
    stack.emulator.clear_faults()
    wait_until(lambda: approximate_count(stack.cs, "cmd-ping") == 0, 30, "cmd-ping to be empty")


def _process_span_of(stack: Stack, message_id: str) -> list[dict]:
    return [s for s in stack.process_spans("ping") if s["attributes"].get("discord.message.id") == message_id]


def test_same_envelope_delivered_twice_replies_once(stack: Stack) -> None:
    env = stack.envelope("!ping")
    before = stack.emulator.nonce_duplicates
    text = encode(env)
    stack.enqueue_text("ping", text)
    stack.enqueue_text("ping", text)
    stack.wait_reply(env.ids.message)
    wait_until(lambda: len(_process_span_of(stack, env.ids.message)) == 2, 30, "both deliveries to be processed")
    creates = [r for r in stack.emulator.requests
               if r.template == "/channels/{channel_id}/messages" and (r.json or {}).get("nonce") == env.nonce]
    assert len(creates) == 2 and all(r.json["enforce_nonce"] is True for r in creates)
    assert len(stack.replies_to(env.ids.message)) == 1
    assert stack.emulator.nonce_duplicates == before + 1


BAD_BODIES = {
    "not JSON": b"this is { not json",
    "unknown version": json.dumps({"v": 99, "kind": "message", "command": "ping"}).encode(),
}


def test_bad_envelopes_go_to_poison_at_once_with_the_reason(stack: Stack) -> None:
    _clear(stack)
    bodies = dict(BAD_BODIES)
    wrong = stack.envelope("!help")  # a help envelope on the ping queue
    bodies["wrong command"] = encode(wrong).encode()
    no_ids = json.loads(encode(stack.envelope("!ping")))
    del no_ids["ids"]
    bodies["missing fields"] = json.dumps(no_ids).encode()
    for body in bodies.values():
        stack.enqueue_raw("ping", body)
    wait_until(lambda: len(poison_documents(stack.cs, "ping")) >= 4, 30, "four poison documents")
    docs = poison_documents(stack.cs, "ping")
    assert len(docs) == 4
    by_body = {doc["body"]: doc for doc in docs}
    reasons = {name: by_body[body.decode()]["reason"] for name, body in bodies.items()}
    assert "not JSON" in reasons["not JSON"]
    assert "version" in reasons["unknown version"]
    assert "ids" in reasons["missing fields"]
    assert "'help' arrived on cmd-ping" in reasons["wrong command"]
    assert all(doc["dequeue_count"] == 1 and doc["source_queue"] == "cmd-ping" for doc in docs)
    # Not retried: the host ran each exactly once, succeeded (the wrapper parked it), and the queue is empty.
    _clear(stack)
    good = stack.enqueue(stack.envelope("!ping"))
    stack.wait_reply(good)
    poisoned = [s for s in stack.process_spans("ping") if s["attributes"].get("app.poison")]
    assert len(poisoned) == 4
    assert all(s["status"]["code"] == "ERROR" and "EnvelopeError" in s["attributes"]["app.error"] for s in poisoned)
    assert all(s["attributes"]["messaging.message.delivery_count"] == 1 for s in poisoned)
    assert {doc["trace_id"] for doc in docs} == {s["trace_id"] for s in poisoned}
    assert len(poison_documents(stack.cs, "ping")) == 4


@pytest.mark.parametrize("status", [401, 403, 404])
def test_discord_client_errors_are_not_retried_and_say_why(stack: Stack, status: int) -> None:
    _clear(stack)
    env = stack.envelope("!ping")
    stack.emulator.inject_rest_fault(CREATE_MESSAGE, status, count=5)
    stack.enqueue(env)
    doc = wait_until(lambda: [d for d in poison_documents(stack.cs, "ping") if d["body"] == encode(env)], 30,
                     f"a poison document for the {status}")[0]
    assert f"({status})" in doc["reason"] and doc["dequeue_count"] == 1
    assert "Discord" in doc["reason"]
    _clear(stack)
    attempts = [r for r in stack.emulator.requests if r.fault == f"{status} on {CREATE_MESSAGE}"]
    assert len(attempts) == 1  # no client-side retry either
    [span] = _process_span_of(stack, env.ids.message)
    assert span["status"]["code"] == "ERROR" and f"({status})" in span["attributes"]["app.error"]
    assert stack.replies_to(env.ids.message) == []


@pytest.mark.parametrize("global_", [False, True], ids=["route", "global"])
def test_429_on_the_reply_is_waited_out_and_visible_in_the_trace(stack: Stack, global_: bool) -> None:
    _clear(stack)
    env = stack.envelope("!ping")
    stack.emulator.inject_rest_fault(CREATE_MESSAGE, 429, count=1, retry_after=0.4, global_=global_)
    stack.enqueue(env)
    stack.wait_reply(env.ids.message)

    def rate_limited_events() -> list[dict]:
        spans = [s for t in stack.traces().values()
                 if any(p["attributes"].get("discord.message.id") == env.ids.message for p in t) for s in t]
        return [e for s in spans for e in s.get("events", []) if e["name"] == "discord.rate_limited"]

    [event] = wait_until(rate_limited_events, 15, "the discord.rate_limited event in the trace file")
    assert event["attributes"]["retry_after"] == 0.4
    assert event["attributes"]["global"] is global_
    _clear(stack)
    assert len(stack.replies_to(env.ids.message)) == 1
    [span] = _process_span_of(stack, env.ids.message)
    assert span["status"]["code"] != "ERROR" and span["attributes"]["messaging.message.delivery_count"] == 1


def test_discord_5xx_beyond_budget_is_retried_by_the_queue_then_poisoned(stack: Stack) -> None:
    _clear(stack)
    env = stack.envelope("!ping")
    stack.emulator.inject_rest_fault(CREATE_MESSAGE, 503, count=1000)
    stack.enqueue(env)
    poison = poison_queue_name("cmd-ping")
    wait_until(lambda: encode(env) in peek_texts(stack.cs, poison), 60, "the message in cmd-ping-poison")
    stack.emulator.clear_faults()
    spans = _process_span_of(stack, env.ids.message)
    # host.json (test copy) says maxDequeueCount 3: three invocations, each failing transiently.
    assert sorted(s["attributes"]["messaging.message.delivery_count"] for s in spans) == [1, 2, 3]
    assert all("DiscordUnavailableError" in s["attributes"]["app.error"] for s in spans)
    attempts = [r for r in stack.emulator.requests
                if r.fault == f"503 on {CREATE_MESSAGE}" and (r.json or {}).get("nonce") == env.nonce]
    assert len(attempts) == 3 * 4  # each invocation: DiscordRest's 4 attempts with backoff
    assert stack.replies_to(env.ids.message) == []
    assert not [d for d in poison_documents(stack.cs, "ping") if d["body"] == encode(env)]  # not "permanent"


def test_host_still_serves_after_all_of_that(stack: Stack) -> None:
    _clear(stack)
    assert stack.children[0].running
    env = replace(stack.envelope("!ping"))
    stack.enqueue(env)
    assert stack.wait_reply(env.ids.message)["content"] == "pong"
