"""``detect_until``: the day up to which the same facts give the same position and findings.

The sweep skips a person until that day (or until their facts change), so the date must never
be late: a property checks, over random journeys, that every day up to it gives exactly the
position and findings of the day it was computed on.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciliation.detectors import detect, detect_until
from register_core.domain.commands import Command
from register_core.domain.errors import RegisterError
from register_core.domain.position import Position, compute_position

from ..domain.builders import (
    COUNCIL_A,
    COUNCIL_B,
    child_notified,
    confirmed,
    d,
    details,
    detention,
    dispute_opened,
    dispute_resolved,
    ended,
    left,
    legal,
    person_ref,
    plan,
    practitioner,
    record_all,
    regrade,
    residence,
    review,
)
from .helpers import council_detention

BASE = date(2024, 1, 8)


def _day(offset: int) -> date:
    return BASE + timedelta(days=offset)


# One recipe per kind of fact a journey may hold, each dated ``offset`` days after BASE.
def _recipe(kind: str, offset: int, extra: int, flag: bool) -> list[Command]:
    day, later = _day(offset), _day(offset + extra)
    return {
        "detention": lambda: [detention(day, "03" if flag else "02",
                                        end=later if extra % 3 == 0 else None)],
        "council-detention": lambda: council_detention(day, "03", later if flag else None),
        "regrade": lambda: [regrade(day, "03")],
        "cto": lambda: [legal("cto-start", day, end=later if flag else None)],
        "cto-end": lambda: [legal("cto-end", day)],
        "conditional": lambda: [legal("conditional-discharge-start", day, section="37",
                                      end=later if flag else None)],
        "left": lambda: [left(day)],
        "review": lambda: [review(day, joint=flag)],
        "plan": lambda: [plan(day)],
        "practitioner": lambda: [practitioner("worker-1", day if flag else None)],
        "confirmed": lambda: [confirmed(day)],
        "ended": lambda: [ended(day, icb=flag,
                                council_for=(COUNCIL_A, COUNCIL_B, None)[extra % 3])],
        # s17 leave, back on the ward later or not: an ending while out is refused.
        "leave": lambda: [legal("s17-leave-start", day),
                          *([legal("s17-leave-end", later)] if flag else [])],
        # A dispute about ending (resolved later, or not yet) holds back endings it covers.
        "dispute": lambda: [dispute_opened(day, dispute=f"d{offset}"),
                            *([dispute_resolved(later, dispute=f"d{offset}")] if flag else [])],
        "child-notified": lambda: [child_notified(day)],
        "residence": lambda: [residence(day, COUNCIL_A if flag else COUNCIL_B)],
        "death": lambda: [details(as_of=day, death_date=later)],
    }[kind]()


_KINDS = ["detention", "council-detention", "regrade", "cto", "cto-end", "conditional", "left",
          "review", "plan", "practitioner", "confirmed", "ended", "child-notified", "residence",
          "death", "dispute", "leave"]

journeys = st.lists(
    st.tuples(st.sampled_from(_KINDS), st.integers(0, 500), st.integers(1, 200),
              st.booleans()),
    min_size=1, max_size=9)


def _same(a: Position, b: Position) -> bool:
    return dataclasses.replace(a, as_of=b.as_of) == b


def _check_days(today: date, until: date | None, seen: int) -> list[date]:
    """Every day for a month, the last day claimed, and a spread between (the exhaustive
    walk over two years per example is slow; a change missed always shows by ``until``)."""
    last = until if until is not None else today + timedelta(days=3650)
    span = (last - today).days
    days = {today + timedelta(days=n) for n in range(min(span, 31) + 1)}
    days |= {today + timedelta(days=span * k // 12) for k in range(13)}
    days |= {today + timedelta(days=(seen * 7919 + k * 104729) % (span + 1)) for k in range(6)}
    return sorted(days)


@given(journey=journeys, today_offset=st.integers(0, 700), child=st.booleans(),
       opening=st.integers(0, 3).map(bool))
@settings(max_examples=300, deadline=None)
def test_nothing_moves_before_the_day_detect_until_gives__property(
        journey: list[tuple[str, int, int, bool]], today_offset: int, child: bool,
        opening: bool) -> None:
    # Most journeys start with a detention, so most people have an s117 position to move.
    commands = [detention(BASE)] if opening else []
    commands += [c for kind, offset, extra, flag in journey
                 for c in _recipe(kind, offset, extra, flag)]
    try:
        person = record_all(commands, birth="2008-06-01" if child else "1980-02-02")
    except RegisterError:
        return  # an impossible journey is refused on the way in, never swept
    today = _day(today_offset)
    position = compute_position(person, today)
    findings, until = detect_until(person, position, today)
    assert findings == detect(person, position, today)
    assert until is None or until >= today
    for day in _check_days(today, until, len(commands)):
        later = compute_position(person, day)
        assert _same(later, position), (day, until)
        assert detect(person, later, day) == findings, (day, until)


def test_an_active_entitlement_holds_until_its_first_duty_falls_due() -> None:
    # Left hospital on 2 April with a plan and a practitioner, both partners told: only the
    # 3-month review is ahead (due 2 July), so nothing changes before 3 July.
    commands = [detention("2024-01-08"), left("2024-04-02"), confirmed("2024-04-02"),
                plan("2024-04-02"), practitioner("worker-1", "2024-04-02")]
    person = record_all(commands)
    today = d("2024-05-01")
    findings, until = detect_until(person, compute_position(person, today), today)
    assert findings == []
    assert until == d("2024-07-02")
    after = until + timedelta(days=1)
    assert [f.kind for f in detect(person, compute_position(person, after), after)] == [
        "review-overdue"]


def test_a_future_dated_fact_and_an_expected_end_bound_the_date() -> None:
    commands = [detention("2024-01-08", end="2024-09-30"), practitioner("worker-1", "2024-01-08"),
                plan("2024-08-01")]
    person = record_all(commands)
    today = d("2024-03-01")
    _, until = detect_until(person, compute_position(person, today), today)
    assert until == d("2024-07-31")  # the plan becomes known on 1 August


def test_a_child_in_hospital_holds_until_the_twelfth_week() -> None:
    person = record_all([detention("2024-01-08"), practitioner("worker-1", "2024-01-08")],
                        birth="2010-05-05")
    today = d("2024-02-01")
    _, until = detect_until(person, compute_position(person, today), today)
    assert until == d("2024-01-08") + timedelta(weeks=12) - timedelta(days=1)


def test_a_settled_journey_with_no_date_ahead_holds_for_ever() -> None:
    commands = [detention("2022-01-08"), left("2022-04-02"), confirmed("2022-04-02"),
                plan("2022-04-02"), practitioner("worker-1", "2022-04-02"),
                review("2022-06-01"), ended("2022-12-01")]
    person = record_all(commands)
    today = d("2024-05-01")
    findings, until = detect_until(person, compute_position(person, today), today)
    assert until is None
    assert person_ref().nhs_number not in repr(findings)
