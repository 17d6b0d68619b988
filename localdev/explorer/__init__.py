"""A local trace explorer: heatmaps, P95 by command, waterfalls and BubbleUp over the span file.

``python -m localdev.explorer`` serves it (see ``__main__``); ``server`` holds the web app,
``store`` follows the span file live, ``aggregate`` computes what the pages show.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping
from pathlib import Path

from localdev.stack import Child

DEFAULT_PORT = 8800


def pick_port(host: str = "127.0.0.1", start: int = DEFAULT_PORT, tries: int = 100) -> int:
    """``start``, or the next port after it that is free."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            return port
    raise OSError(f"no free port in {start}..{start + tries - 1}")


def start_child(trace_file: Path, env: Mapping[str, str], log: Path, host: str = "127.0.0.1") -> tuple[Child, str]:
    """``python -m localdev.explorer`` as a child of ``python -m localdev``: (the child, its URL)."""
    port = pick_port(host)
    log.write_bytes(b"")  # this run's log only, like the other children's
    args = ["--host", host, "--port", str(port), "--trace-file", str(trace_file)]
    return Child("explorer", "localdev.explorer", env, log, args=args).start(), f"http://{host}:{port}/"
