"""The Azure Functions app (Python v2 programming model).

One queue-triggered function per command, each in its own module under
command_functions/ as a Blueprint, so each command scales on its own (Flex Consumption
per-function scaling). Importing this module loads settings, sets up telemetry and builds
the clients once: that work is the cold start, measured as the ``cold_start`` span.
"""

from __future__ import annotations

import azure.functions as func

from command_functions import catfact, help, mtg, ping, relationships, roll, source
from function_runtime import runtime

# Settings, telemetry and clients, built while the worker starts rather than inside the
# first invocation; a bad setting stops start-up here with one line naming it.
runtime.get_runtime()

app = func.FunctionApp()
for module in (help, ping, source, catfact, mtg, relationships, roll):
    app.register_functions(module.bp)
