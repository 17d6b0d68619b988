"""DiscordRest against a scripted local Discord: real HTTP, real spans, no real sleeping."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from function_runtime.discord_ratelimit import RateLimiter
from function_runtime.discord_rest import EMPTY_PLACEHOLDER, MAX_CONTENT, DiscordRest, fit_content
from function_runtime.errors import DiscordAuthError, DiscordNotFoundError, DiscordRequestError, DiscordUnavailableError
from function_runtime.replies import send_reply
from localdev.redis_server import RedisServer
from shared.discord_limits import SharedLimits, redis_client
from shared.envelope import Envelope, Ids, InteractionRef
from shared.settings import Secret
from tests.function_runtime.openapi_oracle import oracle

BOT_TOKEN = Secret("MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.bot-token-that-must-never-leak")
INTERACTION_TOKEN = Secret("aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OnNlY3JldA-never-leak")
CHANNEL, MESSAGE, APP = "111111111111111111", "222222222222222222", "333333333333333333"
CREATE_SPAN = "POST /channels/{channel_id}/messages"
EDIT_SPAN = "PATCH /webhooks/{application_id}/{interaction_token}/messages/@original"
BUCKET_HEADERS = {
    "X-RateLimit-Limit": "5",
    "X-RateLimit-Remaining": "4",
    "X-RateLimit-Reset": "1700000000.5",
    "X-RateLimit-Reset-After": "1.5",
    "X-RateLimit-Bucket": "abcd1234abcd1234",
}

# -- a local Discord ----------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted response; body None means "what Discord would answer on success"."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall *after* handling (a slow or lost response)
    raw: bytes | None = None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    client_port: int


class StubDiscord:
    """Speaks enough of Discord's REST protocol: messages, nonce idempotency, rate-limit headers."""

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.forever: Reply | None = None  # answer every unscripted request with this
        self.seen: list[Seen] = []
        self.created: list[dict[str, Any]] = []
        self._by_nonce: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Discord

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                stub.seen.append(Seen(self.command, self.path, dict(self.headers), body, self.client_address[1]))
                with stub._lock:
                    reply = stub.script.popleft() if stub.script else stub.forever or Reply()
                    payload = reply.raw or json.dumps(
                        stub._success(self.command, self.path, body) if reply.body is None else reply.body
                    ).encode()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    headers = {**BUCKET_HEADERS, **reply.headers} if reply.status < 300 else reply.headers
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout) and closed the socket
                    self.close_connection = True

            do_POST = do_PATCH = do_GET = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v10"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def _success(self, method: str, path: str, body: Any) -> dict[str, Any]:
        body = body or {}
        nonce = body.get("nonce")
        if method == "POST" and body.get("enforce_nonce") and nonce in self._by_nonce:
            return self._by_nonce[nonce]  # Discord's idempotency: the first message again
        message = {
            "id": str(900000000000000000 + len(self.created)),
            "channel_id": path.split("/")[4] if method == "POST" else "0",
            "content": body.get("content"),
            "nonce": nonce,
            "type": 0,
        }
        self.created.append(message)
        if nonce and method == "POST":
            self._by_nonce[nonce] = message
        return message

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- fixtures -----------------------------------------------------------------------------------

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))


