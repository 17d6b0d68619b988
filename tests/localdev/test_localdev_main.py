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
            if "runtime_setup" in line:  # the last line of the cold start's waterfall
                break
        else:
            raise AssertionError("".join(output))
        children = _children_of(proc.pid)
        assert children, "localdev should have started Azurite, the listener and the functions host"
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(output) + rest
    assert "bot> pong" in text
    for span in ("discord.command", "cmd-ping send", "cmd-ping process", "queue.wait", "cold_start"):
        assert span in text
    assert "discord-bot-listener" in text and "discord-bot-functions" in text
    assert proc.returncode == 0 and "Stopping..." in text
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()], "left processes running"


def test_http_interactions_mode_answers_slash_commands_without_a_listener(tmp_path: Path) -> None:
    from localdev.azurite import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OTEL_", "HONEYCOMB_"))}
    env.update(LOCAL_TRACE_FILE=str(tmp_path / "traces.jsonl"), FUNCTIONS_HTTP_PORT=str(free_port()))
    proc = subprocess.Popen([sys.executable, "-m", "localdev", "--http-interactions"], cwd=PROJECT_ROOT, env=env,
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    output: list[str] = []
    lines = iter(["/ping\n", "/roll dice:3\n"])
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            output.append(line)
            if line.startswith("Chat as") or "PATCH /webhooks" in line:  # prompt, or the end of a waterfall
                following = next(lines, None)
                if following is None:
                    break
                proc.stdin.write(following)
                proc.stdin.flush()
        else:
            raise AssertionError("".join(output))
        commands = [Path(f"/proc/{pid}/cmdline").read_text(errors="replace") for pid in _children_of(proc.pid)]
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(output) + rest
    assert any("localdev.functions_host" in c for c in commands)
    assert not any("gateway_listener" in c for c in commands)
    assert "bot> pong" in text and "bot> 3 dice (10-again)" in text
    assert "gateway-less: no listener" in text
    assert "discord-bot-listener" not in text  # the whole trace is the function app's
    for span in ("discord.command", "cmd-ping send", "cmd-roll process", "discord.send_response"):
        assert span in text
    assert proc.returncode == 0
