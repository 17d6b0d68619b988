"""Memory: listener RSS idle after READY with 1, 100 and 1,000 guilds, against a default discord.py bot.

For each guild count, the listener (``python -m gateway_listener``) and the baseline bot
(bench/baseline_bot.py: default intents + message content, default caches) each connect
to their own emulator with that many guilds. Once the process logs that it is ready
(discord.py's READY after every GUILD_CREATE), it is left idle for a moment and VmRSS
is read from /proc/<pid>/status (median of a few readings). All processes of one guild
count run side by side; RSS does not depend on the CPU they share.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import ExitStack

from bench.common import Context, Row, median, rss_mb, start_module
from localdev.discord_emulator import EmulatorThread
from localdev.stack import Child, wait_for_line
from shared.settings import PROJECT_ROOT

NAME = "memory"
GUILD_COUNTS = (1, 100, 1000)
METRICS = tuple(f"listener RSS idle, {n} guilds" for n in GUILD_COUNTS)
TARGET_MB = 60.0
READY = {"listener": "listener ready as", "baseline": "baseline ready"}


def _measure(ctx: Context, guilds: int, readings: int) -> dict[str, float]:
    logs = ctx.workdir / NAME
    logs.mkdir(parents=True, exist_ok=True)
    children: dict[str, Child] = {}
    with ExitStack() as stack:
        try:
            for kind in READY:
                emu = stack.enter_context(EmulatorThread(guild_count=guilds))
                env = {"DISCORD_TOKEN": emu.token, "DISCORD_API_BASE_URL": emu.api_url,
                       "DISCORD_GATEWAY_URL": emu.gateway_url}
                if kind == "listener":
                    env.update(AzureWebJobsStorage=ctx.azurite.connection_string,
                               LOCAL_TRACE_FILE=str(logs / "traces.jsonl"))
                module = "gateway_listener" if kind == "listener" else "bench.baseline_bot"
                children[kind] = start_module(kind, module, env, logs / f"{kind}-{guilds}.log")
            for kind, child in children.items():
                if not wait_for_line(child.log_path or logs, READY[kind], 120, child):
                    raise RuntimeError(f"{kind} with {guilds} guilds did not get ready: see {child.log_path}")
            time.sleep(1.0)  # idle: let start-up garbage go
            out: dict[str, list[float]] = {kind: [] for kind in children}
            for _ in range(readings):
                for kind, child in children.items():
                    assert child.proc is not None
                    out[kind].append(rss_mb(child.proc.pid))
                time.sleep(0.5)
            return {kind: median(values) for kind, values in out.items()}
        finally:
            for child in children.values():
                child.stop()


# What the listener process loads on top of discord.py, step by step (the RSS profile).
STEPS = (
    ("python", ""),
    ("discord.py", "import discord"),
    ("listener modules", "import gateway_listener.bot, gateway_listener.__main__"),
    ("azure queue client (aio)", "from shared.queues import async_service_client; import azure.storage.queue.aio"),
    ("telemetry setup", "from shared import telemetry; from shared.settings import load_settings; "
                        "telemetry.setup_telemetry(load_settings(), 'listener')"),
)


_WORKER = """
import json, os
def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
out = []
for label, statement in STEPS:
    exec(statement)
    out.append({"step": label, "rss_mb": rss()})
print(json.dumps(out))
"""


def import_rss_profile() -> list[dict[str, float | str]]:
    """RSS after each of STEPS, in one fresh interpreter that imports nothing else."""
    code = f"STEPS = {STEPS!r}\n{_WORKER}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          cwd=PROJECT_ROOT, env={"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                                 "LOCAL_TRACE_FILE": "/dev/null", "PATH": "/usr/bin:/bin"})
    result: list[dict[str, float | str]] = json.loads(proc.stdout.splitlines()[-1])
    return result


def run(ctx: Context) -> list[Row]:
    rows = []
    for guilds, metric in zip(GUILD_COUNTS, METRICS, strict=True):
        rss = _measure(ctx, guilds, ctx.n(5, 1))
        listener, baseline = rss["listener"], rss["baseline"]
        target = guilds == 1000
        rows.append(Row(
            NAME, metric, listener, "MB", baseline, listener / baseline,
            f"≤ {TARGET_MB:g} MB" if target else "", (listener <= TARGET_MB) if target else None,
            note="VmRSS; baseline = discord.py bot with default intents (+message content) and caches",
            extra={"import_rss_profile": import_rss_profile()} if target else {},
        ))
    return rows

