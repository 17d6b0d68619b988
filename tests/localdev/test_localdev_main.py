"""``python -m localdev`` as a user runs it: type ``!ping`` at the prompt, see pong and its trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


STOP = "\x00stop"


def _chat(tmp_path: Path, args: list[str], react: Callable[[str], str | None],
          extra_env: dict[str, str] | None = None) -> tuple[str, list[str], int]:
    """Run ``python -m localdev *args`` at a pipe: ``react(line)`` returns what to type (or STOP).

    Returns everything printed, the children's command lines (while running) and the exit status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OTEL_", "HONEYCOMB_"))}
    env.update(LOCAL_TRACE_FILE=str(tmp_path / "traces.jsonl"), **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "localdev", *args], cwd=PROJECT_ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    output: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            output.append(line)
            typed = react(line)
            if typed == STOP:
                break
            if typed is not None:
                proc.stdin.write(typed)
                proc.stdin.flush()
        else:
            raise AssertionError("".join(output))
        children = _children_of(proc.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_text(errors="replace") for pid in children]
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = [pid for pid in children if Path(f"/proc/{pid}").exists()
            and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
    assert not left, "left processes running"
    return "".join(output) + rest, commands, proc.returncode


def test_prompt_answers_ping_with_a_cold_start_waterfall_and_cleans_up(tmp_path: Path) -> None:
    def react(line: str) -> str | None:
        if line.startswith("Chat as"):
            return "!ping\n"
        return STOP if "runtime_setup" in line else None  # the last line of the cold start's waterfall

    text, commands, returncode = _chat(tmp_path, [], react)
    assert len(commands) >= 3, "localdev should have started Azurite, the listener and the functions host"
    assert "bot> pong" in text
    for span in ("discord.command", "cmd-ping send", "cmd-ping process", "queue.wait", "cold_start"):
        assert span in text
    assert "discord-bot-listener" in text and "discord-bot-functions" in text
    assert returncode == 0 and "Stopping..." in text


def test_http_interactions_mode_answers_slash_commands_without_a_listener(tmp_path: Path) -> None:
    from localdev.azurite import free_port

    typed = iter(["/ping\n", "/roll dice:3\n", STOP])

    def react(line: str) -> str | None:  # at the prompt, then after each waterfall's last span
        return next(typed) if line.startswith("Chat as") or "PATCH /webhooks" in line else None

    text, commands, returncode = _chat(tmp_path, ["--http-interactions"], react,
                                       {"FUNCTIONS_HTTP_PORT": str(free_port())})
    assert any("localdev.functions_host" in c for c in commands)
    assert not any("gateway_listener" in c for c in commands)
    assert "bot> pong" in text and "bot> 3 dice (10-again)" in text
    assert "gateway-less: no listener" in text
    assert "discord-bot-listener" not in text  # the whole trace is the function app's
    for span in ("discord.command", "cmd-ping send", "cmd-roll process", "discord.send_response"):
        assert span in text
    assert returncode == 0
