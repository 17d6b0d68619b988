"""The Azure Functions app (Python v2 programming model).

One queue-triggered function per command, each in its own module under
command_functions/ as a Blueprint, so each command scales on its own (Flex Consumption
per-function scaling). Importing this module loads settings and sets up telemetry once:
that work is the first phase of a cold start and is measured as such.
"""

from __future__ import annotations

import azure.functions as func

from command_functions import catfact, help, mtg, ping, relationships, roll, source
from shared import runtime

runtime.startup()

app = func.FunctionApp()
for module in (help, ping, source, catfact, mtg, relationships, roll):
    app.register_functions(module.bp)
