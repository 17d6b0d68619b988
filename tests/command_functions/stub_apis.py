"""Test helpers around the local external-API stubs (localdev/external_apis.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import requests

from function_runtime.context import CommandContext
from localdev.external_apis import CARDS, CAT_FACT, RELATIONSHIP, StubApis, api_settings
from shared.envelope import Envelope, Ids
from shared.registry import COMMANDS
from shared.settings import Settings, load_settings

__all__ = ["CARDS", "CAT_FACT", "RELATIONSHIP", "StubApis", "make_ctx", "running_stub"]


@contextmanager
def running_stub(tmp_path: Path) -> Iterator[tuple[StubApis, Settings]]:
    """A started stub and Settings whose API URLs point at it."""
    stub = StubApis()
    base = stub.start()
    try:
        settings = load_settings(
            environ=api_settings(base),
            require_storage=False,
            root=tmp_path,
        )
        yield stub, settings
    finally:
        stub.close()


def make_ctx(
    command: str, args: str, settings: Settings, http: requests.Session | None = None,
    flags: dict[str, bool] | None = None,
) -> CommandContext:
    env = Envelope(
        kind="message", command=command, args=args,
        ids=Ids(message="1000", channel="2000", author="3000", guild="4000"),
        author_name="tester", received_at=datetime.now(UTC),
    )
    return CommandContext(envelope=env, spec=COMMANDS[command], settings=settings,
                          http=http or requests.Session(), flags=flags or {}, trace_id="0" * 32)
