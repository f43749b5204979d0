"""Endings the rules refuse (joint policy 16.1-16.3, 16.6, 16.9) and sources that disagree."""

from __future__ import annotations

from datetime import date

from ..domain.builders import (
    COUNCIL_A,
    COUNCIL_B,
    confirmed,
    details,
    detention,
    dispute_opened,
    dispute_resolved,
    ended,
    left,
    legal,
    plan,
    practitioner,
    regrade,
    residence,
    review,
)
from .helpers import council_detention, found, from_source, kinds, of_kind, run

KEPT = [detention("2026-01-05"), practitioner("worker-17", "2026-01-08"), plan("2026-02-27"),
        left("2026-03-02"), confirmed("2026-03-02")]
# With the joint review an ending needs (16.1), so each test below sees the rule it is about.
REVIEWED = [*KEPT, review("2026-03-25", kind="unscheduled")]


# -- endings ---------------------------------------------------------------------------------

def test_an_ending_by_the_council_alone_is_one_sided_and_the_entitlement_stays_active():
    findings, pos = run([*REVIEWED, ended("2026-04-01", icb=False)], "2026-04-10")
    assert pos.entitlement.status == "active"
    [one_sided] = findings
    assert one_sided.kind == "one-sided-ending"
    assert one_sided.detail["ending"] | {"grounds": None} == {
        "date": "2026-04-01", "source": "council", "reason_given": True,
        "council_signed": True, "icb_signed": False, "grounds": None}
    assert [v["rule"] for v in one_sided.detail["violations"]] == ["joint-ending"]
    assert one_sided.detail["entitlement_status"] == "active"
    assert "council-officer-1" not in repr(one_sided)  # no sign-off names


def test_an_ending_without_reasons_or_on_a_forbidden_ground_alone_is_raised():
    no_reason = of_kind(found([*REVIEWED, ended("2026-04-01", reason=None)], "2026-04-10"),
                        "one-sided-ending")
    assert [v["rule"] for v in no_reason[0].detail["violations"]] == ["ending-needs-reasons"]
    refused = of_kind(found([*REVIEWED, ended("2026-04-01", grounds=("refused-plan",))],
                            "2026-04-10"), "one-sided-ending")
    assert [v["rule"] for v in refused[0].detail["violations"]] == ["forbidden-sole-ground"]


def test_an_ending_while_on_a_cto_is_ended_on_cto_and_one_sided_as_well_when_it_is():
    on_cto = [*KEPT[:3], legal("cto-start", "2026-03-02"), confirmed("2026-03-02"),
              review("2026-04-20")]
    findings, pos = run([*on_cto, ended("2026-05-01")], "2026-05-10")
    assert [f.kind for f in findings] == ["ended-on-cto"]
    assert pos.entitlement.status == "active" and pos.on_cto
    both = kinds([*on_cto, ended("2026-05-01", icb=False)], "2026-05-10")
    assert both == ["ended-on-cto", "one-sided-ending"]


def test_an_ending_with_nothing_active_to_end_is_a_source_conflict():
    [conflict] = of_kind(found([detention("2026-01-05"), ended("2026-02-01")], "2026-02-10"),
                         "source-conflict")
    assert conflict.detail["violations"][0]["rule"] == "ending-needs-active-entitlement"


def test_a_lawful_joint_ending_raises_nothing():
    assert kinds([*KEPT, review("2026-05-01"), ended("2026-05-01")], "2027-01-01") == []


def test_an_ending_with_no_review_on_the_register_stands_and_is_flagged__joint_policy_16_1():
    findings, pos = run([*KEPT, ended("2026-05-01")], "2026-05-10")
    assert pos.entitlement.status == "ended"
    [flag] = findings
    assert flag.kind == "ended-without-review"
    assert [v["rule"] for v in flag.detail["violations"]] == ["ending-after-joint-review"]
    assert "joint recorded review" in flag.detail["violations"][0]["message"]
    assert "no review on the register" in flag.summary and "stands" in flag.summary


