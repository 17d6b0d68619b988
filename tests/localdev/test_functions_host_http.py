"""HTTP triggers in the local Functions host: served at /api/<route> with the worker's request/response types."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import azure.functions as func
import pytest

from localdev.azurite import free_port
from localdev.functions_host import FunctionsHost, parse_host_config
from localdev.functions_host.http_server import aiohttp_path
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, Settings
from tests.localdev.test_functions_host import FAST, one_function_app


def http_app(queue: str | None = None) -> tuple[func.FunctionApp, list[func.HttpRequest]]:
    seen: list[func.HttpRequest] = []
    bp = func.Blueprint()

    @bp.function_name("echo")
    @bp.route(route="items/{item_id}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen.append(req)
        return func.HttpResponse(b"got:" + req.get_body(), status_code=201,
                                 headers={"X-Item": req.route_params["item_id"]})

    @bp.function_name("boom")
    @bp.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    async def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("bug")

    if queue is not None:
        bp.function_name("q")(bp.queue_trigger(arg_name="msg", queue_name=queue,
                                               connection="AzureWebJobsStorage")(lambda msg: None))
    app = func.FunctionApp()
    app.register_functions(bp)
    return app, seen


@asynccontextmanager
async def running(app: func.FunctionApp, settings: Settings) -> AsyncIterator[FunctionsHost]:
    host = FunctionsHost(app, settings, FAST, drain_timeout=2)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


@pytest.fixture
def http_settings(settings: Settings) -> Settings:
    return replace(settings, functions_http_port=free_port())


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_http_function_gets_the_workers_request_and_its_response_is_served(
    http_settings: Settings, queue_names: Iterator[str]
) -> None:
    app, seen = http_app(next(queue_names))
    port = http_settings.functions_http_port
    async with running(app, http_settings) as host, aiohttp.ClientSession() as client:
        assert [f.name for f in host.http_functions] == ["echo", "boom"] and [f.name for f in host.functions] == ["q"]
        url = f"http://127.0.0.1:{port}/api/items/42?x=1"
        async with client.post(url, data=b"\x00body", headers={"X-Test": "yes"}) as response:
            assert response.status == 201
            assert await response.read() == b"got:\x00body"
            assert response.headers["X-Item"] == "42"
        async with client.get(url) as response:
            assert response.status == 405  # the trigger declares POST only
        async with client.get(f"http://127.0.0.1:{port}/api/boom") as response:
            assert response.status == 500  # as the real host answers a function that raised
        async with client.post(f"http://127.0.0.1:{port}/api/nothing") as response:
            assert response.status == 404
    req = seen[0]
    assert isinstance(req, func.HttpRequest)
    assert req.method == "POST" and req.url == url
    assert req.params == {"x": "1"} and req.route_params == {"item_id": "42"}
    assert req.headers["x-test"] == "yes"  # case-insensitive, as the worker's
    assert not _listening(port)  # stopped with the host


async def test_a_host_without_http_functions_opens_no_port(http_settings: Settings, queue_names: Iterator[str]) -> None:
    async with running(one_function_app(next(queue_names), lambda msg: None), http_settings) as host:
        assert host.http is None
        assert not _listening(http_settings.functions_http_port)


async def test_a_taken_port_stops_start_up_naming_the_setting(http_settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", http_settings.functions_http_port))
        taken.listen()
        host = FunctionsHost(http_app()[0], http_settings, FAST)
        with pytest.raises(SettingsError, match="FUNCTIONS_HTTP_PORT"):
            await host.start()
        await host.stop()


def test_taken_port_is_one_line_from_the_command(azurite: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "AzureWebJobsStorage": azurite.connection_string,
               "FUNCTIONS_HTTP_PORT": str(taken.getsockname()[1])}
        command = [sys.executable, "-m", "localdev.functions_host", "--app", "tests.localdev.http_sample_app:app"]
        proc = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "FUNCTIONS_HTTP_PORT" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_route_templates_and_prefix() -> None:
    assert aiohttp_path("api", "interactions") == "/api/interactions"
    assert aiohttp_path("", "items/{id:int}") == "/items/{id}"
    assert aiohttp_path("api", "files/{*rest}") == "/api/files/{rest:.*}"
    with pytest.raises(SettingsError, match="optional"):
        aiohttp_path("api", "items/{id?}")
    assert parse_host_config({"extensions": {"http": {"routePrefix": "/v1/"}}}).http_route_prefix == "v1"
    assert parse_host_config({}).http_route_prefix == "api"


async def test_port_zero_means_any_free_port_and_is_reported(settings: Settings,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    async with running(http_app()[0], replace(settings, functions_http_port=0)) as host:
        assert host.http is not None and host.http.port > 0
        assert _listening(host.http.port)
        assert f"http://127.0.0.1:{host.http.port}/api/items/{{item_id}}" in caplog.text
