"""Interactions over HTTP, as Discord delivers them to an application's Interactions Endpoint URL.

The emulator holds the application's Ed25519 key pair (its public key is the
application's ``verify_key``, what the bot is configured with as ``DISCORD_PUBLIC_KEY``).
Once an endpoint URL is set, :meth:`DiscordEmulator.send_interaction` POSTs each
interaction there, signed (``X-Signature-Ed25519`` over ``X-Signature-Timestamp`` + body),
instead of dispatching INTERACTION_CREATE on the gateway. As Discord does:

- saving the URL verifies it first: a correctly signed PING must be answered 200
  ``{"type": 1}`` and a PING with a bad signature must be refused (401); otherwise the URL
  is not saved (:class:`EndpointRejected`);
- the answer must come within 3 seconds with a response type valid for the interaction
  (4 or 5 for a slash command); a late, failed or invalid answer makes the interaction fail
  ("The application did not respond"), recorded as a problem and shown as an
  ``interaction_failed`` output;
- a valid answer is applied as a REST callback would be (type 5 = "thinking...", then the
  bot edits ``@original`` over REST, validated as every REST request is).

    await emu.set_interactions_endpoint("http://127.0.0.1:7071/api/interactions")
    emu.send_interaction("roll", {"dice": "3"})       # POSTed, not dispatched
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from nacl.signing import SigningKey

from localdev.discord_emulator.models import JSON
from localdev.discord_emulator.routes import apply_response

if TYPE_CHECKING:
    from localdev.discord_emulator.emulator import DiscordEmulator
    from localdev.discord_emulator.state import InteractionRecord

_log = logging.getLogger(__name__)

USER_AGENT = "Discord-Interactions/1.0 (+https://discord.com)"
VALID_RESPONSES = {1: {1}, 2: {4, 5, 9}}  # interaction type -> response types Discord accepts
FAILED_TEXT = "The application did not respond"
PROBLEM_KEEP = 200


class EndpointRejected(Exception):
    """The URL failed Discord's verification (the reason says which check)."""


def sign_request(key: SigningKey, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The signature headers Discord sends with ``body``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode("ascii") + body).signature.hex()
    return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": stamp}


@dataclass
class Delivery:
    """One POST to the endpoint and how it went (no token: the payload is not kept here)."""

    interaction_id: str
    interaction_type: int
    status: int | None = None
    elapsed_s: float | None = None
    response: Any = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> JSON:
        return {"interaction_id": self.interaction_id, "interaction_type": self.interaction_type,
                "status": self.status, "elapsed_s": self.elapsed_s, "response": self.response,
                "problems": self.problems}


