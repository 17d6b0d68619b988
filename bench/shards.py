"""Sharded listener: ingest and heartbeat gaps with 1, 2 and 4 shards, in one process and in several.

For each layout the emulator (this process's loop, short heartbeat interval) recommends
the shard count and has two guilds per shard; the listener(s) own the shards with
DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS. A burst of ``!ping`` messages is injected
round-robin over all guilds, so every shard receives its share at once; the rate is
envelopes in cmd-ping per second (approximate_message_count, as bench/ingest.py). The
heartbeat gap is the largest gap between heartbeats of any one shard during the bursts.
RSS is the sum of the listener processes' VmRSS after READY, divided by the shards.
Baseline: 1 shard in 1 process, measured in the same run.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from bench.common import Context, Row, median, ratio, rss_mb, start_module
from bench.ingest import QUEUE, wait_for_count
from localdev.discord_emulator import DiscordEmulator
from localdev.stack import Child, wait_for_line
from shared.queues import async_service_client, queue_of

NAME = "shards"
HEARTBEAT_MS = 1000
GUILDS_PER_SHARD = 2


@dataclass(frozen=True)
class Layout:
    shards: int
    processes: int

    @property
    def label(self) -> str:
        return f"{self.shards} shard{'s' * (self.shards > 1)} in {self.processes} process{'es' * (self.processes > 1)}"

    def shard_ids(self) -> list[str]:
        """DISCORD_SHARD_IDS of each process: contiguous ranges, as an operator would split them."""
        per = self.shards // self.processes
        return [f"{i * per}-{(i + 1) * per - 1}" if per > 1 else str(i) for i in range(self.processes)]


LAYOUTS = (Layout(1, 1), Layout(2, 1), Layout(2, 2), Layout(4, 1), Layout(4, 4))
METRICS = tuple(f"{m}, {lay.label}" for lay in LAYOUTS for m in ("ingest", "max heartbeat gap", "RSS per shard"))


@dataclass
class Result:
    rates: list[float]
    max_gap_ms: float
    rss_per_shard_mb: float


async def _clear(client: object, attempts: int = 4) -> None:
    """Empty cmd-ping; a busy shared machine can make one clear time out, so try a few times."""
    from azure.core.exceptions import AzureError

    for attempt in range(attempts):
        try:
            await client.clear_messages()  # type: ignore[attr-defined]
            return
        except AzureError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)


async def _measure(ctx: Context, layout: Layout, burst: int, rounds: int) -> Result:
    logs = ctx.workdir / NAME / f"{layout.shards}x{layout.processes}"
    logs.mkdir(parents=True, exist_ok=True)
    async with DiscordEmulator(heartbeat_interval_ms=HEARTBEAT_MS, shard_count=layout.shards,
                               guild_count=GUILDS_PER_SHARD * layout.shards, max_concurrency=layout.shards) as emu:
        base = {"AzureWebJobsStorage": ctx.azurite.connection_string, "DISCORD_TOKEN": emu.token,
                "DISCORD_API_BASE_URL": emu.api_url, "DISCORD_GATEWAY_URL": emu.gateway_url,
                "LOCAL_TRACE_FILE": str(logs / "traces.jsonl"), "DISCORD_SHARD_COUNT": str(layout.shards)}
        listeners: list[Child] = [
            start_module(f"listener-{n}", "gateway_listener", {**base, "DISCORD_SHARD_IDS": ids}, logs / f"l{n}.log")
            for n, ids in enumerate(layout.shard_ids())]
        service = async_service_client(ctx.storage)
        client = queue_of(service, QUEUE)
        try:
            for child in listeners:
                assert child.log_path is not None
                if not await asyncio.to_thread(wait_for_line, child.log_path, "listener ready as", 90, child):
                    raise RuntimeError(f"{child.name} did not start: see {child.log_path}")
            await asyncio.sleep(1.0)  # idle after READY, then read RSS
            rss = sum(rss_mb(c.proc.pid) for c in listeners if c.proc is not None)
            guilds = [g["id"] for g in emu.guilds]
            rates: list[float] = []
            gaps: list[float] = []
            for _ in range(rounds):
                await _clear(client)
                before = {s: len(b) for s, b in emu.gateway.shard_heartbeats.items()}
                began = time.monotonic()
                for _, guild in zip(range(burst), itertools.cycle(guilds), strict=False):
                    emu.send_message("!ping", guild_id=guild)
                done = await wait_for_count(client, burst, 180)
                rates.append(burst / (done - began))
                await asyncio.sleep(HEARTBEAT_MS / 1000 * 1.5)  # the beat after the burst is in the window
                for shard, beats in emu.gateway.shard_heartbeats.items():
                    window = beats[max(before.get(shard, 0) - 1, 0):]
                    gaps += [b - a for a, b in itertools.pairwise(window)]
            await _clear(client)
        finally:
            for child in listeners:
                await asyncio.to_thread(child.stop)
            await client.close()
            await service.close()
    return Result(rates, max(gaps) * 1000 if gaps else float("nan"), rss / layout.shards)


async def _run(ctx: Context) -> list[Row]:
    burst, rounds = ctx.n(500, 100), ctx.n(2, 1)  # 500: Azurite on a shared 2-core box stalls with more
    results = {layout: await _measure(ctx, layout, burst, rounds) for layout in LAYOUTS}
    base = results[LAYOUTS[0]]
    rows = []
    for layout, res in results.items():
        rate = median(res.rates)
        rows += [
            Row(NAME, f"ingest, {layout.label}", rate, "msg/s", median(base.rates), ratio(rate, median(base.rates)),
                note=f"burst of {burst} over {GUILDS_PER_SHARD * layout.shards} guilds, {rounds} round(s)",
                extra={"rates": res.rates}),
            Row(NAME, f"max heartbeat gap, {layout.label}", res.max_gap_ms, "ms", float(HEARTBEAT_MS),
                ratio(res.max_gap_ms, HEARTBEAT_MS), "< 1.5x interval", res.max_gap_ms < 1.5 * HEARTBEAT_MS),
            Row(NAME, f"RSS per shard, {layout.label}", res.rss_per_shard_mb, "MB", base.rss_per_shard_mb,
                ratio(res.rss_per_shard_mb, base.rss_per_shard_mb), note="sum of the listeners' VmRSS / shards"),
        ]
    return rows


def run(ctx: Context) -> list[Row]:
    return asyncio.run(_run(ctx))
