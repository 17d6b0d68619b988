"""The decision loop: measure each group's queues, decide, start or stop instances, record why.

Every ``interval_s`` the controller reads each group's queue length, replaces instances
that died (after a back-off when they die at start-up), and applies
:func:`~localdev.scale_controller.policy.decide`. A change is logged
(group, queue length, instances before -> after, reason) and recorded as a
``scale.decision`` span in the same sink as the bot's traces, so it can be queried next to
the commands it affected. The current counts go to a small JSON status file for the prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from opentelemetry import trace

from localdev.scale_controller.groups import ScaleGroup
from localdev.scale_controller.instances import InstancePool, InstanceSpec
from localdev.scale_controller.policy import Decision, Policy, decide
from shared.queues import async_service_client
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

READY_PREFIX = "Scale controller ready:"
DECISION_SPAN = "scale.decision"


class ScaleController:
    def __init__(
        self,
        groups: Sequence[ScaleGroup],
        policies: Mapping[str, Policy],
        spec: InstanceSpec,
        storage: StorageSettings,
        *,
        interval_s: float = 1.0,
        status_file: Path | None = None,
    ) -> None:
        self.pools = [InstancePool(g, spec) for g in groups]
        self.policies = policies
        self._storage = storage
        self.interval_s = interval_s
        self._status_file = status_file
        self._last_busy: dict[str, float] = {}
        self._lengths: dict[str, int | None] = {}
        self._storage_down = False

    async def run(self, stop: asyncio.Event, ready_note: str = "") -> None:
        """Decide every ``interval_s`` until ``stop`` is set, then stop every instance.
        Logs :data:`READY_PREFIX` (plus ``ready_note``) once the trigger queues exist."""
        service = async_service_client(self._storage)
        queues = {p.group.name: [service.get_queue_client(q) for q in p.group.queues] for p in self.pools}
        now = time.monotonic()
        self._last_busy = {p.group.name: now for p in self.pools}
        try:
            await self._create_missing([c for clients in queues.values() for c in clients])
            _log.info("%s %s", READY_PREFIX, ready_note or ", ".join(p.group.label for p in self.pools))
            while not stop.is_set():
                await self.tick(queues)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
        finally:
            await asyncio.gather(*(p.stop_all() for p in self.pools))
            self._write_status()
            for clients in queues.values():
                for client in clients:
                    await client.close()
            await service.close()

    @staticmethod
    async def _create_missing(clients: Sequence[QueueClient]) -> None:
        """Trigger queues are made by deployment; with no instance running yet, nobody else makes them
        locally. Bounded: storage being down must not hold start-up (the loop copes with it)."""

        async def create(client: QueueClient) -> None:
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue()

        results = await asyncio.gather(*(asyncio.wait_for(create(c), 15) for c in clients), return_exceptions=True)
        failed = [c.queue_name for c, r in zip(clients, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            _log.warning("could not create queue(s) %s yet", ", ".join(failed))

    async def tick(self, queues: Mapping[str, Sequence[QueueClient]]) -> None:
        lengths = await asyncio.gather(*(self._length(queues[p.group.name]) for p in self.pools))
        now = time.monotonic()
        for pool, length in zip(self.pools, lengths, strict=True):
            name = pool.group.name
            self._lengths[name] = length
            for dead, code in pool.reap(now):
                self._replace(pool, length, dead.id, code, now)
            if length:
                self._last_busy[name] = now
            decision = decide(self.policies[name], len(pool), length, now - self._last_busy[name])
            if decision.after > decision.before and now < pool.hold_until:
                continue  # crashing at start-up: try again once the hold has passed
            if decision.changed:
                if decision.after > decision.before:
                    changed = pool.start(decision.after - decision.before)
                else:
                    changed = pool.stop(decision.before - decision.after)
                self._record(pool, length, decision, [i.id for i in changed])
        self._write_status()

    def _replace(self, pool: InstancePool, length: int | None, dead: str, code: int | None, now: float) -> None:
        before = len(pool) + 1
        if now < pool.hold_until:
            reason = f"instance {dead} exited (code {code}) soon after starting: next start in " \
                     f"{pool.hold_until - now:.0f} s"
            self._record(pool, length, Decision(before, len(pool), reason))
            return
        new = pool.start(1)[0]
        self._record(pool, length, Decision(before, len(pool), f"instance {dead} exited (code {code}): replaced"),
                     [new.id])

    async def _length(self, clients: Sequence[QueueClient]) -> int | None:
        """Messages waiting or in flight across the group's queues; None when unknown."""
        if not clients:
            return None
        total = 0
        for client in clients:
            try:
                props = await client.get_queue_properties()
            except ResourceNotFoundError:
                continue  # not created yet: nothing waiting
            except (AzureError, OSError) as exc:
                if not self._storage_down:
                    _log.warning("cannot read queue lengths (%s); keeping instances as they are", type(exc).__name__)
                self._storage_down = True
                return None
            total += int(props.approximate_message_count or 0)
        self._storage_down = False
        return total

    def _record(self, pool: InstancePool, length: int | None, decision: Decision, ids: Sequence[str] = ()) -> None:
        group = pool.group
        _log.info(
            "scale %s: queue length %s, instances %d -> %d (%s)%s",
            group.label, "?" if length is None else length, decision.before, decision.after, decision.reason,
            f" [{', '.join(ids)}]" if ids else "",
        )  # fmt: skip
        attributes: dict[str, str | int | Sequence[str]] = {
            "app.scale.group": group.label,
            "app.scale.functions": list(group.functions),
            "app.scale.instances.before": decision.before,
            "app.scale.instances.after": decision.after,
            "app.scale.reason": decision.reason,
            "app.scale.instance_ids": list(ids),
        }
        if length is not None:
            attributes["app.scale.queue_length"] = length
        if len(group.queues) == 1:
            attributes["messaging.destination.name"] = group.queues[0]
        _tracer.start_span(DECISION_SPAN, attributes=attributes).end()

    def status(self) -> dict[str, object]:
        return {
            "updated_at": time.time(),
            "groups": [
                {"group": p.group.label, "functions": list(p.group.functions), "instances": len(p),
                 "instance_ids": [i.id for i in p.instances], "queue_length": self._lengths.get(p.group.name)}
                for p in self.pools
            ],
        }

    def _write_status(self) -> None:
        if self._status_file is None:
            return
        tmp = self._status_file.with_name(self._status_file.name + ".tmp")
        tmp.write_text(json.dumps(self.status()), encoding="utf-8")
        os.replace(tmp, self._status_file)  # readers never see half a file


def read_status(path: Path) -> dict[str, int] | None:
    """Instances per group from a status file (None when missing or unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {str(g["group"]): int(g["instances"]) for g in doc["groups"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
