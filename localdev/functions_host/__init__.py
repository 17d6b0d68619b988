"""A local stand-in for the Azure Functions host: queue and HTTP triggers, honouring host.json, the app
run by Microsoft's worker library in a worker process of its own."""

from __future__ import annotations

from localdev.functions_host.backoff import PollingBackoff
from localdev.functions_host.host import READY_PREFIX, FunctionsHost
from localdev.functions_host.hostconfig import HostConfig, QueuesConfig, load_host_config, parse_host_config
from localdev.functions_host.worker_channel import AppLocation

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
