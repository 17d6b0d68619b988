"""Test plugin: one process-wide TracerProvider with an in-memory exporter.

OpenTelemetry allows one global provider per process, so the whole session shares
this one (installed through shared.telemetry.setup_telemetry, exactly as a process
does at start-up). ``spans`` clears it before each test that asks for it.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from function_runtime import startup
from shared import telemetry
from shared.settings import AZURITE_CONNECTION_STRING, Secret, Settings, StorageSettings

_EXPORTER = InMemorySpanExporter()
_LOG_EXPORTER = InMemoryLogRecordExporter()


@pytest.fixture(scope="session", autouse=True)
def session_telemetry(tmp_path_factory: pytest.TempPathFactory) -> InMemorySpanExporter:
    settings = Settings(
        storage=StorageSettings(connection_string=Secret(AZURITE_CONNECTION_STRING)),
        local_trace_file=tmp_path_factory.mktemp("traces") / "traces.jsonl",
    )
    telemetry.setup_telemetry(settings, "functions", extra_exporters=[_EXPORTER], extra_log_exporters=[_LOG_EXPORTER],
                              use_simple_processor=True)
    telemetry.instrument_requests()  # as a warm instance is: tests call APIs with plain Sessions
    startup.startup(settings)  # so importing function_app does not read the environment
    return _EXPORTER


@pytest.fixture
def spans(session_telemetry: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    session_telemetry.clear()
    yield session_telemetry


@pytest.fixture
def logs(session_telemetry: InMemorySpanExporter) -> Iterator[InMemoryLogRecordExporter]:
    """The session's log records (Python logging through the telemetry handler), cleared per test."""
    _LOG_EXPORTER.clear()
    yield _LOG_EXPORTER


def by_name(finished: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> ReadableSpan:
    matches = [s for s in finished if s.name == name]
    assert len(matches) == 1, f"expected one {name!r} span, got {[s.name for s in finished]}"
    return matches[0]


# (the installed provider, the settings requests was instrumented with)
InstalledTelemetry = tuple["TracerProvider | None", "Settings | None"]


def reset_telemetry(*, shutdown_provider: bool = True) -> InstalledTelemetry:
    """Forget the installed provider so setup_telemetry can run again; returns what was installed.

    Resets OpenTelemetry's private once-only global (as its own test utilities do).
    Tracers already resolved keep pointing at the old provider, which is why tests that
    need a fresh global hand the old one back with :func:`restore_telemetry` afterwards.
    """
    with telemetry._lock:
        state: InstalledTelemetry = (
            telemetry._provider, telemetry._requests_settings if telemetry._requests_instrumented else None
        )
        if shutdown_provider:
            telemetry.shutdown(1000)
        if telemetry._requests_instrumented:
            from shared.telemetry_processors import uninstrument_requests

            uninstrument_requests()
            telemetry._requests_instrumented = False
            telemetry._requests_settings = None
        atexit.unregister(telemetry.shutdown)
        from opentelemetry.util._once import Once

        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None
        telemetry._provider = None
        telemetry._log_provider = telemetry._log_handler = None  # shutdown removed the handler
        return state


def restore_telemetry(state: InstalledTelemetry) -> None:
    """Shut down whatever a test installed and reinstall ``state``'s provider."""
    reset_telemetry()
    provider, requests_settings = state
    if provider is None:
        return
    with telemetry._lock:
        trace.set_tracer_provider(provider)
        telemetry._provider = provider
        if requests_settings is not None:
            from shared.telemetry_processors import instrument_requests

            instrument_requests(requests_settings, provider)
            telemetry._requests_instrumented, telemetry._requests_settings = True, requests_settings
        atexit.register(telemetry.shutdown)


@pytest.fixture
def fresh_telemetry() -> Iterator[None]:
    """No telemetry installed during the test; the session's provider comes back afterwards."""
    state = reset_telemetry(shutdown_provider=False)
    yield
    restore_telemetry(state)
