"""Worker hop (issue 18): what running the app in a language-worker process costs, against the
in-host path the local host had before (the app imported into the host process) and a minimal app.

- cold reply: process start -> the reply, interleaved round by round (the order rotates each round),
  one warm-up round excluded (OS page cache, .pyc), OTLP on (a local receiver) everywhere:
  * worker: ``python -m localdev.functions_host`` (function_app.py in the worker process, all its
    functions) with a ``!ping`` envelope already in cmd-ping, until the emulator records the pong;
  * worker, ping only: the same with ``--functions ping`` (one instance of ping's scaling group);
  * in-host: ``python -m bench.inprocess_host --once`` (imports function_app, receives the message with
    azure-storage-queue and calls ping's user function directly), until the pong;
  * minimal: the host with ``--app bench.minimal_app:app``, until its function wrote its timestamp.
  Ratios are medians of the per-round ratios (see coldstart.py: they cancel the drift of a shared machine).
- warm invocation: one invocation of bench/noop_app.py's no-op function through
  ``WorkerChannel.invoke`` (payload, trigger metadata and trace context built per call, as the host's
  Invoker does), against calling the same user function in-process with a ``func.QueueMessage``,
  alternately. Also, informational: the call through a thread pool, as the old host ran sync functions.
- memory: VmRSS of an idle ``python -m localdev.functions_host --functions ping`` (host + its worker,
  whose pid the ready line gives) against ``python -m bench.inprocess_host`` idle (function_app
  imported, polling cmd-ping), side by side, after their ready lines. PSS in the JSON.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.coldstart import _ping_envelope, _put
from bench.common import (
    Context,
    HttpStub,
    Row,
    median,
    p99,
    ratio,
    rss_mb,
    start_module,
    summary,
    wait_until,
)
from bench.inprocess_host import READY as INHOST_READY
from bench.minimal_app import QUEUE as MINIMAL_QUEUE
from localdev.azurite import free_port
from localdev.discord_emulator import EmulatorThread
from localdev.functions_host.host import READY_PREFIX
from localdev.stack import Child, child_env, wait_for_line

NAME = "worker"
METRICS = (
    "cold reply, function_app under the worker",
    "cold reply, worker vs in-host",
    "cold reply, --functions ping vs in-host",
    "warm invocation p50, worker hop",
    "warm invocation p99, worker hop",
    "RSS idle per instance, host + worker",
)
CONFIGS = ("worker", "worker_ping", "inhost", "minimal")
TARGET_RATIO = 1.2  # the cold reply within 1.2x of a minimal app's first invocation (as issue 15)
BODY = ('{"kind":"message","command":"ping","args":"","ids":{"message":"1","channel":"2","author":"3",'
        '"guild":"4"},"author_name":"you","received_at":"2026-12-01T00:00:00+00:00"}').ljust(600).encode()
_WORKER_PID = re.compile(re.escape(READY_PREFIX) + r".*worker pid (\d+)\)")


# -- cold reply --------------------------------------------------------------------------------


def _env(ctx: Context, emu: EmulatorThread, otlp_url: str) -> dict[str, str]:
    # A port of our own for the interactions HTTP function: 7071 may be another engineer's host.
    return {"AzureWebJobsStorage": ctx.azurite.connection_string, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
            "DISCORD_TOKEN": emu.token, "DISCORD_API_BASE_URL": emu.api_url, "FUNCTIONS_HTTP_PORT": str(free_port())}


def _wait_reply(emu: EmulatorThread, source_id: str, child: Child, timeout: float) -> None:
    """Until the emulator has the reply to ``source_id``; fails at once if ``child`` exited without it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            emu.wait_for_bot_message(channel_id=emu.channel_id, after=source_id, timeout=0.25)
            return
        except TimeoutError:
            if not child.running:  # one last look: --once exits right after its reply
                with suppress(TimeoutError):
                    emu.wait_for_bot_message(channel_id=emu.channel_id, after=source_id, timeout=0.5)
                    return
                raise RuntimeError(f"{child.name} exited without replying: see {child.log_path}") from None
            if time.monotonic() > deadline:
                raise


def _cold_run(ctx: Context, config: str, emu: EmulatorThread, otlp_url: str, n: int) -> float:
    """Milliseconds from Popen to the reply (the minimal function's timestamp)."""
    logs = ctx.workdir / NAME
    env = _env(ctx, emu, otlp_url)
    mark = logs / f"mark-{n}.txt"
    source_id = ""
    if config == "minimal":
        env["BENCH_MARK_FILE"] = str(mark)
        _put(ctx.storage, MINIMAL_QUEUE, "go")
    else:
        text, source_id = _ping_envelope(emu)
        _put(ctx.storage, "cmd-ping", text)
    module, args = {
        "worker": ("localdev.functions_host", ["--app", "function_app:app"]),
        "worker_ping": ("localdev.functions_host", ["--app", "function_app:app", "--functions", "ping"]),
        "inhost": ("bench.inprocess_host", ["--once"]),
        "minimal": ("localdev.functions_host", ["--app", "bench.minimal_app:app"]),
    }[config]
    began = time.time_ns()
    child = start_module(f"cold-{config}", module, env, logs / f"cold-{config}-{n}.log", args)
    try:
        if config == "minimal":
            def marked() -> bool:
                if not child.running:
                    raise RuntimeError(f"{child.name} exited: see {child.log_path}")
                return mark.exists() and mark.read_text().strip() != ""

            wait_until(marked, 60, 0.005, "the minimal function")
            done = int(mark.read_text().split()[0])
        else:
            _wait_reply(emu, source_id, child, 60)
            done = time.time_ns()
    finally:
        child.stop()
    return (done - began) / 1e6


