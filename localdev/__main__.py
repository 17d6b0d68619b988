"""``python -m localdev``: the whole bot on one machine.

Starts Azurite, the listener and the functions host; with no DISCORD_TOKEN it also runs
the Discord emulator and a chat prompt where you type ``!ping`` as a user. ``--shards N``
runs N listener processes, one shard each (the emulator then has a guild per shard; the
prompt's ``:guild`` switches between them). The functions
host scales from zero like Flex Consumption: it starts when a command is waiting (so the
first command pays, and shows, a real cold start) and stops after an idle period.
Prints where everything is; Ctrl-C / SIGTERM stops all of it, leaving nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from localdev.azurite import Azurite, AzuriteError
from localdev.explorer import start_child as start_explorer
from localdev.stack import Child, child_env, wait_for_line
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, Secret, Settings, StorageSettings, load_settings
from shared.telemetry_exporters import DEFAULT_TRACE_FILE

RUN_DIR = PROJECT_ROOT / ".localdev"
HOST_LOG, LISTENER_LOG = RUN_DIR / "functions_host.log", RUN_DIR / "listener.log"


def _listener_logs(shards: int) -> list[Path]:
    return [LISTENER_LOG] if shards == 1 else [RUN_DIR / f"listener-{i}.log" for i in range(shards)]


def _start_listeners(env: dict[str, str], shards: int) -> list[Child]:
    """One listener, or one per shard (DISCORD_SHARD_COUNT=N, DISCORD_SHARD_IDS=i) with its own log."""
    if shards == 1:
        return [Child("listener", "gateway_listener", child_env(env), LISTENER_LOG).start()]
    return [Child(f"listener-{i}", "gateway_listener",
                  child_env({**env, "DISCORD_SHARD_COUNT": str(shards), "DISCORD_SHARD_IDS": str(i)}), log).start()
            for i, log in enumerate(_listener_logs(shards))]


def _trace_file(settings: Settings) -> Path | None:
    path = settings.local_trace_file or (None if settings.exporters_configured else DEFAULT_TRACE_FILE)
    if path is not None:  # this run's traces only (the explorer also reads a rotated <name>.1)
        for stale in (path, path.with_name(path.name + ".1")):
            stale.unlink(missing_ok=True)
    return path


def _say(text: str) -> None:
    print(f"\n[localdev] {text}", flush=True)


async def run(args: argparse.Namespace) -> int:
    settings = load_settings(require_storage=False)
    RUN_DIR.mkdir(exist_ok=True)
    trace_file = _trace_file(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with contextlib.AsyncExitStack() as stack:
        azurite = stack.enter_context(Azurite(port=args.azurite_port))
        env = {"AzureWebJobsStorage": azurite.connection_string}
        if trace_file is not None:
            env["LOCAL_TRACE_FILE"] = str(trace_file)
        if not args.live_apis:
            from localdev.external_apis import StubApis, api_settings

            apis = StubApis()
            stack.callback(apis.close)
            # A URL the user set explicitly still wins over the local stand-in.
            env.update({k: v for k, v in api_settings(apis.start()).items() if k not in os.environ})
        emulator = None
        if settings.discord_token is None:
            from localdev.discord_emulator import DiscordEmulator

            emulator = await stack.enter_async_context(DiscordEmulator(
                port=args.emulator_port, shard_count=args.shards, guild_count=args.shards))
            env.update(DISCORD_TOKEN=emulator.token, DISCORD_API_BASE_URL=emulator.api_url,
                       DISCORD_GATEWAY_URL=emulator.gateway_url)

        def start_host() -> Child:
            return Child("functions_host", "localdev.functions_host", child_env(env), HOST_LOG).start()

        listener_logs = _listener_logs(args.shards)
        for log in (HOST_LOG, *listener_logs):
            log.write_bytes(b"")
        if args.always_on:
            host = start_host()
            stack.callback(host.stop)
            if not await asyncio.to_thread(wait_for_line, HOST_LOG, "Functions host ready", 60, host):
                print(f"The functions host did not start: see {HOST_LOG}", file=sys.stderr)
                return 1
        else:
            await _scale_from_zero(stack, azurite, start_host, args.idle_timeout)
        for listener in _start_listeners(env, args.shards):
            stack.callback(listener.stop)
        if trace_file is not None:
            explorer, explorer_url = start_explorer(trace_file, child_env(env), RUN_DIR / "explorer.log")
            stack.callback(explorer.stop)
        stack.callback(print, "Stopping...", flush=True)  # last in, so printed first on the way out

        print(f"Azurite queues   {azurite.queue_endpoint}")
        if emulator:
            print(f"Discord emulator {emulator.base_url} (REST {emulator.api_url}, gateway {emulator.gateway_url})")
            print(f"                 guild {emulator.guild_id}, you = user {emulator.human_user_id} "
                  "(ids for feature_flags.example.json)")
            if args.shards > 1:
                for guild in emulator.guilds:
                    print(f"                 {guild['name']} ({guild['id']}) is on shard {guild['shard']}")
        if not args.live_apis:
            print("External APIs    local stand-ins for catfact, Scryfall, relationships (--live-apis: real ones)")
        print("Functions host   " + ("always on" if args.always_on else
                                     f"scales from zero: starts on the first command, stops after "
                                     f"{args.idle_timeout:.0f} s idle (--always-on to keep it up)"))
        print(f"Logs             {HOST_LOG}, {', '.join(map(str, listener_logs))}")
        print(f"Traces           {trace_file or 'exported (OTLP / Azure Monitor)'}"
              + ("  (python -m localdev.traces)" if trace_file else ""), flush=True)
        if trace_file is not None:
            print(f"Trace explorer   {explorer_url}  (heatmap, P95 by command, waterfalls)", flush=True)
        if emulator is None:
            print("Connected to Discord with DISCORD_TOKEN. Ctrl-C stops everything.", flush=True)
            await stop.wait()
            return 0
        try:
            await emulator.wait_until_ready_count(args.shards, timeout=60)  # every shard identified
        except TimeoutError:
            print(f"The listener did not connect: see {', '.join(map(str, listener_logs))}", file=sys.stderr)
            return 1
        from localdev.prompt import run_prompt

        await run_prompt(emulator, settings.bot_prefix, trace_file, stop)
    return 0


async def _scale_from_zero(stack: contextlib.AsyncExitStack[bool | None], azurite: Azurite,
                           start_host: Callable[[], Child], idle_s: float) -> None:
    from localdev.scaler import ScaleController

    storage = StorageSettings(connection_string=Secret(azurite.connection_string))
    scaler = ScaleController(storage, start_host, idle_s=idle_s, on_change=_say)
    halt = asyncio.Event()
    task = asyncio.create_task(scaler.run(halt))

    async def shutdown() -> None:
        halt.set()
        await task
        if scaler.host is not None:
            await asyncio.to_thread(scaler.host.stop)

    stack.push_async_callback(shutdown)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--azurite-port", type=int, default=0, help="queue port (default: a free one)")
    parser.add_argument("--emulator-port", type=int, default=0, help="Discord emulator port (default: a free one)")
    parser.add_argument("--live-apis", action="store_true",
                        help="use the real catfact/Scryfall/relationships APIs instead of local stand-ins")
    parser.add_argument("--always-on", action="store_true", help="run the functions host all the time")
    parser.add_argument("--shards", type=_positive, default=1,
                        help="run N listener processes, one gateway shard each (default 1: one listener)")
    parser.add_argument("--idle-timeout", type=float, default=300.0,
                        help="seconds without commands before the functions host scales to zero (default 300)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except (SettingsError, AzuriteError) as exc:
        print(f"localdev: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
