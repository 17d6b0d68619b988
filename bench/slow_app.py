"""A Functions app whose one function calls a slow external API (SLOW_API_URL) with requests.

For the throughput benchmark: each invocation waits on the network like catfact or
Scryfall would, then appends its completion time to BENCH_MARK_FILE.
"""

from __future__ import annotations

import os
import time

import azure.functions as func
import requests

QUEUE = "bench-slow"

app = func.FunctionApp()
_session = requests.Session()


@app.function_name("slow")
@app.queue_trigger(arg_name="msg", queue_name=QUEUE, connection="AzureWebJobsStorage")
def slow(msg: func.QueueMessage) -> None:
    _session.get(os.environ["SLOW_API_URL"], timeout=10).raise_for_status()
    with open(os.environ["BENCH_MARK_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{time.time_ns()}\n")  # one write(): lines from threads never interleave
