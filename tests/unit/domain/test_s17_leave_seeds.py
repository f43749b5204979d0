"""s17 leave and the s117 position, as the joint policy tells it (seeds audit).

8.4: "During any period of section 17 leave from hospital, then section 117 aftercare
arrangements will apply" (2.2: the policy covers patients granted s17 leave; 1.1, 2.2: it is
for people who "cease to be detained and leave hospital", so no ending while still on the
leave). 14.1: reviews "within 3 months of discharge from hospital", then at least every 12
months. 19.2: on the register from admission. A leave the person came back from is over:
back on the ward they are in hospital again (as after a re-detention: pending, the start
kept), no community duty runs, and the review clock waits for the leaving in force, the
discharge (or a leave still running).
"""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciliation.detectors import detect
from register_core.domain.commands import Command
from register_core.domain.position import Policy, Position, compute_position

from .builders import (
    COUNCIL_A,
    confirmed,
    d,
    detention,
    ended,
    left,
    legal,
    plan,
    practitioner,
    record_all,
    residence,
    review,
)

NO_LEAVE_START = Policy(s17_leave_starts_entitlement=False)

# The seeds-audit journey, seen from 1 June 2026: on s3 since October, a 2-day s17 leave 150
# days ago, back on the ward since, discharged 10 days ago.
ADMITTED, OUT, BACK, DISCHARGED = "2025-10-06", "2026-01-02", "2026-01-04", "2026-05-22"
TODAY = "2026-06-01"

BEFORE_LEAVE: list[Command] = [
    residence("2020-01-01", COUNCIL_A), detention(ADMITTED, "03"),
    practitioner("worker-17", "2025-10-07")]
LEAVE = [legal("s17-leave-start", OUT), legal("s17-leave-end", BACK)]
DISCHARGE = [plan("2026-05-20"), left(DISCHARGED), confirmed(DISCHARGED)]


def seen(commands: list[Command], today: str,
         policy: Policy | None = None) -> tuple[Position, list[str]]:
    person = record_all(commands)
    pos = compute_position(person, d(today), policy)
    return pos, [f.kind for f in detect(person, pos, d(today))]


# -- on the leave ----------------------------------------------------------------------------

def test_leave_in_progress_is_active_from_the_leave__joint_policy_8_4():
    pos, kinds = seen([*BEFORE_LEAVE, LEAVE[0]], "2026-01-03")
    ent = pos.entitlement
    assert (ent.status, ent.start) == ("active", date(2026, 1, 2))
    assert ent.next_review_due == date(2026, 4, 2)  # the leave is the leaving in force
    assert "s17-leave-start" in pos.explain["entitlement.start"].rule
    assert kinds == []


def test_a_long_leave_carries_the_community_duties_as_before__joint_policy_8_4_14_1():
    # Still out on 20 April with no plan and no review: aftercare applies on the leave.
    pos, kinds = seen([*BEFORE_LEAVE, LEAVE[0], confirmed(OUT)], "2026-04-20")
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2026, 1, 2))
    assert kinds == ["no-aftercare-plan", "review-overdue"]


# -- back on the ward after the leave --------------------------------------------------------

def test_back_on_the_ward_after_the_leave_is_in_hospital_again__joint_policy_8_4_19_2():
    pos, kinds = seen([*BEFORE_LEAVE, *LEAVE], "2026-05-01")
    ent = pos.entitlement
    assert (ent.status, ent.start, ent.pending_since) == (
        "pending", date(2026, 1, 2), date(2025, 10, 6))  # as after a re-detention
    assert pos.in_hospital
    assert (ent.next_review_due, ent.last_review) == (None, None)
    assert "in hospital again" in pos.explain["entitlement.status"].rule
    assert "ended on 2026-01-04" in pos.explain["entitlement.start"].rule
    # No community duty while on the ward: no review, plan or missed-entitlement finding.
    assert kinds == []


