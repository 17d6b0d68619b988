"""Every registered command has exactly one queue-triggered function, and nothing else does."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.registry import COMMANDS


@pytest.fixture(scope="module")
def functions(session_telemetry: InMemorySpanExporter) -> list[Any]:
    app = importlib.import_module("function_app").app
    return list(app.get_functions())  # may be called once per app: keep the result


def _trigger(fn: Any) -> Any:
    triggers = [b for b in fn.get_bindings() if b.type == "queueTrigger"]
    assert len(triggers) == 1, f"{fn.get_function_name()} needs exactly one queue trigger"
    return triggers[0]


def test_every_command_has_a_queue_triggered_function(functions: list[Any]) -> None:
    by_name = {fn.get_function_name(): fn for fn in functions}
    assert set(by_name) == {*COMMANDS, "interactions", "reminders_due"}
    for name, spec in COMMANDS.items():
        binding = _trigger(by_name[name])
        assert binding.queue_name == f"cmd-{name}" == spec.queue
        assert binding.connection == "AzureWebJobsStorage"


def test_reminders_due_is_a_plain_queue_trigger(functions: list[Any]) -> None:
    """The one non-command queue function: its own queue, a QueueMessage parameter, no other binding."""
    (fn,) = [fn for fn in functions if fn.get_function_name() == "reminders_due"]
    binding = _trigger(fn)
    assert binding.queue_name == "reminders-due" and binding.connection == "AzureWebJobsStorage"
    assert [b.type for b in fn.get_bindings()] == ["queueTrigger"]
    assert list(inspect.signature(fn.get_user_function()).parameters) == ["msg"]


def test_the_interactions_endpoint_is_the_one_anonymous_http_function(functions: list[Any]) -> None:
    http = [fn for fn in functions if fn.get_trigger().type == "httpTrigger"]
    assert [fn.get_function_name() for fn in http] == ["interactions"]
    trigger = http[0].get_trigger()
    assert trigger.route == "interactions" and [m.value for m in trigger.methods] == ["POST"]
    assert trigger.auth_level.value == "anonymous"  # Discord's signature is the authentication


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
