"""``python -m localdev.discord_emulator``: run the emulator until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from localdev.discord_emulator.emulator import DEFAULT_HEARTBEAT_MS, DEFAULT_TOKEN, DiscordEmulator


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localdev.discord_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bot token the emulator accepts")
    parser.add_argument("--guilds", type=int, default=1, help="number of guilds the bot is in")
    parser.add_argument("--shards", type=int, default=1,
                        help="shard count GET /gateway/bot recommends; guilds are spread over the shards")
    parser.add_argument("--heartbeat-ms", type=int, default=DEFAULT_HEARTBEAT_MS)
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    emu = DiscordEmulator(args.token, guild_count=args.guilds, heartbeat_interval_ms=args.heartbeat_ms,
                          shard_count=args.shards,
                          host=args.host, port=args.port)
    await emu.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            loop.add_signal_handler(sig, stop.set)
    print(f"Discord emulator: {emu.base_url}", flush=True)
    print(f"  DISCORD_API_BASE_URL={emu.api_url}", flush=True)
    print(f"  DISCORD_GATEWAY_URL={emu.gateway_url}", flush=True)
    print(f"  control API: {emu.base_url}/_emulator   guild {emu.guild_id}, channel {emu.channel_id}", flush=True)
    try:
        await stop.wait()
    finally:
        await emu.stop()
        print("Discord emulator stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