class FakeTime:
    """A clock that only moves when the client "sleeps"; records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture()
def spans() -> Iterator[Callable[[], list[ReadableSpan]]]:
    _exporter.clear()
    yield lambda: list(_exporter.get_finished_spans())
    _exporter.clear()


@pytest.fixture()
def stub() -> Iterator[StubDiscord]:
    server = StubDiscord()
    yield server
    server.close()
    for seen in server.seen:  # every request the client sent must match Discord's description
        oracle().check(seen.method, seen.path, seen.body, seen.headers)


@pytest.fixture()
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture()
def make_client(stub: StubDiscord, fake_time: FakeTime) -> Iterator[Callable[..., DiscordRest]]:
    clients: list[DiscordRest] = []
    limiter = RateLimiter()  # shared by this test's clients, like the process-wide default

    def make(**kwargs: Any) -> DiscordRest:
        options: dict[str, Any] = {
            "sleep": fake_time.sleep,
            "clock": fake_time.clock,
            "tracer_provider": _provider,
            "ratelimiter": limiter,
            "timeout": 2.0,
            **kwargs,
        }
        client = DiscordRest(options.pop("base_url", stub.url), options.pop("token", BOT_TOKEN), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- requests and bodies ------------------------------------------------------------------------


def test_create_message_sends_a_valid_idempotent_reply_that_pings_no_one(stub, make_client, spans):
    tracer = _provider.get_tracer("test")
    with tracer.start_as_current_span("discord.send_response") as parent:
        message = make_client().create_message(CHANNEL, "a cat fact", nonce=MESSAGE, reply_to=MESSAGE)

    assert message["content"] == "a cat fact" and message["id"]
    [seen] = stub.seen
    assert (seen.method, seen.path) == ("POST", f"/api/v10/channels/{CHANNEL}/messages")
    assert seen.body == {
        "content": "a cat fact",
        "allowed_mentions": {"parse": [], "replied_user": False},
        "nonce": MESSAGE,
        "enforce_nonce": True,
        "message_reference": {"message_id": MESSAGE, "fail_if_not_exists": False},
    }
    assert seen.headers["Authorization"] == f"Bot {BOT_TOKEN.reveal()}"
    assert seen.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"DiscordBot \(\S+, [\w.]+\)", seen.headers["User-Agent"])
    assert oracle().check("POST", seen.path, seen.body, seen.headers).operation_id == "create_message"

    [span, _] = spans()
    assert span.name == CREATE_SPAN and span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert _attrs(span) | {"server.port": 0} == {
        "http.request.method": "POST",
        "url.template": "/channels/{channel_id}/messages",
        "url.full": f"{stub.url}/channels/{CHANNEL}/messages",
        "server.address": "127.0.0.1",
        "server.port": 0,
        "http.response.status_code": 200,
        "discord.ratelimit.limit": 5,
        "discord.ratelimit.remaining": 4,
        "discord.ratelimit.reset_after": 1.5,
        "discord.ratelimit.bucket": "abcd1234abcd1234",
    }
    assert span.status.status_code is StatusCode.UNSET


def test_plain_message_without_reply_has_no_reference(stub, make_client):
    make_client().create_message(CHANNEL, "hi", nonce="n-1")
    body = stub.seen[0].body
    assert body == {"content": "hi", "allowed_mentions": {"parse": []}, "nonce": "n-1", "enforce_nonce": True}


def test_content_over_2000_characters_is_cut_with_an_ellipsis(stub, make_client):
    make_client().create_message(CHANNEL, "x" * 2500, nonce=MESSAGE)
    content = stub.seen[0].body["content"]
    assert len(content) == MAX_CONTENT and content.endswith("…") and content[:-1] == "x" * 1999


def test_truncation_counts_emoji_as_discord_does():
    cut = fit_content("🐱" * 1500)  # 1500 code points, 3000 UTF-16 units
    assert cut.endswith("…") and len(cut.encode("utf-16-le")) // 2 <= MAX_CONTENT
    assert fit_content("ok") == "ok" and fit_content("y" * MAX_CONTENT) == "y" * MAX_CONTENT


@pytest.mark.parametrize("content", ["", "   \n"])
def test_empty_content_gets_a_placeholder(stub, make_client, content):
    make_client().create_message(CHANNEL, content, nonce=MESSAGE)
    assert stub.seen[0].body["content"] == EMPTY_PLACEHOLDER


def test_echoed_everyone_and_role_mentions_stay_unparsed(stub, make_client):
    text = "@everyone @here <@&444444444444444444> <@555555555555555555>"
    make_client().create_message(CHANNEL, text, nonce=MESSAGE, reply_to=MESSAGE)
    body = stub.seen[0].body
    assert body["content"] == text
    assert body["allowed_mentions"] == {"parse": [], "replied_user": False}


def test_long_nonce_is_trimmed_to_discords_limit(stub, make_client):
    make_client().create_message(CHANNEL, "hi", nonce="n" * 40)
    assert stub.seen[0].body["nonce"] == "n" * 25


def test_redelivery_reuses_the_nonce_and_gets_the_first_message_back(stub, make_client):
    client = make_client()
    first = client.create_message(CHANNEL, "fact", nonce=MESSAGE, reply_to=MESSAGE)
    again = client.create_message(CHANNEL, "fact", nonce=MESSAGE, reply_to=MESSAGE)
    assert first["id"] == again["id"] and len(stub.created) == 1
    assert stub.seen[0].client_port == stub.seen[1].client_port  # one kept-alive connection


def test_edit_original_uses_the_webhook_route_without_authorization(stub, make_client, spans):
    message = make_client().edit_original_response(APP, INTERACTION_TOKEN, "y" * 2100)
    [seen] = stub.seen
    assert seen.method == "PATCH"
    assert seen.path == f"/api/v10/webhooks/{APP}/{INTERACTION_TOKEN.reveal()}/messages/@original"
    assert "Authorization" not in seen.headers
    assert seen.body == {"content": "y" * 1999 + "…", "allowed_mentions": {"parse": []}}
    assert message["content"] == seen.body["content"]
    op = oracle().check("PATCH", seen.path, seen.body, seen.headers)
    assert op.operation_id == "update_original_webhook_message"

    [span] = spans()
    assert span.name == EDIT_SPAN
    assert _attrs(span)["url.template"] == "/webhooks/{application_id}/{interaction_token}/messages/@original"
    assert _attrs(span)["url.full"] == f"{stub.url}/webhooks/{APP}/REDACTED/messages/@original"


def _envelope(kind: str) -> Envelope:
    interaction = InteractionRef(APP, INTERACTION_TOKEN) if kind == "interaction" else None
    return Envelope(
        kind=kind,  # type: ignore[arg-type]
        command="catfact",
        args="",
        ids=Ids(MESSAGE, CHANNEL, author="7", interaction="666666666666666666" if interaction else None),
        author_name="someone",
        received_at=datetime.now(UTC),
        interaction=interaction,
    )


def test_send_reply_picks_the_route_from_the_envelope(stub, make_client):
    client = make_client()
    send_reply(client, _envelope("message"), "to a message")
    send_reply(client, _envelope("interaction"), "to a slash command")
    create, edit = stub.seen
    assert create.method == "POST" and create.body["nonce"] == MESSAGE
    assert create.body["message_reference"]["message_id"] == MESSAGE
    assert edit.method == "PATCH" and edit.path.endswith("/messages/@original")


# -- rate limits --------------------------------------------------------------------------------


def _limited(retry_after: float, *, is_global: bool = False, scope: str = "user") -> Reply:
    headers = {"Retry-After": str(int(retry_after) + 1), "X-RateLimit-Scope": scope}
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    else:
        headers.update({**BUCKET_HEADERS, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": str(retry_after)})
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global, "code": 0}
    return Reply(429, body, headers)


def test_route_429_waits_retry_after_then_succeeds(stub, make_client, spans, fake_time):
    stub.script.extend([_limited(1.25)])
    message = make_client().create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert message["content"] == "hi"
    assert len(stub.seen) == 2 and fake_time.waits == [1.25]

    limited, ok = spans()
    assert _attrs(limited)["http.response.status_code"] == 429 and _attrs(limited)["error.type"] == "429"
    assert _attrs(limited)["discord.ratelimit.scope"] == "user"
    [event] = limited.events
    assert event.name == "discord.rate_limited"
    assert dict(event.attributes or {}) == {"retry_after": 1.25, "global": False, "scope": "user"}
    assert _attrs(ok)["http.request.resend_count"] == 1 and _attrs(ok)["http.response.status_code"] == 200


def test_global_429_holds_every_route(stub, make_client, spans, fake_time):
    stub.script.extend([_limited(4.0, is_global=True, scope="global")])
    with pytest.raises(DiscordUnavailableError, match="wait budget"):
        make_client(max_total_wait=1.0).create_message(CHANNEL, "hi", nonce=MESSAGE)
    [limited] = spans()
    assert dict(limited.events[0].attributes or {}) == {"retry_after": 4.0, "global": True, "scope": "global"}

    # Another route, another client in this process: it waits out the global limit first.
    make_client().edit_original_response(APP, INTERACTION_TOKEN, "later")
    assert fake_time.waits == [4.0]
    edit = spans()[-1]
    assert edit.name == EDIT_SPAN
    [wait] = edit.events
    assert wait.name == "discord.ratelimit.wait" and (wait.attributes or {})["global"] is True


def test_global_429_then_success(stub, make_client, fake_time):
    stub.script.extend([_limited(0.5, is_global=True, scope="global")])
    make_client().create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert fake_time.waits == [0.5] and len(stub.seen) == 2


def test_429_beyond_the_wait_budget_is_transient(stub, make_client, fake_time):
    stub.script.extend([_limited(30.0)])
    with pytest.raises(DiscordUnavailableError, match=r"30\.0s.*wait budget"):
        make_client(max_total_wait=15.0).create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert len(stub.seen) == 1 and fake_time.waits == []


def test_cloudflare_429_without_json_uses_retry_after_header(stub, make_client, fake_time):
    stub.script.extend([Reply(429, raw=b"<html>1015</html>", headers={"Retry-After": "3"})])
    make_client().create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert fake_time.waits == [3.0]


def test_exhausted_bucket_waits_before_the_next_request_to_it(stub, make_client, spans, fake_time):
    empty = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "2.5"}
    stub.script.extend([Reply(headers=empty)])
    client = make_client()
    client.create_message(CHANNEL, "one", nonce="1")
    client.create_message("999999999999999999", "other channel", nonce="2")  # other major parameter
    assert fake_time.waits == []
    client.create_message(CHANNEL, "two", nonce="3")
    assert fake_time.waits == [2.5] and len(stub.seen) == 3
    [event] = spans()[-1].events
    assert event.name == "discord.ratelimit.wait"
    assert dict(event.attributes or {}) == {"wait_seconds": 2.5, "bucket": "abcd1234abcd1234", "global": False}


# -- server errors, timeouts --------------------------------------------------------------------


def test_503_twice_then_success_backs_off_exponentially(stub, make_client, spans, fake_time):
    unavailable = Reply(503, {"message": "upstream", "code": 0})
    stub.script.extend([unavailable, unavailable])
    assert make_client().create_message(CHANNEL, "hi", nonce=MESSAGE)["content"] == "hi"
    assert len(stub.seen) == 3
    first, second = fake_time.waits
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0
    attempts = spans()
    assert [_attrs(s).get("http.request.resend_count") for s in attempts] == [None, 1, 2]
    assert [_attrs(s).get("error.type") for s in attempts] == ["503", "503", None]
    assert attempts[0].status.status_code is StatusCode.ERROR


def test_500_forever_gives_up_after_max_attempts(stub, make_client, fake_time):
    stub.forever = Reply(500, {"message": "500: Internal Server Error", "code": 0})
    with pytest.raises(DiscordUnavailableError, match="gave up after 4 attempts"):
        make_client(max_attempts=4).create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert len(stub.seen) == 4 and len(fake_time.waits) == 3


def test_timeout_is_retried_then_transient(stub, make_client, spans):
    stub.forever = Reply(delay=1.0)
    with pytest.raises(DiscordUnavailableError, match="ReadTimeout"):
        make_client(timeout=0.2, max_attempts=2).create_message(CHANNEL, "slow", nonce=MESSAGE)
    assert len(stub.seen) == 2
    assert [_attrs(s)["error.type"] for s in spans()] == ["requests.ReadTimeout"] * 2


def test_lost_response_retry_does_not_post_twice(stub, make_client):
    stub.script.extend([Reply(delay=1.0)])  # Discord created it, the answer never arrived
    message = make_client(timeout=0.2).create_message(CHANNEL, "once", nonce=MESSAGE)
    assert len(stub.seen) == 2 and len(stub.created) == 1 and message["id"] == stub.created[0]["id"]


def test_connection_refused_is_transient(make_client, fake_time):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}/api/v10", max_attempts=3)
    with pytest.raises(DiscordUnavailableError, match="ConnectionError") as info:
        client.edit_original_response(APP, INTERACTION_TOKEN, "hi")
    assert len(fake_time.waits) == 2
    assert INTERACTION_TOKEN.reveal() not in str(info.value) and info.value.__cause__ is None


# -- permanent errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"message": "401: Unauthorized", "code": 0}, r"rejected the bot token \(401\).*401: Unauthorized"),
        (403, {"message": "Missing Permissions", "code": 50013}, r"permission.*\(403\).*Missing Permissions.*50013"),
    ],
)
def test_auth_errors_fail_fast(stub, make_client, fake_time, status, body, expected):
    stub.forever = Reply(status, body)
    with pytest.raises(DiscordAuthError, match=expected):
        make_client().create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert len(stub.seen) == 1 and fake_time.waits == []


def test_missing_token_is_named(stub, make_client):
    stub.forever = Reply(401, {"message": "401: Unauthorized", "code": 0})
    with pytest.raises(DiscordAuthError, match="no bot token configured"):
        make_client(token=None).create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert "Authorization" not in stub.seen[0].headers
    stub.seen.clear()  # the oracle would rightly flag the missing header


def test_unknown_channel_is_not_found(stub, make_client):
    stub.forever = Reply(404, {"message": "Unknown Channel", "code": 10003})
    with pytest.raises(DiscordNotFoundError, match=r"Unknown Channel \(code 10003\)"):
        make_client().create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert len(stub.seen) == 1


def test_expired_interaction_is_not_found(stub, make_client):
    stub.forever = Reply(404, {"message": "Unknown Webhook", "code": 10015})
    with pytest.raises(DiscordNotFoundError, match="10015") as info:
        make_client().edit_original_response(APP, INTERACTION_TOKEN, "hi")
    assert INTERACTION_TOKEN.reveal() not in str(info.value)


def test_a_proxy_page_echoing_the_path_does_not_leak_the_interaction_token(stub, make_client):
    page = f"Cannot PATCH /webhooks/{APP}/{INTERACTION_TOKEN.reveal()}/messages/@original".encode()
    stub.forever = Reply(404, raw=page)
    with pytest.raises(DiscordNotFoundError, match="REDACTED") as info:
        make_client().edit_original_response(APP, INTERACTION_TOKEN, "hi")
    assert INTERACTION_TOKEN.reveal() not in str(info.value)


def test_bad_request_reports_discords_field_errors(stub, make_client):
    error = {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer."}]}},
    }
    stub.forever = Reply(400, error)
    with pytest.raises(DiscordRequestError, match=r"Invalid Form Body \(code 50035\): content: Must be 2000"):
        make_client().create_message(CHANNEL, "hi", nonce=MESSAGE)
    assert len(stub.seen) == 1


# -- secrets ------------------------------------------------------------------------------------


def test_tokens_never_reach_spans_logs_or_errors(stub, make_client, spans, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs request paths at DEBUG
    client = make_client(timeout=0.2, max_attempts=2)
    errors: list[str] = []
    stub.script.extend([_limited(0.1), Reply(503, {"message": "x", "code": 0})])
    client.create_message(CHANNEL, "hi", nonce=MESSAGE)
    stub.script.extend([_limited(0.1), Reply(delay=1.0)])
    client.edit_original_response(APP, INTERACTION_TOKEN, "hi")
    for reply in (Reply(401, {"message": "401: Unauthorized", "code": 0}), Reply(404, {"message": "?", "code": 10015})):
        stub.script.append(reply)
        with pytest.raises(DiscordAuthError if reply.status == 401 else DiscordNotFoundError) as info:
            client.edit_original_response(APP, INTERACTION_TOKEN, "hi")
        errors.append(repr(info.value) + str(info.value))

    recorded = spans()
    assert recorded and any("REDACTED" in r.getMessage() for r in caplog.records if r.name.startswith("urllib3"))
    texts = [span.name for span in recorded] + errors + [caplog.text]
    for span in recorded:
        texts += [str(v) for v in (span.attributes or {}).values()]
        texts += [event.name + str(dict(event.attributes or {})) for event in span.events]
        texts.append(str(span.status.description))
    for secret in (BOT_TOKEN.reveal(), INTERACTION_TOKEN.reveal()):
        assert not [t for t in texts if secret in t]


def test_http_auto_instrumentation_is_suppressed_around_discord_calls(stub, make_client):
    """If telemetry instruments ``requests`` globally, it must not add a span with the raw URL."""
    from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled

    enabled_during_send: list[bool] = []

    class Probe(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            enabled_during_send.append(is_http_instrumentation_enabled())
            return super().request(*args, **kwargs)

    with Probe() as session:
        make_client(session=session).edit_original_response(APP, INTERACTION_TOKEN, "hi")
    assert enabled_during_send == [False]


def test_real_requests_instrumentor_adds_no_second_span(stub, make_client, spans):
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    instrumentor = RequestsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        pytest.skip("requests is instrumented by the session's telemetry; not touching it")
    instrumentor.instrument(tracer_provider=_provider)
    try:
        make_client().edit_original_response(APP, INTERACTION_TOKEN, "hi")
    finally:
        instrumentor.uninstrument()
    assert [span.name for span in spans()] == [EDIT_SPAN]


# -- the budget shared through Redis (REDIS_URL) -------------------------------------------------


def _shared(server: RedisServer) -> SharedLimits:
    return SharedLimits(redis_client(Secret(server.url), timeout_s=1.0), "bot", rate=50)


def test_a_bucket_emptied_by_one_process_holds_the_other(stub, make_client, spans, redis_server):
    stub.script.extend([Reply(headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.3",
                                       "X-RateLimit-Bucket": "b1"})])
    make_client(shared_limits=_shared(redis_server), ratelimiter=RateLimiter()).create_message(CHANNEL, "a", nonce="1")
    other = make_client(shared_limits=_shared(redis_server), ratelimiter=RateLimiter(), sleep=time.sleep)
    other.create_message(CHANNEL, "b", nonce="2")  # another process: it knows the bucket only from Redis
    waits = [s for s in spans() if s.name == "discord.ratelimit.wait"]
    assert waits and _attrs(waits[0])["discord.ratelimit.scope"] == "bucket"
    assert _attrs(waits[0])["discord.ratelimit.bucket"] == CREATE_SPAN and _attrs(waits[0])["app.ratelimit.shared"]
    assert len(stub.seen) == 2
    assert _attrs(spans()[-1])["app.ratelimit.shared"] is True


def test_a_global_429_seen_by_one_process_paces_the_other(stub, make_client, spans, redis_server):
    stub.script.extend([_limited(0.5, is_global=True, scope="global")])
    with pytest.raises(DiscordUnavailableError, match="wait budget"):  # it gives up; the limit stays in Redis
        make_client(shared_limits=_shared(redis_server), ratelimiter=RateLimiter(), max_total_wait=0.1
                    ).create_message(CHANNEL, "a", nonce="1")
    make_client(shared_limits=_shared(redis_server), ratelimiter=RateLimiter(), sleep=time.sleep).create_message(
        "999999999999999999", "b", nonce="2")
    [wait] = [s for s in spans() if s.name == "discord.ratelimit.wait"]
    assert _attrs(wait)["discord.ratelimit.scope"] == "global"
    assert 0.3 < _attrs(wait)["discord.ratelimit.wait_ms"] / 1000 <= 0.5 and len(stub.seen) == 2


def test_redis_down_falls_back_and_loses_no_reply(stub, make_client, spans, redis_server):
    limits = _shared(redis_server)
    redis_server.stop()
    make_client(shared_limits=limits).create_message(CHANNEL, "still sent", nonce="1")
    assert len(stub.seen) == 1
    [client_span] = spans()
    assert _attrs(client_span)["app.ratelimit.fallback"] is True
    assert _attrs(client_span)["app.ratelimit.shared"] is False
