"""Endings through the register, as the audit of the ending rules walked them (s117-rules.md
"Ending aftercare" and "Disputes"; standards.md section 6).

Seeds: joint policy 16.1, 16.3 (a joint decision after a joint recorded review, with
reasons), 7.3 (a named practitioner for every person subject to s117), 7.2 and 19.2 (the plan);
dispute protocol 3 and 7 (disputes about ending start at stage 3; care continues throughout);
standards.md section 6 (conditional discharge: liable to recall, flag any ending during it).
"""

from __future__ import annotations

from datetime import date

from .builders import (
    detention,
    dispute_opened,
    dispute_resolved,
    ended,
    left,
    legal,
    plan,
    position_of,
    practitioner,
    record_all,
    residence,
    review,
)

# s3 admission 1 June 2026, discharged 3 August 2026.
DISCHARGED = [residence("2020-01-01", "LA-A"), detention("2026-06-01"), left("2026-08-03")]


# -- a dispute about ending is open: care continues (dispute protocol 3, 7) -----------------

def test_an_ending_dated_while_an_ending_dispute_is_open_does_not_end_it__protocol_3_7():
    commands = [*DISCHARGED, dispute_opened("2026-11-16"), review("2026-11-18"),
                ended("2026-11-20")]
    pos = position_of(commands, today="2026-11-25")
    ent = pos.entitlement
    assert (ent.status, ent.ended) == ("active", None)
    [refused] = pos.refused_endings
    assert [(v.rule, v.exception_kind) for v in refused.violations] == [
        ("no-ending-during-dispute", "ended-during-dispute")]
    # The status says why, naming the dispute and citing the facts that logged it.
    status = pos.explain["entitlement.status"]
    assert "dispute dispute-1" in status.rule and "care continues" in status.rule
    person = record_all(commands)
    assert person.facts[3].cite() in status.facts  # the dispute opened
    assert person.facts[5].cite() in status.facts  # the ending it held back
    assert [(s.id, s.kind, s.opened, s.resolved) for s in pos.disputes] == [
        ("dispute-1", "ending", date(2026, 11, 16), None)]


def test_the_refusal_stands_once_the_dispute_is_resolved_after_the_ending__protocol_3_7():
    # The dispute was open on the ending's date: the resolution does not revive that
    # ending (its outcome may well be that aftercare goes on).
    commands = [*DISCHARGED, dispute_opened("2026-11-16"), review("2026-11-18"),
                ended("2026-11-20"), dispute_resolved("2026-12-01")]
    pos = position_of(commands, today="2026-12-02")
    assert pos.entitlement.status == "active"
    assert pos.disputes[0].resolved == date(2026, 12, 1)
    assert [v.rule for v in pos.refused_endings[0].violations] == ["no-ending-during-dispute"]


def test_an_ending_recorded_on_or_after_the_resolution_ends_it__protocol_3_7_16_1():
    base = [*DISCHARGED, dispute_opened("2026-11-16"), review("2026-11-18"),
            ended("2026-11-20")]
    same_day = [*base, ended("2026-12-01"), dispute_resolved("2026-12-01")]
    pos = position_of(same_day, today="2026-12-01")
    assert pos.entitlement.status == "ended"
    assert pos.entitlement.ended.date == date(2026, 12, 1)  # type: ignore[union-attr]
    assert len(pos.refused_endings) == 1  # the one during the dispute stays refused
    # Before the resolution is recorded, the same-day ending is held back too.
    held = position_of([*base, ended("2026-12-01")], today="2026-12-01")
    assert held.entitlement.status == "active"
    later = position_of([*base, dispute_resolved("2026-12-01"), ended("2026-12-10")],
                        today="2026-12-11")
    assert later.entitlement.ended.date == date(2026, 12, 10)  # type: ignore[union-attr]


def test_other_disputes_do_not_hold_an_ending_back__joint_policy_16_1():
    commands = [*DISCHARGED, dispute_opened("2026-11-16", kind="funding"),
                review("2026-11-18"), ended("2026-11-20")]
    assert position_of(commands, today="2026-11-25").entitlement.status == "ended"


def test_an_ending_dispute_opened_after_the_ending_took_effect_changes_nothing():
    commands = [*DISCHARGED, review("2026-11-18"), ended("2026-11-20"),
                dispute_opened("2026-11-23")]
    pos = position_of(commands, today="2026-11-25")
    assert pos.entitlement.status == "ended" and pos.refused_endings == []


# -- a joint recorded review (16.1, 16.3): flagged when none is on the register -----------

def _flag_rules(pos) -> list[str]:  # type: ignore[no-untyped-def]
    return [flag.rule for flagged in pos.flagged_endings for flag in flagged.flags]


def test_an_ending_with_no_review_at_all_stands_flagged__joint_policy_16_1_16_3():
    """Both signed with reasons: the joint decision stands (the hub may not hear of every
    review), and the missing review is put in front of a person."""
    pos = position_of([*DISCHARGED, ended("2026-11-02")], today="2026-11-10")
    assert pos.entitlement.status == "ended" and pos.refused_endings == []
    assert _flag_rules(pos) == ["ending-after-joint-review"]
    assert [f.exception_kind for flagged in pos.flagged_endings for f in flagged.flags] == [
        "ended-without-review"]
    assert "joint recorded review" in pos.explain["entitlement.ended"].rule


