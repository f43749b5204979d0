"""Ending aftercare: the seed paragraphs the audit of the ending rules found unapplied.

Seeds: joint policy 16.1 (only if **both** the responsible council and the NHS are
satisfied), 17.1 (a person who moves keeps their s117 eligibility with the original council
and ICB), 17.2 (the responsible council keeps the accountability), 1.1, 2.2, 8.4 (s17 leave:
still detained, aftercare arrangements apply during it); MoU 4
("Neither party may ... act unilaterally in matters affecting ... cessation of aftercare"),
MoU 5 ("Reviews will be joint, recorded, and outcome focused"); dispute protocol 3 (needs-led,
not cost-led), 4 (budget constraints, commissioning changes are not lawful grounds), 7 (not
ended because of service reductions or commissioning changes, nor unilaterally).
"""

from __future__ import annotations

from datetime import date

import pytest

from register_core.domain.codec import command_from_json, to_json
from register_core.domain.commands import RecordS117Ended, Signoff
from register_core.domain.errors import UnlawfulEnding
from register_core.domain.rules.ending import (
    FORBIDDEN_SOLE_GROUNDS,
    EndingDecision,
    check_ending,
    ending_flags,
    ending_violations,
)

from .builders import (
    d,
    detention,
    ended,
    left,
    person_ref,
    position_of,
    prov,
    residence,
    review,
)

LAWFUL = EndingDecision(date=date(2026, 11, 20), reason="no longer needs aftercare services",
                        council_signed_by="council-officer-1", icb_signed_by="icb-clinician-1",
                        review=date(2026, 11, 2))

# s3 admission 1 June 2026, discharged 3 August 2026.
DISCHARGED = [residence("2020-01-01", "LA-A"), detention("2026-06-01"), left("2026-08-03")]


def _rules(decision: EndingDecision) -> list[str]:
    return [v.rule for v in ending_violations(decision, on_cto=False)]


def _flag_rules(pos) -> list[str]:  # type: ignore[no-untyped-def]
    return [flag.rule for flagged in pos.flagged_endings for flag in flagged.flags]


# -- 1. grounds that alone never justify ending ---------------------------------------------

@pytest.mark.parametrize(("ground", "paragraph"), [
    ("moved-out-of-area", "joint policy 17.1"),
    ("service-reductions", "dispute protocol 7"),
    ("commissioning-changes", "dispute protocol 7"),
    ("budget-constraints", "dispute protocol 4"),
])
def test_moving_area_and_money_are_no_sole_ground__policy_17_1_protocol_4_7(ground, paragraph):
    """17.1: on a move "eligibility remains with" the original council and ICB; dispute
    protocol 7: "must not be ended ... because of service reductions or commissioning
    changes"; 4: "budget constraints or financial pressures" are "not lawful grounds"."""
    assert ground in FORBIDDEN_SOLE_GROUNDS
    assert paragraph in FORBIDDEN_SOLE_GROUNDS[ground]
    violations = ending_violations(LAWFUL.__class__(**{**LAWFUL.__dict__, "grounds": (ground,)}),
                                   on_cto=False)
    assert [(v.rule, v.field, v.exception_kind) for v in violations] == [
        ("forbidden-sole-ground", "grounds", "one-sided-ending")]
    assert ground in violations[0].message and paragraph in violations[0].message


def test_ending_solely_because_the_person_moved_is_refused_through_the_register__17_1():
    pos = position_of([*DISCHARGED, residence("2026-09-01", "LA-B"), review("2026-11-02"),
                       ended("2026-11-20", grounds=("moved-out-of-area",))],
                      today="2026-11-25")
    assert pos.entitlement.status == "active"
    assert pos.entitlement.responsible_council == "LA-A"
    assert [v.rule for v in pos.refused_endings[0].violations] == ["forbidden-sole-ground"]


def test_a_money_ground_alongside_no_longer_in_need_is_not_the_sole_ground__16_1():
    decision = LAWFUL.__class__(**{**LAWFUL.__dict__,
                                   "grounds": ("budget-constraints", "no-longer-in-need")})
    assert _rules(decision) == []


# -- 2. no ending before both partners signed (16.1; MoU 4) ---------------------------------

def _ended(when: str, council_on: str, icb_on: str) -> RecordS117Ended:
    return RecordS117Ended(
        person=person_ref(1), provenance=prov("council", d(max(council_on, icb_on, when))),
        date=d(when), reason="no longer needs aftercare for the mental disorder",
        council_signoff=Signoff(by="council-officer-1", date=d(council_on)),
        icb_signoff=Signoff(by="icb-clinician-1", date=d(icb_on)))


