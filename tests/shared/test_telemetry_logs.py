"""Python logging as OpenTelemetry logs in the trace: the real exporters against local receivers.

OTLP/HTTP protobuf (Honeycomb and collectors) decoded with opentelemetry-proto, the Azure Monitor
exporter posting to a local ingestion endpoint, and the local span file: each gets the record with
the trace and span ids of the span that was current, and never a secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from shared import telemetry
from shared.settings import Secret, Settings, StorageSettings
from shared.telemetry_logs import TraceLogHandler, build_logger_provider, install_handler
from tests.shared.test_exporters import IKEY, Receiver, azure_items

TOKEN = "MTIzNDU2Nzg5.fake.discord-token-value-0123456789"
ACCOUNT_KEY = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVlLTAxMjM0NTY3ODk="


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(reply=json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()).start()
    yield r
    r.stop()


def _settings(**kwargs: Any) -> Settings:
    storage = StorageSettings(connection_string=Secret(
        f"DefaultEndpointsProtocol=https;AccountName=dbotst;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"))
    return Settings(storage=storage, discord_token=Secret(TOKEN), **kwargs)


def _run(settings: Settings, name: str) -> tuple[int, int, int]:
    """A command's spans with a WARNING, an exception and a secret logged inside; returns trace, span, root ids."""
    tracer_provider = telemetry.build_provider(settings, "functions", use_simple_processor=True)
    log_provider, _ = build_logger_provider(settings, tracer_provider.resource, simple=True)
    logger = logging.getLogger(f"command_functions.{name}")
    logger.propagate = False
    handler = install_handler(log_provider, settings, root=logger)
    tracer = tracer_provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("cmd-catfact process") as root, \
                tracer.start_as_current_span("catfact") as span:
            logger.warning("catfact API failed: 503 from %s", "https://catfact.ninja/fact")
            logger.info("token %s in /webhooks/123/%s", TOKEN, "aW50ZXJhY3Rpb246dG9rZW4")
            logger.debug("below INFO: not exported")
            try:
                raise ValueError(f"AccountKey={ACCOUNT_KEY};")
            except ValueError:
                logger.exception("command failed")
            logging.getLogger("azure.core.pipeline").warning("an exporter's own record: not exported")
    finally:
        logger.removeHandler(handler)
        tracer_provider.shutdown()
        log_provider.shutdown()
    ctx = span.get_span_context()
    return ctx.trace_id, ctx.span_id, root.get_span_context().span_id


def test_otlp_logs_carry_the_trace_and_span(receiver: Receiver) -> None:
    trace_id, span_id, _ = _run(_settings(otlp_endpoint=receiver.url, otlp_headers=Secret("x-tenant=blue")), "otlp")
    requests = [r for r in receiver.requests if r.path == "/v1/logs"]
    assert requests and all(r.headers["content-type"] == "application/x-protobuf" for r in requests)
    assert all(r.headers["x-tenant"] == "blue" for r in requests)
    records = []
    for req in requests:
        msg = ExportLogsServiceRequest()
        msg.ParseFromString(req.payload())
        for rl in msg.resource_logs:
            resource = {a.key: a.value.string_value for a in rl.resource.attributes}
            assert resource["service.name"] == "discord-bot-functions"
            records += [(sl.scope.name, r) for sl in rl.scope_logs for r in sl.log_records]
    assert [(scope, r.severity_text) for scope, r in records] == [
        ("command_functions.otlp", "WARN"), ("command_functions.otlp", "INFO"), ("command_functions.otlp", "ERROR")]
    for _, record in records:
        assert record.trace_id.hex() == f"{trace_id:032x}" and record.span_id.hex() == f"{span_id:016x}"
    warning = records[0][1]
    assert warning.body.string_value == "catfact API failed: 503 from https://catfact.ninja/fact"
    dump = str(records)
    assert TOKEN not in dump and ACCOUNT_KEY not in dump and "aW50ZXJhY3Rpb246dG9rZW4" not in dump
    assert records[1][1].body.string_value == "token *** in /webhooks/123/***"


def test_azure_monitor_traces_and_exceptions_in_the_command_s_operation(receiver: Receiver) -> None:
    settings = _settings(appinsights_connection_string=Secret(
        f"InstrumentationKey={IKEY};IngestionEndpoint={receiver.url}/"))
    trace_id, span_id, _ = _run(settings, "azmon")
    items = [i for i in azure_items(receiver) if i["data"]["baseType"] in ("MessageData", "ExceptionData")]
    by_type: dict[str, list[dict[str, Any]]] = {i["data"]["baseType"]: [] for i in items}
    for item in items:
        by_type[item["data"]["baseType"]].append(item)
    messages = by_type["MessageData"]
    assert [m["data"]["baseData"]["severityLevel"] for m in messages] == [2, 1]  # Warning, Information
    assert messages[0]["data"]["baseData"]["message"] == "catfact API failed: 503 from https://catfact.ninja/fact"
    (exception,) = by_type["ExceptionData"]
    assert exception["data"]["baseData"]["exceptions"][0]["typeName"] == "ValueError"
    for item in items:  # the traces/exceptions rows of the command's end-to-end transaction
        assert item["tags"]["ai.operation.id"] == f"{trace_id:032x}"
        assert item["tags"]["ai.operation.parentId"] == f"{span_id:016x}"
        assert item["tags"]["ai.cloud.role"] == "discord-bot-functions"
    everything = json.dumps(items)
    assert TOKEN not in everything and ACCOUNT_KEY not in everything


def test_local_span_file_keeps_log_lines(tmp_path: Path) -> None:
    trace_file = tmp_path / "traces.jsonl"
    trace_id, span_id, _ = _run(_settings(local_trace_file=trace_file), "file")
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    logs = [line for line in lines if line.get("type") == "log"]
    spans = [line for line in lines if "type" not in line]
    assert {s["name"] for s in spans} == {"cmd-catfact process", "catfact"}
    assert [(log["severity"], log["logger"]) for log in logs] == [
        ("WARN", "command_functions.file"), ("INFO", "command_functions.file"), ("ERROR", "command_functions.file")]
    for log in logs:
        assert log["trace_id"] == f"{trace_id:032x}" and log["span_id"] == f"{span_id:016x}"
        assert log["service.name"] == "discord-bot-functions" and log["time_ns"] > 0
    assert logs[2]["attributes"]["exception.type"] == "ValueError"
    assert TOKEN not in trace_file.read_text() and ACCOUNT_KEY not in trace_file.read_text()


def test_handler_is_a_plain_logging_handler_that_never_raises() -> None:
    # Under the Functions worker our handler sits beside the worker's own on the root logger.
    settings = _settings()
    tracer_provider = telemetry.build_provider(settings, "functions", use_simple_processor=True)
    log_provider, _ = build_logger_provider(settings, tracer_provider.resource, simple=True)
    handler = TraceLogHandler(log_provider, redact=lambda text: 1 / 0)  # type: ignore[arg-type]
    assert isinstance(handler, logging.Handler) and handler.level == logging.INFO
    record = logging.LogRecord("shared.x", logging.WARNING, __file__, 1, "boom", None, None)
    logging.raiseExceptions, before = False, logging.raiseExceptions
    try:
        handler.handle(record)  # the redactor fails: handleError, not an exception in the caller
    finally:
        logging.raiseExceptions = before
