"""The host honours SIGTERM even while start-up is stuck on storage that never answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from localdev.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from shared.settings import PROJECT_ROOT


def test_sigterm_while_storage_hangs_at_start_exits_promptly() -> None:
    # A port that accepts connections (the kernel's backlog) but never answers a request.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    env = dict(os.environ, AzureWebJobsStorage=(
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{port}/{ACCOUNT_NAME};"))
    proc = subprocess.Popen([sys.executable, "-m", "localdev.functions_host", "--app", "tests.localdev.sample_app:app"],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(3)  # well inside the 15 s queue-creation bound
        assert proc.poll() is None, "the host should still be starting"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=8)  # before the fix: up to 15 s per queue
        assert proc.returncode == 0, out.decode(errors="replace")
        assert b"Functions host ready" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
        silent.close()
