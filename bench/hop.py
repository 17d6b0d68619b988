"""Hop overhead: ``!ping`` through listener -> Azurite -> functions host, against an in-process bot.

Both bots run at once, each against its own Discord emulator, and are measured
alternately (split, then baseline) so drift hits both alike. Latency is emulator
dispatch -> the reply's REST request recorded by the emulator, as seen by this process.

- steady: the next command goes out as soon as the previous reply arrived (the host's
  queue worker is busy, never backed off beyond its 100 ms minimum poll);
- idle: the first command after a quiet period long enough for the host's idle polling
  to back off to host.json's maxPollingInterval;
- floor: the raw Azurite round trip (async send + receive + delete) from this process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.common import Context, Row, median, p99, ratio, start_module, summary
from localdev.discord_emulator import EmulatorThread
from localdev.functions_host.hostconfig import load_host_config
from localdev.stack import Child, wait_for_line
from localdev.traces import load_traces
from shared.queues import async_service_client, queue_of
from shared.settings import PROJECT_ROOT, StorageSettings

NAME = "hop"
METRICS = (
    "!ping p50, steady",
    "!ping p99, steady",
    "hop overhead p50, steady",
    "azurite round trip p50",
    "!ping p50, idle",
    "!ping p99, idle",
)


def ping_once(emu: EmulatorThread, ids: list[str] | None = None) -> float:
    """Seconds from the emulator dispatching ``!ping`` to the bot's reply reaching it."""
    began = time.perf_counter()
    sent = emu.send_message("!ping")
    emu.wait_for_bot_message(channel_id=sent["channel_id"], after=sent["id"], timeout=30)
    if ids is not None:
        ids.append(sent["id"])
    return time.perf_counter() - began


def breakdown(trace_file: Path, message_ids: list[str]) -> dict[str, float]:
    """Median ms of each leg of the split path, from the traces of these messages.

    The queue leg is the listener's ``cmd-ping send`` end to the function's ``process`` start
    (one machine, one clock); queue.wait is not used: it starts at the storage insertion
    time, which has one-second resolution.
    """
    legs: dict[str, list[float]] = {"enqueue": [], "queue": [], "process": []}
    wanted = set(message_ids)
    for spans in load_traces(trace_file).values():
        by_name = {s["name"]: s for s in spans}
        root, send, proc = by_name.get("discord.command"), by_name.get("cmd-ping send"), by_name.get("cmd-ping process")
        if not (root and send and proc) or root["attributes"].get("discord.message.id") not in wanted:
            continue
        legs["enqueue"].append((send["end_ns"] - root["start_ns"]) / 1e6)
        legs["queue"].append((proc["start_ns"] - send["end_ns"]) / 1e6)
        legs["process"].append((proc["end_ns"] - proc["start_ns"]) / 1e6)
    return {leg: median(values) for leg, values in legs.items()} | {"traces": float(len(legs["queue"]))}


async def azurite_round_trips(storage: StorageSettings, count: int, warmup: int) -> list[float]:
    """Seconds per send + receive + delete of one small message, with the project's async client."""
    from azure.core.exceptions import ResourceExistsError

    service = async_service_client(storage)
    client = queue_of(service, "bench-rtt")
    try:
        try:
            await client.create_queue()
        except ResourceExistsError:
            await client.clear_messages()
        out: list[float] = []
        for i in range(warmup + count):
            began = time.perf_counter()
            await client.send_message("x" * 600)  # about an envelope's size
            msg = None
            while msg is None:  # Azurite makes a sent message visible at once; loop just in case
                msg = await client.receive_message()
            await client.delete_message(msg)
            if i >= warmup:
                out.append(time.perf_counter() - began)
        return out
    finally:
        await client.close()
        await service.close()


def _start_split(ctx: Context, emu: EmulatorThread, logs: Path) -> list[Child]:
    env = {
        "AzureWebJobsStorage": ctx.azurite.connection_string,
        "DISCORD_TOKEN": emu.token,
        "DISCORD_API_BASE_URL": emu.api_url,
        "DISCORD_GATEWAY_URL": emu.gateway_url,
        "LOCAL_TRACE_FILE": str(logs / "traces.jsonl"),  # as `python -m localdev` runs it
    }
    host = start_module("functions_host", "localdev.functions_host", env, logs / "host.log")
    listener = start_module("listener", "gateway_listener", env, logs / "listener.log")
    return [host, listener]


