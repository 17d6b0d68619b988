"""Synchronous queue sends for the HTTP interactions endpoint.

Why send here rather than through a queue output binding: the destination is chosen per
request (one queue per command), the message id belongs on the PRODUCER span, and the
endpoint must know the envelope is really on the queue *before* it tells Discord "deferred":
an output binding is written by the host after the function returns, so a failed write
would leave the user looking at "thinking..." forever. Here a failure is answered at once.

With a connection string the send is one Shared Key REST call over ``requests`` (which the
app loads anyway): importing azure-storage-queue would add ~0.2-0.3 s to the cold start
Discord's 3 s must cover. Identity-based storage needs Entra tokens, so it uses the SDK.
Timeouts are short and there is one retry: Discord gives the endpoint 3 seconds in all.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Protocol

import requests

from shared.queue_sharedkey import QueueNotFoundError, SharedKey, error_for, message_body, message_id
from shared.queues import connection_string, queue_client
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

CONNECT_S, READ_S = 1.0, 1.0
# The SDK's equivalents (identity-based storage).
FAST_SDK = {"connection_timeout": CONNECT_S, "read_timeout": READ_S, "retry_total": 1, "initial_backoff": 0.1,
            "increment_base": 2, "random_jitter_range": 0.1}


class QueueSender(Protocol):
    def send(self, queue: str, text: str) -> str:
        """Put ``text`` on ``queue`` (base64, as host.json says); return the message id."""
        ...


class RestQueueSender:
    """Shared Key REST over one pooled ``requests`` session (thread-safe for these calls). A missing
    queue is created and the send repeated; a failed connection is retried once."""

    def __init__(self, connection_string: str) -> None:
        self._auth = SharedKey(connection_string)
        self._http = requests.Session()
        self._http.mount("http://", requests.adapters.HTTPAdapter(max_retries=1))
        self._http.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))

    def _request(self, method: str, path: str, body: bytes, operation: str) -> bytes:
        url = self._auth.endpoint + path
        response = self._http.request(method, url, data=body, headers=self._auth.headers(method, url, body),
                                      timeout=(CONNECT_S, READ_S))
        if response.status_code >= 300:
            raise error_for(response.status_code, response.headers.get("x-ms-error-code", ""), operation)
        return response.content

    def send(self, queue: str, text: str) -> str:
        body = message_body(text)
        try:
            return message_id(self._request("POST", f"/{queue}/messages", body, "put message"))
        except QueueNotFoundError:  # deployment normally creates it; be as forgiving as the listener
            self._request("PUT", f"/{queue}", b"", "create queue")
            return message_id(self._request("POST", f"/{queue}/messages", body, "put message"))


class SdkQueueSender:
    """The SDK path, for managed identity: one client per queue, made on first use and reused."""

    def __init__(self, storage: StorageSettings) -> None:
        self._storage = storage
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    def _client(self, queue: str) -> QueueClient:
        with self._lock:
            client = self._clients.get(queue)
            if client is None:
                client = self._clients[queue] = queue_client(self._storage, queue, **FAST_SDK)
            return client

    def send(self, queue: str, text: str) -> str:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        client = self._client(queue)
        try:
            return str(client.send_message(text).id)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            return str(client.send_message(text).id)


def make_sender(storage: StorageSettings) -> QueueSender:
    cs = connection_string(storage)
    return RestQueueSender(cs) if cs else SdkQueueSender(storage)
