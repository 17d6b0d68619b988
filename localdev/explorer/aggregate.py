"""What the explorer shows, computed from spans: pure functions, no I/O.

A trace is summarised once (:func:`summarise`): its command, what the user waited
(``app.end_to_end_ms`` on the function's process span), errors, cold start, who and where,
and ``fields``: the low-cardinality values BubbleUp compares. Everything else (the command
table, the heatmap, P95 lines, markers, the "what makes these slow" ranking) is computed
from summaries.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localdev.traces import Span, tree_order

MISSING = "(none)"
MAX_VALUE_CHARS = 80
ROWS_PER_DECADE = 8  # heatmap rows: log-spaced, 8 per factor of ten
MIN_DURATION_MS = 0.1
# Per-message ids, free text and measurements: never the answer to "what do the slow ones share".
NOT_DIMENSIONS = frozenset({
    "discord.message.id", "messaging.message.id", "discord.interaction.id", "app.end_to_end_ms",
    "app.response", "app.response.length", "url.full", "SampleRate", "server.port",
    "faas.invoked_name", "messaging.destination.name",  # the command again, under other names
})
WINDOWS_S: Mapping[str, float | None] = {"15m": 15 * 60, "1h": 3600, "1d": 86400, "all": None}


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    start_ns: int
    command: str
    duration_ms: float | None  # None until the function's process span has arrived
    error: bool
    coldstart: bool
    user: str | None
    guild: str | None
    span_count: int
    services: tuple[str, ...]
    versions: Mapping[str, str] = field(default_factory=dict)  # service.name -> service.version
    is_command: bool = True  # False for other traces in the file (the scale controller's scale.decision)
    fields: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id, "start_ms": self.start_ns / 1e6, "command": self.command,
            "duration_ms": self.duration_ms, "error": self.error, "coldstart": self.coldstart,
            "user": self.user, "guild": self.guild, "spans": self.span_count, "services": list(self.services),
        }


def _attrs(span: Span) -> dict[str, Any]:
    attrs = span.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _is_error(span: Span) -> bool:
    status = span.get("status")
    return (isinstance(status, dict) and status.get("code") == "ERROR") or "app.error" in _attrs(span)


def _text(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _process_span(spans: Sequence[Span]) -> Span | None:
    return next((s for s in spans if str(s.get("name", "")).endswith(" process")), None)


def _root_span(spans: Sequence[Span]) -> Span | None:
    return next((s for s in spans if not s.get("parent_span_id")), None)


def self_times_ms(spans: Sequence[Span]) -> dict[str, float]:
    """span id -> the time it alone accounts for: each moment of the trace is counted once, for the
    innermost span running then (the later-started one among equals, e.g. cold_start inside queue.wait)."""
    depth = {str(span.get("span_id")): d for d, span in tree_order(list(spans))}
    spans_ = [(_int(s.get("start_ns")), _int(s.get("end_ns")), str(s.get("span_id"))) for s in spans]
    cuts = sorted({t for s0, s1, _ in spans_ for t in (s0, s1)})
    out = {sid: 0.0 for _, _, sid in spans_}
    for a, b in itertools.pairwise(cuts):
        active = [(depth.get(sid, 0), s0, sid) for s0, s1, sid in spans_ if s0 <= a and s1 >= b]
        if active:
            out[max(active)[2]] += (b - a) / 1e6
    return out


def _slowest_span(spans: Sequence[Span]) -> str | None:
    """The span name that took most of the trace's time on its own (queue.wait, cold_start, a REST call)."""
    own = self_times_ms(spans)
    best = max(spans, key=lambda s: own.get(str(s.get("span_id")), 0.0), default=None)
    return str(best.get("name")) if best is not None else None


def _derived_fields(spans: Sequence[Span], error: bool) -> dict[str, str]:
    """Trace-level facts no single attribute states: rate limits, worst HTTP status per side, where the time went."""
    out: dict[str, str] = {"error": _text(error)}
    slowest = _slowest_span(spans)
    if slowest:
        out["trace.slowest_span"] = _text(slowest)
    rate_limited = waited = False
    discord_status = external_status = 0
    for span in spans:
        attrs = _attrs(span)
        events = [str(e.get("name")) for e in span.get("events") or [] if isinstance(e, dict)]
        status = _int(attrs.get("http.response.status_code", attrs.get("http.status_code")))
        rate_limited = rate_limited or "discord.rate_limited" in events or status == 429
        waited = waited or "discord.ratelimit.wait" in events
        if span.get("kind") == "CLIENT" and status:
            if "url.template" in attrs:  # the Discord REST client names its routes by template
                discord_status = max(discord_status, status)
            else:
                external_status = max(external_status, status)
        if "error.type" in attrs:
            out["error.type"] = _text(attrs["error.type"])
    out["discord.rate_limited"] = _text(rate_limited)
    out["discord.ratelimit.waited"] = _text(waited)
    if discord_status:
        out["discord.http.status"] = str(discord_status)
    if external_status:
        out["external.http.status"] = str(external_status)
    return out


