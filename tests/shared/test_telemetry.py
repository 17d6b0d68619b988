"""Telemetry setup: resource, baggage fields, propagation, sampling, the file sink, outbound HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from function_runtime.http import TracedSession
from localdev.traces import load_traces, render_trace
from shared import telemetry
from shared.envelope import ENVELOPE_GETTER, TRACE_SETTER, Envelope, Ids
from shared.settings import Secret, Settings, StorageSettings
from shared.telemetry_exporters import otlp_targets, parse_otlp_headers
from shared.telemetry_processors import redact_query
from shared.trace_file import JsonLinesSpanExporter
from tests.shared.test_exporters import Receiver
from tests.tracing import reset_telemetry, restore_telemetry

FIELDS = {"app.command": "catfact", "discord.guild.id": "1", "discord.channel.id": "2", "discord.author.id": "3"}


def make_settings(tmp_path: Path, **kwargs: Any) -> Settings:
    kwargs.setdefault("local_trace_file", tmp_path / "traces.jsonl")
    return Settings(storage=StorageSettings(), **kwargs)


def provider_with_memory(
    settings: Settings, component: telemetry.Component
) -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = telemetry.build_provider(settings, component, extra_exporters=[memory], use_simple_processor=True)
    return provider, memory


@pytest.fixture
def clean_globals() -> Iterator[None]:
    state = reset_telemetry(shutdown_provider=False)
    saved = propagate.get_global_textmap()
    yield
    restore_telemetry(state)
    propagate.set_global_textmap(saved)


def test_setup_is_idempotent_and_installs_the_global_provider(tmp_path: Path, clean_globals: None) -> None:
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    settings = make_settings(tmp_path)
    provider = telemetry.setup_telemetry(settings, "listener", extra_exporters=[first], use_simple_processor=True)

    again = telemetry.setup_telemetry(settings, "functions", extra_exporters=[second], use_simple_processor=True)
    assert again is provider and trace.get_tracer_provider() is provider
    with trace.get_tracer(__name__).start_as_current_span("once"):
        pass
    assert [s.name for s in first.get_finished_spans()] == ["once"]
    assert second.get_finished_spans() == ()  # the second call added nothing
    assert provider.resource.attributes["service.name"] == "discord-bot-listener"


def test_resource_names_each_component(tmp_path: Path) -> None:
    azure = {"cloud.provider": "azure", "faas.name": "bot-func"}
    settings = make_settings(tmp_path, deployment_environment="prod", service_version="1.2.3", azure_resource=azure)
    listener = telemetry.build_resource(settings, "listener").attributes
    functions = telemetry.build_resource(settings, "functions").attributes
    assert listener["service.name"] == "discord-bot-listener"
    assert functions["service.name"] == "discord-bot-functions"
    assert functions["service.version"] == "1.2.3"
    assert functions["deployment.environment"] == functions["deployment.environment.name"] == "prod"
    assert functions["cloud.provider"] == "azure" and functions["faas.name"] == "bot-func"
    assert functions["service.instance.id"]
    assert telemetry.build_resource(settings, "scale_controller").attributes["service.name"] == (
        "discord-bot-scale-controller")
    # An instance the platform (or the local scale controller) names is that instance in every span.
    named = make_settings(tmp_path, azure_resource={"faas.instance": "catfact-2-ab12"})
    attributes = telemetry.build_resource(named, "functions").attributes
    assert attributes["service.instance.id"] == attributes["faas.instance"] == "catfact-2-ab12"
    # OTEL_SERVICE_NAME names the bot; the two processes stay two services.
    settings = make_settings(tmp_path, service_name="my-bot")
    assert telemetry.build_resource(settings, "functions").attributes["service.name"] == "my-bot-functions"
    assert telemetry.build_resource(settings, "listener").attributes["service.name"] == "my-bot-listener"


def test_trace_fields_in_baggage_land_on_every_span(tmp_path: Path) -> None:
    provider, memory = provider_with_memory(make_settings(tmp_path), "listener")
    tracer = provider.get_tracer(__name__)
    ctx = telemetry.trace_fields_context(
        {**FIELDS, "discord.author.name": "someone"}, rate=telemetry.sample_rate(make_settings(tmp_path))
    )
    ctx = baggage.set_baggage("not.a.trace.field", "x", ctx)
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("discord.command"), tracer.start_as_current_span("cmd-catfact send"):
            pass
    finally:
        context.detach(token)
    spans = memory.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        attrs = dict(span.attributes or {})
        assert {k: attrs[k] for k in FIELDS} == FIELDS
        assert attrs["SampleRate"] == "1"
        assert "not.a.trace.field" not in attrs and "discord.author.name" not in attrs


def test_function_side_copies_fields_from_an_extracted_envelope(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, traces_sampler_arg=0.5)
    listener, _ = provider_with_memory(settings, "listener")
    functions, memory = provider_with_memory(settings, "functions")
    carrier: dict[str, str] = {}
    token = context.attach(telemetry.trace_fields_context(FIELDS, rate=telemetry.sample_rate(settings)))
    try:
        # Force a sampled root whatever the ratio draws: the decision itself is tested below.
        parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        with listener.get_tracer(__name__).start_as_current_span(
            "send", context=trace.set_span_in_context(NonRecordingSpan(parent)), kind=SpanKind.PRODUCER
        ):
            telemetry.ENVELOPE_PROPAGATOR.inject(carrier, setter=TRACE_SETTER)
    finally:
        context.detach(token)
    assert set(carrier) == {"traceparent", "baggage"}
    env = Envelope("message", "catfact", "", Ids("1", "2", "3"), "someone", datetime.now(UTC))
    env = replace(env, trace=carrier)

    token = context.attach(telemetry.ENVELOPE_PROPAGATOR.extract(env, getter=ENVELOPE_GETTER))
    try:
        tracer = functions.get_tracer(__name__)
        with tracer.start_as_current_span("cmd-catfact process"), tracer.start_as_current_span("catfact"):
            pass
    finally:
        context.detach(token)
    spans = memory.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {0x1234}
    for span in spans:
        assert dict(span.attributes or {})["app.command"] == "catfact"
        assert dict(span.attributes or {})["SampleRate"] == "2"


def test_global_propagator_sends_traceparent_but_never_baggage(tmp_path: Path, clean_globals: None) -> None:
    telemetry.setup_telemetry(make_settings(tmp_path), "listener", use_simple_processor=True)
    token = context.attach(telemetry.trace_fields_context(FIELDS, rate=telemetry.sample_rate(make_settings(tmp_path))))
    try:
        with trace.get_tracer(__name__).start_as_current_span("discord.command"):
            headers: dict[str, str] = {}
            propagate.inject(headers)
            envelope: dict[str, str] = {}
            telemetry.ENVELOPE_PROPAGATOR.inject(envelope)
    finally:
        context.detach(token)
    assert set(headers) == {"traceparent"}
    assert set(envelope) == {"traceparent", "baggage"}
    assert "app.command=catfact" in envelope["baggage"]


def test_sample_rate_and_sampling_decisions(tmp_path: Path) -> None:
    assert telemetry.sample_rate(make_settings(tmp_path)) == 1
    assert telemetry.sample_rate(make_settings(tmp_path, traces_sampler_arg=0.25)) == 4
    assert telemetry.sample_rate(make_settings(tmp_path, traces_sampler_arg=0.1)) == 10
    assert telemetry.sample_rate(make_settings(tmp_path, traces_sampler_arg=0.0)) == 1
    assert telemetry.sampling_ratio(make_settings(tmp_path, traces_sampler="always_off", traces_sampler_arg=1.0)) == 0

    listener, listener_mem = provider_with_memory(make_settings(tmp_path, traces_sampler_arg=0.0), "listener")
    with listener.get_tracer(__name__).start_as_current_span("discord.command"):
        pass
    assert listener_mem.get_finished_spans() == ()  # ratio 0: decided at the root, nothing recorded

    functions, mem = provider_with_memory(make_settings(tmp_path, traces_sampler_arg=0.0), "functions")
    tracer = functions.get_tracer(__name__)
    unsampled = SpanContext(0xA, 0xB, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    with tracer.start_as_current_span("follows parent", context=trace.set_span_in_context(NonRecordingSpan(unsampled))):
        pass
    with tracer.start_as_current_span("no context: own trace", kind=SpanKind.CONSUMER):
        pass
    with tracer.start_as_current_span("background poll", kind=SpanKind.CLIENT):
        pass
    assert [s.name for s in mem.get_finished_spans()] == ["no context: own trace"]


def test_file_sink_writes_lines_the_viewer_reads(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    listener = telemetry.build_provider(settings, "listener", use_simple_processor=True)
    functions = telemetry.build_provider(settings, "functions", use_simple_processor=True)
    with listener.get_tracer(__name__).start_as_current_span("discord.command", kind=SpanKind.CONSUMER) as root:
        carrier: dict[str, str] = {}
        telemetry.ENVELOPE_PROPAGATOR.inject(carrier)
    token = context.attach(telemetry.ENVELOPE_PROPAGATOR.extract(carrier))
    try:
        with functions.get_tracer(__name__).start_as_current_span("cmd-catfact process") as span:
            span.set_attribute("faas.coldstart", True)
            span.add_event("retry", {"http.response.status_code": 429})
    finally:
        context.detach(token)

    traces = load_traces(tmp_path / "traces.jsonl")
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert list(traces) == [trace_id]
    by_name = {s["name"]: s for s in traces[trace_id]}
    assert by_name["cmd-catfact process"]["parent_span_id"] == by_name["discord.command"]["span_id"]
    assert by_name["cmd-catfact process"]["service.name"] == "discord-bot-functions"
    assert by_name["cmd-catfact process"]["events"][0]["attributes"] == {"http.response.status_code": 429}
    assert by_name["discord.command"]["kind"] == "CONSUMER"
    assert by_name["discord.command"]["end_ns"] >= by_name["discord.command"]["start_ns"]
    text = render_trace(traces[trace_id])
    assert "discord-bot-listener" in text and "faas.coldstart=true" in text


def test_file_sink_rotates_when_large(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path, max_bytes=2000)))
    for i in range(30):
        with provider.get_tracer(__name__).start_as_current_span(f"span-{i}"):
            pass
    assert path.with_name("t.jsonl.1").exists()
    assert 0 < path.stat().st_size <= 2000 + 1000  # rotated, then at most one more batch


def test_requests_are_traced_except_discord(tmp_path: Path, clean_globals: None) -> None:
    catfact, discord = Receiver().start(), Receiver().start()
    try:
        memory = InMemorySpanExporter()
        settings = make_settings(tmp_path, discord_api_base_url=f"{discord.url}/api/v10")
        telemetry.setup_telemetry(settings, "functions", extra_exporters=[memory], use_simple_processor=True)
        token = context.attach(telemetry.trace_fields_context(FIELDS, rate=telemetry.sample_rate(settings)))
        try:
            with trace.get_tracer(__name__).start_as_current_span("catfact") as parent:
                requests.get(f"{catfact.url}/fact?before=instrumented", timeout=5)  # setup does not instrument
                TracedSession().get(f"{catfact.url}/fact?max_length=80&api_key=hunter2", timeout=5)  # this does
                requests.post(f"{discord.url}/api/v10/webhooks/1/secret-interaction-token", json={}, timeout=5)
        finally:
            context.detach(token)
    finally:
        catfact.stop()
        discord.stop()

    clients = [s for s in memory.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(clients) == 1  # the Discord call made no span (its URL holds the token)
    assert clients[0].parent is not None and clients[0].parent.span_id == parent.get_span_context().span_id
    url = str(dict(clients[0].attributes or {}).get("url.full") or dict(clients[0].attributes or {})["http.url"])
    assert "hunter2" not in url and "max_length=80" in url
    assert "secret-interaction-token" not in str([dict(s.attributes or {}) for s in memory.get_finished_spans()])
    sent = catfact.requests[1].headers
    assert "traceparent" not in catfact.requests[0].headers
    assert sent["traceparent"].split("-")[1] == f"{parent.get_span_context().trace_id:032x}"
    assert "baggage" not in sent  # third parties never see our fields
    assert "traceparent" not in discord.requests[0].headers


def test_otlp_settings_parsing() -> None:
    assert parse_otlp_headers("a=1, B = x%3Dy ,junk,,=v") == {"a": "1", "b": "x=y"}
    key = Secret("hcaik_k")
    base = Settings(storage=StorageSettings(), honeycomb_api_key=key)
    assert otlp_targets(base) == [("https://api.honeycomb.io/v1/traces", {"x-honeycomb-team": "hcaik_k"})]
    eu = Settings(
        storage=StorageSettings(), honeycomb_api_key=key, honeycomb_api_endpoint="https://api.eu1.honeycomb.io"
    )
    assert otlp_targets(eu)[0][0] == "https://api.eu1.honeycomb.io/v1/traces"
    both = Settings(storage=StorageSettings(), honeycomb_api_key=key, otlp_endpoint="http://collector:4318")
    assert otlp_targets(both) == [
        ("http://collector:4318/v1/traces", {}),  # the key is not handed to a collector
        ("https://api.honeycomb.io/v1/traces", {"x-honeycomb-team": "hcaik_k"}),
    ]
    assert redact_query("https://x/y?q=cats&token=abc") == "https://x/y?q=cats&token=REDACTED"


class _SlowExporter(InMemorySpanExporter):
    """Takes its time, like a real endpoint across a network."""

    def export(self, spans: Any) -> Any:
        time.sleep(0.3)
        return super().export(spans)


def test_concurrent_flushes_each_export_their_own_spans(tmp_path: Path, clean_globals: None) -> None:
    import threading

    slow = _SlowExporter()
    provider = telemetry.setup_telemetry(make_settings(tmp_path), "listener", extra_exporters=[slow])
    tracer = provider.get_tracer("test")
    results: list[bool] = []

    def invocation(name: str) -> None:
        tracer.start_span(name).end()
        results.append(telemetry.flush(3000))

    threads = [threading.Thread(target=invocation, args=(f"inv-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True, True, True]
    assert sorted(s.name for s in slow.get_finished_spans()) == ["inv-0", "inv-1", "inv-2"]


def test_the_sdk_is_imported_without_psutil_which_stays_importable() -> None:
    import subprocess
    import sys

    from shared.settings import PROJECT_ROOT

    code = (
        "import sys\n"
        "from shared.settings import Secret, Settings, StorageSettings\n"
        "from shared.telemetry_provider import build_provider\n"
        "s = Settings(storage=StorageSettings(connection_string=Secret('UseDevelopmentStorage=true')))\n"
        "build_provider(s, 'functions', defer_export=True).get_tracer('t').start_span('x').end()\n"
        "assert 'psutil' not in sys.modules, 'the SDK pulled psutil in'\n"
        "import psutil\n"
        "assert psutil.Process().pid > 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
