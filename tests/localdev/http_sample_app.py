"""A FunctionApp with one HTTP trigger, for the subprocess tests of the local host's HTTP serving."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp()


@app.function_name("hello")
@app.route(route="hello", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")
