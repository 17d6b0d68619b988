"""The one wrapper every command's queue trigger calls.

``invoke(msg, spec, handler)`` decodes the envelope, continues the listener's trace,
opens ``cmd-<command> process`` with its children (queue.wait, cold_start,
feature_flags, the command's own span, discord.send_response), sends the reply and
flushes spans before returning (an idle Functions instance may be frozen).

Failure policy (DESIGN.md "Reliability rules"):
- a message that can never succeed (bad envelope, wrong queue, Discord 401/403/404)
  goes to ``<queue>-poison`` at once with the reason, and the invocation succeeds;
- a command that fails (external API down, a bug) gets an apology with the trace id;
  it is not retried, since the retry's reply would be swallowed by the nonce anyway;
- a transient failure sending the reply (Discord 5xx/429 beyond budget, timeouts) is
  raised, so the queue redelivers the message and the nonce prevents a double reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes, AttributeValue

from function_runtime.context import CommandContext, Handler
from function_runtime.errors import ExternalApiError, UsageError
from function_runtime.replies import send_reply
from function_runtime.runtime import Runtime, get_runtime
from function_runtime.startup import record_cold_start
from shared import telemetry
from shared.envelope import ENVELOPE_GETTER, TRIGGER_BY_KIND, Envelope, decode
from shared.errors import EnvelopeError, PermanentError, TransientError
from shared.registry import COMMANDS, MESSAGING_SYSTEM, CommandSpec, poison_queue_name

if TYPE_CHECKING:
    import azure.functions as func

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

FLUSH_TIMEOUT_MS = 2000
RESPONSE_ATTR_CHARS = 256
ALL_FLAGS = sorted({flag for spec in COMMANDS.values() for flag in spec.flags})


def invoke(msg: func.QueueMessage, spec: CommandSpec, handler: Handler, runtime: Runtime | None = None) -> None:
    """Run one command for one queue message. Raises only for transient failures."""
    entered_ns = time.time_ns()
    rt = runtime or get_runtime()
    try:
        _invoke(msg, spec, handler, rt, entered_ns)
    finally:
        telemetry.flush(FLUSH_TIMEOUT_MS)


def _invoke(msg: func.QueueMessage, spec: CommandSpec, handler: Handler, rt: Runtime, entered_ns: int) -> None:
    first = rt.marks.claim_first_invocation()
    try:
        env = decode(msg.get_body())
        if env.command != spec.name:
            raise EnvelopeError(f"command {env.command[:40]!r} arrived on {spec.queue}")
    except EnvelopeError as exc:
        _poison_undecodable(msg, spec, rt, exc, entered_ns, first)
        return

    parent, trace_problem = _parent_context(env)
    token = context.attach(parent)
    try:
        with _tracer.start_as_current_span(
            f"{spec.queue} process",
            kind=SpanKind.CONSUMER,
            start_time=entered_ns,
            attributes=_process_attributes(msg, spec, env, first),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if trace_problem:
                span.set_attribute("app.trace_context_error", trace_problem)
            _record_queue_wait(msg, env, entered_ns)
            if first:
                record_cold_start(rt.marks, _enqueued_ns(msg, env))
            _run_and_reply(msg, spec, handler, rt, env, span)
    finally:
        context.detach(token)


def _run_and_reply(
    msg: func.QueueMessage, spec: CommandSpec, handler: Handler, rt: Runtime, env: Envelope, span: Span
) -> None:
    trace_id = format(span.get_span_context().trace_id, "032x")
    # Evaluated when first read (a gated command, help): a reply that needs no flag does not
    # wait for them (nor, on a cold instance, for loading them); they are traced after it.
    flags = _FlagsOnDemand(lambda: _evaluate_flags(rt, env, span))
    ctx = CommandContext(envelope=env, spec=spec, settings=rt.settings, http=rt.http, flags=flags, trace_id=trace_id)
    reply = _run_command(handler, ctx, span)
    try:
        with _tracer.start_as_current_span("discord.send_response") as send_span:
            send_span.set_attribute("app.response", reply[:RESPONSE_ATTR_CHARS])
            send_span.set_attribute("app.response.length", len(reply))
            send_reply(rt.rest, env, reply)
        # What the user waited: from the listener receiving the message to the reply being
        # accepted by Discord. The queryable "how slow is this command" number.
        span.set_attribute("app.end_to_end_ms", round((time.time_ns() - _received_ns(env)) / 1e6, 1))
        flags.evaluate()
    except PermanentError as exc:
        _fail(span, exc)
        _send_to_poison(rt, spec, msg, exc, trace_id)
    except TransientError as exc:
        _fail(span, exc)
        raise


def _run_command(handler: Handler, ctx: CommandContext, process_span: Span) -> str:
    spec, prefix = ctx.spec, ctx.settings.bot_prefix
    if not ctx.may_run(spec):
        process_span.set_attribute("app.denied", True)
        return f"Command not allowed: you don't have access to `{prefix}{spec.name}`."
    with _tracer.start_as_current_span(spec.name, record_exception=False, set_status_on_exception=False) as span:
        try:
            return handler(ctx)
        except UsageError as exc:
            span.set_attribute("app.usage_error", str(exc)[:RESPONSE_ATTR_CHARS])
            return str(exc) or f"Usage: `{prefix}{spec.name} {spec.usage}`"
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            _fail(process_span, exc)
            if isinstance(exc, ExternalApiError):  # a dependency's failure, not ours: no traceback
                _log.warning("command %s: external API failed: %s (trace %s)", spec.name, exc, ctx.trace_id)
            else:
                _log.exception("command %s failed (trace %s)", spec.name, ctx.trace_id)
            what = str(exc) if isinstance(exc, ExternalApiError) and str(exc) else "something went wrong"
            return f"Sorry, `{prefix}{spec.name}` failed: {what}. Trace id: `{ctx.trace_id}`"


def _evaluate_flags(rt: Runtime, env: Envelope, process_span: Span) -> Mapping[str, bool]:
    if not ALL_FLAGS:
        return {}
    with _tracer.start_as_current_span("feature_flags", attributes={"app.flags.count": len(ALL_FLAGS)}) as span:
        try:
            results = rt.flags.evaluate(list(ALL_FLAGS), env)
        except Exception as exc:  # flags are never worth failing a command over: all off
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, "flag evaluation failed"))
            results = dict.fromkeys(ALL_FLAGS, False)
    for key, value in results.items():
        process_span.set_attribute(f"feature_flag.{key}", value)
    return results


class _FlagsOnDemand(Mapping[str, bool]):
    """The author's flags as a mapping, evaluated (once) the first time anything reads them."""

    def __init__(self, evaluate: Callable[[], Mapping[str, bool]]) -> None:
        self._evaluate = evaluate
        self._values: Mapping[str, bool] | None = None

    def evaluate(self) -> Mapping[str, bool]:
        if self._values is None:
            self._values = self._evaluate()
        return self._values

    def __getitem__(self, key: str) -> bool:
        return self.evaluate()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.evaluate())

    def __len__(self) -> int:
        return len(self.evaluate())


