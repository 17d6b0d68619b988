"""Reminders: rows in the ``reminders`` table, fired by delayed messages on ``reminders-due``.

Durable and exact without a timer in any process's memory:
- ``!remindme`` stores a row (PartitionKey = the guild, ``dm-<channel>`` in a DM; RowKey =
  the reminder id, derived from the Discord message/interaction id, so a redelivered command
  stores it once) and puts a message on ``reminders-due`` that stays invisible until the
  reminder is due: Azure Storage's visibility timeout, at most 7 days. The message never
  expires (TTL -1). Storage keeps both through any restart of our processes.
- The ``reminders_due`` function (function_runtime/reminders_due.py) receives it when it
  becomes visible. A reminder further out than 7 days is re-armed (a new message with the
  next delay) until it is due; a due one is claimed with an ETag-conditional update (one
  invocation wins, exactly once), posted with a nonce derived from its id, and marked posted.
  If posting fails transiently the queue redelivers that message and it posts again
  (``claimed_by`` = its message id; Discord's nonce drops a double); another copy of the
  message takes over a claim left unposted for :data:`CLAIM_LEASE_S`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from function_runtime.tables import LazyTable
from shared.queues import queue_client
from shared.registry import REMINDERS_DUE_QUEUE, REMINDERS_TABLE
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

_log = logging.getLogger(__name__)

MAX_VISIBILITY = timedelta(days=7)  # Azure Queue Storage's longest visibility timeout
CLAIM_LEASE_S = 60.0  # a claim not posted after this long is taken over by another copy
MESSAGE_VERSION = 1


def reminder_id(source_id: str) -> str:
    """A short id (8 base32 characters) derived from the Discord message or interaction id."""
    digest = hashlib.sha256(f"reminder:{source_id}".encode()).digest()
    return base64.b32encode(digest).decode().lower()[:8]


def partition_for(guild: str | None, channel: str) -> str:
    return guild or f"dm-{channel}"


@dataclass(frozen=True)
class Reminder:
    id: str
    partition: str
    author: str
    author_name: str
    channel: str
    text: str
    due: datetime
    created: datetime
    source: str  # the Discord message or interaction id that created it
    traceparent: str = ""  # the creating command's span, for the firing trace's link
    tracestate: str = ""
    claimed_by: str = ""  # the reminders-due message id that claimed it ("" = not fired)
    claimed_at: datetime | None = None
    posted: bool = False
    cancelled: bool = False
    etag: str = ""

    @property
    def pending(self) -> bool:
        return not (self.claimed_by or self.posted or self.cancelled)

    def entity(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "PartitionKey": self.partition, "RowKey": self.id, "author": self.author,
            "author_name": self.author_name, "channel": self.channel, "text": self.text, "due": self.due,
            "created": self.created, "source": self.source, "traceparent": self.traceparent,
            "tracestate": self.tracestate, "claimed_by": self.claimed_by, "posted": self.posted,
            "cancelled": self.cancelled, "pending": self.pending,
        }
        if self.claimed_at is not None:
            out["claimed_at"] = self.claimed_at
        return out

    @classmethod
    def from_entity(cls, entity: Any) -> Reminder:
        def when(key: str) -> datetime | None:
            value = entity.get(key)
            return datetime.fromtimestamp(value.timestamp(), UTC) if isinstance(value, datetime) else None

        return cls(
            id=entity["RowKey"], partition=entity["PartitionKey"], author=entity["author"],
            author_name=entity.get("author_name", ""), channel=entity["channel"], text=entity["text"],
            due=when("due") or datetime.now(UTC), created=when("created") or datetime.now(UTC),
            source=entity.get("source", ""), traceparent=entity.get("traceparent", ""),
            tracestate=entity.get("tracestate", ""), claimed_by=entity.get("claimed_by", ""),
            claimed_at=when("claimed_at"), posted=bool(entity.get("posted")),
            cancelled=bool(entity.get("cancelled")), etag=str(entity.metadata.get("etag", "")),
        )


def due_message(reminder: Reminder) -> str:
    return json.dumps({"v": MESSAGE_VERSION, "partition": reminder.partition, "id": reminder.id,
                       "due": reminder.due.isoformat()})


def parse_due_message(body: bytes | str) -> tuple[str, str]:
    """(partition, reminder id) from a ``reminders-due`` message; ValueError when it is not one."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or doc.get("v") != MESSAGE_VERSION:
        raise ValueError("not a version-1 reminders-due message")
    partition, rid = doc.get("partition"), doc.get("id")
    if not isinstance(partition, str) or not isinstance(rid, str) or not partition or not rid:
        raise ValueError("partition and id: expected non-empty strings")
    return partition, rid


