"""Human-paced latency and instant feedback: commands a few seconds apart, as a person types them.

One split stack per candidate ``maxPollingInterval`` (its own Azurite, Discord emulator,
functions host started with a host.json that differs only in that setting, and listener),
all candidates at once (they are idle most of the time); one in-process discord.py bot
(bench/baseline_bot.py) is measured right after each split sample, under a lock.

- per command: ``!ping`` and ``!catfact`` each every 3-8 s (uniform), in two channels at once,
  so each command's queue sees its own command every 3-8 s;
- mixed: one sequence, 3-8 s apart, each a random one of ``!ping !catfact !roll !help``, so
  each queue sees its command even less often.
Latency is the emulator dispatching MESSAGE_CREATE to the reply arriving at it; feedback is
the same start to the listener's typing request arriving at it. Storage transactions are
the host's own count of queue polls (one GetMessages each) over its run, per queue per hour.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Context, Row, median, p99, ratio, start_module, summary
from localdev.azurite import Azurite
from localdev.discord_emulator import EmulatorThread
from localdev.external_apis import StubApis, api_settings
from localdev.functions_host.host import POLLS_PREFIX
from localdev.functions_host.hostconfig import load_host_config
from localdev.stack import Child, wait_for_line
from shared.settings import PROJECT_ROOT

NAME = "human_paced"
# The rows every run reports (a full run adds the same for 2 s, "before", and the other candidates' polling).
METRICS = (
    "time to first feedback p50 (typing)",
    "time to first feedback p99 (typing)",
    *(f"{name} {q}, human-paced" for name in ("!ping", "!catfact", "mixed commands") for q in ("p50", "p95")),
    "GetMessages per queue-hour, host.json setting",
)
CANDIDATES_S = (2.0, 1.0, 0.5, 0.25, 0.1)  # maxPollingInterval; 2 s was the default before issue 15
GAP_S = (3.0, 8.0)
MIXED = ("ping", "catfact", "roll", "help")
# Queue storage list price (pay-as-you-go, Standard general-purpose v2, LRS): GetMessages is a
# Class 2 operation at USD 0.004 per 10,000. Assumption stated in docs/performance.md.
USD_PER_10K_OPERATIONS = 0.004
HOURS_PER_MONTH = 730


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, -(-95 * len(ordered) // 100) - 1))] if ordered else float("nan")


@dataclass
class Result:
    max_poll_s: float
    latency: dict[str, list[float]] = field(default_factory=dict)  # mode -> ms
    typing: list[float] = field(default_factory=list)  # ms, every split sample
    baseline: dict[str, list[float]] = field(default_factory=dict)  # command -> ms (in-process bot)
    polls: int = 0
    seconds: float = 0.0
    queues: int = 0
    missing_typing: int = 0

    @property
    def polls_per_queue_hour(self) -> float:
        return self.polls / self.queues / self.seconds * 3600 if self.seconds and self.queues else float("nan")


def idle_polls_per_hour(max_poll_s: float) -> float:
    """One queue idle at the cap: one GetMessages per maxPollingInterval."""
    return 3600 / max_poll_s


def monthly_usd(polls_per_hour: float) -> float:
    return polls_per_hour * HOURS_PER_MONTH / 10_000 * USD_PER_10K_OPERATIONS


class Baseline:
    """The in-process bot, one command at a time (the split stacks share it)."""

    def __init__(self, emu: EmulatorThread) -> None:
        self.emu = emu
        self.lock = threading.Lock()

    def reply_ms(self, command: str) -> float:
        with self.lock:
            began = time.monotonic()
            sent = self.emu.send_message(f"!{command}")
            self.emu.wait_for_bot_message(channel_id=sent["channel_id"], after=sent["id"], timeout=30)
            return (time.monotonic() - began) * 1000


def _host_json(path: Path, max_poll_s: float) -> Path:
    doc = json.loads((PROJECT_ROOT / "host.json").read_text(encoding="utf-8"))
    doc["extensions"]["queues"]["maxPollingInterval"] = f"00:00:{max_poll_s:06.3f}"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def _say(emu: EmulatorThread, channel: str, command: str, result: Result) -> float:
    """One command as the user: ms to the reply; the typing request's delay goes to ``result``."""
    began = time.monotonic()
    sent = emu.send_message(f"!{command}", channel_id=channel)
    emu.wait_for_bot_message(channel_id=channel, after=sent["id"], timeout=60)
    replied = time.monotonic()
    typing = emu.wait_for_typing(channel, began, timeout=1.0)
    if typing is None:
        result.missing_typing += 1
    else:
        result.typing.append((typing.at - began) * 1000)
    return (replied - began) * 1000


