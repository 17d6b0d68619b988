"""Where a command enters the system: one builder for both ingresses.

The gateway listener (INTERACTION_CREATE and prefix messages) and the function app's
``interactions`` HTTP endpoint (Discord's Interactions Endpoint URL) both turn what
Discord sent into an :class:`Incoming`, then :func:`start_command` starts the trace
(``discord.command`` with the trace-level fields as baggage, and the
``cmd-<command> send`` PRODUCER span), builds the one envelope and encodes it. Only
how the encoded envelope reaches the queue differs: the listener buffers it, the HTTP
function sends it before answering Discord.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from shared.envelope import TRACE_SETTER, TRIGGER_BY_KIND, Envelope, Ids, InteractionRef, Kind, encode
from shared.errors import EnvelopeError
from shared.registry import COMMANDS, HELP_COMMAND, MESSAGING_SYSTEM
from shared.settings import Secret
from shared.telemetry import ENVELOPE_PROPAGATOR, SHARD_FIELD, trace_fields_context

_tracer = trace.get_tracer(__name__)

MAX_COMMAND_NAME = 32  # Discord's own limit for command names
ROOT_SPAN = "discord.command"


@dataclass(frozen=True)
class Routed:
    command: str  # a registry name
    args: str
    requested: str  # what the user typed (differs from command when routed to help)

    @property
    def known(self) -> bool:
        return self.command == self.requested


def route(name: str, args: str) -> Routed:
    """Known commands go to their queue; anything else goes to help, which explains."""
    if name in COMMANDS:
        return Routed(command=name, args=args, requested=name)
    return Routed(command=HELP_COMMAND, args=name[:MAX_COMMAND_NAME], requested=name[:MAX_COMMAND_NAME])


@dataclass(frozen=True)
class Incoming:
    kind: Kind
    routed: Routed
    ids: Ids
    author_name: str
    roles: tuple[str, ...] = ()
    interaction: InteractionRef | None = None
    shard: int | None = None  # the gateway shard it arrived on (discord.shard.id); None over HTTP


def slash_args(options: Sequence[Mapping[str, Any]]) -> str:
    """A slash command's option values, in order, as the one ``args`` string commands parse."""
    return " ".join(str(o["value"]) for o in options if isinstance(o, Mapping) and "value" in o)


def slash_incoming(
    *,
    name: str,
    options: Sequence[Mapping[str, Any]],
    interaction_id: str,
    channel_id: str,
    author_id: str,
    author_name: str,
    guild_id: str | None,
    roles: Sequence[str],
    application_id: str,
    token: Secret,
    shard: int | None = None,
) -> Incoming:
    """A slash command (APPLICATION_COMMAND interaction), however it arrived."""
    return Incoming(
        kind="interaction",
        routed=route(name.lower(), slash_args(options)),
        ids=Ids(message=interaction_id, channel=channel_id, author=author_id, guild=guild_id,
                interaction=interaction_id),
        author_name=author_name,
        roles=tuple(roles),
        interaction=InteractionRef(application_id, token),
        shard=shard,
    )


@dataclass
class Started:
    """A command whose trace has begun: hand ``text`` to ``queue`` and end ``producer`` when sent."""

    envelope: Envelope
    root: Span
    producer: Span
    queue: str
    text: str | None  # None: the envelope could not be encoded (the root says why; producer ended)

    @property
    def trace_id(self) -> str:
        return format(self.root.get_span_context().trace_id, "032x")


@contextmanager
def start_command(
    incoming: Incoming,
    *,
    sample_rate: int = 1,
    kind: SpanKind = SpanKind.CONSUMER,
    parent: Context | None = None,
    start_time: int | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Started]:
    """Open ``discord.command`` (the trace root, or a child of ``parent``) and build the envelope.

    The listener's root is a CONSUMER (it consumes a gateway event); the HTTP endpoint's is a
    SERVER span (it answers Discord's POST) and passes its HTTP attributes and start time.
    """
    routed = incoming.routed
    env = Envelope(
        kind=incoming.kind,
        command=routed.command,
        args=routed.args,
        ids=incoming.ids,
        author_name=incoming.author_name,
        received_at=datetime.now(UTC),
        interaction=incoming.interaction,
        roles=incoming.roles,
    )
    fields = {**env.trace_fields(), SHARD_FIELD: incoming.shard}  # shard: baggage, not part of the envelope
    token = context.attach(trace_fields_context(fields, parent, rate=sample_rate))
    try:
        with _tracer.start_as_current_span(
            ROOT_SPAN, kind=kind, start_time=start_time,
            attributes={**_root_attributes(env, routed, incoming.shard), **(attributes or {})},
        ) as root:
            queue = COMMANDS[routed.command].queue
            producer = _tracer.start_span(f"{queue} send", kind=SpanKind.PRODUCER, attributes={
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": "send",
                "messaging.destination.name": queue,
                # App Insights names the dependency's target from peer.service: the queue becomes a
                # node of the Application Map between the listener and the function app.
                "peer.service": queue,
            })
            ENVELOPE_PROPAGATOR.inject(env.trace, context=trace.set_span_in_context(producer), setter=TRACE_SETTER)
            try:
                text: str | None = encode(env)
            except EnvelopeError as exc:
                producer.end()
                root.set_status(Status(StatusCode.ERROR, "envelope rejected"))
                root.set_attribute("app.error", str(exc))
                text = None
            yield Started(env, root, producer, queue, text)
    finally:
        context.detach(token)


def _root_attributes(env: Envelope, routed: Routed, shard: int | None) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        "discord.message.id": env.ids.message,
        "discord.channel.id": env.ids.channel,
        "discord.author.id": env.ids.author,
        "discord.author.name": env.author_name,
        "app.command": env.command,
        "app.args": env.args[:256],
        "app.trigger": TRIGGER_BY_KIND[env.kind],
    }
    if env.ids.guild:
        attrs["discord.guild.id"] = env.ids.guild
    if not routed.known:
        attrs["app.requested_command"] = routed.requested
    if shard is not None:
        attrs[SHARD_FIELD] = str(shard)  # a string, as the baggage copy on every other span
    return attrs
