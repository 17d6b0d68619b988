"""!mc against the RCON stand-in (localdev/rcon_server.py) and Azurite's table service (the commandruns
claims): flags, whitelist, long answers, faults, at most once per Discord message."""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from command_functions import mc
from function_runtime import once, rcon
from function_runtime.context import CommandContext
from function_runtime.errors import ExternalApiError, UsageError
from localdev.azurite import Azurite, free_port
from localdev.rcon_server import HELP_LINES, RconStandIn
from shared import telemetry
from shared.envelope import Envelope, Ids
from shared.registry import COMMANDS
from shared.settings import Secret, Settings, StorageSettings, load_settings

BOTH = {"mc": True, "mc-admin": True}


@pytest.fixture
def server() -> Iterator[RconStandIn]:
    with RconStandIn(password="s3cret-pw") as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def tables() -> Iterator[Azurite]:
    """Azurite's table service, for the ``commandruns`` claims (in memory, one per module)."""
    with Azurite(tables=True) as instance:
        yield instance


@pytest.fixture
def storage(tables: Azurite) -> StorageSettings:
    return StorageSettings(connection_string=Secret(tables.connection_string))


def settings_for(server: RconStandIn, storage: StorageSettings, password: str | None = None) -> Settings:
    return Settings(storage=storage, minecraft_rcon_address=(server.host, server.port),
                    minecraft_rcon_password=Secret(password or server.password))


def new_id() -> str:
    """A fresh snowflake-like id: every test's messages are new to the shared ``commandruns`` table."""
    return str(uuid.uuid4().int)[:19]


def envelope(args: str, *, message: str | None = None, interaction: str | None = None) -> Envelope:
    return Envelope(kind="interaction" if interaction else "message", command="mc", args=args,
                    ids=Ids(message=message or new_id(), channel="2000", author="3000", guild="4000",
                            interaction=interaction),
                    author_name="tester", received_at=datetime.now(UTC))


def rcon_span(spans: InMemorySpanExporter) -> ReadableSpan:
    telemetry.flush(1000)  # spans are held until the first flush, as an invocation's end does
    return [s for s in spans.get_finished_spans() if s.name == "minecraft.rcon"][-1]


def run(settings: Settings, args: str, flags: dict[str, bool] | None = None, *, env: Envelope | None = None) -> str:
    """Handle one envelope (a new message unless ``env`` is given: pass the same one to redeliver it)."""
    ctx = CommandContext(envelope=env or envelope(args), spec=COMMANDS["mc"], settings=settings,
                         http=requests.Session(), flags=BOTH if flags is None else flags, trace_id="0" * 32)
    with trace.get_tracer(__name__).start_as_current_span("mc"):  # as the wrapper runs it (orphan CLIENTs are dropped)
        return mc.handle(ctx)


def test_whitelist_add_list_remove(server: RconStandIn, storage: StorageSettings, spans: InMemorySpanExporter) -> None:
    settings = settings_for(server, storage)
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


def test_other_commands_need_mc_admin(server: RconStandIn, storage: StorageSettings) -> None:
    settings = settings_for(server, storage)
    assert "needs the `mc-admin` permission" in run(settings, "op Steve", {"mc": True})
    assert "needs the `mc` permission" in run(settings, "whitelist add Steve", {"mc-admin": True})
    assert server.commands == []
    assert run(settings, "list", {"mc-admin": True}) == "There are 0 of a max of 20 players online:"
    assert run(settings, "/say hello @everyone", BOTH) == "(the server answered with nothing)"
    assert server.commands == ["list", "say hello @everyone"]


def test_long_answer_arrives_in_several_packets(server: RconStandIn, storage: StorageSettings,
                                                spans: InMemorySpanExporter) -> None:
    reply = run(settings_for(server, storage), "/help")  # `!mc help` is the bot's usage
    assert reply == "\n".join(HELP_LINES)
    span = rcon_span(spans)
    assert span.attributes is not None and span.attributes["app.mc.response.packets"] >= 2


def test_small_split_still_reassembles(server: RconStandIn, storage: StorageSettings) -> None:
    server.split_at = 7
    assert run(settings_for(server, storage), "whitelist add Notch") == "Added Notch to the whitelist"


