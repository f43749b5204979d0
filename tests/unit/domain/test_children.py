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


# -- exactly as 6.1 says: "likely to be for at least 12 consecutive weeks" ------------------
# Twelve weeks from a Monday admission end with the Sunday 83 days on: due from the Monday
# 84 days on (the statute's "three months" would come a few days later still). "Likely":
# due as soon as the detention is expected to last that long.

START = date(2026, 1, 5)  # a Monday


def test_twelve_weeks_are_reached_on_the_same_weekday_84_days_on__joint_policy_6_1():
    assert children.twelve_weeks_on(START) == date(2026, 3, 30)
    assert children.twelve_weeks_on(START).weekday() == START.weekday()


@pytest.mark.parametrize(("today", "ground"), [
    (date(2026, 3, 29), None), (date(2026, 3, 30), "reached")])
def test_still_in_hospital_either_side_of_12_weeks__joint_policy_6_1(today, ground):
    assert children.s85_notification_ground(BIRTH, START, None, today) == ground


@pytest.mark.parametrize(("left_on", "ground"), [
    (date(2026, 3, 29), None), (date(2026, 3, 30), "reached")])
def test_discharged_either_side_of_12_weeks__joint_policy_6_1(left_on, ground):
    assert children.s85_notification_ground(BIRTH, START, left_on, date(2026, 6, 1)) == ground


@pytest.mark.parametrize(("expected", "ground"), [
    (date(2026, 3, 29), None), (date(2026, 3, 30), "expected"), (date(2026, 7, 5), "expected")])
def test_expected_to_last_12_weeks_is_due_at_once__joint_policy_6_1_likely(expected, ground):
    """6.1: "likely to be for at least 12 consecutive weeks": an expected end 12 weeks or more
    after the start makes the notification due on the first day, not at week 12."""
    assert children.s85_notification_ground(BIRTH, START, None, START, expected) == ground
    assert children.s85_notification_due(BIRTH, START, None, START, expected) == bool(ground)


def test_an_expected_end_does_not_make_an_adult_or_an_ended_stay_due__joint_policy_6_1():
    assert children.s85_notification_ground(date(1990, 1, 1), START, None, START,
                                            date(2026, 7, 5)) is None
    # Left after 4 weeks: what was once expected no longer counts.
    assert children.s85_notification_ground(BIRTH, START, date(2026, 2, 2), date(2026, 3, 1),
                                            date(2026, 7, 5)) is None


def test_the_register_keeps_the_latest_expected_end_of_a_detention__joint_policy_6_1():
    pos = position_of([detention("2026-01-05", end="2026-03-01"),
                       detention("2026-01-05", end="2026-05-01", source="council")],
                      today="2026-01-06", birth="2010-06-15")
    [ep] = pos.detentions
    assert (ep.end, ep.expected_end) == (None, date(2026, 5, 1))
    assert position_of([detention("2026-01-05", end="2026-03-01")],
                       today="2026-03-01").detentions[0].expected_end is None  # now the end
