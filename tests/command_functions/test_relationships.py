"""!relationships against a local stand-in of the relationships API, and help's flag filtering."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from command_functions import help as help_command
from command_functions import relationships
from function_runtime.errors import ExternalApiError, UsageError
from shared.settings import Settings, load_settings
from tests.command_functions.stub_apis import RELATIONSHIP, StubApis, make_ctx


def test_synergy_with_relationships_and_credit(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    apis, settings = stub
    reply = relationships.handle(make_ctx("relationships", "", settings, http))
    assert reply == (
        f"**Synergy:** {RELATIONSHIP['Synergy']}\n**Relationships:** Siblings, Rivals\n-# Credit: Example Author"
    )
    assert [r.path for r in apis.requests] == ["/api/random"]


@pytest.mark.parametrize("arg", ["objective", " Objective ", "OBJECTIVE"])
def test_objective(stub: tuple[StubApis, Settings], http: requests.Session, arg: str) -> None:
    _, settings = stub
    reply = relationships.handle(make_ctx("relationships", arg, settings, http))
    assert reply == f"**Objective:** {RELATIONSHIP['Objective']}\n-# Credit: Example Author"


def test_missing_credit_credits_the_host(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    apis, settings = stub
    apis.relationship = {"Synergy": "Shared enemy.", "Relationships": "Allies"}
    reply = relationships.handle(make_ctx("relationships", "", settings, http))
    host = settings.relationships_api_url.removeprefix("http://")
    assert reply == f"**Synergy:** Shared enemy.\n**Relationships:** Allies\n-# Credit: {host}"


@pytest.mark.parametrize("arg", ["objectives", "synergy please", "x" * 4000, "<@123>"])
def test_other_arguments_are_usage_errors(stub: tuple[StubApis, Settings], http: requests.Session, arg: str) -> None:
    apis, settings = stub
    with pytest.raises(UsageError, match=r"`!relationships \[objective\]`"):
        relationships.handle(make_ctx("relationships", arg, settings, http))
    assert apis.requests == []


def test_long_fields_keep_the_reply_under_discords_limit(
    stub: tuple[StubApis, Settings], http: requests.Session
) -> None:
    apis, settings = stub
    apis.relationship = {"Synergy": "s" * 5000, "Relationships": ["r" * 3000] * 3, "Credit": "c" * 3000}
    assert len(relationships.handle(make_ctx("relationships", "", settings, http))) <= 2000


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"Objective": "only"}', b'{"Synergy": "   "}'])
def test_garbled_entries_are_external_api_errors(
    stub: tuple[StubApis, Settings], http: requests.Session, body: bytes
) -> None:
    apis, settings = stub
    apis.raw["/api/random"] = body
    with pytest.raises(ExternalApiError):
        relationships.handle(make_ctx("relationships", "", settings, http))


def test_5xx_and_timeouts_are_external_api_errors(
    stub: tuple[StubApis, Settings], http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    apis, settings = stub
    apis.status = 502
    with pytest.raises(ExternalApiError, match="HTTP 502"):
        relationships.handle(make_ctx("relationships", "", settings, http))
    apis.status, apis.delay_s = None, 30
    monkeypatch.setattr(relationships, "TIMEOUT_S", 0.2)
    with pytest.raises(ExternalApiError, match="did not answer in time"):
        relationships.handle(make_ctx("relationships", "", settings, http))


# -- help lists only what the author may run ------------------------------------------------------


@pytest.mark.parametrize(("enabled", "listed"), [(False, False), (True, True)])
def test_help_follows_the_roll_flag(tmp_path: Path, enabled: bool, listed: bool) -> None:
    settings = load_settings(environ={}, require_storage=False, root=tmp_path)
    reply = help_command.handle(make_ctx("help", "", settings, flags={"roll": enabled, "relationships": False}))
    assert ("`!roll " in reply) is listed
    assert "`!relationships" not in reply and "`!ping" in reply and "`!mtg " in reply
    one = help_command.handle(make_ctx("help", "roll", settings, flags={"roll": enabled}))
    assert one.startswith("`!roll <n|c>") is listed
