"""The explorer's numbers: percentiles, heatmap buckets, P95 lines, markers and BubbleUp."""

from __future__ import annotations

import itertools
import json
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localdev.explorer import aggregate as agg
from localdev.traces import parse_line
from tests.localdev.explorer.spans import MS, make_trace, scenario

T0 = 1_800_000_000 * 10**9


def summary(spans: list[dict]) -> agg.TraceSummary:
    return agg.summarise(spans[0]["trace_id"], spans)


def test_percentile_is_linear_between_closest_ranks() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert agg.percentile(xs, 50) == pytest.approx(50.5)
    assert agg.percentile(xs, 95) == pytest.approx(95.05)
    assert agg.percentile(xs, 99) == pytest.approx(99.01)
    assert agg.percentile([7.0], 95) == 7.0
    assert agg.percentile([], 95) is None
    assert agg.percentile([3.0, 1.0, 2.0], 0) == 1.0 and agg.percentile([3.0, 1.0, 2.0], 100) == 3.0


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=2, max_size=60), st.integers(1, 99))
def test_percentile_matches_statistics_inclusive(xs: list[float], q: int) -> None:
    expected = statistics.quantiles(xs, n=100, method="inclusive")[q - 1]
    assert agg.percentile(xs, q) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_summary_of_a_cold_start_reads_the_process_span() -> None:
    s = summary(make_trace("ping", T0, wait_ms=3000, coldstart=True, user="bob", user_id="42", guild="7"))
    assert s.command == "ping" and s.coldstart and not s.error
    assert s.duration_ms == pytest.approx(3000 + 0.3 + 5 + 25, abs=0.2)  # app.end_to_end_ms
    assert (s.user, s.guild, s.span_count) == ("bob", "7", 9)
    assert s.fields["faas.coldstart"] == "true" and s.fields["discord.rate_limited"] == "false"
    assert s.fields["trace.slowest_span"] == "cold_start"
    assert s.fields["service.version"] == "0.1.0" and s.fields["service.instance.id"] == "inst-a"
    assert "discord.message.id" not in s.fields and "messaging.message.id" not in s.fields
    assert s.versions == {"discord-bot-listener": "0.1.0", "discord-bot-functions": "0.1.0"}


def test_summary_sees_rate_limits_errors_and_http_status_per_side() -> None:
    limited = summary(make_trace("catfact", T0, rate_limited=True))
    assert limited.fields["discord.rate_limited"] == "true"
    assert limited.fields["discord.http.status"] == "429"  # the worst Discord answer in the trace
    assert limited.fields["external.http.status"] == "200"
    assert limited.fields["trace.slowest_span"] == "discord.send_response"  # the 1.5 s retry_after wait
    assert not limited.error  # the 429 attempt is an ERROR span, but the retry delivered the reply
    assert limited.fields["error.type"] == "429"

    failed = summary(make_trace("catfact", T0, error=True))
    assert failed.error and failed.fields["error"] == "true" and failed.fields["external.http.status"] == "503"


def test_a_trace_whose_function_has_not_run_has_no_duration_yet() -> None:
    spans = [s for s in make_trace("ping", T0) if s["service.name"] == "discord-bot-listener"]
    s = summary(spans)
    assert s.duration_ms is None and s.command == "ping"
    assert agg.command_stats([s])[0] == {"command": "ping", "count": 1, "p50": None, "p95": None, "p99": None,
                                         "errors": 0, "cold_starts": 0, "pending": 1}


def test_command_stats_per_command_slowest_p95_first() -> None:
    fast = [summary(make_trace("ping", T0 + i * MS, wait_ms=100 + i)) for i in range(20)]
    slow = [summary(make_trace("mtg", T0, wait_ms=900, coldstart=True)),
            summary(make_trace("mtg", T0, wait_ms=100, error=True))]
    rows = agg.command_stats(fast + slow)
    assert [r["command"] for r in rows] == ["mtg", "ping"]
    mtg, ping = rows
    assert (mtg["count"], mtg["errors"], mtg["cold_starts"]) == (2, 1, 1)
    durations = [s.duration_ms for s in fast if s.duration_ms is not None]
    assert ping["p50"] == agg.percentile(durations, 50) and ping["p99"] == agg.percentile(durations, 99)
    assert ping["count"] == 20 and ping["p95"] == pytest.approx(130.3 + 0.95 * 19)


def test_duration_edges_are_log_spaced_and_cover_every_duration() -> None:
    edges = agg.duration_edges([120.0, 4300.0])
    assert edges[0] <= 120 < edges[1] and edges[-2] <= 4300 < edges[-1]
    ratios = {round(b / a, 6) for a, b in itertools.pairwise(edges)}
    assert ratios == {round(10 ** (1 / agg.ROWS_PER_DECADE), 6)}
    assert agg.duration_edges([]) == [1.0, 10 ** (1 / agg.ROWS_PER_DECADE)]


