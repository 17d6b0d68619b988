"""Scaling groups from the app's trigger types, as Flex Consumption forms them."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from localdev.functions_host import AppLocation
from localdev.functions_host.worker_channel import IndexedFunction, WorkerChannel
from localdev.scale_controller.groups import (
    FunctionInfo,
    index_functions,
    parse_always_ready,
    scale_groups,
    single_group,
)
from shared.errors import SettingsError


async def _index(spec: str) -> list[IndexedFunction]:
    """The app's functions as a real worker process indexes them (as the scale controller does)."""
    channel = WorkerChannel(AppLocation.of(spec), dict(os.environ))
    try:
        return await channel.start()
    finally:
        await channel.stop()


@pytest.fixture(scope="module")
def indexed() -> list[IndexedFunction]:
    """tests/localdev/groups_app.py: queue functions ping and catfact, HTTP functions interactions and health."""
    return asyncio.run(_index("tests.localdev.groups_app"))


@pytest.fixture
def functions(indexed: list[IndexedFunction]) -> list[FunctionInfo]:
    return index_functions(indexed)


def _function(name: str, *bindings: dict[str, Any]) -> IndexedFunction:
    """An IndexedFunction as the worker's metadata gives it (no RpcFunctionMetadata needed here)."""
    return IndexedFunction(function_id=f"id-{name}", name=name, bindings=bindings, metadata=None)


def test_index_reads_trigger_types_and_queues_from_the_workers_metadata(
    indexed: list[IndexedFunction], functions: list[FunctionInfo]
) -> None:
    assert indexed[0].trigger == {"direction": "IN", "type": "queueTrigger", "name": "msg", "queueName": "cmd-ping",
                                  "connection": "AzureWebJobsStorage"}
    assert indexed[2].trigger["type"] == "httpTrigger" and indexed[2].trigger["route"] == "interactions"
    assert functions == [
        FunctionInfo("ping", "queueTrigger", "cmd-ping"),
        FunctionInfo("catfact", "queueTrigger", "cmd-catfact"),
        FunctionInfo("interactions", "httpTrigger", None),
        FunctionInfo("health", "httpTrigger", None),
    ]


def test_each_queue_function_scales_alone_and_http_functions_share_one_group(functions: list[FunctionInfo]) -> None:
    groups = scale_groups(functions)
    assert [(g.name, g.functions, g.queues) for g in groups] == [
        ("function:ping", ("ping",), ("cmd-ping",)),
        ("function:catfact", ("catfact",), ("cmd-catfact",)),
        ("http", ("interactions", "health"), ()),
    ]
    assert [g.label for g in groups] == ["ping", "catfact", "http"]


def test_blob_and_durable_triggers_share_groups_and_other_triggers_scale_alone() -> None:
    functions = index_functions([
        _function("resize", {"type": "blobTrigger", "direction": "IN", "name": "blob", "path": "uploads/{name}",
                             "connection": "AzureWebJobsStorage", "source": "EventGrid"}),
        _function("orchestrate", {"type": "orchestrationTrigger", "direction": "IN", "name": "context"}),
        _function("thumbnail", {"type": "blobTrigger", "direction": "IN", "name": "blob", "path": "thumbs/{name}",
                                "connection": "AzureWebJobsStorage", "source": "EventGrid"}),
        _function("step", {"type": "activityTrigger", "direction": "IN", "name": "input"}),
        _function("tick", {"type": "timerTrigger", "direction": "IN", "name": "timer", "schedule": "0 */5 * * * *"}),
        _function("relay",  # the trigger binding decides, wherever it is among the bindings
                  {"type": "queue", "direction": "OUT", "name": "out", "queueName": "results",
                   "connection": "AzureWebJobsStorage"},
                  {"type": "queueTrigger", "direction": "IN", "name": "msg", "queueName": "cmd-relay",
                   "connection": "AzureWebJobsStorage"}),
    ])
    groups = scale_groups(functions)
    assert [(g.name, g.functions, g.queues) for g in groups] == [
        ("blob", ("resize", "thumbnail"), ()),
        ("durable", ("orchestrate", "step"), ()),
        ("function:tick", ("tick",), ()),
        ("function:relay", ("relay",), ("cmd-relay",)),
    ]


def test_single_host_is_one_group_of_everything(functions: list[FunctionInfo]) -> None:
    [group] = single_group(functions)
    assert group.functions == ("ping", "catfact", "interactions", "health")
    assert group.queues == ("cmd-ping", "cmd-catfact")


def test_always_ready_accepts_labels_and_iac_names(functions: list[FunctionInfo]) -> None:
    groups = scale_groups(functions)
    assert parse_always_ready("ping=1, function:catfact=2,http=1", groups) == {
        "function:ping": 1, "function:catfact": 2, "http": 1}
    assert parse_always_ready("", groups) == {}
    assert parse_always_ready("*=1,ping=2", groups) == {"function:ping": 2, "function:catfact": 1, "http": 1}


@pytest.mark.parametrize(("raw", "message"), [
    ("pong=1", "no scaling group 'pong'"),
    ("ping", "expected NAME=COUNT"),
    ("ping=-1", "expected NAME=COUNT"),
])
def test_always_ready_errors_are_clear(raw: str, message: str, functions: list[FunctionInfo]) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_always_ready(raw, scale_groups(functions))
