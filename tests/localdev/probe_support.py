"""Helpers for tests that run tests/localdev/probe_app.py in a real worker process (the ``probe`` fixture
is in conftest.py)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localdev.functions_host import AppLocation
from shared.settings import Settings

PROBE_APP = AppLocation.of("tests.localdev.probe_app")


@dataclass
class Probe:
    """The probe app's side of a test: its worker environment and what its functions reported."""

    directory: Path

    def env(self, settings: Settings, *, queue: str | None = None, async_queue: str | None = None,
            **extra: str) -> dict[str, str]:
        """The worker's environment: this process's, the storage setting and the probe's settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROBE_")}
        env["PROBE_DIR"] = str(self.directory)
        if settings.storage.connection_string is not None:
            env["AzureWebJobsStorage"] = settings.storage.connection_string.reveal()
        if queue is not None:
            env["PROBE_QUEUE"] = queue
        if async_queue is not None:
            env["PROBE_ASYNC_QUEUE"] = async_queue
        return env | extra

    @property
    def calls(self) -> list[dict[str, Any]]:
        """One dict per invocation that started, in the order they started."""
        path = self.directory / "calls.jsonl"
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]  # a line being written is read next time
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    @property
    def bodies(self) -> list[str]:
        return [c["body"] for c in self.calls]

    def release(self) -> None:
        """Let every ``block`` invocation return."""
        (self.directory / "release").touch()


def worker_alive(pid: int | None) -> bool:
    """Whether process ``pid`` still runs (an exited, unreaped one does not count)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
