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


def major_parameter(params: dict[str, Any]) -> str:
    for name in ("channel_id", "guild_id", "webhook_id", "interaction_id"):
        if name in params:
            return f"{name}={params[name]}"
    return ""
