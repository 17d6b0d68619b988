"""HTTP control API under ``/_emulator``: the emulator's Python API, as JSON.

For tests and tools in another process than the emulator (the listener runs in a
subprocess; ``python -m localdev``'s chat prompt talks to the emulator over HTTP).
Each route is one row of :data:`ROUTES`: the emulator method it calls, the arguments it
takes from the JSON body (POST) or the query string (GET) and how the answer is shaped.

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
    POST   /_emulator/gateway/drop          {"code"?: int | null, "shard_id"?: int, "hold_s"?: float}
    POST   /_emulator/gateway/reconnect     {"shard_id"?: int}
    POST   /_emulator/gateway/invalid-session {"resumable": bool, "shard_id"?: int}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from localdev.discord_emulator.models import JSON

if TYPE_CHECKING:
    from localdev.discord_emulator.emulator import DiscordEmulator

PREFIX = "/_emulator"
MAX_POLL_S = 60.0
_MISSING = object()


def _error(text: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f'{{"error": "{text}"}}', content_type="application/json")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _texts(value: Any) -> list[str]:
    return [str(v) for v in value or []]


def _options(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _timeout(value: Any) -> float:
    return min(max(float(value), 0.0), MAX_POLL_S)


def _code(value: Any) -> int | None:
    return None if value is None else int(value)


def _flag(value: Any) -> bool:
    return value in (True, "1", "true")


def _as_dicts(records: Any) -> list[JSON]:
    return [r.as_dict() for r in records]


Shape = Callable[[Any], "tuple[int, Any]"]


def _ok(result: Any) -> tuple[int, Any]:
    return 200, result.as_dict() if hasattr(result, "as_dict") else result


def _done(result: Any) -> tuple[int, Any]:
    return 200, {"done": result}


@dataclass(frozen=True)
class Arg:
    """One argument: where it comes from (body/query key), how it is converted, its default."""

    key: str
    convert: Callable[[Any], Any] = _text
    default: Any = _MISSING  # missing and no default: the method's own default applies
    required: type | None = None  # the JSON type a required argument must have


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    call: Callable[[DiscordEmulator, dict[str, Any]], Any]
    args: Mapping[str, Arg] = field(default_factory=dict)  # keyword argument -> where it comes from
    shape: Shape = _ok


_WHO = {name: Arg(name) for name in ("author_id", "username", "channel_id", "guild_id")}
_ROLES = {"roles": Arg("roles", _texts)}
_SHARD = {"shard_id": Arg("shard_id", int)}

ROUTES: tuple[Route, ...] = (
    Route("GET", "", lambda emu, a: emu.info()),
    Route("POST", "/messages", lambda emu, a: emu.send_message(**a),
          {"content": Arg("content", str, required=str), "global_name": Arg("global_name"), **_WHO, **_ROLES}),
    Route("POST", "/interactions", lambda emu, a: emu.send_interaction(**a),
          {"name": Arg("name", str, required=str), "options": Arg("options", _options), **_WHO, **_ROLES}),
    Route("GET", "/interactions", lambda emu, a: emu.interactions),
    Route("GET", "/requests", lambda emu, a: _as_dicts(emu.invalid_requests if a["invalid"] else emu.requests),
          {"invalid": Arg("invalid", _flag, False)}),
    Route("GET", "/bot-messages", lambda emu, a: emu.bot_messages_after(**a),
          {"channel_id": Arg("channel_id", lambda v: v or None), "after": Arg("after", lambda v: v or None),
           "timeout": Arg("timeout", _timeout)},
          shape=lambda found: (200, {"messages": found})),
    Route("GET", "/identify", lambda emu, a: emu.identify_payloads),
    Route("GET", "/wait-identified", lambda emu, a: emu.identified_within(**a),
          {"timeout": Arg("timeout", _timeout)},
          shape=lambda found: (408, {"identified": False}) if found is None
          else (200, {"identified": True, "identify": found})),
    Route("POST", "/faults", lambda emu, a: emu.inject_rest_fault(**a),
          {"route": Arg("route", str, required=str), "status": Arg("status", int), "count": Arg("count", int),
           "retry_after": Arg("retry_after", float), "global_": Arg("global", bool), "delay": Arg("delay", float)}),
    Route("DELETE", "/faults", lambda emu, a: emu.clear_faults(), shape=lambda _: (200, {"cleared": True})),
    Route("POST", "/gateway/drop", lambda emu, a: emu.drop_connection(**a),
          {"code": Arg("code", _code), "hold_s": Arg("hold_s", float), **_SHARD}, shape=_done),
    Route("POST", "/gateway/reconnect", lambda emu, a: emu.send_reconnect(**a), _SHARD, shape=_done),
    Route("POST", "/gateway/invalid-session", lambda emu, a: emu.send_invalid_session(**a),
          {"resumable": Arg("resumable", bool, False), **_SHARD}, shape=_done),
)


async def _source(request: web.Request) -> Mapping[str, Any]:
    """Arguments come from the JSON body of a POST, from the query string otherwise."""
    if request.method != "POST":
        return request.query
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise _error("body must be JSON") from None
    if not isinstance(data, dict):
        raise _error("body must be a JSON object")
    return data


def _arguments(route: Route, source: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, arg in route.args.items():
        value = source.get(arg.key, _MISSING)
        if arg.required is not None and not isinstance(value, arg.required):
            raise _error(f"{arg.key} ({arg.required.__name__}) is required")
        if value is _MISSING:
            if arg.default is not _MISSING:
                out[name] = arg.default
            continue
        try:  # an explicit null is a value (drop {"code": null} = abrupt close)
            out[name] = arg.convert(value)
        except (TypeError, ValueError):
            raise _error(f"bad {arg.key}") from None
    return out


def add_routes(app: web.Application, emu: DiscordEmulator) -> None:
    def handler(route: Route) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            result = route.call(emu, _arguments(route, await _source(request)))
            if inspect.isawaitable(result):
                result = await result
            status, body = route.shape(result)
            return web.json_response(body, status=status)

        return handle

    for route in ROUTES:
        app.router.add_route(route.method, PREFIX + route.path, handler(route))
