"""The durable inbox: every inbound message is committed here before it is acknowledged.

Same source + same message id again is a duplicate: it is counted, acknowledged again with the
answer already given, and never processed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .database import writer
from .tables import inbox_messages

log = logging.getLogger(__name__)

PARTITIONS = 16  # messages of one person share a partition, drained in order by one worker

STATUSES = ("received", "applied", "failed", "rejected")

_m = inbox_messages.c


def partition_for(person_key: str | None) -> int:
    """Stable partition of a person key (NHS number or source:local id); 0 when unknown."""
    if not person_key:
        return 0
    return zlib.crc32(person_key.encode()) % PARTITIONS


def _insert_or_nothing(dialect_insert: Any) -> Any:
    return (dialect_insert(inbox_messages)
            .on_conflict_do_nothing(index_elements=["source", "message_id"])
            .returning(_m.id))


# Built once: constructing statements per call cost more than SQLite running them.
_INSERT = {"postgresql": _insert_or_nothing(pg_insert),
           "sqlite": _insert_or_nothing(sqlite_insert)}
_FIRST_STORED = select(_m.id, _m.status, _m.ack).where(
    and_(_m.source == bindparam("source"), _m.message_id == bindparam("message_id")))
_FIRST_STORED_PAYLOAD = select(_m.id, _m.status, _m.ack, _m.payload).where(
    and_(_m.source == bindparam("source"), _m.message_id == bindparam("message_id")))
_COUNT_RESENT = (update(inbox_messages).where(_m.id == bindparam("mid"))
                 .values(resent=_m.resent + 1))
_REQUEUE = (update(inbox_messages)
            .where(and_(_m.id == bindparam("mid"), _m.status == bindparam("seen")))
            .values(status="received", error=None, processed_at=None, commands=None))
_MARK = (update(inbox_messages).where(_m.id == bindparam("mid"))
         .values(status=bindparam("status"), error=bindparam("error"),
                 person_ids=bindparam("person_ids"), processed_at=bindparam("now"),
                 attempts=_m.attempts + 1))
_GET = select(inbox_messages).where(_m.id == bindparam("mid"))
_PENDING = (select(_m.id).where(and_(_m.status == "received", _m.id > bindparam("after")))
            .order_by(_m.id).limit(bindparam("limit")))
_PENDING_IN = _PENDING.where(_m.partition == bindparam("partition"))
_LOAD = select(inbox_messages).where(_m.id.in_(bindparam("ids", expanding=True))).order_by(_m.id)
# PostgreSQL locks the rows a batch applies, so two drainers never process one message at
# once; a row locked elsewhere is waited for, never skipped: a resend counted on it (or a
# replay) holds it for a moment, and skipping it applied the person's next message first.
_LOAD_LOCKED = _LOAD.with_for_update()
_NEXT = (select(inbox_messages).where(and_(_m.status == "received", _m.id > bindparam("after")))
         .order_by(_m.id).limit(bindparam("limit")))
_NEXT_IN = _NEXT.where(_m.partition == bindparam("partition"))
# (partition given, PostgreSQL): the query, locked as _LOAD_LOCKED is.
_NEXT_QUERIES = {(False, False): _NEXT, (True, False): _NEXT_IN,
                 (False, True): _NEXT.with_for_update(),
                 (True, True): _NEXT_IN.with_for_update()}


@dataclass(frozen=True)
class Stored:
    id: int
    duplicate: bool
    status: str
    ack: str | None
    # the id was taken by a different message: this is the row ``on_duplicate`` gave instead
    diverted: bool = False


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
    commands: list[Any] | None = None  # [[kind, command JSON], ...] mapped on arrival


def _entry(row: Any) -> InboxEntry:
    return InboxEntry(id=row.id, source=row.source, message_id=row.message_id,
                      channel=row.channel, message_type=row.message_type, payload=row.payload,
                      received_at=row.received_at, status=row.status, attempts=row.attempts,
                      partition=row.partition, error=row.error, ack=row.ack,
                      commands=row.commands)


def bytes_to_keep(text: str, received: bytes) -> bytes | None:
    """What to keep in ``raw`` beside the payload text: None when the text, encoded UTF-8, is
    exactly the bytes received (the usual case), else the bytes themselves."""
    return None if text.encode("utf-8", "surrogateescape") == received else received


def store_message(conn: Connection, *, source: str, message_id: str, channel: str,
                  message_type: str | None, payload: str, received_at: datetime,
                  partition: int = 0, status: str = "received",
                  error: dict[str, Any] | None = None, ack: str | None = None,
                  commands: list[Any] | None = None, raw: bytes | None = None,
                  on_duplicate: Callable[[str], dict[str, Any] | None] | None = None
                  ) -> Stored:
    """Insert in the caller's transaction; on a duplicate return the first one's row.

    ``on_duplicate`` (only consulted when the id is taken, so the usual insert costs
    nothing more) is given the stored payload and says whether this is the same message
    sent again (None: counted as a resend, the first row returned) or a different one
    reusing the id: then it returns the fields of a row to store instead (its own id, so
    nothing is lost), which is stored the same way and returned with ``diverted``."""
    values = {"source": source, "message_id": message_id, "channel": channel,
              "message_type": message_type, "payload": payload, "received_at": received_at,
              "partition": partition, "status": status, "attempts": 0, "resent": 0,
              "error": error, "ack": ack, "commands": commands, "raw": raw}
    new_id = conn.execute(_INSERT[conn.dialect.name], values).scalar()
    if new_id is not None:
        return Stored(id=new_id, duplicate=False, status=status, ack=ack)
    key = {"source": source, "message_id": message_id}
    if on_duplicate is None:
        existing = conn.execute(_FIRST_STORED, key).one()
    else:
        existing = conn.execute(_FIRST_STORED_PAYLOAD, key).one()
        instead = on_duplicate(existing.payload)
        if instead is not None:
            other = store_message(conn, **instead)
            return Stored(id=other.id, duplicate=other.duplicate, status=other.status,
                          ack=other.ack, diverted=True)
    conn.execute(_COUNT_RESENT, {"mid": existing.id})
    return Stored(id=existing.id, duplicate=True, status=existing.status, ack=existing.ack)


class _GroupCommit:
    """Stores from concurrent callers committed in one transaction.

    Whoever finds no commit running commits every row queued so far, its own included; the
    others wait, and return once their row is committed (by them or by an earlier leader).
    One commit per group is one SQLite write-lock hand-off and one PostgreSQL WAL flush
    instead of one per message, and an ACK still waits for its own row's commit.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: list[tuple[dict[str, Any], Future[Stored]]] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()

    def store(self, fields: dict[str, Any]) -> Stored:
        outcome: Future[Stored] = Future()
        with self._queue_lock:
            self._queue.append((fields, outcome))
        with self._leader:
            if not outcome.done():
                with self._queue_lock:
                    group, self._queue = self._queue, []
                try:
                    self._commit(group)
                finally:  # never leave a caller waiting, whatever stopped the commit
                    for _, waiting in group:
                        if not waiting.done():
                            waiting.set_exception(RuntimeError("the store was interrupted"))
        return outcome.result()

    def _commit(self, group: list[tuple[dict[str, Any], Future[Stored]]]) -> None:
        try:
            with writer(self.engine, urgent=True) as conn, conn.begin():
                results = [store_message(conn, **fields) for fields, _ in group]
        except Exception as exc:
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return
            for one in group:  # one bad row must not fail the rows stored with it
                self._commit([one])
            return
        for (_, outcome), result in zip(group, results, strict=True):
            outcome.set_result(result)

    def commit_now(self, group: list[tuple[dict[str, Any], Future[Stored]]]) -> None:
        """Commit a group gathered by someone else (the asyncio path's writer thread)."""
        self._commit(group)


