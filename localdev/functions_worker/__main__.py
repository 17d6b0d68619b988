"""``python -m localdev.functions_worker --host H --port P --workerId ID --requestId ID``.

Started by the local Functions host with the arguments the Functions host gives a language worker;
connects back to it and runs until told to stop (or until the host goes away).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import faulthandler
import logging
import os
import signal
import sys

from localdev.functions_worker.stream import Worker


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the host process dies, even if the app blocks the event loop
    (otherwise the broken stream ends the worker)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.functions_worker", description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workerId", "--functions-worker-id", dest="worker_id", required=True)
    parser.add_argument("--requestId", "--functions-request-id", dest="request_id", default="")
    parser.add_argument("--grpcMaxMessageLength", "--functions-grpc-max-message-length",
                        dest="max_message_length", type=int, default=2**31 - 1)
    args = parser.parse_args(argv)
    _die_with_parent()
    # `kill -USR1 <worker pid>` prints every thread's stack to stderr (the host's log): a command
    # stuck in a call shows its frames under azure_functions_runtime's.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Records go to the host as RpcLog messages (stream.py); INFO and up, as the real worker sends.
    logging.getLogger().setLevel(logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Worker(args.host, args.port, args.worker_id, args.max_message_length).run())
    # A sync function still running in the library's pool would hold interpreter exit: the host
    # has let go of this worker, so nothing it runs can be answered any more.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