def test_an_ending_dated_before_the_later_signoff_is_not_joint_on_that_date__16_1_mou_4():
    """16.1: discharged "only ... if both" are satisfied; MoU 4: neither acts unilaterally.
    Ended 20 Nov, the ICB signed on 27 Nov: on 20 Nov only the council had decided."""
    pos = position_of([*DISCHARGED, review("2026-11-02"),
                       _ended("2026-11-20", "2026-11-20", "2026-11-27")], today="2026-12-01")
    assert (pos.entitlement.status, pos.entitlement.ended) == ("active", None)
    [refused] = pos.refused_endings
    [violation] = refused.violations
    assert (violation.rule, violation.field, violation.exception_kind) == (
        "joint-ending-date", "date", "one-sided-ending")
    assert "not joint on 2026-11-20" in violation.message
    assert "icb signed off on 2026-11-27" in violation.message
    assert "16.1" in violation.message and "MoU 4" in violation.message
    assert "not joint on 2026-11-20" in pos.explain["entitlement.status"].rule


def test_an_ending_dated_on_or_after_both_signoffs_ends_it__16_1():
    on_the_day = position_of([*DISCHARGED, review("2026-11-02"),
                              _ended("2026-11-27", "2026-11-20", "2026-11-27")],
                             today="2026-12-01")
    assert on_the_day.entitlement.status == "ended" and on_the_day.refused_endings == []
    after = position_of([*DISCHARGED, review("2026-11-02"),
                         _ended("2026-11-30", "2026-11-20", "2026-11-27")], today="2026-12-01")
    assert after.entitlement.ended.date == date(2026, 11, 30)  # type: ignore[union-attr]


def test_the_council_signing_late_is_refused_the_same_way__16_1():
    decision = LAWFUL.__class__(**{**LAWFUL.__dict__, "council_signed_on": date(2026, 11, 25),
                                   "icb_signed_on": date(2026, 11, 19)})
    [violation] = ending_violations(decision, on_cto=False)
    assert violation.rule == "joint-ending-date"
    assert "council signed off on 2026-11-25" in violation.message


# -- 3. the review before an ending is a joint one (MoU 5; 16.1) ----------------------------

def test_a_single_agency_review_is_not_the_joint_review_an_ending_follows__mou_5_16_1():
    """MoU 5: "Reviews will be joint, recorded"; 16.1, 16.3: ending after a review by both.
    The ending stands (both signed, with reasons) but is flagged, saying why."""
    pos = position_of([*DISCHARGED, review("2026-10-20", joint=False), ended("2026-11-02")],
                      today="2026-11-10")
    assert pos.entitlement.status == "ended" and pos.refused_endings == []
    assert _flag_rules(pos) == ["ending-after-joint-review"]
    [flagged] = pos.flagged_endings
    [flag] = flagged.flags
    assert flag.exception_kind == "ended-without-review"
    assert "single-agency" in flag.message and "2026-10-20" in flag.message
    assert "MoU 5" in flag.message
    assert "after the review of" not in pos.explain["entitlement.ended"].rule


def test_a_joint_review_answers_the_flag_even_beside_a_single_agency_one__mou_5():
    pos = position_of([*DISCHARGED, review("2026-10-01"), review("2026-10-20", joint=False),
                       ended("2026-11-02")], today="2026-11-10")
    assert _flag_rules(pos) == []
    assert "after the review of 2026-10-01" in pos.explain["entitlement.ended"].rule


def test_a_review_not_known_to_be_single_agency_counts__mou_5():
    # joint unknown (None): a council's review.completed need not say whether it was joint.
    pos = position_of([*DISCHARGED, review("2026-10-20", joint=None), ended("2026-11-02")],
                      today="2026-11-10")
    assert _flag_rules(pos) == []


def test_the_flag_message_without_any_review_is_unchanged__16_1():
    decision = LAWFUL.__class__(**{**LAWFUL.__dict__, "review": None})
    [flag] = ending_flags(decision, conditionally_discharged=False)
    assert "no review is on the register" in flag.message
    assert "single-agency" not in flag.message


# -- 4. no ending on s17 leave (1.1, 2.2, 8.4; as on a CTO, 16.2) --------------------------

