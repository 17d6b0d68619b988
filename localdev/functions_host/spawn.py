"""Where the app is, and starting its language worker process: standard library only.

``python -m localdev.functions_host`` starts the worker before it imports anything heavy (the
storage SDK, aiohttp, gRPC): the worker's own start-up (Python, azure_functions_runtime, gRPC)
then overlaps with the host's instead of following it, which is most of a cold start. The worker
waits for the host's gRPC server to come up on the port it was given (``wait_for_ready``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localdev.azurite import free_port  # standard library only, as this module must be
from shared.errors import SettingsError

PROJECT = Path(__file__).resolve().parents[2]
WORKER_DIRECTORY = Path(__file__).resolve().parents[1] / "functions_worker"
MAX_MESSAGE = 2**31 - 1


@dataclass(frozen=True)
class AppLocation:
    """Where the app is: the directory the worker indexes and its script (``PYTHON_SCRIPT_FILE_NAME``)."""

    directory: Path
    script_file: str = "function_app.py"

    @classmethod
    def of(cls, spec: str) -> AppLocation:
        """``module[:attribute]`` (``function_app:app``, ``tests.localdev.sample_app:app``) -> its file,
        found without importing it (the worker library finds the app object itself)."""
        module = spec.partition(":")[0]
        if str(PROJECT) not in sys.path:
            sys.path.insert(0, str(PROJECT))
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None or not found.origin or not found.origin.endswith(".py"):
            raise SettingsError(f"--app {spec}: no module {module!r} (expected module[:attribute] of a .py file)")
        path = Path(found.origin)
        return cls(path.parent, path.name)


@dataclass
class SpawnedWorker:
    """A worker process told to connect to ``port`` as ``worker_id``."""

    process: subprocess.Popen[bytes]
    port: int
    worker_id: str


def spawn_worker(app: AppLocation, env: Mapping[str, str], port: int | None = None) -> SpawnedWorker:
    """Start ``python -m localdev.functions_worker`` with the arguments a Functions host gives a
    language worker, in the app's directory, with the app settings as its environment."""
    port = port or free_port()
    worker_id = str(uuid.uuid4())
    child_env = {**env, "PYTHON_SCRIPT_FILE_NAME": app.script_file,
                 "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT), env.get("PYTHONPATH", "")) if p)}
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev.functions_worker", "--host", "127.0.0.1", "--port", str(port),
         "--workerId", worker_id, "--requestId", str(uuid.uuid4()), "--grpcMaxMessageLength", str(MAX_MESSAGE)],
        cwd=str(app.directory), env=child_env)
    return SpawnedWorker(process, port, worker_id)
