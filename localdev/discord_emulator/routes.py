"""The REST operations the emulator implements, keyed by (method, OpenAPI path template).

Each handler gets an already authenticated and validated request and returns
``(status, json_or_None)``. Anything the spec knows but this table does not answers
404 (and is recorded), so a bot calling an unexpected endpoint notices in tests.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from localdev.discord_emulator.gateway import Gateway
from localdev.discord_emulator.models import JSON
from localdev.discord_emulator.snowflake import iso_now
from localdev.discord_emulator.state import EmulatorState, InteractionRecord

Result = tuple[int, Any]

UNKNOWN_CHANNEL = {"message": "Unknown Channel", "code": 10003}
UNKNOWN_MESSAGE = {"message": "Unknown Message", "code": 10008}
UNKNOWN_WEBHOOK = {"message": "Unknown Webhook", "code": 10015}
UNKNOWN_INTERACTION = {"message": "Unknown interaction", "code": 10062}
ALREADY_ACKNOWLEDGED = {"message": "Interaction has already been acknowledged.", "code": 40060}
# Message fields a create/edit body may set that the emulator copies onto the message.
_MESSAGE_FIELDS = ("content", "embeds", "components", "tts", "flags", "attachments", "poll")


@dataclass
class RestContext:
    state: EmulatorState
    gateway: Gateway
    gateway_url: str
    interaction_deadline_s: float
    params: dict[str, str]
    query: dict[str, str]
    body: Any

    @property
    def json(self) -> JSON:
        return self.body if isinstance(self.body, dict) else {}


Handler = Callable[[RestContext], Awaitable[Result]]
ROUTES: dict[tuple[str, str], Handler] = {}


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES[(method, template)] = fn
        return fn

    return register


def _message_fields(body: JSON) -> JSON:
    out = {k: body[k] for k in _MESSAGE_FIELDS if body.get(k) is not None}
    out.setdefault("content", "")
    return out


# -- identity and gateway discovery ------------------------------------------------------------


@route("GET", "/users/@me")
async def get_me(ctx: RestContext) -> Result:
    return 200, {**ctx.state.world.bot.payload(), "verified": True, "mfa_enabled": False, "locale": "en-US"}


@route("GET", "/oauth2/applications/@me")
@route("GET", "/applications/@me")
async def get_application(ctx: RestContext) -> Result:
    return 200, ctx.state.world.application_payload()


@route("GET", "/gateway")
async def get_gateway(ctx: RestContext) -> Result:
    return 200, {"url": ctx.gateway_url}


@route("GET", "/gateway/bot")
async def get_gateway_bot(ctx: RestContext) -> Result:
    shards = ctx.gateway.shards
    limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": shards.max_concurrency}
    return 200, {"url": ctx.gateway_url, "shards": shards.recommended, "session_start_limit": limit}


# -- channels and messages ---------------------------------------------------------------------


@route("GET", "/channels/{channel_id}")
async def get_channel(ctx: RestContext) -> Result:
    channel = ctx.state.world.channels.get(ctx.params["channel_id"])
    return (200, channel.payload()) if channel else (404, UNKNOWN_CHANNEL)


@route("POST", "/channels/{channel_id}/typing")
async def trigger_typing(ctx: RestContext) -> Result:
    if ctx.params["channel_id"] not in ctx.state.world.channels:
        return 404, UNKNOWN_CHANNEL
    await ctx.state.add_typing(ctx.params["channel_id"])
    return 204, None


@route("POST", "/channels/{channel_id}/messages")
async def create_message(ctx: RestContext) -> Result:
    state, body = ctx.state, ctx.json
    channel_id = ctx.params["channel_id"]
    if channel_id not in state.world.channels:
        return 404, UNKNOWN_CHANNEL
    bot = state.world.bot
    nonce = body.get("nonce")
    if nonce is not None and body.get("enforce_nonce"):
        # Discord's idempotency: the same nonce again returns the first message, creates nothing.
        first = state.nonce_hit(channel_id, bot.id, str(nonce))
        if first is not None:
            return 200, first
    extra = _message_fields(body)
    content = extra.pop("content")
    if ref := body.get("message_reference"):
        # Discord answers with the reference completed (discord.py requires channel_id).
        guild_id = state.world.channels[channel_id].guild_id
        extra["message_reference"] = {"type": 0, "channel_id": ref.get("channel_id", channel_id),
                                      "message_id": ref.get("message_id"),
                                      **({"guild_id": guild_id} if guild_id else {})}
        extra["type"] = 19  # REPLY
    message = state.world.message_payload(author=bot, channel_id=channel_id, content=content, nonce=nonce, extra=extra)
    state.messages[message["id"]] = message
    if nonce is not None and body.get("enforce_nonce"):
        state.remember_nonce(channel_id, bot.id, str(nonce), message)
    await state.add_bot_output("message", message)
    ctx.gateway.dispatch("MESSAGE_CREATE", message)
    return 200, message


def _channel_message(ctx: RestContext) -> JSON | None:
    """The message the path names, if it exists in the channel the path names."""
    message = ctx.state.messages.get(ctx.params["message_id"])
    return message if message is not None and message["channel_id"] == ctx.params["channel_id"] else None


@route("GET", "/channels/{channel_id}/messages/{message_id}")
async def get_message(ctx: RestContext) -> Result:
    message = _channel_message(ctx)
    return (200, message) if message is not None else (404, UNKNOWN_MESSAGE)


@route("PATCH", "/channels/{channel_id}/messages/{message_id}")
async def edit_message(ctx: RestContext) -> Result:
    message = _channel_message(ctx)
    if message is None:
        return 404, UNKNOWN_MESSAGE
    message.update({k: ctx.json[k] for k in _MESSAGE_FIELDS if ctx.json.get(k) is not None})
    message["edited_timestamp"] = iso_now()
    await ctx.state.add_bot_output("edit", message)
    ctx.gateway.dispatch("MESSAGE_UPDATE", message)
    return 200, message


# -- interactions ------------------------------------------------------------------------------


def _live_interaction(ctx: RestContext, rec: InteractionRecord | None, app_id: str) -> bool:
    return rec is not None and rec.application_id == app_id and ctx.state.interaction_token_alive(rec)


@route("POST", "/interactions/{interaction_id}/{interaction_token}/callback")
async def interaction_callback(ctx: RestContext) -> Result:
    state, body = ctx.state, ctx.json
    rec = state.interactions.get(ctx.params["interaction_id"])
    if rec is None or not state.token_matches(rec, ctx.params["interaction_token"]):
        return 404, UNKNOWN_INTERACTION
    if rec.callback is not None:
        return 400, ALREADY_ACKNOWLEDGED
    delay = time.monotonic() - (rec.dispatch.sent_at or rec.dispatch.created)
    if delay > ctx.interaction_deadline_s:
        # Discord forgets an interaction nobody acknowledged within 3 seconds.
        rec.callback_delay_s = delay
        return 404, UNKNOWN_INTERACTION
    rec.callback, rec.callback_delay_s = body, delay
    kind = body.get("type")
    raw_data = body.get("data")
    data: JSON = raw_data if isinstance(raw_data, dict) else {}
    message: JSON | None = None
    if kind in (4, 5):
        fields = _message_fields(data) if kind == 4 else {"content": "", "flags": 128 | (data.get("flags") or 0)}
        content = str(fields.pop("content"))
        fields["interaction_metadata"] = {"id": rec.id, "type": 2, "user": rec.payload["member"]["user"],
                                          "authorizing_integration_owners": {}}
        fields["webhook_id"] = rec.application_id
        message = state.world.message_payload(author=state.world.bot, channel_id=rec.channel_id,
                                              content=content, extra=fields)
        message["type"] = 20  # CHAT_INPUT_COMMAND
        rec.original = message
        state.messages[message["id"]] = message
        if kind == 4:
            await state.add_bot_output("interaction_response", message, interaction_id=rec.id)
        ctx.gateway.dispatch("MESSAGE_CREATE", message)
    if ctx.query.get("with_response", "").lower() not in ("1", "true"):
        return 204, None
    callback = {
        "interaction": {"id": rec.id, "type": 2, "response_message_id": message["id"] if message else None,
                        "response_message_loading": kind == 5, "response_message_ephemeral": False},
        "resource": {"type": kind, **({"message": message} if message else {})},
    }
    return 200, callback


@route("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/@original")
async def get_original(ctx: RestContext) -> Result:
    rec = ctx.state.interaction_by_token(ctx.params["webhook_token"])
    if not _live_interaction(ctx, rec, ctx.params["webhook_id"]) or rec is None or rec.original is None:
        return 404, UNKNOWN_WEBHOOK if rec is None else UNKNOWN_MESSAGE
    return 200, rec.original


@route("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original")
async def edit_original(ctx: RestContext) -> Result:
    rec = ctx.state.interaction_by_token(ctx.params["webhook_token"])
    if not _live_interaction(ctx, rec, ctx.params["webhook_id"]) or rec is None:
        return 404, UNKNOWN_WEBHOOK
    if rec.original is None:
        return 404, UNKNOWN_MESSAGE  # nothing to edit before the callback
    rec.edits.append(ctx.json)
    original = rec.original
    original.update({k: v for k, v in ctx.json.items() if k in _MESSAGE_FIELDS and v is not None})
    original["flags"] = (original.get("flags") or 0) & ~128  # no longer "thinking"
    original["edited_timestamp"] = iso_now()
    await ctx.state.add_bot_output("interaction_edit", original, interaction_id=rec.id)
    ctx.gateway.dispatch("MESSAGE_UPDATE", original)
    return 200, original


@route("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/@original")
async def delete_original(ctx: RestContext) -> Result:
    rec = ctx.state.interaction_by_token(ctx.params["webhook_token"])
    if not _live_interaction(ctx, rec, ctx.params["webhook_id"]) or rec is None or rec.original is None:
        return 404, UNKNOWN_WEBHOOK
    ctx.gateway.dispatch("MESSAGE_DELETE", {"id": rec.original["id"], "channel_id": rec.channel_id,
                                            "guild_id": rec.original.get("guild_id")})
    rec.original = None
    return 204, None


@route("POST", "/webhooks/{webhook_id}/{webhook_token}")
async def create_followup(ctx: RestContext) -> Result:
    rec = ctx.state.interaction_by_token(ctx.params["webhook_token"])
    if not _live_interaction(ctx, rec, ctx.params["webhook_id"]) or rec is None:
        return 404, UNKNOWN_WEBHOOK
    fields = _message_fields(ctx.json)
    content = fields.pop("content")
    fields["webhook_id"] = rec.application_id
    message = ctx.state.world.message_payload(author=ctx.state.world.bot, channel_id=rec.channel_id,
                                              content=content, extra=fields)
    ctx.state.messages[message["id"]] = message
    await ctx.state.add_bot_output("followup", message, interaction_id=rec.id)
    ctx.gateway.dispatch("MESSAGE_CREATE", message)
    return 200, message


# -- application commands ----------------------------------------------------------------------


def _command(ctx: RestContext, doc: JSON, guild_id: str | None) -> JSON:
    existing = ctx.state.commands.get(guild_id, {}).get(str(doc.get("name")))
    command = {
        "id": existing["id"] if existing else ctx.state.ids.next(),
        "application_id": ctx.state.world.application_id,
        "version": ctx.state.ids.next(),
        "type": doc.get("type") or 1,
        "name": doc.get("name"),
        "description": doc.get("description") or "",
        "options": doc.get("options") or [],
        "default_member_permissions": doc.get("default_member_permissions"),
        "dm_permission": doc.get("dm_permission", True),
        "nsfw": bool(doc.get("nsfw")),
    }
    if guild_id is not None:
        command["guild_id"] = guild_id
    return command


@route("GET", "/applications/{application_id}/commands")
@route("GET", "/applications/{application_id}/guilds/{guild_id}/commands")
async def list_commands(ctx: RestContext) -> Result:
    return 200, list(ctx.state.commands.get(ctx.params.get("guild_id"), {}).values())


@route("PUT", "/applications/{application_id}/commands")
@route("PUT", "/applications/{application_id}/guilds/{guild_id}/commands")
async def overwrite_commands(ctx: RestContext) -> Result:
    guild_id = ctx.params.get("guild_id")
    docs = ctx.body if isinstance(ctx.body, list) else []
    commands = [_command(ctx, doc, guild_id) for doc in docs if isinstance(doc, dict)]
    ctx.state.commands[guild_id] = {c["name"]: c for c in commands}
    return 200, commands


@route("POST", "/applications/{application_id}/commands")
@route("POST", "/applications/{application_id}/guilds/{guild_id}/commands")
async def create_command(ctx: RestContext) -> Result:
    guild_id = ctx.params.get("guild_id")
    command = _command(ctx, ctx.json, guild_id)
    existed = command["name"] in ctx.state.commands.get(guild_id, {})
    ctx.state.commands.setdefault(guild_id, {})[command["name"]] = command
    return (200 if existed else 201), command
