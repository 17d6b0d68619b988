"""What the ops tools share: one-line API errors, endpoint settings, requests that never print keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

TIMEOUT_S = 10.0
HONEYCOMB_ENDPOINT = "https://api.honeycomb.io"
ALL_DATASETS = "__all__"


class ApiError(Exception):
    """One line for the user; ``exit_code`` 2 = settings, 1 = an API refused or failed."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def endpoint(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(f"{name}: expected an http(s) URL like {default} (value not shown)", 2)
    return raw.rstrip("/")


def missing_honeycomb_key(permissions: str, hint: str = "") -> ApiError:
    return ApiError(f"HONEYCOMB_CONFIG_KEY: required (a Honeycomb configuration key with the {permissions} "
                    f"permission, not the ingest key){hint}", 2)


def honeycomb_key(env: Mapping[str, str], permissions: str) -> str:
    key = env.get("HONEYCOMB_CONFIG_KEY", "").strip()
    if not key:
        raise missing_honeycomb_key(permissions)
    return key


def _refusal(service: str, resp: requests.Response, secret: str | None) -> ApiError:
    detail = " ".join(resp.text.split())[:200]
    if secret:
        detail = detail.replace(secret, "***")
    return ApiError(f"{service}: {resp.status_code} {resp.reason}" + (f": {detail}" if detail else ""))


def send(session: requests.Session, service: str, method: str, url: str, secret: str | None,
         **kwargs: Any) -> requests.Response:
    """One request; a failure or a status >= 300 is an ApiError whose text never holds ``secret``."""
    try:
        resp = session.request(method, url, timeout=TIMEOUT_S, **kwargs)
    except requests.RequestException as exc:
        # Only the host: the exception text could carry more of the request than we want printed.
        raise ApiError(f"{service}: request failed ({type(exc).__name__}: {urlsplit(url).netloc})") from None
    if resp.status_code >= 300:
        raise _refusal(service, resp, secret)
    return resp


def json_body(resp: requests.Response, service: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise ApiError(f"{service}: {resp.status_code} with a body that is not JSON") from None
