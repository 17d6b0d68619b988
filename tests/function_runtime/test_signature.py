"""Ed25519 request signatures: what Discord signs is accepted, everything else refused."""

from __future__ import annotations

import time

import pytest
from nacl.signing import SigningKey

from function_runtime.signature import MAX_BODY_BYTES, MAX_SKEW_S, SignatureError, Verifier
from localdev.discord_emulator import sign_request

KEY = SigningKey(bytes(range(32)))  # fixed, so failures are reproducible
VERIFIER = Verifier.from_public_key(bytes(KEY.verify_key))
BODY = b'{"type":1}'


def test_rfc8032_vector_and_a_discord_style_request_verify() -> None:
    # RFC 8032 section 7.1, TEST 2: the library agrees with the standard, not just with itself.
    secret = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    public = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    assert bytes(SigningKey(secret).verify_key) == public
    signature = SigningKey(secret).sign(b"\x72").signature.hex()
    assert signature.startswith("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da")
    VERIFIER.verify(sign_request(KEY, BODY), BODY)  # no exception


def test_header_names_are_case_insensitive_in_practice() -> None:
    headers = {k.lower(): v for k, v in sign_request(KEY, BODY).items()}
    VERIFIER.verify(headers, BODY)


@pytest.mark.parametrize(("headers", "body", "reason"), [
    ({}, BODY, "missing X-Signature-Ed25519"),
    ({"X-Signature-Ed25519": "00" * 64}, BODY, "missing X-Signature-Timestamp"),
    ({**sign_request(KEY, BODY), "X-Signature-Ed25519": "00" * 64}, BODY, "does not match"),
    ({**sign_request(KEY, BODY), "X-Signature-Ed25519": "zz" * 64}, BODY, "not hex"),
    ({**sign_request(KEY, BODY), "X-Signature-Ed25519": "ab" * 10}, BODY, "128 hex digits"),
    (sign_request(KEY, BODY), b'{"type":2}', "does not match"),  # body tampered with
    (sign_request(SigningKey(bytes(32)), BODY), BODY, "does not match"),  # wrong key
    ({**sign_request(KEY, BODY), "X-Signature-Timestamp": "12e3"}, BODY, "Unix seconds"),
    ({**sign_request(KEY, BODY), "X-Signature-Timestamp": "９９"}, BODY, "Unix seconds"),
])
def test_refused(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        VERIFIER.verify(headers, body)


@pytest.mark.parametrize("offset", [-MAX_SKEW_S - 60, MAX_SKEW_S + 60])  # a replay; a clock far ahead
def test_stale_or_future_timestamps_are_refused(offset: int) -> None:
    with pytest.raises(SignatureError, match="s from now"):
        VERIFIER.verify(sign_request(KEY, BODY, int(time.time()) + offset), BODY)
    VERIFIER.verify(sign_request(KEY, BODY, int(time.time()) + offset // 10), BODY)  # small skew is fine


def test_the_timestamp_is_part_of_what_is_signed() -> None:
    headers = sign_request(KEY, BODY)
    headers["X-Signature-Timestamp"] = str(int(headers["X-Signature-Timestamp"]) - 1)
    with pytest.raises(SignatureError, match="does not match"):
        VERIFIER.verify(headers, BODY)


def test_empty_and_oversized_bodies() -> None:
    VERIFIER.verify(sign_request(KEY, b""), b"")  # signed empty body: the signature is fine (JSON is not)
    with pytest.raises(SignatureError, match="does not match"):
        VERIFIER.verify(sign_request(KEY, BODY), b"")
    big = b"x" * (MAX_BODY_BYTES + 1)
    with pytest.raises(SignatureError, match="larger than"):
        VERIFIER.verify(sign_request(KEY, big), big)  # refused before any crypto, even if signed
