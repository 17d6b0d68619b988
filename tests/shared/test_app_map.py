"""Application Map: listener -> queue -> function app, from the fields the Azure Monitor exporter sends.

App Insights draws a node per cloud role (ai.cloud.role = service.name), a dependency node per
target, and an edge from a dependency to the request whose operation_ParentId is that dependency's
id. The spans here carry the attributes the real code sets (taken from shared.ingress's spans);
they are exported by two providers (two roles) to a local ingestion endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import telemetry
from shared.envelope import Ids
from shared.ingress import Incoming, route, start_command
from shared.settings import Secret, Settings, StorageSettings
from tests.shared.test_exporters import IKEY, Receiver, azure_items

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(reply=json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()).start()
    yield r
    r.stop()


def test_listener_queue_and_function_app_are_connected_nodes(receiver: Receiver, spans: InMemorySpanExporter) -> None:
    incoming = Incoming(kind="message", routed=route("ping", ""), author_name="you",
                        ids=Ids(message="1100000000000000001", channel="2", author="3", guild="4"))
    with start_command(incoming) as started:
        started.producer.end()
    real = {s.name: s for s in spans.get_finished_spans()}
    root_attrs = dict(real["discord.command"].attributes or {})
    send_attrs = dict(real["cmd-ping send"].attributes or {})

    settings = Settings(storage=StorageSettings(), appinsights_connection_string=Secret(
        f"InstrumentationKey={IKEY};IngestionEndpoint={receiver.url}/"))
    listener = telemetry.build_provider(settings, "listener", use_simple_processor=True)
    functions = telemetry.build_provider(settings, "functions", use_simple_processor=True)
    lt, ft = listener.get_tracer("listener"), functions.get_tracer("functions")
    with lt.start_as_current_span("discord.command", kind=SpanKind.CONSUMER, attributes=root_attrs), \
            lt.start_as_current_span("cmd-ping send", kind=SpanKind.PRODUCER, attributes=send_attrs) as send:
        queued = send.get_span_context()
    remote = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        queued.trace_id, queued.span_id, is_remote=True, trace_flags=queued.trace_flags)))
    with ft.start_as_current_span("cmd-ping process", context=remote, kind=SpanKind.CONSUMER,
                                  attributes={"messaging.system": send_attrs["messaging.system"],
                                              "messaging.destination.name": "cmd-ping", "faas.trigger": "pubsub"}):
        pass
    listener.shutdown()
    functions.shutdown()

    items = {i["data"]["baseData"].get("name"): i for i in azure_items(receiver)
             if i["data"]["baseType"] in ("RequestData", "RemoteDependencyData")}
    dep, request = items["cmd-ping send"], items["cmd-ping process"]
    # Node 1: the listener (its request is the root); node 2: the queue, the dependency's target.
    assert items["discord.command"]["tags"]["ai.cloud.role"] == "discord-bot-listener"
    assert dep["tags"]["ai.cloud.role"] == "discord-bot-listener"
    assert dep["data"]["baseData"]["type"] == "Queue Message | azure_queue_storage"
    assert dep["data"]["baseData"]["target"] == "cmd-ping"
    # Node 3: the function app, joined to the queue's dependency by operation_ParentId.
    assert request["tags"]["ai.cloud.role"] == "discord-bot-functions"
    assert request["tags"]["ai.operation.parentId"] == dep["data"]["baseData"]["id"]
    assert request["tags"]["ai.operation.id"] == dep["tags"]["ai.operation.id"]
    # The KQL that draws the same map from the tables is shipped with the monitoring queries.
    kql = (ROOT / "infra/monitoring/app_map.kql").read_text()
    assert "operation_ParentId" in kql and "cloud_RoleName" in kql and 'type startswith "Queue Message"' in kql
