"""Per-function scaling vs one host: a burst of slow ``!catfact`` while ``!ping`` keeps coming.

The whole bot runs as ``python -m localdev`` runs it (listener, Azurite, the scale
controller's instances) against the Discord emulator, and catfact's API is a local stub
that answers after 500 ms. One ``!ping`` is sent every 250 ms; after a warm-up and a quiet
"before" window, a burst of ``!catfact`` is sent at once. Measured per mode, in the same run:
ping latency (emulator dispatch -> the reply's REST request) before vs during the burst,
the time from the burst to its last reply, catfact's instances over time (plotted), and
messages never answered or answered twice. "Function side" is the ping's trace from the
end of the listener's ``cmd-ping send`` to the end of ``cmd-ping process`` (queue pick-up,
the function, the reply): the part per-function scaling isolates, without the listener's
enqueue, which every command shares.

- per-function: ``python -m localdev.scale_controller`` (one group per function, defaults);
- single host: the same controller with ``--single-host`` (every function in one process).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from bench.common import Context, HttpStub, Row, median, p99, start_module, wait_started, wait_until
from localdev.discord_emulator import EmulatorThread
from localdev.scale_controller import READY_PREFIX, read_status
from localdev.traces import load_traces
from shared.queues import queue_client
from shared.registry import COMMANDS

NAME = "scaling"
METRICS = (
    "!ping p50 before burst",
    "!ping p50 during burst",
    "!ping p99 during burst",
    "!ping function side p50 during burst",
    "!ping function side p99 during burst",
    "burst drain time",
    "catfact instances, max",
    "messages lost",
    "messages answered twice",
)
API_DELAY_S = 0.5
PING_EVERY_S = 0.25
MODES = {"per-function": [], "single host": ["--single-host"]}
FACT = json.dumps({"fact": "Cats sleep for around 13 to 16 hours a day.", "length": 42}).encode()


@dataclass
class Sent:
    id: str
    command: str
    at: float  # epoch seconds just before the emulator dispatched it
    phase: str  # warmup | before | during | after


@dataclass
class ModeResult:
    sent: list[Sent] = field(default_factory=list)
    replies: dict[str, list[float]] = field(default_factory=dict)  # message id -> reply request times
    burst_at: float = 0.0
    instances: list[tuple[float, int]] = field(default_factory=list)  # (s since burst, catfact instances)
    function_side_ms: list[float] = field(default_factory=list)  # pings sent during the burst, from traces

    def latencies(self, command: str, phase: str) -> list[float]:
        return [(self.replies[s.id][0] - s.at) * 1000 for s in self.sent
                if s.command == command and s.phase == phase and self.replies.get(s.id)]

    @property
    def drain_s(self) -> float:
        last = max((self.replies[s.id][0] for s in self.sent if s.command == "catfact" and self.replies.get(s.id)),
                   default=float("nan"))
        return last - self.burst_at

    @property
    def lost(self) -> int:
        return sum(1 for s in self.sent if not self.replies.get(s.id))

    @property
    def twice(self) -> int:
        return sum(1 for s in self.sent if len(self.replies.get(s.id, [])) > 1)


class Pinger(threading.Thread):
    """Sends ``!ping`` every 250 ms, tagging each with the current phase."""

    def __init__(self, emu: EmulatorThread, result: ModeResult) -> None:
        super().__init__(name="pinger", daemon=True)
        self.emu, self.result = emu, result
        self.phase = "warmup"
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def send(self, content: str, phase: str) -> Sent:
        at = time.time()
        message = self.emu.send_message(content)
        sent = Sent(message["id"], content.lstrip("!"), at, phase)
        with self.lock:
            self.result.sent.append(sent)
        return sent

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.halt.is_set():
            self.send("!ping", self.phase)
            next_at += PING_EVERY_S
            self.halt.wait(max(0.0, next_at - time.monotonic()))


def _replies(emu: EmulatorThread) -> dict[str, list[float]]:
    """Message id -> the times of the bot's replies to it (one per reply message the emulator kept)."""
    times: dict[str, list[float]] = {}
    for request in list(emu.requests):
        body = request.json if isinstance(request.json, dict) else {}
        ref = (body.get("message_reference") or {}).get("message_id")
        if request.method == "POST" and ref and request.status == 200:
            times.setdefault(ref, []).append(request.timestamp)
    outputs: dict[str, int] = {}
    for message in emu.bot_messages:
        ref = (message.get("message_reference") or {}).get("message_id")
        if ref:
            outputs[ref] = outputs.get(ref, 0) + 1
    # A nonce-deduplicated retry is a second request but one message: count messages, keep first times.
    return {ref: sorted(ts)[: max(1, outputs.get(ref, 1))] for ref, ts in times.items()}


def _function_side(trace_file: Path, ids: set[str]) -> list[float]:
    """ms from the end of ``cmd-ping send`` to the end of ``cmd-ping process``, for these pings."""
    out = []
    for spans in load_traces(trace_file).values():
        by_name = {s["name"]: s for s in spans}
        send, process = by_name.get("cmd-ping send"), by_name.get("cmd-ping process")
        if send and process and process["attributes"].get("discord.message.id") in ids:
            out.append((process["end_ns"] - send["end_ns"]) / 1e6)
    return out


def _empty_queues(ctx: Context) -> None:
    for spec in COMMANDS.values():
        with suppress(ResourceNotFoundError):
            queue_client(ctx.storage, spec.queue).delete_queue()


