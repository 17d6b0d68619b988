"""Start and stop Azurite's queue service (and, with ``tables=True``, its table service).

Azurite is started with ``node`` directly (not ``npx``: killing the npx wrapper leaves
node running), on loopback, in memory, or with ``location`` on disk: then queues, messages
(delayed ones too) and tables outlive a restart, as an Azure storage account does.
``--skipApiVersionCheck`` because the Python SDK speaks a newer storage API version than
Azurite knows; ``--loose`` so it ignores headers it does not implement.

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
TABLE_MAIN = Path("node_modules", "azurite", "dist", "src", "table", "main.js")


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
    """One Azurite queue service process (plus a table service one with ``tables``). A port of 0
    picks a free one on first start; :meth:`restart` keeps the ports, so clients built from
    :attr:`connection_string` reconnect. ``location``: a directory that keeps the data."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        project_root: Path = PROJECT_ROOT,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        tables: bool = False,
        table_port: int = 0,
        location: Path | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._tables = tables
        self._table_port = table_port
        self._location = location
        self._table_proc: subprocess.Popen[bytes] | None = None
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
    def table_endpoint(self) -> str:
        if not self._tables or not self._table_port:
            raise AzuriteError("Azurite's table service is not running: Azurite(tables=True), then start()")
        return f"http://{self._host}:{self._table_port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        tables = f"TableEndpoint={self.table_endpoint};" if self._tables else ""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={self.queue_endpoint};{tables}"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _command(self, node: str, service: str = "queue") -> list[str]:
        main_js, port = (self._main_js, self._port) if service == "queue" else (
            self._root / TABLE_MAIN, self._table_port)
        persistence = ["--location", str(self._location)] if self._location else ["--inMemoryPersistence"]
        return [
            node, str(main_js), f"--{service}Host", self._host, f"--{service}Port", str(port),
            *persistence, "--disableTelemetry", "--skipApiVersionCheck", "--loose",
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
        if self._tables and not self._table_port:
            self._table_port = free_port(self._host)
        for port in [self._port] + ([self._table_port] if self._tables else []):
            if _accepts_connections(self._host, port):
                raise AzuriteError(f"port {port} is already in use on {self._host}")
        if self._location is not None:
            self._location.mkdir(parents=True, exist_ok=True)
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        self._proc = self._spawn(node, "queue")
        if self._tables:
            self._table_proc = self._spawn(node, "table")
        deadline = time.monotonic() + self._start_timeout
        waits = [(self._proc, self._port, "queue")] + ([(self._table_proc, self._table_port, "table")]
                                                      if self._table_proc else [])
        for proc, port, service in waits:
            while not _accepts_connections(self._host, port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = Path(self._workdir.name, f"{service}.out").read_text(errors="replace")[-2000:]
                    self.stop()
                    raise AzuriteError(f"Azurite ({service}) did not start on {self._host}:{port}; "
                                       f"its output:\n{output}")
                time.sleep(0.05)
        _log.info("Azurite queue service on %s (pid %d)", self.queue_endpoint, self._proc.pid)
        return self

    def _spawn(self, node: str, service: str) -> subprocess.Popen[bytes]:
        assert self._workdir is not None
        with Path(self._workdir.name, f"{service}.out").open("wb") as out:
            # Own session: a terminal's Ctrl-C reaches our parent first, which stops us in order.
            # A scratch cwd: whatever Azurite writes besides memory (debug logs) is removed on stop.
            return subprocess.Popen(
                self._command(node, service), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self._workdir.name,
            )  # fmt: skip

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; returns when the processes are gone."""
        # Azurite's table service saves its data and exits on SIGINT only (SIGTERM kills it unsaved).
        stops = [(self._proc, signal.SIGTERM), (self._table_proc, signal.SIGINT)]
        self._proc = self._table_proc = None
        for proc, sig in stops:
            self._stop_one(proc, sig)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _stop_one(self, proc: subprocess.Popen[bytes] | None, sig: int) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                _log.warning("Azurite (pid %d) ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """SIGKILL every process, as a crash or power cut would (data on disk stays with ``location``)."""
        for proc in (self._proc, self._table_proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        self.stop()

    def restart(self) -> Azurite:
        """Stop and start again on the same ports. In memory (no ``location``): everything is gone."""
        self.stop()
        return self.start()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
