"""The chat prompt of ``python -m localdev``: you type as a Discord user, the bot answers.

``!ping`` is sent to the emulator as a MESSAGE_CREATE from "you"; ``/roll dice:3`` as a
slash command (INTERACTION_CREATE). "bot is typing…" shows when the bot's typing request
arrives (the listener's instant feedback), then the bot's reply is printed, then the command's
trace as a waterfall across both services, read from the local trace file, then the
instances each function has running (``/scale`` prints that line on its own). With several
guilds (``python -m localdev --shards N`` has one per shard), ``:guilds`` lists them with
their shard and ``:guild 2`` (a number from that list, or a guild id) switches guild.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from localdev.discord_emulator import DiscordEmulator
from localdev.scale_controller.controller import read_status
from localdev.traces import load_traces, render_trace
from shared.registry import COMMANDS

T = TypeVar("T")
REPLY_TIMEOUT_S = 60.0  # a first command pays Azurite polling + cold start
TRACE_TIMEOUT_S = 5.0
SCALE_COMMAND = "/scale"


def scale_line(status_file: Path | None) -> str:
    """``instances: catfact 3, ping 1 (others 0)`` from the scale controller's status file."""
    counts = read_status(status_file) if status_file is not None else None
    if counts is None:
        return "instances: (no scale controller status yet)"
    running = [f"{name} {n}" for name, n in sorted(counts.items()) if n]
    rest = " (others 0)" if running and len(running) < len(counts) else ""
    return "instances: " + (", ".join(running) if running else "none") + rest


def _stdin_lines(loop: asyncio.AbstractEventLoop, out: asyncio.Queue[str | None]) -> None:
    """Read stdin on a daemon thread (input() can't be cancelled; a daemon never blocks exit)."""

    def run() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(out.put_nowait, line)
        loop.call_soon_threadsafe(out.put_nowait, None)

    threading.Thread(target=run, name="stdin", daemon=True).start()


def slash_options(text: str) -> tuple[str, dict[str, Any]]:
    """``/roll dice:3 again:9a`` or ``/roll 3 9a`` -> ("roll", {"dice": "3", "again": "9a"}).

    Named ``key:value`` words fill their option; the other words fill the remaining
    options in order, the last one taking the rest of the line.
    """
    name, _, rest = text[1:].partition(" ")
    spec = COMMANDS.get(name.lower())
    declared = [o.name for o in spec.options] if spec else []
    options: dict[str, Any] = {}
    loose: list[str] = []
    for word in rest.split():
        key, sep, value = word.partition(":")
        if sep and key in declared:
            options[key] = value
        else:
            loose.append(word)
    free = [d for d in declared if d not in options]
    for i, slot in enumerate(free):
        value = " ".join(loose[i:]) if i == len(free) - 1 else (loose[i] if i < len(loose) else "")
        if value:
            options[slot] = value
    return name.lower(), options


class Guilds:
    """The guilds you can type in, and the one you are in (``:guilds``, ``:guild N``)."""

    def __init__(self, guilds: list[dict[str, Any]]) -> None:
        self.guilds = guilds
        self.current = guilds[0]

    def label(self, guild: dict[str, Any]) -> str:
        return f"{guild['name']} (shard {guild['shard']})"

    def command(self, line: str) -> str | None:
        """The answer to a ``:guilds`` / ``:guild N`` line; None if ``line`` is not one."""
        word, _, arg = line.partition(" ")
        if word == ":guilds":
            return "\n".join(f"  {n}. {self.label(g)} {g['id']}" + ("  <- here" if g is self.current else "")
                             for n, g in enumerate(self.guilds, 1))
        if word != ":guild":
            return None
        arg = arg.strip()
        found = next((g for n, g in enumerate(self.guilds, 1) if arg in (str(n), g["id"])), None)
        if found is None:
            return f"no guild {arg!r}: :guilds lists them"
        self.current = found
        return f"now in #general of {self.label(found)}"


# What ends a slash command at the prompt: the edit of a deferral, or an immediate answer
# (unknown command over HTTP), or Discord's "did not respond" (kind -> has a command trace).
SLASH_ANSWERS = {"interaction_edit": True, "followup": True, "interaction_response": False,
                 "interaction_failed": False}