def test_back_on_the_ward_the_day_the_leave_ends():
    assert seen([*BEFORE_LEAVE, legal("s17-leave-start", OUT)], BACK)[0].entitlement.status \
        == "active"
    pos, _ = seen([*BEFORE_LEAVE, *LEAVE], BACK)
    assert (pos.entitlement.status, pos.entitlement.start) == ("pending", date(2026, 1, 2))


def test_on_the_ward_the_named_practitioner_is_still_due_as_for_anyone_pending__7_3():
    pos, kinds = seen([detention(ADMITTED, "03"), *LEAVE], "2026-05-01")
    assert pos.entitlement.status == "pending"
    assert kinds == ["no-named-practitioner"]


def test_back_on_the_ward_shows_like_a_re_detention_after_leaving():
    re_detained = compute_position(record_all([
        detention("2025-06-02", "03", episode="ep-0"), left("2025-08-01", episode="ep-0"),
        detention(ADMITTED, "03")]), d("2026-05-01")).entitlement
    back = seen([*BEFORE_LEAVE, *LEAVE], "2026-05-01")[0].entitlement
    assert (re_detained.status, re_detained.start) == ("pending", date(2025, 8, 1))
    assert (back.status, back.next_review_due) == (re_detained.status,
                                                   re_detained.next_review_due)


def test_a_second_leave_is_the_leaving_in_force():
    second = [legal("s17-leave-start", "2026-03-02"), legal("s17-leave-end", "2026-03-05")]
    pos, kinds = seen([*BEFORE_LEAVE, *LEAVE, *second], "2026-04-01")
    assert (pos.entitlement.status, pos.entitlement.start) == ("pending", date(2026, 3, 2))
    assert kinds == []
    out_again = [*BEFORE_LEAVE, *LEAVE, second[0]]
    pos, _ = seen(out_again, "2026-03-03")
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2026, 3, 2))
    assert pos.entitlement.next_review_due == date(2026, 6, 2)


# -- discharged after the leave --------------------------------------------------------------

def test_discharged_after_an_ended_leave_reviews_run_from_the_discharge__14_1():
    pos, kinds = seen([*BEFORE_LEAVE, *LEAVE, review(BACK), *DISCHARGE], TODAY)
    ent = pos.entitlement
    assert (ent.status, ent.start) == ("active", date(2026, 5, 22))
    assert ent.next_review_due == date(2026, 8, 22)  # not 2 April: not overdue on leaving
    assert ent.last_review is None  # one held in hospital does not count (14.1)
    discharge = next(f for f in pos.detentions[0].facts if f.kind == "left-hospital")
    assert discharge.cite() in pos.explain["entitlement.next_review_due"].facts
    assert kinds == []


def test_not_overdue_on_the_day_of_the_discharge__14_1():
    pos, kinds = seen([*BEFORE_LEAVE, *LEAVE, *DISCHARGE], DISCHARGED)
    assert pos.entitlement.next_review_due == date(2026, 8, 22)
    assert "review-overdue" not in kinds


def test_the_3_month_review_falls_overdue_from_the_discharge__14_1():
    commands = [*BEFORE_LEAVE, *LEAVE, *DISCHARGE]
    assert "review-overdue" not in seen(commands, "2026-08-21")[1]
    assert "review-overdue" in seen(commands, "2026-08-24")[1]


def test_without_s17_leave_starting_it_nothing_changes__standards_6_cxf():
    on_ward = seen([*BEFORE_LEAVE, *LEAVE], "2026-05-01", NO_LEAVE_START)[0].entitlement
    assert (on_ward.status, on_ward.start) == ("pending", None)
    on_leave = seen([*BEFORE_LEAVE, LEAVE[0]], "2026-01-03", NO_LEAVE_START)[0].entitlement
    assert (on_leave.status, on_leave.start) == ("pending", None)
    out = seen([*BEFORE_LEAVE, *LEAVE, *DISCHARGE], TODAY, NO_LEAVE_START)[0].entitlement
    assert (out.status, out.start, out.next_review_due) == (
        "active", date(2026, 5, 22), date(2026, 8, 22))


