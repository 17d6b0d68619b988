"""The local Functions host against real Azurite: delivery, retries, poison, batching, shutdown.

The functions run in the host's worker process (tests/localdev/probe_app.py, configured through
``worker_env``); they report what they saw as JSON lines in a directory the test reads.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import BinaryBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from localdev.azurite import Azurite
from localdev.functions_host import (
    READY_PREFIX,
    AppLocation,
    FunctionsHost,
    HostConfig,
    PollingBackoff,
    QueuesConfig,
    load_host_config,
    parse_host_config,
)
from localdev.functions_host.host import POLLS_PREFIX
from shared.errors import SettingsError
from shared.settings import PROJECT_ROOT, Secret, Settings, StorageSettings
from tests.localdev import sample_app
from tests.localdev.probe_support import PROBE_APP, Probe, worker_alive

FAST = HostConfig(
    queues=QueuesConfig(
        max_polling_interval=timedelta(milliseconds=200),
        visibility_timeout=timedelta(0),
        batch_size=4,
        new_batch_threshold=2,
        max_dequeue_count=3,
    ),
    function_timeout=timedelta(seconds=5),
)
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def with_queues(config: HostConfig, **changes: Any) -> HostConfig:
    return replace(config, queues=replace(config.queues, **changes))


async def eventually(check: Callable[[], Awaitable[object] | object], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``check()`` (or what it awaits to) is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    env: dict[str, str], settings: Settings, config: HostConfig = FAST, *, app: AppLocation = PROBE_APP,
    **options: Any,
) -> AsyncIterator[FunctionsHost]:
    """A started host whose worker runs ``app`` with ``env``; stopped (worker included) on exit."""
    host = FunctionsHost(app, settings, config, drain_timeout=2, worker_env=env, **options)
    try:
        await host.start()
        yield host
    finally:
        await host.stop()
        assert not worker_alive(host.channel.pid)


@asynccontextmanager
async def queue(azurite: Azurite, name: str, *, encoded: bool = True) -> AsyncIterator[QueueClient]:
    """A client that sends base64 text (as the listener does) and reads raw text back."""
    encode = TextBase64EncodePolicy() if encoded else None
    async with QueueClient.from_connection_string(
        azurite.connection_string, name, message_encode_policy=encode
    ) as client:
        yield client


async def message_count(client: QueueClient) -> int:
    try:
        return (await client.get_queue_properties()).approximate_message_count or 0
    except ResourceNotFoundError:  # a poison queue not created yet
        return 0


async def test_success_passes_metadata_and_deletes(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe
):
    name = next(queue_names)
    async with running(probe.env(settings, queue=name), settings) as host, queue(azurite, name) as q:
        sent = await q.send_message("hello")
        await eventually(lambda: len(probe.calls) == 1 and host.workers["fn"].in_flight == 0)
        assert await message_count(q) == 0
    [call] = probe.calls
    assert call["body"] == "hello"
    assert call["id"] == sent.id
    assert call["dequeue_count"] == 1
    assert call["pop_receipt"]
    assert call["insertion_time"] is not None and call["expiration_time"] is not None
    inserted = datetime.fromisoformat(call["insertion_time"])
    assert datetime.fromisoformat(call["expiration_time"]) > inserted
    assert call["time_next_visible"] is not None and datetime.fromisoformat(call["time_next_visible"]) > inserted


async def test_failure_retries_then_poison_with_original_body(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe
):
    name = next(queue_names)
    async with running(probe.env(settings, async_queue=name), settings) as host, queue(azurite, name) as q:
        await q.send_message("fail")
        async with queue(azurite, f"{name}-poison") as poison:
            await eventually(lambda: message_count(poison))
            await eventually(lambda: host.workers["fn-async"].in_flight == 0)
            assert await message_count(q) == 0
            [poisoned] = [m async for m in poison.receive_messages()]
    assert [c["dequeue_count"] for c in probe.calls] == [1, 2, 3]
    assert base64.b64decode(poisoned.content) == b"fail"  # same base64 text as sent


async def test_failed_message_stays_invisible_for_visibility_timeout(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe
):
    name = next(queue_names)
    config = with_queues(FAST, visibility_timeout=timedelta(seconds=3))
    async with running(probe.env(settings, queue=name), settings, config) as host, queue(azurite, name) as q:
        await q.send_message("fail-first")
        await eventually(lambda: len(probe.calls) == 1 and host.workers["fn"].in_flight == 0)
        assert await q.peek_messages() == []  # released, but not visible yet
        await eventually(lambda: len(probe.calls) == 2)
        await eventually(lambda: host.workers["fn"].in_flight == 0)
        assert await message_count(q) == 0  # the second attempt succeeded
    first, second = probe.calls
    assert second["dequeue_count"] == 2 and second["id"] == first["id"]
    # Azurite keeps whole seconds; the redelivery cannot come much before the timeout (the first
    # call's start is before its failure, so this is a lower bound of the invisible time).
    assert second["at"] - first["at"] >= 2


async def test_invalid_base64_goes_to_poison_without_calling_the_function(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe
):
    name = next(queue_names)
    async with running(probe.env(settings, queue=name), settings), queue(azurite, name, encoded=False) as raw:
        await raw.send_message("not base64 at all!")
        async with queue(azurite, f"{name}-poison") as poison:
            await eventually(lambda: message_count(poison))
            [poisoned] = [m async for m in poison.receive_messages()]
        assert poisoned.content == "not base64 at all!"
        assert probe.calls == []
        # The host is still serving the queue.
        await raw.send_message(base64.b64encode(b"fine").decode())
        await eventually(lambda: probe.bodies == ["fine"])


async def test_lease_is_renewed_while_a_function_runs(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe
):
    name = next(queue_names)
    env = probe.env(settings, async_queue=name)
    async with running(env, settings, lease=timedelta(seconds=2)) as host, queue(azurite, name) as q:
        await q.send_message("sleep:3.5")  # longer than the 2 s lease: only renewals keep it hidden
        await eventually(lambda: len(probe.calls) == 1)
        await eventually(lambda: host.workers["fn-async"].in_flight == 0)
        assert await message_count(q) == 0  # deleted with the renewed pop receipt
    assert len(probe.calls) == 1


async def test_function_timeout_counts_as_failure(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe
):
    name = next(queue_names)
    config = replace(with_queues(FAST, max_dequeue_count=2), function_timeout=timedelta(milliseconds=300))
    async with running(probe.env(settings, async_queue=name), settings, config), queue(azurite, name) as q:
        await q.send_message("sleep:30")
        async with queue(azurite, f"{name}-poison") as poison:
            await eventually(lambda: message_count(poison))
    assert [c["dequeue_count"] for c in probe.calls] == [1, 2]



async def test_a_timed_out_function_gets_a_new_worker_and_the_retry_runs_there(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe
):
    name = next(queue_names)
    config = replace(with_queues(FAST, max_dequeue_count=3), function_timeout=timedelta(seconds=1))
    async with running(probe.env(settings, queue=name), settings, config) as host, queue(azurite, name) as q:
        first_pid = host.channel.pid
        await q.send_message("block")  # a sync function: only ending its worker stops it
        await eventually(lambda: host.worker_restarts == 1, timeout=20)
        assert host.channel.pid != first_pid and not worker_alive(first_pid)
        probe.release()
        await eventually(lambda: len(probe.calls) >= 2 and host.workers["fn"].in_flight == 0, timeout=20)
        assert await message_count(q) == 0
    first, second = probe.calls[:2]
    assert (first["dequeue_count"], second["dequeue_count"]) == (1, 2)
    assert first["pid"] == first_pid and second["pid"] != first_pid


async def test_a_worker_that_dies_is_replaced_and_serving_goes_on(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe
):
    name = next(queue_names)
    async with running(probe.env(settings, queue=name), settings) as host, queue(azurite, name) as q:
        dead = host.channel.pid
        assert dead is not None
        os.kill(dead, signal.SIGKILL)
        await eventually(lambda: host.worker_restarts == 1, timeout=20)
        await q.send_message("after the crash")
        await eventually(lambda: probe.bodies == ["after the crash"], timeout=20)
        assert probe.calls[0]["pid"] == host.channel.pid != dead

@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
async def test_batch_size_bounds_concurrency(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe, is_async: bool
):
    name = next(queue_names)
    function = "fn-async" if is_async else "fn"
    env = probe.env(settings, async_queue=name) if is_async else probe.env(settings, queue=name)
    # A generous functionTimeout: on a loaded CI machine the blocked calls must not turn into timeouts.
    config = replace(with_queues(FAST, batch_size=2, new_batch_threshold=0), function_timeout=timedelta(seconds=60))
    async with queue(azurite, name) as q:
        # All five wait before the host's first poll: sent one by one to a polling host, the
        # first batch could hold one message, and with newBatchThreshold 0 it would never take a second.
        await q.create_queue()
        for _ in range(5):
            await q.send_message("block")
        async with running(env, settings, config) as host:
            worker = host.workers[function]
            await eventually(lambda: worker.in_flight == 2 and len(probe.calls) == 2)
            await asyncio.sleep(0.5)  # several polling intervals: a host ignoring batchSize would take more
            assert worker.in_flight == 2 and len(probe.calls) == 2
            assert len(await q.peek_messages(max_messages=10)) == 3
            probe.release()
            await eventually(lambda: len(probe.calls) == 5 and worker.in_flight == 0)
            assert worker.max_in_flight <= 2
            assert await message_count(q) == 0
    calls = probe.calls
    assert {c["fn"] for c in calls} == {function} and len({c["id"] for c in calls}) == 5
    if is_async:  # on the worker's event loop, in its main thread
        assert all(c["main_thread"] and c["loop"] is not None for c in calls)
        assert len({c["loop"] for c in calls}) == 1
    else:  # on the library's pool threads
        assert not any(c["main_thread"] for c in calls)


async def test_context_parameter(azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe):
    name = next(queue_names)
    async with running(probe.env(settings, queue=name, PROBE_NAME="with-context"), settings) as host, \
            queue(azurite, name) as q:
        assert [f.name for f in host.functions] == ["with-context"]
        await q.send_message("x")
        await q.send_message("y")
        await eventually(lambda: len(probe.calls) == 2)
    first, second = probe.calls
    assert first["function_name"] == second["function_name"] == "with-context"
    assert first["invocation_id"] and second["invocation_id"] and first["invocation_id"] != second["invocation_id"]
    assert TRACEPARENT.match(first["trace_parent"]) and TRACEPARENT.match(second["trace_parent"])
    assert first["trace_parent"].split("-")[1] != second["trace_parent"].split("-")[1]  # a trace each


async def test_function_logs_reach_the_host_log(
    azurite: Azurite, settings: Settings, queue_names: Iterator[str], probe: Probe, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    name = next(queue_names)
    async with running(probe.env(settings, queue=name), settings) as host, queue(azurite, name) as q:
        await q.send_message("log:hello from the worker")

        def logged() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "probe says hello from the worker" in r.getMessage()]

        await eventually(logged)
        await eventually(lambda: host.workers["fn"].in_flight == 0)
    [record] = logged()
    assert record.levelno == logging.WARNING
    assert record.process == os.getpid()  # logged by the host, forwarded over the worker's stream


async def test_unsupported_connection_is_a_clear_error(settings: Settings, probe: Probe):
    host = FunctionsHost(PROBE_APP, settings, FAST,
                         worker_env=probe.env(settings, queue="q-x", PROBE_CONNECTION="OtherStorage"))
    try:
        with pytest.raises(SettingsError, match="OtherStorage"):
            await host.start()
    finally:
        await host.stop()
    assert not worker_alive(host.channel.pid)


async def test_functions_option_runs_only_the_named_functions(settings: Settings, probe: Probe):
    env = probe.env(settings, queue="q-alpha", async_queue="q-beta")
    async with running(env, settings, only={"fn-async"}) as host:
        assert [f.name for f in host.functions] == ["fn-async"]
        assert list(host.workers) == ["fn-async"]


async def test_functions_option_naming_an_unknown_function_is_a_clear_error(settings: Settings, probe: Probe):
    host = FunctionsHost(PROBE_APP, settings, FAST, only={"gamma"}, worker_env=probe.env(settings, queue="q-y"))
    try:
        with pytest.raises(SettingsError, match=r"no queue- or HTTP-triggered function gamma \(the app has: fn\)"):
            await host.start()
    finally:
        await host.stop()
    assert not worker_alive(host.channel.pid)


async def test_idle_polls_are_counted_and_never_faster_than_the_minimum(
    settings: Settings, queue_names: Iterator[str], probe: Probe, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="localdev.functions_host.host")
    name = next(queue_names)
    config = with_queues(FAST, max_polling_interval=timedelta(milliseconds=300))
    async with running(probe.env(settings, queue=name), settings, config) as host:
        began = time.monotonic()
        await asyncio.sleep(1.0)
        polls, elapsed = host.workers["fn"].polls, time.monotonic() - began
    assert 3 <= polls <= elapsed / 0.1 + 2  # backing off from 100 ms towards the 300 ms cap
    assert any(POLLS_PREFIX in r.getMessage() for r in caplog.records)


def test_backoff_grows_from_minimum_to_cap_and_resets():
    backoff = PollingBackoff(timedelta(seconds=2), rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(20)]
    assert delays[0] == pytest.approx(0.1)
    assert 0.1 + 0.08 <= delays[1] <= 0.1 + 0.12  # minimum + minimum * U(0.8, 1.2)
    assert delays == sorted(delays)
    assert max(delays) == 2.0 and all(d <= 2.0 for d in delays)
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_host_json_defaults_and_time_spans(tmp_path):
    defaults = parse_host_config({})
    assert defaults.queues == QueuesConfig(
        max_polling_interval=timedelta(minutes=1), visibility_timeout=timedelta(0), batch_size=16,
        new_batch_threshold=8, max_dequeue_count=5, message_encoding="base64",
    )  # fmt: skip
    assert defaults.function_timeout == timedelta(minutes=30)
    parsed = parse_host_config(
        {
            "functionTimeout": "1.02:03:04.5",
            "extensions": {"queues": {"maxPollingInterval": 2500, "visibilityTimeout": "00:00:05", "batchSize": 4}},
        }
    )
    assert parsed.function_timeout == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    assert parsed.queues.max_polling_interval == timedelta(milliseconds=2500)
    assert parsed.queues.visibility_timeout == timedelta(seconds=5)
    assert parsed.queues.new_batch_threshold == 2  # batchSize / 2
    assert parse_host_config({"functionTimeout": "-1"}).function_timeout is None
    project = load_host_config(PROJECT_ROOT / "host.json")
    assert project.queues.batch_size == 16 and project.queues.max_polling_interval == timedelta(milliseconds=500)
    assert load_host_config(tmp_path / "missing.json") == HostConfig()
    for bad in (
        {"extensions": {"queues": {"batchSize": 64}}},
        {"extensions": {"queues": {"maxPollingInterval": "00:00:00.050"}}},
        {"extensions": {"queues": {"messageEncoding": "utf8"}}},
        {"functionTimeout": "five minutes"},
    ):
        with pytest.raises(SettingsError, match=r"host\.json"):
            parse_host_config(bad)


def _read_until(proc: subprocess.Popen[str], needle: str, seen: list[str], timeout: float = 20.0) -> None:
    """Read the host's output lines until one contains ``needle`` (bounded by a timer kill)."""
    assert proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            seen.append(line)
            if needle in line:
                return
        raise AssertionError(f"host exited before printing {needle!r}:\n{''.join(seen)}")
    finally:
        timer.cancel()


