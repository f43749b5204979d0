"""One detector at a time, each against the seed paragraph it enforces (synthetic data)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from reconciliation.detectors import DetectorPolicy

from ..domain.builders import (
    COUNCIL_A,
    COUNCIL_B,
    charge,
    child_notified,
    confirmed,
    details,
    detention,
    ended,
    left,
    legal,
    plan,
    practitioner,
    prov,
    residence,
    review,
)
from .helpers import confirmed_by, council_detention, found, heard_late, kinds, of_kind, run

# A well-kept s117 record: detained 5 Jan 2026, left 2 Mar, confirmed by the council, plan
# and named practitioner recorded. Reviews are added per test.
KEPT = [detention("2026-01-05"), practitioner("worker-17", "2026-01-08"), plan("2026-02-27"),
        left("2026-03-02"), confirmed("2026-03-02")]


def test_a_well_kept_record_raises_nothing():
    assert found(KEPT, "2026-04-01") == []


# -- missed-entitlement: joint policy 2.2, 8.4, 19.2, 19.6 ---------------------------------

TRUST_ONLY = [detention("2026-01-05"), practitioner("worker-17", "2026-01-08"),
              plan("2026-02-27"), left("2026-03-02")]


def test_a_discharge_known_only_to_the_trust_is_a_missed_entitlement_after_5_working_days():
    assert kinds(TRUST_ONLY, "2026-03-09") == []  # 19.6: five working days to record it
    [missed] = found(TRUST_ONLY, "2026-03-10")
    assert missed.kind == "missed-entitlement"
    assert missed.detail["reported_by"] == ["trust-a"]
    assert missed.detail["entitlement_start"] == "2026-03-02"
    assert missed.detail["confirmation_due"] == "2026-03-09"
    assert missed.detail["trigger_section"] == "03"
    assert any("left-hospital" in cite for cite in missed.detail["facts"])
    assert "Section 3" in missed.summary


def test_the_council_confirming_settles_it():
    assert kinds([*TRUST_ONLY, confirmed_by("council", "2026-03-20")], "2026-04-01") == []


def test_the_trust_confirming_its_own_discharge_is_not_the_other_partner_knowing():
    # A trust's FHIR EpisodeOfCare maps to an s117 confirmation too: it is not the council.
    assert kinds([*TRUST_ONLY, confirmed_by("trust-a", "2026-03-02")],
                 "2026-04-01") == ["missed-entitlement"]


def test_a_council_that_records_the_discharge_and_confirms_it_knows_of_it():
    """Joint policy 19.2: the council records the detention with its end date and confirms
    s117; the trust told of the discharge. Both partners know, whichever fact the position
    cites for the start (found by the demo: a trust FHIR Encounter plus a council CSV)."""
    told_by_both = [detention("2026-01-05"), practitioner("worker-17", "2026-01-08"),
                    plan("2026-02-27"), left("2026-03-02"),
                    *council_detention("2026-01-05", end="2026-03-02", source="council-east"),
                    confirmed_by("council-east", "2026-03-02")]
    assert "missed-entitlement" not in kinds(told_by_both, "2026-04-01")


def test_a_council_alone_that_reports_and_confirms_is_still_one_partner():
    council_only = [*council_detention("2026-01-05", end="2026-03-02", source="council-east"),
                    confirmed_by("council-east", "2026-03-02")]
    assert "missed-entitlement" in kinds(council_only, "2026-04-01")


def test_a_confirmation_from_an_earlier_lawfully_ended_period_does_not_count():
    earlier = [detention("2023-01-02", episode="ep-0"), left("2023-03-01", episode="ep-0"),
               confirmed("2023-03-02"), review("2024-05-20"), ended("2024-06-03")]
    assert "missed-entitlement" in kinds([*earlier, *TRUST_ONLY], "2026-04-01")


def test_the_working_days_run_from_when_the_hub_heard_of_the_leaving():
    late = [detention("2026-01-05"), practitioner("worker-17", "2026-01-08"),
            plan("2026-02-27"), heard_late("2026-03-02", "2026-03-20")]
    assert kinds(late, "2026-03-27") == []  # heard Fri 20 Mar: due Fri 27 Mar
    [missed] = found(late, "2026-03-30")
    assert (missed.detail["heard"], missed.detail["confirmation_due"]) == ("2026-03-20",
                                                                           "2026-03-27")


def test_the_grace_is_configurable():
    policy = DetectorPolicy(confirmation_working_days=10)
    assert kinds(TRUST_ONLY, "2026-03-13", policy=policy) == []
    assert kinds(TRUST_ONLY, "2026-03-17", policy=policy) == ["missed-entitlement"]


def test_an_entitlement_the_council_started_has_nothing_to_acknowledge():
    assert kinds([confirmed("2026-01-05"), practitioner("worker-1", "2026-01-05"),
                  plan("2026-01-05")], "2026-03-01") == []


def test_still_in_hospital_is_not_missed():
    assert "missed-entitlement" not in kinds([detention("2026-01-05")], "2026-06-01")


# -- review-overdue: joint policy 14.1; MoU 5 ----------------------------------------------

def test_the_3_month_review_is_overdue_the_day_after_it_was_due():
    assert kinds(KEPT, "2026-06-02") == []  # due 2 Jun 2026
    [overdue] = found(KEPT, "2026-06-03")
    assert overdue.kind == "review-overdue"
    assert (overdue.detail["review"], overdue.detail["due"]) == ("3-month", "2026-06-02")
    assert "14.1" in overdue.detail["rule"]
    assert overdue.detail["facts"]  # the discharge it counts from


def test_after_a_review_the_next_is_due_12_months_later():
    reviewed = [*KEPT, review("2026-05-20")]
    assert kinds(reviewed, "2027-05-20") == []
    [overdue] = found(reviewed, "2027-05-21")
    assert (overdue.detail["review"], overdue.detail["last_review"]) == ("12-month",
                                                                         "2026-05-20")


def test_an_overdue_review_keeps_its_fingerprint_until_a_review_is_held():
    first, later = found(KEPT, "2026-06-03"), found(KEPT, "2026-09-30")
    assert first[0].fingerprint == later[0].fingerprint
    assert "review-overdue" not in kinds([*KEPT, review("2026-06-10")], "2026-09-30")


def test_no_review_is_due_while_pending_or_after_a_lawful_ending():
    assert "review-overdue" not in kinds([detention("2026-01-05")], "2027-01-01")
    assert "review-overdue" not in kinds([*KEPT, review("2026-04-20"), ended("2026-05-01")],
                                         "2026-12-01")


def test_a_review_grace_can_be_configured():
    policy = DetectorPolicy(review_grace_working_days=5)
    assert kinds(KEPT, "2026-06-09", policy=policy) == []
    assert kinds(KEPT, "2026-06-10", policy=policy) == ["review-overdue"]


# An unscheduled review "whenever the person moves to another local authority area" (14.1):
# raised as review-overdue once 5 working days pass after the move with no review since.
REVIEWED = [residence("2020-01-01", COUNCIL_A), *KEPT, review("2026-05-20")]
MOVED = [*REVIEWED, residence("2026-06-10", COUNCIL_B)]  # Wednesday; due Wednesday 17 June


def test_a_move_with_no_review_since_is_an_overdue_unscheduled_review__joint_policy_14_1():
    assert kinds(MOVED, "2026-06-17") == []
    [overdue] = found(MOVED, "2026-06-18")
    assert overdue.kind == "review-overdue"
    assert (overdue.detail["review"], overdue.detail["trigger"], overdue.detail["due"]) == (
        "unscheduled", "moved-council-area", "2026-06-17")
    assert (overdue.detail["moved_from"], overdue.detail["moved_to"]) == (COUNCIL_A, COUNCIL_B)
    assert "14.1" in overdue.detail["rule"] and overdue.detail["facts"]
    assert overdue.fingerprint != found(KEPT, "2026-06-03")[0].fingerprint  # not the 3-month


def test_a_review_after_the_move_settles_it__joint_policy_14_1():
    assert kinds([*MOVED, review("2026-06-22", kind="unscheduled")], "2026-06-30") == []


def test_a_move_the_hub_hears_of_late_counts_from_hearing__joint_policy_14_1_19_6():
    late = replace(residence("2026-06-10", COUNCIL_B),
                   provenance=prov("council", date(2026, 7, 1)))
    assert kinds([*REVIEWED, late], "2026-07-08") == []
    assert kinds([*REVIEWED, late], "2026-07-09") == ["review-overdue"]


def test_the_unscheduled_review_window_can_be_configured__joint_policy_14_1():
    policy = DetectorPolicy(unscheduled_review_working_days=10)
    assert kinds(MOVED, "2026-06-24", policy=policy) == []
    assert kinds(MOVED, "2026-06-25", policy=policy) == ["review-overdue"]


def test_no_move_prompt_for_the_same_council_told_again_or_when_in_hospital__14_1():
    assert kinds([*REVIEWED, residence("2026-06-10", COUNCIL_A)], "2026-07-01") == []
    readmitted = [*MOVED, detention("2026-06-12", episode="ep-2")]
    assert "review-overdue" not in kinds(readmitted, "2026-07-01")


# -- no-named-practitioner: joint policy 7.3 ------------------------------------------------

def test_a_named_practitioner_is_due_from_admission_after_the_grace():
    pending = [detention("2026-01-05")]
    assert kinds(pending, "2026-01-12") == []
    [missing] = found(pending, "2026-01-13")
    assert missing.kind == "no-named-practitioner"
    assert (missing.detail["since"], missing.detail["due"]) == ("2026-01-05", "2026-01-12")
    assert "7.3" in missing.detail["rule"]


def test_the_missing_practitioner_is_the_same_finding_pending_and_active():
    no_worker = [detention("2026-01-05"), plan("2026-02-27"), left("2026-03-02"),
                 confirmed("2026-03-02")]
    while_pending = of_kind(found(no_worker[:1], "2026-02-01"), "no-named-practitioner")
    once_active = of_kind(found(no_worker, "2026-03-10"), "no-named-practitioner")
    assert while_pending[0].fingerprint == once_active[0].fingerprint
    # Active from 2 March, the duty from admission: never "active since" the admission.
    assert "active since" not in once_active[0].summary
    assert "now active; the duty runs from 2026-01-05" in once_active[0].summary


def test_the_practitioner_of_an_ended_period_is_not_this_periods__joint_policy_7_3():
    # Period 1 in 2025 with its practitioner and plan, lawfully ended; re-detained under s3.
    history = [detention("2025-01-06", episode="ep-0"), practitioner("worker-17", "2025-01-10"),
               plan("2025-03-01"), left("2025-03-01", episode="ep-0"), confirmed("2025-03-01"),
               review("2025-05-20"), ended("2025-06-02"),
               detention("2026-09-01"), left("2026-10-01"), confirmed("2026-10-01")]
    [pending] = of_kind(found(history[:-2], "2026-09-15"), "no-named-practitioner")
    assert pending.detail["since"] == "2026-09-01"
    findings, pos = run(history, "2026-10-20")
    assert (pos.entitlement.named_practitioner, pos.entitlement.aftercare_plan_date) == (
        None, None)
    assert {"no-named-practitioner", "no-aftercare-plan"} <= {f.kind for f in findings}
    [missing] = of_kind(findings, "no-aftercare-plan")
    assert missing.detail["earlier_plan"] == "2025-03-01"


def test_no_practitioner_is_needed_without_or_after_an_entitlement():
    assert kinds([detention("2026-01-05", "02")], "2026-03-01") == []  # s2: not entitling
    assert "no-named-practitioner" not in kinds(
        [detention("2026-01-05"), left("2026-01-20"), confirmed("2026-01-20"),
         plan("2026-01-20"), review("2026-01-21"), ended("2026-01-21")], "2026-06-01")


# -- no-aftercare-plan: joint policy 7.2, 19.2 -----------------------------------------------

def test_no_plan_after_leaving_hospital_is_raised_after_the_grace():
    no_plan = [detention("2026-01-05"), practitioner("worker-17", "2026-01-08"),
               left("2026-03-02"), confirmed("2026-03-02")]
    assert kinds(no_plan, "2026-03-09") == []
    [missing] = found(no_plan, "2026-03-10")
    assert missing.kind == "no-aftercare-plan"
    assert missing.detail["entitlement_start"] == "2026-03-02"


def test_a_plan_from_before_a_lawful_ending_is_not_this_periods_plan():
    history = [detention("2023-01-02", episode="ep-0"), plan("2023-02-01"),
               left("2023-03-01", episode="ep-0"), confirmed("2023-03-01"),
               review("2024-05-20"), ended("2024-06-03"),
               practitioner("worker-17", "2026-01-06"),
               detention("2026-01-05"), left("2026-03-02"), confirmed("2026-03-02")]
    [missing] = of_kind(found(history, "2026-04-01"), "no-aftercare-plan")
    assert missing.detail["earlier_plan"] == "2023-02-01"


# -- s117-charge: joint policy 13.1; cabinet report 11 ---------------------------------------

def test_a_charge_against_an_s117_service_is_raised_and_other_charges_are_not():
    [charged] = of_kind(found([*KEPT, charge("2026-03-20"),
                               charge("2026-03-21", under_s117=False)], "2026-04-01"),
                        "s117-charge")
    assert charged.detail["date"] == "2026-03-20"
    assert charged.detail["amount"] == "120.00"
    assert charged.detail["service"] == "supported accommodation"
    assert "13.1" in charged.detail["rule"]


# -- child-12-week-notification: joint policy 6.1 (Children Act 1989 s85) -------------------

CHILD = "2010-09-01"  # 15 when admitted


def test_a_child_detained_12_weeks_without_notification_is_raised():
    stay = [detention("2026-01-05", "02"), practitioner("worker-1", "2026-01-05")]
    assert kinds(stay, "2026-03-29", birth=CHILD) == []
    [child] = found(stay, "2026-03-30", birth=CHILD)  # 84 days on
    assert child.kind == "child-12-week-notification"
    assert child.detail["twelve_weeks_reached"] == "2026-03-30"
    assert child.detail["age_at_admission"] == 15
    assert CHILD not in child.summary and "2010" not in child.summary


def test_the_notification_settles_it_and_adults_and_short_stays_need_none():
    stay = [detention("2026-01-05", "02")]
    assert kinds([*stay, child_notified("2026-01-20")], "2026-04-01", birth=CHILD) == []
    assert kinds(stay, "2026-04-01", birth="1990-01-01") == []
    assert kinds([*stay, left("2026-03-01")], "2026-06-01", birth=CHILD) == []


def test_a_notification_for_an_earlier_detention_does_not_cover_a_later_one():
    earlier = [detention("2025-01-06", "02", episode="ep-0"), child_notified("2025-01-10"),
               left("2025-05-01", episode="ep-0")]
    later = [detention("2026-01-05", "02")]
    assert len(of_kind(found([*earlier, *later], "2026-04-01", birth=CHILD),
                       "child-12-week-notification")) == 1


def test_a_child_expected_to_be_detained_12_weeks_is_raised_at_once__joint_policy_6_1():
    """6.1: "detained in hospital and that is likely to be for at least 12 consecutive
    weeks": an expected end 12 weeks on (30 March, 84 days) makes it due from admission."""
    stay = [detention("2026-01-05", "03", end="2026-03-30"),
            practitioner("worker-1", "2026-01-05")]
    [child] = found(stay, "2026-01-05", birth=CHILD)
    assert child.kind == "child-12-week-notification"
    assert (child.detail["ground"], child.detail["expected_end"]) == ("expected", "2026-03-30")
    assert "expected to be detained 12 consecutive weeks" in child.summary
    assert "likely" in child.detail["rule"]
    # Once the 12 weeks have passed it is the same exception (one fingerprint), now a fact.
    [later] = found(stay, "2026-03-30", birth=CHILD)
    assert later.fingerprint == child.fingerprint and later.detail["ground"] == "reached"


