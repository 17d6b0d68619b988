"""The poison queues, for the person on call: ``python -m ops.poison list|replay|purge``.

    python -m ops.poison list [--queue Q ...] [--json]
    python -m ops.poison replay [--queue Q ...] (--id MESSAGE_ID ... | --all) [--force]
    python -m ops.poison purge --older-than 7d [--queue Q ...]

Storage comes from ``AzureWebJobsStorage`` (a connection string, ``UseDevelopmentStorage=true``
for Azurite) or ``AzureWebJobsStorage__queueServiceUri`` with ``az login`` / a managed identity,
as for the bot itself. ``--queue`` takes ``cmd-<command>-poison`` or just ``<command>``; the
default is every command's poison queue.

What a poisoned message holds, and so where its failure reason comes from:
- parked by our function code (a bad envelope, Discord 401/403/404, other permanent errors):
  a JSON document ``{"reason", "source_queue", "message_id", "dequeue_count", "trace_id", "body"}``;
- moved by the Functions host after ``maxDequeueCount`` failed deliveries (host.json: 5): the
  original message, unchanged. The reason is not in it; the envelope's ``traceparent`` gives the
  trace id, and that trace holds the failure (App Insights ``exceptions``/``requests`` with that
  ``operation_Id``; Honeycomb ``trace.trace_id``; locally ``python -m localdev.traces --trace``).

Replay puts the original envelope back on its command's queue in a NEW trace (a ``cmd-<command>
send`` span of service ``discord-bot-ops`` with a span link to the original trace), at most once:
the poison message is leased, then rewritten in place with a ``replay`` record (the new trace id,
when) before the envelope is sent, then deleted. A crash after the rewrite leaves that record
in the poison queue: a later replay refuses the message (it may have been sent) unless
``--force``. A slash command's interaction token expires 15 minutes after the command: replaying
one later fails again on Discord (404) and is parked again.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.errors import EnvelopeError, SettingsError
from shared.registry import COMMANDS, POISON_SUFFIX, poison_queue_name
from shared.settings import PROJECT_ROOT, Settings, load_settings

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueMessage

PEEK_MAX = 32  # Storage returns at most 32 messages per peek or receive
LEASE_S = 60  # how long a replay or purge holds a message it is working on
MAX_ROUNDS = 1000  # receive batches per queue: a bound, not a expected number
HOST_MAX_DEQUEUE = json.loads((PROJECT_ROOT / "host.json").read_text())["extensions"]["queues"]["maxDequeueCount"]
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


class PoisonError(Exception):
    """One line for the operator; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Parked:
    """One poisoned message, whichever way it got there."""

    queue: str
    id: str
    inserted_at: datetime | None
    reason: str
    source_queue: str
    trace_id: str | None
    body: str  # the original message (the envelope JSON)
    parked_by: str  # "function" (our document) or "host" (moved unchanged after maxDequeueCount)
    replay: dict[str, Any] | None = None

    def age(self, now: datetime) -> timedelta | None:
        return now - self.inserted_at if self.inserted_at else None


def _text(content: Any) -> str:
    """Queue content is base64 text (host.json messageEncoding); plain text is accepted too."""
    raw = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content or "")
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return raw


def _trace_of(envelope_text: str) -> str | None:
    try:
        doc = json.loads(envelope_text)
        match = _TRACEPARENT.match(str(doc["trace"]["traceparent"]))
    except (ValueError, KeyError, TypeError):
        return None
    return match.group(1) if match else None


def parse(queue: str, msg: QueueMessage) -> Parked:
    text = _text(msg.content)
    source = queue.removesuffix(POISON_SUFFIX)
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "reason" in doc and "body" in doc:
        return Parked(queue, msg.id, msg.inserted_on, str(doc["reason"]), str(doc.get("source_queue") or source),
                      doc.get("trace_id") or _trace_of(str(doc["body"])), str(doc["body"]), "function",
                      doc.get("replay"))
    reason = (f"failed {HOST_MAX_DEQUEUE} deliveries on {source} (host maxDequeueCount); "
              "the error is in the trace (App Insights exceptions with this operation_Id)")
    return Parked(queue, msg.id, msg.inserted_on, reason, source, _trace_of(text), text, "host")


def _document(parked: Parked) -> str:
    """The poison message rewritten in our format (a host-moved one gains reason and trace id)."""
    return json.dumps({"reason": parked.reason, "source_queue": parked.source_queue, "message_id": parked.id,
                       "trace_id": parked.trace_id, "body": parked.body, "replay": parked.replay},
                      ensure_ascii=False)


# ---- storage ----------------------------------------------------------------------------

def _client(settings: Settings, queue: str) -> QueueClient:
    from shared.queues import queue_client

    # Read undecoded: a host-moved message need not be valid base64 (this module decodes leniently).
    return queue_client(settings.storage, queue, message_decode_policy=None)


