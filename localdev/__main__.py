"""``python -m localdev``: the whole bot on one machine.

Starts Azurite, the local functions host and the listener; with no DISCORD_TOKEN it also
runs the Discord emulator and a chat prompt where you type ``!ping`` as a user. Prints
where everything is, and on Ctrl-C / SIGTERM stops all of it, leaving nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from localdev.azurite import Azurite, AzuriteError
from localdev.stack import Child, child_env, wait_for_line
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, load_settings
from shared.telemetry_exporters import DEFAULT_TRACE_FILE

RUN_DIR = PROJECT_ROOT / ".localdev"


async def run(args: argparse.Namespace) -> int:
    settings = load_settings(require_storage=False)
    RUN_DIR.mkdir(exist_ok=True)
    trace_file = settings.local_trace_file or (None if settings.exporters_configured else DEFAULT_TRACE_FILE)
    if trace_file is not None and trace_file.exists():
        trace_file.unlink()  # this run's traces only
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    azurite = Azurite(port=args.azurite_port).start()
    emulator = None
    apis = None
    children: list[Child] = []
    try:
        env = {"AzureWebJobsStorage": azurite.connection_string}
        if not args.live_apis:
            from localdev.external_apis import StubApis, api_settings

            apis = StubApis()
            # A URL the user set explicitly still wins over the local stand-in.
            env.update({k: v for k, v in api_settings(apis.start()).items() if k not in os.environ})
        if trace_file is not None:
            env["LOCAL_TRACE_FILE"] = str(trace_file)
        if settings.discord_token is None:
            from localdev.discord_emulator import DiscordEmulator

            emulator = DiscordEmulator(port=args.emulator_port)
            await emulator.start()
            env.update(DISCORD_TOKEN=emulator.token, DISCORD_API_BASE_URL=emulator.api_url,
                       DISCORD_GATEWAY_URL=emulator.gateway_url)
        for name, module in (("functions_host", "localdev.functions_host"), ("listener", "gateway_listener")):
            log = RUN_DIR / f"{name}.log"
            log.write_bytes(b"")
            children.append(Child(name, module, child_env(env), log).start())
        print(f"Azurite queues   {azurite.queue_endpoint}")
        if emulator:
            print(f"Discord emulator {emulator.base_url} (REST {emulator.api_url}, gateway {emulator.gateway_url})")
            print(f"                 guild {emulator.guild_id}, you = user {emulator.human_user_id} "
                  "(ids for feature_flags.example.json)")
        if apis:
            print("External APIs    local stand-ins for catfact, Scryfall, relationships (--live-apis: real ones)")
        print(f"Logs             {RUN_DIR}/functions_host.log, {RUN_DIR}/listener.log")
        print(f"Traces           {trace_file or 'exported (OTLP / Azure Monitor)'}"
              + ("  (python -m localdev.traces)" if trace_file else ""), flush=True)
        host_log = RUN_DIR / "functions_host.log"
        if not await asyncio.to_thread(wait_for_line, host_log, "Functions host ready", 60, children[0]):
            print(f"The functions host did not start: see {host_log}", file=sys.stderr)
            return 1
        if emulator is None:
            print("Connected to Discord with DISCORD_TOKEN. Ctrl-C stops everything.", flush=True)
            await stop.wait()
            return 0
        try:
            await emulator.wait_until_identified(timeout=60)
        except TimeoutError:
            print(f"The listener did not connect: see {RUN_DIR}/listener.log", file=sys.stderr)
            return 1
        from localdev.prompt import run_prompt

        await run_prompt(emulator, settings.bot_prefix, trace_file, stop)
        return 0
    finally:
        print("Stopping...", flush=True)
        for child in reversed(children):
            await asyncio.to_thread(child.stop)
        if emulator is not None:
            await emulator.stop()
        if apis is not None:
            apis.close()
        azurite.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--azurite-port", type=int, default=0, help="queue port (default: a free one)")
    parser.add_argument("--emulator-port", type=int, default=0, help="Discord emulator port (default: a free one)")
    parser.add_argument("--live-apis", action="store_true",
                        help="use the real catfact/Scryfall/relationships APIs instead of local stand-ins")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except (SettingsError, AzuriteError) as exc:
        print(f"localdev: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
