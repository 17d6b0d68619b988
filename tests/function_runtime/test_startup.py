"""Start-up timing: the phases the first invocation's cold_start span is drawn from."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from function_runtime.startup import StartupMarks, process_start_ns, record_cold_start, run_startup
from shared.settings import Settings, StorageSettings


def test_process_start_is_when_the_os_started_this_process() -> None:
    started_by_os = psutil.Process().create_time()
    assert abs(process_start_ns() / 1e9 - started_by_os) < 1.0
    assert time.time_ns() >= process_start_ns()


def test_startup_times_host_and_worker_start_and_telemetry_setup(tmp_path: Path, fresh_telemetry: None) -> None:
    marks = StartupMarks(process_start_ns=process_start_ns())
    indexing_began = time.time_ns()
    run_startup(Settings(storage=StorageSettings(), local_trace_file=tmp_path / "t.jsonl"), marks, indexing_began)

    # host_start: the parent process (here pytest's) from its start until this process started
    parent_started = psutil.Process(os.getppid()).create_time()
    host_began, host_ended = marks.phases["host_start"]
    assert abs(host_began / 1e9 - parent_started) < 1.0 and host_ended == marks.process_start_ns
    assert marks.phases["worker_start"] == (marks.process_start_ns, indexing_began)
    began, ended = marks.phases["telemetry_setup"]
    assert marks.process_start_ns <= indexing_began <= began <= ended
    marks.indexed(indexing_began)
    assert marks.phases["indexing"][0] == indexing_began and marks.phases["indexing"][1] >= ended
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "discord-bot-functions"


def test_another_process_start_is_read_from_proc() -> None:
    parent = psutil.Process(os.getppid())
    assert abs(process_start_ns(parent.pid) / 1e9 - parent.create_time()) < 1.0
    assert process_start_ns(2**22 + 12345) == 0  # no such process: unknown, not this one's start


def test_cold_start_nests_the_phases_that_ran_inside_another(spans: InMemorySpanExporter) -> None:
    exporter = spans
    t = 1_000_000_000_000
    marks = StartupMarks(process_start_ns=t)
    marks.phases.update({"host_start": (t - 300, t), "worker_start": (t, t + 100), "indexing": (t + 100, t + 900),
                         "telemetry_setup": (t + 200, t + 300), "runtime_setup": (t + 400, t + 800)})
    with trace.get_tracer(__name__).start_as_current_span("process"):
        record_cold_start(marks, t - 1000)
    by = {s.name: s for s in exporter.get_finished_spans()}
    parent_of = {name: next((p for p, ps in by.items() if s.parent and ps.context.span_id == s.parent.span_id), None)
                 for name, s in by.items()}
    assert parent_of == {"host_start": "cold_start", "worker_start": "cold_start", "indexing": "cold_start",
                         "telemetry_setup": "indexing", "runtime_setup": "indexing", "cold_start": "process",
                         "process": None}
    assert (by["cold_start"].start_time, by["cold_start"].end_time) == (t - 300, t + 900)


def test_a_phase_is_recorded_only_once_it_has_run() -> None:
    marks = StartupMarks(process_start_ns=time.time_ns())
    with marks.phase("runtime_setup"):
        assert "runtime_setup" not in marks.phases
    began, ended = marks.phases["runtime_setup"]
    assert marks.process_start_ns <= began <= ended
    assert [name for name, _, _ in marks.paid_by(began)] == ["runtime_setup"]
