"""The Discord REST client the functions reply with.

Two calls, both idempotent on retry: creating a channel message carries a ``nonce``
derived from the envelope with ``enforce_nonce`` (a redelivered queue message gets the
first message back instead of posting twice), and editing a deferred interaction's
original response is a PATCH. So a timeout or a 5xx can safely be retried here, and a
failure left over is raised as a :class:`~shared.errors.TransientError` for the queue.

Rate limits follow https://discord.com/developers/docs/topics/rate-limits (see
:mod:`function_runtime.discord_ratelimit`). Every HTTP attempt is a CLIENT span named after the
route *template*; the bot token and interaction tokens never reach a span, a log line
or an exception message (requests' own exceptions print the URL, so they are replaced).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from function_runtime.discord_ratelimit import RateLimiter, RateLimitHeaders, Wait
from function_runtime.errors import DiscordAuthError, DiscordNotFoundError, DiscordRequestError, DiscordUnavailableError
from shared.discord_limits import Grant, SharedLimits
from shared.settings import Secret
from shared.useragent import user_agent as discord_user_agent

_log = logging.getLogger(__name__)

MAX_CONTENT = 2000  # Discord's message limit for bots (the OpenAPI file allows 4000 on create: Nitro users)
MAX_NONCE = 25
EMPTY_PLACEHOLDER = "(no response)"  # Discord rejects empty messages (50006)
_MAX_RATE_LIMITED = 5  # 429s per call, on top of the wait budget (guards retry_after: 0 loops)
_BACKOFF_BASE, _BACKOFF_CAP = 0.5, 8.0

CREATE_MESSAGE = "/channels/{channel_id}/messages"
EDIT_ORIGINAL = "/webhooks/{application_id}/{interaction_token}/messages/@original"


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    path: str  # the real path: may hold an interaction token, never logged
    redacted_path: str
    major: str  # the rate-limit major parameter (hashed when it holds a token)
    bot_auth: bool

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True)
class _Retry:
    delay: float
    reason: str
    rate_limited: bool = False


class DiscordRest:
    """A small, synchronous Discord REST client; one per process is enough (thread-safe)."""

    def __init__(
        self,
        base_url: str,
        token: Secret | None,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        max_total_wait: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        ratelimiter: RateLimiter | None = None,
        shared_limits: SharedLimits | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        """``shared_limits``: the bot's limits on Redis (REDIS_URL), shared with every other
        process; ``ratelimiter`` (this process's) is then the fallback while Redis is away."""
        self._base = base_url.rstrip("/")
        parts = urlsplit(self._base)
        self._host = parts.hostname or ""
        self._port = parts.port
        self._token = token
        self._own_session = session is None
        self._session = session or requests.Session()
        self._timeout = (min(timeout, 5.0), timeout)  # (connect, read)
        self._max_attempts = max(1, max_attempts)
        self._max_total_wait = max_total_wait
        self._sleep = sleep
        self._clock = clock
        self._user_agent = user_agent or discord_user_agent("discord")
        self._limiter = ratelimiter or _shared_limiter(self._base, token)
        self._shared = shared_limits
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._random = random.Random()
        _install_urllib3_redaction()

    # -- public API -------------------------------------------------------------------------

    def create_message(
        self, channel_id: str, content: str, *, nonce: str, reply_to: str | None = None,
        mention_users: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """POST a channel message that pings no one but ``mention_users``; ``nonce`` makes redeliveries safe."""
        if not nonce:
            raise ValueError("nonce: required (it is the reply's idempotency key)")
        if len(nonce) > MAX_NONCE:
            _log.warning("nonce longer than %d characters; trimmed", MAX_NONCE)
            nonce = nonce[:MAX_NONCE]
        body: dict[str, Any] = {
            "content": fit_content(content),
            "allowed_mentions": _no_mentions(mention_users),
            "nonce": nonce,
            "enforce_nonce": True,
        }
        if reply_to:
            body["allowed_mentions"]["replied_user"] = False
            body["message_reference"] = {"message_id": reply_to, "fail_if_not_exists": False}
        path = f"/channels/{quote(channel_id, safe='')}/messages"
        route = _Route("POST", CREATE_MESSAGE, path, path, f"channel:{channel_id}", bot_auth=True)
        return self._request(route, body)

    def edit_original_response(self, application_id: str, interaction_token: Secret, content: str) -> dict[str, Any]:
        """PATCH the deferred interaction response. The token rides in the path, not in a header."""
        app = quote(application_id, safe="")
        path = f"/webhooks/{app}/{quote(interaction_token.reveal(), safe='')}/messages/@original"
        redacted = f"/webhooks/{app}/REDACTED/messages/@original"
        digest = hashlib.sha256(interaction_token.reveal().encode()).hexdigest()[:16]
        route = _Route("PATCH", EDIT_ORIGINAL, path, redacted, f"webhook:{application_id}:{digest}", bot_auth=False)
        body = {"content": fit_content(content), "allowed_mentions": _no_mentions()}
        return self._request(route, body)

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> DiscordRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the retry loop ---------------------------------------------------------------------

    def _request(self, route: _Route, body: dict[str, Any]) -> dict:
        waited = 0.0
        failures = limited = attempt = 0
        while True:
            waited, grant = self._pace_shared(route, waited)
            pre_wait = None
            if grant is None or grant.fallback:
                pre_wait = self._limiter.wait_needed(route.template, route.major, self._clock())
            if pre_wait is not None:
                waited = self._wait(route, pre_wait.seconds, waited, f"rate limit resets in {pre_wait.seconds:.1f}s")
            outcome = self._attempt(route, body, attempt, failures, pre_wait, grant)
            attempt += 1
            if isinstance(outcome, dict):
                return outcome
            if outcome.rate_limited:
                limited += 1
                if limited > _MAX_RATE_LIMITED:
                    raise DiscordUnavailableError(f"Discord {route.name}: still rate limited after {attempt} attempts")
            else:
                failures += 1
                if failures >= self._max_attempts:
                    raise DiscordUnavailableError(
                        f"Discord {route.name}: gave up after {attempt} attempts (last: {outcome.reason})"
                    )
            waited = self._wait(route, outcome.delay, waited, f"{outcome.reason}; retrying in {outcome.delay:.1f}s")

    def _pace_shared(self, route: _Route, waited: float) -> tuple[float, Grant | None]:
        """Wait for the bot's shared budget: the route's bucket, then a global slot.

        Each wait is a ``discord.ratelimit.wait`` span (scope ``bucket`` or ``global``), so a slow
        reply shows whether our own pacing held it. Interaction webhooks are outside Discord's
        global limit (and their buckets are per token): they do not take part.
        """
        if self._shared is None or not route.bot_auth:
            return waited, None
        while True:
            grant = self._shared.acquire(route.name, route.major)
            if grant.wait_s > 0:
                with self._tracer.start_as_current_span("discord.ratelimit.wait", attributes={
                    "discord.ratelimit.scope": grant.scope, "discord.ratelimit.bucket": route.name,
                    "discord.ratelimit.wait_ms": round(grant.wait_s * 1000, 2), **grant.span_attributes()}):
                    waited = self._wait(route, grant.wait_s, waited,
                                        f"shared {grant.scope} rate limit: {grant.wait_s:.2f}s")
            if grant.scope != "bucket":
                return waited, grant

    def _observe(self, route: _Route, status: int, info: RateLimitHeaders, *, retry_after: float | None = None,
                 is_global: bool = False) -> None:
        if self._shared is not None and route.bot_auth:
            self._shared.observe(route.name, route.major, status, bucket=info.bucket, remaining=info.remaining,
                                 reset_after=info.reset_after, retry_after=retry_after, is_global=is_global,
                                 scope=info.scope)

    def _wait(self, route: _Route, seconds: float, waited: float, why: str) -> float:
        """Sleep ``seconds`` unless that passes the wait budget (then raise); the new total waited."""
        if waited + seconds > self._max_total_wait:
            raise DiscordUnavailableError(
                f"Discord {route.name}: {why} would pass the {self._max_total_wait:.0f}s wait budget "
                f"({waited:.1f}s waited)"
            )
        self._sleep(seconds)
        return waited + seconds

    def _attempt(
        self, route: _Route, body: dict[str, Any], attempt: int, failures: int, pre_wait: Wait | None,
        grant: Grant | None = None,
    ) -> dict | _Retry:
        attributes: dict[str, str | int | float] = {
            "http.request.method": route.method,
            "url.template": route.template,
            "url.full": self._base + route.redacted_path,
            "server.address": self._host,
        }
        if self._port is not None:
            attributes["server.port"] = self._port
        if attempt:
            attributes["http.request.resend_count"] = attempt
        with self._tracer.start_as_current_span(
            route.name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,  # requests' exceptions carry the URL, token included
            set_status_on_exception=False,
        ) as span:
            if grant is not None:
                span.set_attributes(grant.span_attributes())
            if pre_wait is not None:
                span.add_event(
                    "discord.ratelimit.wait",
                    {"wait_seconds": pre_wait.seconds, "bucket": pre_wait.bucket, "global": pre_wait.is_global},
                )
            headers = {"User-Agent": self._user_agent, "Content-Type": "application/json"}
            if route.bot_auth and self._token:
                headers["Authorization"] = f"Bot {self._token.reveal()}"
            try:
                with _no_http_autoinstrumentation():
                    response = self._session.request(
                        route.method, self._base + route.path, json=body, headers=headers, timeout=self._timeout
                    )
            except (requests.Timeout, requests.ConnectionError) as exc:
                kind = type(exc).__name__
                span.set_attribute("error.type", f"requests.{kind}")
                span.set_status(Status(StatusCode.ERROR, kind))
                _log.warning("Discord %s: %s on attempt %d", route.name, kind, attempt + 1)
                return _Retry(self._backoff(failures), kind)
            except requests.RequestException as exc:
                kind = type(exc).__name__
                span.set_attribute("error.type", f"requests.{kind}")
                span.set_status(Status(StatusCode.ERROR, kind))
                raise DiscordRequestError(f"Discord {route.name}: request failed ({kind})") from None
            return self._handle(route, response, span, failures)

    def _handle(self, route: _Route, response: requests.Response, span: trace.Span, failures: int) -> dict | _Retry:
        status = response.status_code
        info = RateLimitHeaders.parse(response.headers)
        span.set_attribute("http.response.status_code", status)
        span.set_attributes(info.span_attributes())
        now = self._clock()
        self._limiter.update(route.template, route.major, info, now)
        if status != 429:
            self._observe(route, status, info)
        payload = _json(response)
        if 200 <= status < 300:
            if not isinstance(payload, dict):
                span.set_attribute("error.type", "invalid_json")
                span.set_status(Status(StatusCode.ERROR, "response is not a JSON object"))
                return _Retry(self._backoff(failures), f"{status} without a JSON message")
            return payload
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        if status == 429:
            return self._rate_limited(route, response, payload, info, span, now)
        if status >= 500:
            _log.warning("Discord %s: HTTP %d, will retry", route.name, status)
            return _Retry(self._backoff(failures), f"HTTP {status}")
        detail = _detail(payload, response)
        if status == 401:
            if not route.bot_auth:
                raise DiscordAuthError(f"Discord rejected the interaction token (401) on {route.name}: {detail}")
            if not self._token:
                raise DiscordAuthError(f"Discord answered 401 on {route.name}: no bot token configured (DISCORD_TOKEN)")
            raise DiscordAuthError(f"Discord rejected the bot token (401) on {route.name}: {detail}")
        if status == 403:
            raise DiscordAuthError(f"Discord {route.name}: missing permission or access (403): {detail}")
        if status == 404:
            raise DiscordNotFoundError(f"Discord {route.name}: not found (404): {detail}")
        raise DiscordRequestError(f"Discord {route.name}: request rejected ({status}): {detail}")

    def _rate_limited(
        self,
        route: _Route,
        response: requests.Response,
        payload: Any,
        info: RateLimitHeaders,
        span: trace.Span,
        now: float,
    ) -> _Retry:
        body = payload if isinstance(payload, dict) else {}
        retry_after = _seconds(body.get("retry_after"))
        if retry_after is None:  # a Cloudflare-level 429 has no JSON body
            retry_after = _seconds(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = info.reset_after if info.reset_after is not None else 1.0
        is_global = info.is_global or body.get("global") is True or info.scope == "global"
        scope = info.scope or ("global" if is_global else "user")
        span.add_event("discord.rate_limited", {"retry_after": retry_after, "global": is_global, "scope": scope})
        self._limiter.rate_limited(route.template, route.major, retry_after, is_global, now)
        self._observe(route, 429, info, retry_after=retry_after, is_global=is_global)
        _log.warning(
            "Discord %s: rate limited (%s%s), retry after %.2fs",
            route.name,
            scope,
            ", global" if is_global else "",
            retry_after,
        )
        return _Retry(retry_after, f"rate limited for {retry_after:.1f}s ({scope})", rate_limited=True)

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, so retries spread out."""
        delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**failures)
        return delay / 2 + self._random.uniform(0, delay / 2)


def fit_content(content: str) -> str:
    """Content Discord accepts: non-empty, at most 2000 characters (ending in "…" when cut).

    Counted in UTF-16 units, the stricter reading of Discord's limit, so emoji-heavy text
    is never rejected for length.
    """
    if not content.strip():
        return EMPTY_PLACEHOLDER
    if _utf16_len(content) <= MAX_CONTENT:
        return content
    budget, out = MAX_CONTENT - 1, []
    for ch in content:
        budget -= _utf16_len(ch)
        if budget < 0:
            break
        out.append(ch)
    return "".join(out) + "…"


def _no_mentions(users: tuple[str, ...] = ()) -> dict[str, Any]:
    """Parse no mentions: "@everyone", roles and users in echoed text stay plain text; only the
    listed ``users`` (a reminder's creator) can be pinged."""
    return {"parse": [], "users": list(users)} if users else {"parse": []}


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(payload: Any, response: requests.Response) -> str:
    """Discord's error message and code, plus the first field errors (for 400s)."""
    if not isinstance(payload, dict) or "message" not in payload:
        # Not Discord's JSON (a proxy or edge page): it may echo the path, which holds the
        # interaction token on webhook routes.
        text = _TOKEN_IN_PATH.sub(r"\1REDACTED", " ".join(response.text.split()))[:200]
        return text or response.reason or "no details"
    out = f"{payload.get('message')} (code {payload.get('code')})"
    fields = list(_field_errors(payload.get("errors"), ""))[:3]
    return f"{out}: {'; '.join(fields)}" if fields else out


def _field_errors(node: Any, path: str) -> Iterator[str]:
    if not isinstance(node, dict):
        return
    for err in node.get("_errors", []):
        if isinstance(err, dict):
            yield f"{path or 'body'}: {err.get('message')}"
    for key, child in node.items():
        if key != "_errors":
            yield from _field_errors(child, f"{path}.{key}" if path else str(key))


def _seconds(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value < float("inf") else None


# -- process-wide state ---------------------------------------------------------------------

_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def _shared_limiter(base_url: str, token: Secret | None) -> RateLimiter:
    """Rate-limit state is per bot, so clients for the same base URL and token share it."""
    key = base_url + ":" + hashlib.sha256((token.reveal() if token else "").encode()).hexdigest()[:16]
    with _limiters_lock:
        return _limiters.setdefault(key, RateLimiter())


@contextlib.contextmanager
def _no_http_autoinstrumentation() -> Iterator[None]:
    """Our span is the CLIENT span; an auto-instrumented one would log the raw URL (token)."""
    try:
        from opentelemetry.instrumentation.utils import suppress_http_instrumentation
    except ImportError:  # instrumentation not installed: nothing to suppress
        yield
        return
    with suppress_http_instrumentation():
        yield


_TOKEN_IN_PATH = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?\"]+")
_redaction_installed = False


class _RedactWebhookTokens(logging.Filter):
    """urllib3 logs request paths at DEBUG; webhook paths carry interaction tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN_IN_PATH.sub(r"\1REDACTED", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _install_urllib3_redaction() -> None:
    global _redaction_installed
    with _limiters_lock:
        if not _redaction_installed:
            logging.getLogger("urllib3.connectionpool").addFilter(_RedactWebhookTokens())
            _redaction_installed = True
