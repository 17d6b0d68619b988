"""Scaling groups: which functions share instances, as Flex Consumption groups them.

Flex Consumption scales each function on its own, except that all HTTP-triggered
functions share one group (``http``), as do Blob (Event Grid source) triggers (``blob``)
and Durable Functions triggers (``durable``). The groups come from the app's registered
functions' trigger types, never from their names. Always-ready instances are set per
group with the IaC names: ``http``, ``blob``, ``durable`` or ``function:<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from localdev.functions_host.worker_channel import IndexedFunction
from shared.errors import SettingsError

# Trigger binding type -> the shared group it belongs to; any other trigger scales alone.
SHARED_GROUPS: Mapping[str, str] = {
    "httpTrigger": "http",
    "blobTrigger": "blob",
    "orchestrationTrigger": "durable",
    "activityTrigger": "durable",
    "entityTrigger": "durable",
}
FUNCTION_PREFIX = "function:"


@dataclass(frozen=True)
class ScaleGroup:
    name: str  # "http", "blob", "durable" or "function:<name>"
    functions: tuple[str, ...]
    queues: tuple[str, ...]  # the queues its queue triggers read: the event source the controller measures

    @property
    def label(self) -> str:
        """The short name logs, instance ids and the prompt use: ``catfact``, ``http``."""
        return self.name.removeprefix(FUNCTION_PREFIX)


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    trigger: str  # binding type, e.g. "queueTrigger"
    queue: str | None


def index_functions(functions: Sequence[IndexedFunction]) -> list[FunctionInfo]:
    """Name, trigger type and queue of every function, from the worker's function metadata."""
    found = []
    for function in functions:
        binding = str(function.trigger.get("type", "none"))
        queue = str(function.trigger.get("queueName", "")) if binding == "queueTrigger" else None
        found.append(FunctionInfo(function.name, binding, queue))
    return found


def scale_groups(functions: Sequence[FunctionInfo]) -> list[ScaleGroup]:
    """Per-function groups, with HTTP (and blob, durable) functions each sharing one, in app order."""
    members: dict[str, list[FunctionInfo]] = {}
    for f in functions:
        members.setdefault(SHARED_GROUPS.get(f.trigger, FUNCTION_PREFIX + f.name), []).append(f)
    return [
        ScaleGroup(name, tuple(f.name for f in fs), tuple(f.queue for f in fs if f.queue))
        for name, fs in members.items()
    ]


def single_group(functions: Sequence[FunctionInfo]) -> list[ScaleGroup]:
    """Every function in one instance: the single-host mode (one process, one thread pool)."""
    return [ScaleGroup("host", tuple(f.name for f in functions), tuple(f.queue for f in functions if f.queue))]


def parse_always_ready(raw: str, groups: Sequence[ScaleGroup]) -> dict[str, int]:
    """``ping=1,http=2`` (or the IaC spelling ``function:ping=1``; ``*=1`` every group) -> {group name: count}."""
    by_label = {g.label: g.name for g in groups} | {g.name: g.name for g in groups}
    out: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise SettingsError(f"--always-ready: expected NAME=COUNT, got {item!r}")
        if key.strip() == "*":
            out.update({g.name: int(value) for g in groups})
            continue
        if key.strip() not in by_label:
            raise SettingsError(
                f"--always-ready: no scaling group {key.strip()!r} (groups: {', '.join(g.label for g in groups)})"
            )
        out[by_label[key.strip()]] = int(value)
    return out
