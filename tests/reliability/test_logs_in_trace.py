"""A command's WARNING in its trace, end to end: listener and functions host as real processes, every
exporter on (local OTLP/protobuf receiver, local Azure Monitor ingestion, the local span file), a
`!catfact` whose API is down. The warning the function logs is found in the OTLP logs, in the App
Insights payload under the command's operation id, and on the explorer's waterfall under its span.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from localdev.azurite import Azurite, free_port
from localdev.explorer.aggregate import waterfall
from localdev.explorer.store import SpanFile, TraceStore
from tests.reliability.conftest import Sinks
from tests.reliability.harness import running_stack
from tests.shared.test_exporters import azure_items

pytestmark = pytest.mark.e2e


def test_a_command_s_warning_is_in_its_trace_everywhere(azurite: Azurite, tmp_path: Path,
                                                         receivers: Sinks) -> None:
    otlp, azmon = receivers.otlp, receivers.azmon
    with running_stack(azurite, tmp_path) as stack:
        # Nothing listens at the cat-fact URL: the API is down.
        env = {**receivers.env(stack.trace_file), "CATFACT_API_URL": f"http://127.0.0.1:{free_port()}/fact"}
        host = stack.start_host(env=env)
        listener = stack.start_listener(env=env)
        _, reply = stack.say("!catfact")
        match = re.search(r"Trace id: `([0-9a-f]{32})`", reply["content"])
        assert match, reply["content"]
        trace_id = match.group(1)
        listener.stop()
        host.stop()  # both flush on the way out

    # OTLP (Honeycomb, collectors): a WARN record in the trace, beside the spans.
    records = []
    for req in (r for r in otlp.requests if r.path == "/v1/logs"):
        msg = ExportLogsServiceRequest()
        msg.ParseFromString(req.payload())
        records += [r for rl in msg.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    warnings = [r for r in records if r.severity_text == "WARN" and "external API failed" in r.body.string_value]
    assert [r.trace_id.hex() for r in warnings] == [trace_id]

    # Azure Monitor: a traces row (MessageData) in the command's end-to-end transaction.
    messages = [i for i in azure_items(azmon) if i["data"]["baseType"] == "MessageData"
                and "external API failed" in i["data"]["baseData"]["message"]]
    assert [(m["tags"]["ai.operation.id"], m["tags"]["ai.cloud.role"]) for m in messages] == [
        (trace_id, "discord-bot-functions")]
    command_span = next(i for i in azure_items(azmon) if i["data"]["baseData"].get("name") == "catfact")
    assert messages[0]["tags"]["ai.operation.parentId"] == command_span["data"]["baseData"]["id"]

    # The local explorer: on the waterfall, under the command's span.
    store = TraceStore()
    store.apply(SpanFile(stack.trace_file).poll())
    found = store.find(trace_id)
    assert found is not None
    rows = {r["name"]: r for r in waterfall(*found, logs=store.logs[trace_id])["spans"]}
    assert rows["discord.command"]["service"] == "discord-bot-listener"
    [shown] = [lg for lg in rows["catfact"]["logs"] if lg["severity"] == "WARN"]
    assert "external API failed" in shown["body"] and shown["offset_ms"] >= rows["catfact"]["offset_ms"]
