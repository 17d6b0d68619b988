"""A small Source RCON client (the protocol Minecraft's ``enable-rcon`` speaks), synchronous.

https://developer.valvesoftware.com/wiki/Source_RCON_Protocol: every packet is
``int32 length | int32 request id | int32 type | body | NUL | NUL`` (little-endian; the
length counts what follows it). The client logs in (type 3, the password), the server
answers with an auth response (type 2) echoing the id, or id -1 for a wrong password.
Then the command (type 2); the answer comes back as one or more response packets (type 0)
with the command's id; Minecraft cuts answers at 4096 bytes per packet. To know where a
long answer ends, the client sends an empty ``SERVERDATA_RESPONSE_VALUE`` right after the
command: servers answer packets in order, so its echo (Source repeats it, Minecraft says
"Unknown request 0", both with its id) closes the answer.

Everything is bounded by one deadline (:data:`TIMEOUT_S`, 5 s): connect, login and the
answer. Failures are :class:`RconError` subclasses whose message is fit for the user: the
password never appears in one (nor in a span or a log line). ``command_sent`` tells a failure
before the command left (the server certainly did not run it) from one after (it may have).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

SERVERDATA_AUTH = 3
SERVERDATA_AUTH_RESPONSE = 2
SERVERDATA_EXECCOMMAND = 2
SERVERDATA_RESPONSE_VALUE = 0

TIMEOUT_S = 5.0
MAX_PACKET = 64 * 1024  # a sane bound on one packet (Minecraft: 4096 + header)
MAX_ANSWER = 256 * 1024  # stop reading a runaway answer there
MAX_COMMAND_BYTES = 1446  # Minecraft refuses longer client packets
AUTH_ID, COMMAND_ID, MARKER_ID = 1, 2, 3


class RconError(Exception):
    """The server could not be asked, or its answer could not be read. ``kind`` goes on the span."""

    kind = "rcon_error"
    command_sent = False  # True once the command may have reached the server (it may have run it)


class RconUnreachable(RconError):
    kind = "connection_refused"


class RconAuthError(RconError):
    kind = "auth_failed"


class RconTimeout(RconError):
    kind = "timeout"


class RconProtocolError(RconError):
    kind = "protocol_error"


@dataclass(frozen=True)
class RconAnswer:
    text: str  # decoded; invalid UTF-8 replaced (see ``invalid_utf8``)
    packets: int  # response packets the answer came in
    invalid_utf8: bool = False


def encode_packet(request_id: int, kind: int, body: str | bytes) -> bytes:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    payload = struct.pack("<ii", request_id, kind) + raw + b"\x00\x00"
    return struct.pack("<i", len(payload)) + payload


class _Reader:
    """Reads whole packets from a socket before a deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buffer = b""

    def _fill(self, size: int) -> bytes:
        while len(self._buffer) < size:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise RconTimeout(f"the server did not answer within {TIMEOUT_S:g} s")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise RconTimeout(f"the server did not answer within {TIMEOUT_S:g} s") from None
            except OSError as exc:
                raise RconUnreachable(f"the connection failed ({type(exc).__name__})") from None
            if not chunk:
                raise RconProtocolError("the server closed the connection")
            self._buffer += chunk
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def packet(self) -> tuple[int, int, bytes]:
        (length,) = struct.unpack("<i", self._fill(4))
        if not 10 <= length <= MAX_PACKET:
            raise RconProtocolError(f"the server sent a malformed packet (length {length})")
        data = self._fill(length)
        request_id, kind = struct.unpack("<ii", data[:8])
        return request_id, kind, data[8:-2]


def execute(host: str, port: int, password: str, command: str, *, timeout: float = TIMEOUT_S) -> RconAnswer:
    """Log in and run ``command``; the server's whole answer. Raises :class:`RconError`."""
    raw_command = command.encode("utf-8")
    if len(raw_command) > MAX_COMMAND_BYTES:
        raise RconProtocolError(f"the command is too long ({len(raw_command)} bytes; at most {MAX_COMMAND_BYTES})")
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise RconTimeout(f"could not connect within {timeout:g} s") from None
    except OSError as exc:
        raise RconUnreachable(f"could not connect ({type(exc).__name__})") from None
    with sock:
        reader = _Reader(sock, deadline)
        _send(sock, encode_packet(AUTH_ID, SERVERDATA_AUTH, password))
        while True:  # Source servers send an empty response value before the auth response
            request_id, kind, _ = reader.packet()
            if kind == SERVERDATA_AUTH_RESPONSE:
                break
        if request_id == -1:
            raise RconAuthError("the server refused the RCON password")
        if request_id != AUTH_ID:
            raise RconProtocolError(f"unexpected login answer (id {request_id})")
        try:
            parts = _command(sock, reader, raw_command)
        except RconError as exc:
            exc.command_sent = True
            raise
    raw = b"".join(parts)
    try:
        return RconAnswer(raw.decode("utf-8"), len(parts))
    except UnicodeDecodeError:
        return RconAnswer(raw.decode("utf-8", errors="replace"), len(parts), invalid_utf8=True)


def _command(sock: socket.socket, reader: _Reader, raw_command: bytes) -> list[bytes]:
    """Send the command and its end marker; the answer's packets, up to the marker's echo."""
    _send(sock, encode_packet(COMMAND_ID, SERVERDATA_EXECCOMMAND, raw_command)
          + encode_packet(MARKER_ID, SERVERDATA_RESPONSE_VALUE, b""))
    parts: list[bytes] = []
    size = 0
    while True:
        request_id, _, body = reader.packet()
        if request_id == MARKER_ID:
            return parts
        if request_id == COMMAND_ID:
            parts.append(body)
            size += len(body)
            if size > MAX_ANSWER:
                raise RconProtocolError(f"the answer is longer than {MAX_ANSWER // 1024} KiB")


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except TimeoutError:
        raise RconTimeout(f"the server did not accept the request within {TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise RconUnreachable(f"the connection failed ({type(exc).__name__})") from None