async def _reply(emulator: DiscordEmulator, line: str, guild_id: str) -> tuple[str, str | None]:
    """Send one line as the user in ``guild_id``; return (bot reply text, the id to find the trace by, if any)."""
    if line.startswith("/"):
        name, options = slash_options(line)
        payload = emulator.send_interaction(name, options, guild_id=guild_id)
        after = payload["id"]
        while True:  # skip the deferral's own message; wait for what ends the command
            out = await emulator.wait_for_bot_message(after=after, timeout=REPLY_TIMEOUT_S)
            kind = str(out.get("event_kind"))
            if kind in SLASH_ANSWERS and out.get("interaction_id") == payload["id"]:
                return str(out.get("content", "")), payload["id"] if SLASH_ANSWERS[kind] else None
            after = out["event_id"]
    sent_at = time.monotonic()
    message = emulator.send_message(line, guild_id=guild_id)
    typing = asyncio.ensure_future(_show_typing(emulator, message["channel_id"], sent_at))
    try:
        out = await emulator.wait_for_bot_message(channel_id=message["channel_id"], after=message["id"],
                                                  timeout=REPLY_TIMEOUT_S)
    finally:
        typing.cancel()
    return str(out.get("content", "")), message["id"]


async def _show_typing(emulator: DiscordEmulator, channel_id: str, since: float) -> None:
    """Print Discord's "is typing…" as soon as the bot's typing request reaches the emulator."""
    event = await emulator.wait_for_typing(channel_id, since, REPLY_TIMEOUT_S)
    if event is not None:
        print(f"bot is typing… ({(event.at - since) * 1000:.0f} ms)", flush=True)


def _find_trace(trace_file: Path, source_id: str) -> list[dict[str, Any]] | None:
    """The trace of the command sent as ``source_id``, once its root and process spans are in."""
    for spans in load_traces(trace_file).values():
        mine = any(s.get("attributes", {}).get("discord.message.id") == source_id for s in spans)
        if mine and any(not s.get("parent_span_id") for s in spans) and any(
            s["name"].endswith(" process") for s in spans
        ):
            return spans
    return None


async def _waterfall(trace_file: Path, source_id: str) -> str | None:
    deadline = time.monotonic() + TRACE_TIMEOUT_S
    while time.monotonic() < deadline:
        spans = _find_trace(trace_file, source_id)
        if spans is not None:
            return render_trace(spans)
        await asyncio.sleep(0.1)
    return None


async def _unless_stopped[T](work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T:
    """``await work``, but give up (CancelledError) as soon as ``stop`` is set."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        raise asyncio.CancelledError
    return task.result()


async def run_prompt(emulator: DiscordEmulator, prefix: str, trace_file: Path | None, stop: asyncio.Event,
                     status_file: Path | None = None, *, gateway: bool = True) -> None:
    """``gateway=False``: gateway-less (HTTP interactions), where only slash commands reach the bot."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    _stdin_lines(asyncio.get_running_loop(), lines)
    guilds = Guilds(emulator.guilds)
    several = len(guilds.guilds) > 1
    print(f"Chat as 'you' in #general{' of ' + guilds.label(guilds.current) if several else ''}. "
          + (f"Try {prefix}ping, {prefix}help, {prefix}catfact or /roll dice:3 " if gateway else
             "Try /ping, /help, /catfact or /roll dice:3 (gateway-less: slash commands only) ")
          + ("(:guilds lists the guilds, :guild 2 switches; " if several else "(")
          + "Ctrl-D or Ctrl-C quits).", flush=True)
    while not stop.is_set():
        print(f"you@{guilds.current['name']}> " if several else "you> ", end="", flush=True)
        getter = asyncio.ensure_future(lines.get())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not getter.done():
            getter.cancel()
            break
        line = getter.result()
        if line is None:
            print()
            break
        line = line.strip()
        if not line:
            continue
        if line == SCALE_COMMAND:
            print(scale_line(status_file), flush=True)
            continue
        answer = None if line.startswith(prefix) else guilds.command(line)
        if answer is not None:
            print(answer, flush=True)
            continue
        guild_id = guilds.current["id"]
        if not line.startswith("/") and (not gateway or not line.startswith(prefix)):
            emulator.send_message(line, guild_id=guild_id)  # ordinary chat: the bot ignores it and traces nothing
            if not gateway and line.startswith(prefix):
                print("(gateway-less: nothing reads messages without the listener; use /commands)", flush=True)
            continue
        try:
            reply, source_id = await _unless_stopped(_reply(emulator, line, guild_id), stop)
        except TimeoutError:
            print(f"(no reply within {REPLY_TIMEOUT_S:.0f} s: see .localdev/*.log)", flush=True)
            continue
        except asyncio.CancelledError:
            break  # Ctrl-C while waiting for the bot
        print("bot> " + reply.replace("\n", "\n     "), flush=True)
        if trace_file is not None and source_id is not None:
            try:
                waterfall = await _unless_stopped(_waterfall(trace_file, source_id), stop)
            except asyncio.CancelledError:
                break
            print(waterfall if waterfall else "(trace not in the local file yet: python -m localdev.traces)",
                  flush=True)
        if status_file is not None:
            print(scale_line(status_file), flush=True)
