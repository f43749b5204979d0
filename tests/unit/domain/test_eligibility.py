"""Who is entitled, and from when (s117-rules.md "Who is entitled").

Seeds: joint policy 1.1, 2.2, 3.3, 5.5, 8.4, 19.2; MoU 5 and 7; standards.md sections 1 and 6.
"""

from __future__ import annotations

from datetime import date

import pytest

from register_core.domain.position import Policy
from register_core.domain.rules import eligibility

from .builders import (
    cancel,
    confirmed,
    d,
    detention,
    left,
    legal,
    position_of,
    regrade,
)

ENTITLING_CODES = ["03", "09", "10", "15", "16", "17", "18", "37", "38"]
NOT_ENTITLING_CODES = ["01", "02", "04", "05", "06", "07", "08", "12", "13", "14", "19", "20",
                       "31", "32", "35", "36", "98", "99"]


# -- the pure rules -----------------------------------------------------------------------

def test_first_entitling_is_the_regrade_to_s3__joint_policy_3_3():
    sections = [("02", date(2024, 1, 1)), ("03", date(2024, 1, 20))]
    assert eligibility.first_entitling(sections) == ("03", date(2024, 1, 20))


def test_first_entitling_is_none_for_s2_alone__s117_rules():
    assert eligibility.first_entitling([("02", date(2024, 1, 1))]) is None
    assert eligibility.first_entitling([]) is None


def test_first_entitling_takes_the_earliest_even_if_given_out_of_order():
    sections = [("37", date(2024, 3, 1)), ("02", date(2024, 1, 1)), ("03", date(2024, 2, 1))]
    assert eligibility.first_entitling(sections) == ("03", date(2024, 2, 1))


@pytest.mark.parametrize("kind", ["left-hospital", "cto-start", "conditional-discharge-start",
                                  "s17-leave-start"])
def test_each_way_of_leaving_starts_the_duty__joint_policy_2_2_8_4(kind):
    assert eligibility.starts_entitlement(kind)


def test_s17_leave_is_a_local_choice_that_can_be_switched_off__standards_6_cxf():
    assert not eligibility.starts_entitlement("s17-leave-start", s17_leave_counts=False)
    assert eligibility.starts_entitlement("left-hospital", s17_leave_counts=False)


@pytest.mark.parametrize("kind", ["s17-leave-end", "transfer", "awol-start", "detention-ended",
                                  "section-change", "cto-end"])
def test_other_events_do_not_start_the_duty(kind):
    assert not eligibility.starts_entitlement(kind)


LEFT = ("left-hospital", date(2024, 3, 1))


def test_leaving_before_the_entitling_section_does_not_count__joint_policy_3_3():
    # s17 leave while still on s2 (10 Jan), regraded to s3 on 20 Jan, left on 1 Mar.
    leave = [(date(2024, 1, 10), None)]
    assert eligibility.leaving_in_force(date(2024, 1, 20), LEFT, leave) == (
        "left-hospital", date(2024, 3, 1), None)


def test_a_leave_running_at_discharge_starts_the_duty__joint_policy_8_4():
    leave = [(date(2024, 2, 1), None)]
    assert eligibility.leaving_in_force(date(2024, 1, 1), LEFT, leave) == (
        "s17-leave-start", date(2024, 2, 1), None)
    assert eligibility.leaving_in_force(date(2024, 1, 1), LEFT, leave,
                                        s17_leave_counts=False) == (
        "left-hospital", date(2024, 3, 1), None)


def test_no_leaving_means_no_start():
    assert eligibility.leaving_in_force(date(2024, 1, 1), None, []) is None


# -- through the register ------------------------------------------------------------------

@pytest.mark.parametrize("code", ENTITLING_CODES)
def test_each_entitling_code_gives_aftercare_on_leaving__joint_policy_3_3(code):
    pos = position_of([detention("2024-01-01", code), left("2024-03-01")])
    assert pos.entitlement.status == "active"
    assert pos.entitlement.start == date(2024, 3, 1)
    assert pos.entitlement.trigger_section == code


@pytest.mark.parametrize("code", NOT_ENTITLING_CODES)
def test_non_entitling_codes_give_no_aftercare_on_leaving__s117_rules(code):
    pos = position_of([detention("2024-01-01", code), left("2024-01-20")])
    assert pos.entitlement.status == "none"
    assert pos.entitlement.start is None
    assert "no entitling detention" in pos.explain["entitlement.status"].rule


def test_on_the_register_from_admission_as_pending__joint_policy_19_2_mou_5():
    pos = position_of([detention("2024-01-01", "03")], today="2024-01-02")
    assert pos.entitlement.status == "pending"
    assert pos.entitlement.pending_since == date(2024, 1, 1)
    assert pos.entitlement.start is None
    assert pos.entitlement.next_review_due is None
    assert pos.in_hospital
    assert "19.2" in pos.explain["entitlement.status"].rule


def test_s2_regraded_to_s3_becomes_entitling_from_the_regrade__joint_policy_3_3():
    pos = position_of([detention("2024-01-01", "02"), regrade("2024-01-20", "03")],
                      today="2024-02-01")
    assert pos.entitlement.status == "pending"
    assert pos.entitlement.pending_since == date(2024, 1, 20)
    assert pos.entitlement.trigger_section == "03"


