"""Log records of the worker process, sent to the host as ``RpcLog`` messages (as the real worker does)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from azure_functions_runtime import invocation_id_cv

SYSTEM_LOGGERS = ("azure.functions", "azure_functions_runtime", "localdev.functions_worker")

_LEVELS = {  # logging level -> RpcLog.Level value
    logging.DEBUG: 1,  # Debug
    logging.INFO: 2,  # Information
    logging.WARNING: 3,  # Warning
    logging.ERROR: 4,  # Error
    logging.CRITICAL: 5,  # Critical
}


def rpc_level(levelno: int) -> int:
    """The RpcLog level of a Python level (between two named levels: the lower one)."""
    return max((v for k, v in _LEVELS.items() if k <= levelno), default=0)


class RpcLogHandler(logging.Handler):
    """Turns each record into an ``RpcLog`` and hands it to ``send`` (thread-safe: ``send`` must be)."""

    def __init__(self, protos: Any, send: Callable[[Any], None]) -> None:
        super().__init__()
        self._protos = protos
        self._send = send
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            p = self._protos
            system = record.name.startswith(SYSTEM_LOGGERS)
            log = p.RpcLog(
                invocation_id=invocation_id_cv.get() or "",
                category=record.name,
                level=rpc_level(record.levelno),
                message=record.getMessage(),
                log_category=p.RpcLog.System if system else p.RpcLog.User,
            )
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                log.exception.CopyFrom(p.RpcException(
                    type=type(exc).__name__, message=str(exc),
                    stack_trace="".join(traceback.format_exception(exc)),
                ))
            self._send(p.StreamingMessage(rpc_log=log))
        except Exception:  # a log line must never break the invocation that wrote it
            self.handleError(record)
