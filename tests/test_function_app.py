"""Every registered command has exactly one queue-triggered function, and nothing else does.

The functions are read as the Functions host reads them: indexed by Microsoft's worker library
(azure_functions_runtime) in a worker process, as function metadata with its raw bindings.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
from typing import Any

import pytest

from localdev.functions_host.spawn import AppLocation
from localdev.functions_host.worker_channel import IndexedFunction, WorkerChannel
from shared.registry import COMMANDS


async def _index() -> list[IndexedFunction]:
    channel = WorkerChannel(AppLocation.of("function_app"),
                            {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    try:
        return await channel.start()
    finally:
        await channel.stop()


@pytest.fixture(scope="module")
def functions() -> dict[str, IndexedFunction]:
    return {f.name: f for f in asyncio.run(_index())}


def _trigger(fn: IndexedFunction) -> dict[str, Any]:
    triggers = [b for b in fn.bindings if b["type"] == "queueTrigger"]
    assert len(triggers) == 1, f"{fn.name} needs exactly one queue trigger"
    return triggers[0]


def test_every_command_has_a_queue_triggered_function(functions: dict[str, IndexedFunction]) -> None:
    assert set(functions) == {*COMMANDS, "interactions", "reminders_due"}
    for name, spec in COMMANDS.items():
        binding = _trigger(functions[name])
        assert binding["queueName"] == f"cmd-{name}" == spec.queue
        assert binding["connection"] == "AzureWebJobsStorage" and binding["direction"] == "IN"
        assert binding["name"] == "msg"  # the parameter the worker binds the QueueMessage to


def test_reminders_due_is_a_plain_queue_trigger(functions: dict[str, IndexedFunction]) -> None:
    """The one non-command queue function: its own queue, a QueueMessage parameter, no other binding."""
    fn = functions["reminders_due"]
    binding = _trigger(fn)
    assert binding["queueName"] == "reminders-due" and binding["connection"] == "AzureWebJobsStorage"
    assert [b["type"] for b in fn.bindings] == ["queueTrigger"] and binding["name"] == "msg"


def test_the_interactions_endpoint_is_the_one_anonymous_http_function(functions: dict[str, IndexedFunction]) -> None:
    http = [fn for fn in functions.values() if fn.trigger.get("type") == "httpTrigger"]
    assert [fn.name for fn in http] == ["interactions"]
    trigger = http[0].trigger
    assert trigger["route"] == "interactions" and trigger["methods"] == ["POST"]
    assert trigger["authLevel"] == "ANONYMOUS"  # Discord's signature is the authentication
    assert [b["type"] for b in http[0].bindings] == ["httpTrigger", "http"]  # and its $return response


def test_every_command_module_has_a_plain_handler() -> None:
    for name in COMMANDS:
        module = importlib.import_module(f"command_functions.{name}")
        params = list(inspect.signature(module.handle).parameters)
        assert params == ["ctx"], f"command_functions.{name}.handle should take only ctx"
        assert module.SPEC is COMMANDS[name]


def test_slash_descriptions_fit_discord_limits() -> None:
    for spec in COMMANDS.values():
        assert 1 <= len(spec.name) <= 32 and spec.name == spec.name.lower()
        assert 1 <= len(spec.description) <= 100
        for opt in spec.options:
            assert len(opt.description) <= 100


def test_importing_the_app_imports_no_command_module_until_it_runs() -> None:
    import subprocess
    import sys

    from shared.settings import PROJECT_ROOT

    code = (
        "import sys, function_app\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('command_functions.'))\n"
        "assert loaded == [], loaded\n"
        "assert not any(m.startswith(('opentelemetry.exporter', 'azure.monitor', 'featuremanagement', "
        "'opentelemetry.instrumentation')) for m in sys.modules), 'imported before the first reply'\n"
    )
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
           "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