def run(ctx: Context) -> list[Row]:
    logs = ctx.workdir / NAME
    logs.mkdir(parents=True, exist_ok=True)
    max_poll = load_host_config(PROJECT_ROOT / "host.json").queues.max_polling_interval.total_seconds()
    # The backoff doubles from 100 ms to the cap: ~3.7 s of empty polls reach a 2 s cap; 3x cap + 0.5 s is past it.
    quiet = max_poll + 0.5 if ctx.quick else 3 * max_poll + 0.5
    steady_n, warmup, idle_n = ctx.n(200, 5), ctx.n(20, 2), ctx.n(8, 1)
    children: list[Child] = []
    with EmulatorThread() as split_emu, EmulatorThread() as base_emu:
        try:
            children = _start_split(ctx, split_emu, logs)
            base_env = {"DISCORD_TOKEN": base_emu.token, "DISCORD_API_BASE_URL": base_emu.api_url,
                        "DISCORD_GATEWAY_URL": base_emu.gateway_url}
            children.append(start_module("baseline_bot", "bench.baseline_bot", base_env, logs / "baseline.log"))
            for child, needle in zip(children, ("Functions host ready", "listener ready as", "baseline ready"),
                                     strict=True):
                if not wait_for_line(child.log_path or Path(), needle, 60, child):
                    raise RuntimeError(f"{child.name} did not start: see {child.log_path}")
            split: list[float] = []
            base: list[float] = []
            steady_ids: list[str] = []
            for i in range(warmup + steady_n):
                s, b = ping_once(split_emu, steady_ids if i >= warmup else None), ping_once(base_emu)
                if i >= warmup:
                    split.append(s)
                    base.append(b)
            rtt = asyncio.run(azurite_round_trips(ctx.storage, ctx.n(200, 10), ctx.n(20, 2)))
            split_idle: list[float] = []
            base_idle: list[float] = []
            for _ in range(idle_n):
                time.sleep(quiet)
                split_idle.append(ping_once(split_emu))
                base_idle.append(ping_once(base_emu))
        finally:
            for child in reversed(children):
                child.stop()  # the listener and host flush their spans on the way out
    legs = breakdown(logs / "traces.jsonl", steady_ids)
    return _rows([x * 1000 for x in split], [x * 1000 for x in base], [x * 1000 for x in rtt],
                 [x * 1000 for x in split_idle], [x * 1000 for x in base_idle], quiet, max_poll, legs)


def _rows(split: list[float], base: list[float], rtt: list[float], split_idle: list[float],
          base_idle: list[float], quiet: float, max_poll: float, legs: dict[str, float]) -> list[Row]:
    overhead = median(split) - median(base)
    rtt50 = median(rtt)
    legs_note = (f"trace legs p50: listener enqueue {legs['enqueue']:.1f} ms, queue (send end -> process start) "
                 f"{legs['queue']:.1f} ms, function incl. reply {legs['process']:.1f} ms")
    idle_note = f"after {quiet:.1f}s quiet; host.json maxPollingInterval {max_poll:.0f}s"
    return [
        Row(NAME, METRICS[0], median(split), "ms", median(base), ratio(median(split), median(base)),
            note="split vs in-process discord.py bot", extra={"split": summary(split), "in_process": summary(base)}),
        Row(NAME, METRICS[1], p99(split), "ms", p99(base), ratio(p99(split), p99(base))),
        Row(NAME, METRICS[2], overhead, "ms", rtt50, ratio(overhead, rtt50), "≤ 2x azurite round trip",
            overhead <= 2 * rtt50, note=legs_note, extra={"legs_p50_ms": legs}),
        Row(NAME, METRICS[3], rtt50, "ms", note="async send + receive + delete", extra={"rtt": summary(rtt)}),
        Row(NAME, METRICS[4], median(split_idle), "ms", median(base_idle), ratio(median(split_idle), median(base_idle)),
            note=idle_note, extra={"split": summary(split_idle), "in_process": summary(base_idle),
                                   "split_samples": split_idle}),
        Row(NAME, METRICS[5], p99(split_idle), "ms", p99(base_idle), ratio(p99(split_idle), p99(base_idle)),
            note=idle_note),
    ]