def _cold(ctx: Context, emu: EmulatorThread, otlp_url: str) -> tuple[dict[str, list[float]], dict[str, int]]:
    rounds = ctx.n(15, 1)
    samples: dict[str, list[float]] = {c: [] for c in CONFIGS}
    failures: dict[str, int] = {}
    for r in range(rounds + (0 if ctx.quick else 1)):
        order = CONFIGS[r % len(CONFIGS):] + CONFIGS[:r % len(CONFIGS)]  # no config always goes first
        for config in order:
            try:
                ms = _cold_run(ctx, config, emu, otlp_url, r)
            except (TimeoutError, RuntimeError):  # a stuck or failed start: counted, then one retry
                failures[config] = failures.get(config, 0) + 1
                ms = _cold_run(ctx, config, emu, otlp_url, r + 100)
            if ctx.quick or r > 0:
                samples[config].append(ms)
    return samples, failures


def _paired(values: list[float], base: list[float]) -> float:
    return median([v / b for v, b in zip(values, base, strict=True)])


# -- warm invocation ---------------------------------------------------------------------------


async def _warm(n: int, warmup: int) -> dict[str, list[float]]:
    """Microseconds per invocation: through the worker, direct in-process, in-process via a thread pool."""
    from azure.functions.queue import QueueMessage as FuncQueueMessage
    from azure.storage.queue import QueueMessage as StorageQueueMessage

    import bench.noop_app as noop
    from localdev.functions_host.invoke import host_trace_context, payload, queue_trigger_metadata
    from localdev.functions_host.spawn import AppLocation
    from localdev.functions_host.worker_channel import WorkerChannel
    from localdev.functions_rpc import protos

    logging.disable(logging.WARNING)  # azure.functions warns on the root logger that auth levels need HTTP
    try:
        user = {f.get_function_name(): f for f in noop.app.get_functions()}[noop.FUNCTION].get_user_function()
    finally:
        logging.disable(logging.NOTSET)
    channel = WorkerChannel(AppLocation.of("bench.noop_app:app"), child_env({}))
    out: dict[str, list[float]] = {"worker": [], "direct": [], "thread_pool": []}
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench-inproc")
    loop = asyncio.get_running_loop()
    try:
        fn = next(f for f in await channel.start() if f.name == noop.FUNCTION)
        await channel.load(fn)
        for i in range(warmup + n):
            now = datetime.now(UTC)
            msg = StorageQueueMessage(BODY, id=secrets.token_hex(16), inserted_on=now, dequeue_count=1,
                                      expires_on=now + timedelta(days=7), next_visible_on=now + timedelta(minutes=1),
                                      pop_receipt=secrets.token_hex(8))

            def func_msg(m: StorageQueueMessage = msg) -> FuncQueueMessage:
                return FuncQueueMessage(id=m.id, body=BODY, dequeue_count=m.dequeue_count,
                                        insertion_time=m.inserted_on, expiration_time=m.expires_on,
                                        time_next_visible=m.next_visible_on, pop_receipt=m.pop_receipt)

            t0 = time.perf_counter()
            binding = protos().ParameterBinding(name="msg", data=payload(BODY))
            await channel.invoke(fn, [binding], queue_trigger_metadata(msg), host_trace_context(fn.name), 30)
            t1 = time.perf_counter()
            user(msg=func_msg())
            t2 = time.perf_counter()
            await loop.run_in_executor(executor, functools.partial(user, msg=func_msg()))
            t3 = time.perf_counter()
            if i >= warmup:
                out["worker"].append((t1 - t0) * 1e6)
                out["direct"].append((t2 - t1) * 1e6)
                out["thread_pool"].append((t3 - t2) * 1e6)
    finally:
        executor.shutdown()
        await channel.stop()
    return out


# -- memory ------------------------------------------------------------------------------------


