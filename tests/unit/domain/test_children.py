"""Children and young people detained 12 consecutive weeks or more: the responsible council
must be notified (Children Act 1989 s85; joint policy 6.1). s117 applies to all ages (2.2)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from register_core.domain.rules import children

from .builders import child_notified, detention, position_of

BIRTH = date(2010, 6, 15)


@pytest.mark.parametrize(("day", "age"), [
    (date(2026, 6, 14), 15), (date(2026, 6, 15), 16), (date(2028, 6, 14), 17),
    (date(2028, 6, 15), 18),
])
def test_age_turns_on_the_birthday(day, age):
    assert children.age_on(BIRTH, day) == age


def test_a_leap_day_birthday_turns_on_1_march_in_other_years():
    leap = date(2008, 2, 29)
    assert children.age_on(leap, date(2026, 2, 28)) == 17
    assert children.age_on(leap, date(2026, 3, 1)) == 18


def test_child_until_the_18th_birthday():
    assert children.is_child_on(BIRTH, date(2028, 6, 14))
    assert not children.is_child_on(BIRTH, date(2028, 6, 15))
    assert not children.is_child_on(None, date(2020, 1, 1))


def test_a_child_detained_12_consecutive_weeks_must_be_notified__joint_policy_6_1():
    start = date(2025, 1, 6)
    assert children.s85_notification_due(BIRTH, start, start + timedelta(weeks=12),
                                         today=date(2026, 1, 1))


def test_a_day_short_of_12_weeks_is_not_yet_due__joint_policy_6_1():
    start = date(2025, 1, 6)
    assert not children.s85_notification_due(BIRTH, start, start + timedelta(days=83),
                                              today=date(2026, 1, 1))


def test_still_detained_counts_up_to_today__joint_policy_6_1():
    start = date(2025, 1, 6)
    assert not children.s85_notification_due(BIRTH, start, None, today=date(2025, 3, 30))
    assert children.s85_notification_due(BIRTH, start, None, today=date(2025, 3, 31))


def test_adults_need_no_s85_notification__joint_policy_6_1():
    adult = date(1990, 1, 1)
    assert not children.s85_notification_due(adult, date(2025, 1, 6), None,
                                              today=date(2026, 1, 1))


def test_a_child_who_turns_18_during_the_detention_still_counts__joint_policy_6_1():
    """The duty arises when a child is detained and likely to stay 12 weeks (6.1), so the
    age that counts is the age at the start of the detention."""
    start = BIRTH.replace(year=2028) - timedelta(days=30)  # a month before the 18th birthday
    assert children.s85_notification_due(BIRTH, start, None, today=start + timedelta(weeks=13))


def test_unknown_birth_date_is_not_assumed_a_child():
    assert not children.s85_notification_due(None, date(2025, 1, 6), None,
                                              today=date(2026, 1, 1))


def test_the_register_keeps_the_latest_s85_notification__joint_policy_6_1():
    pos = position_of([detention("2025-01-06"), child_notified("2025-02-01"),
                       child_notified("2025-03-01")], today="2025-04-01", birth="2010-06-15")
    assert pos.child_notified == date(2025, 3, 1)
    assert pos.entitlement.status == "pending"  # all ages (joint policy 2.2)
