"""Processing stored inbound messages: map, apply, and mark the inbox row in ONE transaction.

Because the register change and the inbox status commit together, a worker that dies midway
leaves the row ``received`` and the register untouched; the sweeper re-issues it. A message
already ``applied`` is never applied again (replay re-opens it on purpose).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from mapping.errors import MappingError
from register_core.adapters import inbox
from register_core.adapters.database import urgent_writers_waiting
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.commands import Command
from register_core.domain.errors import ConcurrentChange, RegisterError
from register_core.domain.position import Policy
from register_core.ports import Clock

from .handlers import Applied, record_command

log = logging.getLogger(__name__)

SQLITE_BATCH_SECONDS = 0.02  # hold SQLite's one write lock briefly; ACKs wait behind it

# Turns a stored message into canonical commands (the mapping layer, per channel and source).
Mapper = Callable[[inbox.InboxEntry], list[Command]]


@dataclass
class Outcome:
    message_id: int
    status: str  # applied | failed | skipped
    error: dict[str, object] | None = None
    applied: list[Applied] = field(default_factory=list)


def process_message(engine: Engine, message_id: int, mapper: Mapper, clock: Clock,
                    policy: Policy | None = None) -> Outcome:
    """Apply one stored message. Raises ConcurrentChange for the caller to retry."""
    return process_batch(engine, [message_id], mapper, clock, policy)[0]


def process_batch(engine: Engine, message_ids: Sequence[int], mapper: Mapper, clock: Clock,
                  policy: Policy | None = None, *, time_budget: float | None = None
                  ) -> list[Outcome]:
    """Apply several stored messages in arrival order in one transaction.

    Each message runs in its own SAVEPOINT, so a message the rules refuse is rolled back alone
    and marked failed, while one commit covers the batch (a commit per message was most of
    the cost on PostgreSQL). A crash before the commit leaves every row ``received``.
    Raises ConcurrentChange (nothing committed) for the caller to retry. ``time_budget``
    (seconds) ends the batch early, so a long batch never holds SQLite's single write lock
    while the MLLP listener waits to store (and ACK) a message.
    """
    outcomes: list[Outcome] = []
    deadline = None if time_budget is None else time.monotonic() + time_budget
    with SqlUnitOfWork(engine) as uow:
        conn = uow.connection
        entries = {e.id: e for e in inbox.load_many_for_processing(conn, message_ids)}
        for message_id in message_ids:
            if outcomes and ((deadline is not None and time.monotonic() > deadline)
                             or urgent_writers_waiting(engine)):
                break  # commit what is done; the rest comes in the next batch
            entry = entries.get(message_id)
            if entry is None or entry.status != "received":
                outcomes.append(Outcome(message_id, "skipped"))
                continue
            savepoint = conn.begin_nested()
            try:
                commands = mapper(entry)
                applied = [record_command(c, uow, clock, policy) for c in commands]
            except ConcurrentChange:
                savepoint.rollback()
                raise
            except (MappingError, RegisterError) as exc:
                savepoint.rollback()
                error = stored_error(exc)
                inbox.mark(conn, message_id, status="failed", now=clock.now(), error=error)
                log.info("inbound message failed", extra={"message_id": message_id})
                outcomes.append(Outcome(message_id, "failed", error=error))
                continue
            savepoint.commit()
            inbox.mark(conn, message_id, status="applied", now=clock.now(),
                       person_ids=sorted({a.person_id for a in applied}))
            outcomes.append(Outcome(message_id, "applied", applied=applied))
        uow.commit()
    return outcomes


def process_with_retry(engine: Engine, message_ids: Sequence[int], mapper: Mapper,
                       clock: Clock, policy: Policy | None = None, attempts: int = 20,
                       time_budget: float | None = None) -> list[Outcome]:
    for _ in range(attempts - 1):
        try:
            return process_batch(engine, message_ids, mapper, clock, policy,
                                 time_budget=time_budget)
        except ConcurrentChange:
            continue
    return process_batch(engine, message_ids, mapper, clock, policy, time_budget=time_budget)


def drain(engine: Engine, mapper: Mapper, clock: Clock, policy: Policy | None = None, *,
          partition: int | None = None, batch: int = 100,
          time_budget: float | None = None) -> int:
    """Process every ``received`` message (of one partition) in arrival order. Memory stays
    flat: ids are fetched a batch at a time, never the whole backlog."""
    box = inbox.Inbox(engine)
    done = 0
    last = 0
    if time_budget is None and engine.dialect.name == "sqlite":
        time_budget = SQLITE_BATCH_SECONDS
    while True:
        ids = box.pending_ids(partition=partition, limit=batch, after_id=last)
        if not ids:
            return done
        outcomes = process_with_retry(engine, ids, mapper, clock, policy,
                                      time_budget=time_budget)
        done += len(outcomes)
        last = outcomes[-1].message_id
        if urgent_writers_waiting(engine):
            time.sleep(0.0005)  # let the waiting writer take the lock before our next batch


def stored_error(exc: MappingError | RegisterError) -> dict[str, object]:
    """The one shape of an inbox row's ``error``, whether it failed on arrival (mapping) or in
    the worker (mapping or a register rule)."""
    if isinstance(exc, MappingError):
        return {"kind": "mapping", "code": exc.code, "message": exc.message,
                "location": exc.location, "line": exc.line}
    return {"kind": "register", "code": exc.code, "message": exc.message, "field": exc.field,
            "rule": exc.rule}