def test_heatmap_counts_traces_per_cell_and_keeps_the_slowest_to_open() -> None:
    col = 60 * 10**9  # 10 columns over 10 minutes
    a = summary(make_trace("ping", T0 + 5 * 10**9, wait_ms=100))  # column 0
    b = summary(make_trace("ping", T0 + 50 * 10**9, wait_ms=101))  # column 0, same row
    c = summary(make_trace("ping", T0 + 3 * col + 1, wait_ms=3000))  # column 3, a higher row
    late = summary(make_trace("ping", T0 + 10 * col, wait_ms=100))  # outside [t0, t1)
    h = agg.heatmap([a, b, c, late], T0, T0 + 10 * col, 10)
    assert h["col_ms"] == 60_000 and h["max_count"] == 2
    cells = {(x["col"], x["row"]): x for x in h["cells"]}
    assert len(cells) == 2
    low = next(x for (cl, _), x in cells.items() if cl == 0)
    assert low["count"] == 2 and low["trace_id"] == b.trace_id and low["slowest_ms"] == b.duration_ms
    high = next(x for (cl, _), x in cells.items() if cl == 3)
    edges = h["edges_ms"]
    assert high["row"] > low["row"]
    assert edges[high["row"]] <= c.duration_ms < edges[high["row"] + 1]
    assert edges[low["row"]] <= a.duration_ms < edges[low["row"] + 1]


def test_p95_series_per_command_per_column() -> None:
    items = [summary(make_trace("ping", T0 + i * 10**9, wait_ms=100 + 10 * i)) for i in range(10)]
    items.append(summary(make_trace("mtg", T0 + 70 * 10**9, wait_ms=500)))
    out = agg.p95_series(items, T0, T0 + 120 * 10**9, 2)
    assert len(out["x_ms"]) == 2 and out["x_ms"][0] == pytest.approx((T0 + 30 * 10**9) / 1e6)
    first = [s.duration_ms for s in items[:10] if s.duration_ms is not None]
    assert out["series"]["ping"][0] == agg.percentile(first, 95)
    assert out["series"]["ping"][1] is None
    assert out["series"]["mtg"] == [None, items[-1].duration_ms]


def test_version_markers_where_service_version_changes_one_per_release() -> None:
    items = [summary(make_trace("ping", T0 + i * 10**9, version="0.1.0")) for i in range(3)]
    release = summary(make_trace("ping", T0 + 10 * 10**9, version="0.2.0"))
    items += [release, summary(make_trace("ping", T0 + 11 * 10**9, version="0.2.0"))]
    markers = agg.version_markers(items)
    assert len(markers) == 1
    assert markers[0]["time_ns"] == release.start_ns and markers[0]["version"] == "0.2.0"
    assert "discord-bot-functions 0.1.0 → 0.2.0" in markers[0]["message"]
    assert "discord-bot-listener 0.1.0 → 0.2.0" in markers[0]["message"]


def test_parse_marker_keeps_the_ops_markers_shape_and_refuses_the_rest() -> None:
    good = {"time_unix_nano": T0, "type": "deploy", "version": "1.4.0", "message": "CD run 12", "url": None}
    assert agg.parse_marker(good) == {"time_ns": T0, "type": "deploy", "version": "1.4.0",
                                      "message": "CD run 12", "url": None}
    assert agg.parse_marker({**good, "url": "javascript:alert(1)"})["url"] is None
    bad: object
    for bad in ([], "x", {"version": "1"}, {**good, "time_unix_nano": "soon"}, {**good, "time_unix_nano": -1}):
        assert agg.parse_marker(bad) is None


def test_bubbleup_ranks_what_the_selection_has_more_of() -> None:
    items = [summary(make_trace("ping", T0 + i * 10**9, wait_ms=100 + i, user=f"u{i % 3}")) for i in range(30)]
    items += [summary(make_trace("ping", T0 + i * 10**9, wait_ms=3000, coldstart=True, user=f"u{i % 3}"))
              for i in range(6)]
    items += [summary(make_trace("ping", T0, wait_ms=100, rate_limited=True))]
    out = agg.bubbleup(items, agg.TraceFilter(min_ms=2000))
    assert (out["selected"], out["baseline"]) == (6, 31)
    top = out["fields"][0]
    assert top["field"] in ("faas.coldstart", "trace.slowest_span")
    cold = next(f for f in out["fields"] if f["field"] == "faas.coldstart")
    assert cold["score"] == pytest.approx(100.0)
    first = cold["values"][0]
    assert (first["value"], first["selected"], first["baseline"]) == ("true", 6, 0)
    assert first["selected_pct"] == 100 and first["baseline_pct"] == 0
    names = [f["field"] for f in out["fields"]]
    assert names.index("faas.coldstart") < names.index("discord.author.name")  # users are spread evenly
    assert "app.command" not in names  # one value everywhere: says nothing


