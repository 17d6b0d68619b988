"""The HTTP cold-start baseline: a Functions app that imports only azure.functions and answers
every POST to /api/interactions with ``{"type": 5}`` (no signature check, no queue, no telemetry)."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp()


@app.function_name("interactions")
@app.route(route="interactions", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def interactions(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse('{"type": 5}', mimetype="application/json")
