"""The explorer's data: the local span file followed live, grouped into traces.

:class:`SpanFile` follows the file as ``tail -F`` does: it reads only what was appended,
keeps a torn last line until its newline arrives, drains a rotated file (the writer renames
it to ``<name>.1``) before switching to the new one, and starts over when the file was
truncated. A malformed line is skipped and counted, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from localdev.explorer.aggregate import TraceSummary, parse_marker, summarise
from localdev.traces import LOG_TYPE, Log, Span, parse_record


@dataclass
class Batch:
    spans: list[Span]
    skipped: int
    reset: bool = False  # the file was truncated: what was read before is gone
    logs: list[Log] = field(default_factory=list)  # "type": "log" lines: log records in their trace


class SpanFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self._buffer = b""
        self._first_open = True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def poll(self) -> Batch:
        """The spans appended since the last call."""
        batch = Batch([], 0)
        if self._fh is None and not self._open(batch):
            return batch
        assert self._fh is not None
        self._read(batch)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return batch  # rotated, new file not there yet: keep the old handle (already drained)
        if st.st_ino != os.fstat(self._fh.fileno()).st_ino:  # rotated or replaced: switch to the new file
            self.close()
            self._buffer = b""
            if self._open(batch):
                self._read(batch)
        elif st.st_size < self._fh.tell():  # truncated in place
            self._fh.seek(0)
            self._buffer = b""
            batch.reset = True
            batch.spans.clear()
            batch.logs.clear()
            self._read(batch)
        return batch

    def _open(self, batch: Batch) -> bool:
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open to drain it after a rotation
        except FileNotFoundError:
            return False
        if self._first_open:  # the previous rotation's spans are still this run's history
            self._first_open = False
            rotated = self.path.with_name(self.path.name + ".1")
            with contextlib.suppress(OSError):
                self._lines(rotated.read_bytes() + b"\n", batch)
        return True

    def _read(self, batch: Batch) -> None:
        assert self._fh is not None
        data = self._fh.read()
        if data:
            self._buffer = self._lines(self._buffer + data, batch)

    @staticmethod
    def _lines(data: bytes, batch: Batch) -> bytes:
        *complete, rest = data.split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            parsed = parse_record(line)
            if parsed is None:
                batch.skipped += 1
            else:
                (batch.logs if parsed[0] == LOG_TYPE else batch.spans).append(parsed[1])
        return rest


@dataclass
class TraceStore:
    """Traces by id, with cached summaries; ``version`` changes whenever anything does."""

    traces: dict[str, list[Span]] = field(default_factory=dict)
    logs: dict[str, list[Log]] = field(default_factory=dict)
    skipped_lines: int = 0
    span_count: int = 0
    version: int = 0
    _summaries: dict[str, TraceSummary] = field(default_factory=dict)

    def apply(self, batch: Batch) -> None:
        if batch.reset:
            self.traces.clear()
            self.logs.clear()
            self._summaries.clear()
            self.span_count = 0
        for log in batch.logs:
            if log["trace_id"]:  # the explorer shows logs in their trace; the others are the processes' own
                self.logs.setdefault(str(log["trace_id"]).lower(), []).append(log)
        for span in batch.spans:
            tid = str(span["trace_id"]).lower()
            self.traces.setdefault(tid, []).append(span)
            self._summaries.pop(tid, None)
        self.span_count += len(batch.spans)
        self.skipped_lines += batch.skipped
        if batch.spans or batch.logs or batch.skipped or batch.reset:
            self.version += 1

    def summaries(self) -> list[TraceSummary]:
        for tid, spans in self.traces.items():
            if tid not in self._summaries:
                self._summaries[tid] = summarise(tid, spans)
        return list(self._summaries.values())

    def find(self, trace_id: str) -> tuple[str, list[Span]] | None:
        """The trace with this id, or the only one starting with it (a prefix from a reply or a log)."""
        tid = trace_id.lower()
        if tid in self.traces:
            return tid, self.traces[tid]
        matches = [t for t in self.traces if t.startswith(tid)]
        return (matches[0], self.traces[matches[0]]) if len(matches) == 1 else None


class MarkerFile:
    """Deployment markers written by ``python -m ops.markers --local``; re-read when the file changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.markers: list[dict[str, Any]] = []
        self.skipped_lines = 0
        self._seen: tuple[int, int, int] | None = None

    def poll(self) -> bool:
        """Whether the markers changed."""
        if self.path is None:
            return False
        try:
            st = os.stat(self.path)
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if key == self._seen:
                return False
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            changed, self.markers, self.skipped_lines, self._seen = bool(self.markers), [], 0, None
            return changed
        self._seen = key
        markers, skipped = [], 0
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                marker = parse_marker(json.loads(line))
            except ValueError:
                marker = None
            if marker is None:
                skipped += 1
            else:
                markers.append(marker)
        self.markers, self.skipped_lines = markers, skipped
        return True
