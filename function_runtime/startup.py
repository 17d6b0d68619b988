"""Start-up of a function app instance, and how long each part of it took.

An instance starts as a Functions host process that starts the language worker process; the
worker (``azure_functions_runtime``) then indexes the app, importing function_app.py, which runs
:func:`startup` (settings, then telemetry) and builds the runtime. Each phase is timed here into
:data:`MARKS`, so the first invocation can draw a ``cold_start`` span covering exactly the
start-up work its message waited for::

    cold_start
      host_start        the host process's start until it started this worker process
      worker_start      this process's start until the worker began indexing the app
      indexing          importing function_app.py and registering its functions
        telemetry_setup
        runtime_setup

Phases before the message was enqueued are clipped away (a host that was already running
when the message arrived cost it nothing).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from opentelemetry import trace

from function_runtime import INDEXING_BEGAN_NS
from shared import telemetry
from shared.settings import Settings, load_settings

_IMPORTED_NS = time.time_ns()
_tracer = trace.get_tracer(__name__)


@functools.cache
def _boot_ns() -> int:
    """When the machine booted, in epoch ns: ``now - /proc/uptime`` (10 ms resolution) rather than
    /proc/stat's ``btime`` (whole seconds), which would smear a cold start by up to a second. Read
    once, so two processes' start times are compared against the same boot time."""
    with open("/proc/uptime", "rb") as f:
        uptime_s = float(f.read().split()[0])
    return time.time_ns() - int(uptime_s * 1e9)


def process_start_ns(pid: int | str = "self") -> int:
    """When the OS started process ``pid`` (this one by default), in epoch ns (else, for this
    process, when this module was imported; for another one, 0).

    /proc/<pid>/stat gives the start in clock ticks (10 ms) since boot.
    """
    fallback = _IMPORTED_NS if pid == "self" else 0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat.rsplit(b")", 1)[1].split()[19])  # field 22; comm may contain spaces
        started = _boot_ns() + int(ticks * 1e9 / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return fallback
    return min(started, _IMPORTED_NS) if pid == "self" else started


@dataclass
class StartupMarks:
    """Epoch-ns boundaries of this process's start-up phases (absent = not reached)."""

    process_start_ns: int
    phases: dict[str, tuple[int, int]] = field(default_factory=dict)
    first_invocation_done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record the enclosed block as start-up phase ``name``."""
        began = time.time_ns()
        yield
        self.phases[name] = (began, time.time_ns())

    def claim_first_invocation(self) -> bool:
        """True exactly once per process: for the invocation that runs first."""
        with self.lock:
            first = not self.first_invocation_done
            self.first_invocation_done = True
            return first

    def indexed(self, began_ns: int) -> None:
        """Record the ``indexing`` phase: from ``began_ns`` (the worker began importing the app) to now."""
        self.phases["indexing"] = (began_ns, time.time_ns())

    def paid_by(self, enqueued_ns: int) -> list[tuple[str, int, int]]:
        """The start-up phases (clipped) that happened after the message was enqueued."""
        out = []
        for name, (start, end) in sorted(self.phases.items(), key=lambda kv: kv[1][0]):
            start = max(start, enqueued_ns)
            if end > start:
                out.append((name, start, end))
        return out


def record_cold_start(marks: StartupMarks, since_ns: int) -> None:
    """A ``cold_start`` span (child of the current span) for the start-up the current work waited
    for: each phase clipped to ``since_ns`` (when the message was enqueued / the request sent), a
    phase that lies within another drawn as its child."""
    phases = marks.paid_by(since_ns)
    if not phases:
        return
    start, end = phases[0][1], max(p[2] for p in phases)
    with _tracer.start_as_current_span("cold_start", start_time=start, end_on_exit=False) as span:
        span.set_attribute("app.cold_start.process_start_ns", marks.process_start_ns)
        open_spans: list[tuple[trace.Span, int]] = []  # (span, its end) of the enclosing phases
        for name, p_start, p_end in phases:
            while open_spans and p_start >= open_spans[-1][1]:
                open_spans.pop()
            parent = trace.set_span_in_context(open_spans[-1][0] if open_spans else span)
            child = _tracer.start_span(name, context=parent, start_time=p_start)
            child.end(end_time=p_end)
            open_spans.append((child, p_end))
    span.end(end_time=end)


MARKS = StartupMarks(process_start_ns=process_start_ns())

_settings: Settings | None = None
_lock = threading.Lock()


def run_startup(settings: Settings, marks: StartupMarks, indexing_began_ns: int) -> None:
    """Record how the instance got here (``host_start``: the parent process's start until this
    process started; ``worker_start``: until ``indexing_began_ns``) and set up telemetry, timed."""
    parent_start = process_start_ns(os.getppid())
    if 0 < parent_start <= marks.process_start_ns:
        marks.phases["host_start"] = (parent_start, marks.process_start_ns)
    marks.phases["worker_start"] = (marks.process_start_ns, max(indexing_began_ns, marks.process_start_ns))
    with marks.phase("telemetry_setup"):
        telemetry.setup_telemetry(settings, "functions")


def startup(settings: Settings | None = None) -> Settings:
    """Load settings and set up telemetry once per process (safe to call again)."""
    global _settings
    with _lock:
        if _settings is None:
            loaded = settings or load_settings()
            run_startup(loaded, MARKS, INDEXING_BEGAN_NS)
            _settings = loaded
        return _settings
