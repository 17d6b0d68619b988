"""``!catfact``: a random cat fact from catfact.ninja (``GET /fact`` -> ``{"fact", "length"}``)."""

from __future__ import annotations

from opentelemetry import trace

from function_runtime.context import CommandContext
from function_runtime.errors import ExternalApiError
from function_runtime.http import get_json
from shared.registry import COMMANDS

SPEC = COMMANDS["catfact"]

TIMEOUT_S = 5.0
SERVICE = "the cat fact service"
MAX_REPLY_CHARS = 2000


def handle(ctx: CommandContext) -> str:
    doc = get_json(ctx.http, ctx.settings.catfact_api_url, service=SERVICE, timeout=TIMEOUT_S).body
    fact = doc.get("fact") if isinstance(doc, dict) else None
    if not isinstance(fact, str) or not fact.strip():
        raise ExternalApiError(f"{SERVICE} sent no fact")
    fact = fact.strip()
    trace.get_current_span().set_attribute("app.catfact.length", len(fact))
    return fact[:MAX_REPLY_CHARS]

