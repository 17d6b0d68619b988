from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_listener.parsing import parse_message, parse_prefix
from shared.registry import COMMANDS


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("!ping", ("ping", "")),
        ("!PING", ("ping", "")),
        ("!mtg  atraxa   creature 2/2 ", ("mtg", "atraxa   creature 2/2")),
        ("!roll\n5 9a", ("roll", "5 9a")),
        ("!", None),
        ("! ping", None),
        ("ping", None),
        ("hello !ping", None),
        ("", None),
    ],
)
def test_parse_prefix(content: str, expected: tuple[str, str] | None) -> None:
    assert parse_prefix(content, "!") == expected


def test_custom_multi_char_prefix() -> None:
    assert parse_prefix("cb!catfact", "cb!") == ("catfact", "")
    assert parse_prefix("!catfact", "cb!") is None


def test_unknown_command_routes_to_help_with_name() -> None:
    routed = parse_message("!frobnicate now", "!")
    assert routed is not None
    assert (routed.command, routed.args, routed.requested, routed.known) == ("help", "frobnicate", "frobnicate", False)


def test_known_command_routes_to_itself() -> None:
    routed = parse_message("!help roll", "!")
    assert routed is not None and routed.known and (routed.command, routed.args) == ("help", "roll")


@given(st.text(max_size=200), st.sampled_from(["!", "?", "cb!", "$$"]))
def test_parser_never_raises_and_always_routes_to_a_registered_command(content: str, prefix: str) -> None:
    routed = parse_message(content, prefix)
    if routed is not None:
        assert routed.command in COMMANDS
        assert len(routed.requested) <= 32
