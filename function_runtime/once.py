"""At most once per Discord message: claims on a command's side effects in the ``commandruns`` table.

Queues are at-least-once, and while a new listener revision rolls out two listeners may both
enqueue one Discord message. A side effect that must not happen twice (an RCON command) is
claimed first: :meth:`RunStore.claim` creates the row (PartitionKey = the command, RowKey = the
Discord message or interaction id plus a hash of the action) with state ``running``; creating a
row that exists fails, so exactly one invocation wins. The winner does the work and stores its
answer (:meth:`RunStore.finish`, state ``done``) or, when the work certainly did not happen,
deletes the row (:meth:`RunStore.release`) so that a redelivery may try again.

A loser gets the row back (:class:`PreviousRun`): ``done`` with the stored answer, or
``running``: another invocation is on it right now (it waits up to ``wait_s`` for it to finish),
or one crashed between the side effect and storing its answer, which is then lost for good.

Each claim carries a random token: when the SDK retries a ``create_entity`` whose first try
did land, the row found is the caller's own and the claim stands.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from function_runtime.tables import LazyTable
from shared.registry import COMMAND_RUNS_TABLE
from shared.settings import StorageSettings

RUNNING, DONE = "running", "done"
ANSWER_CHARS = 4000  # a reply is at most 2,000 characters; a table property at most 32K
POLL_S = 0.25


@dataclass(frozen=True)
class Claim:
    """This invocation owns the side effect: do it, then :meth:`RunStore.finish` or :meth:`RunStore.release`."""

    partition: str
    row: str
    token: str
    etag: str


@dataclass(frozen=True)
class PreviousRun:
    """Another invocation claimed it: ``done`` (``answer`` is what it answered) or still ``running``."""

    state: str
    answer: str
    started_at: datetime | None


def row_key(source_id: str, action: str) -> str:
    """The Discord message/interaction id and 16 hex digits of the action (table keys forbid ``/``, ``#``...)."""
    return f"{source_id}-{hashlib.sha256(action.encode()).hexdigest()[:16]}"


class RunStore:
    """The ``commandruns`` table (its client built on first use: ``table()``)."""

    def __init__(self, storage: StorageSettings, *, table: str = COMMAND_RUNS_TABLE) -> None:
        self.table = LazyTable(storage, table)

    def claim(self, command: str, source_id: str, action: str, *, wait_s: float = 0.0) -> Claim | PreviousRun:
        """Claim ``action`` for this message, or what became of the claim that won.

        A ``running`` claim younger than ``wait_s`` is waited for (another invocation of the
        same message is running it now); after that it is returned as it is."""
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        partition, row, token = command, row_key(source_id, action), uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        for attempt in range(1000):
            try:
                meta = self.table().create_entity({
                    "PartitionKey": partition, "RowKey": row, "state": RUNNING, "action": action[:1024],
                    "source": source_id, "token": token, "started_at": datetime.now(UTC),
                })
                return Claim(partition, row, token, str(meta.get("etag", "")))
            except ResourceExistsError:
                pass
            try:
                entity = self.table().get_entity(partition, row)
            except ResourceNotFoundError:  # released meanwhile: claim it again
                if attempt < 2 or time.monotonic() < deadline:
                    continue
                raise
            if entity.get("token") == token:  # our own create, retried by the SDK after it landed
                return Claim(partition, row, token, str(entity.metadata.get("etag", "")))
            previous = _previous(entity)
            age = (datetime.now(UTC) - previous.started_at).total_seconds() if previous.started_at else wait_s
            if previous.state == DONE or age >= wait_s or time.monotonic() >= deadline:
                return previous
            time.sleep(POLL_S)
        raise RuntimeError(f"claim {partition}/{row}: no answer after 1000 attempts")

    def finish(self, claim: Claim, answer: str) -> None:
        """Store the answer: the claim is ``done``, and a redelivery answers with it."""
        from azure.data.tables import UpdateMode

        self.table().update_entity({"PartitionKey": claim.partition, "RowKey": claim.row, "state": DONE,
                                    "answer": answer[:ANSWER_CHARS], "finished_at": datetime.now(UTC)},
                                   mode=UpdateMode.MERGE)

    def release(self, claim: Claim) -> None:
        """Delete the claim (the side effect did not happen): a redelivery may try again."""
        from azure.core import MatchConditions

        self.table().delete_entity(claim.partition, claim.row, etag=claim.etag,
                                   match_condition=MatchConditions.IfNotModified)

    def get(self, command: str, source_id: str, action: str) -> PreviousRun | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return _previous(self.table().get_entity(command, row_key(source_id, action)))
        except ResourceNotFoundError:
            return None


def _previous(entity: Any) -> PreviousRun:
    started = entity.get("started_at")
    return PreviousRun(state=str(entity.get("state", RUNNING)), answer=str(entity.get("answer", "")),
                       started_at=datetime.fromtimestamp(started.timestamp(), UTC)
                       if isinstance(started, datetime) else None)


_stores: dict[StorageSettings, RunStore] = {}
_stores_lock = threading.Lock()


def runs_for(storage: StorageSettings) -> RunStore:
    """One store per storage account per process (its client is reused by every invocation)."""
    with _stores_lock:
        return _stores.setdefault(storage, RunStore(storage))
