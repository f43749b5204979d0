"""Review due dates: within 3 months of discharge, then at least every 12 months.

Seeds: joint policy 14.1 (scheduled, and unscheduled "whenever the person moves to another
local authority area"); MoU 5 ("within three months of discharge; and at least annually
thereafter").
"""

from __future__ import annotations

import calendar
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from register_core.domain.rules import reviews

from .builders import detention, left, legal, position_of, residence, review


def reference_add_months(day: date, months: int) -> date:
    """Independent statement: same day N months on, or the last day of a shorter month."""
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@pytest.mark.parametrize(("start", "months", "expected"), [
    (date(2024, 1, 31), 1, date(2024, 2, 29)),    # leap year
    (date(2023, 1, 31), 1, date(2023, 2, 28)),
    (date(2024, 11, 30), 3, date(2025, 2, 28)),
    (date(2023, 11, 30), 3, date(2024, 2, 29)),
    (date(2024, 5, 31), 3, date(2024, 8, 31)),
    (date(2024, 10, 31), 3, date(2025, 1, 31)),   # crosses the year
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2024, 12, 15), 12, date(2025, 12, 15)),
    (date(2024, 3, 31), -1, date(2024, 2, 29)),
])
def test_add_months_clamps_to_the_month_end__joint_policy_14_1(start, months, expected):
    assert reviews.add_months(start, months) == expected


def test_first_review_within_3_months_of_discharge__joint_policy_14_1():
    assert reviews.first_review_due(date(2026, 3, 1)) == date(2026, 6, 1)
    assert reviews.next_review_due(date(2026, 3, 1), []) == date(2026, 6, 1)


def test_first_review_month_end_discharge__joint_policy_14_1():
    assert reviews.first_review_due(date(2025, 11, 30)) == date(2026, 2, 28)


def test_then_12_months_after_the_latest_review__joint_policy_14_1_mou_5():
    due = reviews.next_review_due(date(2026, 3, 1), [date(2026, 5, 20), date(2027, 4, 2)])
    assert due == date(2028, 4, 2)


def test_an_unscheduled_review_also_restarts_the_clock__joint_policy_14_1():
    # "at least every 12 months": any review held counts
    assert reviews.next_review_due(date(2026, 3, 1), [date(2026, 4, 15)]) == date(2027, 4, 15)


def test_reviews_before_discharge_do_not_count__joint_policy_14_1():
    assert reviews.next_review_due(date(2026, 3, 1), [date(2026, 2, 1)]) == date(2026, 6, 1)


def test_overdue_only_after_the_due_date():
    due = date(2026, 6, 1)
    assert not reviews.is_overdue(due, date(2026, 6, 1))
    assert reviews.is_overdue(due, date(2026, 6, 2))
    assert not reviews.is_overdue(None, date(2030, 1, 1))


def test_unscheduled_review_triggers__joint_policy_14_1():
    for trigger in ("moved-council-area", "plan-not-meeting-needs", "requested",
                    "ending-considered"):
        assert trigger in reviews.UNSCHEDULED_TRIGGERS


# -- properties -----------------------------------------------------------------------------

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))


@given(dates, st.integers(min_value=-1200, max_value=1200))
def test_add_months_never_raises_and_never_moves_the_day_later__property(day, months):
    result = reviews.add_months(day, months)
    assert result.day <= day.day
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result == reference_add_months(day, months)


@given(dates, st.lists(dates, max_size=6))
def test_next_review_never_before_discharge_and_12_months_after_latest__property(discharge,
                                                                               held):
    due = reviews.next_review_due(discharge, held)
    assert due > discharge
    after = [r for r in held if r >= discharge]
    if after:
        assert due == reference_add_months(max(after), 12)
    else:
        assert due == reference_add_months(discharge, 3)


# -- through the register ------------------------------------------------------------------

def test_register_review_due_3_months_after_leaving__joint_policy_14_1():
    pos = position_of([detention("2026-01-05"), left("2026-03-01")], today="2026-03-02")
    assert pos.entitlement.next_review_due == date(2026, 6, 1)
    assert pos.entitlement.last_review is None


def test_register_review_due_12_months_after_the_latest_review__joint_policy_14_1():
    pos = position_of([detention("2026-01-05"), left("2026-03-01"), review("2026-05-20"),
                       review("2027-05-02", kind="unscheduled")], today="2027-06-01")
    assert pos.entitlement.last_review == date(2027, 5, 2)
    assert pos.entitlement.next_review_due == date(2028, 5, 2)
    assert "12 months" in pos.explain["entitlement.next_review_due"].rule


