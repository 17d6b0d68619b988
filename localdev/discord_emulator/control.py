"""HTTP control API under ``/_emulator``: the same powers as the Python API, as JSON.

For tests and tools in another process than the emulator (the listener runs in a
subprocess; ``python -m localdev``'s chat prompt talks to the emulator over HTTP).

    GET    /_emulator                       urls, ids, guilds
    POST   /_emulator/messages              {"content", "author_id"?, "username"?, "channel_id"?, "guild_id"?, "roles"?}
    POST   /_emulator/interactions          {"name", "options"?: {name: value}, "author_id"?, ...}
    GET    /_emulator/interactions          what the bot did with each interaction (no tokens)
    GET    /_emulator/requests[?invalid=1]  recorded REST requests
    GET    /_emulator/bot-messages?after=<id>&channel_id=&timeout=<s>   long-poll; {"messages": [...]}
    GET    /_emulator/identify              IDENTIFY payloads (token masked)
    GET    /_emulator/wait-identified?timeout=<s>
    POST   /_emulator/faults                {"route", "status", "count"?, "retry_after"?, "global"?, "delay"?}
    DELETE /_emulator/faults
    POST   /_emulator/gateway/drop          {"code"?: int | null}
    POST   /_emulator/gateway/reconnect
    POST   /_emulator/gateway/invalid-session {"resumable": bool}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from localdev.discord_emulator.models import JSON

if TYPE_CHECKING:
    from localdev.discord_emulator.emulator import DiscordEmulator

PREFIX = "/_emulator"
MAX_POLL_S = 60.0


def info(emu: DiscordEmulator) -> JSON:
    return {
        "base_url": emu.base_url,
        "api_url": emu.api_url,
        "gateway_url": emu.gateway_url,
        "application_id": emu.application_id,
        "bot_user_id": emu.bot_user_id,
        "human_user_id": emu.human_user_id,
        "guild_id": emu.guild_id,
        "channel_id": emu.channel_id,
        "guild_count": len(emu.world.guilds),
        "identified": emu.gateway.identified.is_set(),
        "ready_count": emu.ready_count,
    }


async def _body(request: web.Request) -> JSON:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return data


def _timeout(request: web.Request, default: float) -> float:
    try:
        return min(max(float(request.query.get("timeout", default)), 0.0), MAX_POLL_S)
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "timeout must be a number"}',
                                 content_type="application/json") from None


def _str_or_none(doc: JSON, key: str) -> str | None:
    value = doc.get(key)
    return None if value is None else str(value)


def add_routes(app: web.Application, emu: DiscordEmulator) -> None:
    async def get_info(request: web.Request) -> web.Response:
        return web.json_response(info(emu))

    async def post_message(request: web.Request) -> web.Response:
        doc = await _body(request)
        if not isinstance(doc.get("content"), str):
            raise web.HTTPBadRequest(text='{"error": "content (string) is required"}', content_type="application/json")
        message = emu.send_message(
            doc["content"], author_id=_str_or_none(doc, "author_id"), username=_str_or_none(doc, "username"),
            global_name=_str_or_none(doc, "global_name"), channel_id=_str_or_none(doc, "channel_id"),
            guild_id=_str_or_none(doc, "guild_id"), roles=[str(r) for r in doc.get("roles") or []])
        return web.json_response(message)

    async def post_interaction(request: web.Request) -> web.Response:
        doc = await _body(request)
        if not isinstance(doc.get("name"), str):
            raise web.HTTPBadRequest(text='{"error": "name (string) is required"}', content_type="application/json")
        options: Any = doc.get("options") or {}
        payload = emu.send_interaction(
            doc["name"], options if isinstance(options, dict) else {}, author_id=_str_or_none(doc, "author_id"),
            username=_str_or_none(doc, "username"), channel_id=_str_or_none(doc, "channel_id"),
            guild_id=_str_or_none(doc, "guild_id"), roles=[str(r) for r in doc.get("roles") or []])
        return web.json_response(payload)

    async def get_interactions(request: web.Request) -> web.Response:
        return web.json_response([rec.as_dict() for rec in emu.state.interactions.values()])

    async def get_requests(request: web.Request) -> web.Response:
        records = emu.invalid_requests if request.query.get("invalid") in ("1", "true") else emu.requests
        return web.json_response([r.as_dict() for r in records])

    async def get_bot_messages(request: web.Request) -> web.Response:
        after = request.query.get("after") or None
        channel_id = request.query.get("channel_id") or None
        await emu.state.wait_for_bot_output(channel_id, after, _timeout(request, 0.0))
        after_int = int(after) if after and after.isdigit() else 0
        found = [m for m in emu.bot_messages
                 if int(m["event_id"]) > after_int and (channel_id is None or m.get("channel_id") == channel_id)]
        return web.json_response({"messages": found})

    async def get_identify(request: web.Request) -> web.Response:
        return web.json_response(emu.identify_payloads)

    async def wait_identified(request: web.Request) -> web.Response:
        try:
            await emu.wait_until_identified(_timeout(request, 10.0))
        except TimeoutError:
            return web.json_response({"identified": False}, status=408)
        return web.json_response({"identified": True, "identify": emu.identify_payloads[-1]})

    async def post_fault(request: web.Request) -> web.Response:
        doc = await _body(request)
        try:
            fault = emu.inject_rest_fault(
                str(doc["route"]), int(doc.get("status", 429)), int(doc.get("count", 1)),
                retry_after=float(doc.get("retry_after", 0.2)), global_=bool(doc.get("global", False)),
                delay=float(doc.get("delay", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f'{{"error": "bad fault: {type(exc).__name__}"}}',
                                     content_type="application/json") from None
        return web.json_response(fault.as_dict())

    async def delete_faults(request: web.Request) -> web.Response:
        emu.clear_faults()
        return web.json_response({"cleared": True})

    async def gateway_drop(request: web.Request) -> web.Response:
        doc = await _body(request)
        code = doc.get("code", 4000)
        return web.json_response({"done": await emu.drop_connection(None if code is None else int(code))})

    async def gateway_reconnect(request: web.Request) -> web.Response:
        return web.json_response({"done": await emu.send_reconnect()})

    async def gateway_invalid_session(request: web.Request) -> web.Response:
        doc = await _body(request)
        return web.json_response({"done": await emu.send_invalid_session(bool(doc.get("resumable", False)))})

    app.router.add_get(PREFIX, get_info)
    app.router.add_post(f"{PREFIX}/messages", post_message)
    app.router.add_post(f"{PREFIX}/interactions", post_interaction)
    app.router.add_get(f"{PREFIX}/interactions", get_interactions)
    app.router.add_get(f"{PREFIX}/requests", get_requests)
    app.router.add_get(f"{PREFIX}/bot-messages", get_bot_messages)
    app.router.add_get(f"{PREFIX}/identify", get_identify)
    app.router.add_get(f"{PREFIX}/wait-identified", wait_identified)
    app.router.add_post(f"{PREFIX}/faults", post_fault)
    app.router.add_delete(f"{PREFIX}/faults", delete_faults)
    app.router.add_post(f"{PREFIX}/gateway/drop", gateway_drop)
    app.router.add_post(f"{PREFIX}/gateway/reconnect", gateway_reconnect)
    app.router.add_post(f"{PREFIX}/gateway/invalid-session", gateway_invalid_session)