AfterCommit = Callable[[Stored], object]
_Waiting = tuple[dict[str, Any], "asyncio.Future[Stored]", AfterCommit | None]


class _LoopStores:
    """Stores for an asyncio caller (the MLLP listener): queued from the event loop, committed
    by one writer thread a group at a time, answered with one wake-up of the loop per group.

    The thread-pool path cost per message a hand-off to a pool thread, a leader election
    among up to eight threads contending for the GIL, and a wake-up of the loop; here a
    group of frames that arrived together costs one of each, and the loop parses the next
    frames while SQLite or PostgreSQL commits this group (the drivers release the GIL).
    A future is only resolved after its row's commit, so an ACK still means "stored".
    """

    def __init__(self, group: _GroupCommit) -> None:
        self._group = group
        self._queue: list[_Waiting] = []
        self._wake = threading.Condition()
        self._idle = False  # the writer waits for work: only then is it worth a notify
        self._thread: threading.Thread | None = None

    def submit(self, fields: dict[str, Any], after: AfterCommit | None
               ) -> asyncio.Future[Stored]:
        outcome: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        with self._wake:
            self._queue.append((fields, outcome, after))
            if self._thread is None:
                # Daemon: a group is resolved only after its commit, so an exit between
                # commit and ACK loses nothing (the sender re-sends, we see a duplicate).
                self._thread = threading.Thread(target=self._run, name="inbox-writer",
                                                daemon=True)
                self._thread.start()
            elif self._idle:
                self._wake.notify()  # a busy writer looks at the queue again when it is done
        return outcome

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._idle = True
                    self._wake.wait()
                    self._idle = False
                waiting, self._queue = self._queue, []
            try:
                self._store(waiting)
            except BaseException:  # keep serving: a dead writer would leave every sender
                log.exception("inbox writer failed")  # waiting (their futures fail below)
                _fail_all(waiting)

    def _store(self, waiting: list[_Waiting]) -> None:
        group: list[tuple[dict[str, Any], Future[Stored]]] = [
            (fields, Future()) for fields, _, _ in waiting]
        try:
            self._group.commit_now(group)
        except BaseException as exc:  # never leave a sender without an answer
            for _, done in group:
                if not done.done():
                    done.set_exception(exc)
        by_loop: dict[asyncio.AbstractEventLoop,
                      list[tuple[asyncio.Future[Stored], Future[Stored]]]] = {}
        for (_, outcome, _), (_, done) in zip(waiting, group, strict=True):
            by_loop.setdefault(outcome.get_loop(), []).append((outcome, done))
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, pairs)
            except RuntimeError:
                pass  # the loop closed: nobody is waiting for these answers
        for (_, _, after), (_, done) in zip(waiting, group, strict=True):
            if after is not None and done.exception() is None:
                try:
                    after(done.result())  # e.g. a worker hint: may block (a broker publish)
                except Exception:  # the row is stored; the sweeper re-issues lost hints
                    log.exception("after-commit hook failed")


