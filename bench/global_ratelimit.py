"""One Discord budget across processes: a burst of 400 commands with and without ``REDIS_URL``.

The bot runs as ``python -m localdev`` runs it (Azurite, the listener, the scale controller
with 4 catfact instances and 1 ping instance always ready) against the Discord emulator with
its global limit at 50 requests/s per token (Discord's); catfact's API is a local stub that
answers at once, so the instances can reply faster than Discord allows. A burst of 400
commands (320 ``!catfact``, 80 ``!ping`` over 4 channels) is sent at once, first with each
process pacing itself (no ``REDIS_URL``: the baseline), then with a local redis-server.

Measured per mode, same run: 429s the bot received (global ones apart), invalid requests
(401/403/429) the emulator counted, accepted REST requests per second during the burst
against the 50/s budget, replies per second, p50/p99 reply time (command dispatched -> reply
accepted), replies lost or doubled. And the cost of the shared limiter per REST call (one
script run: ``acquire``) against a bare Redis round trip (PING), p50/p99, in-process.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import Context, HttpStub, Row, median, p99, start_module, wait_started, wait_until
from bench.scaling import _empty_queues, _replies
from localdev.discord_emulator import EmulatorThread
from localdev.redis_server import RedisServer
from localdev.scale_controller import READY_PREFIX
from shared.discord_limits import SharedLimits, redis_client
from shared.settings import Secret

NAME = "global_ratelimit"
BUDGET = 50  # requests/s: the emulator's global limit and DISCORD_GLOBAL_RATE_LIMIT
FACT = json.dumps({"fact": "Cats have five toes on their front paws.", "length": 40}).encode()
METRICS = (
    "429s received",
    "global 429s received",
    "invalid requests counted",
    "REST requests accepted/s during burst",
    "replies/s during burst",
    "reply time p50",
    "reply time p99",
    "replies lost",
    "replies doubled",
    "shared limiter per REST call p50",
    "shared limiter per REST call p99",
)
CONTROLLER_ARGS = ["--always-ready", "catfact=4,ping=1", "--max-instances", "4", "--idle-timeout", "600"]


@dataclass
class ModeResult:
    sent: dict[str, float] = field(default_factory=dict)  # message id -> dispatch time (epoch s)
    replies: dict[str, list[float]] = field(default_factory=dict)
    status_429: int = 0
    global_429: int = 0
    invalid: int = 0
    accepted_per_s: float = float("nan")  # bot-authenticated requests Discord accepted, during the burst
    replies_per_s: float = float("nan")

    @property
    def latencies_ms(self) -> list[float]:
        return [(self.replies[m][0] - t) * 1000 for m, t in self.sent.items() if self.replies.get(m)]

    @property
    def lost(self) -> int:
        return sum(1 for m in self.sent if not self.replies.get(m))

    @property
    def doubled(self) -> int:
        return sum(1 for m in self.sent if len(self.replies.get(m, [])) > 1)


def _run_mode(ctx: Context, label: str, api_url: str, burst: int, redis_url: str | None) -> ModeResult:
    logs = ctx.workdir / NAME / label
    logs.mkdir(parents=True, exist_ok=True)
    _empty_queues(ctx)
    result = ModeResult()
    with EmulatorThread(guild_count=4, global_rate_limit=BUDGET) as emu:
        env = {"AzureWebJobsStorage": ctx.azurite.connection_string, "DISCORD_TOKEN": emu.token,
               "DISCORD_API_BASE_URL": emu.api_url, "DISCORD_GATEWAY_URL": emu.gateway_url,
               "LOCAL_TRACE_FILE": str(logs / "traces.jsonl"), "CATFACT_API_URL": api_url,
               "DISCORD_GLOBAL_RATE_LIMIT": str(BUDGET), "REDIS_URL": redis_url or ""}
        controller = start_module("scale_controller", "localdev.scale_controller", env, logs / "controller.log",
                                  [*CONTROLLER_ARGS, "--log-dir", str(logs / "instances")])
        listener = None
        try:
            wait_started(controller, logs / "controller.log", READY_PREFIX, "scale controller")
            listener = start_module("listener", "gateway_listener", env, logs / "listener.log")
            wait_started(listener, logs / "listener.log", "listener ready", "listener")
            channels = [g["channel_id"] for g in emu.guilds]
            warm = [emu.send_message(c, channel_id=ch)["id"] for ch in channels for c in ("!catfact", "!ping")]
            wait_until(lambda: set(warm) <= set(_replies(emu)), 120, 0.2, "warm-up answered (instances started)")
            time.sleep(1.5)  # the warm-up's requests out of the emulator's one-second window
            before = len(emu.requests)
            invalid_before = emu.global_limit.invalid_total
            commands = ["!ping" if i % 5 == 4 else "!catfact" for i in range(burst)]
            for command, channel in zip(commands, itertools.cycle(channels), strict=False):
                at = time.time()
                result.sent[emu.send_message(command, channel_id=channel)["id"]] = at
            wait_until(lambda: set(result.sent) <= set(_replies(emu)), 60 + burst / 5, 0.25, "burst answered")
        except TimeoutError:
            pass  # what is missing is reported as lost
        finally:
            time.sleep(1.5)  # late duplicates would arrive now
            replies = _replies(emu)
            result.replies = {m: replies.get(m, []) for m in result.sent}
            requests = list(emu.requests)[before:] if listener is not None else []
            result.status_429 = sum(1 for r in requests if r.status == 429)
            result.global_429 = sum(1 for r in requests if r.fault == "global rate limit")
            result.invalid = emu.global_limit.invalid_total - invalid_before if listener is not None else 0
            firsts = sorted(ts[0] for ts in result.replies.values() if ts)
            if len(firsts) > 1 and firsts[-1] > firsts[0]:
                window = (firsts[0], firsts[-1])
                accepted = [r for r in requests if r.status is not None and r.status < 400
                            and window[0] <= r.timestamp <= window[1] and "webhooks" not in r.path]
                result.accepted_per_s = len(accepted) / (window[1] - window[0])
                result.replies_per_s = (len(firsts) - 1) / (window[1] - window[0])
            if listener is not None:
                listener.stop()
            controller.stop(30)
    return result


def _limiter_cost(url: str, n: int) -> tuple[list[float], list[float]]:
    """ms per shared-limiter decision (acquire, as a REST call makes it) and per PING, interleaved."""
    limits = SharedLimits(redis_client(Secret(url), timeout_s=1.0), "bench", rate=1_000_000)
    acquire, ping = [], []
    for i in range(n):
        t0 = time.perf_counter()
        limits.acquire("POST /channels/{channel_id}/messages", f"channel:{i % 4}")
        t1 = time.perf_counter()
        limits.round_trip()
        t2 = time.perf_counter()
        acquire.append((t1 - t0) * 1000)
        ping.append((t2 - t1) * 1000)
    return acquire, ping


def run(ctx: Context) -> list[Row]:
    burst = ctx.n(400, 60)
    with HttpStub(body=FACT) as api:
        without = _run_mode(ctx, "per-process", api.url, burst, None)
        with RedisServer() as redis:
            shared = _run_mode(ctx, "redis", api.url, burst, redis.url)
            acquire, ping = _limiter_cost(redis.url, ctx.n(2000, 200))

    def row(metric: str, value: float, baseline: float | None, unit: str, **kw: Any) -> Row:
        return Row(NAME, metric, value, unit, baseline,
                   value / baseline if baseline and value == value else None, **kw)

    note = (f"value: REDIS_URL set, baseline: no REDIS_URL (per process); {burst} commands, "
            f"emulator global limit {BUDGET}/s, 4 catfact + 1 ping instances + listener")
    used = shared.accepted_per_s / BUDGET
    return [
        row("429s received", shared.status_429, without.status_429, "", note=note,
            extra={"global_429": {"redis": shared.global_429, "per-process": without.global_429}}),
        row("global 429s received", shared.global_429, without.global_429, "", target="0",
            met=shared.global_429 == 0),
        row("invalid requests counted", shared.invalid, without.invalid, ""),
        row("REST requests accepted/s during burst", shared.accepted_per_s, without.accepted_per_s, "req/s",
            target=f"≥ 90% of {BUDGET}/s", met=used >= 0.9, extra={"budget_used": used}),
        row("replies/s during burst", shared.replies_per_s, without.replies_per_s, "replies/s"),
        row("reply time p50", median(shared.latencies_ms), median(without.latencies_ms), "ms"),
        row("reply time p99", p99(shared.latencies_ms), p99(without.latencies_ms), "ms"),
        row("replies lost", shared.lost, without.lost, "", target="0", met=shared.lost == 0),
        row("replies doubled", shared.doubled, without.doubled, "", target="0", met=shared.doubled == 0),
        row("shared limiter per REST call p50", median(acquire), median(ping), "ms",
            note="baseline: a Redis round trip (PING)"),
        row("shared limiter per REST call p99", p99(acquire), p99(ping), "ms"),
    ]
