"""Soak: N commands through emulator -> listener -> Azurite -> host, with the host SIGKILLed and
restarted at random moments and one Azurite restart; nothing lost, nothing doubled.

SOAK_COUNT (default 30) sets N; SOAK_SEED replays a run. Run locally with a large count:
``SOAK_COUNT=500 .venv/bin/pytest -m soak -s``. The counts are printed (``-s`` to see them).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localdev.azurite import Azurite
from shared.registry import COMMANDS, poison_queue_name
from tests.reliability.harness import (
    CREATE_MESSAGE,
    Stack,
    approximate_count,
    peek_texts,
    poison_documents,
    running_stack,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

COUNT = int(os.environ.get("SOAK_COUNT", "30"))
SEED = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 30))))
LEASE = ["--lease-seconds", "3"]
COMMAND_MIX = ["!ping"] * 6 + ["!help", "!source", "!roll 4", "!help roll"]
MALFORMED = [b"not json at all", b'{"v": 7}', b'{"v": 1, "kind": "message", "command": "ping"}']


@pytest.fixture
def stack(azurite: Azurite, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(azurite, tmp_path) as s:
        yield s


class Soak:
    def __init__(self, stack: Stack, rng: random.Random) -> None:
        self.stack, self.rng = stack, rng
        self.sent: list[dict[str, Any]] = []
        self.host = stack.start_host(args=LEASE, log="host-0.log")
        self.hosts = 1

    def send(self, n: int) -> None:
        for _ in range(n):
            self.sent.append(self.stack.emulator.send_message(self.rng.choice(COMMAND_MIX)))
            time.sleep(self.rng.uniform(0, 0.05))

    def kill_host_mid_reply(self) -> None:
        """Hold a few replies at Discord so the kill lands with work in flight, then SIGKILL and restart."""
        self.stack.emulator.inject_rest_fault(CREATE_MESSAGE, 0, count=2, delay=1.0)
        self.send(self.rng.randint(3, 6))
        time.sleep(self.rng.uniform(0.2, 1.5))
        self.host.kill()
        self.stack.emulator.clear_faults()
        self.host = self.stack.start_host(args=LEASE, log=f"host-{self.hosts}.log")
        self.hosts += 1

    def wait_all_answered(self, timeout: float) -> None:
        wait_until(lambda: all(self.stack.replies_to(m["id"]) for m in self.sent), timeout,
                   "a reply to every command", interval=0.5)


def test_soak_every_command_answered_once_with_one_complete_trace(stack: Stack) -> None:
    rng = random.Random(SEED)
    print(f"\nsoak: SOAK_COUNT={COUNT} SOAK_SEED={SEED}")
    soak = Soak(stack, rng)
    stack.start_listener()
    first = max(COUNT // 3, 1)
    soak.send(first // 2)
    soak.kill_host_mid_reply()
    soak.send(max(first - len(soak.sent), 0))
    soak.wait_all_answered(120)
    # Azurite is in memory: every message must be settled before it restarts. Answered is not
    # enough: a killed host's held reply may land while its message still waits out the lease.
    wait_until(lambda: all(approximate_count(stack.cs, s.queue) == 0 for s in COMMANDS.values()), 60,
               "every queue to be empty before the storage restart")
    stack.azurite.stop()
    soak.send(3)  # the listener buffers these through the outage
    stack.azurite.start()
    forced_kill_at = len(soak.sent) + (COUNT - len(soak.sent)) // 2
    while len(soak.sent) < COUNT:
        soak.send(min(rng.randint(3, 8), COUNT - len(soak.sent)))
        if len(soak.sent) >= forced_kill_at or rng.random() < 0.2:  # at least one more kill, maybe others
            forced_kill_at = 1 << 30
            soak.kill_host_mid_reply()
    for body in MALFORMED:
        stack.enqueue_raw("ping", body)
    soak.wait_all_answered(180)
    wait_until(lambda: len(poison_documents(stack.cs, "ping")) >= len(MALFORMED), 60, "the malformed to be parked")

    ids = {m["id"]: m["content"] for m in soak.sent}
    replies = Counter(ref for m in stack.emulator.bot_messages
                      if (ref := (m.get("message_reference") or {}).get("message_id")) in ids)
    deadline = time.monotonic() + 30  # the listener's batch export runs every 500 ms
    while (missing := _incomplete(stack, ids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not missing, f"seed {SEED}: commands without a complete trace:\n" + "\n".join(missing)
    traces = _traces_by_message(stack, ids)
    roots = Counter(mid for mid, spans in traces.items() for s in spans if s["name"] == "discord.command")
    process = [s for spans in traces.values() for s in spans if s["name"].endswith(" process")]
    redeliveries = [s for s in process if s["attributes"]["messaging.message.delivery_count"] > 1]
    poison = {q: peek_texts(stack.cs, poison_queue_name(spec.queue)) for q, spec in COMMANDS.items()}
    docs = poison_documents(stack.cs, "ping")

    print(f"\nsoak (seed {SEED}): commands={len(ids)} replies={sum(replies.values())} "
          f"duplicates_suppressed_by_nonce={stack.emulator.nonce_duplicates} "
          f"redeliveries_seen={len(redeliveries)} host_kills={soak.hosts - 1} "
          f"poison={sum(len(v) for v in poison.values())} (injected {len(MALFORMED)})")
    assert len(ids) >= COUNT and soak.hosts >= 3
    assert replies == Counter(dict.fromkeys(ids, 1)), f"seed {SEED}: {replies.most_common(3)}"
    assert sorted(d["body"].encode() for d in docs) == sorted(MALFORMED)
    assert {q: len(v) for q, v in poison.items() if v} == {"ping": len(MALFORMED)}
    assert roots == Counter(dict.fromkeys(ids, 1))  # one trace per command, none started twice


def _traces_by_message(stack: Stack, ids: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Discord message id -> the spans of the trace(s) rooted at its ``discord.command``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for spans in stack.traces().values():
        roots = [s for s in spans if s["name"] == "discord.command"]
        if len(roots) == 1 and (mid := roots[0]["attributes"].get("discord.message.id")) in ids:
            found.setdefault(mid, []).extend(spans)
    return found


def _incomplete(stack: Stack, ids: dict[str, str]) -> list[str]:
    """Commands whose trace lacks a successful ``cmd-<command> process`` span, with what it has."""
    found = _traces_by_message(stack, ids)
    return [f"{mid} {ids[mid]}: {sorted((s['name'], s['status']['code']) for s in found.get(mid, []))}"
            for mid in ids if not any(s["name"].endswith(" process") and s["status"]["code"] != "ERROR"
                                      for s in found.get(mid, []))]
