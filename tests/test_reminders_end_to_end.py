"""!remindme and !mc through the real chain: emulator -> listener -> queue -> local functions host.

The host runs ``reminders_due`` (a plain, non-command queue trigger) beside the commands; storage
is Azurite with its table service on disk, so the restart case stops every process, storage included.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from function_runtime.reminders import ReminderStore
from localdev.azurite import Azurite
from localdev.discord_emulator import EmulatorThread
from localdev.rcon_server import RconStandIn
from localdev.stack import Child, child_env, wait_for_line
from shared.settings import Secret, StorageSettings

ALL_ON = Path(__file__).parent / "data" / "flags_all_on.json"
READY = "Functions host ready"


@dataclass
class Stack:
    emulator: EmulatorThread
    azurite: Azurite
    store: ReminderStore
    env: dict[str, str]
    tmp: Path
    children: list[Child]
    minecraft: RconStandIn

    def start_app(self) -> None:
        log = self.tmp / "host.log"
        log.write_bytes(b"")
        host = Child("functions_host", "localdev.functions_host", self.env, log).start()
        listener = Child("listener", "gateway_listener", self.env, self.tmp / "listener.log").start()
        self.children = [host, listener]
        assert wait_for_line(log, READY, 60, host), log.read_text()

    def kill_app(self) -> None:
        for child in self.children:
            child.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("reminders-e2e")
    with Azurite(tables=True, location=tmp / "storage") as azurite, EmulatorThread() as emulator, \
            RconStandIn(password="e2e-pw") as minecraft:
        env = child_env({
            "AzureWebJobsStorage": azurite.connection_string, "DISCORD_TOKEN": emulator.token,
            "DISCORD_API_BASE_URL": emulator.api_url, "DISCORD_GATEWAY_URL": emulator.gateway_url,
            "LOCAL_TRACE_FILE": str(tmp / "traces.jsonl"), "FEATURE_FLAGS_FILE": str(ALL_ON),
            "FUNCTIONS_HTTP_PORT": "0",  # any free port: a fixed 7071 collides with any other host running
            **minecraft.settings(),
        })
        store = ReminderStore(StorageSettings(connection_string=Secret(azurite.connection_string)))
        s = Stack(emulator, azurite, store, env, tmp, [], minecraft)
        try:  # from the first start: a host that never gets ready must not leave its listener running
            s.start_app()
            emulator.wait_until_identified(timeout=60)
            yield s
        finally:
            for child in s.children:
                child.stop()


def _say(stack: Stack, content: str) -> tuple[dict, dict]:
    sent = stack.emulator.send_message(content)
    return sent, stack.emulator.wait_for_bot_message(channel_id=sent["channel_id"], after=sent["id"], timeout=30)


def _due_in(stack: Stack, guild: str, rid: str, seconds: float) -> datetime:
    """Tests cannot wait a minute: bring the reminder forward and arm it for the new time."""
    due = datetime.now(UTC) + timedelta(seconds=seconds)
    stack.store.table().update_entity({"PartitionKey": guild, "RowKey": rid, "due": due})
    reminder = stack.store.get(guild, rid)
    assert reminder is not None
    stack.store.arm(reminder)
    return due


def _reminder_id(reply: dict) -> str:
    return reply["content"].split("`")[1]


def test_a_reminder_fires_on_time_through_the_host(stack: Stack) -> None:
    sent, reply = _say(stack, "!remindme stretch your legs 1m")
    rid = _reminder_id(reply)
    due = _due_in(stack, sent["guild_id"], rid, 3)
    fired = stack.emulator.wait_for_bot_message(channel_id=sent["channel_id"], after=reply["id"], timeout=20)
    lateness = datetime.now(UTC) - due
    assert fired["content"] == f"Hey <@{sent['author']['id']}>, remember stretch your legs"
    assert lateness < timedelta(seconds=4), lateness
    print(f"reminder lateness (received by the emulator): {lateness.total_seconds() * 1000:.0f} ms")
    assert stack.emulator.invalid_requests == []


def test_restart_of_everything_loses_no_reminder_and_fires_it_once(stack: Stack) -> None:
    sent, reply = _say(stack, "!remindme survive 1m")
    rid = _reminder_id(reply)
    _due_in(stack, sent["guild_id"], rid, 2)
    stack.kill_app()  # SIGKILL the host and the listener
    stack.azurite.stop()
    time.sleep(4)  # it falls due while everything is down
    stack.azurite.start()
    stack.start_app()
    fired = stack.emulator.wait_for_bot_message(channel_id=sent["channel_id"], after=reply["id"], timeout=30)
    assert fired["content"].startswith(f"Hey <@{sent['author']['id']}>, remember survive")
    time.sleep(2)
    again = [m for m in stack.emulator.bot_messages if "remember survive" in str(m.get("content"))]
    assert len(again) == 1


def test_mc_whitelist_through_the_bot(stack: Stack) -> None:
    _, reply = _say(stack, "!mc whitelist add Steve")
    assert reply["content"] == "Added Steve to the whitelist"
    assert stack.minecraft.whitelist == ["Steve"]