def test_a_day_short_of_12_weeks_expected_is_not_raised__joint_policy_6_1():
    stay = [detention("2026-01-05", "03", end="2026-03-29"),
            practitioner("worker-1", "2026-01-05")]
    for today in ("2026-01-05", "2026-03-28", "2026-03-29", "2026-06-01"):
        assert of_kind(found(stay, today, birth=CHILD), "child-12-week-notification") == [], today


def test_a_notification_answers_the_expected_12_weeks__joint_policy_6_1():
    stay = [detention("2026-01-05", "03", end="2026-04-30"),
            practitioner("worker-1", "2026-01-05"), child_notified("2026-01-07")]
    assert of_kind(found(stay, "2026-01-08", birth=CHILD), "child-12-week-notification") == []


def test_discharged_either_side_of_12_weeks__joint_policy_6_1():
    stay = [detention("2026-01-05", "02"), practitioner("worker-1", "2026-01-05")]
    assert kinds([*stay, left("2026-03-29")], "2026-06-01", birth=CHILD) == []
    assert kinds([*stay, left("2026-03-30")], "2026-06-01", birth=CHILD) == [
        "child-12-week-notification"]


# -- the person has died --------------------------------------------------------------------

def test_duties_are_not_raised_for_a_person_who_has_died():
    findings, _ = run([*KEPT, details(death_date=date(2026, 5, 1), as_of="2026-05-02")],
                      "2026-07-01")
    assert [f.kind for f in findings] == []


