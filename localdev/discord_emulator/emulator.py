"""DiscordEmulator: the gateway, REST API and control API on one aiohttp server.

Use it in the test's own event loop (``async with DiscordEmulator() as emu``) or, for
synchronous code and subprocess-based tests, through :class:`EmulatorThread`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from localdev.discord_emulator import control, http_delivery
from localdev.discord_emulator.faults import RateLimits, RestFault
from localdev.discord_emulator.gateway import Dispatch, Gateway
from localdev.discord_emulator.http_delivery import HttpDelivery
from localdev.discord_emulator.models import ALL_PERMISSIONS, BOT_PERMISSIONS, JSON, World, member_payload
from localdev.discord_emulator.openapi import SpecValidator
from localdev.discord_emulator.rest import RestApi
from localdev.discord_emulator.snowflake import SnowflakeGenerator
from localdev.discord_emulator.state import EmulatorState, InteractionRecord, RecordedRequest

_log = logging.getLogger(__name__)

DEFAULT_TOKEN = "local-emulator-token"  # not a secret: only this emulator accepts it
DEFAULT_HEARTBEAT_MS = 41_250


def _option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5  # BOOLEAN
    if isinstance(value, int):
        return 4  # INTEGER
    if isinstance(value, float):
        return 10  # NUMBER
    return 3  # STRING


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
    ) -> None:
        self._token = token
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.ids = SnowflakeGenerator()
        self.world = World(self.ids, guild_count=guild_count, bot_name=bot_name)
        self._spec_path = spec_path
        self._heartbeat_ms = heartbeat_interval_ms
        self._interaction_deadline_s = interaction_deadline_s
        self._rate_limits = RateLimits(rate_limit, rate_limit_window_s, enforce=enforce_rate_limits)
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
                                heartbeat_interval_ms=self._heartbeat_ms)
        self._state = EmulatorState(self.world, self.ids)
        self._rest = RestApi(self._state, self._gateway, spec, token_ok=self._token_ok,
                             gateway_url=lambda: self.gateway_url, rate_limits=self._rate_limits,
                             interaction_deadline_s=self._interaction_deadline_s)
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
        return web.json_response(control.info(self))

    # -- addresses and parts -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

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
        if self._gateway is None:
            raise RuntimeError("emulator not started")
        return self._gateway

    @property
    def state(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("emulator not started")
        return self._state

    @property
    def rest(self) -> RestApi:
        if self._rest is None:
            raise RuntimeError("emulator not started")
        return self._rest

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
    def intents(self) -> int | None:
        """The intents of the latest IDENTIFY (None before the bot identified)."""
        payloads = self.gateway.identify_payloads
        value = payloads[-1].get("intents") if payloads else None
        return value if isinstance(value, int) else None

    @property
    def bot_messages(self) -> list[JSON]:
        return self.state.bot_outputs

    @property
    def ready_count(self) -> int:
        """Completed handshakes (READY or RESUMED)."""
        return self.gateway.ready_count

    def interaction(self, interaction_id: str) -> InteractionRecord:
        return self.state.interactions[interaction_id]

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

    # -- injecting events --------------------------------------------------------------------

    def _where(self, channel_id: str | None, guild_id: str | None) -> tuple[str, str | None]:
        if channel_id is None:
            guild = self.world.guilds[guild_id] if guild_id else self.world.default_guild
            return guild.default_channel.id, guild.id
        channel = self.world.channels.get(channel_id)
        return channel_id, channel.guild_id if channel else guild_id

    def send_message(
        self,
        content: str,
        *,
        author_id: str | None = None,
        username: str | None = None,
        global_name: str | None = None,
        channel_id: str | None = None,
        guild_id: str | None = None,
        roles: tuple[str, ...] | list[str] = (),
    ) -> JSON:
        """Dispatch MESSAGE_CREATE from a human (default: "you"); returns the message. Call on the loop."""
        channel, _ = self._where(channel_id, guild_id)
        author = self.world.user(author_id or self.world.human.id, username, global_name)
        message = self.world.message_payload(author=author, channel_id=channel, content=content, roles=roles)
        self.state.messages[message["id"]] = message
        self.gateway.dispatch("MESSAGE_CREATE", message)
        return message

    def send_interaction(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        author_id: str | None = None,
        username: str | None = None,
        channel_id: str | None = None,
        guild_id: str | None = None,
        roles: tuple[str, ...] | list[str] = (),
    ) -> JSON:
        """Dispatch INTERACTION_CREATE for slash command ``/name``; returns the payload (token included)."""
        channel, guild = self._where(channel_id, guild_id)
        user = self.world.user(author_id or self.world.human.id, username)
        registered = self.state.commands.get(guild, {}).get(name) or self.state.commands.get(None, {}).get(name)
        declared = {o["name"]: o.get("type", 3) for o in (registered or {}).get("options", [])}
        data: JSON = {
            "id": registered["id"] if registered else self.ids.next(),
            "name": name,
            "type": 1,
            "options": [{"name": k, "type": declared.get(k, _option_type(v)), "value": v}
                        for k, v in (options or {}).items()],
        }
        interaction_id = self.ids.next()
        token = self.state.new_interaction_token()
        payload: JSON = {
            "id": interaction_id,
            "application_id": self.world.application_id,
            "type": 2,  # APPLICATION_COMMAND
            "data": data,
            "channel_id": channel,
            "token": token,
            "version": 1,
            "app_permissions": BOT_PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        ch = self.world.channels.get(channel)
        if ch is not None:
            payload["channel"] = ch.payload()
        if guild is not None:
            data["guild_id"] = guild
            payload.update(guild_id=guild, guild_locale="en-US", context=0,
                           guild={"id": guild, "locale": "en-US", "features": []},
                           member=member_payload(user, roles, permissions=ALL_PERMISSIONS),
                           authorizing_integration_owners={"0": guild})
        else:
            payload.update(user=user.payload(), context=1, authorizing_integration_owners={"1": user.id},
                           member={"user": user.payload()})
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

    async def drop_connection(self, code: int | None = 4000) -> bool:
        return await self.gateway.drop_connection(code)

    async def send_reconnect(self) -> bool:
        return await self.gateway.send_reconnect()

    async def send_invalid_session(self, resumable: bool) -> bool:
        return await self.gateway.send_invalid_session(resumable)