def queues_for(names: Sequence[str] | None) -> list[str]:
    if not names:
        return [poison_queue_name(spec.queue) for spec in COMMANDS.values()]
    out = []
    for name in names:
        queue = name if name.endswith(POISON_SUFFIX) else poison_queue_name(
            name if name.startswith("cmd-") else f"cmd-{name}")
        if queue.removesuffix(POISON_SUFFIX) not in {s.queue for s in COMMANDS.values()}:
            raise PoisonError(f"--queue {name}: not a command's poison queue (commands: {', '.join(COMMANDS)})", 2)
        out.append(queue)
    return out


def peek(settings: Settings, queue: str) -> tuple[int, list[Parked]]:
    """(approximate count, the first messages) without taking them; a missing queue is empty."""
    from azure.core.exceptions import ResourceNotFoundError

    client = _client(settings, queue)
    try:
        count = client.get_queue_properties().approximate_message_count or 0
        shown = [parse(queue, m) for m in client.peek_messages(max_messages=PEEK_MAX)] if count else []
    except ResourceNotFoundError:
        return 0, []
    return count, shown


def _leased(client: QueueClient) -> Iterator[QueueMessage]:
    """Every message of the queue once, each leased for LEASE_S (callers delete or release it)."""
    from azure.core.exceptions import ResourceNotFoundError

    seen: set[str] = set()
    for _ in range(MAX_ROUNDS):
        try:
            batch = list(client.receive_messages(messages_per_page=PEEK_MAX, visibility_timeout=LEASE_S,
                                                 max_messages=PEEK_MAX))
        except ResourceNotFoundError:
            return
        fresh = [m for m in batch if m.id not in seen]
        for msg in batch:  # released earlier in this pass and received again: release it again
            if msg.id in seen:
                _release(client, msg)
        if not fresh:
            return
        for msg in fresh:
            seen.add(msg.id)
            yield msg


def _release(client: QueueClient, msg: QueueMessage) -> None:
    client.update_message(msg.id, msg.pop_receipt, visibility_timeout=0)


# ---- replay -------------------------------------------------------------------------------

@dataclass
class Outcome:
    id: str
    queue: str
    result: str  # replayed | refused | skipped
    detail: str
    new_trace_id: str | None = None


@contextlib.contextmanager
def _replay_trace(parked: Parked) -> Iterator[tuple[str, Callable[[Settings], None]]]:
    """The new trace's PRODUCER span (a root, linked to the original); yields (trace id, send)."""
    from opentelemetry import context, trace
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

    from shared import telemetry
    from shared.envelope import decode, encode
    from shared.queues import queue_client
    from shared.registry import MESSAGING_SYSTEM

    try:
        env = decode(parked.body)
    except EnvelopeError as exc:
        raise PoisonError(f"not an envelope this version reads ({exc}): it cannot be replayed, purge it") from exc
    links = []
    if tp := _TRACEPARENT.match(env.trace.get("traceparent", "")):
        original = SpanContext(int(tp.group(1), 16), int(tp.group(2), 16), is_remote=True,
                               trace_flags=TraceFlags(TraceFlags.SAMPLED))
        links.append(Link(original, {"app.replay.link": "original"}))
    # A new root (an invalid parent), the original only as a link; the trace fields ride as baggage again.
    no_parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(0, 0, False)))
    token = context.attach(telemetry.trace_fields_context(env.trace_fields(), no_parent))
    try:
        with trace.get_tracer(__name__).start_as_current_span(
            f"{parked.source_queue} send", kind=SpanKind.PRODUCER, links=links, attributes={
                "messaging.system": MESSAGING_SYSTEM, "messaging.operation.type": "send",
                "messaging.destination.name": parked.source_queue, "peer.service": parked.source_queue,
                "app.command": env.command,
                "app.replay": True, "app.replay.of_trace_id": parked.trace_id or "",
                "app.replay.poison_message_id": parked.id,
            }) as span:
            carrier: dict[str, str] = {}
            telemetry.ENVELOPE_PROPAGATOR.inject(carrier)
            text = encode(replace(env, trace={**env.trace, **carrier}))

            def send(settings: Settings) -> None:
                sent = queue_client(settings.storage, parked.source_queue).send_message(text)
                span.set_attribute("messaging.message.id", sent.id)

            yield format(span.get_span_context().trace_id, "032x"), send
    finally:
        context.detach(token)


