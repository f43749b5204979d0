"""Run the detectors and keep each person's exceptions in step with them.

``reconcile_person`` works inside the caller's unit of work and does not commit: the inbound
path can call it after applying a message, so the facts and the exceptions they raise are
committed together. ``sweep`` walks the whole register by pages of people (flat memory): it
recomputes each position as of today as ``handlers.recompute`` does (due dates move with no
message) and syncs the person's exceptions.

Each person's result is kept with a checkpoint (``person_checks``): the journal version it
was computed from, the fingerprint of the rules that computed it (``rules_fingerprint``: the
code and configuration of positions, projections and detectors) and the last day it stays right
(``detect_until``). The sweep passes over a person whose checkpoint still holds — the same
version and rules, the day not passed — since computing them again would give what is
stored; ``full=True`` (``s117hub reconcile --full``) recomputes everyone. The inbound path
writes the checkpoint with the exceptions of each message it applies, so the nightly pass
visits only the people whose day came or whose facts changed some other way.

A page is read in three queries, without locks, and computed in memory; only the people
whose projection or exceptions must change are written, in one transaction per page, and
only if their version is still the one read (on PostgreSQL their rows are locked, skipping
any another transaction holds). The rest — changed since the read, or locked — go through
the one-person path (read, compute and write under the person's lock). ``workers`` > 1 forks
processes over ranges of person ids.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Protocol, Self, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

import reconciliation
import register_core
from reconciliation.detectors import DetectorPolicy, detect_until
from reconciliation.exceptions import (
    AUTO_RESOLVE_DECISION,
    AUTO_RESOLVE_REASON,
    DUPLICATE_REASON,
    SYSTEM,
    plan_sync,
)
from reconciliation.findings import Finding
from register_core.adapters.database import engine_for_child, urgent_writers_waiting
from register_core.adapters.exceptions_store import ExceptionStore
from register_core.adapters.person_checks import Check, record_checks, scan_due
from register_core.adapters.register_pages import lock_unchanged, read_page
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
SCAN = 5000  # checkpoints read per query while looking for the people to recompute
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


def _canonical(value: object) -> object:
    """A configuration value as JSON the same in every process (sets sorted, dataclasses
    and mappings as sorted objects), for ``rules_fingerprint``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, set | frozenset):
        return sorted(_canonical(v) for v in value)  # type: ignore[type-var]
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


@functools.cache
def _code_fingerprint() -> str:
    """The source of everything that computes, stores or compares a position or a finding
    (the register core and the reconciliation packages: any new version of either sweeps
    everyone once) and the bank holidays the working days count."""
    digest = hashlib.sha256()
    for package in (register_core, reconciliation):
        root = Path(package.__file__).parent  # type: ignore[arg-type]
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    digest.update(metadata.version("holidays").encode())
    return digest.hexdigest()


def rules_fingerprint(policy: Policy | None, rules: DetectorPolicy | None) -> str:
    """What a person's stored position and exceptions were computed under: the code and the
    configuration. A checkpoint under other rules no longer holds (the sweep recomputes)."""
    config = json.dumps([_canonical(policy or Policy()), _canonical(rules or DetectorPolicy())],
                        sort_keys=True)
    return hashlib.sha256(f"{_code_fingerprint()}|{config}".encode()).hexdigest()[:32]


@dataclass(kw_only=True)
class SweepReport:
    people: int = 0  # every person the sweep covered
    recomputed: int = 0  # of them, those whose checkpoint no longer held (or all, with full)
    positions_changed: int = 0
    fields_changed: Counter[str] = field(default_factory=Counter)
    opened: Counter[str] = field(default_factory=Counter)
    auto_resolved: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)

    def add(self, changes: Sequence[tuple[str, str | None, str | None]],
            result: SyncResult) -> None:
        self.people += 1
        self.recomputed += 1
        if changes:
            self.positions_changed += 1
            self.fields_changed.update(name for name, _, _ in changes)
        self.opened.update(kind for _, kind in result.opened)
        self.auto_resolved.update(kind for _, kind in result.auto_resolved)

    def merge(self, other: SweepReport) -> None:
        self.people += other.people
        self.recomputed += other.recomputed
        self.positions_changed += other.positions_changed
        self.fields_changed.update(other.fields_changed)
        self.opened.update(other.opened)
        self.auto_resolved.update(other.auto_resolved)
        self.failed.extend(other.failed)


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
    """Detect on one person as of today and sync their exceptions, with their checkpoint;
    the caller commits."""
    person = uow.persons.get(person_id, for_update=True)
    if person is None:
        raise NotFound("no person with this id", field="person_id", rule="person-exists")
    position = compute_position(person, clock.today(), policy)
    return sync_people(uow, [(person, position)], clock, policy, rules)[person_id]


