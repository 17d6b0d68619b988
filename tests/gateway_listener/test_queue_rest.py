"""The listener's small Queue REST client against real Azurite, read back with the SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_listener.queue_rest import QueueNotFoundError, QueueRequestError, QueueRestClient, parse_connection_string
from gateway_listener.senders import SdkQueueSender, make_sender
from localdev.azurite import Azurite
from shared.queues import queue_client
from shared.settings import Secret, StorageSettings


async def test_create_and_send_is_readable_by_the_sdk_with_base64_encoding(
    azurite: Azurite, queue_names: Iterator[str]
) -> None:
    name = next(queue_names)
    client = QueueRestClient(azurite.connection_string)
    try:
        await client.create_queue(name)
        await client.create_queue(name)  # idempotent
        text = '{"v": 1, "args": "héllo <&> wörld 🐱"}'
        message_id = await client.send_message(name, text)
    finally:
        await client.close()
    sdk = queue_client(StorageSettings(connection_string=Secret(azurite.connection_string)), name)
    (msg,) = sdk.receive_messages(max_messages=5)
    assert msg.id == message_id
    assert msg.content == text.encode("utf-8")  # BinaryBase64DecodePolicy: what the host will see


async def test_missing_queue_is_a_distinct_error(azurite: Azurite, queue_names: Iterator[str]) -> None:
    client = QueueRestClient(azurite.connection_string)
    try:
        with pytest.raises(QueueNotFoundError):
            await client.send_message(next(queue_names), "x")
    finally:
        await client.close()


async def test_wrong_key_is_refused(azurite: Azurite, queue_names: Iterator[str]) -> None:
    wrong = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=AAAA")
    client = QueueRestClient(wrong)
    try:
        with pytest.raises(QueueRequestError) as info:
            await client.create_queue(next(queue_names))
        assert info.value.status == 403
    finally:
        await client.close()


def test_connection_string_forms() -> None:
    account, key, endpoint = parse_connection_string(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net")
    assert (account, key, endpoint) == ("acct", b"key", "https://acct.queue.core.windows.net")
    with pytest.raises(ValueError, match="AccountKey"):
        parse_connection_string("AccountName=acct")


@pytest.mark.parametrize("kind", ["rest", "sdk"])
async def test_both_senders_speak_the_same_protocol(azurite: Azurite, queue_names: Iterator[str], kind: str) -> None:
    storage = StorageSettings(connection_string=Secret(azurite.connection_string))
    sender = make_sender(storage) if kind == "rest" else SdkQueueSender(storage)
    assert isinstance(sender, QueueRestClient) == (kind == "rest")
    name = next(queue_names)
    try:
        with pytest.raises(QueueNotFoundError):
            await sender.send_message(name, "early")
        await sender.create_queue(name)
        await sender.create_queue(name)
        message_id = await sender.send_message(name, "ping")
    finally:
        await sender.close()
    (msg,) = queue_client(storage, name).receive_messages(max_messages=5)
    assert (msg.id, msg.content) == (message_id, b"ping")
