"""REST fault injection and Discord's rate-limit headers."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from localdev.discord_emulator.models import JSON

_ERROR_BODIES: dict[int, JSON] = {
    400: {"message": "400: Bad Request", "code": 0},
    401: {"message": "401: Unauthorized", "code": 0},
    403: {"message": "Missing Access", "code": 50001},
    404: {"message": "404: Not Found", "code": 0},
    500: {"message": "500: Internal Server Error", "code": 0},
    502: {"message": "502: Bad Gateway", "code": 0},
    503: {"message": "503: Service Unavailable", "code": 0},
    504: {"message": "504: Gateway Timeout", "code": 0},
}


def error_body(status: int) -> JSON:
    return dict(_ERROR_BODIES.get(status, {"message": f"{status}: Error", "code": 0}))


@dataclass
class RestFault:
    """Answer the next ``count`` matching requests with ``status`` (0 = answer normally) after ``delay``.

    ``route`` is ``"METHOD /path"`` or ``"/path"`` (any method); the path may be a spec
    template (``/channels/{channel_id}/messages``), a concrete path, or ``*`` for every route.
    """

    route: str
    status: int
    count: int = 1
    retry_after: float = 0.2
    global_: bool = False
    delay: float = 0.0

    def __post_init__(self) -> None:
        method, _, path = self.route.strip().partition(" ")
        if not path:
            method, path = "", method
        self._method = method.upper()
        self._path = path.rstrip("/") or "/"

    def matches(self, method: str, path: str, template: str | None) -> bool:
        if self._method and self._method != method.upper():
            return False
        return self._path in ("*", path.rstrip("/") or "/", template)

    def describe(self) -> str:
        return f"{self.status or 'delay'} on {self.route}"

    def as_dict(self) -> JSON:
        return {"route": self.route, "status": self.status, "remaining": self.count,
                "retry_after": self.retry_after, "global": self.global_, "delay": self.delay}


def rate_limited(fault: RestFault) -> tuple[JSON, dict[str, str]]:
    body = {"message": "You are being rate limited.", "retry_after": fault.retry_after, "global": fault.global_}
    headers = {
        "Retry-After": str(max(1, math.ceil(fault.retry_after))),
        "X-RateLimit-Scope": "global" if fault.global_ else "user",
    }
    if fault.global_:
        headers["X-RateLimit-Global"] = "true"
        body["code"] = 0
    return body, headers


class RateLimits:
    """Per-bucket fixed windows producing the X-RateLimit-* headers Discord sends.

    Limits are generous by default so well-behaved clients never wait on the emulator;
    with ``enforce`` a client that ignores them gets real 429s.
    """

    def __init__(self, limit: int = 50, window_s: float = 1.0, *, enforce: bool = False) -> None:
        self.limit = limit
        self.window_s = window_s
        self.enforce = enforce
        self._windows: dict[str, tuple[float, int]] = {}

    @staticmethod
    def bucket(method: str, template: str | None) -> str:
        return hashlib.sha1(f"{method} {template}".encode()).hexdigest()[:16]  # a bucket name, not security

    def take(self, method: str, template: str | None, major: str) -> tuple[dict[str, str], float | None]:
        """Count one request; returns the headers and, if over the limit, the seconds to wait."""
        bucket = self.bucket(method, template)
        key = f"{bucket}:{major}"
        now = time.time()
        start, used = self._windows.get(key, (now, 0))
        if now - start >= self.window_s:
            start, used = now, 0
        used += 1
        self._windows[key] = (start, used)
        reset = start + self.window_s
        over = used > self.limit
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - used, 0)),
            "X-RateLimit-Reset": f"{reset:.3f}",
            "X-RateLimit-Reset-After": f"{max(reset - now, 0):.3f}",
            "X-RateLimit-Bucket": bucket,
        }
        return headers, (max(reset - now, 0.001) if over and self.enforce else None)


class GlobalLimit:
    """Discord's per-bot limits: the global budget and the invalid-request ban.

    The global budget is a token bucket per token: ``per_second`` requests per second, with a
    one-second burst (no more than a fixed one-second window would allow). A request past it is
    a 429 with ``X-RateLimit-Global: true``/``X-RateLimit-Scope: global``. Invalid requests
    (401, 403, and 429 except ``shared`` scope) are counted over ``invalid_window_s``; past
    ``invalid_limit`` the bot is banned for ``ban_s`` (Discord: 10,000 per 10 minutes, an hour):
    every request is answered 429 by "Cloudflare" (no ``Via`` header). Both settable so tests
    run in seconds; ``per_second=0`` turns the global budget off.
    """

    def __init__(self, per_second: float = 50, *, invalid_limit: int = 10_000, invalid_window_s: float = 600.0,
                 ban_s: float = 3600.0) -> None:
        self.per_second = per_second
        self.invalid_limit, self.invalid_window_s, self.ban_s = invalid_limit, invalid_window_s, ban_s
        self._tokens: dict[str, tuple[float, float]] = {}  # token hash -> (tokens, at)
        self._invalid: list[float] = []
        self.banned_until = 0.0
        self.global_limited = 0  # 429s for the global budget, answered
        self.invalid_total = 0  # invalid requests ever counted

    def take(self, token: str, now: float) -> float | None:
        """Count one request of ``token``; the seconds to wait when it is over the global budget."""
        if self.per_second <= 0:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        tokens, at = self._tokens.get(key, (self.per_second, now))
        tokens = min(self.per_second, tokens + (now - at) * self.per_second)
        if tokens < 1:
            self._tokens[key] = (tokens, now)
            self.global_limited += 1
            return max((1 - tokens) / self.per_second, 0.001)
        self._tokens[key] = (tokens - 1, now)
        return None

    def count_invalid(self, status: int, scope: str | None, now: float) -> None:
        if status in (401, 403) or (status == 429 and scope != "shared"):
            self.invalid_total += 1
            self._invalid = [t for t in self._invalid if now - t < self.invalid_window_s]
            self._invalid.append(now)
            if len(self._invalid) >= self.invalid_limit and self.banned_until <= now:
                self.banned_until = now + self.ban_s

    def invalid_count(self, now: float) -> int:
        return sum(1 for t in self._invalid if now - t < self.invalid_window_s)

    def ban_left(self, now: float) -> float | None:
        return self.banned_until - now if self.banned_until > now else None


def major_parameter(params: dict[str, Any]) -> str:
    for name in ("channel_id", "guild_id", "webhook_id", "interaction_id"):
        if name in params:
            return f"{name}={params[name]}"
    return ""
