"""``python -m localdev.scale_controller``: run the function app as Flex Consumption scales it.

One group of instances per function (HTTP-triggered functions share one group), each
instance a ``python -m localdev.functions_host --functions NAME`` process. Queue groups
scale on target: ceil(queue length / host.json batchSize) instances, at most 4 more per
decision, up to ``--max-instances``; idle instances are removed once the queue is empty and
the last one after ``--idle-timeout`` seconds without messages (scale to zero; the next
message pays a real cold start). Settings as for the functions host (``AzureWebJobsStorage``,
local.settings.json). Runs until SIGTERM/SIGINT, then stops every instance gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from localdev.functions_host.hostconfig import load_host_config
from localdev.functions_host.spawn import AppLocation
from localdev.functions_host.worker_channel import IndexedFunction, WorkerChannel, WorkerError
from localdev.scale_controller.controller import ScaleController
from localdev.scale_controller.groups import ScaleGroup, index_functions, parse_always_ready, scale_groups, single_group
from localdev.scale_controller.instances import InstanceSpec
from localdev.scale_controller.policy import DEFAULT_IDLE_TIMEOUT_S, Policy
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, load_settings
from shared.telemetry import setup_telemetry

_log = logging.getLogger("localdev.scale_controller")

DEFAULT_INTERVAL_S = 1.0
DEFAULT_MAX_INSTANCES = 4


def _number(kind: type[int] | type[float], *, zero_ok: bool = False) -> Callable[[str], int | float]:
    def parse(raw: str) -> int | float:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
        if value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"expected a number {'>= 0' if zero_ok else '> 0'}, got {raw!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localdev.scale_controller", description=__doc__)
    parser.add_argument("--app", default="function_app:app",
                        help="module[:attribute] of the app (default function_app:app)")
    parser.add_argument("--host-json", type=Path, default=PROJECT_ROOT / "host.json")
    parser.add_argument("--max-instances", type=_number(int), default=DEFAULT_MAX_INSTANCES,
                        help=f"instances per function at most (default {DEFAULT_MAX_INSTANCES})")
    parser.add_argument("--idle-timeout", type=_number(float, zero_ok=True), default=DEFAULT_IDLE_TIMEOUT_S,
                        help=f"seconds without messages before a function scales to zero "
                             f"(default {DEFAULT_IDLE_TIMEOUT_S:.0f}, as Flex Consumption)")
    parser.add_argument("--always-ready", default="", metavar="NAME=N[,NAME=N...]",
                        help="instances kept per group even when idle: ping=1,help=1 (or http=1; *=1 every group)")
    parser.add_argument("--interval", type=_number(float), default=DEFAULT_INTERVAL_S,
                        help=f"seconds between scaling decisions (default {DEFAULT_INTERVAL_S:g})")
    parser.add_argument("--single-host", action="store_true",
                        help="one instance running every function (scale 0..1), as before per-function scaling")
    parser.add_argument("--log-dir", type=Path, default=PROJECT_ROOT / ".localdev" / "instances",
                        help="one log file per instance (default .localdev/instances)")
    parser.add_argument("--status-file", type=Path, default=None, help="JSON with the instances per group")
    parser.add_argument("--drain-timeout", type=_number(float, zero_ok=True), default=10.0,
                        help="seconds each instance waits for in-flight work when stopped")
    parser.add_argument("--lease-seconds", type=_number(int), default=None,
                        help="passed to each instance (tests shorten it to see a killed instance's messages return)")
    return parser


def _policy(group: ScaleGroup, batch_size: int, max_instances: int, idle_timeout: float,
            ready: int | None) -> Policy:
    if not group.queues:
        # HTTP (or any load the controller cannot measure): at most one instance, on the one local
        # HTTP port (FUNCTIONS_HTTP_PORT), and none unless asked (``http=1``), as Flex Consumption's
        # default of no always-ready instances; Flex would also scale it on concurrent requests.
        return Policy(target_per_instance=batch_size, max_instances=1, idle_timeout_s=idle_timeout,
                      always_ready=min(ready or 0, 1))
    return Policy(target_per_instance=batch_size, max_instances=max_instances, idle_timeout_s=idle_timeout,
                  always_ready=ready or 0)


async def _index(app: AppLocation) -> list[IndexedFunction]:
    """The app's functions as a worker indexes them (the controller never imports the app)."""
    channel = WorkerChannel(app, dict(os.environ))
    try:
        return await channel.start()
    except WorkerError as exc:
        raise SettingsError(f"the worker could not index {app.script_file}: {exc}") from None
    finally:
        await channel.stop(grace=2.0)


def _build(args: argparse.Namespace) -> tuple[ScaleController, str]:
    """The controller, and what it runs (for its ready line)."""
    settings = load_settings()
    setup_telemetry(settings, "scale_controller")
    host_config = load_host_config(args.host_json)
    functions = index_functions(asyncio.run(_index(AppLocation.of(args.app))))
    groups = single_group(functions) if args.single_host else scale_groups(functions)
    always_ready = parse_always_ready(args.always_ready, groups)
    max_instances = 1 if args.single_host else args.max_instances
    policies = {g.name: _policy(g, host_config.queues.batch_size, max_instances, args.idle_timeout,
                                always_ready.get(g.name)) for g in groups}
    host_args = ["--app", args.app, "--host-json", str(args.host_json), "--drain-timeout", str(args.drain_timeout)]
    if args.lease_seconds:
        host_args += ["--lease-seconds", str(args.lease_seconds)]
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    spec = InstanceSpec(host_args, dict(os.environ), args.log_dir, stop_timeout_s=args.drain_timeout + 5,
                        all_functions=args.single_host)
    controller = ScaleController(groups, policies, spec, settings.storage, interval_s=args.interval,
                                 status_file=args.status_file)
    note = (
        ", ".join(f"{g.label} ({','.join(g.functions)})" for g in groups) + f"; target "
        f"{host_config.queues.batch_size} message(s) per instance (batchSize), at most {max_instances} instance(s) "
        f"per group, decisions every {args.interval:g} s, scale to zero after {args.idle_timeout:g} s idle"
    )
    return controller, note


async def _serve(controller: ScaleController, note: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await controller.run(stop, note)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        controller, note = _build(args)
    except SettingsError as exc:
        _log.error("cannot start: %s", exc)
        return 2
    asyncio.run(_serve(controller, note))
    _log.info("Scale controller stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
