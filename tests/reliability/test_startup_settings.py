"""A missing or malformed setting stops either entry point with one line naming it, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, load_settings

GOOD = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "DISCORD_TOKEN": "not-a-real-token",
    "DISCORD_API_BASE_URL": "http://127.0.0.1:9/api/v10",
    "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9",
}

CASES = [
    ("gateway_listener", {"AzureWebJobsStorage": None}, "AzureWebJobsStorage"),
    ("gateway_listener", {"DISCORD_TOKEN": None}, "DISCORD_TOKEN"),
    ("gateway_listener", {"LISTENER_BUFFER_CAPACITY": "lots"}, "LISTENER_BUFFER_CAPACITY"),
    ("gateway_listener", {"DISCORD_API_BASE_URL": "discord.com/api"}, "DISCORD_API_BASE_URL"),
    ("gateway_listener", {"DISCORD_SHARD_COUNT": "two"}, "DISCORD_SHARD_COUNT"),
    ("gateway_listener", {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,2"}, "DISCORD_SHARD_IDS"),
    ("gateway_listener", {"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "3-1"}, "DISCORD_SHARD_IDS"),
    ("gateway_listener", {"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS"),
    ("gateway_listener", {"LISTENER_HEALTH_PORT": "http"}, "LISTENER_HEALTH_PORT"),
    ("gateway_listener", {"LISTENER_DRAIN_TIMEOUT": "forever"}, "LISTENER_DRAIN_TIMEOUT"),
    ("localdev.functions_host", {"AzureWebJobsStorage": None}, "AzureWebJobsStorage"),
    ("localdev.functions_host", {"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
    ("localdev.functions_host", {"BOT_PREFIX": "a b"}, "BOT_PREFIX"),
]


def _env(tmp: Path, changes: dict[str, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in GOOD and not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_", "HONEYCOMB_", "LISTENER_"))}
    env.update(GOOD, LOCAL_TRACE_FILE=str(tmp / "traces.jsonl"), PYTHONUNBUFFERED="1")
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.mark.parametrize(("module", "changes", "name"), CASES,
                         ids=[f"{m.split('.')[-1]}-{n}" for m, _, n in CASES])
def test_bad_setting_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, module: str, changes: dict[str, str | None], name: str
) -> None:
    done = subprocess.run([sys.executable, "-m", module], cwd=PROJECT_ROOT, env=_env(tmp_path, changes),
                          capture_output=True, text=True, timeout=60)
    output = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, output
    assert len(output) == 1 and name in output[0], output
    assert "Traceback" not in done.stderr


def test_listener_buffer_capacity_setting() -> None:
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    assert load_settings(base, root=Path("/nonexistent")).listener_buffer_capacity == 1000
    assert load_settings({**base, "LISTENER_BUFFER_CAPACITY": "3"}, root=Path("/nonexistent")) \
        .listener_buffer_capacity == 3
    for bad in ("0", "-1", "many", "1.5", "10000001"):
        with pytest.raises(SettingsError, match=r"^LISTENER_BUFFER_CAPACITY: expected an integer"):
            load_settings({**base, "LISTENER_BUFFER_CAPACITY": bad}, root=Path("/nonexistent"))
