"""The explorer's web server: a JSON API over :class:`TraceStore` plus the static pages.

Routes are data (:data:`PAGES`, :data:`API`). The pages are plain ES modules; the chart
code is uPlot from ``node_modules`` (package-lock.json), so nothing is fetched from the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from localdev.explorer import aggregate as agg
from localdev.explorer.store import MarkerFile, SpanFile, TraceStore
from shared.settings import PROJECT_ROOT

_log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
UPLOT_DIR = PROJECT_ROOT / "node_modules" / "uplot" / "dist"
VENDOR = {"uPlot.esm.js": UPLOT_DIR / "uPlot.esm.js", "uPlot.min.css": UPLOT_DIR / "uPlot.min.css"}
HEATMAP_COLUMNS = 90
P95_COLUMNS = 30
MAX_LIST = 500
POLL_S = 0.5


class BadRequest(ValueError):
    pass


@dataclass
class Explorer:
    """The followed files and what has been read from them."""

    span_file: SpanFile
    marker_file: MarkerFile
    store: TraceStore

    @classmethod
    def open(cls, trace_file: Path, markers_file: Path | None) -> Explorer:
        return cls(SpanFile(trace_file), MarkerFile(markers_file), TraceStore())

    def poll(self) -> None:
        self.store.apply(self.span_file.poll())
        if self.marker_file.poll():
            self.store.version += 1

    async def follow(self) -> None:
        while True:
            try:
                batch = await asyncio.to_thread(self.span_file.poll)
                self.store.apply(batch)
                if await asyncio.to_thread(self.marker_file.poll):
                    self.store.version += 1
            except OSError as exc:  # unreadable for now (permissions, a disk hiccup): try again
                _log.warning("explorer: %s", exc)
            await asyncio.sleep(POLL_S)


def _opt(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    return value or None


def _number(query: Mapping[str, str], name: str) -> float | None:
    raw = _opt(query, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {raw[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRequest(f"{name} must be a finite number")
    return value


def _flag(query: Mapping[str, str], name: str) -> bool | None:
    raw = _opt(query, name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false, got {raw[:40]!r}")
    return raw.lower() == "true"


def _window(query: Mapping[str, str]) -> str:
    window = query.get("window", "all")
    if window not in agg.WINDOWS_S:
        raise BadRequest(f"window must be one of {', '.join(agg.WINDOWS_S)}, got {window[:40]!r}")
    return window


def _ns(ms: float | None) -> int | None:
    return None if ms is None else int(ms * 1e6)


def _filter(query: Mapping[str, str]) -> agg.TraceFilter:
    return agg.TraceFilter(
        command=_opt(query, "command"), user=_opt(query, "user"), guild=_opt(query, "guild"),
        error=_flag(query, "error"), coldstart=_flag(query, "coldstart"),
        min_ms=_number(query, "min_ms"), max_ms=_number(query, "max_ms"),
        t0_ns=_ns(_number(query, "from_ms")), t1_ns=_ns(_number(query, "to_ms")),
    )


def status(ex: Explorer, query: Mapping[str, str]) -> dict[str, Any]:
    store = ex.store
    return {
        "version": store.version, "file": str(ex.span_file.path), "file_exists": ex.span_file.path.exists(),
        "spans": store.span_count, "traces": len(store.traces), "skipped_lines": store.skipped_lines,
        "markers_file": str(ex.marker_file.path) if ex.marker_file.path else None,
        "markers_skipped_lines": ex.marker_file.skipped_lines,
    }


def overview(ex: Explorer, query: Mapping[str, str]) -> dict[str, Any]:
    window, command = _window(query), _opt(query, "command")
    every = [s for s in ex.store.summaries() if s.is_command]
    t0, t1 = agg.window_bounds(every, window, time.time_ns())
    in_window = [s for s in every if t0 <= s.start_ns < t1]
    shown = [s for s in in_window if command is None or s.command == command]
    markers = [m for m in agg.version_markers(every) + ex.marker_file.markers if t0 <= m["time_ns"] < t1]
    return {
        **status(ex, query), "window": window, "command": command, "t0_ms": t0 / 1e6, "t1_ms": t1 / 1e6,
        "total_traces": len(every), "commands": agg.command_stats(in_window),
        "heatmap": agg.heatmap(shown, t0, t1, HEATMAP_COLUMNS),
        "p95": agg.p95_series(shown, t0, t1, P95_COLUMNS),
        "markers": sorted(({**m, "time_ms": m["time_ns"] / 1e6} for m in markers), key=lambda m: m["time_ms"]),
    }


def traces(ex: Explorer, query: Mapping[str, str]) -> dict[str, Any]:
    keep = _filter(query)
    rows = sorted((s for s in ex.store.summaries() if keep(s)), key=lambda s: -s.start_ns)
    return {"total": len(rows), "traces": [s.to_json() for s in rows[:MAX_LIST]], "limit": MAX_LIST,
            "commands": sorted({s.command for s in ex.store.summaries()})}


def bubbleup(ex: Explorer, query: Mapping[str, str]) -> dict[str, Any]:
    """Selection = the filter (a heatmap region: from/to and min/max ms); baseline = the rest of
    the window's commands, limited to the same command when the heatmap shows one."""
    window, command = _window(query), _opt(query, "command")
    every = [s for s in ex.store.summaries() if s.is_command]
    t0, t1 = agg.window_bounds(every, window, time.time_ns())
    scope = [s for s in every if t0 <= s.start_ns < t1 and s.duration_ms is not None
             and (command is None or s.command == command)]
    return agg.bubbleup(scope, _filter(query))


