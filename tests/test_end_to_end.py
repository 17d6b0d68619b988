"""The whole bot: Discord emulator + listener + functions host (two real processes) + Azurite.

``!ping`` goes in through the emulator's gateway, crosses a real queue, and ``pong``
comes back through the emulator's REST API, valid against Discord's OpenAPI file; the
trace of it lands in the local trace file, spanning both services.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localdev.azurite import Azurite
from localdev.discord_emulator import EmulatorThread
from localdev.external_apis import CAT_FACT, StubApis, api_settings
from localdev.stack import Child, child_env, wait_for_line
from localdev.traces import load_traces

pytestmark = pytest.mark.e2e

GUILDS, GUILD_MESSAGES, MESSAGE_CONTENT = 1 << 0, 1 << 9, 1 << 15
ALL_ON = Path(__file__).parent / "data" / "flags_all_on.json"


@dataclass
class Bot:
    emulator: EmulatorThread
    host: Child
    listener: Child
    trace_file: Path
    logs: Path
    flags_file: Path
    apis: StubApis


@pytest.fixture(scope="module")
def bot(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    tmp = tmp_path_factory.mktemp("e2e")
    flags_file = tmp / "flags.json"
    flags_file.write_bytes(ALL_ON.read_bytes())
    apis = StubApis()
    api_urls = api_settings(apis.start())
    with EmulatorThread() as emulator:
        env = child_env({
            **api_urls,
            "AzureWebJobsStorage": azurite.connection_string,
            "DISCORD_TOKEN": emulator.token,
            "DISCORD_API_BASE_URL": emulator.api_url,
            "DISCORD_GATEWAY_URL": emulator.gateway_url,
            "LOCAL_TRACE_FILE": str(tmp / "traces.jsonl"),
            "FEATURE_FLAGS_FILE": str(flags_file),
        })
        host = Child("functions_host", "localdev.functions_host", env, tmp / "host.log").start()
        listener = Child("listener", "gateway_listener", env, tmp / "listener.log").start()
        try:
            assert wait_for_line(tmp / "host.log", "Functions host ready", 60, host), (tmp / "host.log").read_text()
            emulator.wait_until_identified(timeout=60)
            yield Bot(emulator, host, listener, tmp / "traces.jsonl", tmp, flags_file, apis)
        finally:
            listener.stop()
            host.stop()
            apis.close()


def _say(bot: Bot, content: str, timeout: float = 30.0) -> tuple[dict[str, Any], dict[str, Any]]:
    sent = bot.emulator.send_message(content)
    reply = bot.emulator.wait_for_bot_message(channel_id=sent["channel_id"], after=sent["id"], timeout=timeout)
    return sent, reply


def _trace_of(bot: Bot, message_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for spans in load_traces(bot.trace_file).values():
            names = {s["name"] for s in spans}
            if any(s["attributes"].get("discord.message.id") == message_id for s in spans) and {
                "discord.command", "discord.send_response"} <= names:
                return spans
        time.sleep(0.1)
    raise AssertionError(f"no complete trace for message {message_id} in {bot.trace_file}")


def test_ping_answers_pong_through_the_queue(bot: Bot) -> None:
    sent, reply = _say(bot, "!ping")
    assert reply["content"] == "pong"
    assert reply["message_reference"]["message_id"] == sent["id"]
    create = [r for r in bot.emulator.requests
              if r.method == "POST" and r.template == "/channels/{channel_id}/messages"]
    body = create[-1].json
    assert body["nonce"] == sent["id"] and body["enforce_nonce"] is True
    assert body["allowed_mentions"]["parse"] == []
    assert bot.emulator.invalid_requests == []


def test_prefix_command_shows_typing_before_the_reply(bot: Bot) -> None:
    time.sleep(3.1)  # past the previous test's per-channel typing cooldown
    since = time.monotonic()
    sent, _ = _say(bot, "!ping")
    typing = bot.emulator.wait_for_typing(sent["channel_id"], since, timeout=5)
    assert typing is not None
    typing_requests = [r for r in bot.emulator.requests if r.template == "/channels/{channel_id}/typing"]
    create = [r for r in bot.emulator.requests if r.template == "/channels/{channel_id}/messages"]
    assert typing_requests[-1].timestamp < create[-1].timestamp  # feedback first, then the reply
    deadline = time.monotonic() + 5
    spans = _trace_of(bot, sent["id"])
    while not any(s["name"] == "discord.typing" for s in spans):
        assert time.monotonic() < deadline, "no discord.typing span in the trace"
        time.sleep(0.1)
        spans = _trace_of(bot, sent["id"])
    by_id = {s["span_id"]: s for s in spans}
    (typing_span,) = [s for s in spans if s["name"] == "discord.typing"]
    assert by_id[typing_span["parent_span_id"]]["name"] == "discord.command"
    assert typing_span["service.name"] == "discord-bot-listener"
    assert typing_span["attributes"]["http.response.status_code"] == 204


def test_listener_identifies_with_minimal_intents(bot: Bot) -> None:
    intents = bot.emulator.identify_payloads[0]["intents"]
    assert intents == GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT


def test_trace_spans_both_services_with_queue_wait(bot: Bot) -> None:
    sent, _ = _say(bot, "!ping")
    spans = _trace_of(bot, sent["id"])
    services = {s["name"]: s["service.name"] for s in spans}
    assert services["discord.command"] == "discord-bot-listener"
    assert services["cmd-ping send"] == "discord-bot-listener"
    assert services["cmd-ping process"] == "discord-bot-functions"
    assert "queue.wait" in services
    assert len({s["trace_id"] for s in spans}) == 1


def test_catfact_chain_shows_the_external_call_and_keeps_baggage_home(bot: Bot) -> None:
    sent, reply = _say(bot, "!catfact")
    assert reply["content"] == CAT_FACT
    spans = _trace_of(bot, sent["id"])
    by_id = {s["span_id"]: s for s in spans}
    command = next(s for s in spans if s["name"] == "catfact")
    assert by_id[command["parent_span_id"]]["name"] == "cmd-catfact process"
    (call,) = [s for s in spans if s.get("parent_span_id") == command["span_id"]]
    assert call["kind"] == "CLIENT" and call["attributes"]["http.response.status_code"] == 200
    (request,) = [r for r in bot.apis.requests if r.path == "/fact"]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["traceparent"].split("-")[1] == call["trace_id"]  # the trace reaches the third party...
    assert "baggage" not in headers  # ...but the trace-level fields (user ids) do not


def test_first_invocation_of_a_fresh_host_has_cold_start(bot: Bot) -> None:
    traces = load_traces(bot.trace_file).values()
    process = sorted((s for spans in traces for s in spans if s["name"].endswith(" process")),
                     key=lambda s: s["start_ns"])
    assert process, "no function spans yet"
    assert process[0]["attributes"]["faas.coldstart"] is True
    assert all(p["attributes"]["faas.coldstart"] is False for p in process[1:])
    cold = [s for spans in traces for s in spans if s["name"] == "cold_start"]
    assert len(cold) <= 1


def test_ordinary_chat_is_ignored_and_untraced(bot: Bot) -> None:
    sent = bot.emulator.send_message("hello everyone, no command here")
    with pytest.raises(TimeoutError):
        bot.emulator.wait_for_bot_message(channel_id=sent["channel_id"], after=sent["id"], timeout=3)
    for spans in load_traces(bot.trace_file).values():
        assert all(s["attributes"].get("discord.message.id") != sent["id"] for s in spans)


def test_unknown_command_points_to_help(bot: Bot) -> None:
    _, reply = _say(bot, "!frobnicate")
    assert "Unknown command" in reply["content"] and "!help" in reply["content"]


def test_slash_command_is_deferred_then_edited(bot: Bot) -> None:
    payload = bot.emulator.send_interaction("ping")
    after = payload["id"]
    while (out := bot.emulator.wait_for_bot_message(after=after, timeout=30))["event_kind"] != "interaction_edit":
        after = out["event_id"]
    assert out["content"] == "pong"
    record = bot.emulator.interaction(payload["id"])
    assert record.callback is not None and record.callback["type"] == 5
    assert record.callback_delay_s is not None and record.callback_delay_s < 3
    assert bot.emulator.invalid_requests == []


def test_secrets_never_reach_logs_or_trace_file(bot: Bot, azurite: Azurite) -> None:
    _say(bot, "!help")
    secrets = [bot.emulator.token, azurite.connection_string.split("AccountKey=")[1].split(";")[0]]
    secrets.append(bot.emulator.send_interaction("ping")["token"])
    time.sleep(2)  # let the listener and host log whatever they log about it
    texts = [p.read_text(errors="replace") for p in bot.logs.iterdir() if p.is_file()]
    for secret in secrets:
        assert secret and all(secret not in text for text in texts)


def _roll_only_for(role_id: str) -> str:
    audience = {"Users": [], "Groups": [{"Name": f"role:{role_id}", "RolloutPercentage": 100}],
                "DefaultRolloutPercentage": 0}
    flag = {"id": "roll", "enabled": True,
            "conditions": {"client_filters": [{"name": "Microsoft.Targeting", "parameters": {"Audience": audience}}]}}
    return json.dumps({"feature_management": {"feature_flags": [flag]}})


def test_flags_follow_the_authors_roles_and_apply_without_restart(bot: Bot) -> None:
    role = bot.emulator.emulator.world.default_guild.role_ids[1]
    bot.flags_file.write_text(_roll_only_for(role))
    try:
        deadline = time.monotonic() + 30  # the host re-reads the file within a few seconds
        while True:
            with_role = bot.emulator.send_message("!roll 2", roles=(role,))
            without = bot.emulator.send_message("!roll 2")
            replies = [bot.emulator.wait_for_bot_message(channel_id=m["channel_id"], after=m["id"], timeout=30)
                       for m in (with_role, without)]
            by_source = {r["message_reference"]["message_id"]: r["content"] for r in bot.emulator.bot_messages
                         if r.get("message_reference")}
            allowed, refused = by_source.get(with_role["id"], ""), by_source.get(without["id"], "")
            if "not allowed" in refused and "dice" in allowed:
                break
            assert time.monotonic() < deadline, f"flags not applied: {replies}"
            time.sleep(1)
    finally:
        bot.flags_file.write_bytes(ALL_ON.read_bytes())