def test_an_ending_while_an_ending_dispute_is_open_is_raised_naming_it__protocol_3_7():
    during = [*REVIEWED, dispute_opened("2026-03-30"), ended("2026-04-01")]
    findings, pos = run(during, "2026-04-10")
    assert pos.entitlement.status == "active"
    [held] = findings
    assert held.kind == "ended-during-dispute"
    assert held.detail["disputes"] == [{"id": "dispute-1", "opened": "2026-03-30",
                                        "resolved": None}]
    assert [v["rule"] for v in held.detail["violations"]] == ["no-ending-during-dispute"]
    assert "still open" in held.summary and "(now active)" in held.summary
    # Resolved since: the same finding (same fingerprint), its summary says what to do.
    findings, pos = run([*during, dispute_resolved("2026-04-15")], "2026-04-16")
    [after] = findings
    assert after.fingerprint == held.fingerprint
    assert after.detail["disputes"][0]["resolved"] == "2026-04-15"
    assert "resolved on 2026-04-15" in after.summary
    assert "record the ending again" in after.summary
    # The ending recorded after the outcome ends it; the refused one is still raised.
    assert kinds([*during, dispute_resolved("2026-04-15"), ended("2026-04-20")],
                 "2026-04-21") == ["ended-during-dispute"]


def test_an_ending_during_a_conditional_discharge_is_flagged_and_stands__standards_6():
    cd = [detention("2026-01-05", "09"), practitioner("worker-17", "2026-01-08"),
          plan("2026-02-27"), legal("conditional-discharge-start", "2026-03-02", section="09"),
          confirmed("2026-03-02"), review("2026-04-20"), ended("2026-05-01")]
    findings, pos = run(cd, "2026-05-10")
    assert pos.entitlement.status == "ended"
    [flag] = findings
    assert flag.kind == "ended-during-conditional-discharge"
    assert flag.detail["entitlement_status"] == "ended"
    assert "recall" in flag.summary and "stands" in flag.summary
    assert flag.detail["violations"][0]["rule"] == "ending-during-conditional-discharge"


# -- detentions told differently ---------------------------------------------------------------

def test_sources_disagreeing_on_a_detentions_start_are_a_conflict_naming_both():
    [conflict] = found([*KEPT, *council_detention("2026-01-06")], "2026-04-01")
    assert conflict.kind == "source-conflict"
    assert conflict.detail["field"] == "detention.start"
    assert [(v["source"], v["value"]) for v in conflict.detail["values"]] == [
        ("council", "2026-01-06"), ("trust-a", "2026-01-05")]
    assert all(v["facts"] for v in conflict.detail["values"])


def test_a_council_that_tells_the_detention_from_the_regrade_agrees():
    trust = [detention("2026-01-05", "02"), regrade("2026-01-20", "03"),
             practitioner("worker-17", "2026-01-21"), plan("2026-02-27"), left("2026-03-02"),
             confirmed("2026-03-02")]
    assert kinds([*trust, *council_detention("2026-01-20")], "2026-04-01") == []


def test_a_council_still_holding_the_s2_disagrees_on_the_section():
    trust = [detention("2026-01-05", "02"), regrade("2026-01-20", "03")]
    conflict = of_kind(found([*trust, *council_detention("2026-01-05", "02")], "2026-02-01"),
                       "source-conflict")
    assert [c.detail["field"] for c in conflict] == ["detention.section"]
    assert "Section 2 (02)" in conflict[0].summary and "Section 3 (03)" in conflict[0].summary


def test_different_ends_conflict_but_a_source_not_knowing_the_end_does_not():
    assert [f.detail["field"] for f in of_kind(
        found([*KEPT, *council_detention("2026-01-05", end="2026-03-05")], "2026-04-01"),
        "source-conflict")] == ["detention.end"]
    assert kinds([*KEPT, *council_detention("2026-01-05")], "2026-04-01") == []


def test_sources_naming_different_icbs_for_the_same_detention_conflict():
    trust = [detention("2026-01-05", icb="ICB-X")]
    council = council_detention("2026-01-05", icb="ICB-Y")
    assert [f.detail["field"] for f in of_kind(found([*trust, *council], "2026-01-06"),
                                                 "source-conflict")] == [
        "detention.responsible_icb"]


def test_detentions_at_different_times_are_not_compared():
    earlier = council_detention("2024-02-01", end="2024-04-01")
    assert kinds([*earlier, *KEPT], "2026-04-01") == []


# -- alive or deceased -------------------------------------------------------------------------

def test_sources_disagreeing_on_the_date_of_death_conflict():
    told = [*KEPT, details(death_date=date(2026, 5, 1), as_of="2026-05-02"),
            from_source(details(death_date=date(2026, 5, 3), as_of="2026-05-04"), "council")]
    [conflict] = found(told, "2026-06-01")
    assert conflict.detail["field"] == "person.death_date"
    assert [(v["source"], v["value"]) for v in conflict.detail["values"]] == [
        ("council", "2026-05-03"), ("pds", "2026-05-01")]


def test_events_after_the_date_of_death_conflict_with_it():
    [conflict] = found([*KEPT, details(death_date=date(2026, 3, 10), as_of="2026-03-11"),
                        review("2026-04-01")], "2026-06-01")
    assert conflict.fingerprint.startswith("source-conflict:alive-after-death")
    assert [e["kind"] for e in conflict.detail["later_events"]] == ["review-completed"]


