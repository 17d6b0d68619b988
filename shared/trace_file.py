"""The local trace sink: finished spans as JSON lines, one span per line.

Both processes (listener and functions host) append to the same file. Each batch is
written with one ``write()`` on a descriptor opened with ``O_APPEND``, so lines from the
two processes interleave but never tear. The file is reopened for every batch, which
makes rotation (rename to ``<name>.1`` past ``max_bytes``) safe across processes: the
other process simply creates the new file on its next batch.

``python -m localdev.traces`` reads the file back and prints waterfalls.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_log = logging.getLogger(__name__)

MAX_BYTES = 10 * 1024 * 1024


def _value(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _attrs(attributes: Any) -> dict[str, Any]:
    return {k: _value(v) for k, v in (attributes or {}).items()}


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as the plain dict the viewer reads."""
    ctx = span.context
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service.name": span.resource.attributes.get("service.name", ""),
        # Resource fields the explorer groups by (deployment markers, which instance ran a command).
        "service.version": span.resource.attributes.get("service.version"),
        "service.instance.id": span.resource.attributes.get("service.instance.id", ""),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": _attrs(span.attributes),
        "events": [{"name": e.name, "time_ns": e.timestamp, "attributes": _attrs(e.attributes)} for e in span.events],
        # Span links (a reminder's firing trace links to the command that created it).
        "links": [{"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}",
                   "attributes": _attrs(link.attributes)} for link in span.links],
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends spans to ``path`` as JSON lines; rotates to ``<path>.1`` past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(span_to_dict(s), default=str, ensure_ascii=False) + "\n" for s in spans)
        try:
            self._rotate_if_large()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data.encode("utf-8"))
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            _log.warning("trace file %s: %s", self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _rotate_if_large(self) -> None:
        try:
            if self.path.stat().st_size <= self.max_bytes:
                return
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass  # not written yet, or the other process just rotated it

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
