"""Fixtures for command tests: the external-API stand-ins and one HTTP session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shared.settings import Settings
from tests.command_functions.stub_apis import StubApis, running_stub


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[tuple[StubApis, Settings]]:
    with running_stub(tmp_path) as pair:
        yield pair


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