# -- ordinary residence ------------------------------------------------------------------------

def test_two_sources_naming_different_councils_from_the_same_date_conflict():
    other = from_source(residence("2025-01-01", COUNCIL_B), "trust-a")
    [conflict] = found([residence("2025-01-01", COUNCIL_A), other, *KEPT], "2026-04-01")
    assert conflict.detail["field"] == "ordinary_residence.council_code"
    assert conflict.detail["date"] == "2025-01-01"


def test_one_source_moving_the_person_is_not_a_conflict():
    assert kinds([residence("2025-01-01", COUNCIL_A), residence("2025-01-01", COUNCIL_B),
                  residence("2025-06-01", COUNCIL_B), *KEPT], "2026-04-01") == []


# -- the aftercare plan and reviews ------------------------------------------------------------

def aftercare_conflicts(commands: list, today: str = "2026-06-01") -> list:  # type: ignore[type-arg]
    return of_kind(found(commands, today), "source-conflict")


def test_two_sources_first_plans_on_different_dates_are_one_conflict_naming_both():
    [conflict] = aftercare_conflicts([*KEPT, from_source(plan("2026-03-01"), "trust-a")])
    assert conflict.fingerprint == ("source-conflict:aftercare-plan|council=2026-02-27|"
                                    "trust-a=2026-03-01")
    assert conflict.summary == ("Sources disagree on the aftercare plan agreed date: council "
                                "says 2026-02-27, trust-a says 2026-03-01")
    assert conflict.detail["field"] == "entitlement.aftercare_plan_date"
    assert conflict.detail["period"] == {"from": "2026-01-05", "detention": "ep-1"}
    assert [(v["source"], v["value"]) for v in conflict.detail["values"]] == [
        ("council", "2026-02-27"), ("trust-a", "2026-03-01")]
    assert all(v["facts"] for v in conflict.detail["values"])
    # The same situation told again (new messages) keeps the fingerprint.
    [again] = aftercare_conflicts([*KEPT, from_source(plan("2026-03-01"), "trust-a")])
    assert again.fingerprint == conflict.fingerprint


def test_a_source_telling_no_plan_or_the_same_date_does_not_conflict():
    assert aftercare_conflicts([*KEPT, plan("2026-05-01")]) == []  # one source, a revised plan
    assert aftercare_conflicts([*KEPT, from_source(plan("2026-02-27"), "trust-a")]) == []


def test_a_source_that_also_tells_the_others_plan_date_knows_of_one_more_plan():
    """The council tells the plan of 27 February and its revision of 1 March; the trust heard
    only of the revision: silence about the first, not disagreement."""
    told = [*KEPT, plan("2026-03-01"), from_source(plan("2026-03-01"), "trust-a")]
    assert aftercare_conflicts(told) == []


def test_plans_of_different_aftercare_periods_are_not_compared():
    """The trust told the plan after a 2024 detention, the council only this one's."""
    earlier = [detention("2024-01-02", episode="ep-0", end="2024-03-20"),
               from_source(plan("2024-03-15"), "trust-a")]
    assert aftercare_conflicts([*earlier, *KEPT]) == []


def test_a_plan_after_readmission_opens_a_new_comparison():
    """Readmitted in May: each source's first plan of the new period is compared afresh."""
    readmitted = [*KEPT, detention("2026-05-04", episode="ep-2"),
                  plan("2026-05-20"), from_source(plan("2026-05-22"), "trust-a")]
    [conflict] = aftercare_conflicts(readmitted)
    assert conflict.detail["period"] == {"from": "2026-05-04", "detention": "ep-2"}
    assert [v["value"] for v in conflict.detail["values"]] == ["2026-05-20", "2026-05-22"]


def test_one_review_told_on_dates_ten_days_apart_is_a_conflict():
    [conflict] = aftercare_conflicts([*KEPT, review("2026-05-01"),
                                      from_source(review("2026-05-11"), "trust-a")])
    assert conflict.fingerprint == "source-conflict:review|council=2026-05-01|trust-a=2026-05-11"
    assert conflict.summary == ("Sources tell one review on different dates: council says "
                                "2026-05-01, trust-a says 2026-05-11")
    assert conflict.detail["field"] == "entitlement.last_review"
    assert [(v["source"], v["value"]) for v in conflict.detail["values"]] == [
        ("council", "2026-05-01"), ("trust-a", "2026-05-11")]


