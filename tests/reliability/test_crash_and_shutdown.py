"""Crashes and shutdowns lose nothing: SIGKILL mid-reply, SIGTERM drains, leases expire.

The reply is held "in flight" by a delay the emulator puts on the create-message route,
so the kill or SIGTERM lands while the function is waiting on Discord.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from localdev.azurite import Azurite
from tests.reliability.harness import CREATE_MESSAGE, Stack, approximate_count, peek_texts, running_stack, wait_until

pytestmark = pytest.mark.e2e

LEASE = ["--lease-seconds", "3"]


@pytest.fixture
def stack(azurite: Azurite, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(azurite, tmp_path) as s:
        yield s


def _reply_in_flight(stack: Stack, delay: float) -> str:
    """Enqueue a ping whose reply the emulator holds for ``delay`` s; returns once the request is held."""
    stack.emulator.inject_rest_fault(CREATE_MESSAGE, 0, count=1, delay=delay)
    env = stack.envelope("!ping")
    stack.enqueue(env)
    wait_until(lambda: [r for r in stack.emulator.requests if r.fault and "delay" in r.fault], 30,
               "the reply to reach Discord")
    return env.ids.message


def test_host_killed_mid_invocation_redelivers_after_the_lease_and_replies_once(stack: Stack) -> None:
    host = stack.start_host(args=LEASE)
    message_id = _reply_in_flight(stack, delay=2)
    host.kill()  # SIGKILL: no drain, no settle, the lease is all that is left
    stack.start_host(args=LEASE, log="host2.log")
    stack.wait_reply(message_id)
    wait_until(lambda: [ln for ln in stack.executions("ping", log="host2.log")
                        if "Succeeded" in ln and "dequeue_count=2" in ln], 30, "the redelivery to succeed")
    wait_until(lambda: approximate_count(stack.cs, "cmd-ping") == 0, 15, "the message to be deleted")
    # The first request may have completed after the crash: the nonce makes the second a no-op.
    wait_until(lambda: all(r.status is not None for r in stack.emulator.requests), 15, "held requests to finish")
    assert len(stack.replies_to(message_id)) == 1
    [span] = [s for s in stack.process_spans("ping") if s["attributes"]["discord.message.id"] == message_id]
    assert span["attributes"]["messaging.message.delivery_count"] == 2


def test_host_sigterm_finishes_in_flight_invocations_before_exit(stack: Stack) -> None:
    host = stack.start_host()
    message_id = _reply_in_flight(stack, delay=2)
    assert host.stop(timeout=30) == 0
    assert len(stack.replies_to(message_id)) == 1
    assert [ln for ln in stack.executions("ping") if "Succeeded" in ln]
    assert approximate_count(stack.cs, "cmd-ping") == 0  # acknowledged only once answered


def test_host_sigterm_past_the_drain_bound_releases_the_message_for_another_instance(stack: Stack) -> None:
    host = stack.start_host(args=["--drain-timeout", "1"])
    message_id = _reply_in_flight(stack, delay=5)
    assert host.stop(timeout=30) == 0
    assert "Cancelled (host shutting down)" in stack.log("host.log")
    assert approximate_count(stack.cs, "cmd-ping") == 1  # released, not deleted, not lost
    stack.start_host(log="host2.log")
    stack.wait_reply(message_id)
    wait_until(lambda: approximate_count(stack.cs, "cmd-ping") == 0, 15, "the message to be deleted")
    wait_until(lambda: all(r.status is not None for r in stack.emulator.requests), 15, "held requests to finish")
    assert len(stack.replies_to(message_id)) == 1


def test_listener_sigterm_drains_its_buffer_before_exit(stack: Stack) -> None:
    # A drain long enough for Azurite's restart on a loaded machine; the default is 5 s.
    listener = stack.start_listener(env={"LISTENER_DRAIN_TIMEOUT": "30"})
    stack.azurite.stop()
    sent = [stack.emulator.send_message("!ping") for _ in range(2)]
    wait_until(lambda: "storage unreachable" in stack.log("listener.log"), 30, "the listener to buffer")
    assert listener.proc is not None
    listener.proc.send_signal(signal.SIGTERM)  # storage still down: the drain has to wait for it
    wait_until(lambda: "draining 2 buffered messages" in stack.log("listener.log"), 15, "the listener to drain")
    stack.azurite.start()  # same port, empty: the queue must be re-created by the enqueuer
    assert listener.stop(timeout=30) == 0
    texts = peek_texts(stack.cs, "cmd-ping")
    assert len(texts) == 2
    for message in sent:  # each buffered command is now an envelope on its queue
        assert any(f'"message":"{message["id"]}"' in text for text in texts), texts
    assert "still buffered" not in stack.log("listener.log")
