"""Export that starts after the first reply: spans are kept in memory until the exporters exist.

A cold function instance should send its first reply before it pays for the exporters
(the OTLP exporter's protobuf modules, the Azure Monitor exporter's azure-core stack:
hundreds of milliseconds of imports). :class:`DeferredExport` is installed in place of
the export processors; it holds ended spans until :meth:`DeferredExport.start` builds the
real processors (``force_flush`` starts it, and the invocation wrapper flushes after the
reply), then hands them every span it held, in order, and forwards from then on. Nothing
is dropped unless more than ``max_pending`` spans end before the first flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

_log = logging.getLogger(__name__)

MAX_PENDING = 4096  # as the batch processor's own queue: a cold start ends a few dozen spans


class DeferredExport(SpanProcessor):
    """Buffers ended spans until :meth:`start` builds the export processors with ``factory``."""

    def __init__(self, factory: Callable[[], Sequence[SpanProcessor]], max_pending: int = MAX_PENDING) -> None:
        self._factory = factory
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: list[ReadableSpan] = []
        self._processors: Sequence[SpanProcessor] | None = None
        self.dropped = 0
        self.start_ms: float | None = None  # how long building the exporters took

    @property
    def started(self) -> bool:
        return self._processors is not None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass  # export processors only act on end

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            processors = self._processors
            if processors is None:
                if len(self._pending) < self._max_pending:
                    self._pending.append(span)
                else:
                    self.dropped += 1
                return
        for processor in processors:
            processor.on_end(span)

    def start(self) -> Sequence[SpanProcessor]:
        """Build the export processors (once) and give them the spans held so far."""
        with self._lock:
            if self._processors is not None:
                return self._processors
            began = time.perf_counter()
            processors = self._processors = tuple(self._factory())
            pending, self._pending = self._pending, []
            # Under the lock: a span ending meanwhile must not overtake the ones held.
            for span in pending:
                for processor in processors:
                    processor.on_end(span)
            self.start_ms = (time.perf_counter() - began) * 1000
        if self.dropped:
            _log.warning("telemetry: %d spans ended before the exporters started and were dropped", self.dropped)
        return processors

    def force_flush(self, timeout_millis: int = 30000) -> bool:
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