def _fail(span: Span, exc: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    span.set_attribute("app.error", f"{type(exc).__name__}: {exc}"[:500])


def _parent_context(env: Envelope) -> tuple[context.Context, str | None]:
    """The listener's context plus the trace-level baggage; a garbled traceparent starts a new root."""
    ctx = telemetry.ENVELOPE_PROPAGATOR.extract(carrier=env, getter=ENVELOPE_GETTER)
    problem = None
    if "traceparent" in env.trace and not trace.get_current_span(ctx).get_span_context().is_valid:
        problem = f"malformed traceparent {env.trace['traceparent'][:60]!r}: started a new trace"
        _log.warning("%s (message %s)", problem, env.ids.message)
    # Rebuilt from the envelope itself, so even a message with garbled trace context has them.
    return telemetry.trace_fields_context(env.trace_fields(), ctx), problem


def _message_attributes(msg: func.QueueMessage, spec: CommandSpec, first: bool) -> dict[str, AttributeValue]:
    """What every process span says about the trigger and the queue message, decodable or not."""
    return {
        "faas.trigger": "pubsub",
        "faas.coldstart": first,
        "faas.invoked_name": spec.name,
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": spec.queue,
        "messaging.message.id": msg.id or "",
        "messaging.message.delivery_count": _dequeue_count(msg),
    }


def _process_attributes(msg: func.QueueMessage, spec: CommandSpec, env: Envelope, first: bool) -> Attributes:
    attrs: Attributes = {
        **_message_attributes(msg, spec, first),
        "app.command": env.command,
        "app.args": env.args[:RESPONSE_ATTR_CHARS],
        "app.trigger": TRIGGER_BY_KIND[env.kind],
        "discord.message.id": env.ids.message,
        "discord.author.name": env.author_name,
    }
    return attrs


def _dequeue_count(msg: func.QueueMessage) -> int:
    return int(getattr(msg, "dequeue_count", None) or 1)


def _to_ns(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1e9) if value is not None else None


def _received_ns(env: Envelope) -> int:
    return int(env.received_at.timestamp() * 1e9)


def _enqueued_ns(msg: func.QueueMessage, env: Envelope) -> int:
    """When the message entered the queue, as precisely as we can tell.

    Storage reports insertion time in whole seconds, so on its own it can put the
    start of queue.wait up to a second early; the listener's ``received_at`` (ms
    precision, taken just before the send) bounds it from below.
    """
    received = _received_ns(env)
    inserted = _to_ns(getattr(msg, "insertion_time", None))
    return received if inserted is None else max(inserted, received)


def _record_queue_wait(msg: func.QueueMessage, env: Envelope, dequeued_ns: int) -> None:
    start = min(_enqueued_ns(msg, env), dequeued_ns)
    _tracer.start_span("queue.wait", start_time=start, attributes={
        "messaging.message.delivery_count": _dequeue_count(msg),
    }).end(end_time=dequeued_ns)


def _send_to_poison(rt: Runtime, spec: CommandSpec, msg: func.QueueMessage, exc: BaseException, trace_id: str) -> None:
    """Park the original message with the reason; it is kept whole so it can be replayed."""
    reason = f"{type(exc).__name__}: {exc}"
    _log.error("poisoning message %s from %s: %s (trace %s)", msg.id, spec.queue, reason, trace_id)
    document: dict[str, object] = {
        "reason": reason,
        "source_queue": spec.queue,
        "message_id": msg.id,
        "dequeue_count": _dequeue_count(msg),
        "trace_id": trace_id,
        "body": msg.get_body().decode("utf-8", errors="replace"),
    }
    rt.poison(poison_queue_name(spec.queue), document)


def _poison_undecodable(
    msg: func.QueueMessage, spec: CommandSpec, rt: Runtime, exc: EnvelopeError, entered_ns: int, first: bool
) -> None:
    """A message that can never succeed: record why on a new trace, park it, don't retry."""
    with _tracer.start_as_current_span(
        f"{spec.queue} process",
        kind=SpanKind.CONSUMER,
        start_time=entered_ns,
        attributes={**_message_attributes(msg, spec, first), "app.poison": True},
    ) as span:
        _fail(span, exc)
        _send_to_poison(rt, spec, msg, exc, format(span.get_span_context().trace_id, "032x"))
