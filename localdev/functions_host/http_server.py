"""HTTP triggers for the local Functions host, served as Core Tools serves them.

Each HTTP-triggered function of the app answers at ``http://127.0.0.1:<FUNCTIONS_HTTP_PORT>/api/<route>``
(port 7071 by default, host.json ``extensions.http.routePrefix`` honoured). The request goes to the
worker as an ``RpcHttp`` (method, url, headers, query, route params, raw body), as the real host
sends it; the worker library builds the ``func.HttpRequest`` and turns the function's
``func.HttpResponse`` into the ``RpcHttp`` answer (status, headers with ``Content-Type``, body),
which is served as it is. Like Core Tools, the local host does not check function keys: every
auth level is served as anonymous. A function that raises answers 500, as the real host does.

A host that runs no HTTP-triggered function opens no port.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from localdev.functions_host.invoke import Invoker
from localdev.functions_host.triggers import HttpFunction
from localdev.functions_rpc import protos
from shared.errors import SettingsError

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request size limit
_ROUTE_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^{}?]*)?(\??)\}")
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection"})


def aiohttp_path(prefix: str, route: str) -> str:
    """``items/{id:int}`` -> ``/api/items/{id}``; ``{*rest}`` catches the remaining path."""
    def convert(match: re.Match[str]) -> str:
        catch_all, name, optional = match.groups()
        if optional:
            raise SettingsError(f"route {route!r}: optional route parameters are not supported locally")
        return f"{{{name}:.*}}" if catch_all else f"{{{name}}}"

    path = _ROUTE_PARAM.sub(convert, route)
    return "/" + "/".join(p for p in (prefix.strip("/"), path) if p)


def to_request(request: web.Request, body: bytes) -> Any:
    """The ``TypedData`` holding the ``RpcHttp`` request the worker receives."""
    p = protos()
    return p.TypedData(http=p.RpcHttp(
        method=request.method,
        url=str(request.url),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=p.TypedData(bytes=body),
        params=dict(request.match_info),
        query=dict(request.query),
    ))


def _body(data: Any) -> bytes:
    kind = data.WhichOneof("data") if data is not None else None
    if kind in ("bytes", "stream"):
        return bytes(getattr(data, kind))
    if kind in ("string", "json"):
        return str(getattr(data, kind)).encode("utf-8")
    if kind in ("int", "double"):
        return str(getattr(data, kind)).encode("utf-8")
    return b""


def to_response(result: Any) -> web.Response:
    """The worker's return value (``TypedData``) as the HTTP answer."""
    kind = result.WhichOneof("data") if result is not None else None
    if kind is None:
        return web.Response(status=204)
    if kind != "http":  # a str/bytes return value: the real host answers 200 with it
        return web.Response(status=200, body=_body(result))
    http = result.http
    headers = {k: v for k, v in http.headers.items() if k.lower() not in _HOP_BY_HOP}
    return web.Response(status=int(http.status_code or 200), body=_body(http.body), headers=headers)


class HttpServer:
    """The host's HTTP listener: one aiohttp route per HTTP-triggered function."""

    def __init__(self, invokers: Sequence[tuple[HttpFunction, Invoker]], port: int, *,
                 host: str = "127.0.0.1", route_prefix: str = "api") -> None:
        self._invokers = list(invokers)
        self.port = port
        self.host = host
        self.route_prefix = route_prefix
        self._runner: web.AppRunner | None = None

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
                result = await invoker(to_request(request, body), traceparent=request.headers.get("traceparent", ""))
                return to_response(result)
            except Exception:
                _log.exception("function %s failed (HTTP 500)", fn.name)
                return web.Response(status=500)

        return handle