@pytest.mark.parametrize("args", ["", "help", "whitelist", "whitelist add", "whitelist kick Steve",
                                  "whitelist add Ste ve", "whitelist add <@123>", "whitelist list extra"])
def test_bad_arguments_get_the_usage(server: RconStandIn, storage: StorageSettings, args: str) -> None:
    with pytest.raises(UsageError):
        run(settings_for(server, storage), args)
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


def test_refused_connection(server: RconStandIn, storage: StorageSettings, spans: InMemorySpanExporter) -> None:
    server.close()
    time.sleep(0.05)
    assert "could not connect" in error_reply(settings_for(server, storage), spans, "connection_refused")


def test_wrong_password(server: RconStandIn, storage: StorageSettings, spans: InMemorySpanExporter) -> None:
    reply = error_reply(settings_for(server, storage, password="wrong"), spans, "auth_failed")
    assert "refused the RCON password" in reply
    assert server.commands == []


def test_silent_server_times_out(server: RconStandIn, storage: StorageSettings, spans: InMemorySpanExporter,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server.fault = "silence"
    monkeypatch.setattr(rcon, "TIMEOUT_S", 0.5)
    started = time.monotonic()
    reply = error_reply(settings_for(server, storage), spans, "timeout")
    assert time.monotonic() - started < 2
    assert "did not answer" in reply


def test_invalid_utf8_answer(server: RconStandIn, storage: StorageSettings, spans: InMemorySpanExporter) -> None:
    server.fault = "invalid_utf8"
    reply = error_reply(settings_for(server, storage), spans, "invalid_utf8")
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


# -- at most once per Discord message (function_runtime/once.py, the commandruns table) ------------


def command_span(spans: InMemorySpanExporter) -> ReadableSpan:
    telemetry.flush(1000)
    return [s for s in spans.get_finished_spans() if s.name == "mc"][-1]


def source_of(env: Envelope) -> str:
    return env.ids.interaction or env.ids.message


@pytest.mark.parametrize("kind", ["message", "interaction"])
def test_redelivered_envelope_sends_the_command_once(server: RconStandIn, storage: StorageSettings,
                                                     spans: InMemorySpanExporter, kind: str) -> None:
    settings = settings_for(server, storage)
    env = envelope("whitelist add Steve", interaction=new_id() if kind == "interaction" else None)
    first = run(settings, "", env=env)
    assert command_span(spans).attributes["app.mc.duplicate"] is False
    second = run(settings, "", env=env)  # the queue redelivers the same message
    assert first == "Added Steve to the whitelist"
    assert second.startswith("Already done for this message") and second.endswith("Added Steve to the whitelist")
    assert server.commands == ["whitelist add Steve"] and server.whitelist == ["Steve"]
    attributes = command_span(spans).attributes or {}
    assert attributes["app.mc.duplicate"] is True and attributes["app.mc.duplicate.state"] == "done"
    assert len([s for s in spans.get_finished_spans() if s.name == "minecraft.rcon"]) == 1  # nothing sent the 2nd time
    stored = once.runs_for(storage).get("mc", source_of(env), "whitelist add Steve")
    assert stored is not None and (stored.state, stored.answer) == ("done", "Added Steve to the whitelist")


def test_a_new_message_runs_the_same_command_again(server: RconStandIn, storage: StorageSettings) -> None:
    settings = settings_for(server, storage)
    assert run(settings, "whitelist add Steve") == "Added Steve to the whitelist"
    assert run(settings, "whitelist add Steve") == "Player is already whitelisted"
    assert server.commands == ["whitelist add Steve"] * 2


def test_read_only_commands_are_not_claimed(server: RconStandIn, storage: StorageSettings) -> None:
    settings = settings_for(server, storage)
    env = envelope("whitelist list")
    assert run(settings, "", {"mc": True}, env=env) == run(settings, "", {"mc": True}, env=env)
    assert server.commands == ["whitelist list"] * 2
    assert once.runs_for(storage).get("mc", source_of(env), "whitelist list") is None


def test_claim_left_running_is_answered_without_sending(server: RconStandIn, storage: StorageSettings,
                                                        spans: InMemorySpanExporter) -> None:
    """The first run died between sending and storing the answer: a redelivery must not send it twice."""
    env = envelope("op Steve")
    runs = once.runs_for(storage)
    runs.table().create_entity({"PartitionKey": "mc", "RowKey": once.row_key(source_of(env), "op Steve"),
                                "state": "running", "token": "crashed", "source": source_of(env),
                                "started_at": datetime.now(UTC) - timedelta(minutes=5)})
    reply = run(settings_for(server, storage), "", env=env)
    assert "already sent to the Minecraft server for this message" in reply and "answer was lost" in reply
    assert server.commands == []
    attributes = command_span(spans).attributes or {}
    assert attributes["app.mc.duplicate"] is True and attributes["app.mc.duplicate.state"] == "running"
    assert not [s for s in spans.get_finished_spans() if s.name == "minecraft.rcon"]


def test_a_copy_running_now_is_waited_for(server: RconStandIn, storage: StorageSettings) -> None:
    """Two listeners enqueued the same message: the second copy answers with the first one's answer."""
    env = envelope("whitelist add Alex")
    runs = once.runs_for(storage)
    claim = runs.claim("mc", source_of(env), "whitelist add Alex")
    assert isinstance(claim, once.Claim)
    threading.Timer(0.5, runs.finish, (claim, "Added Alex to the whitelist")).start()
    started = time.monotonic()
    reply = run(settings_for(server, storage), "", env=env)
    assert reply == "Already done for this message (not sent again):\nAdded Alex to the whitelist"
    assert 0.4 < time.monotonic() - started < 3
    assert server.commands == []


def test_two_copies_at_once_send_it_once(server: RconStandIn, storage: StorageSettings) -> None:
    """Two listeners both enqueued the message and two instances run it at the same moment."""
    settings, env = settings_for(server, storage), envelope("whitelist add Steve")
    replies: list[str] = []
    threads = [threading.Thread(target=lambda: replies.append(run(settings, "", env=env))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(replies) == 2 and all(r.endswith("Added Steve to the whitelist") for r in replies)
    assert server.commands == ["whitelist add Steve"]


@pytest.mark.parametrize("fault", ["wrong_password", "refused", "silence"])
def test_failure_before_sending_releases_the_claim(server: RconStandIn, storage: StorageSettings, fault: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rcon, "TIMEOUT_S", 0.5)
    env = envelope("whitelist add Steve")
    if fault == "refused":
        failing = settings_for(RconStandIn(port=free_port()), storage)
    else:
        server.fault = fault  # type: ignore[assignment]
        failing = settings_for(server, storage)
    assert run(failing, "", env=env).startswith("The Minecraft server could not be asked")
    assert once.runs_for(storage).get("mc", source_of(env), "whitelist add Steve") is None  # released
    server.fault = None
    assert run(settings_for(server, storage), "", env=env) == "Added Steve to the whitelist"  # a redelivery may run it
    assert server.commands == ["whitelist add Steve"] and server.whitelist == ["Steve"]


def test_no_answer_after_sending_keeps_the_claim(server: RconStandIn, storage: StorageSettings,
                                                 spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server got the command and then said nothing: it may have run it, so it is not sent again."""
    monkeypatch.setattr(rcon, "TIMEOUT_S", 0.5)
    monkeypatch.setattr(mc, "CLAIM_WAIT_MARGIN_S", 0.0)
    server.fault = "no_answer"
    settings, env = settings_for(server, storage), envelope("whitelist add Steve")
    first = run(settings, "", env=env)
    assert "was sent but the Minecraft server's answer was lost" in first
    assert rcon_span(spans).attributes["error.type"] == "timeout"
    server.fault = None
    second = run(settings, "", env=env)
    assert "already sent" in second and "not sent twice" in second
    assert server.commands == ["whitelist add Steve"]


def test_storage_down_sends_nothing(server: RconStandIn) -> None:
    from azure.core.exceptions import AzureError

    down = StorageSettings(connection_string=Secret(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"TableEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"))
    with pytest.raises(ExternalApiError, match="storage could not be reached") as caught:
        run(settings_for(server, down), "whitelist add Steve")
    assert isinstance(caught.value.__cause__, AzureError)
    assert server.commands == []
