"""Telemetry setup: the one place that configures OpenTelemetry for a process.

Each process calls :func:`setup_telemetry` once at start-up; everything else only calls
``trace.get_tracer(__name__)``. The SDK and the exporters are imported inside setup, and
only the exporters the settings ask for, because cold start is paid by a waiting user.

Propagation has two audiences. The global propagator is W3C TraceContext only, so
instrumented calls to third parties (catfact, Scryfall, Discord) carry ``traceparent``
and never our baggage. :data:`ENVELOPE_PROPAGATOR` adds W3C Baggage and is used only
for the queue envelope, which carries the trace-level fields (:data:`TRACE_FIELDS`) to
the function side, where a baggage span processor copies them onto every span.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

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
    "PROCESS_START_NS",
    "SERVICE_NAMES",
    "SHARD_FIELD",
    "TELEMETRY_SETUP_NS",
    "TRACE_FIELDS",
    "Component",
    "build_provider",
    "build_resource",
    "flush",
    "reset_for_tests",
    "sample_rate",
    "sampling_ratio",
    "setup_telemetry",
    "shutdown",
    "trace_fields_context",
    "trace_link",
]

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

_log = logging.getLogger(__name__)
_IMPORTED_NS = time.time_ns()

ENVELOPE_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def _process_start_ns() -> int:
    """When the OS started this process, in epoch ns (else when this module was imported).

    /proc/self/stat gives the start in clock ticks since boot. Boot time is taken as
    ``now - /proc/uptime`` (10 ms resolution) rather than /proc/stat's ``btime`` (whole
    seconds), which would smear a cold start by up to a second.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        with open("/proc/uptime", "rb") as f:
            uptime_s = float(f.read().split()[0])
        now = time.time_ns()
        ticks = int(stat.rsplit(b")", 1)[1].split()[19])  # field 22; comm may contain spaces
        started = now - int((uptime_s - ticks / os.sysconf("SC_CLK_TCK")) * 1e9)
    except (OSError, ValueError, IndexError):
        return _IMPORTED_NS
    return min(started, _IMPORTED_NS)


PROCESS_START_NS: int = _process_start_ns()
TELEMETRY_SETUP_NS: tuple[int, int] | None = None  # (start, end) of setup_telemetry, for the cold_start span

_lock = threading.Lock()
_provider: TracerProvider | None = None
_requests_instrumented = False
_requests_settings: Settings | None = None  # what requests was instrumented with (for tests' restore)
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
    use_simple_processor: bool = False,
) -> TracerProvider:
    """Build and install the global TracerProvider and propagator; later calls return the first provider."""
    global _provider, TELEMETRY_SETUP_NS, _requests_instrumented
    with _lock:
        if _provider is not None:
            _log.debug("telemetry already set up; keeping the installed provider")
            return _provider
        began = time.time_ns()
        provider = build_provider(
            settings, component, extra_exporters=extra_exporters, use_simple_processor=use_simple_processor
        )
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:
            _log.warning("telemetry: another TracerProvider was installed first; this one is not global")
        from opentelemetry import propagate

        propagate.set_global_textmap(TraceContextTextMapPropagator())
        if component == "functions":
            from shared.telemetry_processors import instrument_requests

            instrument_requests(settings, provider)
            _requests_instrumented = True
            global _requests_settings
            _requests_settings = settings
        atexit.register(shutdown)
        _provider = provider
        TELEMETRY_SETUP_NS = (began, time.time_ns())
        return provider


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
    provider = _provider
    if provider is None:
        return True
    ok = _run_bounded("flush", lambda: provider.force_flush(timeout_millis), timeout_millis, key=provider)
    if not ok:
        _log.warning("telemetry flush did not finish within %d ms", timeout_millis)
    return ok


def shutdown(timeout_millis: int = 3000) -> None:
    """Flush and stop the exporters, bounded, for a clean process exit."""
    provider = _provider
    if provider is None:
        return

    def stop() -> bool:
        provider.shutdown()
        return True

    _run_bounded("shutdown", stop, timeout_millis)


def trace_link(
    trace_id_hex: str,
    settings: Settings,
    *,
    team: str | None = None,
    environment: str | None = None,
    dataset: str | None = None,
) -> str | None:
    """A Honeycomb trace deep link, or None without Honeycomb or without the team/environment slugs.

    Format (docs.honeycomb.io "Share a Trace"):
    ``https://ui.honeycomb.io/<team>/environments/<env>/datasets/<dataset>/trace?trace_id=<id>``;
    the EU region uses ``ui.eu1.honeycomb.io``. The dataset defaults to the listener's service name
    (the service holding the root span).
    """
    if not (settings.honeycomb_api_key and team and environment):
        return None
    host = "ui.eu1.honeycomb.io" if ".eu1." in urlsplit(settings.honeycomb_api_endpoint).netloc else "ui.honeycomb.io"
    from shared.telemetry_provider import service_name

    dataset = dataset or service_name(settings, "listener")
    return f"https://{host}/{team}/environments/{environment}/datasets/{dataset}/trace?trace_id={trace_id_hex}"


TestState = tuple["TracerProvider | None", "tuple[int, int] | None", "Settings | None"]


def reset_for_tests(*, shutdown_provider: bool = True) -> TestState:
    """TESTS ONLY: forget the installed provider so setup can run again; returns what was installed.

    Resets OpenTelemetry's private once-only global (as its own test utilities do).
    Tracers already resolved keep pointing at the old provider, which is why tests that
    need a fresh global hand the old one back with :func:`restore_for_tests` afterwards.
    """
    global _provider, TELEMETRY_SETUP_NS, _requests_instrumented, _requests_settings
    with _lock:
        state: TestState = (_provider, TELEMETRY_SETUP_NS, _requests_settings if _requests_instrumented else None)
        if shutdown_provider:
            shutdown(1000)
        if _requests_instrumented:
            from shared.telemetry_processors import uninstrument_requests

            uninstrument_requests()
            _requests_instrumented = False
            _requests_settings = None
        atexit.unregister(shutdown)
        from opentelemetry.util._once import Once

        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None
        _provider = None
        TELEMETRY_SETUP_NS = None
        return state


def restore_for_tests(state: TestState) -> None:
    """TESTS ONLY: shut down whatever a test installed and reinstall ``state``'s provider."""
    global _provider, TELEMETRY_SETUP_NS, _requests_instrumented, _requests_settings
    reset_for_tests()
    provider, setup_ns, requests_settings = state
    if provider is None:
        return
    with _lock:
        trace.set_tracer_provider(provider)
        _provider, TELEMETRY_SETUP_NS = provider, setup_ns
        if requests_settings is not None:
            from shared.telemetry_processors import instrument_requests

            instrument_requests(requests_settings, provider)
            _requests_instrumented, _requests_settings = True, requests_settings
        atexit.register(shutdown)
