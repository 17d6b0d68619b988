"""DiscordEmulator: the gateway, REST API and control API on one aiohttp server.

Use it in the test's own event loop (``async with DiscordEmulator() as emu``) or, for
synchronous code and subprocess-based tests, through :class:`EmulatorThread`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, TypeVar, Unpack

from aiohttp import web

from localdev.discord_emulator import control, http_delivery
from localdev.discord_emulator.faults import GlobalLimit, RateLimits, RestFault
from localdev.discord_emulator.gateway import SHARDING_THRESHOLD, Dispatch, Gateway, ShardConfig
from localdev.discord_emulator.http_delivery import HttpDelivery
from localdev.discord_emulator.models import JSON, User, World, option_type
from localdev.discord_emulator.openapi import SpecValidator
from localdev.discord_emulator.rest import RestApi
from localdev.discord_emulator.snowflake import SnowflakeGenerator, shard_of
from localdev.discord_emulator.state import EmulatorState, InteractionRecord, RecordedRequest, TypingEvent

_log = logging.getLogger(__name__)

DEFAULT_TOKEN = "local-emulator-token"  # not a secret: only this emulator accepts it
DEFAULT_HEARTBEAT_MS = 41_250


T = TypeVar("T")


class Sender(TypedDict, total=False):
    """Who sends an injected message or interaction, and where (defaults: "you", the first guild)."""

    author_id: str | None
    username: str | None
    global_name: str | None
    channel_id: str | None
    guild_id: str | None
    roles: Sequence[str]


def _started[T](part: T | None) -> T:
    if part is None:
        raise RuntimeError("emulator not started")
    return part


class DiscordEmulator:
    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        guild_count: int = 1,
        heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_MS,
        host: str = "127.0.0.1",
        port: int = 0,
        interaction_deadline_s: float = 3.0,
        spec_path: Path | None = None,
        rate_limit: int = 50,
        rate_limit_window_s: float = 1.0,
        enforce_rate_limits: bool = False,
        bot_name: str = "LocalBot",
        shard_count: int = 1,
        sharding_threshold: int = SHARDING_THRESHOLD,
        max_concurrency: int = 1,
        global_rate_limit: float = 50,
        invalid_request_limit: int = 10_000,
        invalid_request_window_s: float = 600.0,
        ban_s: float = 3600.0,
    ) -> None:
        """``global_rate_limit``: the bot's requests per second over every bot-authenticated route
        (0 = off); ``invalid_request_*``/``ban_s``: the temporary ban (see :class:`GlobalLimit`).
        ``shard_count``: what ``GET /gateway/bot`` recommends; guild n is made to live on shard
        n % shard_count. ``sharding_threshold``: more guilds on one connection closes it with 4011.
        ``max_concurrency``: the ``session_start_limit`` the bot is told to honour."""
        self._token = token
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.ids = SnowflakeGenerator()
        self.world = World(self.ids, guild_count=guild_count, bot_name=bot_name, shard_count=shard_count)
        self._shards = ShardConfig(shard_count, sharding_threshold, max_concurrency)
        self._spec_path = spec_path
        self._heartbeat_ms = heartbeat_interval_ms
        self._interaction_deadline_s = interaction_deadline_s
        self._rate_limits = RateLimits(rate_limit, rate_limit_window_s, enforce=enforce_rate_limits)
        self.global_limit = GlobalLimit(global_rate_limit, invalid_limit=invalid_request_limit,
                                        invalid_window_s=invalid_request_window_s, ban_s=ban_s)
        self._runner: web.AppRunner | None = None
        self._gateway: Gateway | None = None
        self._state: EmulatorState | None = None
        self._rest: RestApi | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.http_delivery = HttpDelivery(self, interaction_deadline_s)  # the application's key pair
        self.world.verify_key = self.http_delivery.public_key

    # -- lifecycle ---------------------------------------------------------------------------

    def _token_ok(self, token: str) -> bool:
        return secrets.compare_digest(token.encode(), self._token.encode())

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        spec = SpecValidator.from_file(self._spec_path)
        self._gateway = Gateway(self.world, token_ok=self._token_ok, gateway_url=lambda: self.gateway_url,
                                heartbeat_interval_ms=self._heartbeat_ms, shards=self._shards)
        self._state = EmulatorState(self.world, self.ids)
        self._rest = RestApi(self._state, self._gateway, spec, token_ok=self._token_ok,
                             gateway_url=lambda: self.gateway_url, rate_limits=self._rate_limits,
                             interaction_deadline_s=self._interaction_deadline_s, global_limit=self.global_limit)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self._root)
        app.router.add_route("*", r"/api/v{version:(?:9|10)}/{tail:.*}", self._rest.handle)
        control.add_routes(app, self)
        http_delivery.add_routes(app, self, control.PREFIX)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                   shutdown_timeout=0.2)  # long-polls and injected delays: just cancel
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        server = site._server  # aiohttp has no public way to read an ephemeral port
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1] if sockets else self._requested_port
        self._gateway.start()
        _log.info("discord emulator listening on %s (gateway %s)", self.base_url, self.gateway_url)

    async def stop(self) -> None:
        await self.http_delivery.close()
        if self._gateway is not None:
            await self._gateway.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordEmulator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _root(self, request: web.Request) -> web.StreamResponse:
        # The gateway lives at "/" (discord.py appends ?v=10&encoding=json&compress=... to it).
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.gateway.handle(request)
        return web.json_response(self.info())

    # -- addresses and parts -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return _started(self._port)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        return self._token

    @property
    def gateway(self) -> Gateway:
        return _started(self._gateway)

    @property
    def state(self) -> EmulatorState:
        return _started(self._state)

    @property
    def rest(self) -> RestApi:
        return _started(self._rest)

    @property
    def guild_id(self) -> str:
        return self.world.default_guild.id

    @property
    def channel_id(self) -> str:
        return self.world.default_guild.default_channel.id

    @property
    def bot_user_id(self) -> str:
        return self.world.bot.id

    @property
    def application_id(self) -> str:
        return self.world.application_id

    @property
    def human_user_id(self) -> str:
        return self.world.human.id

    def info(self) -> JSON:
        """Urls, ids and connection state (``GET /_emulator``)."""
        return {
            "base_url": self.base_url,
            "api_url": self.api_url,
            "gateway_url": self.gateway_url,
            "application_id": self.application_id,
            "bot_user_id": self.bot_user_id,
            "human_user_id": self.human_user_id,
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "guild_count": len(self.world.guilds),
            "shard_count": self._shards.recommended,
            "guilds": self.guilds,
            "identified": self.gateway.identified.is_set(),
            "ready_count": self.ready_count,
        }

    @property
    def guilds(self) -> list[JSON]:
        """Each guild: id, name, its first channel and the shard it lives on (of the recommended count)."""
        count = self._shards.recommended
        return [{"id": g.id, "name": g.name, "channel_id": g.default_channel.id, "shard": shard_of(g.id, count)}
                for g in self.world.guilds.values()]

    # -- what happened -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    @property
    def invalid_requests(self) -> list[RecordedRequest]:
        return self.state.invalid_requests

    @property
    def identify_payloads(self) -> list[JSON]:
        """IDENTIFY ``d`` payloads received, token replaced by ``***``."""
        return self.gateway.identify_payloads

    @property
    def identify_times(self) -> list[tuple[float, int]]:
        """(time.monotonic() on arrival, shard id) of every IDENTIFY, across all connections."""
        return self.gateway.identify_times

    @property
    def resume_payloads(self) -> list[JSON]:
        """RESUME ``d`` payloads received, token replaced by ``***``."""
        return self.gateway.resume_payloads

    @property
    def intents(self) -> int | None:
        """The intents of the latest IDENTIFY (None before the bot identified)."""
        payloads = self.gateway.identify_payloads
        value = payloads[-1].get("intents") if payloads else None
        return value if isinstance(value, int) else None

    @property
    def bot_messages(self) -> list[JSON]:
        return self.state.bot_outputs

    @property
    def typing_events(self) -> list[TypingEvent]:
        """Typing requests the bot made ("the bot is typing…"), in order."""
        return self.state.typing

    @property
    def ready_count(self) -> int:
        """Completed handshakes (READY or RESUMED)."""
        return self.gateway.ready_count

    @property
    def heartbeat_count(self) -> int:
        """Heartbeats received from the bot (each one is ACKed)."""
        return len(self.gateway.heartbeats)

    @property
    def nonce_duplicates(self) -> int:
        """Message creates that repeated an enforced nonce and got the first message back."""
        return self.state.nonce_duplicates

    @property
    def interactions(self) -> list[JSON]:
        """What the bot did with each interaction (no tokens)."""
        return [rec.as_dict() for rec in self.state.interactions.values()]

    def interaction(self, interaction_id: str) -> InteractionRecord:
        return self.state.interactions[interaction_id]

    async def identified_within(self, timeout: float = 10.0) -> JSON | None:
        """The IDENTIFY answered with READY, or None if the bot has not identified within ``timeout``."""
        try:
            return await self.wait_until_identified(timeout)
        except TimeoutError:
            return None

    async def wait_until_identified(self, timeout: float = 10.0) -> JSON:
        """Wait for the bot's first IDENTIFY to be answered with READY; returns that IDENTIFY."""
        await asyncio.wait_for(self.gateway.identified.wait(), timeout)
        return self.gateway.identify_payloads[-1]

    async def wait_until_ready_count(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` handshakes (READY/RESUMED) have completed, e.g. after a reconnect."""
        async def _poll() -> None:
            while self.gateway.ready_count < count:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(_poll(), timeout)

    async def wait_for_bot_message(self, channel_id: str | None = None, after: str | None = None,
                                   timeout: float = 10.0) -> JSON:
        """The first bot output (message, interaction response or edit) with event_id > ``after``.

        Raises TimeoutError if none comes within ``timeout`` seconds.
        """
        found = await self.state.wait_for_bot_output(channel_id, after, timeout)
        if found is None:
            raise TimeoutError(f"no bot message in channel {channel_id or 'any'} after {after} within {timeout}s")
        return found

    async def wait_for_typing(self, channel_id: str | None = None, since: float = 0.0,
                              timeout: float = 10.0) -> TypingEvent | None:
        """The bot's first typing request in ``channel_id`` at or after monotonic ``since``; None if none
        comes within ``timeout`` seconds."""
        return await self.state.wait_for_typing(channel_id, since, timeout)

    async def bot_messages_after(self, channel_id: str | None = None, after: str | None = None,
                                 timeout: float = 0.0) -> list[JSON]:
        """Every bot output with event_id > ``after`` (in ``channel_id``), waiting up to ``timeout`` for one."""
        await self.state.wait_for_bot_output(channel_id, after, timeout)
        after_int = int(after) if after and after.isdigit() else 0
        return [m for m in self.bot_messages
                if int(m["event_id"]) > after_int and (channel_id is None or m.get("channel_id") == channel_id)]

    # -- injecting events --------------------------------------------------------------------

    def _resolve(self, who: Sender) -> tuple[User, str, str | None]:
        """The author (created on first use), the channel (default: the guild's first) and its guild."""
        user = self.world.user(who.get("author_id") or self.world.human.id, who.get("username"),
                               who.get("global_name"))
        channel_id, guild_id = who.get("channel_id"), who.get("guild_id")
        if channel_id is None:
            guild = self.world.guilds[guild_id] if guild_id else self.world.default_guild
            return user, guild.default_channel.id, guild.id
        channel = self.world.channels.get(channel_id)
        return user, channel_id, channel.guild_id if channel else guild_id

    def send_message(self, content: str, **who: Unpack[Sender]) -> JSON:
        """Dispatch MESSAGE_CREATE from a human (default: "you"); returns the message. Call on the loop."""
        author, channel, _ = self._resolve(who)
        message = self.world.message_payload(author=author, channel_id=channel, content=content,
                                             roles=who.get("roles", ()))
        self.state.messages[message["id"]] = message
        self.gateway.dispatch("MESSAGE_CREATE", message)
        return message

    def send_interaction(self, name: str, options: Mapping[str, Any] | None = None, **who: Unpack[Sender]) -> JSON:
        """Dispatch INTERACTION_CREATE for slash command ``/name``; returns the payload (token included)."""
        user, channel, guild = self._resolve(who)
        registered = self.state.commands.get(guild, {}).get(name) or self.state.commands.get(None, {}).get(name)
        declared = {o["name"]: o.get("type", 3) for o in (registered or {}).get("options", [])}
        data: JSON = {
            "id": registered["id"] if registered else self.ids.next(),
            "name": name,
            "type": 1,
            "options": [{"name": k, "type": declared.get(k, option_type(v)), "value": v}
                        for k, v in (options or {}).items()],
        }
        interaction_id = self.ids.next()
        token = self.state.new_interaction_token()
        payload = self.world.interaction_payload(interaction_id=interaction_id, token=token, data=data,
                                                 channel_id=channel, guild_id=guild, user=user,
                                                 roles=who.get("roles", ()))
        over_http = self.http_delivery.url is not None  # an Interactions Endpoint URL replaces the gateway
        dispatch = Dispatch("INTERACTION_CREATE", payload) if over_http else \
            self.gateway.dispatch("INTERACTION_CREATE", payload)
        record = self.state.interactions[interaction_id] = InteractionRecord(
            id=interaction_id, token=token, application_id=self.world.application_id,
            channel_id=channel, payload=payload, dispatch=dispatch)
        if over_http:
            self.http_delivery.deliver(record)
        return payload

    async def set_interactions_endpoint(self, url: str | None) -> None:
        """Deliver interactions to ``url`` over signed HTTP (None: over the gateway), after
        verifying it as Discord does when the URL is saved. Raises EndpointRejected."""
        await self.http_delivery.set_endpoint(url)

    @property
    def public_key(self) -> str:
        """The application's Ed25519 public key, hex: the bot's DISCORD_PUBLIC_KEY."""
        return self.http_delivery.public_key

    # -- faults ------------------------------------------------------------------------------

    def inject_rest_fault(self, route: str, status: int = 429, count: int = 1, *, retry_after: float = 0.2,
                          global_: bool = False, delay: float = 0.0) -> RestFault:
        """Answer the next ``count`` requests matching ``route`` ("POST /channels/{channel_id}/messages",
        a concrete path, or "*") with ``status`` (0 = normal answer) after ``delay`` seconds."""
        fault = RestFault(route, status, count, retry_after=retry_after, global_=global_, delay=delay)
        self.rest.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.rest.faults.clear()

    async def drop_connection(self, code: int | None = 4000, shard_id: int = 0, hold_s: float = 0.0) -> bool:
        """Close shard ``shard_id``'s socket (code None: abruptly); its next handshake waits ``hold_s``."""
        return await self.gateway.drop_connection(code, shard_id, hold_s)

    async def send_reconnect(self, shard_id: int = 0) -> bool:
        return await self.gateway.send_reconnect(shard_id)

    async def send_invalid_session(self, resumable: bool, shard_id: int = 0) -> bool:
        return await self.gateway.send_invalid_session(resumable, shard_id)
