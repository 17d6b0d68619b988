from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import (
    ENVELOPE_GETTER,
    MAX_ARGS_CHARS,
    TRACE_SETTER,
    Envelope,
    Ids,
    InteractionRef,
    decode,
    encode,
)
from shared.errors import EnvelopeError
from shared.settings import Secret


def make(**over: object) -> Envelope:
    base: dict[str, object] = {
        "kind": "message",
        "command": "ping",
        "args": "",
        "ids": Ids(message="1100000000000000001", channel="1100000000000000002", author="1100000000000000003",
                   guild="1100000000000000004"),
        "author_name": "you",
        "received_at": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
    }
    base.update(over)
    return Envelope(**base)  # type: ignore[arg-type]


def test_round_trip_message() -> None:
    env = make(args="hello wörld 🐱", roles=("5", "6"))
    env.trace["traceparent"] = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    back = decode(encode(env))
    assert back == env


def test_round_trip_interaction_keeps_token_secret_in_repr() -> None:
    env = make(kind="interaction", ids=Ids(message="11", channel="12", author="13", interaction="14"),
               interaction=InteractionRef("99", Secret("tok-123")))
    back = decode(encode(env).encode("utf-8"))
    assert back.interaction is not None and back.interaction.token.reveal() == "tok-123"
    assert "tok-123" not in repr(back)


def test_json_shape_matches_design() -> None:
    doc = json.loads(encode(make()))
    assert set(doc) >= {"v", "kind", "command", "args", "ids", "author_name", "received_at", "interaction", "trace"}
    assert doc["v"] == 1 and doc["received_at"] == "2026-11-23T12:00:00Z"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"\xff\xfe", "UTF-8"),
        ("not json", "not JSON"),
        ("[1,2]", "JSON object"),
        ('{"v": 2}', "version"),
        ('{"v": true}', "version"),
        ('{"v": 1, "kind": "carrier-pigeon"}', "kind"),
        ('{"v": 1, "kind": "message", "command": "", "args": ""}', "command"),
        ('{"v": 1, "kind": "message", "command": "ping", "args": "", "ids": []}', "ids"),
    ],
)
def test_decode_rejects_with_clear_error(raw: str | bytes, needle: str) -> None:
    with pytest.raises(EnvelopeError, match=needle):
        decode(raw)


def test_decode_rejects_non_snowflake_ids_and_missing_interaction() -> None:
    doc = json.loads(encode(make()))
    doc["ids"]["channel"] = "../../etc"
    with pytest.raises(EnvelopeError, match=r"ids\.channel"):
        decode(json.dumps(doc))
    doc = json.loads(encode(make()))
    doc["kind"] = "interaction"
    with pytest.raises(EnvelopeError, match="interaction"):
        decode(json.dumps(doc))


def test_oversized_args_rejected_both_ways() -> None:
    with pytest.raises(EnvelopeError, match="args"):
        encode(make(args="x" * (MAX_ARGS_CHARS + 1)))
    doc = json.loads(encode(make()))
    doc["args"] = "x" * (MAX_ARGS_CHARS + 1)
    with pytest.raises(EnvelopeError, match="args"):
        decode(json.dumps(doc))


def test_nonce_is_stable_and_short() -> None:
    env = make()
    assert env.nonce == decode(encode(env)).nonce == "1100000000000000001"
    assert len(env.nonce) <= 25


def test_trace_carrier_getter_setter() -> None:
    env = make()
    TRACE_SETTER.set(env.trace, "traceparent", "00-x")
    TRACE_SETTER.set(env.trace, "authorization", "nope")  # only trace keys travel
    assert ENVELOPE_GETTER.get(env, "traceparent") == ["00-x"]
    assert ENVELOPE_GETTER.get(env, "authorization") is None
    assert ENVELOPE_GETTER.keys(env) == ["traceparent"]


def test_garbage_trace_field_is_dropped_not_fatal() -> None:
    doc = json.loads(encode(make()))
    doc["trace"] = {"traceparent": 42, "baggage": "a=b"}
    assert decode(json.dumps(doc)).trace == {"baggage": "a=b"}


@given(st.binary(max_size=300))
def test_decode_arbitrary_bytes_only_raises_envelope_error(raw: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode(raw)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=20))
def test_decode_arbitrary_json_only_raises_envelope_error(value: object) -> None:
    with contextlib.suppress(EnvelopeError):
        decode(json.dumps(value))
