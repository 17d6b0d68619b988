"""Start-up of a function app process, and how long each part of it took.

The Functions worker imports function_app.py when an instance starts; that import runs
:func:`startup` (settings, then telemetry) and builds the runtime. Each phase is timed
here into :data:`MARKS`, so the first invocation can draw a ``cold_start`` span with
``import`` (process start to now), ``telemetry_setup`` and ``runtime_setup`` children,
covering exactly the start-up work its message waited for.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared import telemetry
from shared.settings import Settings, load_settings

_IMPORTED_NS = time.time_ns()


def process_start_ns() -> int:
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

    def paid_by(self, enqueued_ns: int) -> list[tuple[str, int, int]]:
        """The start-up phases (clipped) that happened after the message was enqueued."""
        out = []
        for name, (start, end) in sorted(self.phases.items(), key=lambda kv: kv[1][0]):
            start = max(start, enqueued_ns)
            if end > start:
                out.append((name, start, end))
        return out


MARKS = StartupMarks(process_start_ns=process_start_ns())

_settings: Settings | None = None
_lock = threading.Lock()


def run_startup(settings: Settings, marks: StartupMarks, imported_ns: int) -> None:
    """Record the import phase (process start until ``imported_ns``) and set up telemetry, timed."""
    marks.phases["import"] = (marks.process_start_ns, imported_ns)
    with marks.phase("telemetry_setup"):
        telemetry.setup_telemetry(settings, "functions")


def startup(settings: Settings | None = None) -> Settings:
    """Load settings and set up telemetry once per process (safe to call again)."""
    global _settings
    with _lock:
        if _settings is None:
            imported_ns = time.time_ns()
            loaded = settings or load_settings()
            run_startup(loaded, MARKS, imported_ns)
            _settings = loaded
        return _settings
