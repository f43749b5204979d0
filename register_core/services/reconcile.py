"""Run the detectors and keep each person's exceptions in step with them.

``reconcile_person`` works inside the caller's unit of work and does not commit: the inbound
path can call it after applying a message, so the facts and the exceptions they raise are
committed together. ``sweep`` walks the whole register by pages of people (flat memory): it
recomputes each position as of today as ``handlers.recompute`` does (due dates move with no
message) and syncs the person's exceptions.

A page is read in three queries, without locks, and computed in memory; only the people
whose projection or exceptions must change are written, in one transaction per page, and
only if their version is still the one read (on PostgreSQL their rows are locked, skipping
any another transaction holds). The rest — changed since the read, or locked — go through
the one-person path (read, compute and write under the person's lock). ``workers`` > 1 forks
processes over ranges of person ids.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
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
from reconciliation.findings import Finding
from register_core.adapters.database import make_engine, urgent_writers_waiting
from register_core.adapters.exceptions_store import ExceptionStore
from register_core.adapters.register_pages import lock_unchanged, page_ids, read_page
from register_core.adapters.repository import projection_unchanged
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

PAGE = 500  # people read, and written, per transaction
# Below this many people one process sweeps faster than forking workers would.
PARALLEL_FROM = 20_000
# Ranges of person ids the forked workers share out: ids are UUIDs (uniform hex), but any
# string falls in exactly one range, the first and last being open-ended.
_PREFIXES = [f"{n:02x}" for n in range(1, 256)]
_RANGES: list[tuple[str | None, str | None]] = list(zip(
    [None, *_PREFIXES], [*_PREFIXES, None], strict=True))


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
    return sync_many(uow, {person.id: findings}, clock)[person.id]


def sync_many(uow: SqlUnitOfWork, findings_of: Mapping[str, list[Finding]],
              clock: Clock) -> dict[str, SyncResult]:
    """Sync the exceptions of many people with their findings, against their current rows:
    a read and a statement per kind of change for all of them (per person it was a read and
    an insert each, round trips that were a quarter of an inbound batch on PostgreSQL)."""
    store = ExceptionStore(uow.connection)
    current = store.for_people(findings_of)
    now = clock.now()
    auto: list[str] = []
    duplicates: list[str] = []
    refresh: list[tuple[str, Finding]] = []
    opening: list[tuple[str, Finding]] = []
    results: dict[str, SyncResult] = {}
    for pid, findings in findings_of.items():
        plan = plan_sync(current[pid], findings)
        auto += [row.id for row in plan.auto_resolve]
        duplicates += [row.id for row in plan.duplicates]
        refresh += [(row.id, found) for row, found in plan.refresh]
        opening += [(pid, found) for found in plan.open]
        results[pid] = SyncResult(
            person_id=pid, refreshed=len(plan.refresh), held_closed=len(plan.held_closed),
            auto_resolved=[(row.id, row.kind) for row in plan.auto_resolve])
    store.close(auto, status="resolved", decision=AUTO_RESOLVE_DECISION,
                reason=AUTO_RESOLVE_REASON, closed_by=SYSTEM, at=now)
    store.close(duplicates, status="resolved", decision=AUTO_RESOLVE_DECISION,
                reason=DUPLICATE_REASON, closed_by=SYSTEM, at=now)
    store.refresh_many(refresh)
    opened = store.open_for_people(opening, now)
    for (pid, _), exception in zip(opening, opened, strict=True):
        results[pid].opened.append(exception)
    return results


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

    def page(self, ids: Sequence[str]) -> SweepReport:
        """Sweep ``ids`` set-wise (module docstring); the one-person path for the rest."""
        report = SweepReport()
        today = self.clock.today()
        with self.engine.connect() as conn:
            snapshots = read_page(conn, ids)
            stored = ExceptionStore(conn).for_people(s.person.id for s in snapshots)
        recompute: list[str] = []  # the projection moves: the one-person path saves it
        findings_of: dict[str, list[Finding]] = {}  # exceptions to write
        versions: dict[str, int] = {}
        troubled: list[str] = []  # the one-person path reports what fails
        for snapshot in snapshots:
            person = snapshot.person
            try:
                position = compute_position(person, today, self.policy)
                if not projection_unchanged(snapshot.entitlement, position):
                    recompute.append(person.id)
                else:
                    findings = detect(person, position, today, self.rules)
                    plan = plan_sync(stored[person.id], findings)
                    if not plan.changed:
                        report.add((), SyncResult(person_id=person.id,
                                                  held_closed=len(plan.held_closed)))
                        continue
                    findings_of[person.id] = findings
            except RegisterError:
                troubled.append(person.id)
                continue
            versions[person.id] = person.version
        for pid in troubled:
            report.merge(self.batch([pid]))
        if not versions:
            return report
        written = SweepReport()  # counted only once committed
        try:
            with SqlUnitOfWork(self.engine) as uow:
                commit_without_waiting(uow)
                held = lock_unchanged(uow.connection, versions)
                self._write_exceptions(uow, {pid: found for pid, found in findings_of.items()
                                             if pid in held}, written)
                for pid in recompute:
                    if pid in held:
                        self.one(uow, pid, written)
                uow.commit()
        except (RegisterError, SQLAlchemyError):
            log.warning("sweep page failed; taking its people one by one", exc_info=True)
            held = set()
        else:
            report.merge(written)
        for pid in versions:
            if pid not in held:  # changed since the read, locked elsewhere, or the page failed
                report.merge(self.batch([pid]))
        return report

    def _write_exceptions(self, uow: SqlUnitOfWork, findings_of: dict[str, list[Finding]],
                          report: SweepReport) -> None:
        """Sync the exceptions of people locked at the version read, against their current
        rows (a register owner may have decided one since the snapshot)."""
        for result in sync_many(uow, findings_of, self.clock).values():
            report.add((), result)


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


def _sweep_range(job: _Sweep, lower: str | None, upper: str | None, page: int,
                 progress: Callable[[int], object] | None = None) -> SweepReport:
    """Every person with ``lower`` <= id < ``upper`` (either end open), a page at a time."""
    report = SweepReport()
    after: str | None = None
    while True:
        with job.engine.connect() as conn:
            ids = page_ids(conn, after=after, lower=lower, upper=upper, limit=page)
        if not ids:
            return report
        report.merge(job.page(ids))
        after = ids[-1]
        if progress is not None:
            progress(len(ids))


_FORKED: tuple[_Sweep, int] | None = None  # what forked workers inherit
_WORKER_JOB: _Sweep | None = None  # a worker's own copy, with its own engine


def _start_worker() -> None:
    global _WORKER_JOB
    assert _FORKED is not None
    job, _ = _FORKED
    # Connections must not cross a fork: the parent disposed its pool before forking, and
    # each worker opens its own.
    url = job.engine.url.render_as_string(hide_password=False)
    _WORKER_JOB = dataclasses.replace(job, engine=make_engine(url))


def _forked_range(bounds: tuple[str | None, str | None]) -> SweepReport:
    assert _FORKED is not None and _WORKER_JOB is not None
    return _sweep_range(_WORKER_JOB, bounds[0], bounds[1], _FORKED[1])


def sweep(engine: Engine, clock: Clock, policy: Policy | None = None,
          progress: Callable[[int], object] | None = None, *,
          rules: DetectorPolicy | None = None, page: int = PAGE,
          on_change: OnChange | None = None, workers: int = 1,
          parallel_from: int = PARALLEL_FROM) -> SweepReport:
    """Recompute every person's position and sync their exceptions; ``progress(n)`` is called
    with the number of people done as pages (or, with workers, id ranges) finish. ``workers``
    > 1 forks that many processes (POSIX) when the register holds ``parallel_from`` people
    or more."""
    global _FORKED
    job = _Sweep(engine, clock, policy, rules, on_change)
    if workers <= 1 or count_people(engine) < parallel_from:
        return _sweep_range(job, None, None, page, progress)
    report = SweepReport()
    engine.dispose()  # no pooled connection may be inherited by the workers
    _FORKED = (job, page)
    try:
        with multiprocessing.get_context("fork").Pool(workers, _start_worker) as pool:
            for part in pool.imap_unordered(_forked_range, _RANGES):
                report.merge(part)
                if progress is not None:
                    progress(part.people)
    finally:
        _FORKED = None
    return report
