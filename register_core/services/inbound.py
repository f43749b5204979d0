"""Processing stored inbound messages: map, apply, and mark the inbox row in ONE transaction.

Because the register change and the inbox status commit together, a worker that dies midway
leaves the row ``received`` and the register untouched; the sweeper re-issues it. A message
already ``applied`` is never applied again (replay re-opens it on purpose).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine

from mapping.errors import MappingError
from register_core.adapters import inbox
from register_core.adapters.database import urgent_writers_waiting
from register_core.adapters.subscriptions import load_all as load_subscriptions
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.codec import command_from_json
from register_core.domain.commands import Command
from register_core.domain.errors import ConcurrentChange, RegisterError
from register_core.domain.model import Person
from register_core.domain.position import Policy, Position
from register_core.ports import Clock

from .handlers import Applied, record_command
from .identity import identities_of, prefetch_candidates
from .outbound import enqueue_status_changes
from .reconcile import reconcile_person, sync_people

log = logging.getLogger(__name__)

# How long a batch holds SQLite's one write lock; an ACK waiting to store queues behind it.
# Yielding to such a writer after every message (as before) made batches of one or two, and
# a batch's commit costs as much as applying a couple of messages (SQLite writes each page
# it touched to the WAL): 20 ms batches doubled the MLLP throughput with everything in one
# process, because the listener's own stores then commit several messages at once. 50 ms
# lets the batch the drainer's longer linger gathers (~40 messages) go in one transaction;
# the MLLP listener keeps parsing meanwhile and commits what it holds in one group after.
SQLITE_BATCH_SECONDS = 0.05

# Turns a stored message into canonical commands (the mapping layer, per channel and source).
Mapper = Callable[[inbox.InboxEntry], list[Command]]


@dataclass
class Outcome:
    message_id: int
    status: str  # applied | failed | skipped
    error: dict[str, object] | None = None
    applied: list[Applied] = field(default_factory=list)
    received_at: datetime | None = None  # when the hub received the notice (SLA start)


def commands_of(entry: inbox.InboxEntry, mapper: Mapper) -> list[Command]:
    """The commands mapped when the message arrived, else the raw payload mapped now."""
    if entry.commands is not None:
        return [command_from_json(kind, data) for kind, data in entry.commands]
    return mapper(entry)


# The rows a batch works through, loaded (and on PostgreSQL locked) a chunk at a time as the
# batch reaches them, so a batch cut short by its time budget has not read a hundred payloads.
# Chunks start smaller and double: a SQLite batch cut short by its time budget should not
# have read (and decoded) many rows only to read them again in the next batch. Batches now
# gather for the worker's linger (tens of messages), so the first chunk is 16, not 4. A
# chunk's people are looked up and read together (``SqlPersonRepository.prefetch``).
Chunk = list[tuple[int, inbox.InboxEntry | None]]
Rows = Callable[[Connection], Iterator[Chunk]]
FIRST_CHUNK, CHUNK = 16, 32


def _by_ids(message_ids: Sequence[int]) -> Rows:
    def rows(conn: Connection) -> Iterator[Chunk]:
        for start in range(0, len(message_ids), CHUNK):
            chunk = message_ids[start:start + CHUNK]
            found = {e.id: e for e in inbox.load_many_for_processing(conn, chunk)}
            yield [(message_id, found.get(message_id)) for message_id in chunk]
    return rows


def _received_after(partition: int | None, after_id: int, limit: int) -> Rows:
    """The next ``received`` rows, read in the batch's own transaction: one query where
    listing ids on another connection and then loading them took two."""
    def rows(conn: Connection) -> Iterator[Chunk]:
        cursor, left, size = after_id, limit, FIRST_CHUNK
        while left > 0:
            want = min(size, left)
            chunk = inbox.next_received(conn, partition=partition, after_id=cursor, limit=want)
            if chunk:
                yield [(entry.id, entry) for entry in chunk]
            if len(chunk) < want:
                return
            cursor, left, size = chunk[-1].id, left - want, min(size * 2, CHUNK)
    return rows


def _internal_error(doing: str, exc: Exception) -> RegisterError:
    """What a message that failed for no rule's reason is marked with (the exception's type
    only: a driver's text may quote the message's data)."""
    return RegisterError(f"the hub could not {doing} this message ({type(exc).__name__}); it "
                         "is kept and can be replayed once the cause is fixed",
                         rule="internal-error")


def _decode(chunk: Chunk, mapper: Mapper
            ) -> dict[int, list[Command] | MappingError | RegisterError]:
    """The commands of a chunk's ``received`` rows (or why they could not be mapped)."""
    decoded: dict[int, list[Command] | MappingError | RegisterError] = {}
    for message_id, entry in chunk:
        if entry is not None and entry.status == "received":
            try:
                decoded[message_id] = commands_of(entry, mapper)
            except MappingError as exc:
                decoded[message_id] = exc
            except Exception as exc:  # a fault in mapping: this message fails, not the batch
                log.error("inbound message could not be mapped (%s)", type(exc).__name__,
                          extra={"message_id": message_id})
                decoded[message_id] = _internal_error("map", exc)
    return decoded


