"""The Azure Queue REST API's wire format with Shared Key auth, for clients that skip the SDK.

Both always-latency-sensitive senders use it: the listener's async client
(gateway_listener/queue_rest.py, aiohttp) and the function app's HTTP interactions
endpoint (function_runtime/queue_sender.py, requests), whose cold start would otherwise
pay ~0.2-0.3 s importing azure-storage-queue. Requests are signed as documented in
"Authorize with Shared Key" for the Queue service (stdlib hmac). Identity-based storage
needs Entra tokens: those callers use the SDK instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate
from urllib.parse import urlsplit
from xml.etree import ElementTree

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


def message_body(text: str) -> bytes:
    """A put-message body: base64 text, as host.json's messageEncoding expects."""
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"<QueueMessage><MessageText>{encoded}</MessageText></QueueMessage>".encode()


def message_id(reply: bytes) -> str:
    found = ElementTree.fromstring(reply).findtext("QueueMessage/MessageId")
    if not found:
        raise QueueRequestError(201, "NoMessageId", "put message")
    return found


def error_for(status: int, code: str, operation: str) -> QueueRequestError:
    return (QueueNotFoundError if code == "QueueNotFound" else QueueRequestError)(status, code, operation)


class SharedKey:
    """Signs requests for one storage account."""

    def __init__(self, connection_string: str) -> None:
        self.account, self._key, self.endpoint = parse_connection_string(connection_string)

    def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        """All the headers a request needs, Authorization included."""
        headers = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": API_VERSION,
            "Content-Type": CONTENT_TYPE,
            "Content-Length": str(len(body)),
        }
        headers["Authorization"] = self._authorization(method, url, headers)
        return headers

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
            f"/{self.account}{urlsplit(url).path}",
        ])
        digest = hmac.new(self._key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
        return f"SharedKey {self.account}:{base64.b64encode(digest).decode()}"
