"""Just enough of the Azure Queue service REST API for the listener: create a queue, put a message.

Why not azure-storage-queue here: the listener is the one always-on process, and the
SDK's async client adds ~18 MB of resident memory (cryptography, generated models) and
~0.3 s of import to a process that only ever calls two operations. This client reuses
the aiohttp that discord.py already loads and signs requests with Shared Key (stdlib
hmac), as documented in "Authorize with Shared Key" for the Queue service. Identity-based
storage (``AzureWebJobsStorage__queueServiceUri``) needs Entra tokens, so that mode uses
the SDK instead (see gateway_listener/senders.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate
from urllib.parse import urlsplit
from xml.etree import ElementTree

import aiohttp

API_VERSION = "2021-12-02"
CONTENT_TYPE = "application/xml; charset=utf-8"


class QueueRequestError(Exception):
    def __init__(self, status: int, code: str, operation: str) -> None:
        super().__init__(f"{operation}: storage answered {status} {code}")
        self.status, self.code = status, code


class QueueNotFoundError(QueueRequestError):
    """The queue does not exist (e.g. storage was recreated): create it and send again."""


def parse_connection_string(text: str) -> tuple[str, bytes, str]:
    """(account name, account key, queue endpoint) from a storage connection string."""
    parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    try:
        account, key = parts["AccountName"], base64.b64decode(parts["AccountKey"])
    except (KeyError, ValueError) as exc:
        raise ValueError("storage connection string needs AccountName and a base64 AccountKey") from exc
    endpoint = parts.get("QueueEndpoint") or (
        f"{parts.get('DefaultEndpointsProtocol', 'https')}://{account}.queue."
        f"{parts.get('EndpointSuffix', 'core.windows.net')}"
    )
    return account, key, endpoint.rstrip("/")


class QueueRestClient:
    def __init__(self, connection_string: str, *, timeout: float = 10.0) -> None:
        self._account, self._key, self._endpoint = parse_connection_string(connection_string)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None

    async def create_queue(self, queue: str) -> None:
        """Create ``queue``; an existing one is fine (the service answers 204)."""
        await self._request("PUT", f"/{queue}", b"", "create queue")

    async def send_message(self, queue: str, text: str) -> str:
        """Put one message (base64 text, as host.json's messageEncoding expects); returns its id."""
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        body = f"<QueueMessage><MessageText>{encoded}</MessageText></QueueMessage>".encode()
        reply = await self._request("POST", f"/{queue}/messages", body, "put message")
        message_id = ElementTree.fromstring(reply).findtext("QueueMessage/MessageId")
        if not message_id:
            raise QueueRequestError(201, "NoMessageId", "put message")
        return message_id

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, body: bytes, operation: str) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self._endpoint + path
        headers = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": API_VERSION,
            "Content-Type": CONTENT_TYPE,
            "Content-Length": str(len(body)),
        }
        headers["Authorization"] = self._authorization(method, url, headers)
        async with self._session.request(method, url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status < 300:
                return payload
            code = response.headers.get("x-ms-error-code", "")
            error = QueueNotFoundError if code == "QueueNotFound" else QueueRequestError
            raise error(response.status, code, operation)

    def _authorization(self, method: str, url: str, headers: dict[str, str]) -> str:
        length = headers["Content-Length"]
        string_to_sign = "\n".join([
            method,
            "",  # Content-Encoding
            "",  # Content-Language
            "" if length == "0" else length,
            "",  # Content-MD5
            headers["Content-Type"],
            "",  # Date (x-ms-date is used instead)
            "", "", "", "",  # If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since
            "",  # Range
            f"x-ms-date:{headers['x-ms-date']}",
            f"x-ms-version:{headers['x-ms-version']}",
            f"/{self._account}{urlsplit(url).path}",
        ])
        digest = hmac.new(self._key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
        return f"SharedKey {self._account}:{base64.b64encode(digest).decode()}"
