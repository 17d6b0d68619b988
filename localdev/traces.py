"""Print recent traces from the local trace file as waterfalls.

    python -m localdev.traces [--file PATH] [--last N] [--trace ID] [--follow]

The file is the JSON-lines sink both processes write when no exporter is configured
(shared/trace_file.py). One line per span, in tree order, indented by depth, each log record
(``"type": "log"`` lines) under the span that was current when it was logged::

    service    span                      start ms   dur ms  |bar|                   attributes

A span whose parent is not in the file (yet) is shown at the top level.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shared.telemetry_exporters import DEFAULT_TRACE_FILE

BAR_WIDTH = 24
NAME_WIDTH = 34
SHOWN_ATTRIBUTES = (
    "app.response",
    "faas.coldstart",
    "messaging.message.delivery_count",
    "http.response.status_code",
    "http.status_code",
    "app.error",
    # scale.decision spans of the local scale controller
    "app.scale.group",
    "app.scale.queue_length",
    "app.scale.instances.before",
    "app.scale.instances.after",
    "app.scale.reason",
)
Span = dict[str, Any]


Log = dict[str, Any]
LOG_TYPE = "log"  # shared/trace_file.py's log record lines


def parse_record(line: str) -> tuple[str, Span] | None:
    """("span", dict) or ("log", dict) from one JSON line; None for a torn, malformed or foreign line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not (isinstance(record, dict) and isinstance(record.get("trace_id"), str)):
        return None
    if "type" in record:
        # A record logged outside any span (start-up, scaling decisions) has trace_id "": still a
        # well-formed log record, just not part of a trace.
        ok = record["type"] == LOG_TYPE and isinstance(record.get("time_ns"), int)
        return (LOG_TYPE, record) if ok else None
    if not isinstance(record.get("span_id"), str):
        return None
    if not all(isinstance(record.get(k, 0), int | None) for k in ("start_ns", "end_ns")):
        return None  # times are what every view sorts and scales by
    return "span", record


def parse_line(line: str) -> Span | None:
    """One span dict from one JSON line; None for a log record, a torn, malformed or foreign line."""
    parsed = parse_record(line)
    return parsed[1] if parsed and parsed[0] == "span" else None


def load_logs(path: Path | str = DEFAULT_TRACE_FILE) -> dict[str, list[Log]]:
    """trace id -> its log records, in file order. {} when the file is missing."""
    logs: dict[str, list[Log]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parsed = parse_record(line)
                if parsed and parsed[0] == LOG_TYPE and parsed[1]["trace_id"]:
                    logs.setdefault(parsed[1]["trace_id"], []).append(parsed[1])
    except FileNotFoundError:
        pass
    return logs


def parse_lines(lines: Iterable[str]) -> Iterator[Span]:
    """Span dicts from JSON lines; a torn or foreign line is skipped."""
    for line in lines:
        span = parse_line(line)
        if span is not None:
            yield span


def group_traces(spans: Iterable[Span]) -> dict[str, list[Span]]:
    traces: dict[str, list[Span]] = {}
    for span in spans:
        traces.setdefault(span["trace_id"], []).append(span)
    return traces


def load_traces(path: Path | str = DEFAULT_TRACE_FILE) -> dict[str, list[Span]]:
    """trace id -> its spans, in file order; oldest trace first. {} when the file is missing."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return group_traces(parse_lines(f))
    except FileNotFoundError:
        return {}


def trace_start(spans: list[Span]) -> int:
    return min(int(s.get("start_ns") or 0) for s in spans)


def is_complete(spans: list[Span]) -> bool:
    """Whether the root (a span with no parent) has arrived. Every span in the file has ended."""
    return any(not s.get("parent_span_id") for s in spans)


def tree_order(spans: list[Span]) -> list[tuple[int, Span]]:
    """(depth, span) depth-first, children by start time; orphans at depth 0."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        parent = span.get("parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    out: list[tuple[int, Span]] = []
    seen: set[str] = set()

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: int(s.get("start_ns") or 0)):
            if span["span_id"] in seen:  # a cycle in a corrupt file must not recurse forever
                continue
            seen.add(span["span_id"])
            out.append((depth, span))
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return out


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _notes(span: Span, depth: int) -> str:
    attrs = span.get("attributes") or {}
    notes = []
    if depth == 0 and "app.command" in attrs:
        notes.append(f"app.command={_short(attrs['app.command'])}")
    if str(span.get("name", "")).endswith(" process") and span.get("service.instance.id"):
        notes.append(f"instance={_short(span['service.instance.id'])}")  # which instance ran it
    notes += [f"{k}={_short(attrs[k])}" for k in SHOWN_ATTRIBUTES if k in attrs]
    status = span.get("status") or {}
    if status.get("code") == "ERROR":
        notes.append(f"ERROR {_short(status.get('description') or '')}".rstrip())
    for event in span.get("events") or []:
        if event.get("name") == "exception":
            ev = event.get("attributes") or {}
            notes.append(f"exception {_short(ev.get('exception.type', ''))}: {_short(ev.get('exception.message', ''))}")
        elif "429" in str(event.get("name")) or "rate" in str(event.get("name")).lower():
            notes.append(f"event {event.get('name')}")
    return "  ".join(notes)


