"""The whole-register sweep and the per-person sync on the real databases, and
``s117hub reconcile`` on the command line."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from register_core.adapters.exceptions_store import ExceptionFilter, ExceptionStore
from register_core.adapters.tables import entitlements, register_exceptions
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.commands import RecordReviewCompleted, RecordS117Confirmed
from register_core.domain.errors import InvalidValue
from register_core.ports import FixedClock
from register_core.services import exceptions as workflow
from register_core.services import reconcile
from register_core.services.handlers import Applied
from register_core.services.reconcile import reconcile_person, sweep
from s117hub import cli_reconcile
from s117hub.bootstrap import Hub
from s117hub.config import Settings

from .reconcile_people import admit, council, discharge, end_by_council_alone, kept

TODAY = date(2026, 6, 1)  # the ``clock`` fixture


@pytest.fixture
def people(hub: Hub) -> dict[str, str]:
    """A small register: one of each situation the sweep must find, and one with nothing."""
    return {
        "kept": kept(hub, 1, date(2026, 3, 2), date(2026, 4, 1)),
        "trust-only": kept(hub, 2, date(2026, 3, 2), date(2026, 4, 1), confirm=False),
        "review-due": kept(hub, 3, date(2025, 12, 1), date(2026, 2, 2)),
        "one-sided": _ended_alone(hub),
        "leaves-later": admit(hub, 5, date(2026, 5, 4), end=date(2026, 6, 10)),
    }


def _ended_alone(hub: Hub) -> str:
    person_id = kept(hub, 4, date(2026, 3, 2), date(2026, 4, 1))
    end_by_council_alone(hub, 4, date(2026, 5, 20))
    return person_id


def _live(hub: Hub, person_id: str | None = None) -> list[tuple[str, str]]:
    with hub.engine.connect() as conn:
        _, items = ExceptionStore(conn).query(ExceptionFilter(person_id=person_id),
                                              limit=500)
    return sorted((i["kind"], i["status"]) for i in items if i["status"] in ("open",
                                                                             "assigned"))


def test_the_sweep_opens_what_it_finds_and_a_second_sweep_changes_nothing(
        hub: Hub, people: dict[str, str]) -> None:
    report = sweep(hub.engine, hub.clock, hub.policy)
    assert report.people == 5 and not report.failed
    assert report.opened == Counter({"missed-entitlement": 1, "review-overdue": 1,
                                     "one-sided-ending": 1, "no-named-practitioner": 1})
    assert _live(hub, people["kept"]) == []
    assert _live(hub, people["trust-only"]) == [("missed-entitlement", "open")]
    assert _live(hub, people["one-sided"]) == [("one-sided-ending", "open")]
    again = sweep(hub.engine, hub.clock, hub.policy)
    assert (again.people, sum(again.opened.values()), sum(again.auto_resolved.values()),
            again.positions_changed) == (5, 0, 0, 0)


def test_time_passing_moves_positions_and_duties(hub: Hub, people: dict[str, str],
                                                 clock: FixedClock) -> None:
    sweep(hub.engine, hub.clock, hub.policy)
    clock.at = datetime(2026, 7, 20, 9, tzinfo=UTC)
    told: list[Applied] = []
    report = sweep(hub.engine, hub.clock, hub.policy,
                   on_change=lambda conn, applied: told.append(applied))
    assert report.positions_changed == 1  # left hospital on the expected date, 10 June
    [applied] = told  # for the outbound queue, in the same transaction
    assert applied.person_id == people["leaves-later"] and applied.status_changed
    assert report.fields_changed["entitlement.status"] == 1
    with hub.engine.connect() as conn:
        status = conn.execute(select(entitlements.c.status).where(
            entitlements.c.person_id == people["leaves-later"])).scalar_one()
    assert status == "active"
    # 3-month reviews of those who left on 1 April fell due on 1 July.
    assert report.opened["review-overdue"] == 3
    assert report.opened["missed-entitlement"] == 1  # the one who left on 10 June


def test_a_finding_that_no_longer_holds_is_resolved_by_the_system(
        hub: Hub, people: dict[str, str]) -> None:
    sweep(hub.engine, hub.clock, hub.policy)
    council(hub, 2, RecordS117Confirmed, TODAY, start=date(2026, 4, 1))
    with hub.uow() as uow:
        result = reconcile_person(uow, people["trust-only"], hub.clock, hub.policy)
        uow.commit()
    assert [kind for _, kind in result.auto_resolved] == ["missed-entitlement"]
    with hub.engine.connect() as conn:
        row = conn.execute(select(register_exceptions).where(
            register_exceptions.c.person_id == people["trust-only"])).mappings().one()
    assert (row["status"], row["closed_by"], row["reason"]) == (
        "resolved", "system", "condition no longer holds")
    assert row["closed_at"] is not None


def test_dismissed_stays_dismissed_until_the_facts_behind_it_change(
        hub: Hub, people: dict[str, str], clock: FixedClock) -> None:
    sweep(hub.engine, hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        _, [overdue] = ExceptionStore(conn).query(ExceptionFilter(kind="review-overdue"))
    with hub.uow() as uow:
        workflow.close_exception(uow, hub.clock, overdue["id"], decision="dismiss",
                                 reason="review held, minutes on the way", by="token-1")
        uow.commit()
    assert sum(sweep(hub.engine, hub.clock, hub.policy).opened.values()) == 0
    assert _live(hub, people["review-due"]) == []
    # A review is recorded, and a year on the next one is overdue: new facts, new exception.
    council(hub, 3, RecordReviewCompleted, date(2026, 6, 1), date=date(2026, 6, 1))
    clock.at = datetime(2027, 6, 3, 9, tzinfo=UTC)
    sweep(hub.engine, hub.clock, hub.policy)
    assert ("review-overdue", "open") in _live(hub, people["review-due"])


def test_a_person_who_cannot_be_swept_is_reported_and_the_others_are_swept(
        hub: Hub, people: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = reconcile.compute_position

    def refusing(person, today, policy=None):  # type: ignore[no-untyped-def]
        if person.id == people["review-due"]:
            raise InvalidValue("synthetic failure", field="person", rule="test")
        return real(person, today, policy)

    monkeypatch.setattr(reconcile, "compute_position", refusing)
    report = sweep(hub.engine, hub.clock, hub.policy)
    assert report.failed == [people["review-due"]]
    assert report.people == 4 and report.opened["missed-entitlement"] == 1


def test_the_sweep_pages_through_people_and_reports_progress(
        hub: Hub, people: dict[str, str]) -> None:
    steps: list[int] = []
    report = sweep(hub.engine, hub.clock, hub.policy, progress=steps.append, page=2)
    assert steps == [2, 2, 1] and report.people == 5


def test_reconcile_person_opens_in_the_callers_transaction_only_on_commit(
        hub: Hub, people: dict[str, str]) -> None:
    with hub.uow() as uow:
        result = reconcile_person(uow, people["trust-only"], hub.clock, hub.policy)
        assert [kind for _, kind in result.opened] == ["missed-entitlement"]
    assert _live(hub, people["trust-only"]) == []  # not committed: rolled back
    with hub.uow() as uow:
        reconcile_person(uow, people["trust-only"], hub.clock, hub.policy)
        uow.commit()
    assert _live(hub, people["trust-only"]) == [("missed-entitlement", "open")]


def test_discharge_then_sweep_in_one_day_keeps_one_open_exception_per_finding(
        hub: Hub) -> None:
    admit(hub, 9, date(2026, 1, 5))
    discharge(hub, 9, date(2026, 3, 2))
    for _ in range(3):
        sweep(hub.engine, hub.clock, hub.policy)
    assert _live(hub) == [("missed-entitlement", "open"), ("no-aftercare-plan", "open"),
                          ("no-named-practitioner", "open")]


def test_the_command_line_sweeps_and_prints_what_changed(
        hub: Hub, people: dict[str, str], database_url: str, clock: FixedClock,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S117HUB_CONFIG_FILE", raising=False)
    settings = Settings(database_url=database_url)
    assert cli_reconcile.run(["--no-progress"], settings, clock) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "people swept\t5" in lines
    assert any(line.startswith("positions changed\t") for line in lines)
    assert "exceptions opened\tone-sided-ending\t1" in lines
    assert err == ""
    assert cli_reconcile.run(["--progress", "--page", "2"], settings, clock) == 0
    out, err = capsys.readouterr()
    assert "exceptions opened\t0" in out.splitlines()
    assert "reconcile" in err and "5/5" in err  # the tqdm bar, on stderr
    assert cli_reconcile.run(["--page", "0"], settings) == 2


def test_concurrent_syncs_of_one_person_leave_one_open_exception_per_finding(
        hub: Hub, people: dict[str, str]) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            barrier.wait()
            with hub.uow() as uow:
                reconcile_person(uow, people["trust-only"], hub.clock, hub.policy)
                uow.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sync) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _live(hub, people["trust-only"]) == [("missed-entitlement", "open")]


def test_forked_workers_sweep_what_one_process_sweeps(hub: Hub, people: dict[str, str]
                                                      ) -> None:
    steps: list[int] = []
    report = sweep(hub.engine, hub.clock, hub.policy, workers=2, parallel_from=0,
                   progress=steps.append)
    assert report.people == 5 and sum(steps) == 5 and not report.failed
    assert report.opened == Counter({"missed-entitlement": 1, "review-overdue": 1,
                                     "one-sided-ending": 1, "no-named-practitioner": 1})
    assert _live(hub, people["trust-only"]) == [("missed-entitlement", "open")]
    again = sweep(hub.engine, hub.clock, hub.policy, workers=2, parallel_from=0)
    assert (again.people, sum(again.opened.values())) == (5, 0)


def _after_the_read(monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]) -> None:
    """Run ``action`` once, right after the sweep reads its first page (between its read
    and its write)."""
    real = reconcile.read_page
    pending = [action]

    def reading(conn, ids):  # type: ignore[no-untyped-def]
        snapshots = real(conn, ids)
        while pending:
            pending.pop()()
        return snapshots

    monkeypatch.setattr(reconcile, "read_page", reading)


def test_a_person_changed_between_the_read_and_the_write_is_swept_on_their_own(
        hub: Hub, people: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The council confirms s117 after the page was read: the snapshot would still say the
    # trust alone knows (missed-entitlement); the person's new version sends them down the
    # one-person path, which reads the confirmation.
    _after_the_read(monkeypatch, lambda: council(hub, 2, RecordS117Confirmed, TODAY,
                                                 start=date(2026, 4, 1)))
    report = sweep(hub.engine, hub.clock, hub.policy)
    assert report.people == 5 and not report.failed
    assert _live(hub, people["trust-only"]) == []
    assert "missed-entitlement" not in report.opened


def test_a_decision_taken_between_the_read_and_the_write_stands(
        hub: Hub, people: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sweep(hub.engine, hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        _, [missed] = ExceptionStore(conn).query(ExceptionFilter(
            kind="missed-entitlement", person_id=people["trust-only"]))

    def dismiss() -> None:
        with hub.uow() as uow:
            workflow.close_exception(uow, hub.clock, missed["id"], decision="dismiss",
                                     reason="confirmed by letter", by="token-1")
            uow.commit()

    # The finding stops holding (as if time had settled it) while a register owner
    # dismisses it: the page read it open, but must not resolve what it did not read closed.
    real_detect = reconcile.detect_until

    def settled(*args):  # type: ignore[no-untyped-def]
        findings, until = real_detect(*args)
        return [f for f in findings if f.kind != "missed-entitlement"], until

    monkeypatch.setattr(reconcile, "detect_until", settled)
    _after_the_read(monkeypatch, dismiss)
    # In full: the first sweep's checkpoints hold (nothing in the facts moved).
    report = sweep(hub.engine, hub.clock, hub.policy, full=True)
    assert not report.failed and report.auto_resolved["missed-entitlement"] == 0
    with hub.engine.connect() as conn:
        row = conn.execute(select(register_exceptions).where(
            register_exceptions.c.id == missed["id"])).mappings().one()
    assert (row["status"], row["closed_by"]) == ("dismissed", "token-1")


def test_a_page_whose_write_fails_is_swept_one_by_one_and_counted_once(
        hub: Hub, people: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The page's commit fails after its writes were made (and counted): rolled back, every
    # person is swept again on their own, and counted once.
    real = SqlUnitOfWork.commit
    failures = [OperationalError("COMMIT", {}, Exception("disk I/O error"))]

    def failing_once(uow: SqlUnitOfWork) -> None:
        if failures:
            raise failures.pop()
        real(uow)

    monkeypatch.setattr(SqlUnitOfWork, "commit", failing_once)
    report = sweep(hub.engine, hub.clock, hub.policy)
    assert not failures and report.people == 5 and not report.failed
    assert report.opened == Counter({"missed-entitlement": 1, "review-overdue": 1,
                                     "one-sided-ending": 1, "no-named-practitioner": 1})
    assert _live(hub, people["trust-only"]) == [("missed-entitlement", "open")]
