"""A local Flex Consumption scale controller: per-function groups of functions-host instances."""

from __future__ import annotations

from localdev.scale_controller.controller import DECISION_SPAN, READY_PREFIX, ScaleController, read_status
from localdev.scale_controller.groups import ScaleGroup, index_functions, scale_groups, single_group
from localdev.scale_controller.policy import Decision, Policy, decide

__all__ = [
    "DECISION_SPAN",
    "READY_PREFIX",
    "Decision",
    "Policy",
    "ScaleController",
    "ScaleGroup",
    "decide",
    "index_functions",
    "read_status",
    "scale_groups",
    "single_group",
]
