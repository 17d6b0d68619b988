"""The REST front door: record, validate, authenticate, inject faults, then route.

Order per request: record it (Authorization removed) -> find the OpenAPI operation ->
validate path, query and JSON body -> check ``Authorization: Bot <token>`` (except
token-in-path routes) -> apply an injected fault -> 400 if invalid -> the handler.
Every response carries Discord's rate-limit headers and ``Via`` (discord.py treats a
429 without ``Via`` as a Cloudflare ban).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from localdev.discord_emulator.faults import (
    GlobalLimit,
    RateLimits,
    RestFault,
    error_body,
    major_parameter,
    rate_limited,
)
from localdev.discord_emulator.gateway import Gateway
from localdev.discord_emulator.openapi import SpecValidator
from localdev.discord_emulator.routes import ROUTES, RestContext
from localdev.discord_emulator.state import EmulatorState, RecordedRequest

_log = logging.getLogger(__name__)

_HIDDEN_HEADERS = {"authorization", "cookie"}


def _json_response(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    if body is None or status == 204:
        return web.Response(status=status, headers=headers)
    # Exactly "application/json", no charset: discord.py compares the header verbatim.
    return web.Response(status=status, body=json.dumps(body).encode(),
                        headers={**headers, "Content-Type": "application/json"})


async def _read_body(request: web.Request) -> tuple[Any, bool, str | None]:
    """(parsed JSON body, whether there was one, parse error). Multipart: its payload_json part."""
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "name", None) == "payload_json":
                text = await part.text()  # type: ignore[union-attr]
                try:
                    return json.loads(text), True, None
                except ValueError as exc:
                    return None, True, f"payload_json: not JSON ({exc})"
        return None, False, None
    raw = await request.read()
    if not raw:
        return None, False, None
    try:
        return json.loads(raw), True, None
    except ValueError as exc:
        return None, True, f"body: not JSON ({exc})"


class RestApi:
    def __init__(
        self,
        state: EmulatorState,
        gateway: Gateway,
        spec: SpecValidator,
        *,
        token_ok: Callable[[str], bool],
        gateway_url: Callable[[], str],
        rate_limits: RateLimits,
        interaction_deadline_s: float,
        global_limit: GlobalLimit | None = None,
    ) -> None:
        self.state = state
        self.gateway = gateway
        self.spec = spec
        self.faults: list[RestFault] = []
        self.rate_limits = rate_limits
        self.global_limit = global_limit or GlobalLimit(0)
        self._token_ok = token_ok
        self._gateway_url = gateway_url
        self.interaction_deadline_s = interaction_deadline_s

    def _take_fault(self, method: str, path: str, template: str | None) -> RestFault | None:
        for fault in self.faults:
            if fault.count > 0 and fault.matches(method, path, template):
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bot" and self._token_ok(token.strip())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"].rstrip("/")
        method = request.method
        body, has_body, parse_error = await _read_body(request)
        matched = self.spec.match(method, path)
        op, params = matched if matched else (None, {})
        shown_path = path
        for secret in ("interaction_token", "webhook_token"):
            if secret in params:  # interaction tokens are secrets: never recorded or logged
                shown_path = shown_path.replace(params[secret], "***")
        rec = RecordedRequest(
            method=method,
            path=shown_path,
            template=op.template if op else None,
            operation_id=op.operation_id if op else None,
            query=dict(request.query),
            headers={k: v for k, v in request.headers.items() if k.lower() not in _HIDDEN_HEADERS},
            json=body,
            timestamp=time.time(),
        )
        self.state.requests.append(rec)
        headers = {"Via": "1.1 google", "X-Emulator": "discord-emulator"}
        rl_headers, over_limit = self.rate_limits.take(method, rec.template, major_parameter(params))
        headers.update(rl_headers)

        def respond(status: int, payload: Any, extra: dict[str, str] | None = None) -> web.Response:
            rec.status = status
            merged = {**headers, **(extra or {})}
            self.global_limit.count_invalid(status, merged.get("X-RateLimit-Scope"), time.monotonic())
            return _json_response(status, payload, merged)

        if (ban_left := self.global_limit.ban_left(time.monotonic())) is not None:
            rec.fault = "banned (invalid requests)"
            headers.pop("Via", None)  # Cloudflare answers, not Discord: discord.py reads this as a ban
            return _json_response(429, {"message": "You are being blocked from accessing our API temporarily "
                                        "due to exceeding our rate limits frequently.", "retry_after": ban_left,
                                        "global": True, "code": 0},
                                  {**headers, "Retry-After": str(max(1, math.ceil(ban_left)))})

        if op is None:
            other = self.spec.template_for_any_method(path)
            rec.errors.append(f"no {method} {path} in the OpenAPI description"
                              + (f" ({other} exists with another method)" if other else ""))
            _log.warning("emulator: unknown route %s %s", method, path)
            return respond(405, {"message": "405: Method Not Allowed", "code": 0}) if other else respond(
                404, error_body(404))

        validation = self.spec.validate(op, params, rec.query, body, has_body=has_body and parse_error is None)
        rec.errors.extend(([parse_error] if parse_error else []) + validation.errors)
        if rec.errors:
            _log.warning("emulator: invalid request %s %s: %s", method, op.template, "; ".join(rec.errors)[:500])

        if op.bot_auth and not self._authorized(request):
            return respond(401, error_body(401))

        if op.bot_auth and (wait := self.global_limit.take(request.headers["Authorization"], time.monotonic())):
            rec.fault = "global rate limit"
            limited, extra = rate_limited(RestFault("*", 429, retry_after=round(wait, 3), global_=True))
            return respond(429, limited, extra)

        fault = self._take_fault(method, path, op.template)
        if fault is not None:
            rec.fault = fault.describe()
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status == 429:
                limited, extra = rate_limited(fault)
                if not fault.global_:
                    extra["X-RateLimit-Remaining"] = "0"
                return respond(429, limited, extra)
            if fault.status:
                return respond(fault.status, error_body(fault.status))
        if over_limit is not None:
            fault_like = RestFault("*", 429, retry_after=round(over_limit, 3))
            limited, extra = rate_limited(fault_like)
            return respond(429, limited, extra)

        if parse_error or not validation.ok:
            errors = validation.discord_errors or {"_errors": [{"code": "BASE_TYPE_INVALID", "message": parse_error}]}
            return respond(400, {"code": 50035, "message": "Invalid Form Body", "errors": errors})

        handler = ROUTES.get((method, op.template))
        if handler is None:
            rec.fault = "not emulated"
            _log.warning("emulator: %s %s is in the spec but not emulated", method, op.template)
            return respond(404, error_body(404))
        ctx = RestContext(
            state=self.state,
            gateway=self.gateway,
            gateway_url=self._gateway_url(),
            interaction_deadline_s=self.interaction_deadline_s,
            params=params,
            query=rec.query,
            body=body,
        )
        status, payload = await handler(ctx)
        return respond(status, payload)