def test_back_on_the_ward_then_onto_a_cto_starts_from_the_cto__2_2_14_1():
    pos, _ = seen([*BEFORE_LEAVE, *LEAVE, legal("cto-start", "2026-03-02")], "2026-03-03")
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2026, 3, 2))
    assert pos.entitlement.next_review_due == date(2026, 6, 2)
    assert pos.on_cto


# -- a leave that ends with the discharge ----------------------------------------------------

def test_a_leave_that_ends_with_the_discharge_is_one_stretch_out_of_hospital__8_4():
    # Out on leave 1 April, never back on the ward: the trust closes the leave on the day it
    # discharges (A22 and A03 the same day). Aftercare has applied since the leave began.
    commands = [*BEFORE_LEAVE, legal("s17-leave-start", "2026-04-01"),
                legal("s17-leave-end", DISCHARGED), left(DISCHARGED), plan("2026-04-02"),
                confirmed("2026-04-01")]
    for today in ("2026-04-02", "2026-05-21", DISCHARGED, TODAY):
        pos, kinds = seen(commands, today)
        ent = pos.entitlement
        assert (ent.status, ent.start) == ("active", date(2026, 4, 1)), today
        assert ent.next_review_due == date(2026, 7, 1)
        assert kinds == []
    rule = seen(commands, TODAY)[0].explain["entitlement.start"].rule
    assert "while still on the leave" in rule


def test_discharged_while_on_leave_with_no_leave_end_told__8_4():
    pos, _ = seen([*BEFORE_LEAVE, legal("s17-leave-start", "2026-04-01"), left(DISCHARGED)],
                  TODAY)
    assert (pos.entitlement.status, pos.entitlement.start) == ("active", date(2026, 4, 1))
    assert not pos.in_hospital


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_the_order_the_leave_was_told_in_does_not_matter__property(data):
    commands = [*BEFORE_LEAVE, *LEAVE, legal("s17-leave-start", "2026-04-01"),
                legal("s17-leave-end", DISCHARGED), left(DISCHARGED)]
    shuffled = data.draw(st.permutations(commands))
    for today in ("2026-01-03", "2026-03-01", "2026-04-02", TODAY):
        want = compute_position(record_all(commands), d(today)).entitlement
        got = compute_position(record_all(shuffled), d(today)).entitlement
        assert (got.status, got.start, got.next_review_due) == (
            want.status, want.start, want.next_review_due)


# -- an ending recorded while the person is on the leave -------------------------------------
# 1.1, 2.2: the duty is owed to people detained under s3 (and the other entitling sections)
# who "then cease to be detained and leave hospital"; 8.4: "During any period of section 17
# leave from hospital, then section 117 aftercare arrangements will apply". On leave the person
# is still detained and may be recalled: like a CTO (16.2), no ending stands then.

ON_LEAVE = [*BEFORE_LEAVE, legal("s17-leave-start", "2026-04-01"), plan("2026-03-30"),
            confirmed("2026-04-01"), review("2026-05-11")]


def _refusal_rules(pos: Position) -> list[tuple[str, str]]:
    return [(v.rule, v.exception_kind) for r in pos.refused_endings for v in r.violations]


def test_an_ending_while_on_s17_leave_is_refused__joint_policy_1_1_2_2_8_4():
    pos, kinds = seen([*ON_LEAVE, ended("2026-05-20")], TODAY)
    ent = pos.entitlement
    assert (ent.status, ent.start, ent.ended) == ("active", date(2026, 4, 1), None)
    assert _refusal_rules(pos) == [("no-ending-on-s17-leave", "ended-on-s17-leave")]
    [violation] = pos.refused_endings[0].violations
    assert violation.field == "date"
    assert "still detained" in violation.message and "8.4" in violation.message
    assert "not end it" in pos.explain["entitlement.status"].rule
    assert kinds == ["ended-on-s17-leave"]


