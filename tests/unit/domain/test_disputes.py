"""Dispute stages and deadlines (s117-escalation-dispute-protocol.txt section 5 and 7;
MoU 6; s117-rules.md dispute table). Deadlines count England working days."""

from __future__ import annotations

from datetime import date

import pytest

from register_core.domain.errors import InvalidValue
from register_core.domain.rules import disputes


@pytest.mark.parametrize("kind", ["eligibility", "scope", "funding", "accommodation",
                                  "responsibility", "other"])
def test_disputes_start_at_frontline_stage_1__protocol_5(kind):
    assert disputes.initial_stage(kind) == 1


def test_ending_disputes_start_at_strategic_stage_3__protocol_7_mou_6():
    assert disputes.initial_stage("ending") == 3


def test_unknown_dispute_kind_is_refused_naming_field_and_rule():
    with pytest.raises(InvalidValue) as err:
        disputes.initial_stage("budget")
    assert (err.value.field, err.value.rule) == ("kind", "dispute-kind")


def test_stage_1_resolves_within_5_working_days__protocol_5():
    # architecture.md section 7 example: opened Tue 2 Mar 2027, stage 1 due Tue 9 Mar 2027
    assert disputes.stage_due(date(2027, 3, 2), 1) == date(2027, 3, 9)


def test_stage_2_resolves_within_10_working_days__protocol_5():
    # Mon 1 Feb 2027 + 10 working days (no holidays) = Mon 15 Feb 2027
    assert disputes.stage_due(date(2027, 2, 1), 2) == date(2027, 2, 15)


def test_stage_3_resolves_within_15_working_days__protocol_5():
    # Mon 1 Feb 2027 + 15 working days = Mon 22 Feb 2027
    assert disputes.stage_due(date(2027, 2, 1), 3) == date(2027, 2, 22)


def test_stage_4_external_has_no_deadline__protocol_5():
    assert disputes.stage_due(date(2027, 2, 1), 4) is None


def test_stage_1_over_christmas_2026_skips_the_bank_holidays__protocol_5_standards_5():
    # Tue 22 Dec 2026: 23, 24, (25 Christmas, 26-27 weekend, 28 Boxing Day substitute),
    # 29, 30, 31 -> the fifth working day is Thu 31 Dec 2026.
    assert disputes.stage_due(date(2026, 12, 22), 1) == date(2026, 12, 31)


def test_stage_3_over_easter_2027_skips_good_friday_and_easter_monday__protocol_5():
    # Mon 22 Mar 2027: 23, 24, 25, (26 Good Friday, 27-28 weekend, 29 Easter Monday),
    # 30, 31 Mar, 1, 2, 5, 6, 7, 8, 9, 12, 13, 14 Apr -> the fifteenth is Wed 14 Apr 2027.
    assert disputes.stage_due(date(2027, 3, 22), 3) == date(2027, 4, 14)


@pytest.mark.parametrize("stage", [0, 5, -1])
def test_there_are_only_four_stages(stage):
    with pytest.raises(InvalidValue) as err:
        disputes.stage_due(date(2027, 2, 1), stage)
    assert (err.value.field, err.value.rule) == ("stage", "dispute-stage")


def test_escalation_goes_1_2_3_4_then_is_refused__protocol_5():
    assert [disputes.next_stage(s) for s in (1, 2, 3)] == [2, 3, 4]
    with pytest.raises(InvalidValue) as err:
        disputes.next_stage(4)
    assert (err.value.field, err.value.rule) == ("stage", "dispute-stage")


def test_an_ending_dispute_escalates_to_external_then_no_further__protocol_7():
    stage = disputes.initial_stage("ending")
    stage = disputes.next_stage(stage)
    assert stage == 4
    assert disputes.stage_due(date(2027, 2, 1), stage) is None
    with pytest.raises(InvalidValue):
        disputes.next_stage(stage)


@pytest.mark.parametrize("stage", [0, -3, 7])
def test_escalating_from_a_stage_that_does_not_exist_is_refused(stage):
    # Was a bug: next_stage(0) returned 1 and next_stage(-3) returned -2.
    with pytest.raises(InvalidValue):
        disputes.next_stage(stage)


def test_overdue_only_after_the_due_day_and_only_while_unresolved__protocol_5():
    due = date(2027, 3, 9)
    assert not disputes.is_stage_overdue(due, date(2027, 3, 9), resolved=False)
    assert disputes.is_stage_overdue(due, date(2027, 3, 10), resolved=False)
    assert not disputes.is_stage_overdue(due, date(2027, 3, 10), resolved=True)


def test_an_external_stage_is_never_overdue__protocol_5():
    assert not disputes.is_stage_overdue(None, date(2030, 1, 1), resolved=False)
