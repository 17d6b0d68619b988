"""A local stand-in for a Minecraft server's RCON port, for ``!mc`` in local runs and tests.

It speaks the real Source RCON protocol (see function_runtime/rcon.py) as Minecraft does:
login (type 3) answered with an auth response echoing the id (-1 for a wrong password),
commands (type 2) answered with response packets cut at :attr:`RconStandIn.split_at`
bytes (4096 like Minecraft), and any other packet type answered with
"Unknown request <type>" under its id. It keeps a whitelist and knows ``whitelist
add|remove|list``, ``list``, ``say`` and ``help`` (a long answer, several packets).

Fault modes (``fault``) for tests: ``"wrong_password"`` (refuses every login),
``"silence"`` (accepts the connection, never answers), ``"invalid_utf8"`` (answers with
bytes that are not UTF-8), ``"no_answer"`` (runs each command, never answers it: a server
that hangs mid-command). Every command it ran is kept in :attr:`RconStandIn.commands`.

    with RconStandIn(password="pw") as mc:
        mc.address  # "127.0.0.1:<port>"
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from function_runtime.rcon import SERVERDATA_AUTH, SERVERDATA_AUTH_RESPONSE, SERVERDATA_EXECCOMMAND, encode_packet

Fault = Literal["wrong_password", "silence", "invalid_utf8", "no_answer"] | None
MINECRAFT_SPLIT = 4096
HELP_LINES = tuple(f"/{name} <arguments...>: see the Minecraft wiki for {name}" for name in (
    "advancement", "attribute", "ban", "ban-ip", "banlist", "bossbar", "clear", "clone", "data", "datapack",
    "debug", "defaultgamemode", "deop", "difficulty", "effect", "enchant", "execute", "experience", "fill",
    "forceload", "function", "gamemode", "gamerule", "give", "help", "item", "kick", "kill", "list", "locate",
    "loot", "me", "msg", "op", "pardon", "pardon-ip", "particle", "playsound", "recipe", "reload", "save-all",
    "save-off", "save-on", "say", "schedule", "scoreboard", "seed", "setblock", "setidletimeout",
    "setworldspawn", "spawnpoint", "spectate", "spreadplayers", "stop", "stopsound", "summon", "tag", "team",
    "teammsg", "teleport", "tell", "tellraw", "time", "title", "tm", "tp", "trigger", "w", "weather",
    "whitelist", "worldborder", "xp",
)) * 2


@dataclass
class RconStandIn:
    password: str = "minecraft"
    host: str = "127.0.0.1"
    port: int = 0
    fault: Fault = None
    split_at: int = MINECRAFT_SPLIT
    whitelist: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    _server: socket.socket | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def settings(self) -> dict[str, str]:
        """The settings that point ``!mc`` at this stand-in."""
        return {"MINECRAFT_RCON_ADDRESS": self.address, "MINECRAFT_RCON_PASSWORD": self.password}

    # -- the game ---------------------------------------------------------------------------

    def answer(self, command: str) -> str:
        with self._lock:
            self.commands.append(command)
            words = command.split()
            if words[:1] == ["whitelist"] and len(words) >= 2:
                return self._whitelist(words[1], words[2] if len(words) > 2 else "")
            if words == ["list"]:
                return "There are 0 of a max of 20 players online: "
            if words[:1] == ["say"]:
                return ""
            if words == ["help"]:
                return "\n".join(HELP_LINES)
            return f"Unknown or incomplete command, see below for error{command}<--[HERE]"

    def _whitelist(self, action: str, player: str) -> str:
        if action == "list":
            if not self.whitelist:
                return "There are no whitelisted players"
            return f"There are {len(self.whitelist)} whitelisted player(s): {', '.join(self.whitelist)}"
        if action in ("add", "remove") and not player:
            return f"Unknown or incomplete command, see below for error whitelist {action}<--[HERE]"
        known = player.lower() in (p.lower() for p in self.whitelist)
        if action == "add":
            if known:
                return "Player is already whitelisted"
            self.whitelist.append(player)
            return f"Added {player} to the whitelist"
        if action == "remove":
            if not known:
                return "Player is not whitelisted"
            self.whitelist[:] = [p for p in self.whitelist if p.lower() != player.lower()]
            return f"Removed {player} from the whitelist"
        return f"Unknown or incomplete command, see below for error whitelist {action}<--[HERE]"

    # -- the protocol -----------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            authed = False
            try:
                while not self._stop.is_set():
                    packet = _read_packet(conn)
                    if packet is None:
                        return
                    request_id, kind, body = packet
                    if self.fault == "silence":
                        continue
                    if kind == SERVERDATA_AUTH:
                        authed = self.fault != "wrong_password" and body.decode("utf-8", "replace") == self.password
                        conn.sendall(encode_packet(request_id if authed else -1, SERVERDATA_AUTH_RESPONSE, b""))
                    elif not authed:
                        return  # Minecraft drops a connection that has not logged in
                    elif self.fault == "no_answer":  # runs it, answers nothing (nor the end marker)
                        if kind == SERVERDATA_EXECCOMMAND:
                            self.answer(body.decode("utf-8", "replace"))
                    elif kind == SERVERDATA_EXECCOMMAND:
                        conn.sendall(self._response(request_id, body.decode("utf-8", "replace")))
                    else:
                        conn.sendall(encode_packet(request_id, 0, f"Unknown request {kind:x}"))
            except OSError:
                return

    def _response(self, request_id: int, command: str) -> bytes:
        text = self.answer(command).encode("utf-8")
        if self.fault == "invalid_utf8":
            text = b"Added \xff\xfe to the whitelist"
        chunks = [text[i:i + self.split_at] for i in range(0, len(text), self.split_at)] or [b""]
        return b"".join(encode_packet(request_id, 0, chunk) for chunk in chunks)

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def start(self) -> RconStandIn:
        self._server = socket.create_server((self.host, self.port))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True, name="rcon-stand-in").start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            with contextlib.suppress(OSError):  # wakes the accept() (close alone does not, on Linux)
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()

    def __enter__(self) -> RconStandIn:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _read_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_packet(conn: socket.socket) -> tuple[int, int, bytes] | None:
    head = _read_exact(conn, 4)
    if head is None:
        return None
    (length,) = struct.unpack("<i", head)
    if not 10 <= length <= 4096 + 10:
        return None
    data = _read_exact(conn, length)
    if data is None:
        return None
    request_id, kind = struct.unpack("<ii", data[:8])
    return request_id, kind, data[8:-2]
