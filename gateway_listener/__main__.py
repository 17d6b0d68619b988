"""``python -m gateway_listener``: run the listener until SIGTERM / Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from gateway_listener.settings import ListenerSettings
from shared.errors import SettingsError
from shared.settings import Settings

_log = logging.getLogger("gateway_listener")

# Gateway close codes that are a settings problem: one line naming the setting, exit 2.
FATAL_CLOSE_CODES = {
    4010: "DISCORD_SHARD_IDS/DISCORD_SHARD_COUNT: Discord rejected the shard (close 4010, invalid shard)",
    4011: "DISCORD_SHARD_COUNT: Discord requires sharding for this many guilds (close 4011); "
          "set DISCORD_SHARD_COUNT=auto or a larger count",
}


async def run(settings: Settings, listener: ListenerSettings | None = None) -> None:
    from gateway_listener import health
    from gateway_listener.bot import ListenerBot
    from gateway_listener.enqueuer import Enqueuer
    from shared import telemetry

    assert settings.discord_token is not None, "checked in main()"
    listener = listener or ListenerSettings()
    enqueuer = Enqueuer(settings.storage, capacity=settings.listener_buffer_capacity)
    bot = ListenerBot(settings, enqueuer, sample_rate=telemetry.sample_rate(settings), shards=listener.shards)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    probes = health.serving(listener.health_host, listener.health_port,
                            lambda: health.Snapshot(bot.shard_health(), enqueuer.pending))
    try:
        async with probes, bot:
            runner = asyncio.create_task(bot.start(settings.discord_token.reveal()))
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if runner in done and (failure := runner.exception()) is not None:
                raise failure
            _log.info("stopping: closing the gateway, then draining %d buffered messages", enqueuer.pending)
            await bot.close()
            await asyncio.gather(runner, return_exceptions=True)
    finally:
        await enqueuer.close(drain_timeout=listener.drain_timeout_s)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every HTTP request at INFO
    from gateway_listener.endpoints import apply_endpoints
    from gateway_listener.settings import load_listener_settings
    from shared import telemetry
    from shared.settings import load_settings

    try:
        settings = load_settings()
        if settings.discord_token is None:
            raise SettingsError("DISCORD_TOKEN: required (or run `python -m localdev`, which starts a local emulator)")
        listener = load_listener_settings()
    except SettingsError as exc:
        print(f"gateway_listener: {exc}", file=sys.stderr)
        return 2
    telemetry.setup_telemetry(settings, "listener")
    apply_endpoints(settings)
    try:
        asyncio.run(run(settings, listener))
    except SettingsError as exc:  # found after login: ids outside the count Discord recommends (auto)
        print(f"gateway_listener: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import discord

        if isinstance(exc, discord.LoginFailure):
            print("gateway_listener: DISCORD_TOKEN: Discord rejected the token", file=sys.stderr)
            return 2
        if isinstance(exc, discord.ConnectionClosed) and exc.code in FATAL_CLOSE_CODES:
            print(f"gateway_listener: {FATAL_CLOSE_CODES[exc.code]}", file=sys.stderr)
            return 2
        raise
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
