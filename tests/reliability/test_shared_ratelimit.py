"""One Discord budget for every process, on a real redis-server, against the emulator.

Several "processes" are several REST clients, each with its own connection to Redis, its own
in-process limiter and its own HTTP session (the function instances of a burst); the listener
processes are real ``python -m gateway_listener`` processes. The emulator enforces the global
limit per token and records every request and IDENTIFY.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from function_runtime.discord_ratelimit import RateLimiter
from function_runtime.discord_rest import DiscordRest
from gateway_listener.shards import IDENTIFY_INTERVAL_S
from localdev.azurite import Azurite
from localdev.discord_emulator import EmulatorThread
from localdev.redis_server import RedisServer
from localdev.stack import Child
from shared.discord_limits import SharedLimits, redis_client
from shared.settings import Secret
from tests.reliability.harness import running_stack, wait_until

RATE = 100  # the emulator's global limit and the bot's budget (requests/s): 50 in production
INSTANCES = 6  # 4 catfact, 1 ping, the listener
REPLIES = 240


def _clients(emu: EmulatorThread, redis: RedisServer | None) -> list[DiscordRest]:
    return [DiscordRest(emu.api_url, Secret(emu.token), ratelimiter=RateLimiter(), max_total_wait=60.0,
                        shared_limits=None if redis is None else SharedLimits(
                            redis_client(Secret(redis.url)), emu.token, rate=RATE))
            for _ in range(INSTANCES)]


def _burst(emu: EmulatorThread, clients: list[DiscordRest], on_sent: Callable[[int], None] = lambda i: None) -> None:
    channels = itertools.cycle([g["channel_id"] for g in emu.guilds])
    jobs = [(i, next(channels)) for i in range(REPLIES)]

    def reply(job: tuple[int, str]) -> None:
        i, channel = job
        clients[i % INSTANCES].create_message(channel, f"reply {i}", nonce=f"burst-{i}")
        on_sent(i)

    with ThreadPoolExecutor(INSTANCES * 4) as pool:
        list(pool.map(reply, jobs))  # raises if any reply was lost


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    with EmulatorThread(guild_count=4, global_rate_limit=RATE) as emulator:
        yield emulator


def _replies(emu: EmulatorThread) -> Counter[str]:
    return Counter(m["content"] for m in emu.bot_messages)


def test_a_burst_from_six_processes_gets_no_global_429(emu: EmulatorThread, redis_server: RedisServer) -> None:
    _burst(emu, _clients(emu, redis_server))
    replies = _replies(emu)
    assert len(replies) == REPLIES and set(replies.values()) == {1}  # nothing lost, nothing doubled
    assert emu.global_limit.global_limited == 0
    assert not [r for r in emu.requests if r.status == 429]
    assert emu.global_limit.invalid_total == 0


def test_redis_stopped_mid_burst_loses_nothing(emu: EmulatorThread, redis_server: RedisServer) -> None:
    stopped = threading.Event()

    def stop_redis_at_a_third(i: int) -> None:
        if i >= REPLIES // 3 and not stopped.is_set():
            stopped.set()
            redis_server.stop()

    _burst(emu, _clients(emu, redis_server), stop_redis_at_a_third)
    assert stopped.is_set()
    replies = _replies(emu)
    assert len(replies) == REPLIES and set(replies.values()) == {1}


def test_two_listener_processes_identify_together_no_faster_than_max_concurrency(
    azurite: Azurite, redis_server: RedisServer, tmp_path: Path
) -> None:
    with running_stack(azurite, tmp_path, emulator_kwargs={"shard_count": 2, "guild_count": 2,
                                                           "max_concurrency": 1}) as stack:
        listeners = [Child(f"listener-{i}", "gateway_listener",
                           stack.env(REDIS_URL=redis_server.url, DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS=str(i)),
                           tmp_path / f"listener-{i}.log").start() for i in range(2)]  # both at once
        stack.children.extend(listeners)
        wait_until(lambda: len(stack.emulator.identify_times) >= 2, 60, "both shards' IDENTIFY")
        times = sorted(t for t, _ in stack.emulator.identify_times)
        assert sorted(s for _, s in stack.emulator.identify_times) == [0, 1]
        assert times[1] - times[0] >= IDENTIFY_INTERVAL_S  # one bucket (max_concurrency 1): 5 s apart
