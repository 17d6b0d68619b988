"""``python -m bench --quick`` still runs end to end and reports every row.

No timing assertions: the numbers depend on the machine. This only checks that each
benchmark ran, produced its rows with values, and wrote the JSON.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(240)
def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    got = [(r["bench"], r["metric"]) for r in rows]
    expected = [(name, metric) for name, module in BENCHMARKS.items() for metric in module.METRICS]
    assert got == expected
    for row in rows:
        assert isinstance(row["value"], int | float) and not math.isnan(row["value"]), row
        assert row["met"] in (True, False, None)
    for name, metric in expected:  # the printed table has the same rows
        assert any(name in line and metric in line for line in proc.stdout.splitlines()), (name, metric)
