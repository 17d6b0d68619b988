"""!catfact against a local catfact.ninja stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from command_functions import catfact
from function_runtime.errors import ExternalApiError
from shared.settings import Settings, load_settings
from tests.command_functions.stub_apis import CAT_FACT, StubApis, make_ctx


def test_replies_with_the_fact(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    apis, settings = stub
    assert catfact.handle(make_ctx("catfact", "", settings, http)) == CAT_FACT
    assert [r.path for r in apis.requests] == ["/fact"]


def test_timeout_is_an_external_api_error(
    stub: tuple[StubApis, Settings], http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    apis, settings = stub
    apis.delay_s = 30  # released at teardown
    monkeypatch.setattr(catfact, "TIMEOUT_S", 0.2)
    with pytest.raises(ExternalApiError, match="did not answer in time"):
        catfact.handle(make_ctx("catfact", "", settings, http))


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_error_status_is_an_external_api_error(
    stub: tuple[StubApis, Settings], http: requests.Session, status: int
) -> None:
    apis, settings = stub
    apis.status = status
    with pytest.raises(ExternalApiError, match=f"HTTP {status}"):
        catfact.handle(make_ctx("catfact", "", settings, http))


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"fact": ""}', b'{"length": 3}', b"[1, 2]", b'{"fact": 7}'])
def test_garbled_json_is_an_external_api_error(
    stub: tuple[StubApis, Settings], http: requests.Session, body: bytes
) -> None:
    apis, settings = stub
    apis.raw["/fact"] = body
    with pytest.raises(ExternalApiError):
        catfact.handle(make_ctx("catfact", "", settings, http))


def test_unreachable_service_is_an_external_api_error(tmp_path: Path, http: requests.Session) -> None:
    apis = StubApis()
    base = apis.start()
    apis.close()  # nothing listens there any more
    settings = load_settings(environ={"CATFACT_API_URL": f"{base}/fact"}, require_storage=False, root=tmp_path)
    with pytest.raises(ExternalApiError, match="could not reach"):
        catfact.handle(make_ctx("catfact", "", settings, http))