def test_an_ending_on_the_first_day_of_the_leave_is_refused__joint_policy_2_2_8_4():
    pos, _ = seen([*ON_LEAVE, ended("2026-04-01")], TODAY)
    assert pos.entitlement.status == "active"
    assert _refusal_rules(pos) == [("no-ending-on-s17-leave", "ended-on-s17-leave")]


def test_an_ending_dated_the_day_of_the_discharge_from_the_leave_may_stand__8_4_16_1():
    """8.4: leave "that will directly result in discharge": discharged on 22 May, no longer
    detained that day, so the joint ending of that day stands (the day before, it did not)."""
    out = [*ON_LEAVE, left(DISCHARGED)]
    pos, _ = seen([*out, ended(DISCHARGED)], TODAY)
    assert (pos.entitlement.status, pos.refused_endings) == ("ended", [])
    pos, _ = seen([*out, ended("2026-05-21")], TODAY)
    assert pos.entitlement.status == "active"
    assert _refusal_rules(pos) == [("no-ending-on-s17-leave", "ended-on-s17-leave")]


def test_an_ending_dated_during_a_leave_the_person_came_back_from_names_the_leave__8_4():
    # Out 2-4 January and on the ward since: the ending of 3 January is refused for the leave
    # alone (not also as "nothing active to end": the leave is why).
    pos, kinds = seen([*BEFORE_LEAVE, *LEAVE, ended("2026-01-03")], "2026-02-01")
    assert pos.entitlement.status == "pending"
    assert _refusal_rules(pos) == [("no-ending-on-s17-leave", "ended-on-s17-leave")]
    assert kinds == ["ended-on-s17-leave"]


def test_an_ending_dated_back_on_the_ward_is_refused_as_before__19_2():
    pos, kinds = seen([*BEFORE_LEAVE, *LEAVE, ended(BACK)], "2026-02-01")
    assert _refusal_rules(pos) == [("ending-needs-active-entitlement", "source-conflict")]
    assert kinds == ["source-conflict"]


def test_an_ending_on_leave_is_refused_whatever_the_local_leave_choice__standards_6():
    """With s17 leave not starting the entitlement (CXF), the person on leave is pending: the
    ending is refused for the leave, the reason that holds under either choice."""
    pos, _ = seen([*ON_LEAVE, ended("2026-05-20")], TODAY, NO_LEAVE_START)
    assert pos.entitlement.status == "pending"
    assert _refusal_rules(pos) == [("no-ending-on-s17-leave", "ended-on-s17-leave")]


def test_once_the_section_is_discharged_on_leave_an_ending_may_stand__1_1_2_2():
    """Discharged from the section while out on leave: no longer detained (1.1: "cease to be
    detained"), so the leave no longer holds an ending back."""
    commands = [*ON_LEAVE, legal("detention-ended", "2026-05-15"), ended("2026-05-20")]
    pos, _ = seen(commands, TODAY)
    assert (pos.entitlement.status, pos.refused_endings) == ("ended", [])


def test_leave_from_an_s2_stay_after_discharge_from_s3_does_not_hold_an_ending__3_3():
    """An s2 readmission does not make the s3 entitlement pending, and its discharge starts no
    duty (3.3): leave from it is not the entitling detention's leave."""
    commands = [residence("2020-01-01", COUNCIL_A), detention("2025-06-02", "03"),
                left("2025-08-01"), confirmed("2025-08-01"), review("2025-10-01"),
                detention("2026-02-02", "02", episode="ep-2"),
                legal("s17-leave-start", "2026-03-02", episode="ep-2"),
                ended("2026-03-10")]
    pos, _ = seen(commands, "2026-03-20")
    assert (pos.entitlement.status, pos.refused_endings) == ("ended", [])
