"""Shared fixtures: one Azurite per test session, unique queue names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from localdev.azurite import Azurite
from localdev.redis_server import RedisServer, redis_server_binary
from shared.settings import Secret, Settings, StorageSettings

pytest_plugins = ["tests.tracing"]


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A running Azurite queue service on a free port, shared by the whole session.

    Tests that stop or restart it must leave it running again."""
    with Azurite() as instance:
        yield instance


@pytest.fixture
def storage_settings(azurite: Azurite) -> StorageSettings:
    return StorageSettings(connection_string=Secret(azurite.connection_string))


@pytest.fixture
def settings(storage_settings: StorageSettings) -> Settings:
    """Settings pointing at the session's Azurite, everything else default."""
    return Settings(storage=storage_settings)


@pytest.fixture
def queue_names() -> Iterator[str]:
    """Fresh, valid queue names for this test: ``next(queue_names)`` -> "t-1a2b3c4d-0", ...

    Queue names are 3-63 lowercase letters, digits and dashes; ``-poison`` still fits."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    return (f"{prefix}-{i}" for i in range(1000))


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server (Debian's, installed by scripts/setup) on a free port, for one test."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (scripts/setup installs Debian's redis-server)")
    with RedisServer() as server:
        yield server