def _run_mode(ctx: Context, label: str, args: list[str], api_url: str, burst: int, before_s: float) -> ModeResult:
    logs = ctx.workdir / NAME / label.replace(" ", "-")
    logs.mkdir(parents=True, exist_ok=True)
    status = logs / "scale.json"
    _empty_queues(ctx)
    result = ModeResult()
    with EmulatorThread() as emu:
        env = {"AzureWebJobsStorage": ctx.azurite.connection_string, "DISCORD_TOKEN": emu.token,
               "DISCORD_API_BASE_URL": emu.api_url, "DISCORD_GATEWAY_URL": emu.gateway_url,
               "LOCAL_TRACE_FILE": str(logs / "traces.jsonl"), "CATFACT_API_URL": api_url}
        controller = start_module("scale_controller", "localdev.scale_controller", env, logs / "controller.log",
                                  [*args, "--status-file", str(status), "--log-dir", str(logs / "instances")])
        listener = None
        pinger = Pinger(emu, result)
        try:
            wait_started(controller, logs / "controller.log", READY_PREFIX, "scale controller")
            listener = start_module("listener", "gateway_listener", env, logs / "listener.log")
            wait_started(listener, logs / "listener.log", "listener ready", "listener")
            pinger.start()
            # Warm-up: until pings are answered (per-function: ping's instance scaled out from zero).
            wait_until(lambda: len(_replies(emu)) >= 4, 60, 0.1, "warm-up pings answered")
            pinger.phase = "before"
            time.sleep(before_s)
            pinger.phase = "during"
            result.burst_at = time.time()
            burst_ids = {pinger.send("!catfact", "during").id for _ in range(burst)}
            group = "catfact" if "--single-host" not in args else "host"
            deadline = time.monotonic() + 60 + burst * API_DELAY_S
            while time.monotonic() < deadline:
                counts = read_status(status) or {}
                result.instances.append((time.time() - result.burst_at, counts.get(group, 0)))
                if burst_ids <= set(_replies(emu)):
                    break
                time.sleep(0.25)
            pinger.phase = "after"
            time.sleep(1.0)
            pinger.halt.set()
            pinger.join()
            wait_until(lambda: {s.id for s in result.sent} <= set(_replies(emu)), 30, 0.1, "every message answered")
        except TimeoutError:
            pass  # what is missing is reported as lost
        finally:
            pinger.halt.set()
            time.sleep(1.0)  # late duplicates would arrive now
            result.replies = _replies(emu)
            during = {s.id for s in result.sent if s.command == "ping" and s.phase == "during"}
            result.function_side_ms = _function_side(logs / "traces.jsonl", during)
            if listener is not None:
                listener.stop()
            controller.stop(30)
    return result


def _plot(path: Path, results: dict[str, ModeResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    for label, result in results.items():
        xs = [t for t, _ in result.instances]
        ys = [n for _, n in result.instances]
        ax.step(xs, ys, where="post", label=f"{label} (drained in {result.drain_s:.1f} s)")
    ax.set_xlabel("seconds since the burst")
    ax.set_ylabel("instances running catfact")
    ax.set_title(f"catfact instances during a burst ({API_DELAY_S * 1000:.0f} ms API)")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run(ctx: Context) -> list[Row]:
    burst, before_s = ctx.n(200, 20), ctx.n(5, 2)
    with HttpStub(delay_s=API_DELAY_S, body=FACT) as api:
        results = {label: _run_mode(ctx, label, args, api.url, burst, before_s) for label, args in MODES.items()}
    plot = ctx.results_dir / "scaling.png"
    _plot(plot, results)
    split, single = results["per-function"], results["single host"]

    def row(metric: str, value: float, baseline: float, unit: str, **kw: Any) -> Row:
        return Row(NAME, metric, value, unit, baseline, value / baseline if baseline else None, **kw)

    def lat(r: ModeResult, phase: str, stat: Any) -> float:
        return float(stat(r.latencies("ping", phase)))

    extra = {label: {"pings_before": len(r.latencies("ping", "before")),
                     "pings_during": len(r.latencies("ping", "during")), "instances": r.instances}
             for label, r in results.items()}
    most = max((n for _, n in split.instances), default=0)
    note = f"value: per-function scaling, baseline: single host; {burst} x !catfact; plot {plot}"
    return [
        row(METRICS[0], lat(split, "before", median), lat(single, "before", median), "ms", note=note, extra=extra),
        row(METRICS[1], lat(split, "during", median), lat(single, "during", median), "ms",
            target="≤ 2x before (isolation)", met=lat(split, "during", median) <= 2 * lat(split, "before", median)),
        row(METRICS[2], lat(split, "during", p99), lat(single, "during", p99), "ms"),
        row(METRICS[3], median(split.function_side_ms), median(single.function_side_ms), "ms"),
        row(METRICS[4], p99(split.function_side_ms), p99(single.function_side_ms), "ms"),
        row(METRICS[5], split.drain_s, single.drain_s, "s", note=f"{burst} x {API_DELAY_S * 1000:.0f} ms"),
        row(METRICS[6], most, max((n for _, n in single.instances), default=0), "instances",
            target="> 1", met=most > 1),
        row(METRICS[7], split.lost, single.lost, "", target="0", met=split.lost == 0 and single.lost == 0),
        row(METRICS[8], split.twice, single.twice, "", target="0", met=split.twice == 0 and single.twice == 0),
    ]
