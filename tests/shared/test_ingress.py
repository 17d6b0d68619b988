"""The one ingress builder: routing, slash arguments, and the trace + envelope it starts."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared.envelope import MAX_ARGS_CHARS, decode
from shared.ingress import Incoming, route, slash_args, slash_incoming, start_command
from shared.settings import Secret
from tests.tracing import by_name


def _incoming(name: str = "roll", value: str = "3") -> Incoming:
    return slash_incoming(name=name, options=[{"name": "dice", "type": 3, "value": value}, {"name": "sub", "type": 1}],
                          interaction_id="11", channel_id="22", author_id="33", author_name="alice", guild_id=None,
                          roles=["44"], application_id="55", token=Secret("tok"))


def test_unknown_names_route_to_help_and_say_what_was_asked() -> None:
    assert route("ping", "").known
    routed = route("nope" * 20, "x")
    assert (routed.command, routed.known, len(routed.requested)) == ("help", False, 32)


def test_slash_args_join_values_in_order_and_skip_subcommands() -> None:
    assert slash_args([{"name": "a", "value": 3}, {"name": "b", "type": 1}, {"name": "c", "value": "9a"}]) == "3 9a"


def test_start_command_builds_the_envelope_under_the_producer(spans: InMemorySpanExporter) -> None:
    with start_command(_incoming(), kind=SpanKind.SERVER, attributes={"faas.trigger": "http"}) as started:
        assert started.text is not None
        started.producer.end()
    env = decode(started.text)
    assert (env.kind, env.command, env.args, env.ids.interaction) == ("interaction", "roll", "3", "11")
    assert env.roles == ("44",) and env.interaction is not None and env.interaction.token.reveal() == "tok"
    finished = spans.get_finished_spans()
    root, producer = by_name(finished, "discord.command"), by_name(finished, "cmd-roll send")
    assert root.kind is SpanKind.SERVER and root.attributes["faas.trigger"] == "http"
    assert env.trace["traceparent"].split("-")[2] == format(producer.context.span_id, "016x")


def test_an_envelope_that_cannot_be_encoded_is_recorded_not_raised(spans: InMemorySpanExporter) -> None:
    with start_command(_incoming(value="x" * (MAX_ARGS_CHARS + 1))) as started:
        assert started.text is None
    root = by_name(spans.get_finished_spans(), "discord.command")
    assert root.status.status_code is StatusCode.ERROR and "args" in root.attributes["app.error"]
    assert by_name(spans.get_finished_spans(), "cmd-roll send").end_time is not None
