"""The ``interactions`` HTTP function: Discord's Interactions Endpoint URL (gateway-less mode).

Discord POSTs each interaction here, signed with the application's key, and waits at
most 3 seconds for the answer. This endpoint verifies the signature
(function_runtime/signature.py), answers PING with PONG, and for a slash command starts
the trace (a SERVER ``discord.command`` span, continuing an incoming ``traceparent``),
puts the same envelope the gateway listener builds (shared/ingress.py) on the command's
queue and answers "deferred" (type 5). The command function then edits ``@original``
exactly as it does for gateway interactions.

Answers: 401 for anything not signed by ``DISCORD_PUBLIC_KEY`` (missing, bad, stale, too
big), 400 for a signed body that is not an interaction, 200 otherwise; never a 500.
Spans are exported in the background: the answer never waits for an exporter.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from function_runtime.queue_sender import QueueSender, make_sender
from function_runtime.signature import SignatureError, Verifier
from function_runtime.startup import MARKS, StartupMarks, record_cold_start, startup
from shared import telemetry
from shared.ingress import Incoming, Started, slash_incoming, start_command
from shared.registry import COMMANDS
from shared.settings import Secret

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

ROUTE = "interactions"
HTTP_ROUTE = f"/api/{ROUTE}"
SPAN_NAME = f"POST {HTTP_ROUTE}"  # a request that is not a slash command (theirs is discord.command)
EPHEMERAL = 64  # message flag: only the invoking user sees it

PONG: dict[str, Any] = {"type": 1}
DEFERRED: dict[str, Any] = {"type": 5}
NO_CHOICES: dict[str, Any] = {"type": 8, "data": {"choices": []}}  # autocomplete: nothing to offer


def ephemeral(content: str) -> dict[str, Any]:
    """A CHANNEL_MESSAGE_WITH_SOURCE (type 4) only the user sees, that pings nobody."""
    return {"type": 4, "data": {"content": content, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}}}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class MalformedInteraction(ValueError):
    """Signed by Discord's key, but not an interaction this endpoint can read."""


def _snowflake(doc: Mapping[str, Any], key: str, where: str = "") -> str:
    value = doc.get(key)
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20):
        raise MalformedInteraction(f"{where}{key}: expected a snowflake")
    return value


