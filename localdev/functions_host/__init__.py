"""A local stand-in for the Azure Functions host: queue triggers only, honouring host.json."""

from __future__ import annotations

from localdev.functions_host.backoff import PollingBackoff
from localdev.functions_host.host import READY_PREFIX, FunctionsHost
from localdev.functions_host.hostconfig import HostConfig, QueuesConfig, load_host_config, parse_host_config

__all__ = [
    "READY_PREFIX",
    "FunctionsHost",
    "HostConfig",
    "PollingBackoff",
    "QueuesConfig",
    "load_host_config",
    "parse_host_config",
]
