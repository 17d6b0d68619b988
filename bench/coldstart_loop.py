"""``python -m bench.coldstart_loop [--runs 50] [--configs azure_monitor] [--load N] [--no-restart]``

Many cold starts in a row (bench/coldstart.py's runs), counting the ones that hang: a
start that takes longer than ``--hang-s`` to reply. ``--load N`` first does to Azurite
what the ingest benchmark does (N messages sent, then cleared); Azurite is then
restarted, as ``python -m bench`` does between benchmarks, unless ``--no-restart``, which
reproduces the start-up hang of issue 15: Azurite's in-memory store sweeps the deleted
messages 60 s later in one quadratic, non-yielding loop and answers nothing meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.coldstart import CONFIGS, _one_run
from bench.common import AZURE_MONITOR_ACCEPTED, Context, HttpStub, median, p99
from localdev.azurite import Azurite
from localdev.discord_emulator import EmulatorThread
from shared.queues import async_service_client, queue_of
from shared.settings import Secret, StorageSettings


async def _load(connection_string: str, count: int) -> None:
    service = async_service_client(StorageSettings(connection_string=Secret(connection_string)))
    client = queue_of(service, "cmd-ping")
    try:
        await client.create_queue()
        gate = asyncio.Semaphore(8)

        async def send() -> None:
            async with gate:
                await client.send_message("x" * 700)

        await asyncio.gather(*(send() for _ in range(count)))
        await client.clear_messages()
    finally:
        await client.close()
        await service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart_loop", description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--configs", default="azure_monitor", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--load", type=int, default=0, help="messages to send and clear first (ingest leaves ~6000)")
    parser.add_argument("--no-restart", action="store_true", help="keep the loaded Azurite (reproduces the hang)")
    parser.add_argument("--hang-s", type=float, default=10.0)
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    work = Path(tempfile.mkdtemp(prefix="coldstart-loop-"))
    (work / "coldstart").mkdir()
    times: dict[str, list[float]] = {c: [] for c in configs}
    hangs: dict[str, int] = dict.fromkeys(configs, 0)
    with Azurite() as azurite, EmulatorThread() as emu, HttpStub() as otlp, \
            HttpStub(body=AZURE_MONITOR_ACCEPTED) as azmon:
        if args.load:
            asyncio.run(_load(azurite.connection_string, args.load))
            if not args.no_restart:
                azurite.restart()
        ctx = Context(quick=False, azurite=azurite, workdir=work)
        receivers = {"otlp": otlp.url, "azure_monitor": azmon.url}
        for n in range(args.runs):
            for config in configs:
                began = time.monotonic()
                try:
                    ms = _one_run(ctx, config, emu, receivers, n)
                except TimeoutError:
                    ms = (time.monotonic() - began) * 1000
                hung = ms > args.hang_s * 1000
                hangs[config] += hung
                times[config].append(ms)
                print(f"run {n} {config}: {ms:.0f} ms{'  HANG' if hung else ''}", flush=True)
    for config in configs:
        print(f"{config}: {hangs[config]} of {args.runs} cold starts took over {args.hang_s:.0f} s; "
              f"median {median(times[config]):.0f} ms, max {p99(times[config]):.0f} ms")
    print(f"logs: {work}")
    return 1 if any(hangs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
