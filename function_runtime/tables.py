"""Azure Table storage clients for the function app's own tables (``reminders``, ``commandruns``).

One construction for every table: a connection string's ``TableEndpoint=`` (Azurite locally),
else the identity-based endpoint (``AzureWebJobsStorage__tableServiceUri``, or the queue
endpoint's ``.table.`` twin) with ``DefaultAzureCredential``. Short timeouts and two retries:
a table call sits on a command's path to its reply.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from shared.queues import connection_string
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.data.tables import TableClient


def table_service_uri(storage: StorageSettings) -> str | None:
    """The identity-based table endpoint: AzureWebJobsStorage__tableServiceUri, else the queue one's twin."""
    if storage.table_service_uri:
        return storage.table_service_uri
    if storage.queue_service_uri and ".queue." in storage.queue_service_uri:
        return storage.queue_service_uri.replace(".queue.", ".table.", 1)
    return None


def table_client(storage: StorageSettings, table: str) -> TableClient:
    """A client for ``table``, which it creates when missing (the IaC creates it on Azure; Azurite starts empty)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.data.tables import TableClient

    kwargs: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 10, "retry_total": 2}
    cs = connection_string(storage)
    if cs:
        client = TableClient.from_connection_string(cs, table, **kwargs)
    else:
        uri = table_service_uri(storage)
        if uri is None:
            raise RuntimeError("no table endpoint: set AzureWebJobsStorage__tableServiceUri")
        from azure.identity import DefaultAzureCredential

        client = TableClient(uri, table, credential=DefaultAzureCredential(), **kwargs)
    with contextlib.suppress(ResourceExistsError):
        client.create_table()
    return client


class LazyTable:
    """``table_client(storage, table)`` built on the first call and reused (thread-safe)."""

    def __init__(self, storage: StorageSettings, table: str) -> None:
        self.storage, self.name = storage, table
        self._lock = threading.Lock()
        self._client: TableClient | None = None

    def __call__(self) -> TableClient:
        with self._lock:
            if self._client is None:
                self._client = table_client(self.storage, self.name)
            return self._client