def _sequence(emu: EmulatorThread, channel: str, commands: list[str], mode: str, result: Result,
              baseline: Baseline, rng: random.Random, gap: tuple[float, float]) -> None:
    for command in commands:
        time.sleep(rng.uniform(*gap))
        result.latency.setdefault(mode, []).append(_say(emu, channel, command, result))
        if command in ("ping", "catfact"):
            result.baseline.setdefault(command, []).append(baseline.reply_ms(command))


def _candidate(ctx: Context, max_poll_s: float, baseline: Baseline, apis_env: dict[str, str], n: int,
               gap: tuple[float, float]) -> Result:
    logs = ctx.workdir / NAME / f"poll-{max_poll_s:g}s"
    logs.mkdir(parents=True, exist_ok=True)
    result = Result(max_poll_s)
    rng = random.Random(int(max_poll_s * 1000))
    with Azurite() as azurite, EmulatorThread(guild_count=2) as emu:
        env = {**apis_env, "AzureWebJobsStorage": azurite.connection_string, "DISCORD_TOKEN": emu.token,
               "DISCORD_API_BASE_URL": emu.api_url, "DISCORD_GATEWAY_URL": emu.gateway_url,
               "LOCAL_TRACE_FILE": str(logs / "traces.jsonl")}
        host_json = _host_json(logs / "host.json", max_poll_s)
        children: list[Child] = []
        try:
            children.append(start_module("host", "localdev.functions_host", env, logs / "host.log",
                                         ["--host-json", str(host_json)]))
            children.append(start_module("listener", "gateway_listener", env, logs / "listener.log"))
            for child, needle in zip(children, ("Functions host ready", "listener ready as"), strict=True):
                if not wait_for_line(child.log_path or Path(), needle, 90, child):
                    raise RuntimeError(f"{child.name} did not start: see {child.log_path}")
            channels = [c.id for c in emu.emulator.world.channels.values()]
            warm = Result(max_poll_s)
            for command in MIXED:  # first invocations (cold start, imports) are not what we measure
                _say(emu, channels[0], command, warm)
            per_command = [
                threading.Thread(target=_sequence, args=(emu, channel, [command] * n, command, result, baseline,
                                                         random.Random(rng.random()), gap))
                for channel, command in zip(channels, ("ping", "catfact"), strict=True)
            ]
            for t in per_command:
                t.start()
            for t in per_command:
                t.join()
            mixed = [rng.choice(MIXED) for _ in range(n)]
            _sequence(emu, channels[0], mixed, "mixed", result, baseline, rng, gap)
        finally:
            for child in reversed(children):
                child.stop()
        for line in (logs / "host.log").read_text(errors="replace").splitlines():
            if POLLS_PREFIX in line:  # "... <polls> queue polls in <seconds> s (<queues> queues)"
                words = line.split(POLLS_PREFIX, 1)[1].split()
                result.polls, result.seconds, result.queues = int(words[0]), float(words[4]), int(words[6][1:])
    return result


def candidate_table(results: list[Result]) -> str:
    """The docs/performance.md table: latency and polling cost per candidate setting."""
    lines = ["| maxPollingInterval | !ping p50 / p95 | !catfact p50 / p95 | mixed p50 / p95 "
             "| GetMessages per queue-hour (idle at cap / measured) | USD per month per always-warm queue |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cells = [f"{median(r.latency.get(m, [])):.0f} / {p95(r.latency.get(m, [])):.0f} ms"
                 for m in ("ping", "catfact", "mixed")]
        idle = idle_polls_per_hour(r.max_poll_s)
        lines.append(f"| {r.max_poll_s:g} s | {' | '.join(cells)} | {idle:,.0f} / {r.polls_per_queue_hour:,.0f} | "
                     f"{monthly_usd(idle):.2f} |")
    return "\n".join(lines)


def _apis_url(stack: list[StubApis]) -> str:
    apis = StubApis()
    stack.append(apis)
    return apis.start()


