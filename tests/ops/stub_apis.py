"""Local stand-ins for Honeycomb's API (markers, queries, query annotations, boards) and Azure
Resource Manager's annotations API.

A real HTTP server on a free loopback port: it records every request (method, path, query,
headers, JSON body) and answers with the status a test sets, so the client's real HTTP code runs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class StubApis:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)  # path prefix -> status to answer
    echo_headers: bool = False  # answer errors with the request headers, as a careless API might
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)

    def answer(self, path: str) -> int:
        for prefix, status in self.status.items():
            if path.startswith(prefix):
                return status
        return 200


def _answer(stub: StubApis, method: str, path: str, body: Any) -> Any:
    """What the real APIs answer, enough for the clients: created objects echo back with an id."""
    n = len(stub.requests)
    if path.startswith("/1/markers/"):
        return {"id": "mk-1", **(body or {})}
    if path.startswith("/1/queries/"):
        return {"id": f"q{n}", **body}
    if path.startswith("/1/query_annotations/"):
        return {"id": f"a{n}", **body}
    if path == "/1/boards" and method == "GET":
        return list(stub.boards.values())
    if path.startswith("/1/boards"):
        board_id = path.rsplit("/", 1)[1] if method == "PUT" else f"b{n}"
        stub.boards[board_id] = {**body, "id": board_id, "links": {"board_url": f"https://ui.example/board/{board_id}"}}
        return stub.boards[board_id]
    return [body]  # ARM's Annotations_Create answers with the list it created


def _handler(stub: StubApis) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw) if raw else None
            stub.requests.append(Received(self.command, parts.path, parse_qs(parts.query),
                                          {k.lower(): v for k, v in self.headers.items()}, body))
            status = stub.answer(parts.path)
            if status >= 300:
                payload: Any = {"error": "refused"}
                if stub.echo_headers:
                    payload["headers"] = dict(self.headers)
            else:
                payload = _answer(stub, self.command, parts.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def stub_apis() -> Iterator[StubApis]:
    stub = StubApis()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
