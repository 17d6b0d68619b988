"""!mc against the RCON stand-in (localdev/rcon_server.py): flags, whitelist, long answers, faults."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from command_functions import mc
from function_runtime import rcon
from function_runtime.errors import UsageError
from localdev.rcon_server import HELP_LINES, RconStandIn
from shared import telemetry
from shared.settings import Secret, Settings, StorageSettings, load_settings
from tests.command_functions.stub_apis import make_ctx

BOTH = {"mc": True, "mc-admin": True}


@pytest.fixture
def server() -> Iterator[RconStandIn]:
    with RconStandIn(password="s3cret-pw") as stand_in:
        yield stand_in


def settings_for(server: RconStandIn, password: str | None = None) -> Settings:
    return Settings(storage=StorageSettings(), minecraft_rcon_address=(server.host, server.port),
                    minecraft_rcon_password=Secret(password or server.password))


def rcon_span(spans: InMemorySpanExporter) -> ReadableSpan:
    telemetry.flush(1000)  # spans are held until the first flush, as an invocation's end does
    return [s for s in spans.get_finished_spans() if s.name == "minecraft.rcon"][-1]


def run(settings: Settings, args: str, flags: dict[str, bool] | None = None) -> str:
    with trace.get_tracer(__name__).start_as_current_span("mc"):  # as the wrapper runs it (orphan CLIENTs are dropped)
        return mc.handle(make_ctx("mc", args, settings, flags=BOTH if flags is None else flags))


def test_whitelist_add_list_remove(server: RconStandIn, spans: InMemorySpanExporter) -> None:
    settings = settings_for(server)
    user = {"mc": True}
    assert run(settings, "whitelist add Steve", user) == "Added Steve to the whitelist"
    assert run(settings, "whitelist add Alex_2", user) == "Added Alex_2 to the whitelist"
    assert run(settings, "whitelist list", user) == "There are 2 whitelisted player(s): Steve, Alex_2"
    assert run(settings, "WHITELIST remove steve", user) == "Removed steve from the whitelist"
    assert server.whitelist == ["Alex_2"]
    span = rcon_span(spans)
    assert span.kind is SpanKind.CLIENT
    assert span.attributes is not None
    assert span.attributes["server.address"] == "127.0.0.1" and span.attributes["server.port"] == server.port
    assert span.attributes["app.mc.subcommand"] == "whitelist remove"
    assert span.status.status_code is not StatusCode.ERROR


def test_other_commands_need_mc_admin(server: RconStandIn) -> None:
    settings = settings_for(server)
    assert "needs the `mc-admin` permission" in run(settings, "op Steve", {"mc": True})
    assert "needs the `mc` permission" in run(settings, "whitelist add Steve", {"mc-admin": True})
    assert server.commands == []
    assert run(settings, "list", {"mc-admin": True}) == "There are 0 of a max of 20 players online:"
    assert run(settings, "/say hello @everyone", BOTH) == "(the server answered with nothing)"
    assert server.commands == ["list", "say hello @everyone"]


def test_long_answer_arrives_in_several_packets(server: RconStandIn, spans: InMemorySpanExporter) -> None:
    reply = run(settings_for(server), "/help")  # `!mc help` is the bot's usage
    assert reply == "\n".join(HELP_LINES)
    span = rcon_span(spans)
    assert span.attributes is not None and span.attributes["app.mc.response.packets"] >= 2


def test_small_split_still_reassembles(server: RconStandIn) -> None:
    server.split_at = 7
    assert run(settings_for(server), "whitelist add Notch") == "Added Notch to the whitelist"


@pytest.mark.parametrize("args", ["", "help", "whitelist", "whitelist add", "whitelist kick Steve",
                                  "whitelist add Ste ve", "whitelist add <@123>", "whitelist list extra"])
def test_bad_arguments_get_the_usage(server: RconStandIn, args: str) -> None:
    with pytest.raises(UsageError):
        run(settings_for(server), args)
    assert server.commands == []


def test_not_configured() -> None:
    reply = run(Settings(storage=StorageSettings()), "whitelist list")
    assert "not configured" in reply and "MINECRAFT_RCON_ADDRESS" in reply


def error_reply(settings: Settings, spans: InMemorySpanExporter, kind: str) -> str:
    reply = run(settings, "whitelist add Steve")
    span = rcon_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == kind
    for finished in spans.get_finished_spans():  # (rcon_span flushed them)  # the password is never on a span
        assert "s3cret-pw" not in str(dict(finished.attributes or {})) + str(finished.status.description)
    assert "s3cret-pw" not in reply
    return reply


def test_refused_connection(server: RconStandIn, spans: InMemorySpanExporter) -> None:
    server.close()
    time.sleep(0.05)
    assert "could not connect" in error_reply(settings_for(server), spans, "connection_refused")


def test_wrong_password(server: RconStandIn, spans: InMemorySpanExporter) -> None:
    reply = error_reply(settings_for(server, password="wrong"), spans, "auth_failed")
    assert "refused the RCON password" in reply
    assert server.commands == []


def test_silent_server_times_out(server: RconStandIn, spans: InMemorySpanExporter,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server.fault = "silence"
    monkeypatch.setattr(rcon, "TIMEOUT_S", 0.5)
    started = time.monotonic()
    reply = error_reply(settings_for(server), spans, "timeout")
    assert time.monotonic() - started < 2
    assert "did not answer" in reply


def test_invalid_utf8_answer(server: RconStandIn, spans: InMemorySpanExporter) -> None:
    server.fault = "invalid_utf8"
    reply = error_reply(settings_for(server), spans, "invalid_utf8")
    assert "not valid UTF-8" in reply and "\ufffd" in reply


def test_wire_format_matches_the_protocol() -> None:
    packet = rcon.encode_packet(7, rcon.SERVERDATA_AUTH, "pw")
    assert packet == struct.pack("<iii", 12, 7, 3) + b"pw\x00\x00"


def test_server_closing_mid_answer_is_a_protocol_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            conn.recv(100)
            conn.sendall(rcon.encode_packet(1, rcon.SERVERDATA_AUTH_RESPONSE, ""))
            conn.close()

        threading.Thread(target=serve, daemon=True).start()
        with pytest.raises(rcon.RconError):  # closed or reset, depending on timing
            rcon.execute("127.0.0.1", port, "pw", "list", timeout=2)


def test_settings_parse_the_address() -> None:
    loaded = load_settings({"MINECRAFT_RCON_ADDRESS": "[::1]:25575", "MINECRAFT_RCON_PASSWORD": "x"},
                           require_storage=False)
    assert loaded.minecraft_rcon_address == ("::1", 25575)
    assert repr(loaded.minecraft_rcon_password) == "Secret('***')"
    with pytest.raises(Exception, match="MINECRAFT_RCON_ADDRESS"):
        load_settings({"MINECRAFT_RCON_ADDRESS": "mc.example.com"}, require_storage=False)
    assert replace(loaded, minecraft_rcon_address=None).minecraft_rcon_address is None
