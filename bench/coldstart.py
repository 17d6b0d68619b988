"""Cold reply: process start -> the first reply, for function_app.py against a minimal app.

Each run starts ``python -m localdev.functions_host --app ...`` with one message already
waiting in the function's queue:
- minimal (bench/minimal_app.py): until its function has written its timestamp;
- function_app with OTLP on (a local receiver) and with Azure Monitor on (a local
  receiver as IngestionEndpoint): a ``!ping`` envelope in cmd-ping, until the ``pong``
  reply reaches the Discord emulator (so it includes the ping's reply, a few ms).
The three are interleaved run by run; one warm-up round (OS page cache, .pyc) is excluded.
The ratio is the median of the per-round ratios (target: 1.2x).
Also ``python -X importtime -c "import function_app"``: the top 10 imports by cumulative time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import (
    AZURE_MONITOR_ACCEPTED,
    Context,
    HttpStub,
    Row,
    appinsights_connection_string,
    median,
    p99,
    ratio,
    start_module,
    summary,
    wait_until,
)
from bench.minimal_app import QUEUE as MINIMAL_QUEUE
from localdev.discord_emulator import EmulatorThread
from shared.envelope import Envelope, Ids, encode
from shared.queues import queue_client
from shared.settings import PROJECT_ROOT, StorageSettings

NAME = "coldstart"
METRICS = ("first invocation, OTLP on", "first invocation, Azure Monitor on", "import function_app (importtime)")
CONFIGS = ("minimal", "otlp", "azure_monitor")
TARGET_RATIO = 1.2  # issue 15: the reply within 1.2x of a minimal Functions app's first invocation


def _put(storage: StorageSettings, queue: str, text: str) -> None:
    client = queue_client(storage, queue)
    try:
        client.create_queue()
    except Exception:  # exists
        client.clear_messages()
    client.send_message(text)


def _ping_envelope(emu: EmulatorThread) -> tuple[str, str]:
    """(envelope text, source message id): a ``!ping`` the emulator knows, so the reply is valid."""
    sent = emu.send_message("!ping")  # no bot is connected: it waits in the emulator's backlog
    env = Envelope(kind="message", command="ping", args="",
                   ids=Ids(message=sent["id"], channel=emu.channel_id, author=sent["author"]["id"],
                           guild=emu.guild_id),
                   author_name="you", received_at=datetime.now(UTC))
    return encode(env), sent["id"]


def _one_run(ctx: Context, config: str, emu: EmulatorThread, receivers: dict[str, str], n: int) -> float:
    """Milliseconds from Popen to the first invocation done."""
    logs = ctx.workdir / NAME
    env = {"AzureWebJobsStorage": ctx.azurite.connection_string}
    if config == "minimal":
        mark = logs / f"mark-{n}.txt"
        env["BENCH_MARK_FILE"] = str(mark)
        _put(ctx.storage, MINIMAL_QUEUE, "go")
        app = "bench.minimal_app:app"
    else:
        text, source_id = _ping_envelope(emu)
        _put(ctx.storage, "cmd-ping", text)
        env.update(DISCORD_TOKEN=emu.token, DISCORD_API_BASE_URL=emu.api_url)
        if config == "otlp":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receivers["otlp"]
        else:
            env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = appinsights_connection_string(receivers["azure_monitor"])
        app = "function_app:app"
    began = time.time_ns()
    host = start_module(f"host-{config}", "localdev.functions_host", env, logs / f"{config}-{n}.log", ["--app", app])
    try:
        if config == "minimal":
            wait_until(lambda: mark.exists() and mark.read_text().strip() != "", 60, 0.005, "the minimal function")
            done = int(mark.read_text().split()[0])
        else:
            emu.wait_for_bot_message(channel_id=emu.channel_id, after=source_id, timeout=60)
            done = time.time_ns()
    finally:
        host.stop()
    return (done - began) / 1e6


def _importtime(statement: str, otlp_url: str) -> list[dict[str, Any]]:
    """``python -X importtime -c statement``: one entry per module, in import order."""
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    entries: list[dict[str, Any]] = []
    for line in proc.stderr.splitlines():  # "import time:  self_us | cumulative_us |   <indent>module"
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        entries.append({"module": name.strip(), "depth": (len(name) - len(name.lstrip()) - 1) // 2,
                        "self_ms": int(self_us) / 1000, "cumulative_ms": int(cumulative_us) / 1000})
    return entries


def import_profile(otlp_url: str) -> dict[str, Any]:
    """``import function_app``'s cumulative ms, its top 10 imports, and the top 10 of what it adds
    to the host + minimal app (the modules only the real app imports: the lazy-import candidates)."""
    host = "import localdev.functions_host.__main__, "
    app = _importtime(host + "function_app", otlp_url)
    minimal = {e["module"] for e in _importtime(host + "bench.minimal_app", otlp_url)}
    added = {id(e) for e in app if e["module"] not in minimal and e["module"] != "function_app"}
    # Outermost added modules only: a nested one is already inside its parent's cumulative time.
    outer, floor = [], None
    for e in reversed(app):  # importtime prints children before their parent
        if floor is not None and e["depth"] > floor:
            continue
        floor = None
        if id(e) in added:
            outer.append(e)
            floor = e["depth"]
    top = sorted((e for e in app if e["module"] != "function_app"), key=lambda e: e["cumulative_ms"], reverse=True)
    return {
        "total_ms": next((e["cumulative_ms"] for e in app if e["module"] == "function_app"), float("nan")),
        "added_ms": sum(e["cumulative_ms"] for e in outer),
        "top10_cumulative": top[:10],
        "top10_added_by_app": sorted(outer, key=lambda e: e["cumulative_ms"], reverse=True)[:10],
    }


def cprofile_first_invocation(ctx: Context, emu: EmulatorThread, otlp_url: str, top: int = 25) -> list[str]:
    """One OTLP-on cold start under cProfile: the functions with the most cumulative time."""
    import pstats

    out = ctx.workdir / NAME / "coldstart.prof"
    text, source_id = _ping_envelope(emu)
    _put(ctx.storage, "cmd-ping", text)
    env = {"AzureWebJobsStorage": ctx.azurite.connection_string, "DISCORD_TOKEN": emu.token,
           "DISCORD_API_BASE_URL": emu.api_url, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url}
    host = start_module("host-cprofile", "cProfile", env, ctx.workdir / NAME / "cprofile.log",
                        ["-o", str(out), "-m", "localdev.functions_host", "--app", "function_app:app"])
    try:
        emu.wait_for_bot_message(channel_id=emu.channel_id, after=source_id, timeout=60)
    finally:
        host.stop()  # SIGTERM: the host returns from main, cProfile writes its file
    stats = pstats.Stats(str(out))
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)  # type: ignore[attr-defined]
    lines = []
    for (path, line, func), (_cc, _nc, tottime, cumtime, _callers) in rows:
        where = path.replace(str(PROJECT_ROOT) + "/", "").split("site-packages/")[-1]
        lines.append(f"{cumtime * 1000:8.1f} ms cum {tottime * 1000:7.1f} ms self  {where}:{line}({func})")
        if len(lines) >= top:
            break
    return lines


def run(ctx: Context) -> list[Row]:
    (ctx.workdir / NAME).mkdir(parents=True, exist_ok=True)
    rounds = ctx.n(15, 1)
    samples: dict[str, list[float]] = {c: [] for c in CONFIGS}
    failures: dict[str, int] = {}
    with EmulatorThread() as emu, HttpStub() as otlp, HttpStub(body=AZURE_MONITOR_ACCEPTED) as azmon:
        receivers = {"otlp": otlp.url, "azure_monitor": azmon.url}
        for r in range(rounds + (0 if ctx.quick else 1)):
            for config in CONFIGS:
                try:
                    ms = _one_run(ctx, config, emu, receivers, r)
                except TimeoutError:  # a stuck start (see docs/performance.md): counted, then one retry
                    failures[config] = failures.get(config, 0) + 1
                    ms = _one_run(ctx, config, emu, receivers, r + 100)
                if ctx.quick or r > 0:  # round 0 warms the page cache and writes .pyc files
                    samples[config].append(ms)
        imports = import_profile(otlp.url)
        slow = median(samples["otlp"]) > TARGET_RATIO * median(samples["minimal"])
        profile = cprofile_first_invocation(ctx, emu, otlp.url) if slow and not ctx.quick else []
    base = samples["minimal"]
    rows = []
    for metric, config in zip(METRICS[:2], CONFIGS[1:], strict=True):
        value = median(samples[config])
        # Each round runs minimal, OTLP, Azure Monitor back to back: the median of the per-round
        # ratios cancels the drift a shared machine adds between rounds, which the ratio of the
        # two medians does not (it moved by 0.1x between back-to-back runs here).
        paired = median([v / b for v, b in zip(samples[config], base, strict=True)])
        rows.append(Row(
            NAME, metric, value, "ms", median(base), paired,
            f"≤ {TARGET_RATIO}x minimal app", paired <= TARGET_RATIO,
            note=f"process start -> reply; ratio = median of per-round ratios (ratio of medians "
                 f"{ratio(value, median(base)) or float('nan'):.2f}x); p99 {p99(samples[config]):.0f} ms "
                 f"vs minimal p99 {p99(base):.0f} ms, {len(base)} runs",
            extra={config: summary(samples[config]), "minimal": summary(base), "samples": samples[config],
                   "paired_ratio_median": paired, "timed_out_runs": failures, "minimal_samples": base},
        ))
    rows.append(Row(NAME, METRICS[2], imports["total_ms"], "ms",
                    note=f"python -X importtime, OTLP on; {imports['added_ms']:.0f} ms of it is imports the "
                         "minimal app + host do not make (top 10 in JSON)",
                    extra={**imports, "cprofile_top_cumulative": profile}))
    return rows
