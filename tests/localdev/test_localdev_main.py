"""``python -m localdev`` as a user runs it: type ``!ping`` at the prompt, see pong and its trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from localdev.traces import load_traces
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _run_prompt(tmp_path: Path, args: list[str], lines: list[str], done: str, count: int = 1
                ) -> tuple[str, list[int], int]:
    """Run ``python -m localdev``, type ``lines`` at the prompt, wait for ``done`` to be printed
    ``count`` times, then SIGTERM it. Returns (all output, the children it had, its exit code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OTEL_", "HONEYCOMB_"))}
    env["LOCAL_TRACE_FILE"] = str(tmp_path / "traces.jsonl")
    proc = subprocess.Popen([sys.executable, "-m", "localdev", *args], cwd=PROJECT_ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            output.append(line)
            if line.startswith("Chat as"):
                proc.stdin.write("".join(f"{typed}\n" for typed in lines))
                proc.stdin.flush()
            if "".join(output).count(done) >= count:
                break
        else:
            raise AssertionError("".join(output))
        explorer = next(line.split()[2] for line in output if line.startswith("Trace explorer"))
        for _ in range(50):  # the explorer follows the file every half second
            with urllib.request.urlopen(explorer + "api/overview?window=15m", timeout=10) as res:
                overview = json.load(res)
            if overview["commands"] and overview["commands"][0]["cold_starts"]:
                break
            time.sleep(0.2)
        assert [row["command"] for row in overview["commands"]] == ["ping"]  # the command just typed
        assert overview["commands"][0]["cold_starts"] == 1 and overview["commands"][0]["p95"] > 0
        children = _children_of(proc.pid)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return "".join(output) + rest, children, proc.returncode


def _left_running(children: list[int]) -> list[int]:
    return [pid for pid in children if Path(f"/proc/{pid}").exists()
            and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]


def test_prompt_answers_ping_with_a_cold_start_waterfall_and_cleans_up(tmp_path: Path) -> None:
    # "runtime_setup" is the last line of the cold start's waterfall.
    text, children, code = _run_prompt(tmp_path, [], ["!ping"], "runtime_setup")
    assert children, "localdev should have started Azurite, the listener and the functions host"
    assert "bot> pong" in text
    assert text.index("bot is typing…") < text.index("bot> pong")  # instant feedback, then the reply
    for span in ("discord.command", "cmd-ping send", "cmd-ping process", "queue.wait", "cold_start"):
        assert span in text
    assert "discord-bot-listener" in text and "discord-bot-functions" in text
    assert code == 0 and "Stopping..." in text
    assert not _left_running(children), "left processes running"


def test_shards_2_answers_ping_in_a_guild_on_each_shard(tmp_path: Path) -> None:
    lines = ["!ping", ":guilds", ":guild 2", "!ping"]
    text, children, code = _run_prompt(tmp_path, ["--shards", "2", "--always-on"], lines, "bot> pong", count=2)
    assert "Local Guild (shard 0)" in text and "now in #general of Local Guild 2 (shard 1)" in text
    assert text.count("bot> pong") == 2
    roots = [s for t in load_traces(tmp_path / "traces.jsonl").values() for s in t if s["name"] == "discord.command"]
    # One command per shard, each seen once: by the process that owns only that shard.
    assert sorted(s["attributes"]["discord.shard.id"] for s in roots) == ["0", "1"]
    assert code == 0 and not _left_running(children)
