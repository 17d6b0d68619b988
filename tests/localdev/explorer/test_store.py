"""Following the span file: appends, torn lines, malformed lines, rotation, truncation; markers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from localdev.explorer.store import MarkerFile, SpanFile, TraceStore
from tests.localdev.explorer.spans import make_trace, write_spans

T0 = 1_800_000_000 * 10**9


def lines(spans: list[dict]) -> str:
    return "".join(json.dumps(s) + "\n" for s in spans)


def test_reads_only_what_was_appended_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    f = SpanFile(path)
    assert f.poll().spans == []  # no file yet: nothing, no error
    first, second = make_trace("ping", T0), make_trace("mtg", T0)
    write_spans(path, first)
    assert len(f.poll().spans) == len(first)
    text = lines(second)
    with path.open("a") as out:
        out.write(text[:50])  # a writer mid-line
    batch = f.poll()
    assert batch.spans == [] and batch.skipped == 0
    with path.open("a") as out:
        out.write(text[50:])
    assert [s["span_id"] for s in f.poll().spans] == [s["span_id"] for s in second]


def test_malformed_lines_are_skipped_and_counted_never_fatal(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    spans = make_trace("ping", T0)
    path.write_bytes(
        lines(spans[:2]).encode() + b'{"trace_id": "ab", "span_id"\n' + b"\n" + b"\xff\xfe not json\n"
        + b'["a list"]\n' + b'{"no": "ids"}\n' + lines(spans[2:]).encode()
    )
    store = TraceStore()
    store.apply(SpanFile(path).poll())
    assert store.skipped_lines == 4  # the blank line is not counted
    assert store.span_count == len(spans) and len(store.traces) == 1


def test_a_log_record_outside_any_trace_is_neither_malformed_nor_shown(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    spans = make_trace("ping", T0)
    tid = spans[0]["trace_id"]
    log = {"type": "log", "time_ns": T0, "severity": "INFO", "logger": "x", "body": "b"}
    path.write_text(lines(spans) + json.dumps({**log, "trace_id": "", "span_id": None}) + "\n"
                    + json.dumps({**log, "trace_id": tid, "span_id": spans[0]["span_id"]}) + "\n")
    store = TraceStore()
    store.apply(SpanFile(path).poll())
    assert store.skipped_lines == 0  # start-up and scaling logs are no malformed lines
    assert list(store.logs) == [tid.lower()] and len(store.logs[tid.lower()]) == 1


def test_rotation_drains_the_old_file_then_follows_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    a, b, c = make_trace("ping", T0), make_trace("help", T0), make_trace("roll", T0)
    write_spans(path, a)
    f = SpanFile(path)
    store = TraceStore()
    store.apply(f.poll())
    write_spans(path, b)  # written after our last read ...
    os.replace(path, path.with_name("traces.jsonl.1"))  # ... then the writer rotates
    write_spans(path, c)
    store.apply(f.poll())
    assert len(store.traces) == 3 and store.span_count == len(a) + len(b) + len(c)


def test_a_new_reader_starts_with_the_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    write_spans(path.with_name("traces.jsonl.1"), make_trace("ping", T0))
    write_spans(path, make_trace("help", T0))
    store = TraceStore()
    store.apply(SpanFile(path).poll())
    assert len(store.traces) == 2


def test_truncation_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    write_spans(path, make_trace("ping", T0) + make_trace("help", T0))
    f, store = SpanFile(path), TraceStore()
    store.apply(f.poll())
    version = store.version
    with path.open("w") as out:  # truncated in place, a smaller file written
        out.write(lines(make_trace("roll", T0)))
    store.apply(f.poll())
    assert len(store.traces) == 1 and store.version > version
    assert next(iter(store.summaries())).command == "roll"


def test_store_finds_a_trace_by_id_or_unique_prefix(tmp_path: Path) -> None:
    store = TraceStore()
    spans = make_trace("ping", T0)
    tid = spans[0]["trace_id"]
    store.apply(SpanFile(tmp_path / "none").poll())
    path = tmp_path / "t.jsonl"
    write_spans(path, spans + make_trace("help", T0))
    store.apply(SpanFile(path).poll())
    assert store.find(tid) == (tid, store.traces[tid])
    assert store.find(tid.upper()[:-2])[0] == tid
    assert store.find("") is None  # every trace matches: ambiguous
    assert store.find("ffffffff") is None


def test_summaries_are_recomputed_when_a_trace_gets_more_spans(tmp_path: Path) -> None:
    spans = make_trace("ping", T0)
    listener = [s for s in spans if s["service.name"].endswith("listener")]
    functions = [s for s in spans if s not in listener]
    path = tmp_path / "t.jsonl"
    f, store = SpanFile(path), TraceStore()
    write_spans(path, listener)
    store.apply(f.poll())
    assert store.summaries()[0].duration_ms is None
    write_spans(path, functions)
    store.apply(f.poll())
    assert store.summaries()[0].duration_ms is not None


def test_marker_file_reads_ops_markers_lines_and_follows_changes(tmp_path: Path) -> None:
    path = tmp_path / "markers.jsonl"
    markers = MarkerFile(path)
    assert markers.poll() is False and markers.markers == []
    path.write_text(
        json.dumps({"time_unix_nano": T0, "type": "deploy", "version": "1.2.0", "message": "CD", "url": None}) + "\n"
        + "not json\n" + json.dumps({"type": "deploy"}) + "\n"
    )
    assert markers.poll() is True
    assert [m["version"] for m in markers.markers] == ["1.2.0"] and markers.skipped_lines == 2
    assert markers.poll() is False  # unchanged
    with path.open("a") as out:
        out.write(json.dumps({"time_unix_nano": T0 + 1, "type": "deploy", "version": "1.3.0", "message": "",
                              "url": "https://ci.example/run/9"}) + "\n")
    assert markers.poll() is True and markers.markers[-1]["url"] == "https://ci.example/run/9"
    path.unlink()
    assert markers.poll() is True and markers.markers == []
    assert MarkerFile(None).poll() is False


def test_reads_what_ops_markers_local_writes(tmp_path: Path) -> None:
    from ops import markers as ops_markers

    path = tmp_path / "markers.jsonl"
    args = ["--local", "--version", "2.0.1", "--url", "https://ci.example/run/7", "--local-file", str(path)]
    assert ops_markers.main(args, environ={}) == 0
    markers = MarkerFile(path)
    assert markers.poll() is True and markers.skipped_lines == 0
    (m,) = markers.markers
    assert (m["type"], m["version"], m["url"]) == ("deploy", "2.0.1", "https://ci.example/run/7")
    assert "2.0.1" in m["message"] and m["time_ns"] > 0
