"""The warm-hop baseline app: one queue-triggered function that does nothing.

bench/worker.py invokes it through the worker channel and calls it in-process, so the
difference between the two is the worker hop alone (no file or network work in the function).
"""

from __future__ import annotations

import azure.functions as func

QUEUE = "bench-noop"
FUNCTION = "noop"

app = func.FunctionApp()


@app.function_name(FUNCTION)
@app.queue_trigger(arg_name="msg", queue_name=QUEUE, connection="AzureWebJobsStorage")
def noop(msg: func.QueueMessage) -> None:
    pass
