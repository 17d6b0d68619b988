"""A function app for the local host's tests, run by the real worker process (never imported by the tests).

Configured by the worker's environment (``FunctionsHost(..., worker_env=...)``):

- ``PROBE_DIR`` (required): each invocation appends one JSON line to ``calls.jsonl`` here with what
  it saw (see :func:`_record`); ``block`` waits for a file named ``release`` here.
- ``PROBE_QUEUE``: registers ``fn`` (sync, takes ``context``) on that queue; ``PROBE_NAME`` renames it.
- ``PROBE_ASYNC_QUEUE``: registers ``fn-async`` (async) on that queue.
- ``PROBE_CONNECTION``: the queue triggers' connection setting (default ``AzureWebJobsStorage``).
- ``PROBE_HTTP=1``: registers the HTTP functions ``echo``, ``boom`` and ``json``.

A queue function's behaviour is chosen by the message body: ``fail`` raises, ``fail-first`` raises on
the first dequeue, ``sleep:N`` sleeps N seconds, ``block`` waits (bounded) until ``release`` exists,
``log:TEXT`` logs TEXT at WARNING; anything else just returns.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import azure.functions as func

PROBE_DIR = Path(os.environ["PROBE_DIR"])
CALLS = PROBE_DIR / "calls.jsonl"
RELEASE = PROBE_DIR / "release"
BLOCK_LIMIT_S = 30.0  # a "block" message never holds a worker thread longer than this
CONNECTION = os.environ.get("PROBE_CONNECTION", "AzureWebJobsStorage")


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _record(fn: str, msg: func.QueueMessage, context: func.Context | None) -> str:
    """Append what this invocation saw to calls.jsonl (one write: lines from threads never tear)."""
    body = msg.get_body()
    try:
        loop_id: int | None = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = None
    line = {
        "fn": fn,
        "body": body.decode("utf-8", "replace"),
        "id": msg.id,
        "dequeue_count": msg.dequeue_count,
        "pop_receipt": msg.pop_receipt,
        "insertion_time": _time(msg.insertion_time),
        "expiration_time": _time(msg.expiration_time),
        "time_next_visible": _time(msg.time_next_visible),
        "main_thread": threading.current_thread() is threading.main_thread(),
        "loop": loop_id,
        "function_name": context.function_name if context is not None else None,
        "invocation_id": context.invocation_id if context is not None else None,
        "trace_parent": context.trace_context.trace_parent if context is not None else None,
        "at": time.time(),
        "pid": os.getpid(),  # which worker process ran it
    }
    fd = os.open(CALLS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    return body.decode("utf-8", "replace")


def _must_fail(body: str, msg: func.QueueMessage) -> bool:
    return body == "fail" or (body == "fail-first" and msg.dequeue_count == 1)


def _sync_behaviour(body: str, msg: func.QueueMessage) -> None:
    if _must_fail(body, msg):
        raise RuntimeError(f"probe failure ({body})")
    if body.startswith("sleep:"):
        time.sleep(float(body.removeprefix("sleep:")))
    elif body == "block":
        deadline = time.monotonic() + BLOCK_LIMIT_S
        while not RELEASE.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    elif body.startswith("log:"):
        logging.warning("probe says %s", body.removeprefix("log:"))


async def _async_behaviour(body: str, msg: func.QueueMessage) -> None:
    if _must_fail(body, msg):
        raise RuntimeError(f"probe failure ({body})")
    if body.startswith("sleep:"):
        await asyncio.sleep(float(body.removeprefix("sleep:")))
    elif body == "block":
        deadline = time.monotonic() + BLOCK_LIMIT_S
        while not RELEASE.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    elif body.startswith("log:"):
        logging.warning("probe says %s", body.removeprefix("log:"))


bp = func.Blueprint()

if queue := os.environ.get("PROBE_QUEUE"):

    @bp.function_name(os.environ.get("PROBE_NAME", "fn"))
    @bp.queue_trigger(arg_name="msg", queue_name=queue, connection=CONNECTION)
    def fn(msg: func.QueueMessage, context: func.Context) -> None:
        _sync_behaviour(_record("fn", msg, context), msg)


if async_queue := os.environ.get("PROBE_ASYNC_QUEUE"):

    @bp.function_name("fn-async")
    @bp.queue_trigger(arg_name="msg", queue_name=async_queue, connection=CONNECTION)
    async def fn_async(msg: func.QueueMessage, context: func.Context) -> None:
        await _async_behaviour(_record("fn-async", msg, context), msg)


if os.environ.get("PROBE_HTTP") == "1":

    @bp.function_name("echo")
    @bp.route(route="items/{item_id}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen: dict[str, Any] = {
            "fn": "echo", "method": req.method, "url": req.url, "params": dict(req.params),
            "route_params": dict(req.route_params), "x_test": req.headers.get("X-Test"),
            "body_b64": base64.b64encode(req.get_body()).decode(),
        }  # fmt: skip
        with CALLS.open("a", encoding="utf-8") as f:
            f.write(json.dumps(seen) + "\n")
        return func.HttpResponse(b"got:" + req.get_body(), status_code=201,
                                 headers={"X-Item": req.route_params["item_id"]})

    @bp.function_name("boom")
    @bp.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    async def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("bug")

    @bp.function_name("json")
    @bp.route(route="json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def json_answer(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"ok": True, "q": req.params.get("q")}), mimetype="application/json")


app = func.FunctionApp()
app.register_functions(bp)
