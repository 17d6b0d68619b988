"""Start and stop the bot's processes on one machine: Azurite, the functions host, the listener.

Children are started with ``python -m`` from the project root and stopped with SIGTERM
(then SIGKILL after a bound), so nothing is left running. Used by ``python -m localdev``,
the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import PROJECT_ROOT

_log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    module: str
    env: Mapping[str, str]
    log_path: Path | None = None
    args: Sequence[str] = ()  # extra command-line arguments after ``-m module``
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Child:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - closed once the child has it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args], cwd=PROJECT_ROOT, env=dict(self.env),
            stdout=out, stderr=out,
            start_new_session=True,  # Ctrl-C at the prompt is ours to forward, not the terminal's
        )
        if not isinstance(out, int):
            out.close()  # the child has its own copy
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would (for reliability tests)."""
        self.stop(timeout=5, sig=signal.SIGKILL)


def child_env(overrides: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_for_line(path: Path, needle: str, timeout: float, proc: Child | None = None) -> bool:
    """Wait until ``needle`` appears in a child's log (e.g. the host's ready line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return True
        if proc is not None and not proc.running:
            return False
        time.sleep(0.05)
    return False
