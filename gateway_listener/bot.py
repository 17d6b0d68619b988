"""The always-on gateway listener: a deliberately small discord.py client.

It runs no command. For each prefix command (or slash command) it starts the trace
and buffers an envelope for the command's queue (gateway_listener/dispatch.py); the
actual send happens on background tasks, so the gateway's heartbeat is never blocked.
An accepted prefix command also triggers Discord's typing indicator at once
(gateway_listener/feedback.py); a slash command is deferred instead ("thinking…").

Caches are cut to what prefix commands need: intents GUILDS + GUILD_MESSAGES +
MESSAGE_CONTENT, no member cache, no chunking, no message cache.

It runs the shards its :class:`ShardPlan` owns (DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS;
by default shard 0 of 1, a single connection), identifying them as Discord's
``session_start_limit`` allows, and tracks each shard's state for the health probes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import discord

from gateway_listener.dispatch import Incoming, Outcome, dispatch
from gateway_listener.endpoints import needs_gateway_discovery, set_gateway
from gateway_listener.enqueuer import Enqueuer
from gateway_listener.feedback import TypingIndicator
from gateway_listener.parsing import parse_message
from gateway_listener.settings import ShardPlan, format_shard_ids
from gateway_listener.shards import IdentifyGate, ShardHealth, ShardState, ShardTracker
from shared.discord_limits import SharedLimits, log_if_unshared
from shared.envelope import MAX_ARGS_CHARS, Ids
from shared.ingress import slash_incoming
from shared.registry import COMMANDS
from shared.settings import Secret, Settings
from shared.useragent import user_agent

_log = logging.getLogger(__name__)

BUSY_REPLY = "I'm overloaded right now and couldn't take that command. Please try again in a minute."
REJECTED_REPLY = f"That command is too long (at most {MAX_ARGS_CHARS} characters of arguments)."
NO_MENTIONS = discord.AllowedMentions.none()


def listener_intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    return intents


class ListenerBot(discord.AutoShardedClient):
    def __init__(self, settings: Settings, enqueuer: Enqueuer, *, sample_rate: int = 1,
                 shards: ShardPlan | None = None) -> None:
        super().__init__(
            intents=listener_intents(),
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            max_messages=None,
        )  # shard_count and shard_ids are set in setup_hook, once Discord's recommendation is known
        self.settings = settings
        self.enqueuer = enqueuer
        self.sample_rate = sample_rate
        self.shard_plan = shards or ShardPlan()
        self.limits = SharedLimits.from_settings(settings)  # None without REDIS_URL: per process
        self.identify_gate = IdentifyGate(shared=self.limits)
        self.tracker = ShardTracker()
        self._background: set[asyncio.Task[Any]] = set()
        self.ready_event = asyncio.Event()
        assert settings.discord_token is not None, "the listener needs a token"
        self.typing = TypingIndicator(settings.discord_api_base_url, settings.discord_token,
                                      user_agent_header=user_agent("discord", settings.service_version),
                                      shared_limits=self.limits)

    async def setup_hook(self) -> None:
        # After login, before any shard connects: the shard count (for auto) and how fast to identify.
        recommended, url, limit = await self.http.get_bot_gateway()
        if needs_gateway_discovery(self.settings):
            set_gateway(url)
        count, ids = self.shard_plan.resolve(recommended)
        self.shard_count, self.shard_ids = count, list(ids)
        self.identify_gate.max_concurrency = max(1, int(limit.get("max_concurrency", 1)))
        self.tracker.expect(ids)
        log_if_unshared(self.settings, "this listener", more_than_one=len(ids) < count)  # other processes own the rest
        if recommended > count:
            _log.warning("Discord recommends %d shards; running %d (DISCORD_SHARD_COUNT)", recommended, count)
        _log.info("shards %s of %d (identify max_concurrency %d)", format_shard_ids(ids), count,
                  self.identify_gate.max_concurrency)
        await self.enqueuer.start([spec.queue for spec in COMMANDS.values()])

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.identify_gate.wait(shard_id or 0)

    async def on_shard_connect(self, shard_id: int) -> None:
        self.tracker.mark(shard_id, ShardState.CONNECTING)

    async def on_shard_ready(self, shard_id: int) -> None:
        self.tracker.mark(shard_id, ShardState.READY)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self.tracker.mark(shard_id, ShardState.READY)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.tracker.mark(shard_id, ShardState.DISCONNECTED)

    def shard_health(self) -> dict[int, ShardHealth]:
        return self.tracker.snapshot(dict(self.latencies), (g.shard_id for g in self.guilds),
                                     {sid for sid, info in self.shards.items() if not info.is_closed()})

    def shard_of(self, guild_id: int | None) -> int:
        """The shard that delivers a guild's events (DMs arrive on shard 0)."""
        return 0 if guild_id is None or not self.shard_count else (guild_id >> 22) % self.shard_count

    async def on_ready(self) -> None:
        _log.info("listener ready as %s in %d guilds (prefix %r)",
                  self.user, len(self.guilds), self.settings.bot_prefix)
        self.ready_event.set()

    async def on_message(self, message: discord.Message) -> None:
        if self.user is not None and message.author.id == self.user.id:
            self.typing.replied(str(message.channel.id))  # our reply ended "typing" there
            return
        if message.author.bot:
            return
        routed = parse_message(message.content, self.settings.bot_prefix)
        if routed is None:
            return  # ordinary chat: never traced, never stored
        incoming = Incoming(
            kind="message",
            routed=routed,
            ids=Ids(
                message=str(message.id),
                channel=str(message.channel.id),
                author=str(message.author.id),
                guild=str(message.guild.id) if message.guild else None,
            ),
            author_name=message.author.name,
            roles=_role_ids(message.author),
            shard=self.shard_of(message.guild.id if message.guild else None),
        )
        channel_id = incoming.ids.channel
        outcome, trace_id = dispatch(incoming, self.enqueuer, self.sample_rate,
                                     on_queued=lambda: self.typing.trigger(channel_id))
        if outcome is not Outcome.QUEUED:
            text = BUSY_REPLY if outcome is Outcome.BUSY else REJECTED_REPLY
            self._spawn(message.channel.send(f"{text} (trace `{trace_id}`)", allowed_mentions=NO_MENTIONS))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.application_command or not interaction.data:
            return
        try:  # acknowledge first: Discord allows 3 s, the function may take longer
            await interaction.response.defer()
        except discord.HTTPException as exc:
            _log.warning("could not defer interaction %s: %s", interaction.id, exc.status)
            return
        data: Any = interaction.data
        incoming = slash_incoming(
            name=str(data.get("name", "")),
            options=data.get("options") or [],
            interaction_id=str(interaction.id),
            channel_id=str(interaction.channel_id or 0),
            author_id=str(interaction.user.id),
            author_name=interaction.user.name,
            guild_id=str(interaction.guild_id) if interaction.guild_id else None,
            roles=_role_ids(interaction.user),
            application_id=str(interaction.application_id),
            token=Secret(interaction.token),
            shard=self.shard_of(interaction.guild_id),
        )
        outcome, trace_id = dispatch(incoming, self.enqueuer, self.sample_rate)
        if outcome is not Outcome.QUEUED:
            text = BUSY_REPLY if outcome is Outcome.BUSY else REJECTED_REPLY
            self._spawn(interaction.edit_original_response(content=f"{text} (trace `{trace_id}`)",
                                                           allowed_mentions=NO_MENTIONS))

    async def close(self) -> None:
        await super().close()
        await self.typing.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _role_ids(author: discord.abc.User) -> tuple[str, ...]:
    """The member's role ids (for role:<id> flag targeting); none outside guilds."""
    roles = getattr(author, "roles", None) or []
    return tuple(str(role.id) for role in roles if not role.is_default())

