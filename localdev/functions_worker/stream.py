"""One worker: the EventStream to the host and the dispatch of its requests to ``azure_functions_runtime``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import azure_functions_runtime as library
import grpc

from localdev.functions_rpc import EVENT_STREAM, protos
from localdev.functions_worker.logs import RpcLogHandler

_log = logging.getLogger(__name__)

# request field -> (the library's handler, the response field); the proxy's whole dispatch table
HANDLERS: dict[str, tuple[str, str]] = {
    "worker_init_request": ("worker_init_request", "worker_init_response"),
    "functions_metadata_request": ("functions_metadata_request", "function_metadata_response"),
    "function_load_request": ("function_load_request", "function_load_response"),
    "invocation_request": ("invocation_request", "invocation_response"),
    "function_environment_reload_request": ("function_environment_reload_request",
                                            "function_environment_reload_response"),
}


@dataclass(frozen=True)
class Request:
    """What the library's handlers take: the message, and the host address and protos beside it."""

    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


class Worker:
    def __init__(self, host: str, port: int, worker_id: str, max_message_length: int) -> None:
        self.address = f"{host}:{port}"
        self.worker_id = worker_id
        # Reconnect fast: the host may start this process before its server listens, and gRPC's
        # default first retry comes only after a second.
        self._options = [("grpc.max_send_message_length", max_message_length),
                         ("grpc.max_receive_message_length", max_message_length),
                         ("grpc.initial_reconnect_backoff_ms", 20), ("grpc.min_reconnect_backoff_ms", 20),
                         ("grpc.max_reconnect_backoff_ms", 200)]
        self._protos = protos()
        self._outgoing: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, message: Any) -> None:
        """Queue a message for the host; callable from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._outgoing.put_nowait, message)

    async def _messages_out(self) -> Any:
        while True:
            message = await self._outgoing.get()
            if message is None:
                return
            yield message

    async def run(self) -> None:
        """Serve until the host sends WorkerTerminate or closes the stream."""
        self._loop = asyncio.get_running_loop()
        p = self._protos
        # StartStream first: the host reads nothing else before it.
        self._outgoing.put_nowait(p.StreamingMessage(start_stream=p.StartStream(worker_id=self.worker_id)))
        handler = RpcLogHandler(p, self.send)
        logging.getLogger().addHandler(handler)
        library.start_threadpool_executor()
        try:
            async with grpc.aio.insecure_channel(self.address, options=self._options) as channel:
                # wait_for_ready: the host may start this process before its gRPC server is listening
                call = channel.stream_stream(EVENT_STREAM, request_serializer=p.StreamingMessage.SerializeToString,
                                             response_deserializer=p.StreamingMessage.FromString)(
                    self._messages_out(), wait_for_ready=True)
                async for message in call:
                    if message.WhichOneof("content") == "worker_terminate":
                        break
                    task = asyncio.create_task(self._handle(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                self._outgoing.put_nowait(None)
        except grpc.aio.AioRpcError as exc:
            _log.debug("stream to the host ended (%s)", exc.code())
        finally:
            # Not library.stop_threadpool_executor(): it joins the pool, and a function still running
            # would hold the worker forever; the process exits right after this (__main__).
            logging.getLogger().removeHandler(handler)

    async def _handle(self, message: Any) -> None:
        p = self._protos
        kind = message.WhichOneof("content")
        if kind == "worker_status_request":
            self.send(p.StreamingMessage(request_id=message.request_id,
                                         worker_status_response=p.WorkerStatusResponse()))
            return
        if kind not in HANDLERS:
            _log.debug("ignoring %s from the host", kind)
            return
        handler_name, response_field = HANDLERS[kind]
        handler = getattr(library, handler_name)
        response = await handler(Request(message, {"host": self.address, "protos": p}))
        self.send(p.StreamingMessage(request_id=message.request_id, **{response_field: response}))
