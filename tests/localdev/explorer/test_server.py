"""The explorer's HTTP API and entry point, against a real server on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from localdev.explorer import pick_port
from localdev.explorer.server import Explorer, serve, stop
from shared.settings import PROJECT_ROOT
from tests.localdev.explorer.spans import make_trace, write_spans


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    return tmp_path / "traces.jsonl"


@pytest.fixture
async def base(trace_file: Path, tmp_path: Path) -> AsyncIterator[str]:
    ex = Explorer.open(trace_file, tmp_path / "markers.jsonl")
    runner, task, port = await serve(ex, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop(runner, task)
        ex.span_file.close()


async def get(url: str, status: int = 200) -> dict:
    async with aiohttp.ClientSession() as http, http.get(url) as res:
        assert res.status == status, await res.text()
        return await res.json()


async def test_empty_file_says_so(base: str, trace_file: Path) -> None:
    out = await get(f"{base}/api/overview")
    assert out["total_traces"] == 0 and out["commands"] == [] and out["file"] == str(trace_file)
    assert out["file_exists"] is False


async def test_overview_traces_and_one_trace(base: str, trace_file: Path, tmp_path: Path) -> None:
    now = time.time_ns()
    slow = make_trace("catfact", now - 60 * 10**9, wait_ms=3000, coldstart=True, version="0.2.0")
    decision = {**make_trace("ping", now - 100 * 10**9)[0], "name": "scale.decision", "attributes": {
        "app.scale.group": "ping", "app.scale.reason": "queue has messages"}}  # not a command: listed only
    write_spans(trace_file, [*make_trace("ping", now - 120 * 10**9), *slow, decision])
    marker = {"time_unix_nano": now - 90 * 10**9, "type": "deploy", "version": "0.2.0", "message": "CD", "url": None}
    (tmp_path / "markers.jsonl").write_text(json.dumps(marker) + "\n")
    await asyncio.sleep(1.2)  # followed, not read once
    out = await get(f"{base}/api/overview?window=15m")
    assert [r["command"] for r in out["commands"]] == ["catfact", "ping"]
    assert sum(c["count"] for c in out["heatmap"]["cells"]) == 2
    assert set(out["p95"]["series"]) == {"catfact", "ping"}
    kinds = [(m["type"], m["version"]) for m in out["markers"]]
    assert kinds == [("deploy", "0.2.0"), ("version", "0.2.0")]  # ops.markers, then where spans changed
    only = await get(f"{base}/api/overview?window=15m&command=ping")
    assert sum(c["count"] for c in only["heatmap"]["cells"]) == 1 and len(only["commands"]) == 2

    assert (await get(f"{base}/api/traces?command=scale.decision"))["total"] == 1
    listed = await get(f"{base}/api/traces?coldstart=true")
    assert [t["command"] for t in listed["traces"]] == ["catfact"]
    tid = listed["traces"][0]["trace_id"]
    one = await get(f"{base}/api/trace/{tid[:12]}")
    assert one["trace_id"] == tid and one["spans"][0]["name"] == "discord.command"
    region = await get(f"{base}/api/bubbleup?window=15m&min_ms=1000")
    assert region["selected"] == 1 and region["baseline"] == 1


async def test_new_spans_show_up_live(base: str, trace_file: Path) -> None:
    write_spans(trace_file, make_trace("ping", time.time_ns()))
    first = await get(f"{base}/api/status")
    for _ in range(50):
        if (await get(f"{base}/api/status"))["traces"] == 1:
            break
        await asyncio.sleep(0.1)
    write_spans(trace_file, make_trace("roll", time.time_ns()))
    with trace_file.open("a") as f:
        f.write('{"torn": \n')
    for _ in range(50):
        status = await get(f"{base}/api/status")
        if status["traces"] == 2:
            break
        await asyncio.sleep(0.1)
    assert status["traces"] == 2 and status["skipped_lines"] == 1 and status["version"] > first["version"]
    assert {t["command"] for t in (await get(f"{base}/api/traces"))["traces"]} == {"ping", "roll"}


@pytest.mark.parametrize("query", ["overview?window=2m", "traces?min_ms=abc", "traces?error=maybe",
                                   "traces?min_ms=nan", "bubbleup?window=x"])
async def test_bad_parameters_are_400_with_a_reason(base: str, query: str) -> None:
    out = await get(f"{base}/api/{query}", status=400)
    assert out["error"]


async def test_unknown_or_malformed_trace_ids(base: str) -> None:
    assert "no trace" in (await get(f"{base}/api/trace/abcdef", status=404))["error"]
    assert "hex" in (await get(f"{base}/api/trace/not-hex", status=400))["error"]


async def test_pages_and_chart_code_are_served_locally(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/traces", "/trace/0123abcd"):
            async with http.get(base + path) as res:
                assert res.status == 200 and '<script type="module" src="/static/app.js">' in await res.text()
        async with http.get(f"{base}/vendor/uPlot.esm.js") as res:
            assert res.status == 200 and "export { uPlot as default }" in await res.text()
        async with http.get(f"{base}/static/charts.js") as res:
            assert res.status == 200 and 'from "/vendor/uPlot.esm.js"' in await res.text()
        async with http.get(f"{base}/vendor/other.js") as res:
            assert res.status == 404


def test_pick_port_takes_the_next_free_one() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert pick_port("127.0.0.1", start=taken) > taken


def test_entry_point_prints_its_url_and_stops_on_sigterm(trace_file: Path, tmp_path: Path) -> None:
    write_spans(trace_file, make_trace("ping", time.time_ns()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "localdev.explorer", "--port", "0", "--trace-file", str(trace_file),
         "--markers-file", str(tmp_path / "m.jsonl")],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Trace explorer http://127.0.0.1:") and str(trace_file) in line
        url = line.split()[2]
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))), timeout=5):
            pass
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_entry_point_refuses_a_busy_port(trace_file: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "localdev.explorer", "--port", str(port), "--trace-file",
                               str(trace_file)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
