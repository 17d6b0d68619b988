"""Deferred export: spans wait in memory until the first flush builds the exporters, none lost."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from localdev.traces import load_traces
from shared import telemetry
from shared.settings import Secret, Settings, StorageSettings
from shared.telemetry_deferred import DeferredExport


class Factory:
    def __init__(self) -> None:
        self.memory = InMemorySpanExporter()
        self.calls = 0

    def __call__(self) -> list[SpanProcessor]:
        self.calls += 1
        return [SimpleSpanProcessor(self.memory)]


def _provider(deferred: DeferredExport) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(deferred)
    return provider


def test_spans_wait_for_the_first_flush_then_arrive_in_order() -> None:
    factory = Factory()
    provider = _provider(DeferredExport(factory))
    tracer = provider.get_tracer(__name__)
    for name in ("a", "b", "c"):
        tracer.start_span(name).end()
    assert factory.calls == 0 and factory.memory.get_finished_spans() == ()
    assert provider.force_flush(5000)
    assert factory.calls == 1
    tracer.start_span("d").end()  # after start: forwarded at once
    provider.force_flush(5000)
    assert [s.name for s in factory.memory.get_finished_spans()] == ["a", "b", "c", "d"]
    assert factory.calls == 1


def test_shutdown_exports_held_spans_but_builds_nothing_when_there_are_none() -> None:
    idle, busy = Factory(), Factory()
    _provider(DeferredExport(idle)).shutdown()
    assert idle.calls == 0  # no exporter import at exit for nothing
    provider = _provider(DeferredExport(busy))
    provider.get_tracer(__name__).start_span("late").end()
    provider.shutdown()
    assert [s.name for s in busy.memory.get_finished_spans()] == ["late"]


def test_spans_beyond_the_bound_are_counted_as_dropped() -> None:
    factory = Factory()
    deferred = DeferredExport(factory, max_pending=2)
    provider = _provider(deferred)
    for i in range(5):
        provider.get_tracer(__name__).start_span(f"s{i}").end()
    provider.force_flush(5000)
    assert [s.name for s in factory.memory.get_finished_spans()] == ["s0", "s1"]
    assert deferred.dropped == 3


def test_function_side_provider_defers_its_configured_exporter(tmp_path: Path) -> None:
    trace_file = tmp_path / "traces.jsonl"
    settings = Settings(storage=StorageSettings(connection_string=Secret("UseDevelopmentStorage=true")),
                        local_trace_file=trace_file)
    provider = telemetry.build_provider(settings, "functions", use_simple_processor=True, defer_export=True)
    provider.get_tracer(__name__).start_span("cmd-ping process").end()
    assert not trace_file.exists()  # the exporter does not exist yet
    provider.force_flush(5000)
    assert [s["name"] for spans in load_traces(trace_file).values() for s in spans] == ["cmd-ping process"]
    provider.shutdown()
