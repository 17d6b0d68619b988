"""The scale controller with real Azurite, real functions-host processes and the Discord emulator.

Replies are held by the emulator (a delay on the create-message route) so a ping is a
"slow" command without any external API. Decision intervals, idle timeouts and leases
are shortened so each test takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from localdev.azurite import Azurite
from localdev.scale_controller import DECISION_SPAN, READY_PREFIX, ScaleGroup, read_status
from localdev.scale_controller.instances import InstancePool, InstanceSpec
from localdev.stack import Child
from tests.reliability.harness import CREATE_MESSAGE, Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

# http=0: these tests are about queue groups; the app's interactions endpoint (the http group) idles.
FAST = ["--interval", "0.2", "--drain-timeout", "3", "--always-ready", "http=0"]


@pytest.fixture
def stack(azurite: Azurite, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(azurite, tmp_path) as s:
        yield s


class Controller:
    def __init__(self, stack: Stack, args: Sequence[str], *, bare: bool = False, **host_json: Any) -> None:
        """``bare``: none of FAST's options (no ``--always-ready``): Flex Consumption's defaults."""
        self.stack = stack
        self.status_file = stack.tmp / "scale.json"
        self.log_dir = stack.tmp / "instances"
        argv = ["--host-json", str(stack.host_json(**host_json)), "--status-file", str(self.status_file),
                "--log-dir", str(self.log_dir), *([] if bare else FAST), *args]
        self.child = Child("scale_controller", "localdev.scale_controller", stack.env(), stack.tmp / "controller.log",
                           args=argv).start()
        stack.children.append(self.child)
        wait_until(lambda: READY_PREFIX in self.log or not self.child.running, 60, "controller ready")
        assert self.child.running, self.log

    @property
    def log(self) -> str:
        return self.stack.log("controller.log")

    def instances(self, group: str) -> int:
        return (read_status(self.status_file) or {}).get(group, -1)

    def instance_pids(self) -> dict[str, int]:
        """Instance id -> pid, from /proc (children of the controller with WEBSITE_INSTANCE_ID)."""
        pids = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) != self.child.proc.pid:
                continue
            for item in env:
                if item.startswith(b"WEBSITE_INSTANCE_ID="):
                    pids[item.split(b"=", 1)[1].decode()] = int(entry.name)
        return pids

    def decisions(self, group: str) -> list[dict[str, Any]]:
        return [s["attributes"] for spans in self.stack.traces().values() for s in spans
                if s["name"] == DECISION_SPAN and s["attributes"].get("app.scale.group") == group]


def test_a_burst_scales_out_to_several_instances_and_every_message_is_answered_once(stack: Stack) -> None:
    stack.emulator.inject_rest_fault(CREATE_MESSAGE, 0, count=1000, delay=0.4)
    controller = Controller(stack, ["--max-instances", "3", "--idle-timeout", "30"],
                            batchSize=2, newBatchThreshold=0)
    ids = [stack.enqueue(stack.envelope("!ping")) for _ in range(24)]
    wait_until(lambda: all(stack.replies_to(i) for i in ids), 60, "every ping answered")
    assert all(len(stack.replies_to(i)) == 1 for i in ids)
    wait_until(lambda: len(stack.process_spans("ping")) >= len(ids), 15, "process spans")
    instances = {s["service.instance.id"] for s in stack.process_spans("ping")}
    assert len(instances) > 1, instances
    assert all(i.startswith("ping-") for i in instances)
    assert {s["attributes"].get("faas.instance") for s in stack.process_spans("ping")} <= instances | {None}
    wait_until(lambda: controller.decisions("ping"), 10, "decision spans")
    first = controller.decisions("ping")[0]
    assert first["app.scale.instances.before"] == 0
    assert 1 <= first["app.scale.instances.after"] <= 3  # batchSize 2 -> at most +4, capped at max 3
    assert "target-based" in first["app.scale.reason"]
    assert "scale ping: queue length" in controller.log
    # Other functions never started: each scales on its own.
    assert controller.instances("catfact") == 0


def test_scales_to_zero_after_the_idle_timeout_and_back_with_a_cold_start(stack: Stack) -> None:
    controller = Controller(stack, ["--idle-timeout", "1"])
    first = stack.enqueue(stack.envelope("!ping"))
    stack.wait_reply(first)
    wait_until(lambda: controller.instances("ping") == 0, 20, "ping to scale to zero")
    wait_until(lambda: not controller.instance_pids(), 20, "the instance process to exit")
    wait_until(lambda: any("scale to zero" in d["app.scale.reason"] for d in controller.decisions("ping")), 10,
               "the scale-to-zero decision span")

    second = stack.enqueue(stack.envelope("!ping"))
    stack.wait_reply(second)

    def process_of(message_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        for spans in stack.traces().values():
            process = [s for s in spans if s["name"] == "cmd-ping process"
                       and s["attributes"].get("discord.message.id") == message_id]
            if process:
                return process[0], spans
        return None

    found = wait_until(lambda: process_of(second), 15, "the second ping's trace")
    assert found is not None
    process, spans = found
    assert any(s["name"] == "cold_start" for s in spans), [s["name"] for s in spans]
    earlier = process_of(first)
    assert earlier is not None
    first_process = earlier[0]
    assert process["service.instance.id"] != first_process["service.instance.id"]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_bare_controller_leaves_nothing_running_after_its_idle_timeout(stack: Stack) -> None:
    # No --always-ready at all: every group, the http group included, scales to zero when idle.
    controller = Controller(stack, ["--idle-timeout", "1", "--interval", "0.2"], bare=True)
    message = stack.enqueue(stack.envelope("!ping"))
    stack.wait_reply(message)
    workers = [w for host in controller.instance_pids().values() for w in _children(host)]
    assert workers, "each instance runs its app in a worker process"
    wait_until(lambda: not controller.instance_pids(), 30, "every instance to stop")
    status = json.loads(controller.status_file.read_text())
    assert {g["group"]: g["instances"] for g in status["groups"] if g["instances"]} == {}
    assert "http" in {g["group"] for g in status["groups"]}
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in _state(w)]


def test_a_killed_instance_is_replaced_and_its_messages_are_not_lost(stack: Stack) -> None:
    stack.emulator.inject_rest_fault(CREATE_MESSAGE, 0, count=3, delay=3)
    controller = Controller(stack, ["--lease-seconds", "2", "--idle-timeout", "30"])
    ids = [stack.enqueue(stack.envelope("!ping")) for _ in range(3)]
    wait_until(lambda: len([r for r in stack.emulator.requests if r.fault]) >= 1, 30, "a reply held in flight")
    (victim, pid), = controller.instance_pids().items()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: any(victim in d["app.scale.reason"] and "replaced" in d["app.scale.reason"]
                           for d in controller.decisions("ping")), 20, "the replacement decision")
    wait_until(lambda: all(stack.replies_to(i) for i in ids), 40, "every ping answered")
    assert all(len(stack.replies_to(i)) == 1 for i in ids)  # redeliveries reuse the nonce
    assert victim not in controller.instance_pids()


def test_sigterm_stops_every_instance_and_leaves_nothing_running(stack: Stack) -> None:
    controller = Controller(stack, ["--always-ready", "ping=1,help=2,http=0"])
    wait_until(lambda: len(controller.instance_pids()) == 3, 30, "three always-ready instances")
    pids = list(controller.instance_pids().values())
    wait_until(lambda: sum(1 for p in stack.tmp.joinpath("instances").glob("*.log")
                           if "Functions host ready" in p.read_text()) == 3, 60, "instances ready")
    code = controller.child.stop(timeout=20)
    assert code == 0, controller.log
    assert not [p for p in pids if Path(f"/proc/{p}").exists() and "zombie" not in _state(p)]
    assert "Scale controller stopped" in controller.log
    status = json.loads(controller.status_file.read_text())
    assert all(g["instances"] == 0 for g in status["groups"])


def _state(pid: int) -> str:
    try:
        return "zombie" if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z" else "alive"
    except OSError:
        return "gone"



def test_an_instance_that_cannot_start_holds_its_group_back_longer_each_time(azurite: Azurite, tmp_path: Path) -> None:
    group = ScaleGroup("function:ping", ("ping",), ("cmd-ping",))
    bad = tmp_path / "host.json"
    bad.write_text("{not json")
    env = {**os.environ, "AzureWebJobsStorage": azurite.connection_string}
    spec = InstanceSpec(["--host-json", str(bad)], env, tmp_path, stop_timeout_s=5)  # exits 2 at start-up
    pool = InstancePool(group, spec)
    holds = []
    for _ in range(2):
        [instance] = pool.start(1)
        assert instance.child.proc is not None
        instance.child.proc.wait(30)
        now = time.monotonic()
        [(dead, code)] = pool.reap(now)
        assert dead is instance and code == 2 and len(pool) == 0
        holds.append(pool.hold_until - now)
    assert holds == [2.0, 4.0]
    assert "cannot start: host.json: not valid JSON" in (tmp_path / f"{instance.id}.log").read_text()
