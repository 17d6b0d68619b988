"""The cold-start baseline: a Functions app that imports only azure.functions, one queue trigger.

Its function appends ``time.time_ns()`` to BENCH_MARK_FILE, so the benchmark knows when
the first invocation ran.
"""

from __future__ import annotations

import os
import time

import azure.functions as func

QUEUE = "bench-minimal"

app = func.FunctionApp()


@app.function_name("minimal")
@app.queue_trigger(arg_name="msg", queue_name=QUEUE, connection="AzureWebJobsStorage")
def minimal(msg: func.QueueMessage) -> None:
    with open(os.environ["BENCH_MARK_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{time.time_ns()}\n")
