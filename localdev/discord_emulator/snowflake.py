"""Discord-style snowflakes and timestamps.

A snowflake is ``(ms since 2015-01-01) << 22 | worker << 17 | process << 12 | increment``:
17-20 digits today, and ordered by creation time, which the emulator relies on
(``after=<id>`` cursors compare ids as integers).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000


class SnowflakeGenerator:
    """Monotonic snowflakes: never repeats, never goes backwards, thread-safe."""

    def __init__(self, worker: int = 1, process: int = 0) -> None:
        self._prefix = ((worker & 0x1F) << 17) | ((process & 0x1F) << 12)
        self._last = 0
        self._lock = threading.Lock()

    def next_int(self) -> int:
        with self._lock:
            ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            candidate = (ms << 22) | self._prefix
            # Within one millisecond (or if the clock steps back) keep counting up.
            self._last = max(candidate, self._last + 1)
            return self._last

    def next(self) -> str:
        return str(self.next_int())

    def next_on_shard(self, shard_id: int, shard_count: int) -> str:
        """A snowflake whose guild would live on ``shard_id`` (Discord: ``(id >> 22) % count``).

        Moves the clock part forward by at most ``shard_count - 1`` ms, so ids stay ordered.
        """
        with self._lock:
            ms = max(int(time.time() * 1000) - DISCORD_EPOCH_MS, (self._last >> 22) + 1)
            ms += (shard_id - ms) % shard_count
            self._last = (ms << 22) | self._prefix
            return str(self._last)


def shard_of(snowflake: str | int, shard_count: int) -> int:
    """The shard that receives a guild's events."""
    return (int(snowflake) >> 22) % shard_count


def iso_now() -> str:
    """The timestamp format Discord uses in payloads (ISO 8601, microseconds, +00:00)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
