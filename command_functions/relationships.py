"""``!relationships [objective]``: a random synergy (or objective) to build around.

The API modelled here (``RELATIONSHIPS_API_URL``, default https://buildingrelationships.dev)::

    GET {base}/api/random   ->  200 {"Synergy": "...", "Objective": "...",
                                     "Relationships": ["...", ...], "Credit": "..."}

one random entry per call. ``Relationships`` may also be a single string; it and
``Credit`` are optional. Without an argument the reply is the entry's synergy and its
relationships; with ``objective`` it is the objective. The credit is always shown
(the API's host when the entry has none). Gated by the ``relationships`` flag.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry import trace

from function_runtime.context import CommandContext
from function_runtime.errors import ExternalApiError, UsageError
from function_runtime.http import get_json
from shared.registry import COMMANDS

SPEC = COMMANDS["relationships"]

TIMEOUT_S = 5.0
SERVICE = "the relationships service"
RANDOM_PATH = "/api/random"
MODES = {"": "Synergy", "synergy": "Synergy", "objective": "Objective"}  # argument -> field shown
# per-field caps: with their labels the three lines stay under Discord's 2000 characters
MAX_CHARS = {"main": 1200, "relationships": 400, "credit": 200}


def _text(value: object, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _relationships(value: object) -> str:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    joined = ", ".join(s.strip() for s in items if isinstance(s, str) and s.strip())
    return _text(joined, MAX_CHARS["relationships"])


def handle(ctx: CommandContext) -> str:
    mode = ctx.args.strip().lower()
    field = MODES.get(mode) if len(mode) <= 20 else None
    if field is None:
        raise UsageError(f"Usage: `{ctx.settings.bot_prefix}relationships [objective]`")
    base = ctx.settings.relationships_api_url
    doc = get_json(ctx.http, f"{base}{RANDOM_PATH}", service=SERVICE, timeout=TIMEOUT_S).body
    entry = doc if isinstance(doc, dict) else {}
    main = _text(entry.get(field), MAX_CHARS["main"])
    if not main:
        raise ExternalApiError(f"{SERVICE} sent no {field.lower()}")
    trace.get_current_span().set_attribute("app.relationships.mode", field.lower())
    lines = [f"**{field}:** {main}"]
    if field == "Synergy" and (rel := _relationships(entry.get("Relationships"))):
        lines.append(f"**Relationships:** {rel}")
    credit = _text(entry.get("Credit"), MAX_CHARS["credit"]) or urlsplit(base).netloc
    lines.append(f"-# Credit: {credit}")
    return "\n".join(lines)

