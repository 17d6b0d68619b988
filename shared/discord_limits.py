"""Discord's rate limits shared by every process of the bot, on Redis (``REDIS_URL``).

Discord gives a bot ONE budget: ``DISCORD_GLOBAL_RATE_LIMIT`` requests per second (50) over
all its REST calls, per-route buckets (``X-RateLimit-Bucket``/``-Remaining``/``-Reset-After``),
a ban for 10,000 invalid requests (401, 403, 429) in 10 minutes, and ``max_concurrency``
IDENTIFYs per 5 s. Function instances and listener processes each pacing themselves would
each believe they own all of it, so with ``REDIS_URL`` they share it here:

- the global budget is a GCRA (generic cell rate algorithm) in a Lua script: one key holds the
  theoretical arrival time; a caller *reserves* the next slot and sleeps until it, so callers
  queue up fairly instead of polling; a global 429 pushes the key forward for everyone;
- per-route buckets: route -> bucket hash, and (bucket, major parameter) -> remaining/reset,
  written from each response's headers, read (and decremented) before each request;
- invalid requests: per-minute counters, summed over the last 10 minutes;
- the identify gate: one key per ``shard_id % max_concurrency`` holding the next free start.

Every decision is one script run (atomic in Redis) on Redis' clock (``TIME``), never a
read-modify-write from Python or a machine's own clock. Every key has the bot's hash tag, so
the scripts work on a clustered Redis (Azure Managed Redis) too.

Requests that can wait (typing indicators, command sync) are ``droppable``: they take only a
slot that is free right now and leaves half the burst room, and stop altogether once the
invalid-request count passes ``DISCORD_INVALID_REQUEST_LIMIT``; replies are never dropped.

Redis down or slow (a call over :data:`CALL_TIMEOUT_S`): the process falls back to its own
pacing at :data:`FALLBACK_SHARE` of the budget (and the caller's in-process buckets), marks
each decision ``fallback``, and tries Redis again after :data:`RETRY_AFTER_S`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.settings import Secret, Settings

if TYPE_CHECKING:
    import redis

_log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 0.025  # a Redis call slower than this counts as "Redis slow": fall back
RETRY_AFTER_S = 1.0  # after a failure, per-process pacing for this long, then Redis again
FALLBACK_SHARE = 0.25  # of the global budget, per process, while Redis is unreachable
BURST = 0.2  # GCRA burst tolerance, as a share of one second's budget (10 requests at 50/s)
INVALID_WINDOW_MINUTES = 10
IDENTIFY_INTERVAL_S = 5.0
ENTRA_SCOPE = "https://redis.azure.com/.default"

# KEYS: 1 global TAT, 2 route -> bucket hash, 3 invalid-counter prefix, 4 bucket prefix
# ARGV: 1 route, 2 major, 3 rate/s, 4 burst, 5 droppable, 6 invalid limit
# -> {code, wait in us, invalid count}; code 0 go (after wait, global), 1 bucket wait,
#    -1 dropped (budget tight), -2 dropped (invalid requests past the limit)
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local minute = math.floor(now / 60000000)
local names = {}
for i = 0, 9 do names[#names + 1] = KEYS[3] .. (minute - i) end
local invalid = 0
for _, v in ipairs(redis.call('MGET', unpack(names))) do invalid = invalid + (tonumber(v) or 0) end
local droppable = ARGV[5] == '1'
if droppable and invalid >= tonumber(ARGV[6]) then return {-2, 0, invalid} end
local bkey = false
if ARGV[1] ~= '' then
  bkey = KEYS[4] .. (redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[1]) .. ':' .. ARGV[2]
  local st = redis.call('HMGET', bkey, 'remaining', 'reset')
  if st[1] and tonumber(st[2]) > now then
    if tonumber(st[1]) <= 0 then
      if droppable then return {-1, tonumber(st[2]) - now, invalid} end
      return {1, tonumber(st[2]) - now, invalid}
    end
  else
    bkey = false
  end
end
local interval = 1000000 / tonumber(ARGV[3])
local tau = interval * (tonumber(ARGV[4]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tau - now
if wait < 0 then wait = 0 end
if droppable and tat - now > tau / 2 then return {-1, math.ceil(wait), invalid} end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', math.ceil((tat + interval - now) / 1000) + 1000)
if bkey then redis.call('HINCRBY', bkey, 'remaining', -1) end
return {0, math.ceil(wait), invalid}
"""

