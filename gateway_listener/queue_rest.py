"""Just enough of the Azure Queue service REST API for the listener: create a queue, put a message.

Why not azure-storage-queue here: the listener is the one always-on process, and the
SDK's async client adds ~18 MB of resident memory (cryptography, generated models) and
~0.3 s of import to a process that only ever calls two operations. This client reuses
the aiohttp that discord.py already loads; the wire format and Shared Key signing are
shared/queue_sharedkey.py. Identity-based storage (``AzureWebJobsStorage__queueServiceUri``)
needs Entra tokens, so that mode uses the SDK instead (see gateway_listener/senders.py).
"""

from __future__ import annotations

import aiohttp

from shared.queue_sharedkey import (
    QueueNotFoundError,
    QueueRequestError,
    SharedKey,
    error_for,
    message_body,
    message_id,
    parse_connection_string,
)

__all__ = ["QueueNotFoundError", "QueueRequestError", "QueueRestClient", "parse_connection_string"]


class QueueRestClient:
    def __init__(self, connection_string: str, *, timeout: float = 10.0) -> None:
        self._auth = SharedKey(connection_string)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None

    async def create_queue(self, queue: str) -> None:
        """Create ``queue``; an existing one is fine (the service answers 204)."""
        await self._request("PUT", f"/{queue}", b"", "create queue")

    async def send_message(self, queue: str, text: str) -> str:
        """Put one message (base64 text, as host.json's messageEncoding expects); returns its id."""
        reply = await self._request("POST", f"/{queue}/messages", message_body(text), "put message")
        return message_id(reply)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, body: bytes, operation: str) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self._auth.endpoint + path
        headers = self._auth.headers(method, url, body)
        async with self._session.request(method, url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status < 300:
                return payload
            raise error_for(response.status, response.headers.get("x-ms-error-code", ""), operation)