def test_a_review_not_known_to_be_single_agency_answers_the_flag__16_1_mou_5():
    # MoU 5: "Reviews will be joint, recorded". A review told as joint answers the flag; one
    # told as single-agency does not (test_ending_seeds.py), and the ending stays flagged.
    pos = position_of([*DISCHARGED, review("2026-10-20", joint=True), ended("2026-11-02")],
                      today="2026-11-10")
    assert pos.entitlement.status == "ended" and _flag_rules(pos) == []
    assert "after the review of 2026-10-20" in pos.explain["entitlement.ended"].rule
    single = position_of([*DISCHARGED, review("2026-10-20", joint=False), ended("2026-11-02")],
                         today="2026-11-10")
    assert single.entitlement.status == "ended"
    assert _flag_rules(single) == ["ending-after-joint-review"]


def test_the_review_must_be_held_on_or_before_the_ending__16_1():
    after = position_of([*DISCHARGED, ended("2026-11-02"), review("2026-11-05")],
                        today="2026-11-10")
    assert after.entitlement.status == "ended"
    assert _flag_rules(after) == ["ending-after-joint-review"]
    same_day = position_of([*DISCHARGED, review("2026-11-02"), ended("2026-11-02")],
                           today="2026-11-10")
    assert same_day.entitlement.status == "ended" and _flag_rules(same_day) == []


def test_a_review_held_before_leaving_hospital_does_not_count__16_1_14_1():
    # A pre-discharge planning meeting is no review of the aftercare an ending ends.
    pos = position_of([*DISCHARGED[:2], review("2026-07-20"), left("2026-08-03"),
                       ended("2026-11-02")], today="2026-11-10")
    assert _flag_rules(pos) == ["ending-after-joint-review"]


def test_a_review_from_an_earlier_period_does_not_count__16_1():
    commands = [detention("2024-01-08", episode="ep-0"), left("2024-03-01", episode="ep-0"),
                review("2024-05-20"), ended("2024-06-03"),
                detention("2026-06-01"), left("2026-08-03"), ended("2026-11-02")]
    pos = position_of(commands, today="2026-11-10")
    assert pos.entitlement.status == "ended"
    assert pos.entitlement.start == date(2026, 8, 3)
    assert _flag_rules(pos) == ["ending-after-joint-review"]


# -- conditional discharge: liable to recall (standards.md section 6) -----------------------

CONDITIONALLY_DISCHARGED = [
    residence("2020-01-01", "LA-A"), detention("2026-06-01", "09"),
    legal("conditional-discharge-start", "2026-08-03", section="09"), review("2026-10-20")]


def test_an_ending_during_a_conditional_discharge_stands_but_is_flagged__standards_6():
    pos = position_of([*CONDITIONALLY_DISCHARGED, ended("2026-11-02")], today="2026-11-10")
    assert pos.conditionally_discharged
    assert pos.entitlement.status == "ended"
    assert pos.refused_endings == []
    [flagged] = pos.flagged_endings
    assert [(f.rule, f.exception_kind) for f in flagged.flags] == [
        ("ending-during-conditional-discharge", "ended-during-conditional-discharge")]
    assert "recall" in pos.explain["entitlement.ended"].rule


def test_an_ending_after_the_conditional_discharge_ended_is_not_flagged__standards_6():
    pos = position_of([*CONDITIONALLY_DISCHARGED,
                       legal("conditional-discharge-end", "2026-10-30", section="09"),
                       ended("2026-11-02")], today="2026-11-10")
    assert pos.entitlement.status == "ended" and pos.flagged_endings == []


# -- the named practitioner and plan are the current period's (7.3; 7.2, 19.2) --------------

ENDED_IN_2025 = [
    residence("2020-01-01", "LA-A"), detention("2025-01-06", episode="ep-0"),
    practitioner("worker-17", "2025-01-10"), plan("2025-03-01"),
    left("2025-03-01", episode="ep-0"), review("2025-05-20"), ended("2025-06-02")]


def test_a_new_period_does_not_inherit_the_ended_periods_practitioner_or_plan__7_3():
    commands = [*ENDED_IN_2025, detention("2026-09-01"), left("2026-10-01")]
    pending = position_of(commands, today="2026-09-15").entitlement
    assert (pending.status, pending.named_practitioner) == ("pending", None)
    pos = position_of(commands, today="2026-10-20")
    ent = pos.entitlement
    assert (ent.status, ent.start) == ("active", date(2026, 10, 1))
    assert (ent.named_practitioner, ent.aftercare_plan_date) == (None, None)
    said = pos.explain["entitlement.named_practitioner"]
    assert "none named in this s117 period" in said.rule and "2025-06-02" in said.rule
    assert "none agreed in this s117 period" in pos.explain["entitlement.aftercare_plan"].rule
    # While it was the current period, the ended one kept its own.
    at_end = position_of(commands, today="2025-07-01").entitlement
    assert (at_end.status, at_end.named_practitioner, at_end.aftercare_plan_date) == (
        "ended", "worker-17", date(2025, 3, 1))


def test_a_practitioner_named_in_the_new_period_is_its_practitioner__7_3():
    commands = [*ENDED_IN_2025, detention("2026-09-01"), practitioner("worker-23", "2026-09-03"),
                plan("2026-09-28"), left("2026-10-01")]
    ent = position_of(commands, today="2026-10-20").entitlement
    assert (ent.named_practitioner, ent.aftercare_plan_date) == ("worker-23",
                                                                 date(2026, 9, 28))