class HttpDelivery:
    def __init__(self, emulator: DiscordEmulator, deadline_s: float = 3.0) -> None:
        self._emu = emulator
        self.deadline_s = deadline_s
        self.key = SigningKey.generate()
        self.url: str | None = None
        self.deliveries: list[Delivery] = []
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def public_key(self) -> str:
        """The application's public key, hex (Discord's ``verify_key``)."""
        return bytes(self.key.verify_key).hex()

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any, float]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        assert self.url is not None
        began = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=self.deadline_s)
        async with self._session.post(self.url, data=body, timeout=timeout, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers,
        }) as response:
            raw = await response.read()
            elapsed = time.monotonic() - began
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw[:200].decode("utf-8", errors="replace")
        return response.status, doc, elapsed

    async def set_endpoint(self, url: str | None) -> None:
        """Save the Interactions Endpoint URL (None: back to gateway delivery), verifying it as Discord does."""
        if url is None:
            self.url = None
            self._emu.world.interactions_endpoint_url = None
            return
        previous, self.url = self.url, url
        try:
            await self._verify()
        except EndpointRejected:
            self.url = previous
            raise
        self._emu.world.interactions_endpoint_url = url
        _log.info("interactions endpoint set: %s", url)

    async def _verify(self) -> None:
        ping = json.dumps({"id": self._emu.ids.next(), "application_id": self._emu.application_id, "type": 1,
                           "token": self._emu.state.new_interaction_token(), "version": 1}).encode()
        forged = sign_request(SigningKey.generate(), ping)
        try:
            status, doc, elapsed = await self._post(ping, sign_request(self.key, ping))
            if status != 200 or not isinstance(doc, dict) or doc.get("type") != 1:
                raise EndpointRejected(f"a signed PING got {status} {str(doc)[:100]!r}, expected 200 {{\"type\": 1}}")
            if elapsed > self.deadline_s:
                raise EndpointRejected(f"PING answered after {elapsed:.1f} s (limit {self.deadline_s:g} s)")
            status, doc, _ = await self._post(ping, forged)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EndpointRejected(f"could not reach {self.url}: {type(exc).__name__} {exc}") from None
        if status != 401:
            raise EndpointRejected(f"a PING with a bad signature got {status}, expected 401: "
                                   "the endpoint does not check signatures")

    def deliver(self, rec: InteractionRecord) -> None:
        """POST ``rec``'s interaction in the background (call on the emulator's loop)."""
        task = asyncio.create_task(self._deliver(rec), name=f"deliver-{rec.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, rec: InteractionRecord) -> None:
        kind = int(rec.payload.get("type", 2))
        delivery = Delivery(rec.id, kind)
        self.deliveries.append(delivery)
        del self.deliveries[:-PROBLEM_KEEP]
        body = json.dumps(rec.payload, separators=(",", ":")).encode()
        rec.dispatch.sent_at = time.monotonic()
        try:
            answer = await self._post(body, sign_request(self.key, body))
            delivery.status, delivery.response, delivery.elapsed_s = answer
        except TimeoutError:
            delivery.problems.append(f"no answer within {self.deadline_s:g} s")
        except aiohttp.ClientError as exc:
            delivery.problems.append(f"endpoint unreachable: {type(exc).__name__}")
        else:
            delivery.problems.extend(self._check(kind, delivery))
        if delivery.ok:
            rec.callback, rec.callback_delay_s = delivery.response, delivery.elapsed_s
            await apply_response(self._emu.state, self._emu.gateway, rec, delivery.response)
            return
        rec.callback_delay_s = delivery.elapsed_s
        _log.warning("interaction %s failed over HTTP: %s", rec.id, "; ".join(delivery.problems))
        await self._emu.state.add_bot_output("interaction_failed", {
            "id": rec.id, "channel_id": rec.channel_id, "content": FAILED_TEXT, "problems": delivery.problems,
        }, interaction_id=rec.id)

    def _check(self, kind: int, delivery: Delivery) -> list[str]:
        problems = []
        if delivery.status != 200:
            problems.append(f"status {delivery.status}, expected 200")
        if delivery.elapsed_s is not None and delivery.elapsed_s > self.deadline_s:
            problems.append(f"answered after {delivery.elapsed_s:.2f} s (limit {self.deadline_s:g} s)")
        answer = delivery.response
        answered = answer.get("type") if isinstance(answer, dict) else None
        if answered not in VALID_RESPONSES.get(kind, set()):
            problems.append(f"response type {answered!r} is not valid for interaction type {kind}")
        return problems

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None


def add_routes(app: web.Application, emu: DiscordEmulator, prefix: str) -> None:
    """``GET|PUT {prefix}/interactions-endpoint``: the URL, the public key, recent deliveries."""

    def view() -> JSON:
        delivery = emu.http_delivery
        return {"url": delivery.url, "public_key": delivery.public_key,
                "deliveries": [d.as_dict() for d in delivery.deliveries]}

    async def get_endpoint(request: web.Request) -> web.Response:
        return web.json_response(view())

    async def put_endpoint(request: web.Request) -> web.Response:
        try:
            doc = await request.json()
        except ValueError:
            doc = None
        url = doc.get("url") if isinstance(doc, dict) else ""
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            return web.json_response({"error": "url: an http(s) URL, or null for gateway delivery"}, status=400)
        try:
            await emu.set_interactions_endpoint(url)
        except EndpointRejected as exc:
            return web.json_response({"error": f"endpoint rejected: {exc}"}, status=400)
        return web.json_response(view())

    app.router.add_get(f"{prefix}/interactions-endpoint", get_endpoint)
    app.router.add_put(f"{prefix}/interactions-endpoint", put_endpoint)
