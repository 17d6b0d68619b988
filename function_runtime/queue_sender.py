"""Synchronous queue sends for the HTTP interactions endpoint.

Why the storage SDK and not a queue output binding: the destination is chosen per
request (one queue per command), the message id belongs on the PRODUCER span, and the
endpoint must know the envelope is really on the queue *before* it tells Discord "deferred":
an output binding is written by the host after the function returns, so a failed write
would leave the user looking at "thinking..." forever. Here a failure is answered at once.

Timeouts are short and there is one retry: Discord gives the endpoint 3 seconds in all.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Protocol

from shared.queues import queue_client
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

# Transport-level bounds (seconds) and SDK retries, sized to answer inside Discord's 3 s.
FAST = {"connection_timeout": 1.0, "read_timeout": 1.0, "retry_total": 1, "initial_backoff": 0.1,
        "increment_base": 2, "random_jitter_range": 0.1}


class QueueSender(Protocol):
    def send(self, queue: str, text: str) -> str:
        """Put ``text`` on ``queue`` (base64, as host.json says); return the message id."""
        ...


class SdkQueueSender:
    """One client per queue, made on first use and reused (thread-safe: the worker runs sync
    functions on a thread pool). A missing queue is created once and the send repeated."""

    def __init__(self, storage: StorageSettings) -> None:
        self._storage = storage
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    def _client(self, queue: str) -> QueueClient:
        with self._lock:
            client = self._clients.get(queue)
            if client is None:
                client = self._clients[queue] = queue_client(self._storage, queue, **FAST)
            return client

    def send(self, queue: str, text: str) -> str:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        client = self._client(queue)
        try:
            return str(client.send_message(text).id)
        except ResourceNotFoundError:  # deployment normally creates it; be as forgiving as the listener
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            return str(client.send_message(text).id)