def sync_people(uow: SqlUnitOfWork, held: Sequence[tuple[Person, Position]], clock: Clock,
                policy: Policy | None, rules: DetectorPolicy | None = None,
                rules_id: str | None = None) -> dict[str, SyncResult]:
    """Detect on people the caller holds (locked) with the positions it computed for them
    today, sync their exceptions, and write their checkpoints at the versions stored: what
    every register change does (a message applied, a merge, a person swept)."""
    findings_of: dict[str, list[Finding]] = {}
    checks: list[Check] = []
    for person, position in held:
        findings_of[person.id], until = detect_until(person, position, position.as_of, rules)
        checks.append(Check(person.id, person.version, until))
    uow.persons.flush()  # exceptions and checkpoints name people, at the versions written
    results = sync_many(uow, findings_of, clock)
    record_checks(uow.connection, checks, rules_id or rules_fingerprint(policy, rules))
    return results


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
    full: bool = False  # recompute everyone, whatever their checkpoint says
    rules_id: str = ""  # rules_fingerprint(policy, rules)

    def one(self, uow: SqlUnitOfWork, person_id: str, report: SweepReport) -> None:
        person = uow.persons.get(person_id, for_update=True)
        if person is None:
            return  # merged away or removed since the page was read
        today = self.clock.today()
        position = compute_position(person, today, self.policy)
        changes = uow.persons.save(person, position, source="register", source_ref="sweep",
                                   recorded_by=SYSTEM, now=self.clock.now())
        if changes and self.on_change is not None:
            self.on_change(uow.connection, Applied(
                person_id=person_id, fact_seq=person.next_seq() - 1, created=False,
                changes=changes, position=position))
        report.add(changes, sync_people(uow, [(person, position)], self.clock, self.policy,
                                        self.rules, self.rules_id)[person_id])

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
        checks: dict[str, Check] = {}  # what holds for each person computed here
        unchanged = SweepReport()  # nothing to write but their checkpoint
        troubled: list[str] = []  # the one-person path reports what fails
        for snapshot in snapshots:
            person = snapshot.person
            try:
                position = compute_position(person, today, self.policy)
                if not projection_unchanged(snapshot.entitlement, position):
                    recompute.append(person.id)
                else:
                    findings, until = detect_until(person, position, today, self.rules)
                    checks[person.id] = Check(person.id, person.version, until)
                    plan = plan_sync(stored[person.id], findings)
                    if not plan.changed:
                        unchanged.add((), SyncResult(person_id=person.id,
                                                     held_closed=len(plan.held_closed)))
                        continue
                    findings_of[person.id] = findings
            except RegisterError:
                troubled.append(person.id)
                continue
            versions[person.id] = person.version
        for pid in troubled:
            report.merge(self.batch([pid]))
        if not checks and not versions:
            return report
        written = SweepReport()  # counted only once committed
        try:
            with SqlUnitOfWork(self.engine) as uow:
                commit_without_waiting(uow)
                held = lock_unchanged(uow.connection, versions) if versions else set()
                self._write_exceptions(uow, {pid: found for pid, found in findings_of.items()
                                             if pid in held}, written)
                for pid in recompute:
                    if pid in held:
                        self.one(uow, pid, written)
                # No lock for the checkpoints of people with nothing to write: each names
                # the version it was computed from, and a person changed since is simply
                # recomputed next time.
                record_checks(uow.connection, [
                    check for pid, check in checks.items()
                    if pid not in findings_of or pid in held], self.rules_id)
                uow.commit()
        except (RegisterError, SQLAlchemyError):
            log.warning("sweep page failed; taking its people one by one", exc_info=True)
            held = set()
        else:
            report.merge(written)
        # Swept whether or not their checkpoint was written (without one they are simply
        # computed again next time).
        report.merge(unchanged)
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
    """Every person with ``lower`` <= id < ``upper`` (either end open): those whose
    checkpoint no longer holds (everyone, with ``full``) a page at a time."""
    report = SweepReport()
    after: str | None = None
    due: list[str] = []
    today = job.clock.today()
    while True:
        with job.engine.connect() as conn:
            scanned = scan_due(conn, after=after, lower=lower, upper=upper, limit=SCAN,
                               rules=job.rules_id, today=today)
        if scanned:
            after = scanned[-1][0]
            fresh = [pid for pid, is_due in scanned if is_due or job.full]
            report.people += len(scanned) - len(fresh)  # their checkpoint holds
            if progress is not None and len(scanned) > len(fresh):
                progress(len(scanned) - len(fresh))
            due += fresh
        while due and (len(due) >= page or not scanned):
            ids, due = due[:page], due[page:]
            report.merge(job.page(ids))
            if progress is not None:
                progress(len(ids))
        if not scanned:
            return report


_FORKED: tuple[_Sweep, int] | None = None  # what forked workers inherit
_WORKER_JOB: _Sweep | None = None  # a worker's own copy, with its own engine


def _start_worker() -> None:
    global _WORKER_JOB
    assert _FORKED is not None
    job, _ = _FORKED
    _WORKER_JOB = dataclasses.replace(job, engine=engine_for_child(job.engine))


def _forked_range(bounds: tuple[str | None, str | None]) -> SweepReport:
    assert _FORKED is not None and _WORKER_JOB is not None
    return _sweep_range(_WORKER_JOB, bounds[0], bounds[1], _FORKED[1])


def sweep(engine: Engine, clock: Clock, policy: Policy | None = None,
          progress: Callable[[int], object] | None = None, *,
          rules: DetectorPolicy | None = None, page: int = PAGE,
          on_change: OnChange | None = None, workers: int = 1,
          parallel_from: int = PARALLEL_FROM, full: bool = False) -> SweepReport:
    """Recompute the position of every person whose checkpoint no longer holds (everyone,
    with ``full``) and sync their exceptions; ``progress(n)`` is called with the number of
    people done as pages (or, with workers, id ranges) finish. ``workers`` > 1 forks that
    many processes (POSIX) when the register holds ``parallel_from`` people or more."""
    global _FORKED
    job = _Sweep(engine, clock, policy, rules, on_change, full=full,
                 rules_id=rules_fingerprint(policy, rules))
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
