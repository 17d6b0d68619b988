"""From a parsed Discord event to an enqueued envelope, with the trace started.

Discord-free on purpose: bot.py turns discord.py objects into an :class:`Incoming`
and calls :func:`dispatch`; tests and benchmarks call it directly. The trace and the
envelope are begun by :func:`shared.ingress.start_command` (the same builder the
function app's HTTP interactions endpoint uses); here the envelope goes to the
listener's buffer, whose worker ends the PRODUCER span when the send really happens.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from opentelemetry.trace import Status, StatusCode

from gateway_listener.enqueuer import Enqueuer
from shared.ingress import Incoming, start_command

__all__ = ["Incoming", "Outcome", "dispatch"]


class Outcome(Enum):
    QUEUED = "queued"
    BUSY = "busy"  # buffer full: tell the user
    REJECTED = "rejected"  # cannot be encoded (oversized): tell the user


def dispatch(
    incoming: Incoming, enqueuer: Enqueuer, sample_rate: int = 1, *, on_queued: Callable[[], object] | None = None
) -> tuple[Outcome, str]:
    """Start the trace, build the envelope, buffer it. Returns the outcome and the trace id.

    ``on_queued`` runs once the envelope is buffered, with ``discord.command`` current
    (the listener's typing indicator hangs off it); it must not block."""
    with start_command(incoming, sample_rate=sample_rate) as started:
        if started.text is None:
            return Outcome.REJECTED, started.trace_id
        if not enqueuer.submit(started.queue, started.text, started.producer):
            started.root.set_status(Status(StatusCode.ERROR, "listener busy"))
            started.root.set_attribute("app.error", "listener buffer full: message dropped, user told")
            return Outcome.BUSY, started.trace_id
        if on_queued is not None:
            on_queued()
        return Outcome.QUEUED, started.trace_id
