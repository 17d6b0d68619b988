"""Start and stop Azurite's queue service for local runs and tests.

Azurite is started with ``node`` directly (not ``npx``: killing the npx wrapper leaves
node running), in memory, on loopback. ``--skipApiVersionCheck`` because the Python SDK
speaks a newer storage API version than Azurite knows; ``--loose`` so it ignores headers
it does not implement.

    with Azurite() as azurite:          # a free port
        settings = StorageSettings(connection_string=Secret(azurite.connection_string))
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from shared.settings import PROJECT_ROOT

_log = logging.getLogger(__name__)

# The well-known development account key; public, the same for every Azurite install.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
QUEUE_MAIN = Path("node_modules", "azurite", "dist", "src", "queue", "main.js")


class AzuriteError(RuntimeError):
    """Azurite is not installed, or did not start."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Azurite:
    """One Azurite queue service process. ``port=0`` picks a free port on first start;
    :meth:`restart` keeps the port, so clients built from :attr:`connection_string` reconnect."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        project_root: Path = PROJECT_ROOT,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._host = host
        self._port = port
        self._root = project_root
        self._main_js = project_root / QUEUE_MAIN
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise AzuriteError("Azurite has no port yet: call start() first")
        return self._port

    @property
    def queue_endpoint(self) -> str:
        return f"http://{self._host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={self.queue_endpoint};"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _command(self, node: str) -> list[str]:
        return [
            node, str(self._main_js),
            "--queueHost", self._host, "--queuePort", str(self._port),
            "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
        ]  # fmt: skip

    def start(self) -> Azurite:
        """Start Azurite and return once it accepts connections. Raises AzuriteError."""
        if self.running:
            return self
        if not self._main_js.is_file():
            raise AzuriteError(f"Azurite is not installed ({self._main_js} is missing): run `npm ci` in {self._root}")
        node = shutil.which("node")
        if node is None:
            raise AzuriteError("`node` is not on PATH: install Node.js (18 or newer) to run Azurite")
        if not self._port:
            self._port = free_port(self._host)
        if _accepts_connections(self._host, self._port):
            raise AzuriteError(f"port {self._port} is already in use on {self._host}")
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        log_path = Path(self._workdir.name, "azurite.out")
        with log_path.open("wb") as out:
            # Own session: a terminal's Ctrl-C reaches our parent first, which stops us in order.
            # A scratch cwd: whatever Azurite writes besides memory (debug logs) is removed on stop.
            self._proc = subprocess.Popen(
                self._command(node), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self._workdir.name,
            )  # fmt: skip
        deadline = time.monotonic() + self._start_timeout
        while not _accepts_connections(self._host, self._port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise AzuriteError(f"Azurite did not start on {self._host}:{self._port}; its output:\n{output}")
            time.sleep(0.05)
        _log.info("Azurite queue service on %s (pid %d)", self.queue_endpoint, self._proc.pid)
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; returns when the process is gone."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                _log.warning("Azurite (pid %d) ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def restart(self) -> Azurite:
        """Stop and start again on the same port. In-memory: queues and messages are gone."""
        self.stop()
        return self.start()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
