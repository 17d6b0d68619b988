"""Local stand-ins for the commands' external APIs, speaking their real JSON.

``python -m localdev`` serves them by default (everything local, no internet needed;
``--live-apis`` uses the real ones), and the tests script them. One
ThreadingHTTPServer on port 0 serves:
- ``GET /fact``                      catfact.ninja: ``{"fact": "...", "length": n}``
- ``GET /cards/named?fuzzy=``        Scryfall: a card object, or a 404 error object
                                     (``"type": "ambiguous"`` when several cards match)
- ``GET /cards/autocomplete?q=``     Scryfall: ``{"object": "catalog", "total_values", "data"}``
- ``GET /api/random``                the relationships API (see command_functions/relationships.py)

``delay_s`` holds every answer back (released at close, so teardown never waits),
``status`` forces an error status, ``raw`` replaces a path's body with garbage.
Every request is recorded (path, query, headers) for assertions.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CARDS = (
    {"object": "card", "name": "Atraxa, Praetors' Voice", "color_identity": ["W", "U", "B", "G"],
     "type_line": "Legendary Creature — Phyrexian Angel Horror"},
    {"object": "card", "name": "Krenko, Mob Boss", "color_identity": ["R"],
     "type_line": "Legendary Creature — Goblin Warrior"},
    {"object": "card", "name": "Krenko, Tin Street Kingpin", "color_identity": ["R"],
     "type_line": "Legendary Creature — Goblin Warrior"},
    {"object": "card", "name": "Karn, Legacy Reforged", "color_identity": [],
     "type_line": "Legendary Artifact Creature — Golem"},
)
RELATIONSHIP = {
    "Synergy": "Both characters secretly want to leave town.",
    "Objective": "Get the other to admit a mistake.",
    "Relationships": ["Siblings", "Rivals"],
    "Credit": "Example Author",
}
CAT_FACT = "Cats sleep for around 13 to 16 hours a day."


def _simplify(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower())


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class StubApis:
    delay_s: float = 0.0
    status: int | None = None  # force this status (with a Scryfall-style error body)
    raw: dict[str, bytes] = field(default_factory=dict)  # path -> body bytes served instead
    relationship: dict[str, Any] = field(default_factory=lambda: dict(RELATIONSHIP))
    requests: list[Recorded] = field(default_factory=list)
    _release: threading.Event = field(default_factory=threading.Event)

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if self.status is not None:
            return self.status, {"object": "error", "code": "internal_server_error", "status": self.status,
                                 "details": "Something went wrong."}
        routes = {"/fact": self._fact, "/cards/named": self._named, "/cards/autocomplete": self._autocomplete,
                  "/api/random": lambda q: (200, self.relationship)}
        handler = routes.get(path)
        if handler is None:
            return 404, {"object": "error", "code": "not_found", "status": 404, "details": "No such endpoint."}
        return handler(query)

    def _fact(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        return 200, {"fact": CAT_FACT, "length": len(CAT_FACT)}

    def _named(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        wanted = _simplify(query.get("fuzzy", [""])[0])
        matches = [c for c in CARDS if wanted and wanted in _simplify(str(c["name"]))]
        if len(matches) == 1:
            return 200, matches[0]
        if matches:
            return 404, {"object": "error", "code": "not_found", "status": 404, "type": "ambiguous",
                         "details": f"Too many cards match ambiguous name “{wanted}”. Add more words to refine "
                                    "your search."}
        return 404, {"object": "error", "code": "not_found", "status": 404,
                     "details": f"No cards found matching “{wanted}”"}

    def _autocomplete(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        words = _simplify(query.get("q", [""])[0]).split()
        data = [str(c["name"]) for c in CARDS if words and words[0] in _simplify(str(c["name"]))]
        return 200, {"object": "catalog", "total_values": len(data), "data": data}

    # -- server ----------------------------------------------------------------------------

    def start(self) -> str:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                stub.requests.append(Recorded(parts.path, query, dict(self.headers.items())))
                if stub.delay_s:
                    stub._release.wait(stub.delay_s)
                if parts.path in stub.raw:
                    status, payload = 200, stub.raw[parts.path]
                else:
                    status, doc = stub.answer(parts.path, query)
                    payload = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client timed out and left
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def api_settings(base: str) -> dict[str, str]:
    """The settings that point the commands at a stub served at ``base``."""
    return {"CATFACT_API_URL": f"{base}/fact", "SCRYFALL_API_URL": base, "RELATIONSHIPS_API_URL": base}
