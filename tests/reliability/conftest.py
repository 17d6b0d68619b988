"""Fixtures of the reliability tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.shared.test_exporters import IKEY, Receiver


@dataclass
class Sinks:
    """Where a test's processes export: a local OTLP receiver and a local Azure Monitor ingestion."""

    otlp: Receiver
    azmon: Receiver

    def env(self, trace_file: Path) -> dict[str, str]:
        """The settings that point a process at both receivers and at ``trace_file``."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp.url,
            "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={IKEY};IngestionEndpoint={self.azmon.url}/",
            "LOCAL_TRACE_FILE": str(trace_file),
        }


@pytest.fixture
def receivers() -> Iterator[Sinks]:
    """A local OTLP receiver and a local Azure Monitor ingestion endpoint, for one test."""
    otlp = Receiver().start()
    azmon = Receiver(reply=json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()).start()
    yield Sinks(otlp, azmon)
    otlp.stop()
    azmon.stop()
