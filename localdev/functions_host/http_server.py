"""HTTP triggers for the local Functions host, served as Core Tools serves them.

Each HTTP-triggered function of the app answers at ``http://127.0.0.1:<FUNCTIONS_HTTP_PORT>/api/<route>``
(port 7071 by default, host.json ``extensions.http.routePrefix`` honoured). The function
receives the same ``func.HttpRequest`` the Python worker builds (method, url, headers,
query params, route params, raw body) and returns a ``func.HttpResponse`` (or a str, as
the worker allows). Like Core Tools, the local host does not check function keys: every
auth level is served as anonymous. A function that raises answers 500, as the real host does.

A host that runs no HTTP-triggered function opens no port.
"""

from __future__ import annotations

import errno
import inspect
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web

from localdev.functions_host.invoke import Invoker
from shared.errors import SettingsError

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request size limit
_ROUTE_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^{}?]*)?(\??)\}")


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str  # the route template without the prefix, e.g. "interactions" or "items/{id}"
    methods: frozenset[str]  # empty: every method
    arg_name: str  # the parameter that receives the HttpRequest
    func: Callable[..., Any]
    is_async: bool
    wants_context: bool


def http_functions(functions: Sequence[Any]) -> list[HttpFunction]:
    """The HTTP-triggered functions among ``app.get_functions()``'s result."""
    found = []
    for function in functions:
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        name = function.get_function_name() or "?"
        user_func = function.get_user_function()
        methods = getattr(trigger, "methods", None) or []
        found.append(HttpFunction(
            name=name,
            route=str(getattr(trigger, "route", None) or name).strip("/"),
            methods=frozenset(str(getattr(m, "value", m)).upper() for m in methods),
            arg_name=trigger.name,
            func=user_func,
            is_async=inspect.iscoroutinefunction(user_func),
            wants_context="context" in inspect.signature(user_func).parameters and trigger.name != "context",
        ))
    return found


def aiohttp_path(prefix: str, route: str) -> str:
    """``items/{id:int}`` -> ``/api/items/{id}``; ``{*rest}`` catches the remaining path."""
    def convert(match: re.Match[str]) -> str:
        catch_all, name, optional = match.groups()
        if optional:
            raise SettingsError(f"route {route!r}: optional route parameters are not supported locally")
        return f"{{{name}:.*}}" if catch_all else f"{{{name}}}"

    path = _ROUTE_PARAM.sub(convert, route)
    return "/" + "/".join(p for p in (prefix.strip("/"), path) if p)


def to_request(request: web.Request, body: bytes) -> func.HttpRequest:
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        params=dict(request.query),
        route_params=dict(request.match_info),
        body=body,
    )


def to_response(result: object) -> web.Response:
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-length"}
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    if isinstance(result, str | bytes):
        return web.Response(status=200, body=result if isinstance(result, bytes) else result.encode("utf-8"))
    if result is None:
        return web.Response(status=204)
    raise TypeError(f"an HTTP function returned {type(result).__name__}, expected func.HttpResponse")


class HttpServer:
    """The host's HTTP listener: one aiohttp route per HTTP-triggered function."""

    def __init__(self, invokers: Sequence[tuple[HttpFunction, Invoker]], port: int, *,
                 host: str = "127.0.0.1", route_prefix: str = "api") -> None:
        self._invokers = list(invokers)
        self.port = port
        self.host = host
        self.route_prefix = route_prefix
        self._runner: web.AppRunner | None = None

    @property
    def running_threads(self) -> int:
        return sum(invoker.running_threads for _, invoker in self._invokers)

    def urls(self) -> list[str]:
        """Core Tools' start-up listing: ``name: [POST] http://127.0.0.1:7071/api/route``."""
        out = []
        for fn, _ in self._invokers:
            methods = ",".join(sorted(fn.methods)) or "GET,POST,..."
            path = aiohttp_path(self.route_prefix, fn.route)
            out.append(f"{fn.name}: [{methods}] http://{self.host}:{self.port}{path}")
        return out

    async def start(self) -> None:
        """Bind the port. Raises SettingsError naming FUNCTIONS_HTTP_PORT when it is taken."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for fn, invoker in self._invokers:
            path = aiohttp_path(self.route_prefix, fn.route)
            for method in sorted(fn.methods) or ["*"]:
                app.router.add_route(method, path, self._handler(fn, invoker))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise SettingsError(f"FUNCTIONS_HTTP_PORT: port {self.port} on {self.host} is already in use "
                                    "(another host running? set FUNCTIONS_HTTP_PORT to a free port)") from None
            raise SettingsError(f"FUNCTIONS_HTTP_PORT: cannot listen on {self.host}:{self.port} ({exc})") from None
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []  # aiohttp has no public bound-port accessor
        if sockets:
            self.port = int(sockets[0].getsockname()[1])  # the real one when FUNCTIONS_HTTP_PORT is 0

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _handler(self, fn: HttpFunction, invoker: Invoker) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                result = await invoker(to_request(request, body))
                return to_response(result)
            except Exception:
                _log.exception("function %s failed (HTTP 500)", fn.name)
                return web.Response(status=500)

        return handle
