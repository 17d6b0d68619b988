"""Gateway-less ingress: from Discord's POST to the ``{"type": 5}`` deferral, against the 3 s deadline.

Discord gives an Interactions Endpoint 3 seconds to answer, cold start included. Measured
through the local Functions host (``python -m localdev.functions_host`` with function_app.py,
OTLP export on to a local receiver, storage = Azurite), with POSTs signed by the Discord
emulator's application key for interactions the emulator knows (so the command's later edit
of @original is real):

- cold: from spawning the host process to the first type-5 answer (the client retries the
  connection until the port opens). Baseline: the same for bench/minimal_http_app.py, an app
  that answers type 5 without verifying, enqueueing or tracing. On Azure the platform's own
  instance allocation comes on top: see docs/performance.md;
- first request of a started instance (endpoint, queue client and first storage connection built);
- warm: POST -> type 5 for /ping, median and p99. Baseline: PING -> PONG on the same
  instance (signature check only), so the ratio is the cost of the trace + enqueue.
"""

from __future__ import annotations

import json
import time

import requests

from bench.common import Context, HttpStub, Row, median, p99, ratio, start_module, summary
from localdev.azurite import free_port
from localdev.discord_emulator import EmulatorThread, sign_request

NAME = "interactions"
METRICS = ("cold: host spawn -> type 5", "first request of an instance: POST -> type 5",
           "warm: POST -> type 5 (p99)")
DEADLINE_MS = 3000.0


def _signed_post(url: str, emu: EmulatorThread, doc: dict, timeout: float = 5.0) -> requests.Response:
    body = json.dumps(doc).encode()
    headers = {"Content-Type": "application/json", **sign_request(emu.emulator.http_delivery.key, body)}
    return requests.post(url, data=body, headers=headers, timeout=timeout)


def _command(emu: EmulatorThread) -> dict:
    return emu.send_interaction("ping", {})  # recorded by the emulator (its token is valid for the edit)


def _ping(emu: EmulatorThread) -> dict:
    return {"type": 1, "id": "1", "application_id": emu.application_id, "token": "x", "version": 1}


def _cold(ctx: Context, emu: EmulatorThread, app: str, env: dict[str, str], n: int) -> tuple[float, float]:
    """(ms from spawn to the first type-5 answer, ms of that first request alone)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/interactions"
    log = ctx.workdir / NAME / f"{app.split(':')[0].replace('.', '_')}-{n}.log"
    doc = _command(emu)
    began = time.perf_counter()
    host = start_module(f"host-{n}", "localdev.functions_host", {**env, "FUNCTIONS_HTTP_PORT": str(port)}, log,
                        ["--app", app])
    try:
        while True:
            if time.perf_counter() - began > 60:
                raise TimeoutError(f"no answer from {app} within 60 s (see {log})")
            sent = time.perf_counter()
            try:
                response = _signed_post(url, emu, doc)
            except requests.ConnectionError:
                time.sleep(0.005)
                continue
            done = time.perf_counter()
            if response.json() != {"type": 5}:
                raise RuntimeError(f"{app} answered {response.status_code} {response.text[:200]}")
            return (done - began) * 1000, (done - sent) * 1000
    finally:
        host.stop()


def _warm(ctx: Context, emu: EmulatorThread, env: dict[str, str], count: int) -> tuple[list[float], list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/interactions"
    host = start_module("host-warm", "localdev.functions_host", {**env, "FUNCTIONS_HTTP_PORT": str(port)},
                        ctx.workdir / NAME / "warm.log", ["--app", "function_app:app"])
    commands: list[float] = []
    pings: list[float] = []
    try:
        _cold_wait(url, emu)
        for _ in range(count):  # interleaved, spaced: answers, not throughput
            for samples, doc, want in ((commands, _command(emu), 5), (pings, _ping(emu), 1)):
                sent = time.perf_counter()
                response = _signed_post(url, emu, doc)
                samples.append((time.perf_counter() - sent) * 1000)
                if response.json().get("type") != want:
                    raise RuntimeError(f"answered {response.status_code} {response.text[:200]}")
            time.sleep(0.05)
    finally:
        host.stop()
    return commands, pings


def _cold_wait(url: str, emu: EmulatorThread) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _signed_post(url, emu, _ping(emu))
            return
        except requests.ConnectionError:
            time.sleep(0.02)
    raise TimeoutError("the host's HTTP port did not open within 60 s")


def run(ctx: Context) -> list[Row]:
    (ctx.workdir / NAME).mkdir(parents=True, exist_ok=True)
    rounds = ctx.n(7, 1)
    cold: dict[str, list[float]] = {"app": [], "minimal": []}
    first: list[float] = []
    with EmulatorThread() as emu, HttpStub() as otlp:
        env = {"AzureWebJobsStorage": ctx.azurite.connection_string, "DISCORD_TOKEN": emu.token,
               "DISCORD_API_BASE_URL": emu.api_url, "DISCORD_PUBLIC_KEY": emu.public_key,
               "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url}
        for r in range(rounds + (0 if ctx.quick else 1)):  # round 0 warms the page cache and .pyc files
            app_ms, first_ms = _cold(ctx, emu, "function_app:app", env, r)
            minimal_ms, _ = _cold(ctx, emu, "bench.minimal_http_app:app", env, r)
            if ctx.quick or r > 0:
                cold["app"].append(app_ms)
                first.append(first_ms)
                cold["minimal"].append(minimal_ms)
        commands, pings = _warm(ctx, emu, env, ctx.n(40, 5))
    cold_ms, base_ms = median(cold["app"]), median(cold["minimal"])
    return [
        Row(NAME, METRICS[0], cold_ms, "ms", base_ms, ratio(cold_ms, base_ms), "≤ 3000 ms (Discord's deadline)",
            max(cold["app"]) <= DEADLINE_MS,
            note=f"median of {len(cold['app'])}; max {max(cold['app']):.0f} ms; baseline = minimal HTTP app",
            extra={"app": summary(cold["app"]), "minimal": summary(cold["minimal"]), "samples": cold}),
        Row(NAME, METRICS[1], median(first), "ms", median(commands), ratio(median(first), median(commands)),
            note="the first POST once the port is open (baseline: warm median)",
            extra={"samples": first}),
        Row(NAME, METRICS[2], p99(commands), "ms", p99(pings), ratio(p99(commands), p99(pings)),
            "≤ 3000 ms (Discord's deadline)", p99(commands) <= DEADLINE_MS,
            note=f"median {median(commands):.1f} ms vs PING median {median(pings):.1f} ms, {len(commands)} each",
            extra={"commands": summary(commands), "pings": summary(pings)}),
    ]
