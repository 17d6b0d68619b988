"""The listener under gateway faults, a storage outage and a full buffer, with the whole bot running.

One stack for the module: emulator (fast heartbeats, so an outage spans several), the
functions host, and a listener whose buffer holds 3 messages (LISTENER_BUFFER_CAPACITY).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localdev.azurite import Azurite
from tests.reliability.harness import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

CAPACITY = 3


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(azurite, tmp_path_factory.mktemp("listener"),
                       emulator_kwargs={"heartbeat_interval_ms": 500}) as s:
        s.start_host()
        s.start_listener(env={"LISTENER_BUFFER_CAPACITY": str(CAPACITY)})
        yield s


def _gateway_counts(stack: Stack) -> tuple[int, int]:
    return len(stack.emulator.identify_payloads), stack.emulator.ready_count


@pytest.mark.parametrize("fault", ["drop", "reconnect", "invalid_session_resumable", "invalid_session_new"])
def test_gateway_faults_lose_no_message(stack: Stack, fault: str) -> None:
    identifies, ready = _gateway_counts(stack)
    emulator = stack.emulator
    if fault == "drop":
        assert emulator.drop_connection(4000)
    elif fault == "reconnect":
        assert emulator.send_reconnect()
    else:
        assert emulator.send_invalid_session(resumable=fault.endswith("resumable"))
    # Sent while the bot is reconnecting: replayed on RESUME.
    during: dict[str, Any] | None = emulator.send_message("!ping")
    if fault == "invalid_session_new":
        during = None  # a new session starts empty (as on Discord): only what comes after counts
    emulator.wait_until_ready_count(ready + 1, timeout=60)
    after = [emulator.send_message("!ping") for _ in range(2)]
    for message in ([during] if during else []) + after:
        assert stack.wait_reply(message["id"], timeout=60)["content"] == "pong"
    new_identifies, _ = _gateway_counts(stack)
    assert new_identifies == identifies + (1 if fault == "invalid_session_new" else 0)


def _outage(stack: Stack) -> None:
    stack.azurite.stop()


def test_storage_outage_buffers_and_delivers_while_the_gateway_stays_up(stack: Stack) -> None:
    identifies, ready = _gateway_counts(stack)
    log_offset = stack.log_size("listener.log")
    _outage(stack)
    try:
        sent = [stack.emulator.send_message("!ping") for _ in range(2)]
        wait_until(lambda: "storage unreachable" in stack.log("listener.log")[log_offset:], 30,
                   "the listener to notice the outage")
        beats = stack.emulator.heartbeat_count
        wait_until(lambda: stack.emulator.heartbeat_count >= beats + 3, 30, "heartbeats during the outage")
        assert _gateway_counts(stack) == (identifies, ready)  # no reconnect, no re-IDENTIFY
        assert all(not stack.replies_to(m["id"]) for m in sent)
    finally:
        stack.azurite.start()  # same port, in memory: every queue is gone
    for message in sent:
        assert stack.wait_reply(message["id"], timeout=60)["content"] == "pong"
    assert all(len(stack.replies_to(m["id"])) == 1 for m in sent)
    assert _gateway_counts(stack) == (identifies, ready)


def _busy_replies(stack: Stack, after: str) -> list[dict[str, Any]]:
    return [m for m in stack.emulator.bot_messages
            if int(m["id"]) > int(after) and "overloaded" in m.get("content", "")]


def test_full_buffer_tells_the_user_and_keeps_what_it_accepted(stack: Stack) -> None:
    marker = stack.emulator.send_message("not a command")["id"]
    _outage(stack)
    try:
        sent = [stack.emulator.send_message("!ping") for _ in range(CAPACITY + 2)]
        wait_until(lambda: len(_busy_replies(stack, marker)) >= 2, 30, "two busy replies")
        busy = _busy_replies(stack, marker)
        assert len(busy) == 2 and all("trace `" in b["content"] for b in busy)
    finally:
        stack.azurite.start()
    answered = [m for m in sent if m is not None]
    pongs = 0
    for message in answered[:CAPACITY]:  # the first three were accepted (gateway order is kept)
        assert stack.wait_reply(message["id"], timeout=60)["content"] == "pong"
        pongs += 1
    assert pongs == CAPACITY
    assert all(not stack.replies_to(m["id"]) for m in answered[CAPACITY:])
    assert len(_busy_replies(stack, marker)) == 2


@pytest.mark.parametrize("content", ["!help @everyone", "!mtg @everyone", "!ping <@&123456789012345678> @here",
                                     "!roll 5 <@123456789012345678>", "!nosuchcommand @everyone"])
def test_replies_never_ping_even_when_echoing_mentions(stack: Stack, content: str) -> None:
    sent, reply = stack.say(content)
    creates = [r for r in stack.emulator.requests if r.template == "/channels/{channel_id}/messages"
               and (r.json or {}).get("nonce") == sent["id"]]
    assert creates, "the reply was not a create-message request"
    for request in creates:
        assert request.json["allowed_mentions"]["parse"] == []
        assert request.json["allowed_mentions"].get("replied_user") is False
        assert 0 < len(request.json["content"]) <= 2000
        assert not request.errors
    assert reply["mentions"] == [] and reply["mention_roles"] == [] and reply["mention_everyone"] is False
