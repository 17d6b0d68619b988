"""Liveness and readiness probes for the listener's host (Container Apps, Kubernetes).

``GET /healthz``: 200 while the event loop is responsive; ``GET /readyz``: 200 only when
every owned shard is connected and READY; 503 otherwise. Both answer a small JSON body:
per shard its state, latency and guild count, plus the buffered envelope count.

The server runs on its own daemon thread and never touches discord.py: once a second a
task on the gateway's loop publishes a :class:`Snapshot` (one reference swap), and the
probes read the latest one. A blocked loop therefore cannot block a probe, and it shows:
the snapshot stops getting younger and ``/healthz`` turns 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gateway_listener.shards import ShardHealth, ShardState
from shared.errors import SettingsError

_log = logging.getLogger(__name__)

PUBLISH_PERIOD_S = 1.0
LOOP_STALL_S = 10.0  # no snapshot for this long: the loop is stuck (heartbeats are late too)


@dataclass(frozen=True)
class Snapshot:
    shards: dict[int, ShardHealth] = field(default_factory=dict)
    buffered: int = 0
    loop_lag_s: float = 0.0
    at: float = field(default_factory=time.monotonic)


class HealthServer:
    def __init__(self, host: str, port: int, *, stall_s: float = LOOP_STALL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stall_s = stall_s
        self._snapshot = Snapshot(at=clock())
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            raise SettingsError(f"LISTENER_HEALTH_PORT: cannot listen on {host}:{port} ({exc.strerror})") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="listener-health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        _log.info("health probes on http://%s:%d/healthz and /readyz", *self._server.server_address[:2])
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot  # one reference swap: the probe threads see the old or the new one

    def answer(self, path: str) -> tuple[int, dict[str, object]]:
        snap = self._snapshot
        age = self._clock() - snap.at
        live = age <= self._stall_s
        ready = live and bool(snap.shards) and all(s.state is ShardState.READY for s in snap.shards.values())
        body: dict[str, object] = {
            "live": live,
            "ready": ready,
            "loop_lag_ms": round(max(snap.loop_lag_s, age - PUBLISH_PERIOD_S, 0.0) * 1000, 1),
            "shards": {str(sid): s.as_dict() for sid, s in sorted(snap.shards.items())},
            "buffered": snap.buffered,
        }
        ok = {"/healthz": live, "/readyz": ready}.get(path.split("?", 1)[0])
        if ok is None:
            return 404, {"error": "not found: try /healthz or /readyz"}
        return (200 if ok else 503), body


def _handler(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = server.answer(self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the log

    return Handler


async def publish_forever(server: HealthServer, sample: Callable[[], Snapshot]) -> None:
    """On the gateway's loop: publish a fresh snapshot every second, with the loop's lag."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(PUBLISH_PERIOD_S)
        snap = sample()
        server.publish(Snapshot(snap.shards, snap.buffered, max(loop.time() - started - PUBLISH_PERIOD_S, 0.0)))


@contextlib.asynccontextmanager
async def serving(host: str, port: int | None, sample: Callable[[], Snapshot]) -> AsyncIterator[HealthServer | None]:
    """The probes for the duration of the block, fed by ``sample`` (nothing when ``port`` is None)."""
    if port is None:
        yield None
        return
    server = HealthServer(host, port).start()
    publisher = asyncio.create_task(publish_forever(server, sample), name="listener-health")
    try:
        yield server
    finally:
        publisher.cancel()
        await asyncio.to_thread(server.stop)
