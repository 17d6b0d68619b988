"""``python -m localdev`` as a user runs it: type ``!ping`` at the prompt, see pong and its trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def _descendants_of(pid: int) -> list[int]:
    """Children, grandchildren (the scale controller's instances), ..."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def test_prompt_answers_ping_with_a_cold_start_waterfall_and_cleans_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OTEL_", "HONEYCOMB_"))}
    env["LOCAL_TRACE_FILE"] = str(tmp_path / "traces.jsonl")
    proc = subprocess.Popen([sys.executable, "-m", "localdev"], cwd=PROJECT_ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    output: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            output.append(line)
            if line.startswith("Chat as"):
                proc.stdin.write("!ping\n")
                proc.stdin.flush()
            if line.startswith("instances:"):  # printed after the reply's waterfall
                break
        else:
            raise AssertionError("".join(output))
        children = _descendants_of(proc.pid)
        assert len(children) >= 4, "localdev should have started Azurite, the listener, the scale controller " \
                                   "and a ping instance"
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(output) + rest
    assert "bot> pong" in text
    assert "instances: ping 1 (others 0)" in text  # ping scaled out from zero on its own
    for span in ("discord.command", "cmd-ping send", "cmd-ping process", "queue.wait", "cold_start"):
        assert span in text
    assert "discord-bot-listener" in text and "discord-bot-functions" in text
    assert proc.returncode == 0 and "Stopping..." in text
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()], "left processes running"
