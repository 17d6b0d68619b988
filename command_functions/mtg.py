"""``!mtg <commander> [criteria]``: a Scryfall search link for Commander/EDH deck building.

The grammar lives in command_functions/mtg_query.py (``!mtg help`` explains it to users).
The commander's colour identity comes from Scryfall's fuzzy name lookup,
``GET {SCRYFALL_API_URL}/cards/named?fuzzy=<name>``, sent with the User-Agent and
``Accept: application/json`` Scryfall's API documentation asks for.

When Scryfall answers 404 (``{"object": "error", "code": "not_found", ...}``, with
``"type": "ambiguous"`` when the name matches several cards), the reply says so and
offers suggestions from ``GET /cards/autocomplete?q=<name>`` (a catalog of up to 20
names). Suggestions are best effort: if that second call fails the reply simply has
none. Scryfall 5xx, 429, timeouts or garbled JSON raise ExternalApiError.
"""

from __future__ import annotations

import logging
import re

from opentelemetry import trace

from command_functions.mtg_query import (
    MtgQuery,
    describe_identity,
    help_text,
    normalise_identity,
    parse,
    search_url,
)
from function_runtime.context import CommandContext
from function_runtime.errors import ExternalApiError
from function_runtime.http import get_json
from shared.registry import COMMANDS
from shared.useragent import user_agent

_log = logging.getLogger(__name__)

SPEC = COMMANDS["mtg"]

TIMEOUT_S = 5.0
SUGGEST_TIMEOUT_S = 3.0  # the suggestion is a nicety; don't double the wait for it
SERVICE = "Scryfall"
MAX_SUGGESTIONS = {"ambiguous": 5, "not_found": 3}
_MARKDOWN = re.compile(r"([*_~|`\\])")  # a card name goes inside **bold**; keep it literal
NOT_FOUND_TEXT = {
    "ambiguous": "“{name}” matches several cards; add more of the name.",
    "not_found": "Scryfall knows no card named “{name}”.",
}


def _headers(ctx: CommandContext) -> dict[str, str]:
    return {
        "User-Agent": user_agent("external", ctx.settings.service_version),
        "Accept": "application/json",
    }


def _suggestions(ctx: CommandContext, name: str, limit: int) -> list[str]:
    """Up to ``limit`` card names from Scryfall's autocomplete; [] if that call fails."""
    try:
        doc = get_json(
            ctx.http, f"{ctx.settings.scryfall_api_url}/cards/autocomplete", service=SERVICE,
            params={"q": name}, headers=_headers(ctx), timeout=min(TIMEOUT_S, SUGGEST_TIMEOUT_S),
        ).body
    except ExternalApiError:
        _log.info("Scryfall autocomplete failed; replying without suggestions", exc_info=True)
        return []
    data = doc.get("data") if isinstance(doc, dict) else None
    return [_literal(s) for s in data if isinstance(s, str)][:limit] if isinstance(data, list) else []


def _literal(card_name: str) -> str:
    return _MARKDOWN.sub(r"\\\1", card_name[:150])


def _not_found(ctx: CommandContext, name: str, error: object) -> str:
    ambiguous = isinstance(error, dict) and (
        error.get("type") == "ambiguous" or "ambiguous" in str(error.get("details", "")).lower()
    )
    kind = "ambiguous" if ambiguous else "not_found"
    trace.get_current_span().set_attribute("app.mtg.lookup", kind)
    text = NOT_FOUND_TEXT[kind].format(name=name[:60])
    found = _suggestions(ctx, name, MAX_SUGGESTIONS[kind])
    return f"{text} Did you mean: {', '.join(found)}?" if found else text


def _reply(card_name: str, identity: str, query: MtgQuery) -> str:
    q = query.scryfall_query(identity)
    trace.get_current_span().set_attribute("app.mtg.query", q)
    return (
        f"**{card_name}** (colour identity: {describe_identity(identity)})\n"
        f"Search: `{q}`\n<{search_url(q)}>"
    )


def handle(ctx: CommandContext) -> str:
    query = parse(ctx.args, ctx.settings.bot_prefix)
    if query is None:
        return help_text(ctx.settings.bot_prefix)
    span = trace.get_current_span()
    span.set_attribute("app.mtg.commander_query", query.commander)
    resp = get_json(
        ctx.http, f"{ctx.settings.scryfall_api_url}/cards/named", service=SERVICE,
        params={"fuzzy": query.commander}, headers=_headers(ctx), timeout=TIMEOUT_S, accept=(200, 404),
    )
    if resp.status == 404:
        return _not_found(ctx, query.commander, resp.body)
    card = resp.body if isinstance(resp.body, dict) else {}
    name, colours = card.get("name"), card.get("color_identity")
    identity = normalise_identity(colours) if isinstance(colours, list) else None
    if not isinstance(name, str) or not name or identity is None:
        raise ExternalApiError("Scryfall sent a card without a name or colour identity")
    span.set_attributes({"app.mtg.lookup": "found", "app.mtg.commander": name, "app.mtg.colour_identity": identity})
    return _reply(_literal(name), identity, query)