def trace(ex: Explorer, query: Mapping[str, str], trace_id: str) -> dict[str, Any] | None:
    if not trace_id or len(trace_id) > 32 or any(c not in "0123456789abcdefABCDEF" for c in trace_id):
        raise BadRequest("a trace id is up to 32 hex digits")
    found = ex.store.find(trace_id)
    return agg.waterfall(*found, logs=ex.store.logs.get(found[0], [])) if found else None


API: dict[str, Callable[[Explorer, Mapping[str, str]], dict[str, Any]]] = {
    "/api/status": status, "/api/overview": overview, "/api/traces": traces, "/api/bubbleup": bubbleup,
}
PAGES = ("/", "/traces", "/trace/{trace_id}")


def _json_handler(ex: Explorer, fn: Callable[[Explorer, Mapping[str, str]], dict[str, Any]]
                  ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            return web.json_response(fn(ex, request.query))
        except BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=400)

    return handle


def build_app(ex: Explorer) -> web.Application:
    app = web.Application()

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def vendor(request: web.Request) -> web.StreamResponse:
        path = VENDOR.get(request.match_info["name"])
        if path is None or not path.exists():
            raise web.HTTPNotFound(text="uPlot is missing from node_modules: run scripts/setup")
        return web.FileResponse(path)

    async def one_trace(request: web.Request) -> web.Response:
        try:
            found = trace(ex, request.query, request.match_info["trace_id"])
        except BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if found is None:
            return web.json_response({"error": "no trace with that id in the span file (yet)"}, status=404)
        return web.json_response(found)

    for path in PAGES:
        app.router.add_get(path, page)
    for path, fn in API.items():
        app.router.add_get(path, _json_handler(ex, fn))
    app.router.add_get("/api/trace/{trace_id}", one_trace)
    app.router.add_get("/vendor/{name}", vendor)
    app.router.add_static("/static/", STATIC_DIR)
    return app


async def serve(ex: Explorer, host: str, port: int) -> tuple[web.AppRunner, asyncio.Task[None], int]:
    """Start serving; returns the runner, the follow task and the bound port (for ``port=0``)."""
    ex.poll()  # the file as it is now, before the first page asks
    runner = web.AppRunner(build_app(ex), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = int(runner.addresses[0][1])
    return runner, asyncio.create_task(ex.follow()), bound


async def stop(runner: web.AppRunner, task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await runner.cleanup()
