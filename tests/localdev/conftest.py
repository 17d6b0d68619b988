"""Fixtures of the local development tools' tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.localdev.probe_support import Probe


@pytest.fixture
def probe(tmp_path: Path) -> Probe:
    """An empty directory for tests/localdev/probe_app.py to report into, and the worker environment it needs."""
    directory = tmp_path / "probe"
    directory.mkdir()
    return Probe(directory)