class _Refused(Exception):
    """A message failed in a run without its own savepoint: the batch is redone."""

    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


def _batch(engine: Engine, rows: Rows, mapper: Mapper, clock: Clock, policy: Policy | None,
           time_budget: float | None) -> tuple[list[Outcome], bool]:
    """Apply rows in arrival order in one transaction: (outcomes, whether the rows ran out).

    One commit covers the batch (a commit per message was most of the cost on PostgreSQL),
    and a crash before it leaves every row ``received``. A message the rules refuse is rolled
    back alone and marked failed: the batch runs first without savepoints (two statements a
    message, round trips on PostgreSQL), and if a message is refused the whole transaction is
    rolled back and redone with a SAVEPOINT around each message from that one on.
    Raises ConcurrentChange (nothing committed) for the caller to retry. ``time_budget``
    (seconds) ends the batch early, so a long batch never holds SQLite's single write lock
    while the MLLP listener waits to store (and ACK) a message.
    """
    guarded_from: int | None = None
    while True:
        try:
            return _apply(engine, rows, mapper, clock, policy, time_budget, guarded_from)
        except _Refused as refused:
            guarded_from = refused.position  # strictly smaller each time: this ends
        except ConcurrentChange:
            raise
        except Exception as exc:
            # Not a rule's refusal: data the database will not store, a fault in the hub.
            # Redone with every message in its own savepoint, where one that fails so fails
            # alone (``failed``, replayable) instead of the batch failing on every retry and
            # holding back every message behind it. Still failing then: not one message's.
            if guarded_from == 0:
                raise
            log.warning("inbound batch failed (%s): redone message by message",
                        type(exc).__name__)
            guarded_from = 0


def _apply(engine: Engine, rows: Rows, mapper: Mapper, clock: Clock, policy: Policy | None,
           time_budget: float | None, guarded_from: int | None) -> tuple[list[Outcome], bool]:
    outcomes: list[Outcome] = []
    marks: list[inbox.Mark] = []
    deadline = None if time_budget is None else time.monotonic() + time_budget
    exhausted = True
    with SqlUnitOfWork(engine) as uow:
        conn = uow.connection
        # A person's next message in the batch reads no row again, and rows are written
        # once per batch (see person_writes); flushed before the marks and the commit.
        uow.persons.batch_mode()
        position = -1
        for chunk in rows(conn):
            decoded = _decode(chunk, mapper)
            chunk_commands = [command for commands in decoded.values()
                              if isinstance(commands, list) for command in commands]
            uow.persons.prefetch(key for command in chunk_commands
                                 for key in identities_of(command))
            prefetch_candidates(uow, chunk_commands, policy)
            for message_id, entry in chunk:
                position += 1
                if outcomes and deadline is not None and time.monotonic() > deadline:
                    exhausted = False
                    break  # commit what is done; the rest comes in the next batch
                if entry is None or message_id not in decoded:
                    outcomes.append(Outcome(message_id, "skipped"))
                    continue
                outcome = _apply_one(uow, message_id, entry, decoded[message_id], clock,
                                     policy, guarded=guarded_from is not None
                                     and position >= guarded_from, position=position)
                if outcome.status == "applied":
                    marks.append(inbox.Mark(message_id, "applied", person_ids=sorted(
                        {a.person_id for a in outcome.applied}
                        | {m.person_id for a in outcome.applied for m in a.also})))
                else:
                    marks.append(inbox.Mark(message_id, "failed", error=outcome.error))
                outcomes.append(outcome)
            if not exhausted:
                break
        uow.persons.flush()
        # Detectors run on every register change for the person (issue 4), in the same
        # transaction, so an exception is never missing for an applied message.
        _detect(uow, outcomes, clock, policy)
        # Status changes partners must hear of: one delivery per subscriber, committed with
        # the change itself (transactional outbox; the SLA clock starts at receipt).
        received = {o.message_id: o.received_at for o in outcomes if o.received_at}
        # Read once for the batch: per change it was a query (a round trip) per message.
        subscribers = load_subscriptions(conn) if any(o.applied for o in outcomes) else []
        for outcome in outcomes:
            for applied in (a for top in outcome.applied for a in (top, *top.also)):
                enqueue_status_changes(conn, applied, received.get(outcome.message_id)
                                       or clock.now(), clock.now(), subscriptions=subscribers)
        inbox.mark_many(conn, marks, now=clock.now())
        uow.commit()
    return outcomes, exhausted


