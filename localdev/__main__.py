"""``python -m localdev``: the whole bot on one machine.

Starts Azurite, a redis-server (REDIS_URL, unless set or --no-redis), the listener and the
function app under the local scale controller; with no DISCORD_TOKEN it also runs the Discord
emulator and a chat prompt where you type
``!ping`` as a user. ``--shards N`` runs N listener processes, one shard each (the emulator
then has a guild per shard; the prompt's ``:guild`` switches between them). Each function
scales on its own like on Flex Consumption: an instance starts when a command is waiting
(so it pays, and shows, a real cold start), more start under load, and they stop after an
idle period. ``--single-host`` runs every function in one host process instead (still from
zero). With ``--http-interactions`` it runs gateway-less: no listener; slash commands reach
the function app's ``interactions`` HTTP function (the emulator POSTs them, signed, to
``http://127.0.0.1:<FUNCTIONS_HTTP_PORT>/api/interactions``), served by the ``http``
group's instance. Prints where everything is; Ctrl-C / SIGTERM stops all of it, leaving nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from localdev.azurite import Azurite, AzuriteError
from localdev.explorer import start_child as start_explorer
from localdev.scale_controller.policy import DEFAULT_IDLE_TIMEOUT_S
from localdev.stack import Child, child_env, wait_for_line
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, Settings, load_settings
from shared.telemetry_exporters import DEFAULT_TRACE_FILE

if TYPE_CHECKING:
    from localdev.discord_emulator import DiscordEmulator

RUN_DIR = PROJECT_ROOT / ".localdev"
CONTROLLER_LOG, LISTENER_LOG = RUN_DIR / "scale_controller.log", RUN_DIR / "listener.log"
INSTANCE_LOGS, SCALE_STATUS = RUN_DIR / "instances", RUN_DIR / "scale.json"


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


async def run(args: argparse.Namespace) -> int:
    settings = load_settings(require_storage=False)
    if args.http_interactions and settings.discord_token is not None and settings.discord_public_key is None:
        raise SettingsError("DISCORD_PUBLIC_KEY: required with --http-interactions and a real DISCORD_TOKEN "
                            "(the application's Public Key, to verify Discord's signed POSTs)")
    RUN_DIR.mkdir(exist_ok=True)
    trace_file = _trace_file(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with contextlib.AsyncExitStack() as stack:
        storage_dir = RUN_DIR / "azurite"
        if args.fresh_storage:
            shutil.rmtree(storage_dir, ignore_errors=True)
        # On disk: queues (delayed reminders-due messages too) and the reminders table outlive a restart.
        azurite = stack.enter_context(Azurite(port=args.azurite_port, tables=True, location=storage_dir))
        env = {"AzureWebJobsStorage": azurite.connection_string}
        redis_note = _start_redis(stack, env, settings, args.no_redis)
        if trace_file is not None:
            env["LOCAL_TRACE_FILE"] = str(trace_file)
        if not args.live_apis:
            from localdev.external_apis import StubApis, api_settings

            apis = StubApis()
            stack.callback(apis.close)
            # A URL the user set explicitly still wins over the local stand-in.
            env.update({k: v for k, v in api_settings(apis.start()).items() if k not in os.environ})
            from localdev.rcon_server import RconStandIn

            minecraft = stack.enter_context(RconStandIn(password=secrets.token_urlsafe(12)))
            if "MINECRAFT_RCON_ADDRESS" not in os.environ:
                env.update(minecraft.settings())
        emulator = None
        if settings.discord_token is None:
            from localdev.discord_emulator import DiscordEmulator

            emulator = await stack.enter_async_context(DiscordEmulator(
                port=args.emulator_port, shard_count=args.shards, guild_count=args.shards))
            env.update(DISCORD_TOKEN=emulator.token, DISCORD_API_BASE_URL=emulator.api_url,
                       DISCORD_GATEWAY_URL=emulator.gateway_url, DISCORD_PUBLIC_KEY=emulator.public_key)
        endpoint = f"http://127.0.0.1:{settings.functions_http_port}/api/interactions"
        # The http group's one instance listens on FUNCTIONS_HTTP_PORT; with the gateway it is not
        # the ingress (and runs only with --single-host), so it takes any free port.
        env["FUNCTIONS_HTTP_PORT"] = str(settings.functions_http_port if args.http_interactions else 0)

        listener_logs = _listener_logs(args.shards)
        for log in (CONTROLLER_LOG, *listener_logs):
            log.write_bytes(b"")
        for old in [SCALE_STATUS, *INSTANCE_LOGS.glob("*.log")]:
            old.unlink(missing_ok=True)  # this run's instances only
        controller = Child("scale_controller", "localdev.scale_controller", child_env(env), CONTROLLER_LOG,
                           args=_controller_args(args)).start()
        stack.callback(controller.stop, 30.0)  # it drains every instance first
        from localdev.scale_controller import READY_PREFIX

        if not await asyncio.to_thread(wait_for_line, CONTROLLER_LOG, READY_PREFIX, 60, controller):
            print(f"The scale controller did not start: see {CONTROLLER_LOG}", file=sys.stderr)
            return 1
        for listener in [] if args.http_interactions else _start_listeners(env, args.shards):
            stack.callback(listener.stop)
        if trace_file is not None:
            explorer, explorer_url = start_explorer(trace_file, child_env(env), RUN_DIR / "explorer.log")
            stack.callback(explorer.stop)
        stack.callback(print, "Stopping...", flush=True)  # last in, so printed first on the way out

        print(f"Azurite          queues {azurite.queue_endpoint}, tables {azurite.table_endpoint} "
              f"(kept in {storage_dir}; --fresh-storage empties it)")
        print(f"Redis            {redis_note}")
        if emulator:
            print(f"Discord emulator {emulator.base_url} (REST {emulator.api_url}, gateway {emulator.gateway_url})")
            print(f"                 guild {emulator.guild_id}, you = user {emulator.human_user_id} "
                  "(ids for feature_flags.example.json)")
            if args.shards > 1:
                for guild in emulator.guilds:
                    print(f"                 {guild['name']} ({guild['id']}) is on shard {guild['shard']}")
        if not args.live_apis:
            print("External APIs    local stand-ins for catfact, Scryfall, relationships (--live-apis: real ones)")
            print(f"Minecraft RCON   {env.get('MINECRAFT_RCON_ADDRESS')} (a stand-in with a whitelist, for !mc; "
                  "flags mc / mc-admin in feature_flags.example.json)")
        if args.http_interactions:
            print(f"Interactions     {endpoint} (gateway-less: no listener; the http group's instance)")
        print("Functions        " + ("one host for every function" if args.single_host else
                                     "each function scales on its own (--single-host: one host)")
              + f", from zero; idle {args.idle_timeout:g} s -> zero"
              + (" (--always-on: one instance kept)" if args.always_on else ""))
        logs = [CONTROLLER_LOG, f"{INSTANCE_LOGS}/"] + ([] if args.http_interactions else listener_logs)
        print(f"Logs             {', '.join(map(str, logs))}")
        print(f"Traces           {trace_file or 'exported (OTLP / Azure Monitor)'}"
              + ("  (python -m localdev.traces)" if trace_file else ""), flush=True)
        if trace_file is not None:
            print(f"Trace explorer   {explorer_url}  (heatmap, P95 by command, waterfalls)", flush=True)
        if emulator is None:
            print("Set the application's Interactions Endpoint URL to a public tunnel to " + endpoint
                  if args.http_interactions else "Connected to Discord with DISCORD_TOKEN.",
                  "Ctrl-C stops everything.", flush=True)
            await stop.wait()
            return 0
        if not await _connect(emulator, endpoint if args.http_interactions else None, args.shards, listener_logs):
            return 1
        from localdev.prompt import run_prompt

        await run_prompt(emulator, settings.bot_prefix, trace_file, stop, SCALE_STATUS,
                         gateway=not args.http_interactions)
    return 0


async def _connect(emulator: DiscordEmulator, endpoint: str | None, shards: int, logs: list[Path]) -> bool:
    """Wait for the listener's IDENTIFY, or save (and so verify) the Interactions Endpoint URL
    once the http group's instance answers."""
    from localdev.discord_emulator import EndpointRejected

    if endpoint is None:
        try:
            await emulator.wait_until_ready_count(shards, timeout=60)  # every shard identified
        except TimeoutError:
            print(f"The listener did not connect: see {', '.join(map(str, logs))}", file=sys.stderr)
            return False
        return True
    deadline = time.monotonic() + 60
    while True:
        try:
            await emulator.set_interactions_endpoint(endpoint)
            return True
        except EndpointRejected as exc:
            if "could not reach" not in str(exc) or time.monotonic() > deadline:  # not started yet: retry
                print(f"The interactions endpoint was not accepted: {exc} (see {INSTANCE_LOGS}/)", file=sys.stderr)
                return False
        await asyncio.sleep(0.2)


