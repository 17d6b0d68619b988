"""HTTP triggers in the local Functions host: served at /api/<route> with the worker's request/response types."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from localdev.azurite import free_port
from localdev.functions_host import FunctionsHost, parse_host_config
from localdev.functions_host.http_server import aiohttp_path
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, Settings
from tests.localdev.probe_support import PROBE_APP, Probe, worker_alive
from tests.localdev.test_functions_host import FAST, running


@pytest.fixture
def http_settings(settings: Settings) -> Settings:
    return replace(settings, functions_http_port=free_port())


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_http_function_gets_the_workers_request_and_its_response_is_served(
    http_settings: Settings, queue_names: Iterator[str], probe: Probe
) -> None:
    port = http_settings.functions_http_port
    env = probe.env(http_settings, queue=next(queue_names), PROBE_HTTP="1")
    async with running(env, http_settings) as host, aiohttp.ClientSession() as client:
        assert [f.name for f in host.http_functions] == ["echo", "boom", "json"]
        assert [f.name for f in host.functions] == ["fn"]
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
    [req] = probe.calls
    assert req["fn"] == "echo"
    assert req["method"] == "POST" and req["url"] == url
    assert req["params"] == {"x": "1"} and req["route_params"] == {"item_id": "42"}
    assert req["x_test"] == "yes"  # looked up as X-Test: case-insensitive, as the worker's
    assert base64.b64decode(req["body_b64"]) == b"\x00body"
    assert not _listening(port)  # stopped with the host


async def test_a_json_response_is_served_with_its_mimetype_as_content_type(
    http_settings: Settings, probe: Probe
) -> None:
    port = http_settings.functions_http_port
    async with (
        running(probe.env(http_settings, PROBE_HTTP="1"), http_settings),
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{port}/api/json?q=cats") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].split(";")[0].strip() == "application/json"
        assert await response.json() == {"ok": True, "q": "cats"}  # aiohttp checks the type too


async def test_a_host_without_http_functions_opens_no_port(
    http_settings: Settings, queue_names: Iterator[str], probe: Probe
) -> None:
    async with running(probe.env(http_settings, queue=next(queue_names)), http_settings) as host:
        assert host.http is None
        assert not _listening(http_settings.functions_http_port)


async def test_a_taken_port_stops_start_up_naming_the_setting(http_settings: Settings, probe: Probe) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", http_settings.functions_http_port))
        taken.listen()
        host = FunctionsHost(PROBE_APP, http_settings, FAST, worker_env=probe.env(http_settings, PROBE_HTTP="1"))
        with pytest.raises(SettingsError, match="FUNCTIONS_HTTP_PORT"):
            await host.start()
        await host.stop()
    assert not worker_alive(host.channel.pid)


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


async def test_port_zero_means_any_free_port_and_is_reported(settings: Settings, probe: Probe,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    any_port = replace(settings, functions_http_port=0)
    async with running(probe.env(any_port, PROBE_HTTP="1"), any_port) as host:
        assert host.http is not None and host.http.port > 0
        assert _listening(host.http.port)
        assert f"http://127.0.0.1:{host.http.port}/api/items/{{item_id}}" in caplog.text
