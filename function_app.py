"""The Azure Functions app (Python v2 programming model).

One queue-triggered function per registry row, each running the plain ``handle`` of
``command_functions/<command>.py`` (the trigger is built by
``function_runtime.triggers.command_blueprint``), so each command scales on its own
(Flex Consumption per-function scaling). Functions that are not commands join through
:data:`EXTRA_BLUEPRINTS`. Importing this module loads settings, sets up telemetry and
builds the clients once: that work is the cold start, measured as the ``cold_start`` span.
Microsoft's worker library (``azure_functions_runtime``) imports this module and indexes ``app``.
"""

from __future__ import annotations

import azure.functions as func

from function_runtime import INDEXING_BEGAN_NS, interactions, reminders_due, runtime, startup
from function_runtime.triggers import command_blueprint, lazy_handler
from shared.registry import COMMANDS

# Settings, telemetry and clients, built while the worker starts rather than inside the
# first invocation; a bad setting stops start-up here with one line naming it.
runtime.get_runtime()

# Non-command functions: the HTTP Interactions Endpoint URL (gateway-less mode, /api/interactions);
# reminders_due, the queue trigger on reminders-due that fires !remindme's reminders when due.
EXTRA_BLUEPRINTS: tuple[func.Blueprint, ...] = (interactions.bp, reminders_due.bp)

app = func.FunctionApp()
for spec in COMMANDS.values():
    app.register_functions(command_blueprint(spec, lazy_handler(spec)))  # each module imported when first run
for blueprint in EXTRA_BLUEPRINTS:
    app.register_functions(blueprint)
startup.MARKS.indexed(INDEXING_BEGAN_NS)  # the cold_start span's ``indexing`` phase ends here
