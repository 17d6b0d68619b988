"""The prompt's instance line, read from the scale controller's status file."""

from __future__ import annotations

import json
from pathlib import Path

from localdev.prompt import scale_line


def _status(path: Path, **counts: int) -> Path:
    path.write_text(json.dumps({"groups": [{"group": g, "instances": n} for g, n in counts.items()]}))
    return path


def test_scale_line_lists_running_groups(tmp_path: Path) -> None:
    status = tmp_path / "scale.json"
    assert scale_line(_status(status, ping=1, catfact=3, help=0)) == "instances: catfact 3, ping 1 (others 0)"
    assert scale_line(_status(status, host=1)) == "instances: host 1"
    assert scale_line(_status(status, ping=0, help=0)) == "instances: none"


def test_scale_line_without_a_status(tmp_path: Path) -> None:
    assert scale_line(None) == scale_line(tmp_path / "missing.json") == "instances: (no scale controller status yet)"
    (tmp_path / "torn.json").write_text('{"groups": [')
    assert scale_line(tmp_path / "torn.json") == "instances: (no scale controller status yet)"
