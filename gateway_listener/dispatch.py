"""From a parsed Discord event to an enqueued envelope, with the trace started.

Discord-free on purpose: bot.py turns discord.py objects into an :class:`Incoming`
and calls :func:`dispatch`; tests and benchmarks call it directly. This is where each
command's trace begins: ``discord.command`` (CONSUMER) with the trace-level fields
as baggage, and the ``cmd-<command> send`` PRODUCER span whose context travels
in the envelope to the function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway_listener.enqueuer import Enqueuer
from gateway_listener.parsing import Routed
from shared.envelope import TRACE_SETTER, TRIGGER_BY_KIND, Envelope, Ids, InteractionRef, Kind, encode
from shared.errors import EnvelopeError
from shared.registry import COMMANDS, MESSAGING_SYSTEM
from shared.telemetry import ENVELOPE_PROPAGATOR, SHARD_FIELD, trace_fields_context

_tracer = trace.get_tracer(__name__)


class Outcome(Enum):
    QUEUED = "queued"
    BUSY = "busy"  # buffer full: tell the user
    REJECTED = "rejected"  # cannot be encoded (oversized): tell the user


@dataclass(frozen=True)
class Incoming:
    kind: Kind
    routed: Routed
    ids: Ids
    author_name: str
    roles: tuple[str, ...] = ()
    interaction: InteractionRef | None = None
    shard: int | None = None  # the gateway shard it arrived on (discord.shard.id)


def dispatch(
    incoming: Incoming, enqueuer: Enqueuer, sample_rate: int = 1, *, on_queued: Callable[[], object] | None = None
) -> tuple[Outcome, str]:
    """Start the trace, build the envelope, buffer it. Returns the outcome and the trace id.

    ``on_queued`` runs once the envelope is buffered, with ``discord.command`` current
    (the listener's typing indicator hangs off it); it must not block."""
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
    token = context.attach(trace_fields_context(fields, rate=sample_rate))
    try:
        with _tracer.start_as_current_span(
            "discord.command", kind=SpanKind.CONSUMER, attributes=_root_attributes(env, routed, incoming.shard)
        ) as root:
            trace_id = format(root.get_span_context().trace_id, "032x")
            queue = COMMANDS[routed.command].queue
            producer = _tracer.start_span(f"{queue} send", kind=SpanKind.PRODUCER, attributes={
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": "send",
                "messaging.destination.name": queue,
            })
            ENVELOPE_PROPAGATOR.inject(env.trace, context=trace.set_span_in_context(producer), setter=TRACE_SETTER)
            try:
                text = encode(env)
            except EnvelopeError as exc:
                producer.end()
                root.set_status(Status(StatusCode.ERROR, "envelope rejected"))
                root.set_attribute("app.error", str(exc))
                return Outcome.REJECTED, trace_id
            if not enqueuer.submit(queue, text, producer):
                root.set_status(Status(StatusCode.ERROR, "listener busy"))
                root.set_attribute("app.error", "listener buffer full: message dropped, user told")
                return Outcome.BUSY, trace_id
            if on_queued is not None:
                on_queued()
            return Outcome.QUEUED, trace_id
    finally:
        context.detach(token)


def _root_attributes(env: Envelope, routed: Routed, shard: int | None) -> dict[str, str | bool]:
    attrs: dict[str, str | bool] = {
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
