"""External JSON GETs for commands: one timeout, one failure type.

Commands call third-party APIs through ``ctx.http`` (the runtime's :class:`TracedSession`,
instrumented before its first request, so each call is a CLIENT span). :func:`get_json` turns every way such a
call can fail (connection refused, timeout, an unexpected status, a body that is not
JSON) into :class:`ExternalApiError` with a short friendly text, which the wrapper
shows the user next to the trace id. Statuses a command wants to handle itself (Scryfall's
404 "no such card") are passed in ``accept``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from function_runtime.errors import ExternalApiError
from shared import telemetry

_log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class TracedSession(requests.Session):
    """A ``requests.Session`` that makes sure ``requests`` is instrumented before it sends.

    The instrumentation is not set up at start-up (a cold reply that calls no API should
    not wait for it); the first command that does call one pays for it, once.
    """

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        telemetry.instrument_requests()
        return super().request(*args, **kwargs)


@dataclass(frozen=True)
class JsonResponse:
    status: int
    body: Any  # the decoded JSON document


def get_json(
    session: requests.Session,
    url: str,
    *,
    service: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    accept: Collection[int] = (200,),
) -> JsonResponse:
    """GET ``url`` and decode its JSON body.

    ``service`` names the API in error texts ("the cat fact service did not answer in time").
    Raises ExternalApiError unless the status is in ``accept`` and the body is JSON.
    """
    try:
        resp = session.get(url, params=params, headers=dict(headers or {}), timeout=timeout)
    except requests.Timeout as exc:
        raise ExternalApiError(f"{service} did not answer in time") from exc
    except requests.RequestException as exc:
        raise ExternalApiError(f"could not reach {service}") from exc
    if resp.status_code not in accept:
        _log.warning("%s answered HTTP %s", service, resp.status_code)
        raise ExternalApiError(f"{service} answered HTTP {resp.status_code}")
    try:
        body = resp.json()
    except ValueError as exc:  # requests' JSONDecodeError is a ValueError
        raise ExternalApiError(f"{service} sent something that is not JSON") from exc
    return JsonResponse(status=resp.status_code, body=body)
