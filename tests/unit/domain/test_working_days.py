"""England working days: Monday to Friday less England bank holidays (standards.md section 5).

The 5-working-day duty (joint policy 19.6) and the dispute stages count in them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from register_core.domain.calendar import (
    add_working_days,
    england_date,
    is_bank_holiday,
    is_working_day,
    working_days_between,
)
from register_core.ports import FixedClock

CHRISTMAS_2026 = [date(2026, 12, 25), date(2026, 12, 28)]  # Fri; Mon substitute for Boxing Day


def test_christmas_2026_and_the_boxing_day_substitute_are_bank_holidays__standards_5():
    assert all(is_bank_holiday(day) for day in CHRISTMAS_2026)
    assert is_bank_holiday(date(2026, 12, 26))  # Saturday Boxing Day is listed too
    assert not any(is_working_day(day) for day in CHRISTMAS_2026)
    assert is_working_day(date(2026, 12, 24))
    assert is_working_day(date(2026, 12, 29))


def test_weekends_are_not_working_days():
    assert not is_working_day(date(2026, 1, 3))  # Saturday
    assert not is_working_day(date(2026, 1, 4))  # Sunday
    assert is_working_day(date(2026, 1, 5))


@pytest.mark.parametrize("day", [date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 4),
                                 date(2026, 5, 25), date(2026, 8, 31), date(2027, 1, 1),
                                 date(2027, 12, 27), date(2027, 12, 28)])
def test_england_bank_holidays_are_not_working_days(day):
    assert not is_working_day(day)


def test_a_scottish_only_holiday_is_a_working_day_in_england():
    assert is_working_day(date(2026, 1, 2))  # 2 January is a bank holiday in Scotland only


def test_one_working_day_after_christmas_eve_2026_is_the_29th():
    assert add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)


def test_status_change_noticed_before_christmas_is_due_after_it__joint_policy_19_6():
    # Notice on Fri 18 Dec 2026: 21, 22, 23, 24, (25 Christmas, 26-27 weekend, 28 substitute)
    # 29 -> the fifth working day is Tue 29 Dec.
    assert add_working_days(date(2026, 12, 18), 5) == date(2026, 12, 29)
    assert working_days_between(date(2026, 12, 18), date(2026, 12, 29)) == 5


def test_easter_2026_is_skipped():
    # Thu 2 Apr 2026; Good Friday 3 Apr and Easter Monday 6 Apr are bank holidays.
    assert add_working_days(date(2026, 4, 2), 1) == date(2026, 4, 7)


def test_counting_from_a_weekend_starts_on_monday():
    assert add_working_days(date(2026, 1, 3), 1) == date(2026, 1, 5)


def test_zero_working_days_is_the_start_itself():
    assert add_working_days(date(2026, 12, 25), 0) == date(2026, 12, 25)


def test_negative_working_days_are_refused():
    with pytest.raises(ValueError):
        add_working_days(date(2026, 1, 5), -1)


def test_working_days_between_excludes_the_start_and_includes_the_end():
    monday, friday = date(2026, 1, 5), date(2026, 1, 9)
    assert working_days_between(monday, friday) == 4
    assert working_days_between(friday, monday) == 0
    assert working_days_between(monday, monday) == 0


dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))


@given(dates, st.integers(min_value=1, max_value=400))
def test_add_working_days_lands_on_a_working_day_and_counts_back__property(start, n):
    end = add_working_days(start, n)
    assert is_working_day(end)
    assert end > start
    assert working_days_between(start, end) == n
    # and it is the *first* such day: the day before holds one fewer working day
    assert working_days_between(start, end - timedelta(days=1)) == n - 1


@given(dates, st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
def test_working_days_between_adds_up__property(start, gap1, gap2):
    middle = start + timedelta(days=gap1)
    end = middle + timedelta(days=gap2)
    assert working_days_between(start, end) == (
        working_days_between(start, middle) + working_days_between(middle, end))


@given(dates, st.integers(min_value=0, max_value=60))
def test_working_days_between_counts_weekdays_that_are_not_bank_holidays__property(start, gap):
    end = start + timedelta(days=gap)
    expected = sum(1 for i in range(1, gap + 1)
                   if (start + timedelta(days=i)).weekday() < 5
                   and not is_bank_holiday(start + timedelta(days=i)))
    assert working_days_between(start, end) == expected


@pytest.mark.parametrize(("moment", "day"), [
    # Summer: London is UTC+1, so 23:30 UTC on 30 June is already 1 July in England.
    (datetime(2027, 6, 30, 23, 30, tzinfo=UTC), date(2027, 7, 1)),
    (datetime(2027, 6, 30, 22, 59, tzinfo=UTC), date(2027, 6, 30)),
    # Winter: London is on UTC.
    (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), date(2026, 12, 31)),
    (datetime(2027, 6, 30, 23, 30), date(2027, 7, 1)),  # naive: taken as UTC
])
def test_today_is_the_date_in_england(moment: datetime, day: date) -> None:
    assert england_date(moment) == day
    assert FixedClock(moment).today() == day
