"""Discord's request signature for the Interactions Endpoint URL (Ed25519).

Discord signs ``X-Signature-Timestamp`` + the raw body with the application's private
key and sends the signature hex-encoded in ``X-Signature-Ed25519``; the endpoint checks
it with the application's public key (``DISCORD_PUBLIC_KEY``). That signature is the
endpoint's only authentication, so everything about it is checked before the body is
parsed, cheap checks first (sizes, header shapes, the timestamp's age), and every
failure is one :class:`SignatureError` whose reason names the problem (never a secret).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

SIGNATURE_HEADER = "X-Signature-Ed25519"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
MAX_BODY_BYTES = 128 * 1024  # an interaction with resolved users/messages is a few KiB
MAX_SKEW_S = 300  # Discord's timestamp is "now"; older than this is a replay (or a very wrong clock)
_SIGNATURE_HEX = 128  # 64 bytes


class SignatureError(Exception):
    """The request is not signed by the application's key (or is stale, or too big to check)."""


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing {name}")
    return value


@dataclass(frozen=True)
class Verifier:
    key: VerifyKey
    max_skew_s: float = MAX_SKEW_S
    max_body_bytes: int = MAX_BODY_BYTES

    @classmethod
    def from_public_key(cls, public_key: bytes) -> Verifier:
        return cls(VerifyKey(public_key))

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> int:
        """The signed timestamp (Unix seconds: when Discord sent it); SignatureError unless
        ``body`` carries a fresh, valid signature."""
        if len(body) > self.max_body_bytes:
            raise SignatureError(f"body larger than {self.max_body_bytes} bytes")
        signature_hex = _header(headers, SIGNATURE_HEADER)
        timestamp = _header(headers, TIMESTAMP_HEADER)
        if len(signature_hex) != _SIGNATURE_HEX:
            raise SignatureError(f"{SIGNATURE_HEADER}: expected {_SIGNATURE_HEX} hex digits")
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            raise SignatureError(f"{SIGNATURE_HEADER}: not hex") from None
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise SignatureError(f"{TIMESTAMP_HEADER}: expected Unix seconds")
        age = (time.time() if now is None else now) - int(timestamp)
        if abs(age) > self.max_skew_s:
            raise SignatureError(f"{TIMESTAMP_HEADER}: {abs(age):.0f} s from now (limit {self.max_skew_s:.0f} s)")
        try:
            self.key.verify(timestamp.encode("ascii") + body, signature)
        except BadSignatureError:
            raise SignatureError("signature does not match the body and DISCORD_PUBLIC_KEY") from None
        return int(timestamp)

