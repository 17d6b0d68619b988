"""How the listener puts envelopes on queues: two implementations of one small interface.

With a connection string (Azurite, or a storage key) the listener uses its own small
Shared Key REST client (gateway_listener/queue_rest.py) and never loads the SDK; with
identity-based storage (``AzureWebJobsStorage__queueServiceUri``) it needs Entra tokens,
so it uses azure-storage-queue with DefaultAzureCredential.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

from gateway_listener.queue_rest import QueueNotFoundError, QueueRestClient
from shared.queues import connection_string
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient, QueueServiceClient


class QueueSender(Protocol):
    async def create_queue(self, queue: str) -> None: ...

    async def send_message(self, queue: str, text: str) -> str: ...

    async def close(self) -> None: ...


class SdkQueueSender:
    """The SDK path, for managed identity. The SDK's own retries are off: the Enqueuer
    retries with its own backoff (cut short at shutdown), where the SDK's would sleep
    seconds inside each attempt."""

    def __init__(self, storage: StorageSettings) -> None:
        from shared.queues import async_service_client

        self._service: QueueServiceClient = async_service_client(storage)
        self._clients: dict[str, QueueClient] = {}

    def _client(self, queue: str) -> QueueClient:
        from shared.queues import queue_of

        if queue not in self._clients:
            self._clients[queue] = queue_of(self._service, queue)
        return self._clients[queue]

    async def create_queue(self, queue: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self._client(queue).create_queue(retry_total=0)

    async def send_message(self, queue: str, text: str) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            sent = await self._client(queue).send_message(text, retry_total=0)
        except ResourceNotFoundError as exc:
            raise QueueNotFoundError(404, "QueueNotFound", "put message") from exc
        return str(sent.id)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        await self._service.close()


def make_sender(storage: StorageSettings) -> QueueSender:
    cs = connection_string(storage)
    return QueueRestClient(cs) if cs else SdkQueueSender(storage)
