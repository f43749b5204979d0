"""Run the detectors and keep each person's exceptions in step with them.

``reconcile_person`` works inside the caller's unit of work and does not commit: the inbound
path can call it after applying a message, so the facts and the exceptions they raise are
committed together. ``sweep`` walks the whole register by pages of person ids (flat memory):
it recomputes each position as of today as ``handlers.recompute`` does (due dates move with
no message) and syncs the person's exceptions, one transaction per person on PostgreSQL and
per page on SQLite.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from reconciliation.detectors import DetectorPolicy, detect
from reconciliation.exceptions import (
    AUTO_RESOLVE_DECISION,
    AUTO_RESOLVE_REASON,
    DUPLICATE_REASON,
    SYSTEM,
    plan_sync,
)
from register_core.adapters.database import urgent_writers_waiting
from register_core.adapters.exceptions_store import ExceptionStore
from register_core.adapters.tables import persons
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.errors import NotFound, RegisterError
from register_core.domain.model import Person
from register_core.domain.position import Policy, Position, compute_position
from register_core.ports import Clock
from register_core.services.handlers import Applied

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound="BatchReport")

PAGE = 100  # people per page (and per transaction on SQLite)


def commit_without_waiting(uow: SqlUnitOfWork) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL flush. The sweep
    commits once per person, and waiting for each flush was most of its time; a crash can
    lose only the last moments of a re-runnable pass (each change with its outbox rows,
    never half of one), which the next run recomputes."""
    if uow.connection.dialect.name == "postgresql":
        uow.connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


@dataclass(kw_only=True)
class SyncResult:
    person_id: str
    opened: list[tuple[str, str]] = field(default_factory=list)  # (exception id, kind)
    auto_resolved: list[tuple[str, str]] = field(default_factory=list)
    refreshed: int = 0
    held_closed: int = 0  # findings a person already resolved or dismissed (same facts)
    live: int = 0  # open or assigned after the sync

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.auto_resolved or self.refreshed)


@dataclass(kw_only=True)
class SweepReport:
    people: int = 0
    positions_changed: int = 0
    fields_changed: Counter[str] = field(default_factory=Counter)
    opened: Counter[str] = field(default_factory=Counter)
    auto_resolved: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)

    def add(self, changes: Sequence[tuple[str, str | None, str | None]],
            result: SyncResult) -> None:
        self.people += 1
        if changes:
            self.positions_changed += 1
            self.fields_changed.update(name for name, _, _ in changes)
        self.opened.update(kind for _, kind in result.opened)
        self.auto_resolved.update(kind for _, kind in result.auto_resolved)

    def merge(self, other: SweepReport) -> None:
        self.people += other.people
        self.positions_changed += other.positions_changed
        self.fields_changed.update(other.fields_changed)
        self.opened.update(other.opened)
        self.auto_resolved.update(other.auto_resolved)
        self.failed.extend(other.failed)


def sync_findings(uow: SqlUnitOfWork, person: Person, position: Position, clock: Clock,
                  rules: DetectorPolicy | None = None) -> SyncResult:
    """Detect on a person and position the caller already holds, and sync their exceptions."""
    findings = detect(person, position, position.as_of, rules)
    store = ExceptionStore(uow.connection)
    existing = store.for_person(person.id)
    plan = plan_sync(existing, findings)
    now = clock.now()
    result = SyncResult(person_id=person.id, refreshed=len(plan.refresh),
                        held_closed=len(plan.held_closed))
    store.close([row.id for row in plan.auto_resolve], status="resolved",
                decision=AUTO_RESOLVE_DECISION, reason=AUTO_RESOLVE_REASON, closed_by=SYSTEM,
                at=now)
    store.close([row.id for row in plan.duplicates], status="resolved",
                decision=AUTO_RESOLVE_DECISION, reason=DUPLICATE_REASON, closed_by=SYSTEM,
                at=now)
    for row, found in plan.refresh:
        store.refresh(row.id, found)
    result.opened = store.open_many(person.id, plan.open, now)
    result.auto_resolved = [(row.id, row.kind) for row in plan.auto_resolve]
    kept = sum(1 for row in existing if row.live) - len(plan.auto_resolve) - len(
        plan.duplicates)
    result.live = kept + len(result.opened)
    return result


