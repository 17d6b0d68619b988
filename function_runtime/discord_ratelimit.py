"""Discord rate-limit bookkeeping, in process, per the documented protocol.

https://discord.com/developers/docs/topics/rate-limits: every response carries
``X-RateLimit-*`` headers naming the bucket a route belongs to and how many requests
are left in it. Buckets are shared per *major parameter* (channel, guild, webhook), so
state is keyed by ``(bucket hash, major parameter)``. A route is mapped to its bucket
after the first response; until then the route itself stands in for the bucket.

This module never sleeps and never reads the clock: callers pass ``now`` and decide
how to wait, so the client can bound its total wait and tests can use a fake clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

_MAX_ENTRIES = 1024  # interaction webhooks are one-shot; drop stale buckets past this


@dataclass(frozen=True)
class RateLimitHeaders:
    """What one response said about its bucket. Missing headers are None."""

    limit: int | None = None
    remaining: int | None = None
    reset_after: float | None = None
    bucket: str | None = None
    scope: str | None = None  # "user" | "global" | "shared" (on 429s)
    is_global: bool = False

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateLimitHeaders:
        """Parse from a case-insensitive mapping (requests' response headers)."""
        return cls(
            limit=_int(headers.get("X-RateLimit-Limit")),
            remaining=_int(headers.get("X-RateLimit-Remaining")),
            reset_after=_float(headers.get("X-RateLimit-Reset-After")),
            bucket=headers.get("X-RateLimit-Bucket") or None,
            scope=headers.get("X-RateLimit-Scope") or None,
            is_global=(headers.get("X-RateLimit-Global") or "").lower() == "true",
        )

    def span_attributes(self) -> dict[str, str | int | float]:
        out: dict[str, str | int | float] = {}
        for key, value in (
            ("limit", self.limit),
            ("remaining", self.remaining),
            ("reset_after", self.reset_after),
            ("bucket", self.bucket),
            ("scope", self.scope),
        ):
            if value is not None:
                out[f"discord.ratelimit.{key}"] = value
        return out


@dataclass
class _Bucket:
    remaining: int
    reset_at: float  # on the caller's clock


@dataclass(frozen=True)
class Wait:
    """A wait the caller must do before sending: how long, and why."""

    seconds: float
    bucket: str
    is_global: bool


class RateLimiter:
    """Thread-safe route -> bucket -> remaining/reset state, plus the global limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._route_bucket: dict[str, str] = {}  # route template -> bucket hash
        self._buckets: dict[str, _Bucket] = {}  # "<bucket>:<major>" -> state
        self._global_until = 0.0

    def _key(self, route: str, major: str) -> str:
        return f"{self._route_bucket.get(route, route)}:{major}"

    def wait_needed(self, route: str, major: str, now: float) -> Wait | None:
        """The wait before a request to ``route`` may go out, or None.

        Counts the request against the bucket (optimistically) so concurrent callers
        in this process do not all spend the last slot.
        """
        with self._lock:
            bucket_name = self._route_bucket.get(route, route)
            if self._global_until > now:
                return Wait(self._global_until - now, bucket_name, True)
            state = self._buckets.get(self._key(route, major))
            if state is None or state.reset_at <= now:
                return None
            if state.remaining > 0:
                state.remaining -= 1
                return None
            return Wait(state.reset_at - now, bucket_name, False)

    def update(self, route: str, major: str, info: RateLimitHeaders, now: float) -> None:
        """Remember what a response said about its bucket."""
        if info.remaining is None or info.reset_after is None:
            return
        with self._lock:
            if info.bucket:
                self._route_bucket[route] = info.bucket
            self._buckets[self._key(route, major)] = _Bucket(info.remaining, now + info.reset_after)
            if len(self._buckets) > _MAX_ENTRIES:
                self._buckets = {k: b for k, b in self._buckets.items() if b.reset_at > now}

    def rate_limited(self, route: str, major: str, retry_after: float, is_global: bool, now: float) -> None:
        """Record a 429 so the next request (from any caller here) waits too."""
        with self._lock:
            if is_global:
                self._global_until = max(self._global_until, now + retry_after)
            else:
                self._buckets[self._key(route, major)] = _Bucket(0, now + retry_after)


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _float(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None