def test_still_raised_after_death_charges_and_endings_that_break_the_rules():
    dead = [*KEPT, charge("2026-03-20"), legal("cto-start", "2026-03-02"),
            review("2026-03-25"), ended("2026-04-01"),
            details(death_date=date(2026, 5, 1), as_of="2026-05-02")]
    assert set(kinds(dead, "2026-07-01")) == {"s117-charge", "ended-on-cto"}


def test_a_council_record_ending_on_another_day_is_a_conflict_not_a_missed_entitlement():
    """The trust discharged on 3 Aug, the council's record of the detention ends 10 Aug: both
    partners know of the leaving. The register starts s117 on the earlier date (a council's
    record folded at its start date used to beat the trust's discharge) and the dates are a
    source-conflict; the missed-entitlement detector does not say 'told by trust-a only'."""
    told = [detention("2026-06-01"), practitioner("worker-17", "2026-06-02"),
            plan("2026-07-30"), left("2026-08-03"),
            *council_detention("2026-06-01", end="2026-08-10", source="council-a")]
    findings, pos = run(told, "2026-09-01")
    assert pos.entitlement.start == date(2026, 8, 3)
    assert pos.detentions[0].end == date(2026, 8, 3)
    assert [f.kind for f in findings] == ["source-conflict"]
    assert findings[0].detail["field"] == "detention.end"
