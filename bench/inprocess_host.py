"""The in-host baseline of bench/worker.py: function_app.py run the way the local host ran it before
the worker process (issue 18), in this one process.

``python -m bench.inprocess_host [--once] [--function NAME]`` imports function_app, takes the
function from ``app.get_functions()``, then polls its queue (azure-storage-queue, the project's
sync client and base64 encoding) every 0.5 s (host.json's maxPollingInterval); for each message it
builds the ``azure.functions.QueueMessage`` the worker would build and calls the user function
directly, then deletes the message. ``--once``: exit after the first invocation (the cold-reply
baseline); otherwise it runs until SIGTERM (the idle-memory baseline). Logs ``in-host ready`` once
the app is imported and the queue client built, before its first poll.

Only the function's own path is here: no worker protocol, no thread pool, no poison queue, no lease
renewal, one queue. That is what the host process paid before the change, less its asyncio pollers.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from typing import Any

READY = "in-host ready"
POLL_S = 0.5

_log = logging.getLogger("bench.inprocess_host")


def _trigger(function: Any) -> Any:
    trigger = function.get_trigger()
    if trigger is None or trigger.get_binding_name() != "queueTrigger":
        raise SystemExit(f"function {function.get_function_name()} is not queue-triggered")
    return trigger


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess_host", description=__doc__)
    parser.add_argument("--function", default="ping", help="the function to run (default ping)")
    parser.add_argument("--once", action="store_true", help="exit after the first invocation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    import function_app  # settings, telemetry, runtime: what the worker's indexing does

    functions = {str(f.get_function_name()): f for f in function_app.app.get_functions()}
    if args.function not in functions:
        raise SystemExit(f"no function {args.function!r} (the app has: {', '.join(sorted(functions))})")
    function = functions[args.function]
    trigger = _trigger(function)
    user_function = function.get_user_function()

    from azure.core.exceptions import ResourceExistsError
    from azure.functions.queue import QueueMessage

    from shared.queues import queue_client
    from shared.settings import load_settings

    client = queue_client(load_settings().storage, trigger.queue_name)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    _log.info("%s: %s on %s", READY, args.function, trigger.queue_name)
    while not stop.is_set():
        msg = client.receive_message(visibility_timeout=60)
        if msg is None:
            stop.wait(POLL_S)
            continue
        user_function(**{trigger.name: QueueMessage(
            id=msg.id, body=msg.content, dequeue_count=msg.dequeue_count, insertion_time=msg.inserted_on,
            expiration_time=msg.expires_on, time_next_visible=msg.next_visible_on, pop_receipt=msg.pop_receipt)})
        client.delete_message(msg)
        if args.once:
            break
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
