"""One invocation as the host sends it: trigger data in, the worker's answer out.

The host builds only what the real host puts on the wire: the trigger's ``TypedData`` (a queue
message's text, an ``RpcHttp`` request), its trigger metadata and a trace context. The worker
library turns those into ``func.QueueMessage`` / ``func.HttpRequest`` and the function's return
value back into ``TypedData``. A function that outlives ``functionTimeout`` raises TimeoutError
(the real host would then restart the worker process).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from localdev.functions_host.worker_channel import IndexedFunction, WorkerChannel, WorkerError
from localdev.functions_rpc import protos

if TYPE_CHECKING:
    from azure.storage.queue import QueueMessage as StorageQueueMessage


class BodyDecodeError(ValueError):
    """The message body does not match host.json's messageEncoding; the function is not called."""


def decode_body(content: object, encoding: str) -> bytes:
    """The raw queue text -> the bytes the function sees, per ``messageEncoding``."""
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content or "")
    if encoding == "none":
        return text.encode("utf-8")
    try:
        # Whitespace is ignored, as .NET's Convert.FromBase64String does; anything else must be base64.
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BodyDecodeError(f"body is not valid base64 ({exc}); host.json says messageEncoding=base64") from None


def payload(body: bytes) -> Any:
    """A message body as the host sends it: text when it is UTF-8, else bytes."""
    p = protos()
    try:
        return p.TypedData(string=body.decode("utf-8"))
    except UnicodeDecodeError:
        return p.TypedData(bytes=body)


def _json(value: object) -> Any:
    if isinstance(value, datetime):
        value = value.isoformat()
    return protos().TypedData(json=json.dumps(value))


def queue_trigger_metadata(msg: StorageQueueMessage) -> dict[str, Any]:
    """The queue trigger's metadata, under the names the real host uses (``QueueTrigger`` aside)."""
    fields = {"Id": msg.id, "DequeueCount": msg.dequeue_count, "InsertionTime": msg.inserted_on,
              "ExpirationTime": msg.expires_on, "NextVisibleTime": msg.next_visible_on,
              "PopReceipt": msg.pop_receipt}
    return {k: _json(v) for k, v in fields.items() if v is not None}


def host_trace_context(function_name: str, traceparent: str = "") -> Any:
    """The host's own activity for an invocation: a child of ``traceparent`` (an HTTP request's
    header) when there is one, else a new trace, as the real host's Activity."""
    parts = traceparent.split("-")
    trace_id = parts[1] if len(parts) == 4 and len(parts[1]) == 32 else secrets.token_hex(16)
    flags = parts[3] if len(parts) == 4 else "00"
    return protos().RpcTraceContext(trace_parent=f"00-{trace_id}-{secrets.token_hex(8)}-{flags}",
                                    attributes={"OperationName": function_name})


class Invoker:
    """Invokes one function through the worker channel (whichever worker it has at the time)."""

    def __init__(self, channel: WorkerChannel, function: IndexedFunction, arg_name: str,
                 timeout: timedelta | None, on_timeout: Callable[[int], None] | None = None) -> None:
        """``on_timeout(generation)``: called when an invocation outlives ``timeout`` in worker
        ``generation`` (the host then replaces that worker, as the real host does)."""
        self.channel = channel
        self.name = function.name
        self._arg_name = arg_name
        self._timeout = timeout.total_seconds() if timeout is not None else None
        self._on_timeout = on_timeout

    async def __call__(self, data: Any, trigger_metadata: Mapping[str, Any] | None = None,
                       traceparent: str = "") -> Any:
        """The function's return value as TypedData (None when it returned nothing). Raises
        FunctionFailed with what the function raised, TimeoutError past functionTimeout."""
        binding = protos().ParameterBinding(name=self._arg_name, data=data)
        await self.channel.ready.wait()  # a worker being replaced: wait for the new one
        generation = self.channel.generation
        function = self.channel.loaded.get(self.name)
        if function is None:
            raise WorkerError(f"function {self.name} is not loaded in any worker")
        try:
            response = await self.channel.invoke(function, [binding], trigger_metadata or {},
                                                 host_trace_context(self.name, traceparent), self._timeout)
        except TimeoutError:
            if self._on_timeout is not None:
                self._on_timeout(generation)
            raise
        return response.return_value if response.HasField("return_value") else None