def _start_redis(stack: contextlib.AsyncExitStack, env: dict[str, str], settings: Settings, off: bool) -> str:
    """A local redis-server for the shared Discord rate limits (REDIS_URL), unless one is set or --no-redis."""
    if settings.redis_url is not None:
        return "REDIS_URL from your settings (shared rate limits)"
    if off:
        return "off (--no-redis): each process paces Discord's rate limits alone"
    from localdev.redis_server import RedisServer, redis_server_binary

    if redis_server_binary() is None:
        return "off: redis-server is not installed (scripts/setup installs it); rate limits per process"
    server = stack.enter_context(RedisServer())
    env["REDIS_URL"] = server.url
    return f"{server.url} (REDIS_URL: one Discord rate limit for every process)"


def _controller_args(args: argparse.Namespace) -> list[str]:
    out = ["--idle-timeout", str(args.idle_timeout), "--status-file", str(SCALE_STATUS),
           "--log-dir", str(INSTANCE_LOGS)]
    if args.single_host:
        out.append("--single-host")
    ready = ["*=1"] if args.always_on else []
    if args.http_interactions and not args.single_host:
        ready.append("http=1")  # the controller cannot see HTTP load: the ingress keeps its instance
    elif args.always_on and not args.single_host:
        ready.append("http=0")  # with the gateway, nothing calls the interactions endpoint
    if ready:
        out += ["--always-ready", ",".join(ready)]
    return out


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--azurite-port", type=int, default=0, help="queue port (default: a free one)")
    parser.add_argument("--emulator-port", type=int, default=0, help="Discord emulator port (default: a free one)")
    parser.add_argument("--live-apis", action="store_true",
                        help="use the real catfact/Scryfall/relationships APIs and MINECRAFT_RCON_* settings "
                             "instead of local stand-ins")
    parser.add_argument("--fresh-storage", action="store_true",
                        help="empty the local storage (.localdev/azurite: queues, reminders) before starting")
    parser.add_argument("--single-host", action="store_true",
                        help="run every function in one functions host (no per-function scaling)")
    parser.add_argument("--always-on", action="store_true", help="keep one instance of every function running")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S,
                        help=f"seconds without commands before a function scales to zero "
                             f"(default {DEFAULT_IDLE_TIMEOUT_S:g}, as Flex Consumption)")
    parser.add_argument("--shards", type=_positive, default=1,
                        help="run N listener processes, one gateway shard each (default 1: one listener)")
    parser.add_argument("--http-interactions", action="store_true",
                        help="gateway-less: no listener; slash commands are POSTed to the interactions function")
    parser.add_argument("--no-redis", action="store_true",
                        help="no local redis-server: each process paces Discord's rate limits alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except (SettingsError, AzuriteError) as exc:
        print(f"localdev: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
