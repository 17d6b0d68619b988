"""What the listener knows about its shards: when each may IDENTIFY, and how each is doing.

discord.py's AutoShardedClient connects the owned shards one after another and calls
``before_identify_hook`` before every IDENTIFY (first ones and re-identifies alike);
:class:`IdentifyGate` makes that wait follow Discord's ``session_start_limit``: one
IDENTIFY per bucket (``shard_id % max_concurrency``) every 5 seconds. The gate is per
process: processes that own different shard ranges share Discord's buckets without
talking to each other, so start them a few seconds apart when max_concurrency is 1.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum

IDENTIFY_INTERVAL_S = 5.0


class IdentifyGate:
    def __init__(
        self,
        max_concurrency: int = 1,
        *,
        interval_s: float = IDENTIFY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self._interval = interval_s
        self._clock, self._sleep = clock, sleep
        self._last: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def wait(self, shard_id: int) -> None:
        """Return when shard ``shard_id`` may IDENTIFY (and count it as identifying now)."""
        bucket = shard_id % self.max_concurrency
        async with self._locks.setdefault(bucket, asyncio.Lock()):
            last = self._last.get(bucket)
            if last is not None and (delay := last + self._interval - self._clock()) > 0:
                await self._sleep(delay)
            self._last[bucket] = self._clock()


class ShardState(Enum):
    WAITING = "waiting"  # not connected yet
    CONNECTING = "connecting"  # READY received, guilds still arriving
    READY = "ready"
    DISCONNECTED = "disconnected"  # resuming or re-identifying


@dataclass(frozen=True)
class ShardHealth:
    state: ShardState
    latency_s: float | None
    guilds: int

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state.value, "latency_ms": None if self.latency_s is None else
                round(self.latency_s * 1000, 1), "guilds": self.guilds}


class ShardTracker:
    """Each owned shard's state, from discord.py's shard events (called on the client's loop)."""

    def __init__(self, shard_ids: Iterable[int] = ()) -> None:
        self.states: dict[int, ShardState] = {}
        self.expect(shard_ids)

    def expect(self, shard_ids: Iterable[int]) -> None:
        self.states = {sid: self.states.get(sid, ShardState.WAITING) for sid in shard_ids}

    def mark(self, shard_id: int, state: ShardState) -> None:
        if shard_id in self.states:
            self.states[shard_id] = state

    def snapshot(self, latencies: dict[int, float], guild_shards: Iterable[int],
                 open_shards: set[int]) -> dict[int, ShardHealth]:
        """Per shard: its state (READY only while its socket is open), latency and guild count."""
        guilds = Counter(guild_shards)
        out: dict[int, ShardHealth] = {}
        for sid, state in self.states.items():
            if state is ShardState.READY and sid not in open_shards:
                state = ShardState.DISCONNECTED
            latency = latencies.get(sid)
            out[sid] = ShardHealth(state, latency if latency is not None and math.isfinite(latency) else None,
                                   guilds[sid])
        return out
