"""Hostile input end to end, in process: whatever a user types, the chain from the prefix
parser through the envelope, the command and the reply body raises nothing undocumented,
and the request it makes validates against Discord's OpenAPI file and pings no one.

(The parts on their own have property tests next to them: tests/shared/test_envelope.py,
tests/gateway_listener/test_parsing.py, tests/command_functions/test_mtg.py, test_roll.py.)
"""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from opentelemetry import trace
from requests.structures import CaseInsensitiveDict

from command_functions import mtg
from command_functions.mtg_query import parse as parse_mtg
from function_runtime.context import CommandContext
from function_runtime.discord_rest import MAX_CONTENT, DiscordRest
from function_runtime.errors import UsageError
from function_runtime.invocation import _run_command
from function_runtime.replies import send_reply
from gateway_listener.parsing import parse_message
from shared.envelope import Envelope, Ids, InteractionRef, decode, encode
from shared.errors import EnvelopeError
from shared.registry import COMMANDS
from shared.settings import Secret, Settings, StorageSettings
from tests.function_runtime.openapi_oracle import oracle

SETTINGS = Settings(storage=StorageSettings(), catfact_api_url="http://127.0.0.1:9/catfact",
                    scryfall_api_url="http://127.0.0.1:9/scryfall", relationships_api_url="http://127.0.0.1:9/rel")
HANDLERS = {name: importlib.import_module(f"command_functions.{name}").handle for name in COMMANDS}
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OnRva2Vu"

# Text that tries to ping, break out of code spans or links, or be awkward in UTF-16.
MENTIONS = st.sampled_from(["@everyone", "@here", "<@123456789012345678>", "<@&123456789012345678>",
                            "<#123456789012345678>", "`", "```", ">", "<", "\n", "😀" * 3, "\u202e", "\x00"])
CONTENT = st.lists(st.text(max_size=40) | MENTIONS, max_size=12).map(" ".join)


class _Offline(requests.adapters.BaseAdapter):
    """External APIs are down: commands that need them must fail politely."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        raise requests.ConnectionError("offline in this test")

    def close(self) -> None:
        pass


class _Recorder(requests.Session):
    """Stands in for Discord: records each request and answers 200 with a message."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, Any, dict[str, str]]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append((str(method), str(url), kwargs.get("json"), dict(kwargs.get("headers") or {})))
        response = requests.Response()
        response.status_code = 200
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response._content = json.dumps({"id": "1"}).encode()
        return response


def _offline_session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", _Offline())
    session.mount("https://", _Offline())
    return session


HTTP = _offline_session()


def _check_request(recorder: _Recorder) -> dict[str, Any]:
    [(method, url, body, headers)] = recorder.sent
    path = "/" + urlsplit(url).path.split("/api/v10/", 1)[1]
    oracle().check(method, path, body, headers)
    assert body["allowed_mentions"]["parse"] == []  # "@everyone", roles and users stay text
    content = body["content"]
    assert content.strip() and len(content.encode("utf-16-le")) // 2 <= MAX_CONTENT
    return body


@hsettings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(COMMANDS)) | st.text(max_size=12), CONTENT, st.sampled_from(["!", "?", "cb!"]),
       st.sampled_from(["message", "interaction"]), st.booleans())
def test_any_message_becomes_a_reply_discord_accepts(
    word: str, rest: str, prefix: str, kind: str, raw: bool
) -> None:
    content = rest if raw else f"{prefix}{word} {rest}"  # mostly commands, sometimes anything at all
    routed = parse_message(content, prefix)
    if routed is None:
        return
    env = Envelope(
        kind=kind,  # type: ignore[arg-type]
        command=routed.command, args=routed.args, author_name="you", received_at=datetime.now(UTC),
        ids=Ids(message="1000", channel="2000", author="3000", guild="4000",
                interaction="5000" if kind == "interaction" else None),
        interaction=InteractionRef("6000", Secret(INTERACTION_TOKEN)) if kind == "interaction" else None,
    )
    try:
        text = encode(env)
    except EnvelopeError:
        return  # documented: too long to queue; the listener tells the user
    decoded = decode(text)
    assert (decoded.command, decoded.args) == (env.command, env.args)
    ctx = CommandContext(envelope=decoded, spec=COMMANDS[decoded.command],
                         settings=Settings(storage=StorageSettings(), bot_prefix=prefix,
                                           catfact_api_url=SETTINGS.catfact_api_url,
                                           scryfall_api_url=SETTINGS.scryfall_api_url,
                                           relationships_api_url=SETTINGS.relationships_api_url),
                         http=HTTP, flags=dict.fromkeys(("roll", "relationships"), True), trace_id="0" * 32)
    reply = _run_command(HANDLERS[decoded.command], ctx, trace.get_current_span())  # what invoke() sends
    recorder = _Recorder()
    send_reply(DiscordRest("http://discord.test/api/v10", Secret("bot-token"), session=recorder, sleep=lambda _: None),
               decoded, reply)
    _check_request(recorder)


@hsettings(max_examples=150, deadline=None)
@given(CONTENT)
def test_mtg_reply_echoing_any_commander_is_valid_and_its_link_encoded(args: str) -> None:
    try:
        query = parse_mtg(args)
    except UsageError:
        return
    if query is None:
        return
    reply = mtg._reply(mtg._literal(query.commander[:200]), "WUBRG", query)
    recorder = _Recorder()
    DiscordRest("http://discord.test/api/v10", Secret("bot-token"), session=recorder, sleep=lambda _: None) \
        .create_message("2000", reply, nonce="1000", reply_to="1000")
    body = _check_request(recorder)
    link = body["content"].rsplit("<", 1)[1].rstrip(">").rstrip("…")
    assert not any(c.isspace() or c in "<>@`" for c in link), link
    if body["content"].endswith(">"):  # not cut: the link carries the whole query
        assert parse_qs(urlsplit(link).query)["q"] == [query.scryfall_query("WUBRG")]