def test_register_review_before_discharge_does_not_count__joint_policy_14_1():
    pos = position_of([detention("2026-01-05"), review("2026-02-01"), left("2026-03-01")],
                      today="2026-03-02")
    assert pos.entitlement.next_review_due == date(2026, 6, 1)


def test_register_month_end_clamping__joint_policy_14_1():
    pos = position_of([detention("2025-09-01"), left("2025-11-30")], today="2025-12-01")
    assert pos.entitlement.next_review_due == date(2026, 2, 28)


def test_no_review_due_while_pending():
    pos = position_of([detention("2026-01-05")], today="2026-06-01")
    assert pos.entitlement.next_review_due is None


def test_review_clock_runs_from_s17_leave_when_that_started_it__joint_policy_8_4():
    pos = position_of([detention("2026-01-05"), legal("s17-leave-start", "2026-02-10")],
                      today="2026-02-11")
    assert pos.entitlement.next_review_due == date(2026, 5, 10)


def test_a_review_recorded_for_a_future_date_does_not_count_yet():
    commands = [detention("2026-01-05"), left("2026-03-01"), review("2026-05-20")]
    assert position_of(commands, today="2026-04-01").entitlement.next_review_due \
        == date(2026, 6, 1)
    assert position_of(commands, today="2026-05-20").entitlement.next_review_due \
        == date(2027, 5, 20)


# -- unscheduled reviews (14.1): "whenever the person moves to another local authority area" --

def test_every_unscheduled_trigger_says_where_it_comes_from_and_whether_it_is_raised():
    assert set(reviews.UNSCHEDULED_TRIGGERS) == {
        "moved-council-area", "plan-not-meeting-needs", "requested", "ending-considered",
        "s17-leave-start"}
    for trigger, why in reviews.UNSCHEDULED_TRIGGERS.items():
        assert "14.1" in why, trigger
    assert "raised" in reviews.UNSCHEDULED_TRIGGERS["moved-council-area"]


def test_moves_of_area_are_changes_of_council__joint_policy_14_1():
    told = [(date(2020, 1, 1), "LA-A"), (date(2026, 6, 10), "la-b"),
            (date(2026, 7, 1), "LA-B"), (date(2026, 9, 1), "LA-C")]
    assert reviews.moves_of_area(told) == [(date(2026, 6, 10), "LA-A", "LA-B"),
                                           (date(2026, 9, 1), "LA-B", "LA-C")]
    assert reviews.moves_of_area([(date(2026, 6, 10), "LA-B")]) == []  # first known: no move


def test_two_councils_told_for_one_date_are_no_move__joint_policy_14_1():
    told = [(date(2020, 1, 1), "LA-A"), (date(2026, 6, 10), "LA-B"), (date(2026, 6, 10), "LA-C"),
            (date(2026, 9, 1), "LA-C")]
    assert reviews.moves_of_area(told) == [(date(2026, 9, 1), "LA-A", "LA-C")]


MOVED = [residence("2020-01-01", "LA-A"), detention("2026-01-05"), left("2026-03-02")]


def test_a_move_after_leaving_hospital_prompts_an_unscheduled_review__joint_policy_14_1():
    pos = position_of([*MOVED, residence("2026-06-10", "LA-B")], today="2026-06-11")
    [prompt] = pos.review_prompts
    assert (prompt.trigger, prompt.since, prompt.moved_from, prompt.moved_to) == (
        "moved-council-area", date(2026, 6, 10), "LA-A", "LA-B")
    assert pos.entitlement.responsible_council == "LA-A"  # the move does not move it (4.3.1)


@pytest.mark.parametrize("held", ["2026-06-10", "2026-06-12"])
def test_a_review_on_or_after_the_move_answers_it__joint_policy_14_1(held):
    pos = position_of([*MOVED, residence("2026-06-10", "LA-B"), review(held, kind="unscheduled")],
                      today="2026-06-20")
    assert pos.review_prompts == []


def test_a_review_before_the_move_does_not_answer_it__joint_policy_14_1():
    pos = position_of([*MOVED, review("2026-06-01"), residence("2026-06-10", "LA-B")],
                      today="2026-06-20")
    assert [p.since for p in pos.review_prompts] == [date(2026, 6, 10)]


def test_a_move_on_leaving_hospital_or_while_in_hospital_prompts_nothing__joint_policy_14_1():
    # Placed in another area on discharge: the discharge plan's move, reviewed at 3 months.
    assert position_of([*MOVED, residence("2026-03-02", "LA-B")],
                       today="2026-03-20").review_prompts == []
    in_hospital = [residence("2020-01-01", "LA-A"), detention("2026-01-05"),
                   residence("2026-02-01", "LA-B")]
    assert position_of(in_hospital, today="2026-03-20").review_prompts == []
