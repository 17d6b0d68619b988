"""The queue message: one typed envelope, one encode, one decode.

The listener encodes an Envelope to JSON text; the queue client base64-encodes it
(host.json ``messageEncoding: base64``); the Functions host decodes the base64 and the
trigger calls :func:`decode` on the JSON. The schema is versioned: a reader rejects
what it does not understand with an :class:`EnvelopeError` naming the problem, and
such a message goes straight to the poison queue (it can never succeed).

Trace context travels in ``trace`` (W3C traceparent, tracestate, baggage) through
:data:`ENVELOPE_GETTER` / :data:`TRACE_SETTER`, the way OpenTelemetry's SQS and Celery
integrations carry it through message attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry.propagators.textmap import Getter, Setter

from shared.errors import EnvelopeError
from shared.settings import Secret

VERSION = 1
KINDS = ("message", "interaction")
MAX_ARGS_CHARS = 4000  # Discord's longest message (Nitro); more cannot be a real command
MAX_ENCODED_BYTES = 48 * 1024  # 64 KiB queue limit after base64's 4/3 growth
TRACE_KEYS = ("traceparent", "tracestate", "baggage")

Kind = Literal["message", "interaction"]
TRIGGER_BY_KIND = {"message": "prefix", "interaction": "slash"}  # app.trigger


@dataclass(frozen=True)
class Ids:
    message: str
    channel: str
    author: str
    guild: str | None = None
    interaction: str | None = None


@dataclass(frozen=True)
class InteractionRef:
    """What the function needs to edit a deferred interaction response. The token is secret."""

    application_id: str
    token: Secret


@dataclass(frozen=True)
class Envelope:
    kind: Kind
    command: str
    args: str
    ids: Ids
    author_name: str
    received_at: datetime
    interaction: InteractionRef | None = None
    roles: tuple[str, ...] = ()
    trace: dict[str, str] = field(default_factory=dict)
    v: int = VERSION

    @property
    def nonce(self) -> str:
        """Idempotency key for the reply: the same envelope always yields the same nonce.

        A snowflake is at most 20 digits, within Discord's 25-character nonce limit.
        """
        return (self.ids.interaction or self.ids.message)[:25]

    def trace_fields(self) -> dict[str, str]:
        """Trace-level fields: carried as W3C baggage and copied onto every span, both sides."""
        fields = {
            "app.command": self.command,
            "discord.channel.id": self.ids.channel,
            "discord.author.id": self.ids.author,
        }
        if self.ids.guild:
            fields["discord.guild.id"] = self.ids.guild
        return fields


def encode(env: Envelope) -> str:
    """Envelope -> JSON text (the queue client adds base64)."""
    if len(env.args) > MAX_ARGS_CHARS:
        raise EnvelopeError(f"args: {len(env.args)} characters, more than {MAX_ARGS_CHARS}")
    doc: dict[str, Any] = {
        "v": env.v,
        "kind": env.kind,
        "command": env.command,
        "args": env.args,
        "ids": {
            "message": env.ids.message,
            "channel": env.ids.channel,
            "guild": env.ids.guild,
            "author": env.ids.author,
            "interaction": env.ids.interaction,
        },
        "author_name": env.author_name,
        "received_at": env.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "interaction": (
            {"application_id": env.interaction.application_id, "token": env.interaction.token.reveal()}
            if env.interaction
            else None
        ),
        "roles": list(env.roles),
        "trace": {k: v for k, v in env.trace.items() if k in TRACE_KEYS},
    }
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode("utf-8")) > MAX_ENCODED_BYTES:
        raise EnvelopeError(f"envelope is {len(text.encode())} bytes, more than {MAX_ENCODED_BYTES}")
    return text


def _str(doc: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not value and not optional and key != "args"):
        raise EnvelopeError(f"{where}{key}: expected a non-empty string, got {type(value).__name__}")
    return value


def _snowflake(doc: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = _str(doc, key, "ids.", optional=optional)
    if value is not None and not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise EnvelopeError(f"ids.{key}: expected a Discord snowflake (digits), got {value[:30]!r}")
    return value


def decode(raw: str | bytes) -> Envelope:
    """JSON text (or its UTF-8 bytes) -> Envelope. Raises EnvelopeError saying what is wrong."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if len(raw) > MAX_ENCODED_BYTES:
        raise EnvelopeError(f"envelope is larger than {MAX_ENCODED_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError(f"not JSON ({str(exc)[:80]})") from None
    if not isinstance(doc, dict):
        raise EnvelopeError(f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("v") != VERSION or isinstance(doc.get("v"), bool):
        raise EnvelopeError(f"unsupported envelope version {str(doc.get('v'))[:20]!r} (this reader knows {VERSION})")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise EnvelopeError(f"kind: expected one of {KINDS}, got {str(kind)[:30]!r}")
    command = _str(doc, "command", "")
    args = _str(doc, "args", "")
    assert command is not None and args is not None
    if len(args) > MAX_ARGS_CHARS:
        raise EnvelopeError(f"args: {len(args)} characters, more than {MAX_ARGS_CHARS}")
    ids_doc = doc.get("ids")
    if not isinstance(ids_doc, dict):
        raise EnvelopeError("ids: expected an object")
    ids = Ids(
        message=_snowflake(ids_doc, "message") or "",
        channel=_snowflake(ids_doc, "channel") or "",
        author=_snowflake(ids_doc, "author") or "",
        guild=_snowflake(ids_doc, "guild", optional=True),
        interaction=_snowflake(ids_doc, "interaction", optional=True),
    )
    received = _str(doc, "received_at", "")
    try:
        received_at = datetime.fromisoformat(str(received).replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError(f"received_at: not an RFC 3339 time: {str(received)[:40]!r}") from None
    if received_at.tzinfo is None:
        raise EnvelopeError("received_at: must carry a UTC offset")

    interaction: InteractionRef | None = None
    inter_doc = doc.get("interaction")
    if kind == "interaction":
        if not isinstance(inter_doc, dict):
            raise EnvelopeError("interaction: required when kind is 'interaction'")
        app_id = _str(inter_doc, "application_id", "interaction.")
        token = _str(inter_doc, "token", "interaction.")
        interaction = InteractionRef(application_id=str(app_id), token=Secret(str(token)))
        if ids.interaction is None:
            raise EnvelopeError("ids.interaction: required when kind is 'interaction'")
    elif inter_doc is not None:
        raise EnvelopeError("interaction: must be null when kind is 'message'")

    roles_doc = doc.get("roles", [])
    if not isinstance(roles_doc, list) or not all(isinstance(r, str) and r.isdigit() for r in roles_doc):
        raise EnvelopeError("roles: expected a list of role ids")
    trace_doc = doc.get("trace") or {}
    if not isinstance(trace_doc, dict):
        raise EnvelopeError("trace: expected an object")
    # Trace context is best effort: junk here never fails the command (telemetry records it).
    trace = {k: v for k, v in trace_doc.items() if k in TRACE_KEYS and isinstance(v, str)}
    author_name = doc.get("author_name")
    return Envelope(
        v=VERSION,
        kind=kind,
        command=command,
        args=args,
        ids=ids,
        author_name=author_name if isinstance(author_name, str) else "",
        received_at=received_at,
        interaction=interaction,
        roles=tuple(roles_doc),
        trace=trace,
    )


class _EnvelopeGetter(Getter[Envelope]):
    def get(self, carrier: Envelope, key: str) -> list[str] | None:
        value = carrier.trace.get(key)
        return [value] if value is not None else None

    def keys(self, carrier: Envelope) -> list[str]:
        return list(carrier.trace)


class _TraceSetter(Setter[MutableMapping[str, str]]):
    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        if key in TRACE_KEYS:
            carrier[key] = value


ENVELOPE_GETTER = _EnvelopeGetter()
TRACE_SETTER = _TraceSetter()