def _fail_all(waiting: list[_Waiting]) -> None:
    error = RuntimeError("the inbox writer failed")
    for _, outcome, _ in waiting:
        loop = outcome.get_loop()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(
                lambda o=outcome: None if o.done() else o.set_exception(error))


def _resolve(pairs: list[tuple[asyncio.Future[Stored], Future[Stored]]]) -> None:
    for outcome, done in pairs:
        if outcome.done():
            continue  # the connection went away (cancelled); the row is stored regardless
        error = done.exception()
        if error is None:
            outcome.set_result(done.result())
        else:
            outcome.set_exception(error)


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._group = _GroupCommit(engine)
        self._loop_stores = _LoopStores(self._group)

    def store(self, **fields: Any) -> Stored:
        """Commit one message (grouped with concurrent callers'); return once committed."""
        return self._group.store(fields)

    def store_async(self, after: AfterCommit | None = None, **fields: Any
                    ) -> asyncio.Future[Stored]:
        """``store`` for a caller on an event loop: the future is done once the row is
        committed (grouped with the others queued meanwhile). ``after`` runs in the writer
        thread once the row is committed, after the group's futures are handed to the loop:
        work that may block (hinting a worker through a broker) stays off the loop and does
        not hold up the ACKs (a hint lost in between is re-issued by the sweeper)."""
        return self._loop_stores.submit(fields, after)

    def record_ack(self, message_id: int, ack: str) -> None:
        """Keep the ACK we sent, so a duplicate gets the same answer and the console shows it."""
        with self.engine.begin() as conn:
            conn.execute(update(inbox_messages).where(_m.id == message_id).values(ack=ack))

    def get(self, message_id: int) -> InboxEntry | None:
        with self.engine.connect() as conn:
            row = conn.execute(_GET, {"mid": message_id}).first()
        return _entry(row) if row else None

    def pending_ids(self, *, partition: int | None = None, limit: int = 500,
                    after_id: int = 0) -> list[int]:
        params: dict[str, Any] = {"after": after_id, "limit": limit}
        query = _PENDING
        if partition is not None:
            query, params["partition"] = _PENDING_IN, partition
        with self.engine.connect() as conn:
            return list(conn.execute(query, params).scalars())

    def pending_partitions(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(_m.partition).where(_m.status == "received")
                .group_by(_m.partition)).scalars())

    def requeue(self, seen: Mapping[int, str]) -> list[int]:
        """Replay: put stored messages back to be processed again from their raw payload
        (the commands mapped on arrival are dropped, so a fixed code map takes effect).

        ``seen``: each message id with the status the caller saw; a message whose status
        moved since (another replay put it back and a worker applied it) is left alone, so
        two replays at once apply it once. The ids put back."""
        done: list[int] = []
        with self.engine.begin() as conn:
            for message_id, status in seen.items():
                if conn.execute(_REQUEUE, {"mid": message_id, "seen": status}).rowcount:
                    done.append(message_id)
        return done

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_m.status, func.count()).group_by(_m.status)).all()
        return {status: count for status, count in rows}


