"""``python -m bench [--quick] [--only NAME,...] [--json PATH]``: run the benchmarks, print one table.

One Azurite serves the run, restarted (empty) before each benchmark: Azurite's in-memory
store sweeps deleted messages every 60 s with a loop that is quadratic in their number and
never yields, so the thousands the ingest benchmark leaves behind would freeze it for tens
of seconds in the middle of the next benchmark. Each benchmark measures its cost and its
baseline in the same run; a benchmark that fails is reported as an error row (and exit status 1)
so the others still run. Results: bench/results/latest.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

from bench import (
    coldstart,
    global_ratelimit,
    hop,
    human_paced,
    ingest,
    interactions,
    memory,
    scaling,
    shards,
    throughput,
    tracing_overhead,
    worker,
)
from bench.common import RESULTS_DIR, Context, Row, format_table, machine, write_json
from localdev.azurite import Azurite

BENCHMARKS: dict[str, ModuleType] = {
    m.NAME: m for m in (hop, human_paced, ingest, shards, coldstart, interactions, tracing_overhead, memory,
                        throughput, scaling, worker, global_ratelimit)
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the benchmarks work (~1 min)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the results")
    parser.add_argument("--keep-logs", action="store_true", help="keep the children's logs (path printed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    rows: list[Row] = []
    errors = 0
    timings: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    with Azurite() as azurite:
        ctx = Context(quick=args.quick, azurite=azurite, workdir=workdir, results_dir=args.json.parent)
        for i, name in enumerate(names):
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            if i:
                azurite.restart()  # same port, nothing left over from the previous benchmark
            began = time.monotonic()
            try:
                rows.extend(BENCHMARKS[name].run(ctx))
            except Exception as exc:
                errors += 1
                traceback.print_exc()
                rows.append(Row(name, "error", None, "", met=False, note=f"{type(exc).__name__}: {exc}"[:300]))
            timings[name] = round(time.monotonic() - began, 1)
    print(format_table(rows))
    for row in rows:
        if row.note and row.met is False:
            print(f"  {row.bench} / {row.metric}: {row.note}")
    write_json(args.json, rows, {**machine(), "quick": args.quick, "seconds": timings,
                                 "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    print(f"results: {args.json}" + (f"; logs: {workdir}" if args.keep_logs else ""), file=sys.stderr)
    if not args.keep_logs:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
