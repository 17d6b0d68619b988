"""The baseline: a plain discord.py bot that answers ``!ping`` (and ``!catfact``) in-process, default caches.

What a bot author would write without the split: no queue, no functions, no telemetry.
``python -m bench.baseline_bot`` with DISCORD_TOKEN, DISCORD_API_BASE_URL and
DISCORD_GATEWAY_URL (the emulator's); logs "baseline ready" once READY. With
CATFACT_API_URL, ``!catfact`` fetches a fact from it (one GET, as the function does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl

_log = logging.getLogger("bench.baseline_bot")


class BaselineBot(discord.Client):
    def __init__(self, *, catfact_url: str | None, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.catfact_url = catfact_url
        self.session: aiohttp.ClientSession | None = None

    async def on_ready(self) -> None:
        _log.info("baseline ready in %d guilds", len(self.guilds))

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        # No reference=: discord.py sends its snowflakes as integers, which the emulator's
        # OpenAPI check rejects (the spec says strings; real Discord accepts both).
        if message.content == "!ping":
            await message.channel.send("pong")
        elif message.content == "!catfact" and self.catfact_url:
            self.session = self.session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            async with self.session.get(self.catfact_url) as resp:
                fact = (await resp.json())["fact"]
            await message.channel.send(fact)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        await super().close()


async def run(token: str, catfact_url: str | None) -> None:
    intents = discord.Intents.default()
    intents.message_content = True  # prefix commands need it; everything else stays default
    bot = BaselineBot(intents=intents, catfact_url=catfact_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with bot:
        runner = asyncio.create_task(bot.start(token))
        await asyncio.wait({runner, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
        await bot.close()
        await asyncio.gather(runner, return_exceptions=True)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The same two patches the listener applies (gateway_listener/endpoints.py) to reach the emulator.
    discord.http.Route.BASE = os.environ["DISCORD_API_BASE_URL"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
    asyncio.run(run(os.environ["DISCORD_TOKEN"], os.environ.get("CATFACT_API_URL")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
