"""!mtg: the grammar (pure) and the Scryfall lookup against a local stand-in."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from command_functions import mtg
from command_functions.mtg_query import MAX_CRITERIA, help_text, parse, search_url
from function_runtime.errors import ExternalApiError, UsageError
from shared.registry import SOURCE_URL
from shared.settings import Settings
from tests.command_functions.stub_apis import StubApis, make_ctx
from tests.tracing import by_name

WUBG = "WUBG"


def query_of(args: str, identity: str = WUBG) -> str:
    parsed = parse(args)
    assert parsed is not None
    return parsed.scryfall_query(identity)


# -- grammar ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("atraxa", "id<=wubg f:commander"),
        ("atraxa creature", "id<=wubg t:creature f:commander"),
        ("atraxa creature land", "id<=wubg (t:creature or t:land) f:commander"),
        ("atraxa creature land instant", "id<=wubg (t:creature or t:land or t:instant) f:commander"),
        ("atraxa Creature LAND", "id<=wubg (t:creature or t:land) f:commander"),
        ("atraxa creature creature", "id<=wubg t:creature f:commander"),
        ("atraxa legendary land", "id<=wubg (t:legendary t:land) f:commander"),
        ("atraxa legendary land creature", "id<=wubg ((t:legendary t:land) or t:creature) f:commander"),
        ("atraxa artifact+creature", "id<=wubg (t:artifact t:creature) f:commander"),
        ("atraxa legendary", "id<=wubg t:legendary f:commander"),
        ("atraxa t:elf t:equipment", "id<=wubg (t:elf or t:equipment) f:commander"),
        ("atraxa 2/2", "id<=wubg pow=2 tou=2 f:commander"),
        ("atraxa */4", "id<=wubg tou=4 f:commander"),
        ("atraxa 3/*", "id<=wubg pow=3 f:commander"),
        ("atraxa cmc<5", "id<=wubg mv<5 f:commander"),
        ("atraxa cmc>=3", "id<=wubg mv>=3 f:commander"),
        ("atraxa mv!=2", "id<=wubg mv!=2 f:commander"),
        ("atraxa cmc:4", "id<=wubg mv=4 f:commander"),
        ("atraxa cmc>=2 cmc<=4", "id<=wubg mv>=2 mv<=4 f:commander"),
        ("atraxa pow>=4 tou<2", "id<=wubg pow>=4 tou<2 f:commander"),
        ("atraxa 3", "id<=wubg mv=3 f:commander"),
        ("atraxa creature land 2/2 cmc<5", "id<=wubg (t:creature or t:land) pow=2 tou=2 mv<5 f:commander"),
        ("atraxa 2/2 creature cmc<5 land", "id<=wubg (t:creature or t:land) pow=2 tou=2 mv<5 f:commander"),
    ],
)
def test_criteria_become_one_scryfall_query(args: str, expected: str) -> None:
    assert query_of(args) == expected


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ("Atraxa, Praetors' Voice creature", "Atraxa, Praetors' Voice"),
        ("krenko mob boss 1/1", "krenko mob boss"),
        ('"Lord of the Land" creature', "Lord of the Land"),
        ("“Sliver Legion” legendary", "Sliver Legion"),
        ("Who/What/When/Where/Why", "Who/What/When/Where/Why"),
        ("Lim-Dûl the Necromancer", "Lim-Dûl the Necromancer"),
        ("creature land atraxa", "creature land atraxa"),  # criteria only count at the end
    ],
)
def test_the_name_is_everything_before_the_criteria(args: str, name: str) -> None:
    parsed = parse(args)
    assert parsed is not None and parsed.commander == name


def test_colourless_commanders_get_colourless_cards() -> None:
    assert query_of("karn creature", "") == "id:c t:creature f:commander"


@pytest.mark.parametrize("args", ["help", " HELP ", "?"])
def test_help_is_not_a_query(args: str) -> None:
    assert parse(args) is None


@pytest.mark.parametrize(
    "args",
    [
        "", "   ", "creature", "creature 2/2", "2/2", '"" creature', '"atraxa" bogus', "atraxa cmc<<5",
        "atraxa cmc<100", "atraxa pow=-1", "atraxa t:", "atraxa t:123", "<@123456789012345678> creature",
        "@everyone", "atraxa `rm -rf`", "a" * 301, "atraxa " + "creature " * (MAX_CRITERIA + 1), "x" * 151,
        "atraxa\n2/2\ncmc<5 <#1234>", "atraxa 2/2/2",
    ],
)
def test_malformed_input_is_a_usage_error(args: str) -> None:
    with pytest.raises(UsageError):
        parse(args)


def test_usage_errors_never_echo_a_mention() -> None:
    with pytest.raises(UsageError) as err:
        parse("atraxa <@123456789012345678>")
    assert "<@1" not in str(err.value)


def test_help_explains_the_syntax_with_examples() -> None:
    text = help_text("!")
    for needle in ("`creature land`", "artifact+creature", "`2/2`", "cmc<5", "cmc>=3", "bare number", "!mtg atraxa"):
        assert needle in text
    assert len(text) <= 2000


def assert_valid_link(url: str, query: str) -> None:
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "scryfall.com", "/search")
    assert re.fullmatch(r"[A-Za-z0-9_.~%=&-]+", parts.query), parts.query  # everything else percent-encoded
    assert parse_qs(parts.query)["q"] == [query]


def test_link_encodes_the_query() -> None:
    q = query_of("atraxa creature land 2/2 cmc<5")
    url = search_url(q)
    assert "q=id%3C%3Dwubg%20%28t%3Acreature%20or%20t%3Aland%29%20pow%3D2%20tou%3D2%20mv%3C5%20f%3Acommander" in url
    assert_valid_link(url, q)


CRITERIA_WORDS = st.sampled_from([
    "creature", "land", "legendary", "artifact+creature", "t:elf", "2/2", "*/3", "cmc<5", "mv>=3", "3", "pow>4",
    "cmc<<", "t:", "+", "/", '"', "“", "”", "@here", "<@1>", "`", "\\", "%", "&q=", "#",
])


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_raises_only_usage_errors(args: str) -> None:
    try:
        parsed = parse(args)
    except UsageError:
        return
    if parsed is not None:
        for identity in ("", "WUBRG", "G"):
            q = parsed.scryfall_query(identity)
            assert_valid_link(search_url(q), q)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(CRITERIA_WORDS | st.text(min_size=1, max_size=12), max_size=20))
def test_mixed_words_raise_only_usage_errors_and_links_stay_valid(words: list[str]) -> None:
    try:
        parsed = parse(" ".join(["atraxa", *words]))
    except UsageError:
        return
    assert parsed is not None
    q = parsed.scryfall_query("WUBRG")
    assert q.startswith("id<=wubrg") and q.endswith("f:commander")
    assert "@" not in q and "`" not in q
    assert_valid_link(search_url(q), q)


# -- against the Scryfall stand-in ----------------------------------------------------------------


def test_reply_names_the_commander_its_identity_and_one_link(
    stub: tuple[StubApis, Settings], http: requests.Session
) -> None:
    apis, settings = stub
    reply = mtg.handle(make_ctx("mtg", "atraxa creature land 2/2 cmc<5", settings, http))
    assert "Atraxa, Praetors' Voice" in reply
    assert "white, blue, black, green" in reply
    links = re.findall(r"https?://\S+?(?=>|\s|$)", reply)
    assert len(links) == 1
    assert_valid_link(links[0], "id<=wubg (t:creature or t:land) pow=2 tou=2 mv<5 f:commander")
    assert len(reply) <= 2000
    [request] = apis.requests
    assert request.path == "/cards/named" and request.query == {"fuzzy": ["atraxa"]}


def test_scryfall_gets_the_headers_it_asks_for(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    apis, settings = stub
    mtg.handle(make_ctx("mtg", "krenko mob boss", settings, http))
    headers = {k.lower(): v for k, v in apis.requests[0].headers.items()}
    assert headers["accept"] == "application/json"
    assert headers["user-agent"].startswith("discord-functions-bot/") and SOURCE_URL in headers["user-agent"]


def test_colourless_commander(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    _, settings = stub
    reply = mtg.handle(make_ctx("mtg", "karn legacy artifact", settings, http))
    assert "colourless" in reply and "id%3Ac%20t%3Aartifact%20f%3Acommander" in reply


def test_unknown_card_says_so_with_a_suggestion(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    apis, settings = stub
    reply = mtg.handle(make_ctx("mtg", "atraxa praetor voice creature", settings, http))
    assert "no card named" in reply and "Did you mean: Atraxa, Praetors' Voice?" in reply
    assert "scryfall.com/search" not in reply
    assert [r.path for r in apis.requests] == ["/cards/named", "/cards/autocomplete"]


def test_ambiguous_name_lists_the_candidates(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    _, settings = stub
    reply = mtg.handle(make_ctx("mtg", "krenko", settings, http))
    assert "matches several cards" in reply
    assert "Krenko, Mob Boss" in reply and "Krenko, Tin Street Kingpin" in reply


def test_unknown_card_without_suggestions(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    _, settings = stub
    reply = mtg.handle(make_ctx("mtg", "zzzz yyyy", settings, http))
    assert reply == "Scryfall knows no card named “zzzz yyyy”."


@pytest.mark.parametrize("status", [500, 503, 429])
def test_scryfall_failures_are_external_api_errors(
    stub: tuple[StubApis, Settings], http: requests.Session, status: int
) -> None:
    apis, settings = stub
    apis.status = status
    with pytest.raises(ExternalApiError, match=f"HTTP {status}"):
        mtg.handle(make_ctx("mtg", "atraxa", settings, http))


def test_scryfall_timeout_is_an_external_api_error(
    stub: tuple[StubApis, Settings], http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    apis, settings = stub
    apis.delay_s = 30  # released at teardown
    monkeypatch.setattr(mtg, "TIMEOUT_S", 0.2)
    with pytest.raises(ExternalApiError, match="did not answer in time"):
        mtg.handle(make_ctx("mtg", "atraxa", settings, http))


@pytest.mark.parametrize("body", [b"not json", b'{"object": "card", "name": "X"}',
                                  b'{"object": "card", "name": "X", "color_identity": ["Q"]}'])
def test_garbled_card_is_an_external_api_error(
    stub: tuple[StubApis, Settings], http: requests.Session, body: bytes
) -> None:
    apis, settings = stub
    apis.raw["/cards/named"] = body
    with pytest.raises(ExternalApiError):
        mtg.handle(make_ctx("mtg", "atraxa", settings, http))


def test_help_and_usage_errors_make_no_request(stub: tuple[StubApis, Settings], http: requests.Session) -> None:
    apis, settings = stub
    assert "Examples" in mtg.handle(make_ctx("mtg", "help", settings, http))
    with pytest.raises(UsageError):
        mtg.handle(make_ctx("mtg", "x" * 4000, settings, http))
    assert apis.requests == []


def test_scryfall_call_is_a_client_span_and_gets_no_baggage(
    stub: tuple[StubApis, Settings], http: requests.Session, spans: InMemorySpanExporter
) -> None:
    apis, settings = stub
    token = context.attach(baggage.set_baggage("discord.author.id", "3000"))
    try:
        with trace.get_tracer(__name__).start_as_current_span("mtg"):
            mtg.handle(make_ctx("mtg", "atraxa creature", settings, http))
    finally:
        context.detach(token)
    headers = {k.lower() for k in apis.requests[0].headers}
    assert "traceparent" in headers and "baggage" not in headers
    command = by_name(spans.get_finished_spans(), "mtg")
    assert command.attributes is not None
    assert command.attributes["app.mtg.query"] == "id<=wubg t:creature f:commander"
    clients = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(clients) == 1 and clients[0].parent is not None
    assert clients[0].parent.span_id == command.context.span_id
