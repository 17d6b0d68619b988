"""Telemetry never hurts the bot: the functions host with a dead, hanging or failing exporter.

The host runs as a subprocess with OTEL_EXPORTER_OTLP_ENDPOINT (and, for 5xx, Azure
Monitor too) pointing at a local endpoint that refuses, hangs or answers 503, with no
LOCAL_TRACE_FILE and its own TMPDIR (where Azure Monitor would keep offline retries).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from localdev.azurite import Azurite, free_port
from tests.reliability.harness import Stack, approximate_count, running_stack, wait_until
from tests.shared.test_exporters import IKEY, Receiver

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(azurite: Azurite, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(azurite, tmp_path) as s:
        yield s


@pytest.mark.parametrize("mode", ["refused", "hang", "503"])
def test_a_broken_exporter_never_fails_or_blocks_an_invocation(stack: Stack, mode: str) -> None:
    receiver = Receiver(mode=mode).start() if mode != "refused" else None
    try:
        endpoint = receiver.url if receiver else f"http://127.0.0.1:{free_port()}"
        tmpdir = stack.tmp / "tmpdir"
        tmpdir.mkdir()
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "LOCAL_TRACE_FILE": "", "TMPDIR": str(tmpdir)}
        if mode == "503":
            env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = f"InstrumentationKey={IKEY};IngestionEndpoint={endpoint}/"
        host = stack.start_host(env=env)
        messages = [stack.enqueue(stack.envelope("!ping")) for _ in range(3)]
        for message_id in messages:
            assert stack.wait_reply(message_id, timeout=60)["content"] == "pong"
        wait_until(lambda: len([ln for ln in stack.executions("ping") if "Succeeded" in ln]) == 3, 60,
                   "three successful invocations")
        assert approximate_count(stack.cs, "cmd-ping") == 0
        if receiver is not None:
            assert receiver.requests, "the exporter never tried the endpoint"
        assert host.stop(timeout=30) == 0  # shutdown flush is bounded too
        log = stack.log("host.log")
        [setup] = re.findall(r"telemetry: discord-bot-functions -> (.*)", log)
        assert "otlp" in setup and "file" not in setup  # no trace file unless configured
        # The exporter outlived the flush bound, and the invocations went on without it.
        assert "telemetry flush did not finish within 2000 ms" in log
        assert not stack.trace_file.exists()
        assert [p for p in tmpdir.rglob("*") if p.is_file()] == []  # nothing written to disk
    finally:
        if receiver is not None:
            receiver.stop()
