"""/healthz and /readyz over real HTTP, from published snapshots; a stalled loop turns 503."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from gateway_listener.health import HealthServer, Snapshot, publish_forever
from gateway_listener.shards import ShardHealth, ShardState
from localdev.azurite import free_port
from shared.errors import SettingsError


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[HealthServer]:
    srv = HealthServer("127.0.0.1", free_port(), clock=clock).start()
    yield srv
    srv.stop()


def _get(server: HealthServer, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def _shards(*states: ShardState) -> dict[int, ShardHealth]:
    return {sid: ShardHealth(state, 0.05, 3) for sid, state in enumerate(states)}


def test_ready_only_when_every_shard_is_ready(server: HealthServer, clock: Clock) -> None:
    assert _get(server, "/healthz")[0] == 200
    assert _get(server, "/readyz")[0] == 503  # no shard connected yet
    server.publish(Snapshot(_shards(ShardState.READY, ShardState.CONNECTING), buffered=4, at=clock.now))
    status, body = _get(server, "/readyz")
    assert status == 503 and body["shards"]["1"]["state"] == "connecting" and body["buffered"] == 4
    server.publish(Snapshot(_shards(ShardState.READY, ShardState.READY), buffered=0, at=clock.now))
    status, body = _get(server, "/readyz")
    assert status == 200 and body["ready"] is True
    assert body["shards"]["0"] == {"state": "ready", "latency_ms": 50.0, "guilds": 3}
    assert _get(server, "/nope")[0] == 404


def test_a_stalled_loop_fails_both_probes(server: HealthServer, clock: Clock) -> None:
    server.publish(Snapshot(_shards(ShardState.READY), at=clock.now))
    clock.now += 30  # no snapshot for 30 s: the gateway's loop is stuck
    for path in ("/healthz", "/readyz"):
        status, body = _get(server, path)
        assert status == 503 and body["live"] is False and body["loop_lag_ms"] >= 29_000


async def test_publisher_answers_while_the_loop_is_blocked() -> None:
    srv = HealthServer("127.0.0.1", free_port(), stall_s=0.5).start()
    task = asyncio.create_task(publish_forever(srv, lambda: Snapshot(_shards(ShardState.READY), 2)))
    try:
        for _ in range(40):
            await asyncio.sleep(0.1)
            if _get(srv, "/readyz")[0] == 200:
                break
        assert _get(srv, "/readyz")[0] == 200
        time.sleep(1.6)  # block the loop: the probe thread still answers, and says so
        status, body = _get(srv, "/healthz")
        assert status == 503 and body["live"] is False
    finally:
        task.cancel()
        srv.stop()


def test_port_in_use_is_a_one_line_settings_error(server: HealthServer) -> None:
    with pytest.raises(SettingsError, match=r"^LISTENER_HEALTH_PORT: cannot listen on 127.0.0.1:"):
        HealthServer("127.0.0.1", server.port)
