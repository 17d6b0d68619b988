"""The local trace viewer: a handcrafted two-service trace rendered as a waterfall."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localdev.traces import is_complete, load_traces, main, render_trace

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(
    span_id: str, parent: str | None, name: str, service: str, start_ms: float, end_ms: float, **attrs: Any
) -> dict[str, Any]:
    return {
        "trace_id": TRACE,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": "INTERNAL",
        "service.name": service,
        "start_ns": T0 + int(start_ms * MS),
        "end_ns": T0 + int(end_ms * MS),
        "status": {"code": "UNSET", "description": None},
        "attributes": attrs,
        "events": [],
    }


L, F = "discord-bot-listener", "discord-bot-functions"


def two_service_trace() -> list[dict[str, Any]]:
    # Deliberately out of order, as two processes appending to one file produce them.
    process = span("c" * 16, "b" * 16, "cmd-catfact process", F, 120, 400, **{"faas.coldstart": True})
    process["status"] = {"code": "ERROR", "description": "catfact API timed out"}
    process["service.instance.id"] = "catfact-2-ab12"
    return [
        span("d" * 16, "c" * 16, "catfact", F, 150, 390, **{"app.command": "catfact"}),
        process,
        span("a" * 16, None, "discord.command", L, 0, 20, **{"app.command": "catfact"}),
        span("e" * 16, "d" * 16, "GET", F, 160, 380, **{"http.response.status_code": 504}),
        span("b" * 16, "a" * 16, "cmd-catfact send", L, 5, 15),
    ]


def test_render_shows_tree_order_indentation_offsets_and_services() -> None:
    lines = render_trace(two_service_trace()).splitlines()
    assert TRACE in lines[0] and "5 spans" in lines[0] and "400.0 ms" in lines[0]
    rows = lines[2:]
    names = ["discord.command", "cmd-catfact send", "cmd-catfact process", "catfact", "GET"]
    width = len(F) + 2  # the service column
    assert [r[width:].strip().split("  ")[0] for r in rows] == names  # tree order, not file order
    assert rows[0].startswith(L) and rows[2].startswith(F)
    indents = [len(r[width:]) - len(r[width:].lstrip()) for r in rows]
    assert indents == [0, 2, 4, 6, 8]  # one level deeper each
    assert "0.0" in rows[0].split() and "120.0" in rows[2].split() and "280.0" in rows[2].split()
    assert "app.command=catfact" in rows[0]
    assert "faas.coldstart=true" in rows[2] and "ERROR catfact API timed out" in rows[2]
    assert "instance=catfact-2-ab12" in rows[2] and "instance=" not in rows[3]
    assert "http.response.status_code=504" in rows[4]
    assert all("|" in r for r in rows)


def test_orphans_are_shown_at_top_level_until_their_root_arrives() -> None:
    function_side = [s for s in two_service_trace() if s["service.name"] == F]
    assert not is_complete(function_side)
    rows = render_trace(function_side).splitlines()[2:]
    assert rows[0][len(F) + 2 :].startswith("cmd-catfact process")  # its parent is missing: depth 0
    assert is_complete(two_service_trace())


def test_load_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "traces.jsonl"
    lines = [json.dumps(s) for s in two_service_trace()]
    other = span("f" * 16, None, "discord.command", L, 1000, 1001)
    other["trace_id"] = "0" * 31 + "1"
    path.write_text("\n".join([*lines[:2], '{"torn', *lines[2:], json.dumps(other)]) + "\n")

    traces = load_traces(path)
    assert [len(v) for v in traces.values()] == [5, 1]
    assert load_traces(tmp_path / "missing.jsonl") == {}

    assert main(["--file", str(path), "--trace", TRACE[:8]]) == 0
    out = capsys.readouterr().out
    assert "cmd-catfact process" in out and "0" * 31 + "1" not in out
    assert main(["--file", str(path), "--last", "1"]) == 0
    assert "0" * 31 + "1" in capsys.readouterr().out
    assert main(["--file", str(tmp_path / "missing.jsonl")]) == 1


def test_log_records_print_under_their_span_and_are_not_spans(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "traces.jsonl"
    warning = {"type": "log", "trace_id": TRACE, "span_id": "d" * 16, "time_ns": T0 + 200 * MS, "severity": "WARN",
               "logger": "function_runtime.invocation", "body": "command catfact: external API failed: 504",
               "service.name": F, "attributes": {}}
    path.write_text("\n".join(json.dumps(s) for s in [*two_service_trace(), warning]) + "\n")
    assert [len(v) for v in load_traces(path).values()] == [5]  # the log line is no span
    assert main(["--file", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if " catfact " in line and "GET" not in line)
    log_line = next(line for line in lines if "· log" in line)
    assert lines.index(log_line) > at and "200.0  WARN function_runtime.invocation: command catfact: external API" \
        in log_line
