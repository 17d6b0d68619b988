"""The gateway: a websocket speaking Discord's gateway protocol (v10, JSON, zlib-stream).

One bot, one or more shards: per shard id, the latest IDENTIFY owns that shard's *current
session*, and a guild's events go only to the shard ``(guild_id >> 22) % shard_count``
(DMs to shard 0), as on Discord. Dispatches go out through a single sender task, so they
reach the bot in the order they were injected. A dispatch that cannot be written (no
live socket on its shard) waits in a backlog: a RESUME replays the session's history
after the client's sequence number, a new IDENTIFY receives whatever the old session
never delivered. No injected event is lost across drops, op 7 reconnects or op 9
invalid sessions. An IDENTIFY with an invalid ``shard`` is closed with 4010; one whose
shard would hold more guilds than ``sharding_threshold`` with 4011 (sharding required).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from localdev.discord_emulator.models import JSON, World
from localdev.discord_emulator.snowflake import shard_of

_log = logging.getLogger(__name__)

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_RECONNECT, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 7, 9, 10, 11
CLOSE_AUTH_FAILED, CLOSE_INVALID_SHARD, CLOSE_SHARDING_REQUIRED = 4004, 4010, 4011
SHARDING_THRESHOLD = 2500  # Discord: bots in this many guilds must shard
HISTORY_LIMIT = 5000  # dispatches a session keeps for RESUME replay


@dataclass(frozen=True)
class ShardConfig:
    """What the emulated Discord tells and demands of a bot about sharding."""

    recommended: int = 1  # GET /gateway/bot "shards"
    threshold: int = SHARDING_THRESHOLD  # more guilds on one connection: close 4011
    max_concurrency: int = 1  # session_start_limit.max_concurrency


@dataclass
class Dispatch:
    """One event the emulator wants the bot to see."""

    event: str
    data: JSON
    created: float = field(default_factory=time.monotonic)
    sent_at: float | None = None  # monotonic time it was first written to a live socket
    delivered: bool = False  # written to a live socket at least once


class Connection:
    """One websocket: compression context and a lock so frames never interleave."""

    def __init__(
        self, ws: web.WebSocketResponse, compress: str | None, transport: asyncio.BaseTransport | None
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.compress = compress
        self._zlib = zlib.compressobj() if compress == "zlib-stream" else None
        self._lock = asyncio.Lock()
        self.session: Session | None = None

    async def send(self, payload: JSON) -> None:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        async with self._lock:
            if self._zlib is not None:
                # zlib-stream: one shared context per connection, each message ends in a sync flush.
                data = self._zlib.compress(text.encode("utf-8")) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_str(text)

    @property
    def open(self) -> bool:
        return not self.ws.closed


@dataclass
class Session:
    session_id: str
    intents: int | None
    shard_id: int = 0
    seq: int = 0
    history: deque[tuple[int, Dispatch]] = field(default_factory=lambda: deque(maxlen=HISTORY_LIMIT))
    conn: Connection | None = None
    live: bool = False  # READY (or RESUMED) sent: dispatches may go straight out
    resumable: bool = True

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class Gateway:
    """Websocket handler plus the session/backlog bookkeeping. Runs on the emulator's loop."""

    def __init__(
        self,
        world: World,
        *,
        token_ok: Callable[[str], bool],
        gateway_url: Callable[[], str],
        heartbeat_interval_ms: int,
        shards: ShardConfig | None = None,
    ) -> None:
        self.world = world
        self.shards = shards or ShardConfig()
        self._token_ok = token_ok
        self._gateway_url = gateway_url
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.identify_payloads: list[JSON] = []
        self.identify_times: list[tuple[float, int]] = []  # (monotonic arrival, shard id) per IDENTIFY
        self.resume_payloads: list[JSON] = []
        self.heartbeats: list[float] = []  # monotonic receive times, to spot a blocked client loop
        self.shard_heartbeats: dict[int, list[float]] = {}  # the same, per shard (after its IDENTIFY)
        self.connections: set[Connection] = set()
        self.compress_modes: list[str | None] = []  # transport compression of each connection, in order
        self.sessions: dict[int, Session] = {}  # shard id -> its current session
        self.shard_count = 1  # of the latest IDENTIFY
        self.handshake_holds: dict[int, float] = {}  # shard id -> seconds its next handshake waits
        self._backlog: list[Dispatch] = []
        self._outbox: asyncio.Queue[Dispatch] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self.identified = asyncio.Event()
        self.ready_count = 0  # READY + RESUMED handshakes completed

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(), name="emulator-gateway-sender")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"emulator shutting down")

    @property
    def current(self) -> Session | None:
        """Shard 0's session (the only one of an unsharded bot)."""
        return self.sessions.get(0)

    def shard_for(self, item: Dispatch) -> int:
        guild_id = self.world.guild_of(item.data)
        return 0 if guild_id is None else shard_of(guild_id, self.shard_count)

    # -- dispatching -------------------------------------------------------------------------

    def dispatch(self, event: str, data: JSON) -> Dispatch:
        """Queue an event for the bot (call on the emulator's loop). Order is preserved."""
        item = Dispatch(event, data)
        self._outbox.put_nowait(item)
        return item

    async def _send_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            try:
                await self._deliver(item)
            except Exception:  # keep the sender alive whatever one event does
                _log.exception("emulator: failed to deliver %s", item.event)

    async def _deliver(self, item: Dispatch) -> None:
        sess = self.sessions.get(self.shard_for(item))
        if sess is None:
            self._backlog.append(item)
            return
        if sess.live and sess.conn is not None:
            seq = sess.next_seq()
            sess.history.append((seq, item))
            if await self._write(sess.conn, seq, item):
                return
        elif sess.conn is None:
            # Disconnected: give it a sequence number now so a RESUME replays it in order.
            sess.history.append((sess.next_seq(), item))
        # (A handshake in progress drains the backlog itself before going live.)
        self._backlog.append(item)

    async def _write(self, conn: Connection, seq: int, item: Dispatch) -> bool:
        if not conn.open:
            return False
        try:
            await conn.send({"op": OP_DISPATCH, "t": item.event, "s": seq, "d": item.data})
        except (ConnectionError, RuntimeError) as exc:
            _log.debug("emulator: write failed (%s); keeping %s for redelivery", exc, item.event)
            return False
        if item.sent_at is None:
            item.sent_at = time.monotonic()
        item.delivered = True
        return True

    # -- faults ------------------------------------------------------------------------------

    def _live_conn(self, shard_id: int) -> Connection | None:
        sess = self.sessions.get(shard_id)
        return sess.conn if sess is not None and sess.conn is not None and sess.conn.open else None

    async def drop_connection(self, code: int | None = 4000, shard_id: int = 0, hold_s: float = 0.0) -> bool:
        """Close a shard's socket: with a close code, or (code=None) abruptly, as a 1006.

        ``hold_s``: answer that shard's next RESUME/IDENTIFY only after so many seconds
        (a gateway slow to take the bot back), so the outage is observable.
        """
        conn = self._live_conn(shard_id)
        if conn is None:
            return False
        if hold_s > 0:
            self.handshake_holds[shard_id] = hold_s
        self._detach(conn)
        if code is None:
            # No close frame: the client sees an abnormal closure (1006), as on a network cut.
            if isinstance(conn.transport, asyncio.Transport):
                conn.transport.abort()
        else:
            await conn.ws.close(code=code, message=b"emulator: connection dropped")
        return True

    async def send_reconnect(self, shard_id: int = 0) -> bool:
        conn = self._live_conn(shard_id)
        if conn is None:
            return False
        await conn.send({"op": OP_RECONNECT, "d": None})
        self._hold(conn)
        return True

    async def send_invalid_session(self, resumable: bool, shard_id: int = 0) -> bool:
        conn = self._live_conn(shard_id)
        if conn is None:
            return False
        if not resumable and conn.session is not None:
            conn.session.resumable = False
        await conn.send({"op": OP_INVALID_SESSION, "d": resumable})
        self._hold(conn)
        return True

    def _hold(self, conn: Connection) -> None:
        """Stop writing to a socket the client is about to close: what it would not read is
        kept in the backlog for the RESUME or the new session instead of being lost."""
        if conn.session is not None and conn.session.conn is conn:
            conn.session.live = False

    def _detach(self, conn: Connection) -> None:
        sess = conn.session
        if sess is not None and sess.conn is conn:
            sess.conn = None
            sess.live = False

    # -- the websocket -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        compress = request.query.get("compress")
        if compress not in (None, "zlib-stream"):
            # discord.py only decompresses binary frames: plain text frames always work.
            _log.info("emulator: compress=%s not supported, sending uncompressed text", compress)
            compress = None
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = Connection(ws, compress, request.transport)
        self.compress_modes.append(compress)
        self.connections.add(conn)
        _log.debug("gateway connection v=%s encoding=%s compress=%s",
                   request.query.get("v"), request.query.get("encoding"), compress)
        try:
            await conn.send({"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                await self._on_payload(conn, payload)
        except ConnectionError:
            pass  # the client went away mid-write; a RESUME or new IDENTIFY picks up from the backlog
        finally:
            self._detach(conn)
            self.connections.discard(conn)
        return ws

    async def _on_payload(self, conn: Connection, payload: JSON) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == OP_HEARTBEAT:
            self.heartbeats.append(now := time.monotonic())
            if conn.session is not None:
                self.shard_heartbeats.setdefault(conn.session.shard_id, []).append(now)
            await conn.send({"op": OP_HEARTBEAT_ACK})
        elif op == OP_IDENTIFY and isinstance(data, dict):
            await self._identify(conn, data)
        elif op == OP_RESUME and isinstance(data, dict):
            await self._resume(conn, data)
        else:
            _log.debug("gateway: ignoring op %s", op)  # presence, voice state, member requests

    def _shard(self, data: JSON) -> tuple[int, int] | None:
        """The IDENTIFY's ``[shard_id, shard_count]`` (default [0, 1]); None when invalid."""
        shard = data.get("shard", [0, 1])
        valid = (isinstance(shard, list) and len(shard) == 2 and all(type(n) is int for n in shard)
                 and 0 <= shard[0] < shard[1])
        return (shard[0], shard[1]) if valid else None

    async def _handshake_delay(self, shard_id: int) -> None:
        if (delay := self.handshake_holds.pop(shard_id, 0.0)) > 0:
            await asyncio.sleep(delay)

    async def _identify(self, conn: Connection, data: JSON) -> None:
        token = str(data.get("token", ""))
        self.identify_payloads.append({**data, "token": "***"})
        shard_field = data.get("shard")
        self.identify_times.append((time.monotonic(), shard_field[0] if isinstance(shard_field, list)
                                    and shard_field and isinstance(shard_field[0], int) else 0))
        if not self._token_ok(token.removeprefix("Bot ")):
            await conn.ws.close(code=CLOSE_AUTH_FAILED, message=b"Authentication failed.")
            return
        shard = self._shard(data)
        if shard is None:
            await conn.ws.close(code=CLOSE_INVALID_SHARD, message=b"Invalid shard.")
            return
        shard_id, count = shard
        world = self.world
        guilds = [g for g in world.guilds.values() if shard_of(g.id, count) == shard_id]
        if len(guilds) > self.shards.threshold:
            await conn.ws.close(code=CLOSE_SHARDING_REQUIRED, message=b"Sharding required.")
            return
        await self._handshake_delay(shard_id)
        intents = data.get("intents")
        sess = Session(session_id=secrets.token_hex(16), intents=intents if isinstance(intents, int) else None,
                       shard_id=shard_id)
        sess.conn, conn.session = conn, sess
        self.sessions[shard_id], self.shard_count = sess, count
        ready = {
            "v": 10,
            "user": world.bot.payload(),
            "guilds": [{"id": g.id, "unavailable": True} for g in guilds],
            "session_id": sess.session_id,
            "resume_gateway_url": self._gateway_url(),
            "session_type": "normal",
            "shard": [shard_id, count],
            "application": {"id": world.application_id, "flags": world.application_payload()["flags"]},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
            "user_settings": {},
            "_trace": ["discord-emulator"],
        }
        await conn.send({"op": OP_DISPATCH, "t": "READY", "s": sess.next_seq(), "d": ready})
        for guild in guilds:
            await conn.send({"op": OP_DISPATCH, "t": "GUILD_CREATE", "s": sess.next_seq(),
                             "d": world.guild_payload(guild)})
        pending = [d for d in self._backlog if self.shard_for(d) == shard_id]
        self._backlog = [d for d in self._backlog if self.shard_for(d) != shard_id]
        await self._go_live(sess, conn, pending)
        self.ready_count += 1
        self.identified.set()
        _log.info("gateway: shard %d/%d identified (session %s…, intents=%s)",
                  shard_id, count, sess.session_id[:6], intents)

    async def _resume(self, conn: Connection, data: JSON) -> None:
        self.resume_payloads.append({**data, "token": "***"})
        sess = next((x for x in self.sessions.values() if x.session_id == data.get("session_id")), None)
        token = str(data.get("token", "")).removeprefix("Bot ")
        if not self._token_ok(token):
            await conn.ws.close(code=CLOSE_AUTH_FAILED, message=b"Authentication failed.")
            return
        if sess is None or not sess.resumable or self.sessions.get(sess.shard_id) is not sess:
            await conn.send({"op": OP_INVALID_SESSION, "d": False})
            return
        await self._handshake_delay(sess.shard_id)
        if sess.conn is not None and sess.conn is not conn:
            old = sess.conn
            self._detach(old)
            with contextlib.suppress(Exception):
                await old.ws.close(code=4000)
        raw_seq = data.get("seq")
        client_seq = raw_seq if isinstance(raw_seq, int) else 0
        sess.conn, conn.session = conn, sess
        # Replay everything after the client's sequence (what it missed while away).
        for seq, item in list(sess.history):
            if seq > client_seq:
                await self._write(conn, seq, item)
        self._backlog = [d for d in self._backlog if not d.delivered]
        pending = [d for d in self._backlog if self.shard_for(d) == sess.shard_id]
        self._backlog = [d for d in self._backlog if self.shard_for(d) != sess.shard_id]
        await conn.send({"op": OP_DISPATCH, "t": "RESUMED", "s": sess.next_seq(), "d": {"_trace": ["emulator"]}})
        await self._go_live(sess, conn, pending)
        self.ready_count += 1
        _log.info("gateway: session %s… resumed from seq %s", sess.session_id[:6], client_seq)

    async def _go_live(self, sess: Session, conn: Connection, pending: list[Dispatch]) -> None:
        """Deliver what waited, then let the sender write directly (no await in between)."""
        for item in pending:
            if item.delivered:
                continue
            seq = sess.next_seq()
            sess.history.append((seq, item))
            if not await self._write(conn, seq, item):
                self._backlog.append(item)
        # Events of this shard the sender backlogged while we were writing above.
        while conn.open and (waiting := self._next_backlogged(sess.shard_id)) is not None:
            seq = sess.next_seq()
            sess.history.append((seq, waiting))
            if not await self._write(conn, seq, waiting):
                self._backlog.insert(0, waiting)
                return
        sess.live = conn.open

    def _next_backlogged(self, shard_id: int) -> Dispatch | None:
        self._backlog = [d for d in self._backlog if not d.delivered]
        for i, item in enumerate(self._backlog):
            if self.shard_for(item) == shard_id:
                return self._backlog.pop(i)
        return None
