"""The real exporters against local receivers: OTLP/HTTP protobuf, Azure Monitor, and a bounded flush."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind

from shared import telemetry
from shared.settings import Secret, Settings, StorageSettings

HONEYCOMB_KEY = "hcaik_01test0key0that0must0never0leak"
IKEY = "00000000-0000-0000-0000-000000000000"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def payload(self) -> bytes:
        if self.headers.get("content-encoding") == "gzip" or self.body[:2] == b"\x1f\x8b":
            return gzip.decompress(self.body)
        return self.body


@dataclass
class Receiver:
    """A local HTTP endpoint on port 0 that records requests; ``mode`` is ok, 503 or hang."""

    mode: str = "ok"
    reply: bytes = b""
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    got: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(Request(self.command, self.path, headers, self.rfile.read(length)))
                receiver.got.set()
                if receiver.mode == "hang":
                    receiver.release.wait(15)
                status = 503 if receiver.mode == "503" else 200
                self.send_response(status)
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            do_POST = do_GET = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def make_settings(**kwargs: Any) -> Settings:
    return Settings(storage=StorageSettings(), **kwargs)


def emit_trace(provider: Any) -> tuple[int, int, int]:
    """discord.command (CONSUMER) > cmd-catfact send (PRODUCER), GET (CLIENT); returns trace, root, child ids."""
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("discord.command", kind=SpanKind.CONSUMER) as root:
        root.set_attribute("app.command", "catfact")
        with tracer.start_as_current_span("cmd-catfact send", kind=SpanKind.PRODUCER) as child:
            child.set_attribute("messaging.system", "azure_queue")
        with tracer.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": "GET", "url.full": "https://catfact.ninja/fact", "server.address": "x"},
        ):
            pass
    return root.get_span_context().trace_id, root.get_span_context().span_id, child.get_span_context().span_id


def decode_otlp(receiver: Receiver) -> list[ExportTraceServiceRequest]:
    out = []
    for req in receiver.requests:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(req.payload())
        out.append(msg)
    return out


def all_attribute_values(msgs: list[ExportTraceServiceRequest]) -> list[str]:
    values = []
    for msg in msgs:
        for rs in msg.resource_spans:
            values += [str(a.value) for a in rs.resource.attributes]
            for ss in rs.scope_spans:
                for span in ss.spans:
                    values += [str(a.value) for a in span.attributes]
    return values


def test_otlp_exports_protobuf_with_parents_resource_and_headers(receiver: Receiver) -> None:
    settings = make_settings(otlp_endpoint=receiver.url, otlp_headers=Secret("x-tenant=blue%20team,broken"))
    provider = telemetry.build_provider(settings, "listener", use_simple_processor=True)
    trace_id, root_id, child_id = emit_trace(provider)
    provider.shutdown()

    assert {r.path for r in receiver.requests} == {"/v1/traces"}
    assert receiver.requests[0].headers["content-type"] == "application/x-protobuf"
    assert receiver.requests[0].headers["x-tenant"] == "blue team"
    msgs = decode_otlp(receiver)
    spans = {s.name: s for m in msgs for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert set(spans) == {"discord.command", "cmd-catfact send", "GET"}
    assert spans["discord.command"].parent_span_id == b""
    assert spans["cmd-catfact send"].parent_span_id == root_id.to_bytes(8, "big")
    assert spans["cmd-catfact send"].span_id == child_id.to_bytes(8, "big")
    assert {s.trace_id for s in spans.values()} == {trace_id.to_bytes(16, "big")}
    resource = {a.key: a.value.string_value for a in msgs[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "discord-bot-listener"
    assert resource["deployment.environment.name"] == "local"


def test_honeycomb_key_goes_in_the_header_only(receiver: Receiver) -> None:
    settings = make_settings(honeycomb_api_key=Secret(HONEYCOMB_KEY), honeycomb_api_endpoint=receiver.url)
    provider = telemetry.build_provider(settings, "functions", use_simple_processor=True)
    emit_trace(provider)
    provider.shutdown()

    assert receiver.requests and {r.path for r in receiver.requests} == {"/v1/traces"}
    assert all(r.headers["x-honeycomb-team"] == HONEYCOMB_KEY for r in receiver.requests)
    msgs = decode_otlp(receiver)
    assert not any(HONEYCOMB_KEY in v for v in all_attribute_values(msgs))
    assert all(HONEYCOMB_KEY.encode() not in r.payload() for r in receiver.requests)
    resource = {a.key: a.value.string_value for a in msgs[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "discord-bot-functions"


def azure_items(receiver: Receiver) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for req in receiver.requests:
        text = req.payload().decode("utf-8").strip()
        if text.startswith("["):
            items += json.loads(text)
        else:
            items += [json.loads(line) for line in text.splitlines() if line.strip()]
    return items


def test_azure_monitor_envelopes_link_the_trace(receiver: Receiver) -> None:
    receiver.reply = json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()
    conn = f"InstrumentationKey={IKEY};IngestionEndpoint={receiver.url}/"
    settings = make_settings(appinsights_connection_string=Secret(conn))
    provider = telemetry.build_provider(settings, "listener", use_simple_processor=True)
    trace_id, root_id, child_id = emit_trace(provider)
    provider.shutdown()

    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
    from azure.monitor.opentelemetry.exporter.statsbeat._state import is_statsbeat_enabled

    processors = provider._active_span_processor._span_processors
    exporters = [p.span_exporter for p in processors if hasattr(p, "span_exporter")]
    azure = [e for e in exporters if isinstance(e, AzureMonitorTraceExporter)]
    assert azure and azure[0].storage is None  # offline storage off: nothing written to disk
    assert not is_statsbeat_enabled()

    assert {r.path for r in receiver.requests} == {"/v2.1/track"}  # nothing else (no statsbeat) reached us
    spans = [i for i in azure_items(receiver) if i["data"]["baseType"] in ("RequestData", "RemoteDependencyData")]
    by_name = {i["data"]["baseData"]["name"]: i for i in spans}
    assert by_name["discord.command"]["data"]["baseType"] == "RequestData"
    assert by_name["GET /fact"]["data"]["baseType"] == "RemoteDependencyData"  # named from the URL path
    for item in spans:
        assert item["tags"]["ai.operation.id"] == f"{trace_id:032x}"
        assert item["tags"]["ai.cloud.role"] == "discord-bot-listener"
        assert item["iKey"] == IKEY
    assert "ai.operation.parentId" not in by_name["discord.command"]["tags"]
    producer = by_name["cmd-catfact send"]
    assert producer["tags"]["ai.operation.parentId"] == f"{root_id:016x}"
    assert producer["data"]["baseData"]["id"] == f"{child_id:016x}"


@pytest.fixture
def installed(fresh_telemetry: None) -> None:
    """Each test installs its own telemetry."""


@pytest.mark.parametrize("mode", ["hang", "503"])
def test_flush_is_bounded_when_the_endpoint_is_down(receiver: Receiver, installed: None, mode: str) -> None:
    receiver.mode = mode
    telemetry.setup_telemetry(make_settings(otlp_traces_endpoint=f"{receiver.url}/v1/traces"), "listener")
    emit_trace(telemetry._provider)

    began = time.monotonic()
    ok = telemetry.flush(500)
    elapsed = time.monotonic() - began

    assert ok is False
    assert receiver.got.is_set()  # the export really was attempted
    assert elapsed < 1.5  # the bound (0.5 s) plus scheduling slack, far below the exporter's own 5 s

    began = time.monotonic()
    assert telemetry.flush(300) is False  # a second flush waits on the stuck one, still bounded
    assert time.monotonic() - began < 1.3


def test_flush_without_setup_or_with_a_healthy_endpoint(receiver: Receiver, installed: None) -> None:
    assert telemetry.flush(100) is True  # nothing installed: nothing to do
    telemetry.setup_telemetry(make_settings(otlp_endpoint=receiver.url), "functions")
    emit_trace(telemetry._provider)
    assert telemetry.flush(5000) is True
    assert decode_otlp(receiver)
