"""The host's side of the Functions worker protocol: one language worker process per host.

    channel = WorkerChannel(AppLocation.of("function_app"), env)   # AppLocation: localdev.functions_host.spawn
    functions = await channel.start()        # StartStream, WorkerInitRequest (indexes), FunctionsMetadataRequest
    await channel.load(functions[0])          # FunctionLoadRequest
    response = await channel.invoke(fn, input_data, trigger_metadata, trace_context)   # InvocationRequest
    await channel.restart()                   # a new worker: re-indexed, the same functions loaded
    await channel.stop()                      # WorkerTerminate, then the process is ended

The host serves ``FunctionRpc.EventStream`` on a loopback port and starts
``python -m localdev.functions_worker --host ... --port ...`` (the arguments the real host gives a
language worker); the worker connects back and runs ``azure_functions_runtime``. Responses are
matched as the real host matches them: init and metadata by type, loads by function id,
invocations by invocation id. Records the worker logs (``RpcLog``) are logged here under their
category, user records at their level and the library's own at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from localdev.functions_host.spawn import MAX_MESSAGE, WORKER_DIRECTORY, AppLocation, SpawnedWorker, spawn_worker
from localdev.functions_rpc import SERVICE, protos

_log = logging.getLogger(__name__)

HOST_VERSION = "4.1000.0-localdev"
# What the host offers; the worker answers with its own capabilities.
HOST_CAPABILITIES = {"RpcHttpBodyOnly": "true", "RawHttpBodyBytes": "true", "TypedDataCollection": "true",
                     "RpcHttpTriggerMetadataRemoved": "true", "WorkerStatus": "true"}
_RPC_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR,
               5: logging.CRITICAL}


class WorkerError(Exception):
    """The worker could not start, index the app or load a function (the message is the worker's)."""


class FunctionFailed(Exception):
    """An invocation the worker answered with Failure: what the function raised."""

    def __init__(self, exception: Any) -> None:
        self.type = exception.type or "Exception"
        self.message = exception.message
        self.stack_trace = exception.stack_trace
        super().__init__(f"{self.type}: {self.message}")


@dataclass(frozen=True)
class IndexedFunction:
    """One function as the worker's metadata describes it."""

    function_id: str
    name: str
    bindings: tuple[dict[str, Any], ...]  # raw_bindings, parsed (function.json's "bindings")
    metadata: Any  # the RpcFunctionMetadata, sent back in FunctionLoadRequest

    @property
    def trigger(self) -> dict[str, Any]:
        return next((b for b in self.bindings if str(b.get("type", "")).endswith("Trigger")), {})


def _failure(result: Any) -> str | None:
    """None for Success, else the worker's message."""
    if result.status == protos().StatusResult.Success:
        return None
    exc = result.exception
    return f"{exc.type + ': ' if exc.type else ''}{exc.message or 'failed'}"


class WorkerChannel:
    def __init__(self, app: AppLocation, env: Mapping[str, str], *, startup_timeout: float = 60.0,
                 prespawned: SpawnedWorker | None = None) -> None:
        """``app``: what the worker indexes. ``env``: the worker's environment (the app settings), to
        which ``PYTHON_SCRIPT_FILE_NAME`` and the project on PYTHONPATH are added. ``prespawned``: a
        worker already started for this channel (spawn.py), used by the first ``start()``."""
        self.app = app
        self.app_dir = app.directory
        self.script_file = app.script_file
        self._prespawned = prespawned
        self._env = dict(env)
        self._startup_timeout = startup_timeout
        self._p = protos()
        self._server: grpc.aio.Server | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._exited: asyncio.Task[None] | None = None
        self.generation = 0  # +1 per worker process started
        self.loaded: dict[str, IndexedFunction] = {}  # by function name: what load() loaded
        self.on_exit: Callable[[int, int], None] | None = None  # (generation, exit code) of a worker that died
        self.ready = asyncio.Event()  # set while a worker has its functions loaded (clear during a restart)
        self._reset()

    def _reset(self) -> None:
        """Fresh per-worker state: a new worker id, stream queue and pending requests."""
        self.worker_id = str(uuid.uuid4())
        self._outgoing: asyncio.Queue[Any] = asyncio.Queue()
        self._pending: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._connected = asyncio.Event()
        self._closed: WorkerError | None = None  # set once the worker is gone: requests fail at once
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- the stream -------------------------------------------------------------------------------

    async def _event_stream(self, requests: AsyncIterator[Any], context: Any,
                            generation: int) -> AsyncIterator[Any]:
        reader = asyncio.create_task(self._read(requests, generation))
        try:
            while True:
                message = await self._outgoing.get()
                if message is None:
                    return
                yield message
        finally:
            reader.cancel()

    async def _read(self, requests: AsyncIterator[Any], generation: int) -> None:
        try:
            async for message in requests:
                if generation == self.generation:  # a replaced worker's last words are not for this one
                    self._on_message(message)
        finally:
            if generation == self.generation:
                self._close(WorkerError("the worker closed its stream"))

    def _on_message(self, message: Any) -> None:
        kind = message.WhichOneof("content")
        if kind == "start_stream":
            if message.start_stream.worker_id == self.worker_id:
                self._connected.set()
            return
        if kind == "rpc_log":
            self._log_record(message.rpc_log)
            return
        body = getattr(message, kind)
        key = {"function_load_response": lambda: body.function_id,
               "invocation_response": lambda: body.invocation_id}.get(kind, lambda: "")()
        future = self._pending.pop((kind, key), None)
        if future is not None and not future.done():
            future.set_result(body)

    def _log_record(self, record: Any) -> None:
        level = _RPC_LEVELS.get(record.level, logging.INFO)
        if record.log_category == self._p.RpcLog.System:
            level = logging.DEBUG  # the library's own chatter, as Core Tools hides it unless verbose
        logger = logging.getLogger(record.category or "Function")
        if not logger.isEnabledFor(level):
            return
        text = record.message
        if record.HasField("exception") and record.exception.stack_trace:
            text = f"{text}\n{record.exception.stack_trace.rstrip()}"
        logger.log(level, "%s", text)

    def _close(self, error: WorkerError) -> None:
        """The worker is gone: what waits for it fails, and so does everything asked of it later."""
        if self._closed is None:
            self._closed = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def _request(self, response_kind: str, key: str, timeout: float | None, **content: Any) -> Any:
        if self._closed is not None:
            raise self._closed
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[(response_kind, key)] = future
        self._outgoing.put_nowait(self._p.StreamingMessage(request_id=str(uuid.uuid4()), **content))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop((response_kind, key), None)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> list[IndexedFunction]:
        """Start the worker and index the app. Raises WorkerError with the worker's reason."""
        self._reset()
        self.generation += 1
        p = self._p
        generation = self.generation

        async def event_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async for message in self._event_stream(requests, context, generation):  # bound to this worker
                yield message

        handler = grpc.method_handlers_generic_handler(SERVICE, {"EventStream": grpc.stream_stream_rpc_method_handler(
            event_stream, request_deserializer=p.StreamingMessage.FromString,
            response_serializer=p.StreamingMessage.SerializeToString)})
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                                ("grpc.max_send_message_length", MAX_MESSAGE)])
        self._server.add_generic_rpc_handlers((handler,))
        spawned, self._prespawned = self._prespawned, None
        port = 0
        if spawned is not None:
            try:  # the port the prespawned worker is waiting on; taken since? then a worker of our own
                port = self._server.add_insecure_port(f"127.0.0.1:{spawned.port}")
            except RuntimeError:
                port = 0
            if port == 0:
                spawned.process.kill()
                spawned = None
        if spawned is None:
            port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        if spawned is None:
            spawned = await asyncio.to_thread(spawn_worker, self.app, self._env, port)
        self.worker_id, self._process = spawned.worker_id, spawned.process
        self._exited = asyncio.create_task(self._watch_exit(self._process, self.generation))
        try:
            await asyncio.wait_for(self._wait_connected(), self._startup_timeout)
            init = await self._request("worker_init_response", "", self._startup_timeout,
                                       worker_init_request=p.WorkerInitRequest(
                                           host_version=HOST_VERSION, capabilities=HOST_CAPABILITIES,
                                           worker_directory=str(WORKER_DIRECTORY),
                                           function_app_directory=str(self.app_dir)))
            if (reason := _failure(init.result)) is not None:
                raise WorkerError(reason)
            meta = await self._request("function_metadata_response", "", self._startup_timeout,
                                       functions_metadata_request=p.FunctionsMetadataRequest(
                                           function_app_directory=str(self.app_dir)))
            if (reason := _failure(meta.result)) is not None:
                raise WorkerError(reason)
        except TimeoutError:
            raise WorkerError(f"the worker did not answer within {self._startup_timeout:.0f} s") from None
        except BaseException:
            await self.stop(grace=1.0)
            raise
        functions = [IndexedFunction(m.function_id, m.name, tuple(json.loads(b) for b in m.raw_bindings), m)
                     for m in meta.function_metadata_results]
        return functions

    async def _wait_connected(self) -> None:
        assert self._exited is not None
        waiter = asyncio.create_task(self._connected.wait())
        await asyncio.wait({waiter, self._exited}, return_when=asyncio.FIRST_COMPLETED)
        if not self._connected.is_set():
            waiter.cancel()
            raise WorkerError("the worker exited before connecting")

    async def _watch_exit(self, process: subprocess.Popen[bytes], generation: int) -> None:
        code = await asyncio.to_thread(process.wait)
        self._close(WorkerError(f"the worker process exited (code {code})"))
        if not self._stopping and self.on_exit is not None:
            self.on_exit(generation, code)

    async def load(self, function: IndexedFunction) -> None:
        response = await self._request("function_load_response", function.function_id, self._startup_timeout,
                                       function_load_request=self._p.FunctionLoadRequest(
                                           function_id=function.function_id, metadata=function.metadata))
        if (reason := _failure(response.result)) is not None:
            raise WorkerError(f"function {function.name}: {reason}")
        self.loaded[function.name] = function

    async def invoke(self, function: IndexedFunction, input_data: list[Any], trigger_metadata: Mapping[str, Any],
                     trace_context: Any, timeout: float | None = None) -> Any:
        """The InvocationResponse of a successful invocation. Raises FunctionFailed with what the
        function raised, WorkerError if the worker went away, TimeoutError past ``timeout``."""
        invocation_id = str(uuid.uuid4())
        response = await self._request("invocation_response", invocation_id, timeout,
                                       invocation_request=self._p.InvocationRequest(
                                           invocation_id=invocation_id, function_id=function.function_id,
                                           input_data=input_data, trigger_metadata=trigger_metadata,
                                           trace_context=trace_context))
        if response.result.status != self._p.StatusResult.Success:
            raise FunctionFailed(response.result.exception)
        return response

    async def load_all(self, functions: list[IndexedFunction]) -> None:
        """Load these functions (all at once, as the real host's FunctionLoadRequestCollection does)
        and mark the channel ready for invocations."""
        self.loaded = {}
        await asyncio.gather(*(self.load(f) for f in functions))
        self.ready.set()

    async def restart(self) -> None:
        """End this worker (if still there) and start a new one with the same functions loaded, as the
        real host does after a worker crash or a function timeout. Invocations wait for it (``ready``);
        if it fails (WorkerError), they fail at once."""
        names = list(self.loaded)
        self.ready.clear()
        try:
            await self.stop(grace=1.0)
            by_name = {f.name: f for f in await self.start()}
            missing = [name for name in names if name not in by_name]
            if missing:
                raise WorkerError(f"functions {', '.join(missing)} are gone from the app after the restart")
            await self.load_all([by_name[name] for name in names])
        finally:
            self.ready.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Ask the worker to stop (WorkerTerminate), wait ``grace`` seconds, then end it."""
        self._stopping = True
        process = self._process
        exited = self._exited
        if process is not None and process.poll() is None and exited is not None:
            with contextlib.suppress(Exception):
                self._outgoing.put_nowait(self._p.StreamingMessage(worker_terminate=self._p.WorkerTerminate()))
                self._outgoing.put_nowait(None)
            for end, wait in ((None, grace), (process.terminate, 2.0), (process.kill, None)):
                if end is not None:
                    with contextlib.suppress(ProcessLookupError):
                        end()
                await asyncio.wait({exited}, timeout=wait)
                if exited.done():
                    break
        if exited is not None:
            await asyncio.gather(exited, return_exceptions=True)
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None
