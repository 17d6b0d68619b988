"""``python -m localdev.explorer [--port P] [--trace-file F]``: the local trace explorer.

Serves http://127.0.0.1:8800/ (or the next free port; it prints the URL) over the local span
file (``LOCAL_TRACE_FILE``, default ``.localdev/traces.jsonl``), following it as spans arrive,
and the deployment markers ``python -m ops.markers --local`` writes (``LOCAL_MARKERS_FILE``,
default ``.localdev/markers.jsonl``). Runs until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from localdev.explorer import DEFAULT_PORT, pick_port
from localdev.explorer.server import UPLOT_DIR, Explorer, serve, stop
from localdev.traces import DEFAULT_TRACE_FILE
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, load_settings

DEFAULT_MARKERS_FILE = PROJECT_ROOT / ".localdev" / "markers.jsonl"


async def run(trace_file: Path, markers_file: Path, host: str, port: int) -> int:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the URL is printed: a caller may stop us right after
        loop.add_signal_handler(sig, done.set)
    ex = Explorer.open(trace_file, markers_file)
    runner, task, bound = await serve(ex, host, port)
    print(f"Trace explorer http://{host}:{bound}/  (following {trace_file})", flush=True)
    if not (UPLOT_DIR / "uPlot.esm.js").exists():
        print("explorer: uPlot is missing from node_modules, charts will not draw: run scripts/setup",
              file=sys.stderr, flush=True)
    try:
        await done.wait()
    finally:
        await stop(runner, task)
        ex.span_file.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.explorer", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT} or the next free one; 0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--trace-file", type=Path,
                        help="span file (default LOCAL_TRACE_FILE or .localdev/traces.jsonl)")
    parser.add_argument("--markers-file", type=Path,
                        help="deployment markers (default LOCAL_MARKERS_FILE or .localdev/markers.jsonl)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        trace_file = args.trace_file or load_settings(require_storage=False).local_trace_file or DEFAULT_TRACE_FILE
    except SettingsError as exc:
        print(f"explorer: {exc}", file=sys.stderr)
        return 2
    # Written by ops.markers (its own setting); read here at the entry point only.
    markers_file = args.markers_file or Path(os.environ.get("LOCAL_MARKERS_FILE") or DEFAULT_MARKERS_FILE)
    try:
        port = args.port if args.port is not None else pick_port(args.host)
        return asyncio.run(run(trace_file, markers_file, args.host, port))
    except OSError as exc:
        print(f"explorer: cannot listen on {args.host}:{args.port or DEFAULT_PORT}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
