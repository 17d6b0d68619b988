"""``!remindme <text> <N><unit>``: a reminder posted in this channel when it is due.

The interval may stand anywhere in the text: ``m`` minutes, ``h``/``H`` hours, ``d``/``D``
days, ``M`` months (calendar months, as the origin bot). ``!remindme list`` (your pending
reminders on this server), ``!remindme list all`` (the server's), ``!remindme cancel <id>``
(yours only), ``!remindme help``. Storage and firing: function_runtime/reminders.py.

Refused with the usage and nothing stored: no interval, zero, more than a year ahead,
no text, text over 1,500 characters, an author with 25 pending reminders on this server.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from function_runtime.context import CommandContext
from function_runtime.errors import UsageError
from function_runtime.reminders import Reminder, partition_for, reminder_id, store_for
from shared.registry import COMMANDS

SPEC = COMMANDS["remindme"]

MAX_TEXT = 1500
MAX_PENDING = 25
MAX_AHEAD_MONTHS = 12
LIST_TEXT_CHARS = 60
INTERVAL = re.compile(r"(?<!\S)(\d{1,6})([mhHdDM])(?!\S)")
UNIT_NAMES = {"m": "minute", "h": "hour", "d": "day", "M": "month"}


@dataclass(frozen=True)
class Request:
    text: str
    due: datetime


def usage(prefix: str) -> str:
    return (f"Usage: `{prefix}remindme <text> <N><unit>` (the interval anywhere in the text; units m minutes, "
            f"h hours, d days, M months; at most a year ahead), e.g. `{prefix}remindme 10m check the oven`. "
            f"Also `{prefix}remindme list`, `{prefix}remindme list all`, `{prefix}remindme cancel <id>`.")


def add_months(when: datetime, months: int) -> datetime:
    """Calendar months, the day clamped to the target month's length (Jan 31 + 1M = Feb 28/29)."""
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))


def parse(args: str, now: datetime, prefix: str = "!") -> Request:
    """The reminder's text and due time. Raises UsageError for anything else."""
    matches = list(INTERVAL.finditer(args))
    if not matches:
        raise UsageError(f"When? Put an interval such as 10m, 2h, 3d or 1M in the text. {usage(prefix)}")
    match = matches[-1]  # the last one: "buy 2m of cable 3d" is due in 3 days
    amount, unit = int(match.group(1)), match.group(2)
    if amount == 0:
        raise UsageError(f"The interval must be more than zero. {usage(prefix)}")
    text = " ".join((args[:match.start()] + args[match.end():]).split())
    if not text:
        raise UsageError(f"What should I remind you of? {usage(prefix)}")
    if len(text) > MAX_TEXT:
        raise UsageError(f"That reminder is {len(text)} characters long; the most is {MAX_TEXT}.")
    limit = add_months(now, MAX_AHEAD_MONTHS)
    try:
        if unit == "M":
            due = add_months(now, amount) if amount <= MAX_AHEAD_MONTHS else limit + timedelta(days=1)
        else:
            due = now + {"m": timedelta(minutes=amount), "h": timedelta(hours=amount),
                         "d": timedelta(days=amount)}[unit.lower()]
    except OverflowError:
        due = limit + timedelta(days=1)
    if due > limit:
        raise UsageError(f"That is more than a year ahead; the latest is {MAX_AHEAD_MONTHS}M. {usage(prefix)}")
    return Request(text, due)


def _when(due: datetime) -> str:
    unix = int(due.timestamp())
    return f"<t:{unix}:R> (<t:{unix}:f>)"


def _line(reminder: Reminder, with_author: bool) -> str:
    text = reminder.text if len(reminder.text) <= LIST_TEXT_CHARS else reminder.text[:LIST_TEXT_CHARS - 1] + "…"
    who = f" by {reminder.author_name or reminder.author}" if with_author else ""
    return f"`{reminder.id}` <t:{int(reminder.due.timestamp())}:R>{who}: {text}"


def handle(ctx: CommandContext) -> str:
    prefix = ctx.settings.bot_prefix
    env = ctx.envelope
    words = ctx.args.split()
    lowered = [w.lower() for w in words]
    store = store_for(ctx.settings.storage)
    partition = partition_for(env.ids.guild, env.ids.channel)
    span = trace.get_current_span()
    if lowered in ([], ["help"]):
        raise UsageError(usage(prefix))
    if lowered in (["list"], ["list", "all"]):
        everyone = len(lowered) == 2
        span.set_attribute("app.reminder.action", "list_all" if everyone else "list")
        pending = store.pending(partition, None if everyone else env.ids.author)
        if not pending:
            return "No pending reminders here." if everyone else "You have no pending reminders here."
        head = "Pending reminders here:" if everyone else "Your pending reminders here:"
        return "\n".join([head, *(_line(r, everyone) for r in pending[:MAX_PENDING])])
    if len(lowered) == 2 and lowered[0] == "cancel":
        span.set_attribute("app.reminder.action", "cancel")
        return _cancel(ctx, partition, lowered[1])

    span.set_attribute("app.reminder.action", "create")
    now = datetime.now(UTC)
    request = parse(ctx.args, now, prefix)
    rid = reminder_id(env.ids.interaction or env.ids.message)
    span.set_attribute("app.reminder.id", rid)
    existing = store.get(partition, rid)  # a redelivered command: the reminder is already stored
    if existing is None:
        if len(store.pending(partition, env.ids.author)) >= MAX_PENDING:
            raise UsageError(f"You already have {MAX_PENDING} pending reminders here, the most: "
                             f"`{prefix}remindme cancel <id>` one first (`{prefix}remindme list`).")
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)  # the firing trace links back to this span
        existing = store.add(Reminder(
            id=rid, partition=partition, author=env.ids.author, author_name=env.author_name,
            channel=env.ids.channel, text=request.text, due=request.due, created=now,
            source=env.ids.interaction or env.ids.message, traceparent=carrier.get("traceparent", ""),
            tracestate=carrier.get("tracestate", "")))
    if existing.pending:
        store.arm(existing, now)  # again on a redelivery: a duplicate due message fires nothing twice
    span.set_attribute("app.reminder.due", existing.due.isoformat())
    return f"Reminder `{existing.id}` set for {_when(existing.due)}. Cancel: `{prefix}remindme cancel {existing.id}`"


def _cancel(ctx: CommandContext, partition: str, rid: str) -> str:
    prefix = ctx.settings.bot_prefix
    reminder = store_for(ctx.settings.storage).get(partition, rid) if re.fullmatch(r"[a-z2-7]{8}", rid) else None
    if reminder is None or reminder.author != ctx.envelope.ids.author:
        return f"You have no reminder `{rid[:8]}` here (`{prefix}remindme list` shows yours)."
    if not reminder.pending:
        return f"Reminder `{rid}` has already " + ("been cancelled." if reminder.cancelled else "fired.")
    if not store_for(ctx.settings.storage).cancel(reminder):
        return f"Reminder `{rid}` changed meanwhile (it may have just fired); try `{prefix}remindme list`."
    return f"Cancelled reminder `{rid}`."