def replay(settings: Settings, queue: str, ids: set[str] | None, *, force: bool = False,
           now: datetime | None = None) -> list[Outcome]:
    """Replay the chosen messages of ``queue`` (all when ``ids`` is None), each at most once."""
    now = now or datetime.now(UTC)
    client = _client(settings, queue)
    outcomes: list[Outcome] = []
    for msg in _leased(client):
        if ids is not None and msg.id not in ids:
            _release(client, msg)
            continue
        parked = parse(queue, msg)
        if parked.replay and not force:
            _release(client, msg)
            began = f"a replay began at {parked.replay.get('at')} (trace {parked.replay.get('trace_id')})"
            outcomes.append(Outcome(msg.id, queue, "refused",
                                    f"{began} and did not finish: it may have been sent; check that trace, then"
                                    " --force"))
            continue
        try:
            with _replay_trace(parked) as (new_trace, send):
                # 1. the durable marker, in the message itself, under our lease: "being replayed, trace T"
                parked.replay = {"at": now.isoformat(), "trace_id": new_trace}
                receipt = client.update_message(msg.id, msg.pop_receipt, content=_document(parked),
                                                visibility_timeout=LEASE_S).pop_receipt
                # 2. the envelope back on its command's queue
                send(settings)
        except PoisonError as exc:
            _release(client, msg)
            outcomes.append(Outcome(msg.id, queue, "skipped", str(exc)))
            continue
        # 3. done: gone from the poison queue
        client.delete_message(msg.id, receipt)
        outcomes.append(Outcome(msg.id, queue, "replayed", f"sent to {parked.source_queue}", new_trace))
    return outcomes


def purge(settings: Settings, queue: str, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete the messages parked longer ago than ``older_than``; returns how many."""
    now = now or datetime.now(UTC)
    client = _client(settings, queue)
    deleted = 0
    for msg in _leased(client):
        if msg.inserted_on is not None and now - msg.inserted_on > older_than:
            client.delete_message(msg.id, msg.pop_receipt)
            deleted += 1
        else:
            _release(client, msg)
    return deleted


# ---- command line -----------------------------------------------------------------------

def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text or "")
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number and s, m, h or d (e.g. 7d, 12h, 30m)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def _fmt_age(age: timedelta | None) -> str:
    if age is None:
        return "?"
    s = int(age.total_seconds())
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else f"{s // 3600}h{s % 3600 // 60}m" if s >= 3600 \
        else f"{s // 60}m{s % 60}s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.poison", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for name, help_text in (("list", "per queue: count, age, reason and trace id of each message"),
                            ("replay", "back onto the command's queue, in a new trace linked to the original"),
                            ("purge", "delete messages parked longer ago than --older-than")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--queue", action="append", metavar="Q", help="cmd-<command>-poison or <command> (repeatable)")
        if name == "list":
            p.add_argument("--json", action="store_true", help="one JSON object per message")
        if name == "replay":
            which = p.add_mutually_exclusive_group(required=True)
            which.add_argument("--id", action="append", metavar="MESSAGE_ID", help="the message (repeatable)")
            which.add_argument("--all", action="store_true", help="every message of the queues")
            p.add_argument("--force", action="store_true", help="replay one whose earlier replay was cut off")
        if name == "purge":
            p.add_argument("--older-than", type=parse_duration, required=True, metavar="AGE", help="e.g. 7d, 12h")
    return parser


def _list(settings: Settings, queues: list[str], as_json: bool, now: datetime) -> None:
    for queue in queues:
        count, shown = peek(settings, queue)
        if as_json:
            for p in shown:
                doc = {k: v for k, v in asdict(p).items() if k != "body"}
                doc["inserted_at"] = p.inserted_at.isoformat() if p.inserted_at else None
                print(json.dumps({**doc, "age_s": int(a.total_seconds()) if (a := p.age(now)) else None}))
            continue
        if not count:
            continue
        oldest = max((age for p in shown if (age := p.age(now)) is not None), default=None)
        print(f"{queue}: {count} message{'s' * (count != 1)}, oldest {_fmt_age(oldest)}"
              + (f" (first {len(shown)} shown)" if count > len(shown) else ""))
        for p in shown:
            replayed = f"  [replay began {p.replay.get('at')}]" if p.replay else ""
            print(f"  {p.id}  {_fmt_age(p.age(now)):>7}  trace {p.trace_id or '-'}  {p.reason}{replayed}")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    now = datetime.now(UTC)
    try:
        settings = load_settings(os.environ if environ is None else environ)
        queues = queues_for(args.queue)
        if args.action == "list":
            _list(settings, queues, args.json, now)
        elif args.action == "purge":
            for queue in queues:
                if n := purge(settings, queue, args.older_than, now):
                    print(f"{queue}: {n} deleted")
        else:
            from shared import telemetry

            telemetry.setup_telemetry(settings, "ops")
            wanted = set(args.id) if args.id else None
            outcomes: list[Outcome] = []
            try:
                for queue in queues:
                    outcomes += replay(settings, queue, wanted, force=args.force, now=now)
            finally:
                telemetry.flush(5000)
            for o in outcomes:
                trace_note = f" (new trace {o.new_trace_id})" if o.new_trace_id else ""
                print(f"{o.queue} {o.id}: {o.result}: {o.detail}{trace_note}")
            for missing in sorted((wanted or set()) - {o.id for o in outcomes}):
                print(f"{missing}: not found in {', '.join(queues)} (or leased by another replay)")
            found_all = not wanted or wanted <= {o.id for o in outcomes}
            return 0 if found_all and all(o.result == "replayed" for o in outcomes) else 1
    except (SettingsError, PoisonError) as exc:
        print(f"ops.poison: {exc}", file=sys.stderr)
        return getattr(exc, "code", 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
