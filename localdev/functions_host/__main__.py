"""``python -m localdev.functions_host``: run function_app.py's queue and HTTP triggers locally.

Run from anywhere; the project root (where function_app.py and host.json live) is found
from this file's location. Settings come from shared.settings.load_settings() (the
environment, then local.settings.json). Runs until SIGTERM/SIGINT, then drains and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

# Light imports only up here: the worker is started before the host's heavy imports (in main()).
from localdev.functions_host.hostconfig import LEASE, load_host_config
from localdev.functions_host.spawn import AppLocation, spawn_worker
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, load_settings

if TYPE_CHECKING:
    from localdev.functions_host.host import FunctionsHost

_log = logging.getLogger("localdev.functions_host")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds >= 1, got {raw!r}")
    return value


def _names(raw: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one or more function names, comma-separated")
    return names


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localdev.functions_host", description=__doc__)
    parser.add_argument("--app", default="function_app:app",
                        help="module[:attribute] of the app the worker indexes (default function_app:app)")
    parser.add_argument("--host-json", type=Path, default=PROJECT_ROOT / "host.json")
    parser.add_argument("--drain-timeout", type=float, default=10.0, help="seconds to wait for in-flight work")
    # Not in host.json: the real host's lease is fixed. Tests shorten it to see a crashed
    # host's messages reappear in seconds instead of a minute.
    parser.add_argument("--lease-seconds", type=_positive_int, default=int(LEASE.total_seconds()),
                        help="how long a received message stays invisible between renewals (default 60)")
    parser.add_argument("--functions", type=_names, default=None, metavar="NAME[,NAME...]",
                        help="run only these functions, as one instance of a per-function scaling group "
                             "(default: all of them)")
    return parser.parse_args(argv)


async def _serve(host: FunctionsHost) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await host.run(stop)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every HTTP request at INFO
    try:
        settings = load_settings()
        host_config = load_host_config(args.host_json)
        app = AppLocation.of(args.app)
    except SettingsError as exc:
        _log.error("cannot start: %s", exc)
        return 2
    # The worker's start-up (Python, azure_functions_runtime, gRPC) overlaps the host's imports below.
    worker = spawn_worker(app, os.environ)
    from localdev.functions_host.host import FunctionsHost

    try:
        host = FunctionsHost(
            app, settings, host_config, prespawned=worker,
            drain_timeout=args.drain_timeout, lease=timedelta(seconds=args.lease_seconds), only=args.functions,
        )  # fmt: skip
    except SettingsError as exc:
        _log.error("cannot start: %s", exc)
        return 2
    try:
        asyncio.run(_serve(host))
    except SettingsError as exc:  # found while starting, e.g. FUNCTIONS_HTTP_PORT already in use
        _log.error("cannot start: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
