"""The sweep's checkpoints (``person_checks``) on the real databases: a person is computed
again only when their facts changed, their day came or the rules changed — and a full
recompute after an incremental sweep finds nothing left to change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from connectors.inbound_mapper import make_mapper
from reconciliation.detectors import DetectorPolicy
from register_core.adapters.tables import person_checks
from register_core.domain.commands import RecordReviewCompleted
from register_core.domain.position import Policy
from register_core.ports import FixedClock
from register_core.services.inbound import drain
from register_core.services.reconcile import reconcile_person, rules_fingerprint, sweep
from s117hub import cli_reconcile
from s117hub.bootstrap import Hub
from s117hub.config import Settings

from .reconcile_people import (
    admit,
    council,
    end_by_council_alone,
    hl7_admitted_and_discharged,
    kept,
)


@pytest.fixture
def people(hub: Hub) -> dict[str, str]:
    """Each with a different date ahead: a 3-month review, a yearly review, an expected
    leaving, a confirmation still in its grace period, and nothing at all."""
    ended = kept(hub, 4, date(2025, 3, 2), date(2025, 4, 1))
    end_by_council_alone(hub, 4, date(2026, 5, 20))
    return {
        "kept": kept(hub, 1, date(2026, 3, 2), date(2026, 4, 1)),
        "trust-only": kept(hub, 2, date(2026, 3, 2), date(2026, 5, 28), confirm=False),
        "review-due": kept(hub, 3, date(2025, 12, 1), date(2026, 2, 2)),
        "one-sided": ended,
        "leaves-later": admit(hub, 5, date(2026, 5, 4), end=date(2026, 6, 10)),
    }


def _checks(hub: Hub) -> dict[str, tuple[int, date | None]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(select(person_checks.c.person_id, person_checks.c.version,
                                   person_checks.c.holds_until)).all()
    return {pid: (version, until) for pid, version, until in rows}


def test_a_second_sweep_computes_no_one_again(hub: Hub, people: dict[str, str]) -> None:
    first = sweep(hub.engine, hub.clock, hub.policy)
    assert (first.people, first.recomputed) == (5, 5)
    assert set(_checks(hub)) == set(people.values())
    again = sweep(hub.engine, hub.clock, hub.policy)
    assert (again.people, again.recomputed, sum(again.opened.values())) == (5, 0, 0)
    full = sweep(hub.engine, hub.clock, hub.policy, full=True)
    assert (full.people, full.recomputed, sum(full.opened.values()),
            sum(full.auto_resolved.values()), full.positions_changed) == (5, 5, 0, 0, 0)


def test_each_person_comes_back_on_their_day_and_no_sooner(
        hub: Hub, people: dict[str, str], clock: FixedClock) -> None:
    sweep(hub.engine, hub.clock, hub.policy)
    checks = _checks(hub)
    # The expected leaving on 10 June: the position holds until the 9th.
    assert checks[people["leaves-later"]][1] == date(2026, 6, 9)
    days = sorted({until for _, until in checks.values() if until is not None})
    for day in days:
        for when in (day, day + timedelta(days=1)):
            clock.at = datetime.combine(when, datetime.min.time(), tzinfo=UTC)
            due = {pid for pid, (_, until) in _checks(hub).items()
                   if until is not None and until < when}
            report = sweep(hub.engine, hub.clock, hub.policy)
            assert report.recomputed == len(due), when
            # Whatever the incremental pass left, a full one finds nothing to change.
            full = sweep(hub.engine, hub.clock, hub.policy, full=True)
            assert (sum(full.opened.values()), sum(full.auto_resolved.values()),
                    full.positions_changed) == (0, 0, 0), when


def test_a_year_of_nightly_sweeps_leaves_what_a_full_recompute_would(
        hub: Hub, people: dict[str, str], clock: FixedClock) -> None:
    day = date(2026, 6, 1)
    recomputed = 0
    while day < date(2027, 6, 1):
        clock.at = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        recomputed += sweep(hub.engine, hub.clock, hub.policy).recomputed
        day += timedelta(days=9)
    full = sweep(hub.engine, hub.clock, hub.policy, full=True)
    assert (sum(full.opened.values()), sum(full.auto_resolved.values()),
            full.positions_changed) == (0, 0, 0)
    assert recomputed < 41 * 5 // 4  # most nights, most people were passed over


def test_new_facts_send_only_that_person_back(hub: Hub, people: dict[str, str]) -> None:
    sweep(hub.engine, hub.clock, hub.policy)
    council(hub, 3, RecordReviewCompleted, date(2026, 5, 30), date=date(2026, 5, 30))
    report = sweep(hub.engine, hub.clock, hub.policy)
    assert report.recomputed == 1 and report.auto_resolved["review-overdue"] == 1


def test_other_rules_or_policy_recompute_everyone(hub: Hub, people: dict[str, str]) -> None:
    sweep(hub.engine, hub.clock, hub.policy)
    graceful = DetectorPolicy(review_grace_working_days=10)
    assert sweep(hub.engine, hub.clock, hub.policy, rules=graceful).recomputed == 5
    assert sweep(hub.engine, hub.clock, hub.policy, rules=graceful).recomputed == 0
    mapped = Policy(practice_to_icb={"GP-X01": "ICB-X"})
    assert sweep(hub.engine, hub.clock, mapped, rules=graceful).recomputed == 5


def test_rules_fingerprint_is_the_configuration_not_its_spelling() -> None:
    a = DetectorPolicy(acknowledging_kinds=frozenset({"s117-confirmed", "review-completed"}))
    b = DetectorPolicy(acknowledging_kinds=frozenset({"review-completed", "s117-confirmed"}))
    assert rules_fingerprint(None, a) == rules_fingerprint(Policy(), b)
    assert rules_fingerprint(None, a) != rules_fingerprint(None, None)
    assert rules_fingerprint(Policy(practice_to_icb={"GP-X01": "ICB-X"}), None) != (
        rules_fingerprint(None, None))


def test_the_per_person_sync_writes_the_checkpoint(hub: Hub, people: dict[str, str]) -> None:
    with hub.uow() as uow:
        reconcile_person(uow, people["trust-only"], hub.clock, hub.policy)
        uow.commit()
    assert set(_checks(hub)) == {people["trust-only"]}
    assert sweep(hub.engine, hub.clock, hub.policy).recomputed == 4


def test_messages_the_worker_applies_need_no_sweep_until_their_day(hub: Hub) -> None:
    hl7_admitted_and_discharged(hub)
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    [(version, until)] = _checks(hub).values()
    assert version >= 1 and until is not None and until >= hub.clock.today()
    assert sweep(hub.engine, hub.clock, hub.policy).recomputed == 0
    hub.clock.at = datetime.combine(until + timedelta(days=1), datetime.min.time(),  # type: ignore[attr-defined]
                                    tzinfo=UTC)
    report = sweep(hub.engine, hub.clock, hub.policy)
    assert report.recomputed == 1 and sum(report.opened.values()) >= 1
    assert rules_fingerprint(hub.policy, None)  # the worker's and the sweep's rules agree


def test_the_command_line_says_who_it_recomputed_and_full_recomputes_everyone(
        hub: Hub, people: dict[str, str], database_url: str, clock: FixedClock,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S117HUB_CONFIG_FILE", raising=False)
    settings = Settings(database_url=database_url)
    runs = (["--no-progress"], ["--no-progress"], ["--no-progress", "--full"])
    recomputed = []
    for argv in runs:
        assert cli_reconcile.run(argv, settings, clock) == 0
        lines = capsys.readouterr().out.splitlines()
        assert "people swept\t5" in lines
        recomputed += [line for line in lines if line.startswith("people recomputed\t")]
    assert recomputed == ["people recomputed\t5", "people recomputed\t0",
                          "people recomputed\t5"]