async def test_sigterm_exits_cleanly_and_in_flight_messages_reappear(azurite: Azurite, tmp_path):
    (tmp_path / "host.json").write_text('{"extensions": {"queues": {"maxPollingInterval": "00:00:00.200"}}}')
    clients = {}
    for queue_name in (sample_app.ASYNC_QUEUE, sample_app.SYNC_QUEUE):
        clients[queue_name] = client = QueueClient.from_connection_string(
            azurite.connection_string, queue_name,
            message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
        )  # fmt: skip
    env = {**os.environ, "AzureWebJobsStorage": azurite.connection_string}
    proc = subprocess.Popen(
        [sys.executable, "-m", "localdev.functions_host", "--app", "tests.localdev.sample_app:app",
         "--host-json", str(tmp_path / "host.json"), "--drain-timeout", "1"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen: list[str] = []
    try:
        await asyncio.to_thread(_read_until, proc, READY_PREFIX, seen)
        found = re.search(r"worker pid (\d+)", seen[-1])
        assert found, seen[-1]
        worker_pid = int(found.group(1))
        assert worker_alive(worker_pid)
        for client in clients.values():
            await client.clear_messages()
            await client.send_message("in flight")
        await asyncio.to_thread(_read_until, proc, "sample started", seen)
        await asyncio.to_thread(_read_until, proc, "sample started", seen)
        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(proc.communicate, timeout=15)
        seen.append(output)
        assert proc.returncode == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not worker_alive(worker_pid)  # the host ended its worker before exiting
    log = "".join(seen)
    assert "sample started: async in flight" in log  # the worker's log records, in the host's output
    assert "devstoreaccount1;AccountKey" not in log and "Eby8vdM02" not in log
    for client in clients.values():
        async with client:
            # Released at shutdown (visibilityTimeout 0): visible again at once, body intact.
            await eventually(functools.partial(message_count, client))
            [again] = [m async for m in client.receive_messages()]
            assert again.content == b"in flight" and again.dequeue_count == 2


async def test_host_survives_storage_restart(queue_names: Iterator[str], probe: Probe):
    name = next(queue_names)
    with Azurite() as storage:
        settings = Settings(storage=StorageSettings(connection_string=Secret(storage.connection_string)))
        async with running(probe.env(settings, queue=name), settings), queue(storage, name) as q:
            await asyncio.to_thread(storage.restart)  # in memory: the queue is gone

            async def queue_recreated() -> bool:
                try:
                    await q.get_queue_properties()
                    return True
                except ResourceNotFoundError:
                    return False

            await eventually(queue_recreated, timeout=20)
            await q.send_message("after restart")
            await eventually(lambda: probe.bodies == ["after restart"], timeout=20)