def _pss_mb(pid: int) -> float:
    """Proportional set size (shared pages split between their users), in MB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for pid {pid}")


def _memory(ctx: Context, emu: EmulatorThread, otlp_url: str, rounds: int, readings: int) -> dict[str, list[float]]:
    logs = ctx.workdir / NAME
    env = _env(ctx, emu, otlp_url)
    out: dict[str, list[float]] = {k: [] for k in ("host", "worker", "inhost", "host_pss", "worker_pss", "inhost_pss")}
    for r in range(rounds):
        children: dict[str, Child] = {}
        try:
            children["host"] = start_module("idle-host", "localdev.functions_host", env, logs / f"idle-host-{r}.log",
                                            ["--functions", "ping"])
            children["inhost"] = start_module("idle-inhost", "bench.inprocess_host", env,
                                              logs / f"idle-inhost-{r}.log")
            for kind, needle in (("host", READY_PREFIX), ("inhost", INHOST_READY)):
                child = children[kind]
                if not wait_for_line(child.log_path or logs, needle, 60, child):
                    raise RuntimeError(f"{child.name} did not get ready: see {child.log_path}")
            found = _WORKER_PID.search((children["host"].log_path or logs).read_text(errors="replace"))
            if found is None:
                raise RuntimeError("no worker pid in the host's ready line")
            pids = {"worker": int(found.group(1))}
            for kind, child in children.items():
                assert child.proc is not None
                pids[kind] = child.proc.pid
            time.sleep(1.0)  # idle: let start-up garbage go
            for _ in range(readings):
                for kind, pid in pids.items():
                    out[kind].append(rss_mb(pid))
                    out[f"{kind}_pss"].append(_pss_mb(pid))
                time.sleep(0.5)
        finally:
            for child in children.values():
                child.stop()
    return out


# -- the rows ----------------------------------------------------------------------------------


def run(ctx: Context) -> list[Row]:
    (ctx.workdir / NAME).mkdir(parents=True, exist_ok=True)
    with EmulatorThread() as emu, HttpStub() as otlp:
        cold, failures = _cold(ctx, emu, otlp.url)
        mem = _memory(ctx, emu, otlp.url, ctx.n(3, 1), ctx.n(5, 1))
    warm = asyncio.run(_warm(ctx.n(500, 100), ctx.n(50, 10)))
    return _rows(cold, failures, warm, mem)


def _rows(cold: dict[str, list[float]], failures: dict[str, int], warm: dict[str, list[float]],
          mem: dict[str, list[float]]) -> list[Row]:
    worker, ping_only, inhost, minimal = (cold[c] for c in CONFIGS)
    vs_minimal = _paired(worker, minimal)
    of_medians = ratio(median(worker), median(minimal)) or float("nan")
    runs = f"{len(minimal)} interleaved rounds"
    cold_extra = {"samples": cold, "timed_out_runs": failures} | {c: summary(v) for c, v in cold.items()}
    rows = [
        Row(NAME, METRICS[0], median(worker), "ms", median(minimal), vs_minimal, f"≤ {TARGET_RATIO}x minimal app",
            vs_minimal <= TARGET_RATIO,
            note=f"process start -> pong; baseline bench/minimal_app.py under the same host + worker; ratio = "
                 f"median of per-round ratios (of medians {of_medians:.2f}x); "
                 f"p99 {p99(worker):.0f} vs {p99(minimal):.0f} ms; {runs}",
            extra=cold_extra),
        Row(NAME, METRICS[1], median(worker), "ms", median(inhost), _paired(worker, inhost),
            note=f"baseline bench/inprocess_host.py (function_app imported in one process, ping called "
                 f"directly); ratio = median of per-round ratios; p99 {p99(inhost):.0f} ms in-host; {runs}"),
        Row(NAME, METRICS[2], median(ping_only), "ms", median(inhost), _paired(ping_only, inhost),
            note=f"host --functions ping (one function loaded, one queue); vs minimal "
                 f"{_paired(ping_only, minimal):.2f}x; {runs}"),
    ]
    w, d, tp = warm["worker"], warm["direct"], warm["thread_pool"]
    warm_note = (f"bench/noop_app.py, {len(w)} invocations; baseline = the user function called in-process "
                 f"with a func.QueueMessage; through a thread pool (the old host's way for sync functions) "
                 f"p50 {median(tp):.0f} µs, p99 {p99(tp):.0f} µs")
    rows += [
        Row(NAME, METRICS[3], median(w), "µs", median(d), ratio(median(w), median(d)),
            note=warm_note, extra={"worker_us": summary(w), "direct_us": summary(d), "thread_pool_us": summary(tp)}),
        Row(NAME, METRICS[4], p99(w), "µs", p99(d), ratio(p99(w), p99(d))),
    ]
    host, wrk, inh = median(mem["host"]), median(mem["worker"]), median(mem["inhost"])
    pss = {k: median(v) for k, v in mem.items() if k.endswith("_pss")}
    rows.append(Row(
        NAME, METRICS[5], host + wrk, "MB", inh, ratio(host + wrk, inh),
        note=f"VmRSS, idle after ready, --functions ping: host {host:.1f} MB + worker {wrk:.1f} MB; baseline "
             f"bench/inprocess_host.py idle (function_app imported, polling); PSS {pss['host_pss']:.1f} + "
             f"{pss['worker_pss']:.1f} vs {pss['inhost_pss']:.1f} MB",
        extra={k: summary(v) for k, v in mem.items()},
    ))
    return rows
