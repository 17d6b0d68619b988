"""A local stand-in for the Azure Functions host: queue and HTTP triggers, honouring host.json, the app
run by Microsoft's worker library in a worker process of its own.

Names are imported on first use (PEP 562), so ``python -m localdev.functions_host`` can start the worker
before the host's heavy imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localdev.functions_host.backoff import PollingBackoff
    from localdev.functions_host.host import READY_PREFIX, FunctionsHost
    from localdev.functions_host.hostconfig import HostConfig, QueuesConfig, load_host_config, parse_host_config
    from localdev.functions_host.spawn import AppLocation

_WHERE = {
    "AppLocation": "spawn",
    "FunctionsHost": "host",
    "HostConfig": "hostconfig",
    "PollingBackoff": "backoff",
    "QueuesConfig": "hostconfig",
    "READY_PREFIX": "host",
    "load_host_config": "hostconfig",
    "parse_host_config": "hostconfig",
}

__all__ = [
    "READY_PREFIX",
    "AppLocation",
    "FunctionsHost",
    "HostConfig",
    "PollingBackoff",
    "QueuesConfig",
    "load_host_config",
    "parse_host_config",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