def run(ctx: Context) -> list[Row]:
    default = load_host_config(PROJECT_ROOT / "host.json").queues.max_polling_interval.total_seconds()
    candidates = sorted(set(CANDIDATES_S) | {default}, reverse=True) if not ctx.quick else [default]
    n = ctx.n(16, 2)
    gap = GAP_S if not ctx.quick else (GAP_S[0], GAP_S[0] + 0.5)
    logs = ctx.workdir / NAME
    logs.mkdir(parents=True, exist_ok=True)
    apis: list[StubApis] = []
    try:
        apis_env = api_settings(_apis_url(apis))
        with EmulatorThread() as base_emu:
            base_env = {"DISCORD_TOKEN": base_emu.token, "DISCORD_API_BASE_URL": base_emu.api_url,
                        "DISCORD_GATEWAY_URL": base_emu.gateway_url, **apis_env}
            bot = start_module("baseline_bot", "bench.baseline_bot", base_env, logs / "baseline.log")
            try:
                if not wait_for_line(logs / "baseline.log", "baseline ready", 60, bot):
                    raise RuntimeError(f"baseline bot did not start: see {logs / 'baseline.log'}")
                baseline = Baseline(base_emu)
                with ThreadPoolExecutor(len(candidates)) as pool:
                    futures = [pool.submit(_candidate, ctx, c, baseline, apis_env, n, gap) for c in candidates]
                    results = [f.result() for f in futures]
            finally:
                bot.stop()
    finally:
        for a in apis:
            a.close()
    print(candidate_table(results), file=sys.stderr)
    return _rows(results, default)


def _rows(results: list[Result], default: float) -> list[Row]:
    by_poll = {r.max_poll_s: r for r in results}
    chosen = by_poll[default]
    before = by_poll.get(2.0)
    base_all = [x for r in results for xs in r.baseline.values() for x in xs]
    base = {c: [x for r in results for x in r.baseline.get(c, [])] for c in ("ping", "catfact")}
    table = candidate_table(results)
    rows: list[Row] = []
    typing = [x for r in results for x in r.typing]
    missing = sum(r.missing_typing for r in results)
    rows.append(Row(NAME, "time to first feedback p50 (typing)", median(typing), "ms", median(base["ping"]),
                    ratio(median(typing), median(base["ping"])), "≤ 2x in-process !ping reply",
                    median(typing) <= 2 * median(base["ping"]),
                    note=f"MESSAGE_CREATE -> typing request at the emulator, {len(typing)} commands, "
                         f"{missing} without typing; baseline: in-process bot's !ping reply",
                    extra={"typing": summary(typing), "baseline_ping": summary(base["ping"])}))
    rows.append(Row(NAME, "time to first feedback p99 (typing)", p99(typing), "ms", p99(base["ping"]),
                    ratio(p99(typing), p99(base["ping"]))))
    for r, label in ((chosen, "host.json"), (before, "before")):
        if r is None or (label == "before" and r is chosen):
            continue
        for mode in ("ping", "catfact", "mixed"):
            samples = r.latency.get(mode, [])
            base_mode = base.get(mode, base_all)
            name = f"!{mode}" if mode != "mixed" else "mixed commands"
            suffix = "human-paced" if r is chosen else f"human-paced, before ({r.max_poll_s:g} s)"
            is_target = r is chosen
            rows.append(Row(NAME, f"{name} p50, {suffix}", median(samples), "ms", median(base_mode),
                            ratio(median(samples), median(base_mode)), "< 500 ms" if is_target else "",
                            (median(samples) < 500) if is_target else None,
                            note=f"maxPollingInterval {r.max_poll_s:g} s ({label}); {len(samples)} commands 3-8 s "
                                 "apart; baseline: the in-process bot",
                            extra={"samples": samples, "baseline": summary(base_mode)}))
            rows.append(Row(NAME, f"{name} p95, {suffix}", p95(samples), "ms", p95(base_mode),
                            ratio(p95(samples), p95(base_mode))))
    for r in sorted(results, key=lambda r: r is not chosen):  # the host.json setting first
        idle = idle_polls_per_hour(r.max_poll_s)
        metric = ("GetMessages per queue-hour, host.json setting" if r is chosen
                  else f"GetMessages per queue-hour, maxPollingInterval {r.max_poll_s:g} s")
        rows.append(Row(NAME, metric, r.polls_per_queue_hour, "/h", idle, ratio(r.polls_per_queue_hour, idle),
                        note=f"maxPollingInterval {r.max_poll_s:g} s; baseline: idle at the cap (3600 / interval); "
                             f"USD {monthly_usd(idle):.2f}/month per always-warm queue at USD "
                             f"{USD_PER_10K_OPERATIONS}/10k",
                        extra={"polls": r.polls, "seconds": r.seconds, "queues": r.queues,
                               "latency": {m: summary(v) | {"p95": p95(v)} for m, v in r.latency.items()},
                               "samples": r.latency}))
    rows[0].extra["candidate_table"] = table
    return rows