def _apply_one(uow: SqlUnitOfWork, message_id: int, entry: inbox.InboxEntry,
               commands: list[Command] | MappingError | RegisterError, clock: Clock,
               policy: Policy | None,
               *, guarded: bool, position: int) -> Outcome:
    """Record one message's commands in the batch's transaction. Unguarded, a refusal
    raises _Refused (the batch is redone with savepoints from here); guarded, a SAVEPOINT
    holds the message and a refusal rolls back to it and comes back as ``failed``."""
    savepoint = None
    if guarded:
        uow.persons.flush()  # so that the savepoint holds this message's writes only
        savepoint = uow.connection.begin_nested()
    try:
        if isinstance(commands, MappingError | RegisterError):
            raise commands
        applied = [record_command(c, uow, clock, policy) for c in commands]
        if savepoint is not None:
            uow.persons.flush()  # inside: what the database refuses fails this message
    except ConcurrentChange:
        raise  # the whole batch is retried
    except (MappingError, RegisterError) as exc:
        if savepoint is None:
            raise _Refused(position) from exc
        savepoint.rollback()
        uow.persons.rolled_back()
        log.info("inbound message failed", extra={"message_id": message_id})
        return Outcome(message_id, "failed", error=stored_error(exc))
    except Exception as exc:
        if savepoint is None:
            raise  # _batch redoes the batch with every message guarded
        savepoint.rollback()
        uow.persons.rolled_back()
        # The type only: the text of a driver's error may quote the message's data.
        log.error("inbound message could not be applied (%s)", type(exc).__name__,
                  extra={"message_id": message_id})
        return Outcome(message_id, "failed", error=stored_error(_internal_error("apply", exc)))
    if savepoint is not None:
        savepoint.commit()
    return Outcome(message_id, "applied", applied=applied, received_at=entry.received_at)


def _detect(uow: SqlUnitOfWork, outcomes: list[Outcome], clock: Clock,
            policy: Policy | None) -> None:
    """Run the detectors once per person the batch touched, on the position their last
    change computed (the same as recomputing it: same person, policy and day; it cost a
    fifth of the detectors' time to compute again), and sync everyone's exceptions at once."""
    latest: dict[str, Position | None] = {}
    for outcome in outcomes:
        for top in outcome.applied:
            for applied in (top, *top.also):
                latest[applied.person_id] = applied.position
    today = clock.today()
    held: list[tuple[Person, Position]] = []
    for person_id in sorted(latest):
        position = latest[person_id]
        person = (uow.persons.get(person_id, for_update=True)
                  if position is not None and position.as_of == today else None)
        if person is None or position is None:
            reconcile_person(uow, person_id, clock, policy)
        else:
            held.append((person, position))
    # With their checkpoints: the nightly sweep need not compute them again until their day.
    sync_people(uow, held, clock, policy)


def _with_retry(run: Callable[[], tuple[list[Outcome], bool]], attempts: int
                ) -> tuple[list[Outcome], bool]:
    for _ in range(attempts - 1):
        try:
            return run()
        except ConcurrentChange:
            continue
    return run()


def process_batch(engine: Engine, message_ids: Sequence[int], mapper: Mapper, clock: Clock,
                  policy: Policy | None = None, *, time_budget: float | None = None
                  ) -> list[Outcome]:
    """Apply these stored messages in order in one transaction (see ``_batch``); one not
    ``received`` any more is skipped. Raises ConcurrentChange for the caller to retry."""
    return _batch(engine, _by_ids(message_ids), mapper, clock, policy, time_budget)[0]


def process_message(engine: Engine, message_id: int, mapper: Mapper, clock: Clock,
                    policy: Policy | None = None) -> Outcome:
    """Apply one stored message. Raises ConcurrentChange for the caller to retry."""
    return process_batch(engine, [message_id], mapper, clock, policy)[0]


def process_with_retry(engine: Engine, message_ids: Sequence[int], mapper: Mapper,
                       clock: Clock, policy: Policy | None = None, attempts: int = 20,
                       time_budget: float | None = None) -> list[Outcome]:
    return _with_retry(lambda: _batch(engine, _by_ids(message_ids), mapper, clock, policy,
                                      time_budget), attempts)[0]


def drain(engine: Engine, mapper: Mapper, clock: Clock, policy: Policy | None = None, *,
          partition: int | None = None, batch: int = 100,
          time_budget: float | None = None) -> int:
    """Process every ``received`` message (of one partition) in arrival order. Memory stays
    flat: rows are read a chunk at a time, never the whole backlog."""
    done = 0
    after = 0
    if time_budget is None and engine.dialect.name == "sqlite":
        time_budget = SQLITE_BATCH_SECONDS
    while True:
        rows = _received_after(partition, after, batch)
        outcomes, exhausted = _with_retry(
            lambda rows=rows: _batch(engine, rows, mapper, clock, policy, time_budget), 20)
        done += len(outcomes)
        if outcomes:
            after = outcomes[-1].message_id
        if exhausted and len(outcomes) < batch:
            return done  # every received row was read: none left
        if urgent_writers_waiting(engine):
            time.sleep(0.0005)  # let the waiting writer take the lock before our next batch


def stored_error(exc: MappingError | RegisterError) -> dict[str, object]:
    """The one shape of an inbox row's ``error``, whether it failed on arrival (mapping) or in
    the worker (mapping or a register rule): every key always present, null where the kind
    of error has no such detail (a mapping error has no rule, a register error no line)."""
    if isinstance(exc, MappingError):
        return {"kind": "mapping", "code": exc.code, "message": exc.message,
                "location": exc.location, "line": exc.line, "field": None, "rule": None}
    return {"kind": "register", "code": exc.code, "message": exc.message, "location": None,
            "line": None, "field": exc.field, "rule": exc.rule}
