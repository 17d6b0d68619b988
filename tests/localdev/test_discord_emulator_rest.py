"""The emulator's REST API, faults and OpenAPI validation, driven with plain aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from localdev.discord_emulator import DiscordEmulator, SnowflakeGenerator

RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                      "X-RateLimit-Reset-After", "X-RateLimit-Bucket")


@pytest.fixture
async def emu() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator() as emulator:
        yield emulator


@pytest.fixture
async def http(emu: DiscordEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bot {emu.token}", "User-Agent": "DiscordBot (tests, 1)"}
    async with aiohttp.ClientSession(base_url=emu.base_url, headers=headers) as session:
        yield session


async def _post(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(f"/api/v10{path}", json=body) as resp:
        data = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, data, resp


async def test_message_create_returns_the_message_with_rate_limit_headers(
        emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    status, msg, resp = await _post(http, f"/channels/{emu.channel_id}/messages", {"content": "hello"})
    assert status == 200
    assert (msg["content"], msg["channel_id"], msg["guild_id"]) == ("hello", emu.channel_id, emu.guild_id)
    assert msg["author"]["id"] == emu.bot_user_id and msg["author"]["bot"] is True
    assert all(h in resp.headers for h in RATE_LIMIT_HEADERS)
    assert resp.headers["Content-Type"] == "application/json"
    assert emu.bot_messages[-1]["id"] == msg["id"]


async def test_same_nonce_with_enforce_nonce_creates_one_message(
        emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    body = {"content": "once", "nonce": "1234567890123456789", "enforce_nonce": True}
    path = f"/channels/{emu.channel_id}/messages"
    (s1, first, _), (s2, second, _) = [await _post(http, path, body) for _ in range(2)]
    assert (s1, s2) == (200, 200)
    assert first["id"] == second["id"] and first["nonce"] == body["nonce"]
    assert [m["content"] for m in emu.bot_messages] == ["once"]
    # Without enforce_nonce Discord creates a second message.
    _, third, _ = await _post(http, path, {"content": "twice", "nonce": body["nonce"]})
    assert third["id"] != first["id"] and len(emu.bot_messages) == 2


@pytest.mark.parametrize("body, field, code", [
    ({"content": "x" * 5000}, "content", "BASE_TYPE_MAX_LENGTH"),
    ({"content": "hi", "allowed_mentions": {"parse": ["bogus"]}}, "allowed_mentions", "BASE_TYPE_CHOICES"),
    ({"content": "hi", "nonce": "n" * 26, "enforce_nonce": True}, "nonce", "BASE_TYPE_CHOICES"),
])
async def test_invalid_body_is_rejected_like_discord_and_recorded(
        emu: DiscordEmulator, http: aiohttp.ClientSession, body: dict[str, Any], field: str, code: str) -> None:
    status, data, _ = await _post(http, f"/channels/{emu.channel_id}/messages", body)
    assert status == 400
    assert (data["code"], data["message"]) == (50035, "Invalid Form Body")
    assert data["errors"][field]["_errors"][0]["code"] == code
    assert len(emu.invalid_requests) == 1 and emu.invalid_requests[0].errors[0].startswith(f"body: {field}")
    assert emu.bot_messages == []


async def test_path_parameters_are_validated(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    status, data, _ = await _post(http, "/channels/not-a-snowflake/messages", {"content": "hi"})
    assert status == 400 and "channel_id" in data["errors"]
    assert emu.invalid_requests[0].errors[0].startswith("path: channel_id")


async def test_unknown_routes_are_404_and_recorded(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v10/no/such/route") as resp:
        assert resp.status == 404
    async with http.delete("/api/v10/gateway/bot") as resp:
        assert resp.status == 405
    assert [r.path for r in emu.invalid_requests] == ["/no/such/route", "/gateway/bot"]


async def test_bad_or_missing_token_is_401(emu: DiscordEmulator) -> None:
    async with aiohttp.ClientSession(base_url=emu.base_url) as anon:
        for headers in ({"Authorization": "Bot wrong"}, {}):
            async with anon.get("/api/v10/users/@me", headers=headers) as resp:
                assert resp.status == 401
                assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
        async with anon.get("/api/v9/gateway") as resp:  # no auth needed, v9 accepted too
            assert (await resp.json())["url"] == emu.gateway_url
    assert all("Authorization" not in r.headers for r in emu.requests)


async def test_gateway_bot_points_at_the_emulator(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v10/gateway/bot") as resp:
        data = await resp.json()
    assert data["url"] == emu.gateway_url and data["shards"] == 1
    assert data["session_start_limit"]["max_concurrency"] == 1


@pytest.mark.parametrize("global_", [False, True])
async def test_injected_429_looks_like_discords(
        emu: DiscordEmulator, http: aiohttp.ClientSession, global_: bool) -> None:
    emu.inject_rest_fault("POST /channels/{channel_id}/messages", 429, count=1, retry_after=0.25, global_=global_)
    status, data, resp = await _post(http, f"/channels/{emu.channel_id}/messages", {"content": "a"})
    assert status == 429
    assert data["message"] == "You are being rate limited." and data["retry_after"] == 0.25
    assert data["global"] is global_
    assert resp.headers["Retry-After"] == "1"
    assert resp.headers["X-RateLimit-Scope"] == ("global" if global_ else "user")
    assert resp.headers.get("X-RateLimit-Global") == ("true" if global_ else None)
    assert resp.headers["Via"]  # discord.py treats a 429 without Via as a Cloudflare ban
    assert (await _post(http, f"/channels/{emu.channel_id}/messages", {"content": "a"}))[0] == 200
    assert [r.status for r in emu.requests] == [429, 200]
    assert emu.requests[0].fault is not None


@pytest.mark.parametrize("status", [500, 502, 503, 401, 403, 404])
async def test_injected_error_statuses(emu: DiscordEmulator, http: aiohttp.ClientSession, status: int) -> None:
    emu.inject_rest_fault(f"/channels/{emu.channel_id}/messages", status, count=2)
    path = f"/channels/{emu.channel_id}/messages"
    results = [(await _post(http, path, {"content": "x"}))[0] for _ in range(3)]
    assert results == [status, status, 200]


async def test_injected_delay_trips_a_client_timeout(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    emu.inject_rest_fault("GET /users/@me", 0, delay=2.0)
    with pytest.raises(TimeoutError):
        async with http.get("/api/v10/users/@me", timeout=aiohttp.ClientTimeout(total=0.1)):
            pass
    emu.clear_faults()
    async with http.get("/api/v10/users/@me") as resp:
        assert resp.status == 200


async def test_interaction_callback_edit_and_errors(emu: DiscordEmulator) -> None:
    payload = emu.send_interaction("roll", {"dice": "3"})
    base = f"{emu.api_url}"
    original = f"{base}/webhooks/{emu.application_id}/{payload['token']}/messages/@original"
    async with aiohttp.ClientSession() as http:  # token-in-path routes: no Authorization header
        async with http.patch(original, json={"content": "too early"}) as resp:
            assert resp.status == 404
        callback = f"{base}/interactions/{payload['id']}/{payload['token']}/callback"
        async with http.post(callback, json={"type": 4, "data": {"content": "rolled"}}) as resp:
            assert resp.status == 204
        async with http.post(callback, json={"type": 5}) as resp:
            assert (resp.status, (await resp.json())["code"]) == (400, 40060)
        async with http.patch(original, json={"content": "rolled 3"}) as resp:
            assert resp.status == 200 and (await resp.json())["content"] == "rolled 3"
        async with http.get(original) as resp:
            assert (await resp.json())["content"] == "rolled 3"
    kinds = [(m["event_kind"], m["content"]) for m in emu.bot_messages]
    assert kinds == [("interaction_response", "rolled"), ("interaction_edit", "rolled 3")]
    record = emu.interaction(payload["id"])
    assert record.callback_delay_s is not None and record.edits == [{"content": "rolled 3"}]
    assert "token" not in record.as_dict()
    assert all(payload["token"] not in r.path for r in emu.requests)
    assert emu.invalid_requests == []


async def test_bulk_overwrite_commands_then_interaction_uses_declared_types(
        emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    commands = [{"name": "roll", "description": "Roll dice", "type": 1,
                 "options": [{"name": "dice", "description": "How many", "type": 3, "required": True}]}]
    async with http.put(f"/api/v10/applications/{emu.application_id}/commands", json=commands) as resp:
        assert resp.status == 200
        registered = await resp.json()
    payload = emu.send_interaction("roll", {"dice": 3})
    assert payload["data"]["id"] == registered[0]["id"]
    assert payload["data"]["options"] == [{"name": "dice", "type": 3, "value": 3}]
    assert emu.invalid_requests == []


def test_snowflakes_are_realistic_and_increasing() -> None:
    gen = SnowflakeGenerator()
    ids = [gen.next_int() for _ in range(1000)]
    assert ids == sorted(set(ids))
    assert all(17 <= len(str(i)) <= 20 for i in ids)


async def test_global_limit_per_token_then_invalid_request_ban() -> None:
    """Past the global budget: 429 global; past the invalid-request limit: a temporary ban for all routes."""
    async with DiscordEmulator(global_rate_limit=5, invalid_request_limit=3, ban_s=600) as emu:
        headers = {"Authorization": f"Bot {emu.token}", "User-Agent": "DiscordBot (tests, 1)"}
        async with aiohttp.ClientSession(base_url=emu.base_url, headers=headers) as http:
            path = f"/channels/{emu.channel_id}/messages"
            results = [await _post(http, path, {"content": f"m{i}"}) for i in range(7)]
            assert [s for s, _, _ in results[:5]] == [200] * 5
            status, body, resp = results[5]
            assert status == 429 and body["global"] is True and body["retry_after"] > 0
            assert resp.headers["X-RateLimit-Global"] == "true" and resp.headers["X-RateLimit-Scope"] == "global"
            assert emu.global_limit.global_limited == 2 and emu.global_limit.invalid_total == 2
            assert len(emu.bot_messages) == 5
            await _post(http, path, {"content": "third 429: the ban starts"})
            async with http.get(f"/api/v10/channels/{emu.channel_id}") as banned:
                assert banned.status == 429 and "Via" not in banned.headers
                assert (await banned.json())["retry_after"] > 500
