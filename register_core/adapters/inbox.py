"""The durable inbox: every inbound message is committed here before it is acknowledged.

Same source + same message id again is a duplicate: it is counted, acknowledged again with the
answer already given, and never processed twice.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .database import writer
from .tables import inbox_messages

PARTITIONS = 16  # messages of one person share a partition, drained in order by one worker

STATUSES = ("received", "applied", "failed", "rejected")


def partition_for(person_key: str | None) -> int:
    """Stable partition of a person key (NHS number or source:local id); 0 when unknown."""
    if not person_key:
        return 0
    return zlib.crc32(person_key.encode()) % PARTITIONS


def _insert_or_nothing(dialect_insert: Any) -> Any:
    """Built once (per call it cost more than SQLite's insert): duplicates return no id."""
    return (dialect_insert(inbox_messages)
            .on_conflict_do_nothing(index_elements=["source", "message_id"])
            .returning(inbox_messages.c.id))


_INSERT_PG = _insert_or_nothing(pg_insert)
_INSERT_SQLITE = _insert_or_nothing(sqlite_insert)


@dataclass(frozen=True)
class Stored:
    id: int
    duplicate: bool
    status: str
    ack: str | None


@dataclass(frozen=True)
class InboxEntry:
    id: int
    source: str
    message_id: str
    channel: str
    message_type: str | None
    payload: str
    received_at: datetime
    status: str
    attempts: int
    partition: int
    error: dict[str, Any] | None = None
    ack: str | None = None


def _entry(row: Any) -> InboxEntry:
    return InboxEntry(id=row.id, source=row.source, message_id=row.message_id,
                      channel=row.channel, message_type=row.message_type, payload=row.payload,
                      received_at=row.received_at, status=row.status, attempts=row.attempts,
                      partition=row.partition, error=row.error, ack=row.ack)


def store_message(conn: Connection, *, source: str, message_id: str, channel: str,
                  message_type: str | None, payload: str, received_at: datetime,
                  partition: int = 0, status: str = "received",
                  error: dict[str, Any] | None = None, ack: str | None = None) -> Stored:
    """Insert in the caller's transaction; on a duplicate return the first one's row."""
    values = {"source": source, "message_id": message_id, "channel": channel,
              "message_type": message_type, "payload": payload, "received_at": received_at,
              "partition": partition, "status": status, "attempts": 0, "resent": 0,
              "error": error, "ack": ack}
    stmt = _INSERT_PG if conn.dialect.name == "postgresql" else _INSERT_SQLITE
    new_id = conn.execute(stmt, values).scalar()
    if new_id is not None:
        return Stored(id=new_id, duplicate=False, status=status, ack=ack)
    existing = conn.execute(
        select(inbox_messages.c.id, inbox_messages.c.status, inbox_messages.c.ack)
        .where(and_(inbox_messages.c.source == source,
                    inbox_messages.c.message_id == message_id))).one()
    conn.execute(update(inbox_messages).where(inbox_messages.c.id == existing.id)
                 .values(resent=inbox_messages.c.resent + 1))
    return Stored(id=existing.id, duplicate=True, status=existing.status, ack=existing.ack)


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def store(self, **fields: Any) -> Stored:
        with writer(self.engine, urgent=True) as conn, conn.begin():
            return store_message(conn, **fields)

    def record_ack(self, message_id: int, ack: str) -> None:
        """Keep the ACK we sent, so a duplicate gets the same answer and the console shows it."""
        with self.engine.begin() as conn:
            conn.execute(update(inbox_messages).where(inbox_messages.c.id == message_id)
                         .values(ack=ack))

    def get(self, message_id: int) -> InboxEntry | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(inbox_messages)
                               .where(inbox_messages.c.id == message_id)).first()
        return _entry(row) if row else None

    def pending_ids(self, *, partition: int | None = None, limit: int = 500,
                    after_id: int = 0) -> list[int]:
        query = (select(inbox_messages.c.id)
                 .where(and_(inbox_messages.c.status == "received",
                             inbox_messages.c.id > after_id))
                 .order_by(inbox_messages.c.id).limit(limit))
        if partition is not None:
            query = query.where(inbox_messages.c.partition == partition)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def pending_partitions(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(inbox_messages.c.partition).where(inbox_messages.c.status == "received")
                .group_by(inbox_messages.c.partition)).scalars())

    def requeue(self, ids: Sequence[int]) -> int:
        """Replay: put stored messages back to be processed again from their raw payload."""
        if not ids:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(update(inbox_messages)
                                  .where(inbox_messages.c.id.in_(list(ids)))
                                  .values(status="received", error=None, processed_at=None))
            return result.rowcount

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(inbox_messages.c.status, func.count())
                                .group_by(inbox_messages.c.status)).all()
        return {status: count for status, count in rows}


def load_for_processing(conn: Connection, message_id: int) -> InboxEntry | None:
    """Lock the row (PostgreSQL) so two workers never process one message at once."""
    query = select(inbox_messages).where(inbox_messages.c.id == message_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = conn.execute(query).first()
    return _entry(row) if row else None


def load_many_for_processing(conn: Connection, message_ids: Sequence[int]
                             ) -> list[InboxEntry]:
    query = (select(inbox_messages).where(inbox_messages.c.id.in_(list(message_ids)))
             .order_by(inbox_messages.c.id))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [_entry(row) for row in conn.execute(query)]


def mark(conn: Connection, message_id: int, *, status: str, now: datetime,
         error: dict[str, Any] | None = None, person_ids: list[str] | None = None) -> None:
    conn.execute(update(inbox_messages).where(inbox_messages.c.id == message_id).values(
        status=status, error=error, person_ids=person_ids, processed_at=now,
        attempts=inbox_messages.c.attempts + 1))
