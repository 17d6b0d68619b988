"""Shards across processes: each command answered once, by the process that owns its guild's shard.

Real processes against the emulator (2 shards, guilds on both): two listeners owning
shard 0 and shard 1, then one listener owning both; a dropped shard is resumed while
``/readyz`` says 503; a shard count Discord refuses stops start-up with one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from localdev.azurite import Azurite, free_port
from localdev.discord_emulator import EmulatorThread
from localdev.stack import Child
from localdev.traces import load_traces
from shared.settings import PROJECT_ROOT
from tests.reliability.harness import Stack, running_stack, wait_until

SHARDS = {"shard_count": 2, "guild_count": 4, "max_concurrency": 2}


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(azurite, tmp_path_factory.mktemp("sharding"), emulator_kwargs=SHARDS) as s:
        s.start_host()
        yield s


def _listener(stack: Stack, name: str, health_port: int | None = None, **env: str) -> Child:
    extra = {"LOCAL_TRACE_FILE": str(stack.tmp / f"{name}.jsonl"), **env}
    if health_port is not None:
        extra["LISTENER_HEALTH_PORT"] = str(health_port)
    return stack.start_listener(log=f"{name}.log", env=extra)


def _command_spans(stack: Stack, name: str, message_id: str) -> list[dict[str, Any]]:
    path = stack.tmp / f"{name}.jsonl"
    spans = [s for t in (load_traces(path) if path.exists() else {}).values() for s in t]
    return [s for s in spans if s["name"] == "discord.command"
            and s["attributes"].get("discord.message.id") == message_id]


def _process_spans(stack: Stack, message_id: str) -> list[dict[str, Any]]:
    return [s for t in stack.traces().values() for s in t
            if s["name"].endswith(" process") and s["attributes"].get("discord.message.id") == message_id]


def _ping_every_guild(stack: Stack) -> dict[str, int]:
    """!ping in each guild, each answered exactly once; returns message id -> the guild's shard."""
    sent = {}
    for guild in stack.emulator.guilds:
        message = stack.emulator.send_message("!ping", guild_id=guild["id"])
        sent[message["id"]] = guild["shard"]
    for mid in sent:
        stack.wait_reply(mid)
    time.sleep(1.5)  # a second answer would come from the other process: give it the time to
    for mid in sent:
        assert len(stack.replies_to(mid)) == 1, f"{mid} answered {len(stack.replies_to(mid))} times"
    return sent


def _probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)
    except OSError:
        return 0, {}


def _probe_body(port: int, path: str, status: int) -> dict[str, Any] | None:
    got, body = _probe(port, path)
    return body if got == status else None


def test_two_processes_answer_each_command_once_by_the_owning_shard(stack: Stack) -> None:
    assert sorted(g["shard"] for g in stack.emulator.guilds) == [0, 0, 1, 1]
    health = free_port()
    listeners = [_listener(stack, "listener-0", DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS="0"),
                 _listener(stack, "listener-1", health, DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS="1")]
    shards = [p["shard"] for p in stack.emulator.identify_payloads[-2:]]
    assert sorted(map(tuple, shards)) == [(0, 2), (1, 2)]
    wait_until(lambda: _probe(health, "/readyz")[0] == 200, 20, "listener-1 ready")

    for mid, shard in _ping_every_guild(stack).items():
        mine = wait_until(partial(_command_spans, stack, f"listener-{shard}", mid), 15, "root span")
        assert [s["attributes"]["discord.shard.id"] for s in mine] == [str(shard)]
        assert _command_spans(stack, f"listener-{1 - shard}", mid) == []  # the other process never saw it
        process = wait_until(partial(_process_spans, stack, mid), 15, "function span")
        assert process[0]["attributes"]["discord.shard.id"] == str(shard)  # baggage crossed the queue

    # Shard 1 drops; the gateway takes 3 s to take it back: /readyz says 503 meanwhile, then 200.
    resumes = len(stack.emulator.resume_payloads)
    assert stack.emulator.drop_connection(4000, shard_id=1, hold_s=3.0)
    body = wait_until(partial(_probe_body, health, "/readyz", 503), 5, "/readyz 503")
    assert body["shards"]["1"]["state"] != "ready" and _probe(health, "/healthz")[0] == 200
    body = wait_until(partial(_probe_body, health, "/readyz", 200), 20, "/readyz 200")
    assert body["shards"]["1"]["state"] == "ready" and body["shards"]["1"]["guilds"] == 2
    assert len(stack.emulator.resume_payloads) == resumes + 1  # resumed, not re-identified
    guild = next(g for g in stack.emulator.guilds if g["shard"] == 1)
    sent = stack.emulator.send_message("!ping", guild_id=guild["id"])
    stack.wait_reply(sent["id"])
    for child in listeners:
        child.stop()


def test_one_process_owning_both_shards(stack: Stack) -> None:
    child = _listener(stack, "listener-both", DISCORD_SHARD_COUNT="2")
    try:
        for mid, shard in _ping_every_guild(stack).items():
            spans = wait_until(partial(_command_spans, stack, "listener-both", mid), 15, "root span")
            assert [s["attributes"]["discord.shard.id"] for s in spans] == [str(shard)]
    finally:
        child.stop()


def test_discord_refusing_the_shard_count_stops_with_one_line(azurite: Azurite, tmp_path: Path) -> None:
    with EmulatorThread(guild_count=3, sharding_threshold=2) as emu:
        env = Stack(azurite, emu, tmp_path).env(DISCORD_SHARD_COUNT="1")
        done = subprocess.run([sys.executable, "-m", "gateway_listener"], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("gateway_listener: DISCORD_SHARD_COUNT: Discord requires sharding"), done.stderr
    assert "Traceback" not in done.stderr
