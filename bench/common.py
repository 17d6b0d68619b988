"""What every benchmark shares: result rows, statistics, the table, JSON, processes and stubs."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from localdev.azurite import Azurite
from localdev.stack import Child, child_env
from shared.settings import PROJECT_ROOT, Secret, StorageSettings

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


@dataclass
class Row:
    """One line of the table: a measured value, what it is compared with, and the verdict."""

    bench: str
    metric: str
    value: float | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None  # None: informational, no target
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # samples' p99, counts, ... (JSON only)


@dataclass
class Context:
    """What a benchmark gets: the scale, one Azurite for the whole run, a scratch directory."""

    quick: bool
    azurite: Azurite
    workdir: Path
    results_dir: Path = RESULTS_DIR  # where the JSON goes; plots are written next to it

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def storage(self) -> StorageSettings:
        return StorageSettings(connection_string=Secret(self.azurite.connection_string))


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples)) if samples else math.nan


def p99(samples: Sequence[float]) -> float:
    """Nearest-rank 99th percentile (with few samples it is the maximum)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)])


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {"median": median(samples), "p99": p99(samples), "n": float(len(samples))}


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0 or math.isnan(value) or math.isnan(baseline):
        return None
    return value / baseline


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    head = ("benchmark", "metric", "value", "baseline", "ratio", "target", "met?")
    body = [
        (
            r.bench,
            r.metric,
            f"{_fmt(r.value)} {r.unit}".strip(),
            f"{_fmt(r.baseline)} {r.unit}".strip() if r.baseline is not None else "-",
            f"{r.ratio:.2f}x" if r.ratio is not None else "-",
            r.target or "-",
            {True: "yes", False: "NO", None: "-"}[r.met],
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in [head, *body]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(path: Path, rows: Sequence[Row], meta: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": dict(meta), "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")


def machine() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}


# -- processes -------------------------------------------------------------------------------


def start_module(name: str, module: str, env: Mapping[str, str], log: Path, args: Sequence[str] = ()) -> Child:
    """``python -m module args...`` from the project root as a :class:`Child` (stopped by PID with SIGTERM)."""
    child = Child(name, module, child_env(env), log)
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    child.proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=dict(child.env), stdout=out, stderr=out,
        start_new_session=True,
    )  # fmt: skip
    out.close()  # the child has its own descriptor
    return child


def rss_mb(pid: int) -> float:
    """Resident set size from /proc/<pid>/status (VmRSS), in MB (2**20 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_started(child: Child, log: Path, needle: str, what: str, timeout: float = 60) -> None:
    """Wait for ``needle`` in ``child``'s log; RuntimeError naming the log if it never comes."""
    from localdev.stack import wait_for_line

    if not wait_for_line(log, needle, timeout, child):
        raise RuntimeError(f"{what} did not start: {log}")


def wait_until(predicate: Any, timeout: float, interval: float = 0.02, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- a local HTTP endpoint: telemetry receiver or slow external API --------------------------


class HttpStub:
    """A threaded HTTP server answering every request with ``status``/``body`` after ``delay_s``."""

    def __init__(self, *, delay_s: float = 0.0, body: bytes = b"{}", status: int = 200) -> None:
        self.delay_s, self.body, self.status = delay_s, body, status
        self.requests = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in one segment: separate small writes meet the client's delayed
            # ACK (Nagle) and add ~40 ms per request, which no real collector or API does.
            wbufsize = 64 * 1024
            disable_nagle_algorithm = True

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with stub._lock:
                    stub.requests += 1
                if stub.delay_s:
                    time.sleep(stub.delay_s)
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                self.wfile.write(stub.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-stub", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HttpStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


AZURE_MONITOR_ACCEPTED = b'{"itemsReceived": 1, "itemsAccepted": 1, "errors": []}'
IKEY = "00000000-0000-0000-0000-000000000000"


def appinsights_connection_string(url: str) -> str:
    return f"InstrumentationKey={IKEY};IngestionEndpoint={url}/"