# KEYS as _ACQUIRE. ARGV: 1 route, 2 major, 3 bucket hash, 4 remaining, 5 reset-after s,
# 6 status, 7 retry-after s, 8 global 429 ('1'), 9 counts as invalid ('1') -> invalid count
_OBSERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local minute = math.floor(now / 60000000)
if ARGV[9] == '1' then
  redis.call('INCR', KEYS[3] .. minute)
  redis.call('EXPIRE', KEYS[3] .. minute, 660)
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
local bkey = KEYS[4] .. (redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[1]) .. ':' .. ARGV[2]
local function put(remaining, after_s)
  local reset = now + after_s * 1000000
  local cur = redis.call('HMGET', bkey, 'remaining', 'reset')
  if cur[1] and math.abs(tonumber(cur[2]) - reset) < 500000 and tonumber(cur[1]) < remaining then
    remaining = tonumber(cur[1])  -- same window: others already spent some of it
  end
  redis.call('HSET', bkey, 'remaining', remaining, 'reset', string.format('%.0f', reset))
  redis.call('PEXPIRE', bkey, math.ceil(after_s * 1000) + 1000)
end
if ARGV[4] ~= '' and ARGV[5] ~= '' then put(tonumber(ARGV[4]), tonumber(ARGV[5])) end
if ARGV[6] == '429' then
  local after = tonumber(ARGV[7])
  if ARGV[8] == '1' then
    local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
    local until_ = now + after * 1000000
    if until_ > tat then
      redis.call('SET', KEYS[1], string.format('%.0f', until_), 'PX', math.ceil(after * 1000) + 1000)
    end
  else
    put(0, after)
  end