def test_the_pure_rule_refuses_an_ending_on_s17_leave__joint_policy_1_1_2_2_8_4():
    violations = ending_violations(LAWFUL, on_cto=False, on_s17_leave=True)
    assert [(v.rule, v.field, v.exception_kind) for v in violations] == [
        ("no-ending-on-s17-leave", "date", "ended-on-s17-leave")]
    assert "1.1, 2.2" in violations[0].message and "16.2" in violations[0].message
    with pytest.raises(UnlawfulEnding) as err:
        check_ending(LAWFUL, on_cto=False, on_s17_leave=True)
    assert (err.value.field, err.value.rule) == ("date", "no-ending-on-s17-leave")
    assert ending_violations(LAWFUL, on_cto=False, on_s17_leave=False) == []


# -- 5. the council sign-off is the responsible council's (16.1; 17.1, 17.2) ----------------
# 16.1: discharged "only ... if both the responsible Council and" the NHS are satisfied; 17.1:
# after a move "section 117 eligibility remains with" the original council; 17.2: it "retain[s]
# overall accountability", whatever it delegates to another area.

MOVED = [*DISCHARGED, residence("2026-09-01", "LA-B"), review("2026-11-02")]


def test_a_signoff_for_the_council_the_person_moved_to_does_not_count__16_1_17_1_17_2():
    pos = position_of([*MOVED, ended("2026-11-20", council_for="LA-B")], today="2026-11-25")
    assert (pos.entitlement.status, pos.entitlement.responsible_council) == ("active", "LA-A")
    [refused] = pos.refused_endings
    [violation] = refused.violations
    assert (violation.rule, violation.field, violation.exception_kind) == (
        "responsible-council-signoff", "council_signoff.organisation", "one-sided-ending")
    assert "given for LA-B, not the responsible council LA-A" in violation.message
    assert "16.1" in violation.message and "17.2" in violation.message


def test_the_responsible_councils_signoff_counts_whatever_its_case__16_1():
    pos = position_of([*MOVED, ended("2026-11-20", council_for=" la-a ")], today="2026-11-25")
    assert (pos.entitlement.status, pos.refused_endings) == ("ended", [])


def test_a_signoff_naming_no_organisation_is_not_judged__16_1():
    # The contract's sign-off is {by, date}: with no organisation said, nothing to compare.
    pos = position_of([*MOVED, ended("2026-11-20")], today="2026-11-25")
    assert pos.entitlement.status == "ended"


def test_with_no_responsible_council_known_the_signoff_is_not_judged__16_1():
    pos = position_of([detention("2026-06-01"), left("2026-08-03"), review("2026-11-02"),
                       ended("2026-11-20", council_for="LA-B")], today="2026-11-25")
    assert pos.entitlement.responsible_council is None
    assert pos.entitlement.status == "ended"


def test_after_a_new_detention_the_new_council_is_the_one_that_signs__4_3_3_16_1():
    """4.3.3 (Worcestershire): detained again after moving to LA-B, LA-B becomes responsible,
    so LA-B's sign-off is the responsible council's and LA-A's no longer is."""
    again = [*DISCHARGED, residence("2026-09-01", "LA-B"),
             detention("2027-01-04", episode="ep-2"), left("2027-03-01", episode="ep-2"),
             review("2027-04-01")]
    pos = position_of([*again, ended("2027-04-20", council_for="LA-B")], today="2027-05-01")
    assert pos.entitlement.status == "ended"
    pos = position_of([*again, ended("2027-04-20", council_for="LA-A")], today="2027-05-01")
    assert pos.entitlement.responsible_council == "LA-B"
    assert [v.rule for v in pos.refused_endings[0].violations] == [
        "responsible-council-signoff"]


def test_another_councils_later_signoff_date_is_not_also_judged_as_the_councils__16_1():
    """Its date is no council sign-off date: one violation, the sign-off's, not two."""
    decision = EndingDecision(
        date=date(2026, 11, 20), reason="no longer needs aftercare services",
        council_signed_by="council-officer-9", icb_signed_by="icb-clinician-1",
        council_signed_on=date(2026, 11, 27), icb_signed_on=date(2026, 11, 19),
        council_signed_for="LA-B", responsible_council="LA-A", review=date(2026, 11, 2))
    assert _rules(decision) == ["responsible-council-signoff"]


def test_the_organisation_is_stored_with_the_signoff_and_old_facts_load_without_it():
    command = ended("2026-11-20", council_for="LA-B")
    stored = to_json(command)
    assert stored["council_signoff"]["organisation"] == "LA-B"
    assert command_from_json(command.kind, stored) == command
    del stored["council_signoff"]["organisation"]  # as facts stored before it was known
    loaded = command_from_json(command.kind, stored)
    assert loaded.council_signoff == Signoff(by="council-officer-1", date=date(2026, 11, 20))