def _object(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise MalformedInteraction(f"{key}: expected an object")
    return value


def parse_command(doc: Mapping[str, Any]) -> Incoming:
    """An APPLICATION_COMMAND interaction (Discord's Interaction object) -> Incoming."""
    data = _object(doc, "data")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedInteraction("data.name: expected a command name")
    options = data.get("options") or []
    if not isinstance(options, list):
        raise MalformedInteraction("data.options: expected a list")
    member = doc.get("member") if isinstance(doc.get("member"), dict) else None
    user = _object(member, "user") if member is not None else _object(doc, "user")  # guild vs DM
    roles = member.get("roles", []) if member is not None else []
    if not isinstance(roles, list) or not all(isinstance(r, str) and r.isdigit() for r in roles):
        raise MalformedInteraction("member.roles: expected role ids")
    token = doc.get("token")
    if not isinstance(token, str) or not token or len(token) > 500:
        raise MalformedInteraction("token: expected the interaction token")
    channel = doc.get("channel_id")
    if channel is None and isinstance(doc.get("channel"), dict):
        channel = doc["channel"].get("id")
    guild_id = doc.get("guild_id")
    if guild_id is not None:
        guild_id = _snowflake(doc, "guild_id")
    username = user.get("username")
    return slash_incoming(
        name=name,
        options=options,
        interaction_id=_snowflake(doc, "id"),
        channel_id=_snowflake({"channel_id": channel}, "channel_id"),
        author_id=_snowflake(user, "id", "user."),
        author_name=username if isinstance(username, str) else "",
        guild_id=guild_id,
        roles=roles,
        application_id=_snowflake(doc, "application_id"),
        token=Secret(token),
    )


def unknown_command_reply(requested: str) -> str:
    shown = requested[:32].replace("`", "'")
    known = ", ".join(f"`/{name}`" for name in COMMANDS)
    return f"Unknown command `/{shown}`: this bot's commands are {known}. Try `/help`."


ENQUEUE_FAILED = "Sorry, I couldn't take that command right now. Please try again in a minute. Trace id: `{}`"
UNSUPPORTED = "This bot has no buttons or forms; use its slash commands."
REFUSED = Answer(401, {"error": "invalid request signature"})


@dataclass
class _Verdict:
    """What a request turned out to be: an answer already, or a command to enqueue."""

    answer: Answer | None = None
    incoming: Incoming | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    sent_ns: int | None = None  # when Discord signed it (1 s resolution); None: not signed


def _ping(doc: Mapping[str, Any]) -> _Verdict:
    return _Verdict(Answer(200, PONG))


def _autocomplete(doc: Mapping[str, Any]) -> _Verdict:
    return _Verdict(Answer(200, NO_CHOICES))


def _unsupported(doc: Mapping[str, Any]) -> _Verdict:
    return _Verdict(Answer(200, ephemeral(UNSUPPORTED)))


def _command(doc: Mapping[str, Any]) -> _Verdict:
    incoming = parse_command(doc)
    if not incoming.routed.known:
        # Only a stale command registration can send one: nothing to run, so no queue hop.
        return _Verdict(Answer(200, ephemeral(unknown_command_reply(incoming.routed.requested))),
                        attributes={"app.requested_command": incoming.routed.requested})
    return _Verdict(incoming=incoming)


# Interaction type -> what to do (PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT).
BY_TYPE: dict[int, Callable[[Mapping[str, Any]], _Verdict]] = {
    1: _ping, 2: _command, 3: _unsupported, 4: _autocomplete, 5: _unsupported,
}


class InteractionsEndpoint:
    """The plain logic behind the HTTP function: headers + raw body in, status + JSON out."""

    def __init__(self, verifier: Verifier | None, sender: QueueSender, *, sample_rate: int = 1,
                 marks: StartupMarks = MARKS) -> None:
        self._verifier = verifier
        self._sender = sender
        self._sample_rate = sample_rate
        self._marks = marks
        self._warned = False

    def handle(self, headers: Mapping[str, str], body: bytes, *, started_ns: int | None = None) -> Answer:
        """Never raises: whatever arrives gets 200, 400 or 401.

        A slash command's SERVER span is its ``discord.command`` root; any other request
        (PING, refused, malformed, unknown command) is one ``POST /api/interactions`` span.
        """
        started_ns = started_ns or time.time_ns()
        carrier = {k.lower(): v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}
        parent = TraceContextTextMapPropagator().extract(carrier)
        first = self._marks.claim_first_invocation()
        attrs = {**_http_attributes(), "faas.coldstart": first}
        try:
            verdict = self._verdict(headers, body)
            if verdict.incoming is not None:
                return self._enqueue(verdict, parent, started_ns, attrs, first)
            assert verdict.answer is not None
            answer = verdict.answer
        except Exception as exc:  # a bug must not become a 500 (Discord disables failing endpoints)
            _log.exception("interactions: unexpected failure")
            verdict = _Verdict(attributes={"app.error": f"unexpected: {type(exc).__name__}"})
            answer = Answer(400, {"error": "could not handle the interaction"})
        with _tracer.start_as_current_span(SPAN_NAME, kind=SpanKind.SERVER, context=parent, start_time=started_ns,
                                           attributes={**attrs, **verdict.attributes}) as span:
            span.set_attribute("http.response.status_code", answer.status)
            if first:
                self._cold_start(verdict.sent_ns or started_ns)
            if answer.status >= 400:
                span.set_status(Status(StatusCode.ERROR, str(answer.body.get("error", ""))[:100]))
        return answer

    def _verdict(self, headers: Mapping[str, str], body: bytes) -> _Verdict:
        if self._verifier is None:
            if not self._warned:  # once: every request would say the same
                self._warned = True
                _log.error("interactions: DISCORD_PUBLIC_KEY is not set; refusing every request")
            return _Verdict(REFUSED, attributes={"app.error": "DISCORD_PUBLIC_KEY not set"})
        try:
            sent_ns = self._verifier.verify(headers, body) * 1_000_000_000
        except SignatureError as exc:
            return _Verdict(REFUSED, attributes={"app.error": str(exc)})
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return _Verdict(Answer(400, {"error": "body is not JSON"}))
        kind = doc.get("type") if isinstance(doc, dict) else None
        handler = BY_TYPE.get(kind) if isinstance(kind, int) and not isinstance(kind, bool) else None
        if handler is None:
            return _Verdict(Answer(400, {"error": "not an interaction this endpoint handles"}))
        try:
            verdict = handler(doc)
        except MalformedInteraction as exc:
            return _Verdict(Answer(400, {"error": f"malformed interaction: {exc}"}), attributes={"app.error": str(exc)})
        verdict.attributes["app.interaction.type"] = kind
        verdict.sent_ns = sent_ns
        return verdict

    def _cold_start(self, since_ns: int) -> None:
        """The start-up this request waited for (as the queue side does for its first message)."""
        try:
            record_cold_start(self._marks, since_ns)
        except Exception:  # telemetry is never worth failing the answer over
            _log.exception("interactions: could not record the cold start")

    def _enqueue(self, verdict: _Verdict, parent: Context, started_ns: int,
                 attrs: Mapping[str, AttributeValue], first: bool) -> Answer:
        assert verdict.incoming is not None
        with start_command(verdict.incoming, sample_rate=self._sample_rate, kind=SpanKind.SERVER, parent=parent,
                           start_time=started_ns, attributes={**attrs, "app.interaction.type": 2}) as started:
            if first:
                self._cold_start(verdict.sent_ns or started_ns)
            if started.text is None:
                answer = Answer(200, ephemeral("That command is too long."))
            else:
                answer = self._send(started)
            started.root.set_attribute("http.response.status_code", answer.status)
            return answer

    def _send(self, started: Started) -> Answer:
        try:
            message_id = self._sender.send(started.queue, started.text or "")
        except Exception as exc:  # storage down or slow: tell the user now, inside Discord's 3 s
            _log.warning("interactions: could not enqueue to %s (%s)", started.queue, type(exc).__name__)
            started.producer.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            started.producer.end()
            started.root.set_status(Status(StatusCode.ERROR, "enqueue failed"))
            started.root.set_attribute("app.error", f"enqueue failed: {type(exc).__name__}")
            return Answer(200, ephemeral(ENQUEUE_FAILED.format(started.trace_id)))
        started.producer.set_attribute("messaging.message.id", message_id)
        started.producer.end()
        return Answer(200, DEFERRED)


def _http_attributes() -> dict[str, AttributeValue]:
    return {
        "http.request.method": "POST",
        "http.route": HTTP_ROUTE,
        "url.path": HTTP_ROUTE,
        "faas.trigger": "http",
        "faas.invoked_name": ROUTE,
    }


class BackgroundFlusher:
    """Exports spans off the request path: one daemon thread, woken per request, that flushes
    until nothing new has ended (so a burst of requests shares flushes instead of piling up
    threads), and exits after ``idle_s``. A frozen instance may lose the last spans; the
    command function that follows flushes before it returns."""

    def __init__(self, flush: Callable[[], object] = telemetry.flush, idle_s: float = 30.0,
                 name: str = "interactions-flush") -> None:
        self._flush = flush
        self._name = name
        self._idle_s = idle_s
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        self._wanted.set()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while self._wanted.wait(self._idle_s):
            self._wanted.clear()
            self._flush()


FLUSHER = BackgroundFlusher()


bp = func.Blueprint()
_endpoint: InteractionsEndpoint | None = None
_endpoint_lock = threading.Lock()


def get_endpoint() -> InteractionsEndpoint:
    """Built on the first request from the process's settings: only what answering needs
    (the key and a queue client), none of the command functions' clients."""
    global _endpoint
    if _endpoint is None:
        settings = startup()
        with _endpoint_lock:
            if _endpoint is None:
                key = settings.discord_public_key
                _endpoint = InteractionsEndpoint(
                    Verifier.from_public_key(key) if key else None,
                    make_sender(settings.storage),
                    sample_rate=telemetry.sample_rate(settings),
                )
    return _endpoint


def use_endpoint(endpoint: InteractionsEndpoint | None) -> None:
    """Install (or clear) the endpoint; for tests and benchmarks."""
    global _endpoint
    _endpoint = endpoint


@bp.function_name(ROUTE)
@bp.route(route=ROUTE, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)  # the signature is the auth
def interactions(req: func.HttpRequest) -> func.HttpResponse:
    started_ns = time.time_ns()
    answer = get_endpoint().handle(req.headers, req.get_body(), started_ns=started_ns)
    FLUSHER.request()
    return func.HttpResponse(json.dumps(answer.body), status_code=answer.status, mimetype="application/json")
