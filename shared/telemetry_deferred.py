"""Export that starts after the first reply: spans are kept in memory until the exporters exist.

A cold function instance should send its first reply before it pays for the exporters
(the OTLP exporter's protobuf modules, the Azure Monitor exporter's azure-core stack:
hundreds of milliseconds of imports). :class:`DeferredExport` is installed in place of
the export processors; it holds ended spans until :meth:`DeferredExport.start` builds the
real processors (``force_flush`` starts it, and the invocation wrapper flushes after the
reply), then hands them every span it held, in order, and forwards from then on (log records likewise,
:class:`DeferredLogExport`). Nothing
is dropped unless more than ``max_pending`` spans end before the first flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

_log = logging.getLogger(__name__)

MAX_PENDING = 4096  # as the batch processor's own queue: a cold start ends a few dozen spans

P = TypeVar("P", SpanProcessor, LogRecordProcessor)


class _Held[P: (SpanProcessor, LogRecordProcessor)]:
    """Items (ended spans or log records) held until ``factory`` builds the processors they go to.

    ``deliver(processor, item)`` hands one item on; ``what`` names the items in the warning.
    """

    def __init__(self, factory: Callable[[], Sequence[P]], deliver: Callable[[P, Any], None],
                 max_pending: int, what: str) -> None:
        self._factory: Callable[[], Sequence[P]] = factory
        self._deliver: Callable[[P, Any], None] = deliver
        self._max_pending = max_pending
        self._what = what
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._processors: Sequence[P] | None = None
        self.dropped = 0
        self.start_ms: float | None = None  # how long building the exporters took

    @property
    def started(self) -> bool:
        return self._processors is not None

    def offer(self, item: Any) -> None:
        with self._lock:
            processors = self._processors
            if processors is None:
                if len(self._pending) < self._max_pending:
                    self._pending.append(item)
                else:
                    self.dropped += 1
                return
        for processor in processors:
            self._deliver(processor, item)

    def start(self) -> Sequence[P]:
        """Build the export processors (once) and give them the items held so far."""
        with self._lock:
            if self._processors is not None:
                return self._processors
            began = time.perf_counter()
            processors = self._processors = tuple(self._factory())
            pending, self._pending = self._pending, []
            # Under the lock: an item arriving meanwhile must not overtake the ones held.
            for item in pending:
                for processor in processors:
                    self._deliver(processor, item)
            self.start_ms = (time.perf_counter() - began) * 1000
        if self.dropped:
            _log.warning("telemetry: %d %s arrived before the exporters started and were dropped",
                         self.dropped, self._what)
        return processors

    def force_flush(self, timeout_millis: int) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        ok = True
        for processor in self.start():
            remaining = max(int((deadline - time.monotonic()) * 1000), 0)
            ok = processor.force_flush(remaining) and ok
        return ok

    def shutdown(self) -> None:
        with self._lock:
            nothing_to_send = self._processors is None and not self._pending
        if nothing_to_send:
            return  # never started and nothing held: no reason to import an exporter at exit
        for processor in self.start():
            processor.shutdown()


class DeferredExport(SpanProcessor):
    """Buffers ended spans until :meth:`start` builds the export processors with ``factory``."""

    def __init__(self, factory: Callable[[], Sequence[SpanProcessor]], max_pending: int = MAX_PENDING) -> None:
        self._held: _Held[SpanProcessor] = _Held(factory, lambda p, span: p.on_end(span), max_pending, "spans")

    @property
    def started(self) -> bool:
        return self._held.started

    @property
    def dropped(self) -> int:
        return self._held.dropped

    @property
    def start_ms(self) -> float | None:
        return self._held.start_ms

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass  # export processors only act on end

    def on_end(self, span: ReadableSpan) -> None:
        self._held.offer(span)

    def start(self) -> Sequence[SpanProcessor]:
        return self._held.start()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._held.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._held.shutdown()


class DeferredLogExport(LogRecordProcessor):
    """The same for log records: held until :meth:`start` (the span side's start calls it too)."""

    def __init__(self, factory: Callable[[], Sequence[LogRecordProcessor]], max_pending: int = MAX_PENDING) -> None:
        self._held: _Held[LogRecordProcessor] = _Held(
            factory, lambda p, record: p.on_emit(record), max_pending, "log records")

    @property
    def started(self) -> bool:
        return self._held.started

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self._held.offer(log_record)

    def start(self) -> Sequence[LogRecordProcessor]:
        return self._held.start()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._held.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._held.shutdown()