def test_a_scheduled_and_an_unscheduled_review_days_apart_are_two_reviews():
    """A trust's scheduled review and the council's unscheduled one on a move of area."""
    told = [*KEPT, review("2026-05-01"),
            from_source(review("2026-05-11", kind="unscheduled"), "trust-a")]
    assert aftercare_conflicts(told) == []


def test_reviews_sixty_days_apart_are_two_reviews():
    findings, position = run([*KEPT, review("2026-05-01"),
                              from_source(review("2026-06-30"), "trust-a")], "2026-07-01")
    assert of_kind(findings, "source-conflict") == []
    assert [day for day, _ in position.reviews] == [date(2026, 5, 1), date(2026, 6, 30)]


def test_a_source_telling_both_review_dates_does_not_conflict():
    told = [*KEPT, review("2026-05-01"), review("2026-05-11"),
            from_source(review("2026-05-11"), "trust-a")]
    assert aftercare_conflicts(told) == []


def test_sources_disagreeing_on_whether_a_review_was_joint_conflict():
    told = [*KEPT, review("2026-05-01", joint=True),
            from_source(review("2026-05-01", joint=False), "trust-a")]
    [conflict] = aftercare_conflicts(told)
    assert conflict.fingerprint == ("source-conflict:review-joint|2026-05-01|council=joint|"
                                    "trust-a=single-agency")
    assert conflict.summary == ("Sources disagree on whether the review of 2026-05-01 was "
                                "joint: council says joint, trust-a says single-agency")
    assert conflict.detail["field"] == "reviews.joint"
    assert conflict.detail["date"] == "2026-05-01"
    assert [(v["source"], v["value"]) for v in conflict.detail["values"]] == [
        ("council", "joint"), ("trust-a", "single-agency")]


def test_sources_agreeing_that_a_review_was_joint_do_not_conflict():
    told = [*KEPT, review("2026-05-01"), from_source(review("2026-05-01"), "trust-a")]
    assert aftercare_conflicts(told) == []


# -- a council confirming what the register's detentions do not entitle ------------------------

def test_a_council_confirming_an_s2_stay_is_a_conflict_on_eligibility__joint_policy_3_3():
    """The trust tells an s2 stay, the council confirms s117 on the day it ended: the
    register shows the council's confirmation (status active, no trigger section) and says
    so, and the disagreement on eligibility goes to a person."""
    findings, pos = run([detention("2026-06-01", "02"), left("2026-06-25"),
                         confirmed("2026-06-25")], "2026-07-01")
    assert pos.entitlement.status == "active" and pos.entitlement.trigger_section is None
    assert "confirmed by the council" in pos.explain["entitlement.status"].rule
    [conflict] = of_kind(findings, "source-conflict")
    assert conflict.detail["field"] == "entitlement.trigger_section"
    assert "council confirmed s117 from 2026-06-25" in conflict.summary
    assert "(02) from 2026-06-01, told by trust-a" in conflict.summary
    assert [v["source"] for v in conflict.detail["values"]] == ["council", "trust-a"]


def test_a_confirmation_with_no_detention_or_an_entitling_one_is_no_conflict():
    alone = found([confirmed("2026-06-25")], "2026-07-01")
    assert of_kind(alone, "source-conflict") == []
    entitling = found([detention("2026-06-01", "02"), regrade("2026-06-10", "03"),
                       left("2026-06-25"), confirmed("2026-06-25")], "2026-07-01")
    assert of_kind(entitling, "source-conflict") == []


# -- a CTO on the register with no entitling detention (MHA s17A) -----------------------------

def test_a_cto_after_an_s2_stay_alone_is_a_source_conflict():
    """A CTO follows detention under s3 or an unrestricted Part 3 section, which entitles: a
    register whose only detention is an s2 stay, with a CTO told, contradicts itself (it had
    shown status none for someone on a CTO, with nothing raised)."""
    journal = [detention("2026-01-05", "02"), left("2026-01-30"),
               legal("cto-start", "2026-01-30", source="trust-a")]
    findings, position = run(journal, "2026-02-10")
    assert position.on_cto and position.entitlement.status == "none"
    [conflict] = [f for f in findings if f.detail.get("field") == "entitlement.trigger_section"]
    assert conflict.kind == "source-conflict"
    assert "CTO from 2026-01-30" in conflict.summary and "s17A" in conflict.detail["rule"]
    # Not while an entitling detention explains the CTO, nor with no detention at all.
    assert kinds([detention("2026-01-05", "03"), left("2026-01-30"),
                  legal("cto-start", "2026-01-30")], "2026-02-10").count("source-conflict") == 0
    assert kinds([legal("cto-start", "2026-01-30")], "2026-02-10") == []
