"""IdentifyGate follows session_start_limit; ShardTracker reports what the probes show."""

from __future__ import annotations

import asyncio

from gateway_listener.shards import IdentifyGate, ShardState, ShardTracker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


async def _identify_all(gate: IdentifyGate, clock: FakeClock, shard_ids: list[int]) -> list[float]:
    times = []
    for sid in shard_ids:  # discord.py identifies its shards one after another
        await gate.wait(sid)
        times.append(clock.now - 100.0)
    return times


async def test_max_concurrency_1_spaces_every_identify_by_5_seconds() -> None:
    clock = FakeClock()
    gate = IdentifyGate(1, clock=clock, sleep=clock.sleep)
    assert await _identify_all(gate, clock, [0, 1, 2, 3]) == [0.0, 5.0, 10.0, 15.0]


async def test_max_concurrency_buckets_identify_together() -> None:
    clock = FakeClock()
    gate = IdentifyGate(2, clock=clock, sleep=clock.sleep)
    # Shards 0 and 1 are in different buckets: no wait; 2 shares 0's bucket, 3 shares 1's.
    assert await _identify_all(gate, clock, [0, 1, 2, 3]) == [0.0, 0.0, 5.0, 5.0]


async def test_concurrent_reidentifies_in_one_bucket_queue_up() -> None:
    clock = FakeClock()
    gate = IdentifyGate(1, clock=clock, sleep=clock.sleep)
    await asyncio.gather(gate.wait(0), gate.wait(1), gate.wait(2))
    assert clock.slept == [5.0, 5.0]


def test_tracker_reports_ready_only_with_an_open_socket() -> None:
    tracker = ShardTracker([0, 1])
    tracker.mark(0, ShardState.READY)
    tracker.mark(1, ShardState.READY)
    tracker.mark(5, ShardState.READY)  # not owned: ignored
    snap = tracker.snapshot({0: 0.0421, 1: float("inf")}, [0, 0, 1, 3], open_shards={0})
    assert set(snap) == {0, 1}
    assert snap[0].as_dict() == {"state": "ready", "latency_ms": 42.1, "guilds": 2}
    assert snap[1].as_dict() == {"state": "disconnected", "latency_ms": None, "guilds": 1}