def _log_line(log: Log, depth: int, start: int, svc_width: int) -> str:
    offset = (int(log.get("time_ns") or start) - start) / 1e6
    what = f"{log.get('severity', '')} {log.get('logger', '')}: {_short(log.get('body', ''), 120)}"
    name = ("  " * depth + "· log")[:NAME_WIDTH]
    return f"{log.get('service.name') or '?'!s:<{svc_width}}  {name:<{NAME_WIDTH}} {offset:9.1f}  {what}"


def render_trace(spans: list[Span], logs: Iterable[Log] = ()) -> str:
    """One trace as a text waterfall (one line per span, tree order, indented by depth; logs under their span)."""
    if not spans:
        return ""
    by_span: dict[str | None, list[Log]] = {}
    for log in sorted(logs, key=lambda lg: int(lg.get("time_ns") or 0)):
        by_span.setdefault(log.get("span_id"), []).append(log)
    start = trace_start(spans)
    end = max(int(s.get("end_ns") or s.get("start_ns") or 0) for s in spans)
    total = max(end - start, 1)
    rows = tree_order(spans)
    services = sorted({str(s.get("service.name") or "?") for s in spans})
    svc_width = max(len(s) for s in services)
    lines = [
        f"trace {spans[0]['trace_id']}  {len(spans)} spans  {total / 1e6:.1f} ms  services: {', '.join(services)}",
        f"{'service':<{svc_width}}  {'span':<{NAME_WIDTH}} {'start ms':>9} {'dur ms':>9}  "
        + " " * (BAR_WIDTH + 4)
        + "attributes",
    ]
    for depth, span in rows:
        s0 = int(span.get("start_ns") or start)
        s1 = int(span.get("end_ns") or s0)
        offset, duration = (s0 - start) / 1e6, (s1 - s0) / 1e6
        col = min(int((s0 - start) / total * BAR_WIDTH), BAR_WIDTH - 1)
        width = max(1, round((s1 - s0) / total * BAR_WIDTH))
        bar = (" " * col + "█" * width)[:BAR_WIDTH].ljust(BAR_WIDTH)
        name = ("  " * depth + str(span.get("name", "?")))[:NAME_WIDTH]
        service = str(span.get("service.name") or "?")
        line = f"{service:<{svc_width}}  {name:<{NAME_WIDTH}} {offset:9.1f} {duration:9.1f}  |{bar}|"
        lines.append(f"{line}  {_notes(span, depth)}".rstrip())
        lines += [_log_line(log, depth + 1, start, svc_width) for log in by_span.pop(span.get("span_id"), [])]
    lines += [_log_line(log, 0, start, svc_width) for orphans in by_span.values() for log in orphans]
    return "\n".join(lines)


def select(traces: dict[str, list[Span]], last: int, trace_id: str | None) -> list[list[Span]]:
    chosen = [spans for tid, spans in traces.items() if trace_id is None or tid.startswith(trace_id.lower())]
    chosen.sort(key=trace_start)
    return chosen if trace_id else chosen[-last:]


def follow(path: Path, quiet_s: float = 2.0, poll_s: float = 0.5) -> None:
    """Print each new trace once it has its root and no span has arrived for ``quiet_s``.

    A trace whose root never comes (sampled out upstream, lost) is printed after ``10 * quiet_s``.
    """
    offset = path.stat().st_size if path.exists() else 0
    pending: dict[str, list[Span]] = {}
    last_seen: dict[str, float] = {}
    buffer = ""
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < offset:  # rotated
            offset, buffer = 0, ""
        if size > offset:
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(offset)
                buffer += f.read()
                offset = f.tell()
            *complete, buffer = buffer.split("\n")
            now = time.monotonic()
            for span in parse_lines(complete):
                pending.setdefault(span["trace_id"], []).append(span)
                last_seen[span["trace_id"]] = now
        now = time.monotonic()
        ready = [
            t for t, spans in pending.items() if now - last_seen[t] >= (quiet_s if is_complete(spans) else 10 * quiet_s)
        ]
        for tid in ready:
            print(render_trace(pending.pop(tid)) + "\n", flush=True)
            del last_seen[tid]
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.traces", description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_TRACE_FILE, help=f"default {DEFAULT_TRACE_FILE}")
    parser.add_argument("--last", type=int, default=5, metavar="N", help="show the N most recent traces (5)")
    parser.add_argument("--trace", metavar="ID", help="show the trace whose id starts with ID")
    parser.add_argument("--follow", action="store_true", help="keep printing new traces as they finish")
    args = parser.parse_args(argv)
    if args.follow:
        try:
            follow(args.file)
        except KeyboardInterrupt:
            return 0
    traces = select(load_traces(args.file), max(args.last, 1), args.trace)
    if not traces:
        print(f"no traces in {args.file}" + (f" matching {args.trace}" if args.trace else ""), file=sys.stderr)
        return 1
    logs = load_logs(args.file)
    try:
        print("\n\n".join(render_trace(spans, logs.get(spans[0]["trace_id"], ())) for spans in traces))
    except BrokenPipeError:  # piped into head
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