def test_bubbleup_leaves_out_per_trace_unique_values() -> None:
    items = [summary(make_trace("ping", T0, wait_ms=100 + i, user=f"user{i}")) for i in range(40)]
    out = agg.bubbleup(items, agg.TraceFilter(min_ms=120))
    assert "discord.author.name" not in [f["field"] for f in out["fields"]]  # 40 different names


def test_trace_filter() -> None:
    s = summary(make_trace("ping", T0, coldstart=True, user="Alice", user_id="1001", guild="77"))
    assert agg.TraceFilter(command="ping", user="ali", guild="77", coldstart=True, error=False, min_ms=100)(s)
    assert agg.TraceFilter(user="1001")(s)
    assert not agg.TraceFilter(command="mtg")(s)
    assert not agg.TraceFilter(min_ms=10_000)(s)
    assert not agg.TraceFilter(t0_ns=T0 + 1)(s)
    assert not agg.TraceFilter(error=True)(s)


def test_waterfall_nests_spans_with_offsets_and_own_time() -> None:
    spans = make_trace("catfact", T0, wait_ms=200, work_ms=50)
    out = agg.waterfall(spans[0]["trace_id"], list(reversed(spans)))  # file order does not matter
    rows = out["spans"]
    assert [(r["depth"], r["name"]) for r in rows[:4]] == [
        (0, "discord.command"), (1, "cmd-catfact send"), (2, "cmd-catfact process"), (3, "queue.wait")]
    by_name = {r["name"]: r for r in rows}
    assert by_name["GET"]["depth"] == 4 and by_name["catfact"]["self_ms"] == pytest.approx(0.4, abs=0.01)
    assert sum(r["self_ms"] for r in rows) == pytest.approx(out["duration_ms"], rel=1e-6)  # each moment once
    assert by_name["queue.wait"]["self_ms"] == pytest.approx(196.0, abs=0.01)
    assert by_name["queue.wait"]["offset_ms"] == pytest.approx(4.0)
    assert by_name["feature_flags"]["events"][0]["name"] == "feature_flag.evaluation"
    assert out["summary"]["command"] == "catfact"


def test_scenario_is_busy_enough_to_look_at() -> None:
    items = [summary(s) for s in _group(scenario(T0 + 3600 * 10**9))]
    assert len(items) > 150
    assert {s.command for s in items} >= {"ping", "catfact", "mtg", "help", "roll", "relationships"}
    assert any(s.coldstart for s in items) and any(s.fields["discord.rate_limited"] == "true" for s in items)


def _group(spans: list[dict]) -> list[list[dict]]:
    out: dict[str, list[dict]] = {}
    for s in spans:
        out.setdefault(s["trace_id"], []).append(s)
    return list(out.values())


def test_odd_but_parseable_spans_never_break_a_page() -> None:
    lines = [
        {"trace_id": "ab", "span_id": "0", "start_ns": "soon"},  # no usable time: a malformed line
        {"trace_id": 5, "span_id": "0"},
        {"trace_id": "ab", "span_id": "1", "attributes": [1], "events": {"a": 1}, "status": "bad", "name": None},
        {"trace_id": "ab", "span_id": "2", "parent_span_id": "1", "end_ns": 5, "events": ["x", {"name": 3}]},
    ]
    odd = [s for s in (parse_line(json.dumps(x)) for x in lines) if s is not None]
    assert [s["span_id"] for s in odd] == ["1", "2"]
    s = agg.summarise("ab", odd)
    assert s.span_count == 2 and s.duration_ms is None and not s.error
    out = agg.waterfall("ab", odd)
    assert [r["depth"] for r in out["spans"]] == [0, 1] and out["spans"][1]["events"][0]["name"] == 3
    assert agg.bubbleup([s], agg.TraceFilter())["selected"] == 1


def test_waterfall_carries_span_links_to_the_other_trace() -> None:
    spans = make_trace("ping", 1_000 * MS)
    linked = "ab" * 16
    spans[0]["links"] = [{"trace_id": linked, "span_id": "cd" * 8, "attributes": {"app.link.reason": "created_by"}}]
    rows = agg.waterfall(spans[0]["trace_id"], spans)["spans"]
    links = [link for row in rows for link in row["links"]]
    assert links == [{"trace_id": linked, "span_id": "cd" * 8, "attributes": {"app.link.reason": "created_by"}}]
