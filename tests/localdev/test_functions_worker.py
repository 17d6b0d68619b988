"""The language worker process of the local host: Microsoft's azure_functions_runtime runs the app.

Through ``python -m localdev.functions_host`` as a user runs it: the app's frames run under the
library's, the worker goes away with its host (even a SIGKILLed one), and an app that cannot be
indexed stops the host with the worker's reason.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from localdev.azurite import Azurite
from shared.settings import PROJECT_ROOT
from tests.localdev.probe_support import Probe

PROBE_MODULE = "tests.localdev.probe_app"
READY = re.compile(r"Functions host ready: .*worker pid (\d+)")


class HostProcess:
    """``python -m localdev.functions_host`` with its combined output collected by a thread."""

    def __init__(self, app: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "localdev.functions_host", "--app", app, "--drain-timeout", "1"],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            if self.proc.poll() is not None:
                self._reader.join(2)
                match = re.search(pattern, self.output)
                if match:
                    return match
                raise AssertionError(f"host exited ({self.proc.returncode}) before {pattern!r}:\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output}")

    def worker_pid(self) -> int:
        return int(self.wait_for(READY.pattern).group(1))


@contextmanager
def host(app: str, azurite: Azurite, **env: str) -> Iterator[HostProcess]:
    running = HostProcess(app, {**os.environ, "AzureWebJobsStorage": azurite.connection_string, **env})
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_the_app_runs_in_a_worker_process_under_azure_functions_runtime(
        azurite: Azurite, probe: Probe, queue_names: Iterator[str]) -> None:
    # The probe app on a queue of this test's own: no message left leased for a later test.
    queue = next(queue_names)
    with host(PROBE_MODULE, azurite, PROBE_DIR=str(probe.directory), PROBE_QUEUE=queue) as h:
        worker_pid = h.worker_pid()
        assert worker_pid != h.proc.pid
        assert psutil.Process(worker_pid).ppid() == h.proc.pid
        with QueueClient.from_connection_string(azurite.connection_string, queue,
                                                message_encode_policy=TextBase64EncodePolicy()) as q:
            q.send_message("block")
        deadline = time.monotonic() + 30
        while not probe.calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert probe.calls, h.output
        os.kill(worker_pid, signal.SIGUSR1)  # faulthandler: every thread's stack, to the host's output
        dump = h.wait_for(r"(?s)Thread 0x.*?probe_app\.py.*?\n\n", timeout=10).group(0)
        # The probe's frame (innermost first) is called from the library's sync runner.
        thread = next(block for block in dump.split("\n\n") if "probe_app.py" in block)
        frames = [line for line in thread.splitlines() if line.strip().startswith("File")]
        ours = next(i for i, f in enumerate(frames) if "probe_app.py" in f)
        assert any("azure_functions_runtime" in f for f in frames[ours + 1:]), thread
        probe.release()
        h.proc.send_signal(signal.SIGTERM)
        assert h.proc.wait(timeout=20) == 0, h.output
        assert _gone(worker_pid, 5), "the worker outlived its host"


def test_a_killed_host_leaves_no_worker_behind(azurite: Azurite, probe: Probe, queue_names: Iterator[str]) -> None:
    with host(PROBE_MODULE, azurite, PROBE_DIR=str(probe.directory), PROBE_QUEUE=next(queue_names)) as h:
        worker_pid = h.worker_pid()
        h.proc.kill()  # no SIGTERM handling, no WorkerTerminate: only the broken stream tells the worker
        h.proc.wait()
        assert _gone(worker_pid, 10), "the worker outlived its SIGKILLed host"


def test_an_app_that_cannot_be_indexed_stops_the_host_with_the_reason(azurite: Azurite) -> None:
    with host("tests.localdev.broken_app", azurite) as h:
        assert h.proc.wait(timeout=60) == 2
        h._reader.join(5)
        assert "cannot start" in h.output and "broken on purpose" in h.output, h.output


def test_an_app_that_does_not_exist_is_one_clear_line(azurite: Azurite, tmp_path: Path) -> None:
    with host("tests.localdev.no_such_app:app", azurite) as h:
        assert h.proc.wait(timeout=30) == 2
        h._reader.join(5)
        assert "no module 'tests.localdev.no_such_app'" in h.output, h.output
