"""Telemetry setup: the one place that configures OpenTelemetry for a process.

Each process calls :func:`setup_telemetry` once at start-up; everything else only calls
``trace.get_tracer(__name__)``. The SDK is imported inside setup, and only the exporters
the settings ask for, because cold start is paid by a waiting user. On the function side
even those wait: the exporters start at the first :func:`flush` (after the first reply;
spans ended before are held, see shared/telemetry_deferred.py), and ``requests`` is
instrumented by :func:`instrument_requests` on the first external call or that flush.

Logs: setup also adds a ``logging.Handler`` (shared/telemetry_logs.py) to the root logger, so
records at INFO and above are exported as OpenTelemetry logs in the trace of the span that was
current, to the same destinations as the spans; :func:`flush` and :func:`shutdown` cover both.

Propagation has two audiences. The global propagator is W3C TraceContext only, so
instrumented calls to third parties (catfact, Scryfall, Discord) carry ``traceparent``
and never our baggage. :data:`ENVELOPE_PROPAGATOR` adds W3C Baggage and is used only
for the queue envelope, which carries the trace-level fields (:data:`TRACE_FIELDS`) to
the function side, where a baggage span processor copies them onto every span.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import baggage, trace
from opentelemetry import context as context_api
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.settings import Settings
from shared.telemetry_provider import (
    SERVICE_NAMES,
    SHARD_FIELD,
    TRACE_FIELDS,
    Component,
    build_provider,
    build_resource,
    sample_rate,
    sampling_ratio,
)

__all__ = [
    "ENVELOPE_PROPAGATOR",
    "SERVICE_NAMES",
    "SHARD_FIELD",
    "TRACE_FIELDS",
    "Component",
    "build_provider",
    "build_resource",
    "flush",
    "sample_rate",
    "sampling_ratio",
    "setup_telemetry",
    "shutdown",
    "trace_fields_context",
]

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

_log = logging.getLogger(__name__)

ENVELOPE_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


_lock = threading.Lock()
_provider: TracerProvider | None = None
_log_provider: LoggerProvider | None = None
_log_handler: logging.Handler | None = None
_requests_instrumented = False
_requests_settings: Settings | None = None  # what requests was instrumented with (tests restore it)
_flush_lock = threading.Lock()
_flusher: tuple[object, _Job] | None = None  # (provider, job) of the last flush


def trace_fields_context(
    fields: Mapping[str, str | int | None], context: Context | None = None, *, rate: int | None = None
) -> Context:
    """``context`` with the trace-level fields (and, given ``rate``, SampleRate) set as baggage.

    Both sides use it: the listener around its root span (``rate`` = its sample rate), the
    function around its process span (SampleRate then arrives with the envelope's baggage).
    Attach the result (``token = context.attach(ctx)`` ... ``context.detach(token)``):
    ``start_as_current_span(context=ctx)`` alone would not keep the baggage current for
    child spans or for the envelope inject. The fields then land on every span of the
    trace. Keys outside :data:`TRACE_FIELDS` are ignored.
    """
    ctx = context_api.get_current() if context is None else context
    if rate is not None:
        ctx = baggage.set_baggage("SampleRate", str(rate), ctx)
    for key, value in fields.items():
        if key in TRACE_FIELDS and value is not None:
            ctx = baggage.set_baggage(key, str(value), ctx)
    return ctx


def setup_telemetry(
    settings: Settings,
    component: Component,
    *,
    extra_exporters: Sequence[SpanExporter] = (),
    extra_log_exporters: Sequence[LogRecordExporter] = (),
    use_simple_processor: bool = False,
) -> TracerProvider:
    """Build and install the global TracerProvider and propagator, and the log handler; later calls
    return the first provider."""
    global _provider, _requests_settings, _log_provider, _log_handler
    with _lock:
        if _provider is not None:
            _log.debug("telemetry already set up; keeping the installed provider")
            return _provider
        # A function instance's first reply must not wait for the exporters' imports: they
        # start on the first flush, which the invocation wrapper runs after the reply.
        provider = build_provider(
            settings, component, extra_exporters=extra_exporters, use_simple_processor=use_simple_processor,
            defer_export=component == "functions",
        )
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:
            _log.warning("telemetry: another TracerProvider was installed first; this one is not global")
        from opentelemetry import propagate

        propagate.set_global_textmap(TraceContextTextMapPropagator())
        if component == "functions":
            _requests_settings = settings  # instrumented on first use: see instrument_requests()
        from shared import telemetry_logs

        _log_provider, _ = telemetry_logs.build_logger_provider(
            settings, provider.resource, extra_exporters=extra_log_exporters, simple=use_simple_processor,
            defer=component == "functions")
        _log_handler = telemetry_logs.install_handler(_log_provider, settings)
        atexit.register(shutdown)
        _provider = provider
        return provider


def instrument_requests() -> None:
    """CLIENT spans for ``requests`` calls from now on (function side; once, cheap after that).

    Not part of setup: the instrumentation's imports cost a cold start tens of milliseconds
    that a reply needing no external call should not wait for. The first external call
    (function_runtime.http.TracedSession) or the first flush after a reply does it.
    """
    global _requests_instrumented
    if _requests_instrumented or _requests_settings is None:
        return
    with _lock:
        if _requests_instrumented or _requests_settings is None or _provider is None:
            return
        from shared.telemetry_processors import instrument_requests as instrument

        instrument(_requests_settings, _provider)
        _requests_instrumented = True


class _Job:
    """One bounded background call; its outcome stays with it, for whoever waits on it."""

    def __init__(self, name: str, target: Callable[[], bool]) -> None:
        self.ok = False
        self.thread = threading.Thread(target=self._run, args=(name, target), name=f"telemetry-{name}", daemon=True)

    def _run(self, name: str, target: Callable[[], bool]) -> None:
        try:
            self.ok = bool(target())
        except Exception:
            _log.exception("telemetry %s failed", name)

    def wait(self, deadline: float) -> bool:
        self.thread.join(max(deadline - time.monotonic(), 0))
        return not self.thread.is_alive() and self.ok


def _run_bounded(name: str, target: Callable[[], bool], timeout_millis: int, *, key: object = None) -> bool:
    """Run ``target()`` in a daemon thread, waiting at most ``timeout_millis``; False if it fails or overruns.

    With a ``key``, calls are serialised: a still-running call for the same key is waited
    on first (a flush stuck on a dead endpoint holds the export lock, and more threads
    would only pile up behind it), then this call's own run gets the time that is left,
    so spans that ended after the earlier flush began are exported too.
    """
    global _flusher
    deadline = time.monotonic() + max(timeout_millis, 0) / 1000
    if key is not None:
        with _flush_lock:
            running = _flusher[1] if _flusher is not None and _flusher[0] is key else None
        if running is not None and running.thread.is_alive() and not running.wait(deadline) \
                and running.thread.is_alive():
            return False
    job = _Job(name, target)
    try:
        job.thread.start()
    except RuntimeError as exc:  # interpreter shutting down, or out of threads
        _log.warning("telemetry %s not started: %s", name, exc)
        return False
    if key is not None:
        with _flush_lock:
            _flusher = (key, job)
    return job.wait(deadline)


def flush(timeout_millis: int = 2000) -> bool:
    """Export what has ended, waiting at most ``timeout_millis``; never raises.

    The SDK's BatchSpanProcessor ignores its own flush timeout (it exports synchronously,
    and an exporter retries until its own deadline), so the bound is enforced here.
    """
    provider, logs = _provider, _log_provider
    if provider is None:
        return True

    def export() -> bool:
        ok = provider.force_flush(timeout_millis)  # the first one also starts deferred exporters
        ok = (logs is None or logs.force_flush(timeout_millis)) and ok
        instrument_requests()  # after the first reply: later invocations' calls are traced from the start
        return ok

    ok = _run_bounded("flush", export, timeout_millis, key=provider)
    if not ok:
        _log.warning("telemetry flush did not finish within %d ms", timeout_millis)
    return ok


def shutdown(timeout_millis: int = 3000) -> None:
    """Flush and stop the exporters, bounded, for a clean process exit."""
    provider, logs, handler = _provider, _log_provider, _log_handler
    if provider is None:
        return

    def stop() -> bool:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
        provider.shutdown()
        if logs is not None:
            logs.shutdown()
        return True

    _run_bounded("shutdown", stop, timeout_millis)