def test_s2_regraded_to_s3_then_discharged_is_active__joint_policy_3_3():
    pos = position_of([detention("2024-01-01", "02"), regrade("2024-01-20", "03"),
                       left("2024-04-01")])
    assert pos.entitlement.status == "active"
    assert pos.entitlement.start == date(2024, 4, 1)


def test_s2_then_informal_then_leaving_is_not_entitled__s117_rules():
    pos = position_of([detention("2024-01-01", "02"), legal("detention-ended", "2024-01-25"),
                       left("2024-02-10")])
    assert pos.entitlement.status == "none"


def test_starts_on_leaving_hospital__joint_policy_1_1_2_2():
    pos = position_of([detention("2024-01-01"), left("2024-05-15")])
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2024, 5, 15))
    assert not pos.in_hospital


def test_still_pending_the_day_before_leaving__joint_policy_2_2():
    commands = [detention("2024-01-01"), left("2024-05-15")]
    assert position_of(commands, today="2024-05-14").entitlement.status == "pending"
    assert position_of(commands, today="2024-05-15").entitlement.status == "active"


def test_starts_on_s17_leave_by_default__joint_policy_2_2_8_4():
    pos = position_of([detention("2024-01-01"), legal("s17-leave-start", "2024-03-01"),
                       left("2024-04-01")])
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2024, 3, 1))
    assert "s17-leave-start" in pos.explain["entitlement.start"].rule


def test_s17_leave_does_not_start_it_when_the_partnership_says_not__standards_6_cxf():
    policy = Policy(s17_leave_starts_entitlement=False)
    commands = [detention("2024-01-01"), legal("s17-leave-start", "2024-03-01")]
    assert position_of(commands, today="2024-03-10", policy=policy).entitlement.status \
        == "pending"
    pos = position_of([*commands, left("2024-04-01")], policy=policy)
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2024, 4, 1))


def test_s17_leave_on_s2_before_the_regrade_does_not_start_it__joint_policy_3_3():
    pos = position_of([detention("2024-01-01", "02"), legal("s17-leave-start", "2024-01-10"),
                       legal("s17-leave-end", "2024-01-12"), regrade("2024-01-20"),
                       left("2024-03-01")])
    assert pos.entitlement.start == date(2024, 3, 1)


def test_starts_when_going_onto_a_cto__joint_policy_2_2_s17a():
    pos = position_of([detention("2024-01-01"), legal("cto-start", "2024-03-01")],
                      today="2024-06-01")
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2024, 3, 1))
    assert pos.on_cto
    assert not pos.in_hospital
    assert pos.detentions[0].end_reason == "cto"


def test_starts_on_conditional_discharge__standards_6():
    pos = position_of([detention("2024-01-01", "09"),
                       legal("conditional-discharge-start", "2024-06-01")], today="2024-07-01")
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2024, 6, 1))
    assert pos.conditionally_discharged
    assert not pos.on_cto


def test_staying_informally_after_detention_ends_then_leaving__joint_policy_5_5():
    commands = [detention("2024-01-01"), legal("detention-ended", "2024-03-01"),
                left("2024-04-10")]
    during = position_of(commands, today="2024-03-15")
    assert during.entitlement.status == "pending"
    assert during.in_hospital
    after = position_of(commands, today="2024-04-10")
    assert (after.entitlement.status, after.entitlement.start) == ("active", date(2024, 4, 10))


def test_applies_to_children_too__joint_policy_2_2():
    pos = position_of([detention("2024-01-01"), left("2024-03-01")], birth="2010-06-01")
    assert pos.entitlement.status == "active"


def test_council_confirmation_alone_puts_the_person_on_the_register():
    pos = position_of([confirmed("2019-05-01")])
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2019, 5, 1))
    assert "confirmed by the council" in pos.explain["entitlement.start"].rule


def test_the_same_detention_told_by_two_sources_is_one_detention():
    pos = position_of([detention("2024-01-01", "03", episode="trust-ep-9"),
                       detention("2024-01-01", "3", episode="council-77", source="council"),
                       left("2024-03-01", episode="trust-ep-9")])
    assert len(pos.detentions) == 1
    assert pos.entitlement.status == "active"


def test_a_cancelled_admission_entitles_to_nothing__standards_2_a11():
    pos = position_of([detention("2024-01-01"), cancel("detention-started")])
    assert pos.entitlement.status == "none"
    assert pos.detentions == []


def test_a_cancelled_discharge_puts_the_person_back_in_hospital__standards_2_a13():
    pos = position_of([detention("2024-01-01"), left("2024-03-01"), cancel("left-hospital")])
    assert pos.entitlement.status == "pending"
    assert pos.in_hospital


def test_a_leaving_dated_the_same_day_as_admission_is_not_lost_when_sent_first():
    # Was a bug: facts of one day were folded in the order they were recorded, so a discharge
    # recorded before its same-day admission was dropped.
    forwards = position_of([detention("2024-01-10"), left("2024-01-10")])
    backwards = position_of([left("2024-01-10"), detention("2024-01-10")])
    for pos in (forwards, backwards):
        assert (pos.entitlement.status, pos.entitlement.start) == ("active", d("2024-01-10"))
