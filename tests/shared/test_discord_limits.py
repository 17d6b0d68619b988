"""The shared Discord limits on a real redis-server: several SharedLimits = several processes."""

from __future__ import annotations

import base64
import json
import logging
from types import SimpleNamespace

import pytest

from localdev.redis_server import RedisServer
from shared.discord_limits import (
    EntraCredentialProvider,
    LocalBudget,
    SharedLimits,
    log_if_unshared,
    redis_client,
    token_object_id,
    uses_entra,
)
from shared.settings import Secret, Settings, StorageSettings

ROUTE, MAJOR = "POST /channels/{channel_id}/messages", "channel:1"


def _limits(server: RedisServer, **kwargs: object) -> SharedLimits:
    return SharedLimits(redis_client(Secret(server.url), timeout_s=1.0), "bot-a", **kwargs)  # type: ignore[arg-type]


def test_the_global_budget_is_one_queue_across_processes(redis_server: RedisServer) -> None:
    a, b = _limits(redis_server, rate=50), _limits(redis_server, rate=50)
    grants = [(a if i % 2 else b).acquire(ROUTE, f"channel:{i}") for i in range(60)]
    assert all(g.shared and not g.fallback and g.dropped is None for g in grants)
    assert [g.scope for g in grants[: a.burst]] == ["none"] * a.burst  # the burst tolerance goes at once
    waits = [g.wait_s for g in grants]
    assert waits == sorted(waits) or max(waits[i] - waits[i + 1] for i in range(59)) < 0.01
    # 60 reservations at 50/s: the last one waits about (60 - burst) / 50 s, whoever asked
    assert waits[-1] > (60 - a.burst - 5) / 50
    assert grants[-1].scope == "global"


def test_droppable_requests_take_only_a_free_slot(redis_server: RedisServer) -> None:
    a, b = _limits(redis_server, rate=50), _limits(redis_server, rate=50)
    assert b.acquire("POST /channels/{channel_id}/typing", "channel:1", droppable=True).dropped is None
    for _ in range(30):
        a.acquire(ROUTE, MAJOR)  # replies fill the budget...
    typing = b.acquire("POST /channels/{channel_id}/typing", "channel:1", droppable=True)
    assert typing.dropped == "budget tight"  # ...so typing is what gives way


def test_route_buckets_are_shared(redis_server: RedisServer) -> None:
    a, b = _limits(redis_server), _limits(redis_server)
    a.observe(ROUTE, MAJOR, 200, bucket="abc", remaining=1, reset_after=30.0)
    assert b.acquire(ROUTE, MAJOR).scope == "none"  # the last request of the window
    blocked = b.acquire(ROUTE, MAJOR)
    assert blocked.scope == "bucket" and 25 < blocked.wait_s <= 30
    assert a.acquire(ROUTE, "channel:2").scope == "none"  # another major parameter: another bucket
    a.observe(ROUTE, "channel:3", 429, retry_after=20.0, scope="user")
    assert b.acquire(ROUTE, "channel:3").scope == "bucket"


def test_a_global_429_holds_everyone(redis_server: RedisServer) -> None:
    a, b = _limits(redis_server), _limits(redis_server)
    a.observe(ROUTE, MAJOR, 429, retry_after=3.0, is_global=True, scope="global")
    grant = b.acquire(ROUTE, "channel:9")
    assert grant.scope == "global" and 2.5 < grant.wait_s <= 3.0


def test_invalid_requests_are_counted_together_and_pause_typing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = _limits(redis_server, invalid_limit=3), _limits(redis_server, invalid_limit=3)
    a.observe(ROUTE, MAJOR, 403)
    b.observe(ROUTE, MAJOR, 401)
    b.observe(ROUTE, MAJOR, 429, retry_after=0.0, scope="shared")  # shared-scope 429s do not count
    assert b.invalid_count == 2
    with caplog.at_level(logging.WARNING, logger="shared.discord_limits"):
        a.observe(ROUTE, MAJOR, 429, retry_after=0.0, scope="user")
    assert a.invalid_count == 3 and "typing indicators and command sync paused" in caplog.text
    typing = b.acquire("POST /channels/{channel_id}/typing", "channel:1", droppable=True)
    assert typing.dropped and "invalid requests" in typing.dropped and typing.invalid_count == 3
    assert b.acquire(ROUTE, MAJOR).dropped is None  # a reply still goes


