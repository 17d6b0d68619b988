"""A tiny FunctionApp for the subprocess tests of ``python -m localdev.functions_host``.

Both functions block until the host shuts down, so a test can SIGTERM the host with a
message in flight. Queue names are fixed; only tests/localdev/test_functions_host.py uses them.
"""

from __future__ import annotations

import asyncio
import logging
import time

import azure.functions as func

_log = logging.getLogger(__name__)

ASYNC_QUEUE = "localdev-sample-async"
SYNC_QUEUE = "localdev-sample-sync"

bp = func.Blueprint()


@bp.function_name("sample-async")
@bp.queue_trigger(arg_name="msg", queue_name=ASYNC_QUEUE, connection="AzureWebJobsStorage")
async def sample_async(msg: func.QueueMessage) -> None:
    _log.info("sample started: async %s", msg.get_body().decode())
    await asyncio.sleep(3600)


@bp.function_name("sample-sync")
@bp.queue_trigger(arg_name="msg", queue_name=SYNC_QUEUE, connection="AzureWebJobsStorage")
def sample_sync(msg: func.QueueMessage) -> None:
    _log.info("sample started: sync %s", msg.get_body().decode())
    time.sleep(3600)


app = func.FunctionApp()
app.register_functions(bp)
