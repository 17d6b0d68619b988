"""The instances of one scaling group: ``localdev.functions_host --functions ...`` processes.

Each instance gets its own ``WEBSITE_INSTANCE_ID`` (the App Service setting Azure sets per
instance), which telemetry turns into ``service.instance.id`` and ``faas.instance``, so
every span says which instance ran it. Removing an instance is a SIGTERM: it stops
receiving, lets in-flight invocations finish (bounded by its drain timeout) and releases
the rest to the queue. Stops run in threads so a draining instance never holds up decisions.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localdev.scale_controller.groups import ScaleGroup
from localdev.stack import Child, child_env

INSTANCE_ID_SETTING = "WEBSITE_INSTANCE_ID"
# On Azure every instance is its own machine; here they share the cores with the listener and
# Azurite. A lower CPU priority keeps a burst of cold starts from starving the front door.
INSTANCE_NICE = 10
CRASH_LOOP_S = 10.0  # an instance dying younger than this is crashing at start-up
MAX_HOLD_S = 60.0


@dataclass(frozen=True)
class InstanceSpec:
    """How to start an instance: the host's arguments, environment and where its logs go."""

    host_args: Sequence[str]  # e.g. --host-json PATH, --app MOD:ATTR (``--functions`` is added per group)
    env: Mapping[str, str]
    log_dir: Path | None
    stop_timeout_s: float  # SIGKILL after this: above the host's drain timeout
    all_functions: bool = False  # single-host mode: no --functions, the host runs the whole app


class Instance:
    def __init__(self, instance_id: str, child: Child) -> None:
        self.id = instance_id
        self.child = child
        self.started = time.monotonic()


class InstancePool:
    def __init__(self, group: ScaleGroup, spec: InstanceSpec) -> None:
        self.group = group
        self._spec = spec
        self._seq = 0
        self.instances: list[Instance] = []
        self._stopping: set[asyncio.Task[int | None]] = set()
        self._crash_streak = 0
        self.hold_until = 0.0  # monotonic: no instance is started before this (crash-loop backoff)

    def __len__(self) -> int:
        return len(self.instances)

    def _new_id(self) -> str:
        self._seq += 1
        return f"{self.group.label}-{self._seq}-{secrets.token_hex(2)}"

    def start(self, count: int) -> list[Instance]:
        started = []
        for _ in range(count):
            instance_id = self._new_id()
            args = list(self._spec.host_args)
            if not self._spec.all_functions:
                args += ["--functions", ",".join(self.group.functions)]
            log = self._spec.log_dir / f"{instance_id}.log" if self._spec.log_dir else None
            env = child_env({INSTANCE_ID_SETTING: instance_id}, self._spec.env)
            child = Child(instance_id, "localdev.functions_host", env, log, args=args).start()
            if child.proc is not None:
                os.setpriority(os.PRIO_PROCESS, child.proc.pid, INSTANCE_NICE)
            started.append(Instance(instance_id, child))
        self.instances.extend(started)
        return started

    def stop(self, count: int) -> list[Instance]:
        """Remove the ``count`` newest instances (SIGTERM now; drained in the background)."""
        victims = self.instances[len(self.instances) - count:] if count > 0 else []
        del self.instances[len(self.instances) - len(victims):]
        for instance in victims:
            self._stop_in_background(instance)
        return victims

    def _stop_in_background(self, instance: Instance) -> None:
        task = asyncio.create_task(asyncio.to_thread(instance.child.stop, self._spec.stop_timeout_s))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def reap(self, now: float) -> list[tuple[Instance, int | None]]:
        """Instances that exited without being asked to (crashed or killed), with their exit codes.

        One that fails (exits non-zero by itself) within :data:`CRASH_LOOP_S` of starting holds the
        group's next start back, doubling up to :data:`MAX_HOLD_S`, so an instance that cannot start
        is not respawned every tick. One killed by a signal is replaced at once."""
        dead = [(i, i.child.proc.returncode if i.child.proc else None) for i in self.instances if not i.child.running]
        for instance, code in dead:
            self.instances.remove(instance)
            if code is not None and code > 0 and now - instance.started < CRASH_LOOP_S:  # not killed: failed
                self._crash_streak += 1
                self.hold_until = now + min(2.0**self._crash_streak, MAX_HOLD_S)
            else:
                self._crash_streak = 0
        return dead

    async def stop_all(self) -> None:
        """Every instance at once (SIGTERM to all, then wait), and any still draining."""
        self.stop(len(self.instances))
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