def test_identify_gate_spaces_each_bucket_across_processes(redis_server: RedisServer) -> None:
    a, b = _limits(redis_server), _limits(redis_server)
    assert a.identify_wait(0, 1) == 0
    assert 4.5 < (b.identify_wait(1, 1) or 0) <= 5.0  # same bucket (max_concurrency 1): 5 s later
    assert 9.5 < (a.identify_wait(2, 1) or 0) <= 10.0
    assert a.identify_wait(0, 2) == 0 and b.identify_wait(1, 2) == 0  # two buckets: both at once
    assert 4.5 < (b.identify_wait(2, 2) or 0) <= 5.0


def test_redis_down_falls_back_per_process_and_recovers(redis_server: RedisServer,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    clock = SimpleNamespace(now=100.0)
    limits = _limits(redis_server, rate=40, retry_after_s=1.0, clock=lambda: clock.now)
    assert limits.acquire(ROUTE, MAJOR).shared
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="shared.discord_limits"):
        grants = [limits.acquire(ROUTE, MAJOR) for _ in range(4)]
    assert all(g.fallback and not g.shared for g in grants)
    assert "Redis unreachable" in caplog.text
    assert grants[-1].wait_s > 0  # a quarter of 40/s, burst 2: the fourth request waits (fake clock)
    assert limits.identify_wait(0, 1) is None
    redis_server.start()
    assert limits.acquire(ROUTE, MAJOR).fallback  # still inside the retry period
    clock.now += 1.5
    assert limits.acquire(ROUTE, MAJOR).shared and limits.available


def test_local_budget_paces_and_drops() -> None:
    clock = SimpleNamespace(now=0.0)
    budget = LocalBudget(10, 1, clock=lambda: clock.now)
    assert budget.reserve(False) == 0
    assert budget.reserve(True) is None  # no burst room: a droppable request drops
    assert budget.reserve(False) == pytest.approx(0.1)
    budget.block_until(5.0)
    assert budget.reserve(False) == pytest.approx(5.0)


def _jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"


def test_entra_credentials_are_the_object_id_and_a_cached_token() -> None:
    calls: list[str] = []

    class FakeCredential:
        def get_token(self, scope: str) -> SimpleNamespace:
            calls.append(scope)
            return SimpleNamespace(token=_jwt({"oid": "0f1e-oid", "aud": "https://redis.azure.com"}),
                                   expires_on=10_000)

    now = SimpleNamespace(t=1_000.0)
    provider = EntraCredentialProvider(FakeCredential(), clock=lambda: now.t)
    user, password = provider.get_credentials()
    assert user == "0f1e-oid" and password.count(".") == 2
    provider.get_credentials()
    assert calls == ["https://redis.azure.com/.default"]
    now.t = 9_800  # within 5 minutes of expiry: a new token
    provider.get_credentials()
    assert len(calls) == 2
    with pytest.raises(ValueError, match="oid"):
        token_object_id(_jwt({"sub": "x"}))


def test_which_urls_use_entra() -> None:
    assert uses_entra(Secret("rediss://bot.westeurope.redis.azure.net:10000"))
    assert not uses_entra(Secret("rediss://:key@bot.westeurope.redis.azure.net:10000"))
    assert not uses_entra(Secret("redis://127.0.0.1:6379/0"))

    class FakeCredential:
        def get_token(self, scope: str) -> SimpleNamespace:
            return SimpleNamespace(token=_jwt({"oid": "abc"}), expires_on=2**40)

    client = redis_client(Secret("rediss://bot.westeurope.redis.azure.net:10000"), credential=FakeCredential())
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["credential_provider"].get_credentials() == ("abc", _jwt({"oid": "abc"}))
    assert kwargs["host"] == "bot.westeurope.redis.azure.net" and kwargs["port"] == 10000


def test_settings_and_the_startup_line(caplog: pytest.LogCaptureFixture) -> None:
    from shared.settings import load_settings

    s = load_settings({"REDIS_URL": "redis://127.0.0.1:6390/0", "DISCORD_GLOBAL_RATE_LIMIT": "40"},
                      require_storage=False)
    assert s.redis_url is not None and s.redis_url.reveal().endswith(":6390/0") and s.discord_global_rate_limit == 40
    assert "6390" not in repr(s)
    from shared.errors import SettingsError

    with pytest.raises(SettingsError, match="REDIS_URL"):
        load_settings({"REDIS_URL": "http://nope"}, require_storage=False)
    assert SharedLimits.from_settings(Settings(storage=StorageSettings())) is None
    with caplog.at_level(logging.WARNING, logger="shared.discord_limits"):
        log_if_unshared(Settings(storage=StorageSettings()), "the function app", more_than_one=True)
    assert "REDIS_URL unset" in caplog.text
