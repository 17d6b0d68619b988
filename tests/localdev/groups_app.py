"""A function app for tests/localdev/test_scale_groups.py, indexed by a real worker process:
two queue-triggered functions and two HTTP-triggered ones whose names say nothing of their trigger."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.function_name("ping")
@app.queue_trigger(arg_name="msg", queue_name="cmd-ping", connection="AzureWebJobsStorage")
def ping(msg: func.QueueMessage) -> None:
    pass


@app.function_name("catfact")
@app.queue_trigger(arg_name="msg", queue_name="cmd-catfact", connection="AzureWebJobsStorage")
async def catfact(msg: func.QueueMessage) -> None:
    pass


@app.function_name("interactions")
@app.route(route="interactions", methods=["POST"])
def interactions(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.function_name("health")
@app.route(route="health")
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")
