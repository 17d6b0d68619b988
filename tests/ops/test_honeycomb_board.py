"""python -m ops.honeycomb_board against a local stub of Honeycomb's query and board APIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops import honeycomb_board
from tests.ops.stub_apis import StubApis, stub_apis

KEY = "hcxik_01boardkey000000000000"


@pytest.fixture
def stub() -> Iterator[StubApis]:
    with stub_apis() as s:
        yield s


def env(stub: StubApis) -> dict[str, str]:
    return {"HONEYCOMB_CONFIG_KEY": KEY, "HONEYCOMB_API_ENDPOINT": stub.url, "HONEYCOMB_DATASET": "discord-bot"}


def test_board_file_asks_the_write_ups_questions() -> None:
    board = honeycomb_board.load_board(honeycomb_board.BOARD_FILE)
    queries = {q["name"]: q["query"] for q in board["queries"]}
    heatmap = queries["What the user waited, by command"]
    assert heatmap["calculations"] == [{"op": "HEATMAP", "column": "app.end_to_end_ms"}]
    assert heatmap["breakdowns"] == ["app.command"]
    p95 = queries["P95 of what the user waited, by command"]
    assert {"op": "P95", "column": "app.end_to_end_ms"} in p95["calculations"]
    assert {"column": "faas.coldstart", "op": "=", "value": True} in queries["Cold starts by command"]["filters"]
    assert "app.error" in queries["Errors by command"]["breakdowns"]
    assert {"column": "http.response.status_code", "op": "=", "value": 429} in queries["Discord 429s"]["filters"]


def test_creates_queries_annotations_and_the_board(stub: StubApis, capsys: pytest.CaptureFixture[str]) -> None:
    assert honeycomb_board.main([], env(stub)) == 0
    board = honeycomb_board.load_board(honeycomb_board.BOARD_FILE)
    n = len(board["queries"])
    posts = [(r.method, r.path.rsplit("/", 1)[0]) for r in stub.requests]
    assert posts.count(("POST", "/1/queries")) == n and posts.count(("POST", "/1/query_annotations")) == n
    assert all(r.headers["x-honeycomb-team"] == KEY for r in stub.requests)
    assert all(r.path.endswith("/discord-bot") for r in stub.requests if "quer" in r.path)
    [saved] = stub.boards.values()
    assert saved["type"] == "flexible" and saved["name"] == "Discord bot" and len(saved["panels"]) == n
    annotations = {r.body["query_id"]: r.body["name"] for r in stub.requests if "query_annotations" in r.path}
    assert [annotations[p["query_panel"]["query_id"]] for p in saved["panels"]] == [q["name"] for q in board["queries"]]
    assert "https://ui.example/board/" in capsys.readouterr().out


def test_running_again_updates_the_same_board(stub: StubApis) -> None:
    assert honeycomb_board.main([], env(stub)) == 0
    first = dict(stub.boards)
    assert honeycomb_board.main([], env(stub)) == 0
    assert list(stub.boards) == list(first)  # no second board
    assert [r.method for r in stub.requests if r.path.startswith("/1/boards/")] == ["PUT"]


def test_refusal_and_missing_key_are_one_line(stub: StubApis, capsys: pytest.CaptureFixture[str]) -> None:
    stub.status["/1/queries/"] = 403
    stub.echo_headers = True
    assert honeycomb_board.main([], env(stub)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "honeycomb: 403" in err and KEY not in err
    assert honeycomb_board.main([], {"HONEYCOMB_API_ENDPOINT": stub.url}) == 2
    assert "HONEYCOMB_CONFIG_KEY" in capsys.readouterr().err
    assert stub.boards == {}


def test_bad_board_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "board.json"
    bad.write_text(json.dumps({"name": "x", "queries": [{"name": "no query"}]}))
    assert honeycomb_board.main(["--file", str(bad), "--dry-run"], {}) == 2
    assert "query 1 needs" in capsys.readouterr().err
