"""Test plugin: one process-wide TracerProvider with an in-memory exporter.

OpenTelemetry allows one global provider per process, so the whole session shares
this one (installed through shared.telemetry.setup_telemetry, exactly as a process
does at start-up). ``spans`` clears it before each test that asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from function_runtime import runtime
from shared import telemetry
from shared.settings import AZURITE_CONNECTION_STRING, Secret, Settings, StorageSettings

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def session_telemetry(tmp_path_factory: pytest.TempPathFactory) -> InMemorySpanExporter:
    settings = Settings(
        storage=StorageSettings(connection_string=Secret(AZURITE_CONNECTION_STRING)),
        local_trace_file=tmp_path_factory.mktemp("traces") / "traces.jsonl",
    )
    telemetry.setup_telemetry(settings, "functions", extra_exporters=[_EXPORTER], use_simple_processor=True)
    runtime.startup(settings)  # so importing function_app does not read the environment
    return _EXPORTER


@pytest.fixture
def spans(session_telemetry: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    session_telemetry.clear()
    yield session_telemetry


def by_name(finished: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> ReadableSpan:
    matches = [s for s in finished if s.name == name]
    assert len(matches) == 1, f"expected one {name!r} span, got {[s.name for s in finished]}"
    return matches[0]
