"""Throughput under concurrency: commands/s one functions host completes against a slow API.

bench/slow_app.py's function calls a local stub that answers after 200 ms. The host runs
it with host.json's queue settings (batchSize, newBatchThreshold), then strictly
sequentially (batchSize 1, newBatchThreshold 0). The queue is filled before the host
starts; the rate is taken between the first and the last completion, so the host's
start-up and the first poll are not counted.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import Context, HttpStub, Row, start_module, wait_until
from bench.slow_app import QUEUE
from shared.queues import queue_client
from shared.settings import PROJECT_ROOT, StorageSettings

NAME = "throughput"
METRICS = ("commands/s, slow API (200 ms)",)
API_DELAY_S = 0.2


def _host_json(path: Path, sequential: bool) -> Path:
    doc = json.loads((PROJECT_ROOT / "host.json").read_text(encoding="utf-8"))
    if sequential:
        doc["extensions"]["queues"].update(batchSize=1, newBatchThreshold=0)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def _fill(storage: StorageSettings, count: int) -> None:
    client = queue_client(storage, QUEUE)
    try:
        client.create_queue()
    except Exception:  # exists
        client.clear_messages()
    for i in range(count):
        client.send_message(str(i))


def _rate(ctx: Context, api_url: str, sequential: bool, count: int) -> tuple[float, dict[str, int]]:
    logs = ctx.workdir / NAME
    label = "sequential" if sequential else "batch"
    host_json = _host_json(logs / f"host-{label}.json", sequential)
    mark = logs / f"done-{label}.txt"
    _fill(ctx.storage, count)
    env = {"AzureWebJobsStorage": ctx.azurite.connection_string, "SLOW_API_URL": api_url,
           "BENCH_MARK_FILE": str(mark)}
    host = start_module(f"host-{label}", "localdev.functions_host", env, logs / f"host-{label}.log",
                        ["--app", "bench.slow_app:app", "--host-json", str(host_json)])
    try:
        done = lambda: mark.exists() and len(mark.read_text().split()) >= count  # noqa: E731
        wait_until(done, 30 + count * API_DELAY_S * 2, 0.05, f"{count} slow invocations ({label})")
    finally:
        host.stop()
    stamps = sorted(int(x) for x in mark.read_text().split())
    queues = json.loads(host_json.read_text())["extensions"]["queues"]
    return (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9), {
        "batchSize": queues["batchSize"], "newBatchThreshold": queues["newBatchThreshold"]}


def run(ctx: Context) -> list[Row]:
    (ctx.workdir / NAME).mkdir(parents=True, exist_ok=True)
    with HttpStub(delay_s=API_DELAY_S) as api:
        batch, batch_cfg = _rate(ctx, api.url, False, ctx.n(300, 30))
        seq, seq_cfg = _rate(ctx, api.url, True, ctx.n(40, 6))
    ideal = batch_cfg["batchSize"] + batch_cfg["newBatchThreshold"]
    return [Row(
        NAME, METRICS[0], batch, "cmd/s", seq, batch / seq, met=None,
        note=f"host.json {batch_cfg} vs {seq_cfg}; at most {ideal} in flight would allow "
             f"{ideal / API_DELAY_S:.0f}/s; sync functions share the host's thread pool",
        extra={"batch": batch_cfg, "sequential": seq_cfg, "api_delay_s": API_DELAY_S},
    )]
