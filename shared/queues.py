"""Queue clients built from StorageSettings, with the encoding host.json declares.

Messages are base64 text (host.json ``messageEncoding: base64``, the Functions default).
Both the sync client (function side: poison forwarding) and the async client (listener,
local host) come from here so the encoding and the Azurite quirks live in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.settings import AZURITE_CONNECTION_STRING, StorageSettings

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient
    from azure.storage.queue.aio import QueueClient as AsyncQueueClient
    from azure.storage.queue.aio import QueueServiceClient as AsyncQueueServiceClient


def connection_string(storage: StorageSettings) -> str | None:
    """The connection string to use (UseDevelopmentStorage=true resolved to Azurite), if any."""
    cs = storage.connection_string.reveal() if storage.connection_string else None
    if cs and "usedevelopmentstorage=true" in cs.lower().replace(" ", ""):
        return AZURITE_CONNECTION_STRING
    return cs


def _encoding() -> dict[str, Any]:
    from azure.storage.queue import BinaryBase64DecodePolicy, TextBase64EncodePolicy

    return {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": BinaryBase64DecodePolicy()}


def _client_kwargs() -> dict[str, Any]:
    return {
        **_encoding(),
        "connection_timeout": 5,
        "read_timeout": 10,
        # The SDK default waits 15 s before its first retry: far too long for a chat bot.
        # Fail fast here; the listener's buffer and the queue's redelivery do the patient retrying.
        "initial_backoff": 0.25,
        "increment_base": 2,
        "retry_total": 2,
        "random_jitter_range": 0.25,
    }


def _credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def queue_client(storage: StorageSettings, queue: str, **overrides: Any) -> QueueClient:
    """A sync client for ``queue``; ``overrides`` replace the default timeouts/retries."""
    from azure.storage.queue import QueueClient

    kwargs = {**_client_kwargs(), **overrides}
    cs = connection_string(storage)
    if cs:
        return QueueClient.from_connection_string(cs, queue, **kwargs)
    assert storage.queue_service_uri
    return QueueClient(storage.queue_service_uri, queue, credential=_credential(), **kwargs)


def async_service_client(storage: StorageSettings) -> AsyncQueueServiceClient:
    from azure.storage.queue.aio import QueueServiceClient as AsyncQSC

    cs = connection_string(storage)
    if cs:
        return AsyncQSC.from_connection_string(cs, **_client_kwargs())
    from azure.identity.aio import DefaultAzureCredential

    assert storage.queue_service_uri
    return AsyncQSC(storage.queue_service_uri, credential=DefaultAzureCredential(), **_client_kwargs())


def queue_of(service: AsyncQueueServiceClient, queue: str) -> AsyncQueueClient:
    """A queue client sharing the service's connection pool, with our encoding.

    (``get_queue_client`` alone drops the service's encode/decode policies.)
    """
    return service.get_queue_client(queue, **_encoding())