def delay_until(due: datetime, now: datetime) -> int:
    """The visibility timeout for a message that should appear at ``due``: whole seconds, never
    early (rounded up), at most 7 days (the rest is a re-arm), 0 when already due."""
    seconds = (due - now).total_seconds()
    return max(0, min(math.ceil(seconds), int(MAX_VISIBILITY.total_seconds())))


class ReminderStore:
    """The ``reminders`` table and the ``reminders-due`` queue (clients built on first use)."""

    def __init__(self, storage: StorageSettings, *, table: str = REMINDERS_TABLE,
                 due_queue: str = REMINDERS_DUE_QUEUE) -> None:
        self._storage = storage
        self._queue_name = due_queue
        self._lock = threading.Lock()
        self._table = LazyTable(storage, table)
        self._queue: QueueClient | None = None

    # -- clients ----------------------------------------------------------------------------

    def table(self) -> TableClient:
        return self._table()

    def queue(self) -> QueueClient:
        with self._lock:
            if self._queue is None:
                from azure.core.exceptions import ResourceExistsError

                self._queue = queue_client(self._storage, self._queue_name)
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
            return self._queue

    # -- rows -------------------------------------------------------------------------------

    def get(self, partition: str, rid: str) -> Reminder | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return Reminder.from_entity(self.table().get_entity(partition, rid))
        except ResourceNotFoundError:
            return None

    def pending(self, partition: str, author: str | None = None) -> list[Reminder]:
        """Pending reminders in a guild (of one author), soonest first."""
        query = "PartitionKey eq @pk and pending eq true"
        params: dict[str, Any] = {"pk": partition}
        if author is not None:
            query += " and author eq @author"
            params["author"] = author
        rows = self.table().query_entities(query, parameters=params)
        return sorted((Reminder.from_entity(e) for e in rows), key=lambda r: r.due)

    def add(self, reminder: Reminder) -> Reminder:
        """Store it; when it already exists (a redelivered command) the stored one is returned."""
        from azure.core.exceptions import ResourceExistsError

        try:
            meta = self.table().create_entity(reminder.entity())
        except ResourceExistsError:
            existing = self.get(reminder.partition, reminder.id)
            if existing is None:
                raise
            return existing
        return replace(reminder, etag=str(meta.get("etag", "")))

    def arm(self, reminder: Reminder, now: datetime | None = None) -> int:
        """Put its ``reminders-due`` message, invisible until due (or 7 days); the delay in seconds."""
        delay = delay_until(reminder.due, now or datetime.now(UTC))
        self.queue().send_message(due_message(reminder), visibility_timeout=delay, time_to_live=-1)
        return delay

    def cancel(self, reminder: Reminder) -> bool:
        """Cancel a pending reminder; False when it fired (or was cancelled) meanwhile."""
        return self._update(reminder, cancelled=True, pending=False)

    def claim(self, reminder: Reminder, message_id: str, now: datetime) -> bool:
        """Take the firing of ``reminder`` for this queue message; False when another took it first."""
        return self._update(reminder, claimed_by=message_id, claimed_at=now, pending=False)

    def mark_posted(self, reminder: Reminder) -> None:
        self._update(reminder, posted=True, pending=False, conditional=False)

    def _update(self, reminder: Reminder, *, conditional: bool = True, **fields: Any) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": reminder.partition, "RowKey": reminder.id, **fields}
        try:
            if conditional:
                self.table().update_entity(entity, mode=UpdateMode.MERGE, etag=reminder.etag,
                                           match_condition=MatchConditions.IfNotModified)
            else:
                self.table().update_entity(entity, mode=UpdateMode.MERGE)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True


_stores: dict[StorageSettings, ReminderStore] = {}
_stores_lock = threading.Lock()


def store_for(storage: StorageSettings) -> ReminderStore:
    """One store per storage account per process (its clients are reused by every invocation)."""
    with _stores_lock:
        return _stores.setdefault(storage, ReminderStore(storage))

