"""``python -m localdev`` as a user runs it: type ``!ping`` at the prompt, see pong and its trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from localdev.traces import load_traces
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


def _run_prompt(tmp_path: Path, args: list[str], lines: list[str], done: str, count: int = 1,
                while_running: Callable[[list[str]], None] | None = None,
                extra_env: dict[str, str] | None = None) -> tuple[str, list[int], int]:
    """Run ``python -m localdev``, type ``lines`` at the prompt, wait for ``done`` to be printed
    ``count`` times, call ``while_running(output so far)``, then SIGTERM it.
    Returns (all output, the processes it had, its exit code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OTEL_", "HONEYCOMB_"))}
    env["LOCAL_TRACE_FILE"] = str(tmp_path / "traces.jsonl")
    env.update(extra_env or {})
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
        children = _descendants_of(proc.pid)
        try:
            if while_running is not None:
                while_running(output)
        finally:  # stopped in order even when the check fails: nothing left running
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return "".join(output) + rest, children, proc.returncode


def _explorer_shows_the_ping(output: list[str]) -> None:
    """The explorer whose URL localdev printed has the command just typed, cold start included."""
    explorer = next(line.split()[2] for line in output if line.startswith("Trace explorer"))
    for _ in range(50):  # the explorer follows the file every half second
        with urllib.request.urlopen(explorer + "api/overview?window=15m", timeout=10) as res:
            overview = json.load(res)
        if overview["commands"] and overview["commands"][0]["cold_starts"]:
            break
        time.sleep(0.2)
    assert [row["command"] for row in overview["commands"]] == ["ping"]
    assert overview["commands"][0]["cold_starts"] == 1 and overview["commands"][0]["p95"] > 0


def _left_running(children: list[int]) -> list[int]:
    return [pid for pid in children if Path(f"/proc/{pid}").exists()
            and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]


def test_prompt_answers_ping_with_a_cold_start_waterfall_and_cleans_up(tmp_path: Path) -> None:
    # The instance line is printed after the reply's waterfall.
    text, children, code = _run_prompt(tmp_path, [], ["!ping"], "instances:", while_running=_explorer_shows_the_ping)
    assert len(children) >= 4, "localdev should have started Azurite, the listener, the scale controller " \
                               "and a ping instance"
    assert "bot> pong" in text
    assert text.index("bot is typing…") < text.index("bot> pong")  # instant feedback, then the reply
    assert "instances: ping 1 (others 0)" in text  # ping scaled out from zero on its own
    for span in ("discord.command", "cmd-ping send", "cmd-ping process", "queue.wait", "cold_start"):
        assert span in text
    assert "discord-bot-listener" in text and "discord-bot-functions" in text
    assert code == 0 and "Stopping..." in text
    assert not _left_running(children), "left processes running"


def test_shards_2_answers_ping_in_a_guild_on_each_shard(tmp_path: Path) -> None:
    lines = ["!ping", ":guilds", ":guild 2", "!ping"]
    text, children, code = _run_prompt(tmp_path, ["--shards", "2"], lines, "bot> pong", count=2)
    assert "Local Guild (shard 0)" in text and "now in #general of Local Guild 2 (shard 1)" in text
    assert text.count("bot> pong") == 2
    roots = [s for t in load_traces(tmp_path / "traces.jsonl").values() for s in t if s["name"] == "discord.command"]
    # One command per shard, each seen once: by the process that owns only that shard.
    assert sorted(s["attributes"]["discord.shard.id"] for s in roots) == ["0", "1"]
    assert code == 0 and not _left_running(children)


def test_http_interactions_mode_answers_slash_commands_without_a_listener(tmp_path: Path) -> None:
    from localdev.azurite import free_port

    # "PATCH /webhooks" (the edit of @original) is the last line of each command's waterfall.
    text, children, code = _run_prompt(tmp_path, ["--http-interactions"], ["/ping", "/roll dice:3"],
                                       "PATCH /webhooks", count=2, extra_env={"FUNCTIONS_HTTP_PORT": str(free_port())})
    assert "gateway-less: no listener" in text and "listener.log" not in text
    assert "bot> pong" in text and "bot> 3 dice (10-again)" in text
    roots = [s for t in load_traces(tmp_path / "traces.jsonl").values() for s in t if s["name"] == "discord.command"]
    assert [s["kind"] for s in roots] == ["SERVER", "SERVER"]  # the HTTP request is the root: no listener span
    assert "discord-bot-listener" not in text
    for span in ("cmd-ping send", "cmd-roll process", "discord.send_response"):
        assert span in text
    assert code == 0 and not _left_running(children)