end
local names = {}
for i = 0, 9 do names[#names + 1] = KEYS[3] .. (minute - i) end
local invalid = 0
for _, v in ipairs(redis.call('MGET', unpack(names))) do invalid = invalid + (tonumber(v) or 0) end
return invalid
"""

# KEYS: 1 the identify bucket's key. ARGV: 1 interval in us -> wait in us before identifying
_IDENTIFY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local start = tonumber(redis.call('GET', KEYS[1]) or '0')
if start < now then start = now end
local nxt = start + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1000)
return math.ceil(start - now)
"""


class Paused(Exception):
    """The bot is past its invalid-request limit: what can wait is not sent."""


def _number(raw: str | None, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(raw) if raw is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Grant:
    """What the limiter decided for one request.

    ``scope``: ``global`` (a wait for the shared budget), ``bucket`` (the route's bucket is
    empty: wait, then ask again) or ``none`` (go now). ``dropped``: why a droppable request
    must not be sent. ``fallback``: Redis was not reachable, the decision is this process's.
    """

    wait_s: float = 0.0
    scope: str = "none"
    dropped: str | None = None
    fallback: bool = False
    shared: bool = True
    invalid_count: int | None = None

    def span_attributes(self) -> dict[str, str | bool | float | int]:
        out: dict[str, str | bool | float | int] = {"app.ratelimit.shared": self.shared}
        if self.fallback:
            out["app.ratelimit.fallback"] = True
        if self.invalid_count is not None:
            out["discord.ratelimit.invalid_count"] = self.invalid_count
        return out


class LocalBudget:
    """The per-process GCRA used while Redis is away (same rules as the script, thread-safe)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate
        self._tau = self._interval * max(0.0, burst - 1)
        self._tat = 0.0
        self._clock = clock
        self._lock = threading.Lock()

    def reserve(self, droppable: bool) -> float | None:
        """Seconds to wait for the next slot (reserved), or None when a droppable request must drop."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            if droppable and tat - now > self._tau / 2:
                return None
            self._tat = tat + self._interval
            return max(0.0, tat - self._tau - now)

    def block_until(self, seconds_from_now: float) -> None:
        with self._lock:
            self._tat = max(self._tat, self._clock() + seconds_from_now)


class SharedLimits:
    """The bot's Discord limits on one Redis, with per-process fallback. Thread-safe."""

    def __init__(
        self,
        client: redis.Redis,
        bot_key: str,
        *,
        rate: int = 50,
        invalid_limit: int = 2500,
        fallback_share: float = FALLBACK_SHARE,
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.rate = rate
        self.burst = max(1, round(rate * BURST))
        self.invalid_limit = invalid_limit
        tag = "{dlim:" + hashlib.sha256(bot_key.encode()).hexdigest()[:12] + "}"
        self._keys = [f"{tag}:global", f"{tag}:routes", f"{tag}:invalid:", f"{tag}:bucket:"]
        self._identify_prefix = f"{tag}:identify:"
        self._acquire = client.register_script(_ACQUIRE)
        self._observe = client.register_script(_OBSERVE)
        self._identify = client.register_script(_IDENTIFY)
        self._local = LocalBudget(max(1.0, rate * fallback_share), max(1, round(rate * fallback_share * BURST)), clock)
        self._retry_after = retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until: float | None = None  # set while Redis is considered unreachable
        self.invalid_count = 0
        self._paused = False  # past the invalid-request limit (logged once per crossing)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SharedLimits | None:
        """The bot's shared limits, or None without REDIS_URL (per-process limits, as before)."""
        if settings.redis_url is None:
            return None
        token = settings.discord_token.reveal() if settings.discord_token else ""
        return cls(redis_client(settings.redis_url), settings.discord_api_base_url + token,
                   rate=settings.discord_global_rate_limit, invalid_limit=settings.discord_invalid_request_limit,
                   **kwargs)

    # -- the three decisions ----------------------------------------------------------------

    def acquire(self, route: str, major: str, *, droppable: bool = False) -> Grant:
        """Reserve a slot for one request (``route`` = "METHOD /template"); the caller waits ``wait_s``.

        A ``bucket`` grant reserved nothing: wait, then call again.
        """
        args = [route, major, self.rate, self.burst, "1" if droppable else "0", self.invalid_limit]
        result = self._run(self._acquire, self._keys, args)
        if result is None:
            wait = self._local.reserve(droppable)
            if wait is None:
                return Grant(dropped="budget tight (per-process fallback)", fallback=True, shared=False)
            return Grant(wait, "global" if wait > 0 else "none", fallback=True, shared=False)
        code, wait_us, invalid = (int(v) for v in result)
        self._note_invalid(invalid)
        wait = max(0.0, wait_us / 1e6)
        if code == -2:
            return Grant(dropped=f"invalid requests past the limit ({invalid} in 10 min)", invalid_count=invalid)
        if code == -1:
            return Grant(wait, dropped="budget tight", invalid_count=invalid)
        return Grant(wait, "bucket" if code == 1 else ("global" if wait > 0 else "none"), invalid_count=invalid)

    def observe(self, route: str, major: str, status: int, *, bucket: str | None = None,
                remaining: int | None = None, reset_after: float | None = None,
                retry_after: float | None = None, is_global: bool = False, scope: str | None = None) -> None:
        """Record what a response said: its bucket, a 429, an invalid request."""
        invalid = status in (401, 403) or (status == 429 and scope != "shared")  # shared 429s do not count
        if status == 429 and is_global and retry_after is not None:
            self._local.block_until(retry_after)
        args = [route, major, bucket or "", "" if remaining is None else remaining,
                "" if reset_after is None else reset_after, status,
                retry_after if retry_after is not None else 1.0, "1" if is_global else "0", "1" if invalid else "0"]
        result = self._run(self._observe, self._keys, args)
        if result is not None:
            self._note_invalid(int(result))

    def observe_headers(self, route: str, major: str, status: int, headers: Mapping[str, str]) -> None:
        """:meth:`observe` from a response's own headers (a case-insensitive mapping)."""
        scope = headers.get("X-RateLimit-Scope")
        self.observe(route, major, status, bucket=headers.get("X-RateLimit-Bucket"),
                     remaining=_number(headers.get("X-RateLimit-Remaining"), int),
                     reset_after=_number(headers.get("X-RateLimit-Reset-After"), float),
                     retry_after=_number(headers.get("Retry-After"), float), scope=scope,
                     is_global=headers.get("X-RateLimit-Global") == "true" or scope == "global")

    def pace(self, route: str, major: str) -> None:
        """Block until ``route`` may be sent (its bucket, then a global slot) for a caller that can
        wait but must not add to invalid requests: raises :class:`Paused` past the invalid-request limit."""
        while True:
            grant = self.acquire(route, major)
            if self.invalid_count >= self.invalid_limit:
                raise Paused(f"{self.invalid_count} invalid requests in 10 minutes (limit {self.invalid_limit})")
            time.sleep(grant.wait_s)
            if grant.scope != "bucket":
                return

    def identify_wait(self, shard_id: int, max_concurrency: int,
                      interval_s: float = IDENTIFY_INTERVAL_S) -> float | None:
        """Seconds before shard ``shard_id`` may IDENTIFY (its slot reserved); None when Redis is away."""
        mc = max(1, max_concurrency)
        key = f"{self._identify_prefix}{mc}:{shard_id % mc}"
        result = self._run(self._identify, [key], [round(interval_s * 1e6)], force=True)
        return None if result is None else int(result) / 1e6

    def round_trip(self) -> None:
        """One PING (the benchmark's baseline for a Redis call)."""
        self.client.ping()

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        with self._lock:
            return self._down_until is None

    def _run(self, script: Any, keys: list[str], args: list[Any], *, force: bool = False) -> Any:
        with self._lock:
            down_until = self._down_until
        if down_until is not None and not force and self._clock() < down_until:
            return None
        try:
            result = script(keys=keys, args=args, client=self.client)
        except Exception as exc:  # redis.RedisError, OSError: Redis down, slow (timeout) or refusing
            with self._lock:
                was_up, self._down_until = self._down_until is None, self._clock() + self._retry_after
            if was_up:
                _log.warning("Redis unreachable (%s): per-process rate limits at %.0f%% of the budget until it "
                             "answers again", type(exc).__name__, 100 * FALLBACK_SHARE)
            return None
        with self._lock:
            if self._down_until is not None:
                _log.warning("Redis answers again: Discord rate limits shared across processes")
            self._down_until = None
        return result

    def _note_invalid(self, count: int) -> None:
        self.invalid_count = count
        paused = count >= self.invalid_limit
        if paused != self._paused:
            self._paused = paused
            if paused:
                _log.warning("Discord invalid requests: %d in the last 10 minutes (limit %d, ban at 10,000): "
                             "typing indicators and command sync paused", count, self.invalid_limit)
            else:
                _log.warning("Discord invalid requests back under %d: typing indicators resumed", self.invalid_limit)


def log_if_unshared(settings: Settings, process: str, *, more_than_one: bool) -> None:
    """Say once, at start-up, that limits are per process while several processes may run."""
    if settings.redis_url is None and more_than_one:
        _log.warning("REDIS_URL unset: %s paces Discord's global rate limit (%d/s) on its own, but more than one "
                     "instance can run; set REDIS_URL to share it (docs/DESIGN.md, Rate limits)",
                     process, settings.discord_global_rate_limit)


# -- connecting: redis:// locally, rediss:// with a Microsoft Entra token on Azure ---------------


class EntraCredentialProvider:
    """redis-py credentials from a Microsoft Entra token: (object id, access token).

    Azure Managed Redis / Azure Cache for Redis with Entra authentication take the identity's
    object id as the user name and a token for ``https://redis.azure.com/.default`` as the
    password. The token is cached until 5 minutes before it expires; a new connection (the pool
    reconnects after the service closes an expired one) asks again.
    """

    def __init__(self, credential: Any, scope: str = ENTRA_SCOPE, clock: Callable[[], float] = time.time) -> None:
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._cached: tuple[str, str, float] | None = None
        self._lock = threading.Lock()

    def get_credentials(self) -> tuple[str, str]:
        with self._lock:
            if self._cached is None or self._clock() > self._cached[2] - 300:
                token = self._credential.get_token(self._scope)
                self._cached = (token_object_id(token.token), token.token, float(token.expires_on))
            return self._cached[0], self._cached[1]

    async def get_credentials_async(self) -> tuple[str, str]:
        return self.get_credentials()


def token_object_id(jwt: str) -> str:
    """The ``oid`` claim of an access token (not verified: Redis verifies it; we only need the name)."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["oid"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise ValueError("the Entra token for Redis has no object id (oid) claim") from None


def uses_entra(url: Secret) -> bool:
    """rediss:// with no password: authenticate with Microsoft Entra (managed identity)."""
    parts = urlsplit(url.reveal())
    return parts.scheme == "rediss" and not parts.password


def redis_client(url: Secret, *, timeout_s: float = CALL_TIMEOUT_S, credential: Any = None) -> redis.Redis:
    """A client that fails fast (no hidden retries): slow is as good as down for a rate limiter."""
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    kwargs: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": max(timeout_s, 0.1) if not uses_entra(url) else 2.0,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    if uses_entra(url):
        if credential is None:
            from azure.identity import DefaultAzureCredential  # AZURE_CLIENT_ID picks the user-assigned identity

            credential = DefaultAzureCredential()
        kwargs["credential_provider"] = EntraCredentialProvider(credential)
    return redis_lib.Redis.from_url(url.reveal(), **kwargs)
