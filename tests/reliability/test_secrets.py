"""Secrets never leave: the whole bot with every exporter on, scanned for the bot token, the
storage account key and interaction tokens.

Listener and host export to a local OTLP/protobuf receiver AND a local Azure Monitor
(/v2.1/track) receiver AND the local trace file; a prefix command and a slash command
(which carries an interaction token through the queue) run end to end. Then every
exported span and log record (OTLP /v1/logs, App Insights traces), every log line and the
trace file are searched.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from localdev.azurite import ACCOUNT_KEY, Azurite
from tests.reliability.conftest import Sinks
from tests.reliability.harness import Stack, running_stack
from tests.shared.test_exporters import Receiver, decode_otlp

pytestmark = pytest.mark.e2e


def _interaction_edit(stack: Stack, after: str) -> dict:
    while (out := stack.emulator.wait_for_bot_message(after=after, timeout=60))["event_kind"] != "interaction_edit":
        after = out["event_id"]
    return out


def test_no_secret_in_any_span_log_or_trace_file(
    azurite: Azurite, tmp_path: Path, receivers: Sinks
) -> None:
    otlp, azmon = receivers.otlp, receivers.azmon
    with running_stack(azurite, tmp_path) as stack:
        env = receivers.env(stack.trace_file)
        host = stack.start_host(env=env)
        listener = stack.start_listener(env=env)
        stack.say("!help")
        stack.say("!ping @everyone")
        tokens = []
        for _ in range(2):
            payload = stack.emulator.send_interaction("ping")
            tokens.append(payload["token"])
            assert _interaction_edit(stack, payload["id"])["content"] == "pong"
        listener.stop()
        host.stop()  # both flush on the way out

    secrets = {"bot token": stack.emulator.token, "account key": ACCOUNT_KEY,
               **{f"interaction token {i}": t for i, t in enumerate(tokens)}}
    span_requests = Receiver(requests=[r for r in otlp.requests if r.path == "/v1/traces"])
    log_requests = [r for r in otlp.requests if r.path == "/v1/logs"]
    otlp_text = [str(msg) for msg in decode_otlp(span_requests)]
    otlp_text += [r.payload().decode("latin-1") for r in otlp.requests]
    for req in log_requests:  # the exported Python log records (shared/telemetry_logs.py)
        logs = ExportLogsServiceRequest()
        logs.ParseFromString(req.payload())
        otlp_text.append(str(logs))
    azmon_text = [gzip.decompress(r.body).decode() if r.body[:2] == b"\x1f\x8b" else r.body.decode()
                  for r in azmon.requests]
    sources = {
        "otlp": "\n".join(otlp_text),
        "azure monitor": "\n".join(azmon_text),
        "listener log": stack.log("listener.log"),
        "host log": stack.log("host.log"),
        "trace file": stack.trace_file.read_text(),
    }
    # Not vacuous: every sink saw both services and the slash command.
    for name, text in sources.items():
        assert text, f"{name} is empty"
    for name in ("otlp", "azure monitor", "trace file"):
        assert "discord.command" in sources[name] and "cmd-ping process" in sources[name], name
        assert "discord-bot-listener" in sources[name] and "discord-bot-functions" in sources[name], name
    assert '"app.trigger": "slash"' in sources["trace file"]
    # The log records went to every sink too (INFO and above from both processes), scanned like the spans.
    assert log_requests, "no OTLP log records: the log scan would be vacuous"
    assert '"type": "log"' in sources["trace file"] and "MessageData" in sources["azure monitor"]
    leaks = [(what, where) for what, secret in secrets.items() for where, text in sources.items() if secret in text]
    assert leaks == []
