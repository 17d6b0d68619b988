"""bench/worker.py (issue 18) on its own: ``python -m bench --quick --only worker`` reports its rows.

No timing assertions, as test_bench_smoke.py: only that each figure and its baseline were measured.
test_bench_smoke.py runs it too, with every other benchmark; this one takes ~15 s.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import worker
from localdev.functions_host.host import READY_PREFIX
from shared.settings import PROJECT_ROOT


def test_worker_pid_is_read_from_the_ready_line() -> None:
    line = (f"2026-12-01 22:29:36,044 INFO localdev.functions_host.host: {READY_PREFIX} 1 functions "
            "(ping; worker pid 24522)")
    found = worker._WORKER_PID.search(line)
    assert found is not None and found.group(1) == "24522"


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_quick_worker_run_reports_each_figure_against_its_baseline(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "worker", "--json", str(out)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["bench"], r["metric"]) for r in rows] == [(worker.NAME, m) for m in worker.METRICS]
    for row in rows:
        for key in ("value", "baseline"):
            assert isinstance(row[key], int | float) and not math.isnan(row[key]) and row[key] > 0, row
    assert rows[0]["met"] in (True, False)
    assert not rows[0]["extra"]["timed_out_runs"], rows[0]["extra"]
