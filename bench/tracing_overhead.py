"""Tracing overhead: the cost of ``function_runtime.invocation.invoke`` with tracing on vs off, and of its flush.

Same handler (ping), same envelope, in-process, with a Runtime whose Discord REST edge
only records the reply. Each mode runs in its own subprocess (a process has one global
TracerProvider):
- off: no setup_telemetry, so the API's no-op tracer (what an unconfigured process gets);
- on: the processors build_provider installs (baggage copier, the functions sampler) and a
  BatchSpanProcessor with the same settings, exporting to a no-op exporter;
- flush: setup_telemetry with OTLP to a local receiver, as deployed.
invoke() ends with telemetry.flush(); in "off" and "on" that call is replaced by a no-op so
the per-invocation number excludes it, and in "flush" the real flush is timed on its own
right after each invocation (the spans it exports are that invocation's).

``python -m bench.tracing_overhead MODE N [OTLP_URL]`` is the worker; it prints JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench.common import Context, HttpStub, Row, median, p99, ratio, summary

if TYPE_CHECKING:
    from shared.settings import Secret

NAME = "tracing_overhead"
METRICS = ("invoke() per invocation, tracing on", "flush per invocation (OTLP, local receiver)")
TARGET_MS = 1.0


class _RecordingRest:
    """The Discord REST edge: records replies instead of sending them."""

    def __init__(self) -> None:
        self.replies: list[str] = []

    def create_message(
        self, channel_id: str, content: str, *, nonce: str, reply_to: str | None = None,
        mention_users: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        self.replies.append(content)
        return {}

    def edit_original_response(self, application_id: str, interaction_token: Secret, content: str) -> dict[str, Any]:
        self.replies.append(content)
        return {}


class _StaticFlags:
    def evaluate(self, names: list[str], envelope: object) -> dict[str, bool]:
        return dict.fromkeys(names, False)


class _NoopExporter:
    def export(self, spans: Sequence[object]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _install_noop_pipeline(settings: Any) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from shared import telemetry_processors
    from shared.telemetry_provider import TRACE_FIELDS, build_resource

    provider = TracerProvider(resource=build_resource(settings, "functions"),
                              sampler=telemetry_processors.make_sampler(1.0, "functions"))
    provider.add_span_processor(telemetry_processors.TraceFieldsProcessor(TRACE_FIELDS))
    provider.add_span_processor(BatchSpanProcessor(_NoopExporter(), max_queue_size=4096,  # type: ignore[arg-type]
                                                   schedule_delay_millis=500, max_export_batch_size=512))
    trace.set_tracer_provider(provider)


def worker(mode: str, count: int, otlp_url: str | None) -> dict[str, list[float]]:
    """Run ``count`` invocations (after a warm-up); milliseconds per invoke() and per flush."""
    from azure.functions.queue import QueueMessage

    from command_functions import ping
    from function_runtime.runtime import Runtime
    from function_runtime.startup import StartupMarks
    from shared import telemetry
    from shared.envelope import Envelope, Ids, encode
    from shared.registry import COMMANDS
    from shared.settings import AZURITE_CONNECTION_STRING, Secret, Settings, StorageSettings

    settings = Settings(storage=StorageSettings(connection_string=Secret(AZURITE_CONNECTION_STRING)),
                        otlp_endpoint=otlp_url)
    real_flush = telemetry.flush
    if mode == "on":
        _install_noop_pipeline(settings)
    elif mode == "flush":
        telemetry.setup_telemetry(settings, "functions")
    telemetry.flush = lambda timeout_millis=2000: True  # timed separately

    import requests

    from function_runtime import invocation

    rest = _RecordingRest()
    rt = Runtime(settings=settings, rest=rest, http=requests.Session(), flags=_StaticFlags(),
                 poison=lambda queue, doc: None, marks=StartupMarks(process_start_ns=time.time_ns()))
    env = Envelope(kind="message", command="ping", args="", ids=Ids("1", "2", "3", "4"), author_name="you",
                   received_at=datetime.now(UTC),
                   trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                          "baggage": "app.command=ping,discord.guild.id=4,discord.channel.id=2,discord.author.id=3"})
    body = encode(env).encode()
    invoke_ms: list[float] = []
    flush_ms: list[float] = []
    warmup = max(count // 10, 5)
    for i in range(warmup + count):
        msg = QueueMessage(id=str(i), body=body, dequeue_count=1, insertion_time=datetime.now(UTC))
        began = time.perf_counter_ns()
        invocation.invoke(msg, COMMANDS["ping"], ping.handle, rt)
        took = time.perf_counter_ns() - began
        flushed = 0
        if mode == "flush":
            began = time.perf_counter_ns()
            real_flush(invocation.FLUSH_TIMEOUT_MS)
            flushed = time.perf_counter_ns() - began
        if i >= warmup:
            invoke_ms.append(took / 1e6)
            flush_ms.append(flushed / 1e6)
    assert rest.replies[-1] == "pong"
    if mode == "flush":
        telemetry.shutdown()
    return {"invoke_ms": invoke_ms, "flush_ms": flush_ms}


def _spawn(mode: str, count: int, otlp_url: str) -> dict[str, list[float]]:
    proc = subprocess.run([sys.executable, "-m", "bench.tracing_overhead", mode, str(count), otlp_url],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise RuntimeError(f"tracing worker {mode} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, list[float]] = json.loads(proc.stdout.splitlines()[-1])
    return result


def run(ctx: Context) -> list[Row]:
    count = ctx.n(5000, 200)
    with HttpStub() as receiver:
        off = _spawn("off", count, receiver.url)
        on = _spawn("on", count, receiver.url)
        flush = _spawn("flush", ctx.n(1000, 50), receiver.url)
    cost = median(on["invoke_ms"]) - median(off["invoke_ms"])
    return [
        Row(NAME, METRICS[0], median(on["invoke_ms"]), "ms", median(off["invoke_ms"]),
            ratio(median(on["invoke_ms"]), median(off["invoke_ms"])),
            f"on - off ≤ {TARGET_MS:g} ms", cost <= TARGET_MS,
            note=f"on - off = {cost:.3f} ms (p50); p99 on {p99(on['invoke_ms']):.3f} / off "
                 f"{p99(off['invoke_ms']):.3f} ms; {count} invocations each, flush excluded",
            extra={"on": summary(on["invoke_ms"]), "off": summary(off["invoke_ms"]), "on_minus_off_p50": cost,
                   "on_minus_off_p99": p99(on["invoke_ms"]) - p99(off["invoke_ms"])}),
        Row(NAME, METRICS[1], median(flush["flush_ms"]), "ms",
            note=f"p99 {p99(flush['flush_ms']):.2f} ms; invoke() without flush p50 "
                 f"{median(flush['invoke_ms']):.3f} ms with the OTLP pipeline",
            extra={"flush": summary(flush["flush_ms"]), "invoke_otlp": summary(flush["invoke_ms"])}),
    ]


if __name__ == "__main__":  # the worker: its last stdout line is the JSON result
    out = worker(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    print(json.dumps(out))