def summarise(trace_id: str, spans: Sequence[Span]) -> TraceSummary:
    """One trace's row: what the explorer filters, aggregates and compares."""
    start = min((_int(s.get("start_ns")) for s in spans), default=0)
    root, process = _root_span(spans), _process_span(spans)
    attrs: dict[str, Any] = {}
    for span in (root, process):  # the process span's view wins (it knows cold start, flags, ...)
        if span is not None:
            attrs.update(_attrs(span))
    duration: float | None = None
    if process is not None:
        e2e = _attrs(process).get("app.end_to_end_ms")
        if isinstance(e2e, int | float) and not isinstance(e2e, bool):
            duration = float(e2e)
        else:  # the reply was never sent (an error): the trace's own extent
            duration = (max(_int(s.get("end_ns")) for s in spans) - start) / 1e6
    # The command failed (its root or process span says so, or it recorded app.error); a retried
    # 429 or a failed attempt that a retry fixed is visible in the waterfall, not counted here.
    error = any(_is_error(s) for s in (root, process) if s is not None) or any("app.error" in _attrs(s) for s in spans)
    versions: dict[str, str] = {}
    fields = {k: _text(v) for k, v in attrs.items() if k not in NOT_DIMENSIONS and not isinstance(v, float | list)}
    for span in spans:
        if span.get("service.version"):
            versions.setdefault(str(span.get("service.name") or "?"), str(span["service.version"]))
    for span, key in ((process or root, "service.version"), (process, "service.instance.id")):
        if span is not None and span.get(key):
            fields[key] = _text(span[key])
    fields.update(_derived_fields(spans, error))
    user = attrs.get("discord.author.name") or attrs.get("discord.author.id")
    return TraceSummary(
        trace_id=trace_id,
        start_ns=start,
        command=str(attrs.get("app.command") or (root or spans[0]).get("name") or "?"),
        duration_ms=duration,
        error=error,
        coldstart=attrs.get("faas.coldstart") is True,
        user=str(user) if user else None,
        guild=str(attrs["discord.guild.id"]) if attrs.get("discord.guild.id") else None,
        span_count=len(spans),
        services=tuple(sorted({str(s.get("service.name") or "?") for s in spans})),
        versions=versions,
        fields=fields,
        is_command="app.command" in attrs,
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, linear between closest ranks (as numpy's default); None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def window_bounds(summaries: Sequence[TraceSummary], window: str, now_ns: int) -> tuple[int, int]:
    """[t0, t1) in ns for a named window; "all" spans the traces there are (padded when one)."""
    seconds = WINDOWS_S[window]
    if seconds is not None:
        return now_ns - int(seconds * 1e9), now_ns
    if not summaries:
        return now_ns - 3600 * 10**9, now_ns
    t0 = min(s.start_ns for s in summaries)
    t1 = max(s.start_ns for s in summaries)
    pad = max((t1 - t0) // 20, 30 * 10**9)
    return t0 - pad, t1 + pad


def command_stats(summaries: Iterable[TraceSummary]) -> list[dict[str, Any]]:
    """Per command: count, P50/P95/P99 of end-to-end ms, errors, cold starts; slowest P95 first."""
    by_command: dict[str, list[TraceSummary]] = {}
    for s in summaries:
        by_command.setdefault(s.command, []).append(s)
    rows: list[dict[str, Any]] = []
    for command, items in by_command.items():
        durations = [s.duration_ms for s in items if s.duration_ms is not None]
        rows.append({
            "command": command,
            "count": len(items),
            "p50": percentile(durations, 50),
            "p95": percentile(durations, 95),
            "p99": percentile(durations, 99),
            "errors": sum(s.error for s in items),
            "cold_starts": sum(s.coldstart for s in items),
            "pending": sum(s.duration_ms is None for s in items),
        })
    rows.sort(key=lambda r: (-(r["p95"] if r["p95"] is not None else -1), r["command"]))
    return rows


def duration_edges(durations: Iterable[float]) -> list[float]:
    """Log-spaced row edges (ms) covering every duration, ROWS_PER_DECADE per factor of ten."""
    ds = [max(d, MIN_DURATION_MS) for d in durations]
    if not ds:
        return [1.0, 10 ** (1 / ROWS_PER_DECADE)]
    lo = math.floor(math.log10(min(ds)) * ROWS_PER_DECADE)
    hi = math.floor(math.log10(max(ds)) * ROWS_PER_DECADE) + 1
    return [10 ** (k / ROWS_PER_DECADE) for k in range(lo, hi + 1)]


def _row(duration: float, edges: Sequence[float]) -> int:
    k = math.floor(math.log10(max(duration, MIN_DURATION_MS)) * ROWS_PER_DECADE)
    lo = round(math.log10(edges[0]) * ROWS_PER_DECADE)
    return min(max(k - lo, 0), len(edges) - 2)


def heatmap(summaries: Iterable[TraceSummary], t0_ns: int, t1_ns: int, columns: int) -> dict[str, Any]:
    """Counts of traces per (time column, duration row), each cell with its slowest trace to open."""
    items = [s for s in summaries if s.duration_ms is not None and t0_ns <= s.start_ns < t1_ns]
    edges = duration_edges(s.duration_ms for s in items if s.duration_ms is not None)
    col_ns = max((t1_ns - t0_ns) / columns, 1.0)
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for s in items:
        assert s.duration_ms is not None
        key = (min(int((s.start_ns - t0_ns) / col_ns), columns - 1), _row(s.duration_ms, edges))
        cell = cells.setdefault(key, {"col": key[0], "row": key[1], "count": 0, "slowest_ms": -1.0, "trace_id": ""})
        cell["count"] += 1
        if s.duration_ms > cell["slowest_ms"]:
            cell["slowest_ms"], cell["trace_id"] = s.duration_ms, s.trace_id
    return {
        "t0_ms": t0_ns / 1e6, "t1_ms": t1_ns / 1e6, "col_ms": col_ns / 1e6, "columns": columns,
        "edges_ms": edges, "cells": sorted(cells.values(), key=lambda c: (c["col"], c["row"])),
        "max_count": max((c["count"] for c in cells.values()), default=0),
    }


def p95_series(summaries: Iterable[TraceSummary], t0_ns: int, t1_ns: int, columns: int) -> dict[str, Any]:
    """P95 of end-to-end ms per command per time column (None where a command had no traces)."""
    col_ns = max((t1_ns - t0_ns) / columns, 1.0)
    buckets: dict[str, list[list[float]]] = {}
    for s in summaries:
        if s.duration_ms is None or not t0_ns <= s.start_ns < t1_ns:
            continue
        col = min(int((s.start_ns - t0_ns) / col_ns), columns - 1)
        buckets.setdefault(s.command, [[] for _ in range(columns)])[col].append(s.duration_ms)
    return {
        "x_ms": [(t0_ns + (i + 0.5) * col_ns) / 1e6 for i in range(columns)],
        "series": {cmd: [percentile(b, 95) for b in cols] for cmd, cols in sorted(buckets.items())},
    }


def version_markers(summaries: Iterable[TraceSummary], merge_within_ns: int = 60 * 10**9) -> list[dict[str, Any]]:
    """A marker where a service's ``service.version`` changes; one per release when both services changed."""
    last: dict[str, str] = {}
    markers: list[dict[str, Any]] = []
    for s in sorted(summaries, key=lambda s: s.start_ns):
        for service, version in sorted(s.versions.items()):
            before = last.get(service)
            last[service] = version
            if before is None or before == version:
                continue
            near = next((m for m in markers if m["version"] == version
                         and abs(m["time_ns"] - s.start_ns) <= merge_within_ns), None)
            if near is not None:
                near["message"] += f", {service} {before} → {version}"
                continue
            markers.append({"time_ns": s.start_ns, "type": "version", "version": version,
                            "message": f"{service} {before} → {version}", "url": None})
    return markers


def parse_marker(raw: Any) -> dict[str, Any] | None:
    """A marker line from ``ops.markers --local`` (``.localdev/markers.jsonl``); None when malformed."""
    if not isinstance(raw, dict):
        return None
    t, version = raw.get("time_unix_nano"), raw.get("version")
    if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
        return None
    url = raw.get("url")
    return {
        "time_ns": t,
        "type": str(raw.get("type") or "deploy"),
        "version": str(version) if version is not None else "",
        "message": str(raw.get("message") or ""),
        "url": url if isinstance(url, str) and url.startswith(("http://", "https://")) else None,
    }


@dataclass(frozen=True)
class TraceFilter:
    command: str | None = None
    user: str | None = None
    guild: str | None = None
    error: bool | None = None
    coldstart: bool | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    t0_ns: int | None = None
    t1_ns: int | None = None

    def __call__(self, s: TraceSummary) -> bool:
        checks: list[Callable[[], bool]] = [
            lambda: self.command is None or s.command == self.command,
            lambda: self.user is None or self.user.lower() in (s.user or "").lower()
            or self.user == s.fields.get("discord.author.id"),
            lambda: self.guild is None or self.guild == s.guild,
            lambda: self.error is None or s.error == self.error,
            lambda: self.coldstart is None or s.coldstart == self.coldstart,
            lambda: self.min_ms is None or (s.duration_ms is not None and s.duration_ms >= self.min_ms),
            lambda: self.max_ms is None or (s.duration_ms is not None and s.duration_ms < self.max_ms),
            lambda: self.t0_ns is None or s.start_ns >= self.t0_ns,
            lambda: self.t1_ns is None or s.start_ns < self.t1_ns,
        ]
        return all(check() for check in checks)


def bubbleup(summaries: Iterable[TraceSummary], selected: Callable[[TraceSummary], bool],
             max_values: int = 6) -> dict[str, Any]:
    """Which field values are over-represented in the selection compared with the rest.

    For every field: the share of selected traces with each value against the share of the
    other traces with it. A field scores its most over-represented value's difference in
    share; fields with one value everywhere, or a different value on most traces (ids), are left out.
    """
    items = list(summaries)
    sel = [s for s in items if selected(s)]
    base = [s for s in items if not selected(s)]
    names = sorted({k for s in items for k in s.fields})
    dims: list[dict[str, Any]] = []
    for name in names:
        in_sel = Counter(s.fields.get(name, MISSING) for s in sel)
        in_base = Counter(s.fields.get(name, MISSING) for s in base)
        distinct = set(in_sel) | set(in_base)
        if len(distinct) < 2 or len(distinct) > max(12, len(items) // 2):
            continue
        values: list[dict[str, Any]] = []
        for value in distinct:
            p_sel = in_sel[value] / len(sel) if sel else 0.0
            p_base = in_base[value] / len(base) if base else 0.0
            values.append({"value": value, "selected": in_sel[value], "baseline": in_base[value],
                           "selected_pct": 100 * p_sel, "baseline_pct": 100 * p_base, "diff": 100 * (p_sel - p_base)})
        values.sort(key=lambda v: (-v["diff"], -v["selected"], v["value"]))
        dims.append({"field": name, "score": values[0]["diff"], "values": values[:max_values]})
    dims.sort(key=lambda d: (-d["score"], d["field"]))
    return {"selected": len(sel), "baseline": len(base), "fields": dims}


def waterfall(trace_id: str, spans: Sequence[Span], logs: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """One trace for the waterfall page: spans in tree order with offsets from the trace start, each
    with the log records written while it was the current span (at their moment)."""
    start = min((_int(s.get("start_ns")) for s in spans), default=0)
    end = max((_int(s.get("end_ns") or s.get("start_ns")) for s in spans), default=start)
    rows: list[dict[str, Any]] = []
    own = self_times_ms(spans)
    by_span: dict[Any, list[dict[str, Any]]] = {}
    for log in sorted(logs, key=lambda lg: _int(lg.get("time_ns"))):
        by_span.setdefault(log.get("span_id"), []).append({
            "offset_ms": (_int(log.get("time_ns"), start) - start) / 1e6, "severity": log.get("severity") or "",
            "logger": log.get("logger") or "", "body": str(log.get("body") or ""), "service": log.get("service.name"),
            "attributes": log.get("attributes") or {},
        })
    for depth, span in tree_order(list(spans)):
        s0 = _int(span.get("start_ns"), start)
        s1 = _int(span.get("end_ns"), s0)
        rows.append({
            "depth": depth, "span_id": span.get("span_id"), "parent_span_id": span.get("parent_span_id"),
            "name": str(span.get("name", "?")), "service": str(span.get("service.name") or "?"),
            "version": span.get("service.version"), "kind": span.get("kind"),
            "offset_ms": (s0 - start) / 1e6, "duration_ms": (s1 - s0) / 1e6,
            "self_ms": own.get(str(span.get("span_id")), 0.0),
            "status": span.get("status") or {}, "error": _is_error(span), "attributes": _attrs(span),
            "events": [
                {"name": e.get("name"), "offset_ms": (_int(e.get("time_ns"), s0) - start) / 1e6,
                 "attributes": e.get("attributes") or {}}
                for e in span.get("events") or [] if isinstance(e, dict)
            ],
            "links": [
                {"trace_id": str(link.get("trace_id", "")), "span_id": str(link.get("span_id", "")),
                 "attributes": link.get("attributes") or {}}
                for link in span.get("links") or [] if isinstance(link, dict)
            ],
            "logs": by_span.pop(span.get("span_id"), []),
        })
    return {"trace_id": trace_id, "start_ms": start / 1e6, "duration_ms": (end - start) / 1e6,
            "summary": summarise(trace_id, spans).to_json(), "spans": rows,
            "log_count": sum(len(r["logs"]) for r in rows) + sum(len(v) for v in by_span.values()),
            "unplaced_logs": [log for orphans in by_span.values() for log in orphans]}