def load_for_processing(conn: Connection, message_id: int) -> InboxEntry | None:
    """Lock the row (PostgreSQL) so two workers never process one message at once."""
    found = load_many_for_processing(conn, [message_id])
    return found[0] if found else None


def load_many_for_processing(conn: Connection, message_ids: Sequence[int]
                             ) -> list[InboxEntry]:
    query = _LOAD_LOCKED if conn.dialect.name == "postgresql" else _LOAD
    return [_entry(row) for row in conn.execute(query, {"ids": list(message_ids)})]


def next_received(conn: Connection, *, partition: int | None, after_id: int, limit: int
                  ) -> list[InboxEntry]:
    """The next ``received`` rows after ``after_id`` in arrival order, in the caller's
    transaction (locked on PostgreSQL)."""
    query = _NEXT_QUERIES[partition is not None, conn.dialect.name == "postgresql"]
    params: dict[str, Any] = {"after": after_id, "limit": limit}
    if partition is not None:
        params["partition"] = partition
    return [_entry(row) for row in conn.execute(query, params)]


@dataclass(frozen=True)
class Mark:
    """A processed message's new status, written with the others of its batch at once."""

    message_id: int
    status: str
    error: dict[str, Any] | None = None
    person_ids: list[str] | None = None


def mark_many(conn: Connection, marks: Sequence[Mark], *, now: datetime) -> None:
    if marks:
        conn.execute(_MARK, [{"mid": m.message_id, "status": m.status, "error": m.error,
                              "person_ids": m.person_ids, "now": now} for m in marks])


def mark(conn: Connection, message_id: int, *, status: str, now: datetime,
         error: dict[str, Any] | None = None, person_ids: list[str] | None = None) -> None:
    mark_many(conn, [Mark(message_id, status, error, person_ids)], now=now)
