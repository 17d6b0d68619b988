"""Apply the Honeycomb board: ``python -m ops.honeycomb_board [--file ops/honeycomb/board.json] [--dry-run]``.

Creates each query of the board file (``POST /1/queries/<dataset>``), names it with a query
annotation (``POST /1/query_annotations/<dataset>``) and creates or updates the flexible board of
that name (``GET/POST/PUT /1/boards``). Re-running replaces the board's panels, so the file stays
the source of truth. Needs ``HONEYCOMB_CONFIG_KEY`` with the Manage Queries and Columns and Manage
Public Boards permissions; ``HONEYCOMB_API_ENDPOINT`` and ``HONEYCOMB_DATASET`` as for markers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from ops.api import ALL_DATASETS, HONEYCOMB_ENDPOINT, ApiError, endpoint, honeycomb_key, json_body, send

BOARD_FILE = Path(__file__).resolve().parent / "honeycomb" / "board.json"
PERMISSIONS = "'Manage Queries and Columns' and 'Manage Public Boards'"
PANEL_WIDTH, PANEL_HEIGHT = 6, 6  # two panels per row on Honeycomb's 12-column grid


def load_board(path: Path) -> dict[str, Any]:
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApiError(f"{path}: not a readable JSON board file ({exc})", 2) from None
    if not isinstance(board.get("name"), str) or not board.get("queries"):
        raise ApiError(f"{path}: needs a name and a list of queries", 2)
    for i, q in enumerate(board["queries"]):
        if not isinstance(q.get("name"), str) or not isinstance(q.get("query"), dict):
            raise ApiError(f"{path}: query {i + 1} needs a name and a query object", 2)
    return dict(board)


@dataclass(frozen=True, repr=False)
class BoardSettings:
    key: str
    endpoint: str
    dataset: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BoardSettings:
        return cls(key=honeycomb_key(env, PERMISSIONS),
                   endpoint=endpoint(env, "HONEYCOMB_API_ENDPOINT", HONEYCOMB_ENDPOINT),
                   dataset=quote(env.get("HONEYCOMB_DATASET", "").strip() or ALL_DATASETS, safe=""))


def apply_board(board: Mapping[str, Any], settings: BoardSettings, session: requests.Session) -> str:
    """Create the queries and the board (or replace the panels of the board of that name); returns its URL."""
    dataset, headers = settings.dataset, {"X-Honeycomb-Team": settings.key}

    def call(method: str, path: str, body: Any = None) -> Any:
        url = f"{settings.endpoint}{path}"
        resp = send(session, "honeycomb", method, url, settings.key, json=body, headers=headers)
        return json_body(resp, "honeycomb")

    panels = []
    for i, spec in enumerate(board["queries"]):
        query_id = call("POST", f"/1/queries/{dataset}", spec["query"])["id"]
        annotation = {"name": spec["name"], "description": spec.get("description", ""), "query_id": query_id}
        annotation_id = call("POST", f"/1/query_annotations/{dataset}", annotation)["id"]
        panels.append({
            "type": "query",
            "query_panel": {"query_id": query_id, "query_annotation_id": annotation_id},
            "position": {"x_coordinate": (i % 2) * PANEL_WIDTH, "y_coordinate": (i // 2) * PANEL_HEIGHT,
                         "width": PANEL_WIDTH, "height": PANEL_HEIGHT},
        })
    body = {"name": board["name"], "description": board.get("description", ""), "type": "flexible",
            "panels": panels, "layout_generation": "manual"}
    existing = [b for b in call("GET", "/1/boards") if b.get("name") == board["name"]]
    saved = call("PUT", f"/1/boards/{existing[0]['id']}", body) if existing else call("POST", "/1/boards", body)
    return str(saved.get("links", {}).get("board_url") or saved.get("id"))


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         session: requests.Session | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.honeycomb_board", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--file", type=Path, default=BOARD_FILE, help="board file (default ops/honeycomb/board.json)")
    parser.add_argument("--dry-run", action="store_true", help="check the file and print what would be created")
    args = parser.parse_args(argv)
    try:
        board = load_board(args.file)
        if args.dry_run:
            print(f"board {board['name']!r}: {len(board['queries'])} queries")
            for q in board["queries"]:
                print(f"  {q['name']}")
            return 0
        settings = BoardSettings.from_env(os.environ if environ is None else environ)
        url = apply_board(board, settings, session or requests.Session())
    except ApiError as exc:
        print(f"ops.honeycomb_board: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"honeycomb: board {board['name']!r} with {len(board['queries'])} queries: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
