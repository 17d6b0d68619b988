"""Start-up timing: the phases the first invocation's cold_start span is drawn from."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from function_runtime.startup import StartupMarks, process_start_ns, run_startup
from shared.settings import Settings, StorageSettings


def test_process_start_is_when_the_os_started_this_process() -> None:
    started_by_os = psutil.Process().create_time()
    assert abs(process_start_ns() / 1e9 - started_by_os) < 1.0
    assert time.time_ns() >= process_start_ns()


def test_startup_times_import_and_telemetry_setup(tmp_path: Path, fresh_telemetry: None) -> None:
    marks = StartupMarks(process_start_ns=process_start_ns())
    imported = time.time_ns()
    run_startup(Settings(storage=StorageSettings(), local_trace_file=tmp_path / "t.jsonl"), marks, imported)

    assert marks.phases["import"] == (marks.process_start_ns, imported)
    began, ended = marks.phases["telemetry_setup"]
    assert marks.process_start_ns <= imported <= began <= ended
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "discord-bot-functions"


def test_a_phase_is_recorded_only_once_it_has_run() -> None:
    marks = StartupMarks(process_start_ns=time.time_ns())
    with marks.phase("runtime_setup"):
        assert "runtime_setup" not in marks.phases
    began, ended = marks.phases["runtime_setup"]
    assert marks.process_start_ns <= began <= ended
    assert [name for name, _, _ in marks.paid_by(began)] == ["runtime_setup"]
