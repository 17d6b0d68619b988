"""Sampling, span processors and outbound-HTTP instrumentation for shared/telemetry.py."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from shared.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


SAMPLE_RATE_KEY = "SampleRate"  # Honeycomb's field: each event stands for this many
_SECRET_PARAM = re.compile(r"token|key|secret|password|passwd|sig|signature|auth|code|credential", re.I)


class _NoOrphanClients(Sampler):
    """Root sampler for the functions process: keep roots, except CLIENT calls with no parent.

    A message without usable trace context still gets its own trace, but background HTTP
    (the local host polling the queue, SDK housekeeping) must not become thousands of
    one-span traces.
    """

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP, None, trace_state)
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "NoOrphanClients"


def make_sampler(ratio: float, component: str) -> Sampler:
    """Decide once at the listener; the function side follows the parent's decision."""
    if component == "listener":
        return ParentBased(TraceIdRatioBased(ratio))
    return ParentBased(_NoOrphanClients())


class TraceFieldsProcessor(SpanProcessor):
    """Copy the trace-level baggage entries (``keys``) onto every span as it starts.

    What opentelemetry-processor-baggage's BaggageSpanProcessor does, without its package
    import, which also loads the logs SDK (tens of ms of every cold start).
    """

    def __init__(self, keys: Collection[str]) -> None:
        self._keys = frozenset(keys)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for key, value in baggage.get_all(parent_context).items():
            if key in self._keys:
                span.set_attribute(key, str(value))


class AppInsightsSampleRate(SpanProcessor):
    """Mirror baggage ``SampleRate`` (N) as ``_MS.sampleRate`` (100/N %) so App Insights itemCount is right."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        raw = baggage.get_baggage(SAMPLE_RATE_KEY, parent_context)
        try:
            rate = int(str(raw))
        except ValueError:
            return
        if rate > 1:
            span.set_attribute("_MS.sampleRate", 100.0 / rate)


def redact_query(url: str) -> str:
    """The URL with values of secret-looking query parameters replaced by REDACTED."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(_SECRET_PARAM.search(k) for k, _ in pairs):
        return url
    query = urlencode([(k, "REDACTED" if _SECRET_PARAM.search(k) else v) for k, v in pairs])
    return urlunsplit(parts._replace(query=query))


def _request_hook(span: Any, request: Any) -> None:
    attrs = getattr(span, "attributes", None) or {}
    for key in ("url.full", "http.url"):
        if isinstance(attrs.get(key), str):
            redacted = redact_query(attrs[key])
            if redacted != attrs[key]:
                span.set_attribute(key, redacted)


def instrument_requests(settings: Settings, provider: TracerProvider) -> None:
    """CLIENT spans for ``requests`` calls, except to Discord.

    Discord webhook URLs carry the interaction token, so the Discord REST client makes its
    own spans with a redacted route; the whole Discord API host is excluded here.
    """
    import os

    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    # The stable HTTP conventions (http.response.status_code, url.full, server.address), as the
    # Discord REST client's own spans use, so one query covers every CLIENT span. The
    # instrumentation reads this documented opt-in from the environment only (once per process).
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    discord = urlsplit(settings.discord_api_base_url)
    excluded = "^" + re.escape(f"{discord.scheme}://{discord.netloc}/") if discord.netloc else ""
    # Versions are pinned in requirements.txt; the dependency check would scan package metadata.
    RequestsInstrumentor().instrument(
        tracer_provider=provider, excluded_urls=excluded, request_hook=_request_hook, skip_dep_check=True
    )


def uninstrument_requests() -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    RequestsInstrumentor().uninstrument()
