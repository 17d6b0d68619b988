"""``reminders_due``: the queue-triggered function that fires reminders (see reminders.py).

A plain queue trigger on ``reminders-due`` (a Blueprint function_app.py registers through
EXTRA_BLUEPRINTS), so it runs unchanged under the local host and Microsoft's worker.

Each firing is its own trace: a root ``reminders-due process`` span (CONSUMER) with a span
link to the command that created the reminder, ``app.reminder.id`` and
``app.reminder.lateness_ms`` (how long after its due time Discord accepted it), and the
reminder's trace-level fields (guild, channel, author, ``app.command=remindme``) as baggage.
The post pings the creator only (``allowed_mentions``: no parsing, ``users`` = the creator),
whatever the text says, and says so when it is late (the app was down when it fell due).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import azure.functions as func
from opentelemetry import context, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from function_runtime.reminders import CLAIM_LEASE_S, Reminder, ReminderStore, parse_due_message, store_for
from function_runtime.runtime import Runtime, get_runtime
from function_runtime.triggers import STORAGE_CONNECTION
from shared import telemetry
from shared.errors import PermanentError, TransientError
from shared.registry import MESSAGING_SYSTEM, REMINDERS_DUE_QUEUE, poison_queue_name

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

FUNCTION_NAME = "reminders_due"
FLUSH_TIMEOUT_MS = 2000
EARLY_WAIT_S = 2.0  # a message seen at most this early waits in the invocation instead of re-arming
LATE_AFTER = timedelta(seconds=60)  # later than this and the post says it is late

bp = func.Blueprint()


@bp.function_name(FUNCTION_NAME)
@bp.queue_trigger(arg_name="msg", queue_name=REMINDERS_DUE_QUEUE, connection=STORAGE_CONNECTION)
def reminders_due(msg: func.QueueMessage) -> None:
    fire(msg)


def fire(msg: func.QueueMessage, runtime: Runtime | None = None, store: ReminderStore | None = None) -> None:
    """Handle one ``reminders-due`` message. Raises only for transient failures (the queue retries)."""
    rt = runtime or get_runtime()
    try:
        _fire(msg, rt, store or store_for(rt.settings.storage), time.time_ns())
    finally:
        telemetry.flush(FLUSH_TIMEOUT_MS)


def _attributes(msg: func.QueueMessage) -> dict[str, str | int | bool]:
    return {
        "faas.trigger": "pubsub",
        "faas.invoked_name": FUNCTION_NAME,
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": REMINDERS_DUE_QUEUE,
        "messaging.message.id": msg.id or "",
        "messaging.message.delivery_count": int(getattr(msg, "dequeue_count", None) or 1),
    }


def _link(reminder: Reminder) -> list[Link]:
    carrier = {"traceparent": reminder.traceparent, "tracestate": reminder.tracestate}
    span_context = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    return [Link(span_context, {"app.link.reason": "created_by"})] if span_context.is_valid else []


def _fire(msg: func.QueueMessage, rt: Runtime, store: ReminderStore, entered_ns: int) -> None:
    try:
        partition, rid = parse_due_message(msg.get_body())
    except ValueError as exc:
        with _tracer.start_as_current_span(f"{REMINDERS_DUE_QUEUE} process", kind=SpanKind.CONSUMER,
                                           start_time=entered_ns, attributes=_attributes(msg)) as span:
            span.set_status(Status(StatusCode.ERROR, "undecodable"))
            span.set_attribute("app.error", f"ValueError: {exc}"[:500])
            rt.poison(poison_queue_name(REMINDERS_DUE_QUEUE), {
                "reason": f"undecodable: {exc}", "source_queue": REMINDERS_DUE_QUEUE, "message_id": msg.id,
                "body": msg.get_body().decode("utf-8", errors="replace")})
        return
    reminder = store.get(partition, rid)
    fields = {"app.command": "remindme"}
    if reminder is not None:
        fields.update({"discord.channel.id": reminder.channel, "discord.author.id": reminder.author})
        if not reminder.partition.startswith("dm-"):
            fields["discord.guild.id"] = reminder.partition
    # A new root: an empty context, so the firing never joins whatever trace the host had current.
    token = context.attach(telemetry.trace_fields_context(fields, context.Context()))
    try:
        with _tracer.start_as_current_span(
            f"{REMINDERS_DUE_QUEUE} process", kind=SpanKind.CONSUMER, start_time=entered_ns,
            attributes={**_attributes(msg), "app.reminder.id": rid},
            links=_link(reminder) if reminder else [], record_exception=False, set_status_on_exception=False,
        ) as span:
            if reminder is None:
                span.set_attribute("app.reminder.state", "missing")
                return
            _handle(msg, rt, store, reminder, span)
    finally:
        context.detach(token)


def _handle(msg: func.QueueMessage, rt: Runtime, store: ReminderStore, reminder: Reminder, span: trace.Span) -> None:
    now = datetime.now(UTC)
    message_id = msg.id or ""
    if reminder.cancelled or reminder.posted:
        span.set_attribute("app.reminder.state", "cancelled" if reminder.cancelled else "already_fired")
        return
    early = (reminder.due - now).total_seconds()
    if early > EARLY_WAIT_S:  # further out than the 7-day visibility limit allowed: arm the next leg
        span.set_attribute("app.reminder.state", "rearmed")
        span.set_attribute("app.reminder.rearm_delay_s", store.arm(reminder, now))
        return
    if early > 0:
        time.sleep(early)  # visibility timeouts are whole seconds; never post before it is due
    if reminder.claimed_by and reminder.claimed_by != message_id:
        claimed_at = reminder.claimed_at or now
        if (datetime.now(UTC) - claimed_at).total_seconds() < CLAIM_LEASE_S:
            span.set_attribute("app.reminder.state", "claimed_elsewhere")
            return
    if reminder.claimed_by != message_id and not store.claim(reminder, message_id, datetime.now(UTC)):
        span.set_attribute("app.reminder.state", "claimed_elsewhere")
        return
    _post(rt, store, reminder, span)


def reminder_text(reminder: Reminder, lateness: timedelta) -> str:
    text = f"Hey <@{reminder.author}>, remember {reminder.text}"
    if lateness > LATE_AFTER:
        text += (f"\n(This reminder is late: it was due <t:{int(reminder.due.timestamp())}:R>, "
                 "while the bot was offline.)")
    return text


def _post(rt: Runtime, store: ReminderStore, reminder: Reminder, span: trace.Span) -> None:
    lateness = datetime.now(UTC) - reminder.due
    content = reminder_text(reminder, lateness)
    try:
        with _tracer.start_as_current_span("discord.send_response") as send_span:
            send_span.set_attribute("app.response.length", len(content))
            rt.rest.create_message(reminder.channel, content, nonce=f"rem-{reminder.id}",
                                   mention_users=(reminder.author,))
    except PermanentError as exc:  # the channel is gone or the bot was removed: no retry can help
        _fail(span, exc)
        store.mark_posted(reminder)
        span.set_attribute("app.reminder.state", "undeliverable")
        _log.error("reminder %s could not be posted: %s", reminder.id, exc)
        return
    except TransientError as exc:
        _fail(span, exc)
        raise
    store.mark_posted(reminder)
    accepted = datetime.now(UTC) - reminder.due
    span.set_attribute("app.reminder.state", "fired")
    span.set_attribute("app.reminder.lateness_ms", round(accepted.total_seconds() * 1000, 1))
    span.set_attribute("app.reminder.late", lateness > LATE_AFTER)


def _fail(span: trace.Span, exc: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    span.set_attribute("app.error", f"{type(exc).__name__}: {exc}"[:500])
