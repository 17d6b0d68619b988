"""Listener ingest: envelopes per second from a burst of MESSAGE_CREATEs, against bare queue sends.

The real listener (a subprocess) receives a burst of ``!ping`` messages from the emulator
and enqueues them to cmd-ping (no host is running, so they stay there); the count is
read from the queue's approximate_message_count. The baseline sends the same number of
the same envelope text with the project's async queue client and as many concurrent
senders as the Enqueuer has workers. Rounds alternate listener / bare.

The emulator asks for a short heartbeat interval; the gaps between the heartbeats it
receives during the bursts show whether the listener's event loop ever stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time

from bench.common import Context, Row, median, ratio, start_module
from gateway_listener.enqueuer import Enqueuer
from localdev.discord_emulator import DiscordEmulator
from localdev.stack import wait_for_line
from shared.queues import async_service_client, queue_of
from shared.settings import StorageSettings

NAME = "ingest"
METRICS = ("envelopes enqueued/s", "max heartbeat gap")
WORKERS: int = inspect.signature(Enqueuer).parameters["workers"].default
HEARTBEAT_MS = 1000
QUEUE = "cmd-ping"


async def queue_count(client: object) -> int:
    props = await client.get_queue_properties()  # type: ignore[attr-defined]
    return int(props.approximate_message_count or 0)


async def wait_for_count(client: object, count: int, timeout: float) -> float:
    """Monotonic time when the queue first holds ``count`` messages.

    A properties call that times out (Azurite swamped on a busy machine) is retried until the deadline.
    """
    from azure.core.exceptions import AzureError

    deadline = time.monotonic() + timeout
    n = 0
    while True:
        with contextlib.suppress(AzureError):
            n = await queue_count(client)
        if n >= count:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {n} of {count} messages reached {QUEUE}")
        await asyncio.sleep(0.01)


async def _bare_sends(storage: StorageSettings, text: str, count: int) -> float:
    """Seconds for ``count`` sends by WORKERS concurrent senders sharing one client, as the Enqueuer does."""
    service = async_service_client(storage)
    client = queue_of(service, "bench-bare")
    remaining = count

    async def sender() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await client.send_message(text)

    try:
        from azure.core.exceptions import ResourceExistsError

        try:
            await client.create_queue()
        except ResourceExistsError:
            await client.clear_messages()
        await client.send_message(text)  # warm the connection pool, as the listener's start() does
        await client.clear_messages()
        began = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(WORKERS)))
        return time.monotonic() - began
    finally:
        await client.close()
        await service.close()


async def _run(ctx: Context) -> list[Row]:
    logs = ctx.workdir / NAME
    logs.mkdir(parents=True, exist_ok=True)
    burst, rounds = ctx.n(1000, 100), ctx.n(3, 1)
    listener_rates: list[float] = []
    bare_rates: list[float] = []
    gaps: list[float] = []
    busy = 0
    async with DiscordEmulator(heartbeat_interval_ms=HEARTBEAT_MS) as emu:
        env = {"AzureWebJobsStorage": ctx.azurite.connection_string, "DISCORD_TOKEN": emu.token,
               "DISCORD_API_BASE_URL": emu.api_url, "DISCORD_GATEWAY_URL": emu.gateway_url,
               "LOCAL_TRACE_FILE": str(logs / "traces.jsonl")}
        listener = start_module("listener", "gateway_listener", env, logs / "listener.log")
        service = async_service_client(ctx.storage)
        client = queue_of(service, QUEUE)
        try:
            if not await asyncio.to_thread(wait_for_line, logs / "listener.log", "listener ready as", 60, listener):
                raise RuntimeError(f"listener did not start: see {logs / 'listener.log'}")
            for _ in range(rounds):
                await client.clear_messages()
                beats_before = len(emu.gateway.heartbeats)
                began = time.monotonic()
                for _ in range(burst):
                    emu.send_message("!ping")
                done = await wait_for_count(client, burst, 120)
                listener_rates.append(burst / (done - began))
                await asyncio.sleep(HEARTBEAT_MS / 1000 * 1.5)  # so the beat after the burst is in the window
                beats = emu.gateway.heartbeats[max(beats_before - 1, 0):]
                gaps += [b - a for a, b in itertools.pairwise(beats)]
                sample = await client.peek_messages()
                text = sample[0].content.decode("utf-8") if sample else "x" * 600
                bare_rates.append(burst / await _bare_sends(ctx.storage, text, burst))
            busy = len(emu.bot_messages)  # the listener only ever replies itself when its buffer is full
            await client.clear_messages()
        finally:
            await asyncio.to_thread(listener.stop)
            await client.close()
            await service.close()
    behind = (logs / "listener.log").read_text(errors="replace").count("behind")
    max_gap_ms = max(gaps) * 1000 if gaps else float("nan")
    profile = [] if ctx.quick or max_gap_ms < 1.5 * HEARTBEAT_MS else await _profile_listener(ctx, burst)
    return [
        Row(NAME, METRICS[0], median(listener_rates), "msg/s", median(bare_rates),
            ratio(median(listener_rates), median(bare_rates)), "≥ 0.8x bare sends",
            ratio(median(listener_rates), median(bare_rates)) is not None
            and median(listener_rates) >= 0.8 * median(bare_rates),
            note=f"burst of {burst} MESSAGE_CREATE, {rounds} round(s); bare = {WORKERS} concurrent async senders",
            extra={"listener_rates": listener_rates, "bare_rates": bare_rates, "busy_replies": busy}),
        Row(NAME, METRICS[1], max_gap_ms, "ms", float(HEARTBEAT_MS), ratio(max_gap_ms, HEARTBEAT_MS),
            "< 1.5x interval, no 'behind' warning", bool(gaps) and max_gap_ms < 1.5 * HEARTBEAT_MS and behind == 0,
            note=f"{len(gaps)} heartbeat gaps during bursts; discord.py 'behind' warnings: {behind}; "
                 f"busy replies: {busy}",
            extra={"gaps_ms": [round(g * 1000, 1) for g in gaps], "listener_cprofile_top_tottime": profile}),
    ]


async def _profile_listener(ctx: Context, burst: int, top: int = 25) -> list[str]:
    """One more burst with the listener under cProfile: where its event loop spends the time."""
    import pstats

    logs = ctx.workdir / NAME
    out = logs / "listener.prof"
    async with DiscordEmulator(heartbeat_interval_ms=HEARTBEAT_MS) as emu:
        env = {"AzureWebJobsStorage": ctx.azurite.connection_string, "DISCORD_TOKEN": emu.token,
               "DISCORD_API_BASE_URL": emu.api_url, "DISCORD_GATEWAY_URL": emu.gateway_url,
               "LOCAL_TRACE_FILE": str(logs / "traces-profiled.jsonl")}
        listener = start_module("listener-cprofile", "cProfile", env, logs / "listener-cprofile.log",
                                ["-o", str(out), "-m", "gateway_listener"])
        service = async_service_client(ctx.storage)
        client = queue_of(service, QUEUE)
        try:
            if not await asyncio.to_thread(wait_for_line, logs / "listener-cprofile.log", "listener ready as", 60,
                                           listener):
                return []
            await client.clear_messages()
            for _ in range(burst):
                emu.send_message("!ping")
            await wait_for_count(client, burst, 300)
            await client.clear_messages()
        finally:
            await asyncio.to_thread(listener.stop)
            await client.close()
            await service.close()
    stats = pstats.Stats(str(out))
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    return [f"{tt * 1000:8.1f} ms self {ct * 1000:8.1f} ms cum {nc:>7} calls  "
            f"{path.split('site-packages/')[-1]}:{line}({func})"
            for (path, line, func), (_cc, nc, tt, ct, _callers) in rows[:top]]


def run(ctx: Context) -> list[Row]:
    return asyncio.run(_run(ctx))
