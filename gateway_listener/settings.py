"""The listener's own settings: which shards it runs and where it answers health probes.

Read once at start-up from the same sources as :mod:`shared.settings` (environment over
``local.settings.json``); a bad value raises SettingsError with one line naming the setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, setting_values

MAX_SHARDS = 65_536  # far above any bot; only guards against a typo like 10000000


@dataclass(frozen=True)
class ShardPlan:
    """``count`` None = ask Discord (``auto``); ``ids`` None = every shard of the count.

    The default (``DISCORD_SHARD_COUNT`` unset) is one connection: shard 0 of 1.
    """

    count: int | None = 1
    ids: tuple[int, ...] | None = None

    def resolve(self, recommended: int) -> tuple[int, tuple[int, ...]]:
        """(shard count, owned ids) once Discord's recommended count is known (used for ``auto``)."""
        count = self.count if self.count is not None else recommended
        if self.ids is None:
            return count, tuple(range(count))
        outside = [i for i in self.ids if i >= count]
        if outside:
            raise SettingsError(f"DISCORD_SHARD_IDS: {outside[0]} is not a shard of {count} (ids are 0-{count - 1})")
        return count, self.ids


@dataclass(frozen=True)
class ListenerSettings:
    shards: ShardPlan = ShardPlan()
    health_port: int | None = None  # None: no health server
    health_host: str = "127.0.0.1"
    # How long SIGTERM waits for buffered envelopes to reach storage; keep it inside the
    # host's grace period (Container Apps and Kubernetes give 30 s by default).
    drain_timeout_s: float = 5.0


def parse_shard_count(raw: str) -> int | None:
    text = raw.strip().lower()
    if text == "auto":
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_SHARDS:
        raise SettingsError(f"DISCORD_SHARD_COUNT: expected 'auto' or an integer 1-{MAX_SHARDS}, got {raw!r}")
    return int(text)


def parse_shard_ids(raw: str) -> tuple[int, ...]:
    """``0-3,7`` -> (0, 1, 2, 3, 7): ids and inclusive ranges, each id once."""
    ids: list[int] = []
    for part in raw.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise SettingsError(f"DISCORD_SHARD_IDS: expected ids and ranges like 0-3,7, got {raw!r}")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise SettingsError(f"DISCORD_SHARD_IDS: empty range {part.strip()!r} in {raw!r}")
        ids.extend(range(first, min(last, MAX_SHARDS) + 1))
    if len(set(ids)) != len(ids):
        raise SettingsError(f"DISCORD_SHARD_IDS: an id appears twice in {raw!r}")
    return tuple(sorted(ids))


def format_shard_ids(ids: tuple[int, ...]) -> str:
    """(0, 1, 2, 3, 7) -> "0-3,7": the DISCORD_SHARD_IDS syntax (for the log)."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _shard_plan(values: Mapping[str, str]) -> ShardPlan:
    raw_count, raw_ids = values.get("DISCORD_SHARD_COUNT", "").strip(), values.get("DISCORD_SHARD_IDS", "").strip()
    if not raw_count:
        if raw_ids:
            raise SettingsError("DISCORD_SHARD_IDS: needs DISCORD_SHARD_COUNT (the total number of shards, or auto)")
        return ShardPlan()
    plan = ShardPlan(parse_shard_count(raw_count), parse_shard_ids(raw_ids) if raw_ids else None)
    if plan.count is not None:
        plan.resolve(plan.count)  # ids outside the count: refuse now, not after connecting
    return plan


def _port(values: Mapping[str, str]) -> int | None:
    raw = values.get("LISTENER_HEALTH_PORT", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 65_535:
        raise SettingsError(f"LISTENER_HEALTH_PORT: expected a TCP port 1-65535, got {raw!r}")
    return int(raw)


def _drain_timeout(values: Mapping[str, str]) -> float:
    raw = values.get("LISTENER_DRAIN_TIMEOUT", "").strip()
    if not raw:
        return ListenerSettings.drain_timeout_s
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 300:
        raise SettingsError(f"LISTENER_DRAIN_TIMEOUT: expected seconds between 0 and 300, got {raw!r}")
    return seconds


def load_listener_settings(environ: Mapping[str, str] | None = None, root: Path = PROJECT_ROOT) -> ListenerSettings:
    values = setting_values(environ, root)
    host = values.get("LISTENER_HEALTH_HOST", "").strip() or "127.0.0.1"
    if any(c.isspace() or c in "/?#" for c in host):
        raise SettingsError(f"LISTENER_HEALTH_HOST: expected a host name or IP address, got {host!r}")
    return ListenerSettings(shards=_shard_plan(values), health_port=_port(values), health_host=host,
                            drain_timeout_s=_drain_timeout(values))
