"""What the listener knows about its shards: when each may IDENTIFY, and how each is doing.

discord.py's AutoShardedClient connects the owned shards one after another and calls
``before_identify_hook`` before every IDENTIFY (first ones and re-identifies alike);
:class:`IdentifyGate` makes that wait follow Discord's ``session_start_limit``: one
IDENTIFY per bucket (``shard_id % max_concurrency``) every 5 seconds. With ``REDIS_URL`` the
gate is shared by every listener process (a Lua script reserves each bucket's next start on
Redis' clock: shared/discord_limits.py); without it, or while Redis is away, it is per process,
and processes owning different shard ranges should start a few seconds apart.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from shared.discord_limits import SharedLimits

IDENTIFY_INTERVAL_S = 5.0
SHARED_MARGIN_S = 0.5  # across processes: room for one process's connect being slower than another's


class IdentifyGate:
    def __init__(
        self,
        max_concurrency: int = 1,
        *,
        interval_s: float = IDENTIFY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        shared: SharedLimits | None = None,
    ) -> None:
        self.shared = shared
        self.max_concurrency = max(1, max_concurrency)
        self._interval = interval_s
        self._clock, self._sleep = clock, sleep
        self._last: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def wait(self, shard_id: int) -> None:
        """Return when shard ``shard_id`` may IDENTIFY (and count it as identifying now)."""
        bucket = shard_id % self.max_concurrency
        async with self._locks.setdefault(bucket, asyncio.Lock()):
            if self.shared is not None:
                wait = await asyncio.to_thread(self.shared.identify_wait, shard_id, self.max_concurrency,
                                               self._interval + SHARED_MARGIN_S)
                if wait is not None:  # None: Redis is away, pace this process alone
                    if wait > 0:
                        await self._sleep(wait)
                    self._last[bucket] = self._clock()
                    return
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
