"""One scaling decision for one group: target-based scaling for queues, scale-in when idle.

Target-based scaling (the Functions scale controller's model for queue triggers):
``desired instances = ceil(queue length / target executions per instance)``, where the
target for Storage queues is host.json ``extensions.queues.batchSize``; at most four
instances are added per decision. The queue length is ``approximate_message_count``, which
counts messages being processed (leased, invisible) as well as waiting ones, so a length
of zero means every instance of the group is idle.

Scale-in (simplified): while any message is waiting or in flight the group keeps its
instances (stopping a busy one only moves its work elsewhere); once the queue is empty the
instances beyond one are removed, and the last one after ``idle_timeout_s`` without
messages. Always-ready instances are never removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_STEP = 4  # target-based scaling adds at most four instances at a time
# Flex Consumption publishes no fixed idle period; the Functions team describes an idle app
# being back at zero after about 30 s (Azure/azure-functions-host#10706).
DEFAULT_IDLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Policy:
    target_per_instance: int  # host.json batchSize
    max_instances: int = 4
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    always_ready: int = 0
    max_step: int = MAX_STEP


@dataclass(frozen=True)
class Decision:
    before: int
    after: int
    reason: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def decide(policy: Policy, current: int, queue_length: int | None, idle_for_s: float) -> Decision:
    """``queue_length`` None: not measurable now (storage down, or not a queue group)."""
    floor = min(policy.always_ready, policy.max_instances)
    if current < floor:
        return Decision(current, floor, f"always ready: {floor} instance(s)")
    if queue_length is None:
        return Decision(current, current, "queue length unknown: keep instances")
    if queue_length > 0:
        wanted = min(policy.max_instances, max(1, math.ceil(queue_length / policy.target_per_instance)))
        if wanted > current:
            after = min(wanted, current + policy.max_step)
            return Decision(current, after, f"target-based: {queue_length} message(s) / batchSize "
                                            f"{policy.target_per_instance} -> {wanted} instance(s)")
        return Decision(current, current, "busy: keep instances")
    if idle_for_s >= policy.idle_timeout_s and current > floor:
        what = "scale to zero" if floor == 0 else f"scale in to {floor} always-ready"
        return Decision(current, floor, f"{what}: no messages for {idle_for_s:.0f} s")
    keep = max(1, floor)
    if current > keep:
        return Decision(current, keep, "queue empty: idle instances removed")
    return Decision(current, current, "idle")