def reconcile_person(uow: SqlUnitOfWork, person_id: str, clock: Clock,
                     policy: Policy | None = None, *,
                     rules: DetectorPolicy | None = None) -> SyncResult:
    """Detect on one person as of today and sync their exceptions; the caller commits."""
    person = uow.persons.get(person_id, for_update=True)
    if person is None:
        raise NotFound("no person with this id", field="person_id", rule="person-exists")
    position = compute_position(person, clock.today(), policy)
    return sync_findings(uow, person, position, clock, rules)


def count_people(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(persons)).scalar_one())


def _person_ids_after(engine: Engine, after: str | None, limit: int) -> list[str]:
    query = select(persons.c.id).order_by(persons.c.id).limit(limit)
    if after is not None:
        query = query.where(persons.c.id > after)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


# Called in the person's transaction when the sweep changed their register values, e.g. to
# queue the outbound status change (issue 5) with the change itself.
OnChange = Callable[[Connection, Applied], object]


@dataclass(frozen=True)
class _Sweep:
    engine: Engine
    clock: Clock
    policy: Policy | None
    rules: DetectorPolicy | None
    on_change: OnChange | None

    def one(self, uow: SqlUnitOfWork, person_id: str, report: SweepReport) -> None:
        person = uow.persons.get(person_id, for_update=True)
        if person is None:
            return  # merged away or removed since the page was read
        position = compute_position(person, self.clock.today(), self.policy)
        changes = uow.persons.save(person, position, source="register", source_ref="sweep",
                                   recorded_by=SYSTEM, now=self.clock.now())
        if changes and self.on_change is not None:
            self.on_change(uow.connection, Applied(
                person_id=person_id, fact_seq=person.next_seq() - 1, created=False,
                changes=changes, position=position))
        report.add(changes, sync_findings(uow, person, position, self.clock, self.rules))

    def batch(self, ids: Sequence[str]) -> SweepReport:
        return run_in_batches(self.engine, ids, self.one, SweepReport, what="sweep",
                              person_of=str)


class BatchReport(Protocol):
    failed: list[str]

    def merge(self, other: Self) -> None: ...


def run_in_batches(engine: Engine, items: Sequence[T],
                   one: Callable[[SqlUnitOfWork, T, R], object],
                   new_report: Callable[[], R], *, what: str,
                   person_of: Callable[[T], str],
                   on_begin: Callable[[], object] | None = None,
                   on_commit: Callable[[], object] | None = None) -> R:
    """``one`` per item, one transaction for the lot; committed early when an ACK-waiting
    writer queues behind it (SQLite). A failure replays the uncommitted items one by one, so
    one bad person costs only their own work (listed in ``failed``)."""
    done = new_report()
    pending = list(items)
    while pending:
        part = new_report()
        count = 0
        if on_begin is not None:
            on_begin()
        try:
            with SqlUnitOfWork(engine) as uow:
                commit_without_waiting(uow)
                for item in pending:
                    one(uow, item, part)
                    count += 1
                    if urgent_writers_waiting(engine):
                        break
                uow.commit()
        except (RegisterError, SQLAlchemyError):
            if len(pending) == 1:
                log.error("%s failed for person %s", what, person_of(pending[0]),
                          exc_info=True)
                done.failed.append(person_of(pending[0]))
                return done
            log.warning("%s batch failed; retrying its people one by one", what,
                        exc_info=True)
            for item in pending:
                done.merge(run_in_batches(engine, [item], one, new_report, what=what,
                                          person_of=person_of, on_begin=on_begin,
                                          on_commit=on_commit))
            return done
        if on_commit is not None:
            on_commit()
        done.merge(part)
        pending = pending[count:]
    return done


def sweep(engine: Engine, clock: Clock, policy: Policy | None = None,
          progress: Callable[[int], object] | None = None, *,
          rules: DetectorPolicy | None = None, page: int = PAGE,
          on_change: OnChange | None = None) -> SweepReport:
    """Recompute every person's position and sync their exceptions; ``progress(n)`` is called
    with the number of people done after each page."""
    job = _Sweep(engine, clock, policy, rules, on_change)
    report = SweepReport()
    # PostgreSQL: one person per transaction, so the sweep never holds a person's row lock
    # while it waits for another's (the inbound worker locks people in arrival order, and
    # two writers taking several locks in different orders deadlock). SQLite has one writer
    # at a time: a page per transaction, given up early when an ACK is waiting.
    per_tx = 1 if engine.dialect.name == "postgresql" else page
    after: str | None = None
    while ids := _person_ids_after(engine, after, page):
        for start in range(0, len(ids), per_tx):
            report.merge(job.batch(ids[start:start + per_tx]))
        after = ids[-1]
        if progress is not None:
            progress(len(ids))
    return report
