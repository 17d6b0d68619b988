"""A local ``redis-server`` (Debian's package, installed by scripts/setup) on a free port.

No persistence, no config file, bound to 127.0.0.1: it holds only the bot's shared rate-limit
state (shared/discord_limits.py). ``stop()``/``start()`` keep the port, so tests and the
benchmark can take Redis away mid-burst and bring it back.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import time
from types import TracebackType

from localdev.azurite import _accepts_connections, free_port

_log = logging.getLogger(__name__)


class RedisError(RuntimeError):
    """redis-server is not installed, or did not start."""


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", start_timeout: float = 10.0) -> None:
        self.host = host
        self._port = port
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RedisError("redis-server has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        binary = redis_server_binary()
        if binary is None:
            raise RedisError("redis-server is not on PATH: run scripts/setup (it installs Debian's redis-server)")
        if not self._port:
            self._port = free_port(self.host)
        self._proc = subprocess.Popen(
            [binary, "--port", str(self._port), "--bind", self.host, "--save", "", "--appendonly", "no",
             "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + self._start_timeout
        while not _accepts_connections(self.host, self._port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RedisError(f"redis-server did not start on {self.host}:{self._port}")
            time.sleep(0.02)
        _log.info("redis-server on %s (pid %d)", self.url, self._proc.pid)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
