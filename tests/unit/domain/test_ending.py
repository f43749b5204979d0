"""Ending aftercare (s117-rules.md "Ending aftercare").

Seeds: joint policy 16.1, 16.2, 16.3, 16.6, 16.9, 5.3, 5.7, 5.8; MoU 4 ("Neither party may
act unilaterally in ... cessation of aftercare"); dispute protocol 7.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from register_core.domain.commands import RecordS117Ended, Signoff
from register_core.domain.errors import ImpossibleDates, UnlawfulEnding
from register_core.domain.model import Person
from register_core.domain.rules.disputes import DisputeSpan
from register_core.domain.rules.ending import (
    FORBIDDEN_SOLE_GROUNDS,
    EndingDecision,
    check_ending,
    ending_flags,
    ending_violations,
)

from .builders import (
    confirmed,
    detention,
    ended,
    left,
    legal,
    person_ref,
    position_of,
    prov,
    residence,
    review,
)

LAWFUL = EndingDecision(date=date(2025, 6, 1), reason="no longer needs aftercare services",
                        council_signed_by="council-officer-1", icb_signed_by="icb-clinician-1",
                        review=date(2025, 5, 20))


def _with(**changes: object) -> EndingDecision:
    fields = {"date": LAWFUL.date, "reason": LAWFUL.reason,
              "council_signed_by": LAWFUL.council_signed_by,
              "icb_signed_by": LAWFUL.icb_signed_by, "grounds": LAWFUL.grounds,
              "review": LAWFUL.review}
    fields.update(changes)
    return EndingDecision(**fields)  # type: ignore[arg-type]


def _rules(decision: EndingDecision, on_cto: bool = False) -> list[str]:
    return [v.rule for v in ending_violations(decision, on_cto=on_cto)]


# -- the pure rule -------------------------------------------------------------------------

def test_a_joint_decision_with_reasons_not_on_a_cto_may_end__joint_policy_16_1_16_3():
    assert ending_violations(LAWFUL, on_cto=False) == []
    check_ending(LAWFUL, on_cto=False)  # does not raise


def test_never_while_on_a_cto__joint_policy_16_2():
    violations = ending_violations(LAWFUL, on_cto=True)
    assert [(v.rule, v.field, v.exception_kind) for v in violations] == [
        ("no-ending-on-cto", "date", "ended-on-cto")]
    with pytest.raises(UnlawfulEnding) as err:
        check_ending(LAWFUL, on_cto=True)
    assert (err.value.field, err.value.rule) == ("date", "no-ending-on-cto")


@pytest.mark.parametrize(("missing", "field"), [("council_signed_by", "council_signoff"),
                                                ("icb_signed_by", "icb_signoff")])
def test_one_side_alone_cannot_end_it__joint_policy_16_1_mou_4(missing, field):
    violations = ending_violations(_with(**{missing: None}), on_cto=False)
    assert [(v.rule, v.field, v.exception_kind) for v in violations] == [
        ("joint-ending", field, "one-sided-ending")]
    with pytest.raises(UnlawfulEnding) as err:
        check_ending(_with(**{missing: "  "}), on_cto=False)
    assert (err.value.field, err.value.rule) == (field, "joint-ending")


def test_neither_side_signed_names_both__joint_policy_16_1():
    violations = ending_violations(_with(council_signed_by=None, icb_signed_by=""),
                                   on_cto=False)
    assert [v.field for v in violations] == ["council_signoff", "icb_signoff"]


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_an_ending_needs_its_reasons__joint_policy_16_3(reason):
    assert _rules(_with(reason=reason)) == ["ending-needs-reasons"]
    with pytest.raises(UnlawfulEnding) as err:
        check_ending(_with(reason=reason), on_cto=False)
    assert (err.value.field, err.value.rule) == ("reason", "ending-needs-reasons")


@pytest.mark.parametrize(("ground", "paragraph"), [
    ("refused-plan", "16.9 refuses the aftercare plan"),
    ("discharged-from-specialist-services", "16.6 and 16.9 discharged from specialist services"),
    ("time-elapsed", "16.9 an arbitrary period has passed"),
    ("deprived-of-liberty-mca", "16.9 deprived of liberty under the MCA"),
    ("may-return-to-hospital", "16.9 may return informally or under s2"),
    ("no-longer-on-cto-or-leave", "16.9 no longer on a CTO or s17 leave"),
    ("disengaged", "5.7 and 5.8 disengagement does not make it lapse"),
])
def test_forbidden_sole_grounds__joint_policy_16_6_16_9_5_7_5_8(ground, paragraph):
    assert ground in FORBIDDEN_SOLE_GROUNDS, paragraph
    assert _rules(_with(grounds=(ground,))) == ["forbidden-sole-ground"]
    with pytest.raises(UnlawfulEnding) as err:
        check_ending(_with(grounds=(ground,)), on_cto=False)
    assert err.value.field == "grounds"


def test_several_forbidden_grounds_together_are_still_forbidden__joint_policy_16_9():
    assert _rules(_with(grounds=("refused-plan", "time-elapsed"))) == ["forbidden-sole-ground"]


def test_a_forbidden_ground_alongside_no_longer_in_need_is_not_the_sole_ground__16_1_16_9():
    assert _rules(_with(grounds=("refused-plan", "no-longer-in-need"))) == []


def test_a_blank_ground_does_not_hide_a_forbidden_sole_ground__joint_policy_16_9():
    # Was a bug: ("refused-plan", "") counted "" as another ground and passed.
    assert _rules(_with(grounds=("refused-plan", " "))) == ["forbidden-sole-ground"]


def test_an_ending_with_no_review_on_the_register_stands_flagged__joint_policy_16_1():
    """16.1 asks for a joint recorded review before an ending. The hub may not hear of every
    review, so a signed ending with reasons and none on the register stands, flagged."""
    assert ending_violations(_with(review=None), on_cto=False) == []
    check_ending(_with(review=None), on_cto=False)  # no refusal
    [flag] = ending_flags(_with(review=None), conditionally_discharged=False)
    assert (flag.rule, flag.field, flag.exception_kind) == (
        "ending-after-joint-review", "review", "ended-without-review")
    assert "joint recorded review" in flag.message and "16.1" in flag.message
    assert ending_flags(LAWFUL, conditionally_discharged=False) == []


ENDING_DISPUTE = DisputeSpan(id="dispute-1", kind="ending", opened=date(2025, 5, 25))


@pytest.mark.parametrize(("opened", "resolved", "held"), [
    ("2025-05-25", None, True),  # open on the ending date
    ("2025-06-01", None, True),  # opened that very day
    ("2025-05-25", "2025-06-10", True),  # resolved after it: it was open on the day
    ("2025-05-25", "2025-06-01", False),  # resolved that day: what follows the outcome stands
    ("2025-05-25", "2025-05-30", False),  # resolved before
    ("2025-06-02", None, False),  # opened after the ending took effect
])
def test_no_ending_while_a_dispute_about_ending_is_open__dispute_protocol_3_7(opened, resolved,
                                                                              held):
    span = DisputeSpan(id="dispute-1", kind="ending", opened=date.fromisoformat(opened),
                       resolved=date.fromisoformat(resolved) if resolved else None)
    violations = ending_violations(LAWFUL, on_cto=False, disputes=[span])
    if not held:
        assert violations == []
        return
    assert [(v.rule, v.field, v.exception_kind) for v in violations] == [
        ("no-ending-during-dispute", "date", "ended-during-dispute")]
    assert "dispute-1" in violations[0].message and "care continues" in violations[0].message
    with pytest.raises(UnlawfulEnding) as err:
        check_ending(LAWFUL, on_cto=False, disputes=[span])
    assert err.value.rule == "no-ending-during-dispute"


@pytest.mark.parametrize("kind", ["responsibility", "funding", "scope"])
def test_other_disputes_do_not_hold_an_ending_back(kind):
    span = DisputeSpan(id="dispute-2", kind=kind, opened=date(2025, 5, 25))
    assert ending_violations(LAWFUL, on_cto=False, disputes=[span]) == []


def test_an_ending_during_a_conditional_discharge_is_flagged_not_refused__standards_6():
    assert ending_flags(LAWFUL, conditionally_discharged=False) == []
    [flag] = ending_flags(LAWFUL, conditionally_discharged=True)
    assert (flag.rule, flag.exception_kind) == ("ending-during-conditional-discharge",
                                                "ended-during-conditional-discharge")
    assert "recall" in flag.message


def test_every_broken_rule_is_listed_cto_first():
    decision = _with(council_signed_by=None, reason=None, grounds=("disengaged",),
                     review=None)
    assert _rules(decision, on_cto=True) == ["no-ending-on-cto", "joint-ending",
                                              "ending-needs-reasons", "forbidden-sole-ground"]
    assert [v.rule for v in ending_violations(decision, on_cto=True,
                                              disputes=[ENDING_DISPUTE])][:2] == [
        "no-ending-on-cto", "no-ending-during-dispute"]
    with pytest.raises(UnlawfulEnding) as err:
        check_ending(decision, on_cto=True)
    assert err.value.rule == "no-ending-on-cto"


# -- through the register ------------------------------------------------------------------

# Active, with the joint review an ending needs (16.1) held before the endings below.
ACTIVE = [residence("2020-01-01", "LA-A"), detention("2024-01-01"), left("2024-03-01"),
          review("2025-05-20", kind="unscheduled")]


def test_a_lawful_joint_ending_ends_it__joint_policy_16_1_16_3():
    pos = position_of([*ACTIVE, ended("2025-06-01")])
    assert pos.entitlement.status == "ended"
    assert pos.entitlement.ended is not None
    assert pos.entitlement.ended.date == date(2025, 6, 1)
    assert pos.entitlement.ended.council_signoff == {"by": "council-officer-1",
                                                     "date": "2025-06-01"}
    assert pos.entitlement.ended.icb_signoff == {"by": "icb-clinician-1", "date": "2025-06-01"}
    assert pos.entitlement.next_review_due is None
    assert pos.refused_endings == []
    assert "16.1" in pos.explain["entitlement.ended"].rule
    assert "after the review of 2025-05-20" in pos.explain["entitlement.ended"].rule
    cite = pos.explain["entitlement.ended"].facts
    assert len(cite) == 2 and cite[0].startswith("fact 5: s117-ended from council")
    assert cite[1].startswith("fact 4: review-completed from council")
    assert cite[0] in pos.explain["entitlement.status"].facts


@pytest.mark.parametrize(("side", "council", "icb"), [("council only", True, False),
                                                      ("ICB only", False, True)])
def test_an_ending_by_one_side_is_refused_and_leaves_it_active__joint_policy_16_1(side, council,
                                                                                 icb):
    pos = position_of([*ACTIVE, ended("2025-06-01", council=council, icb=icb)])
    assert pos.entitlement.status == "active", side
    assert pos.entitlement.ended is None
    assert len(pos.refused_endings) == 1
    refused = pos.refused_endings[0]
    assert refused.fact.kind == "s117-ended"
    assert [v.exception_kind for v in refused.violations] == ["one-sided-ending"]
    assert pos.entitlement.next_review_due == date(2026, 5, 20)  # duties go on
    # The status says which ending did not end it, and why.
    status = pos.explain["entitlement.status"]
    assert "the ending dated 2025-06-01 from council did not end it" in status.rule
    assert "sign-off" in status.rule and refused.fact.cite() in status.facts


def test_an_ending_without_reasons_is_refused__joint_policy_16_3():
    pos = position_of([*ACTIVE, ended("2025-06-01", reason=None)])
    assert pos.entitlement.status == "active"
    assert [v.rule for v in pos.refused_endings[0].violations] == ["ending-needs-reasons"]


def test_an_ending_while_on_a_cto_is_refused__joint_policy_16_2_5_3():
    commands = [detention("2024-01-01"), legal("cto-start", "2024-03-01"), review("2024-08-20"),
                ended("2024-09-01")]
    pos = position_of(commands)
    assert pos.entitlement.status == "active"
    assert pos.on_cto
    assert [v.exception_kind for v in pos.refused_endings[0].violations] == ["ended-on-cto"]


def test_an_ending_after_the_cto_ended_may_end_it__joint_policy_16_2_5_3():
    pos = position_of([detention("2024-01-01"), legal("cto-start", "2024-03-01"),
                       legal("cto-end", "2024-09-01"), review("2024-11-20"),
                       ended("2024-12-01")])
    assert pos.entitlement.status == "ended"


def test_a_cto_that_expired_by_its_end_date_no_longer_blocks_ending__joint_policy_16_2():
    pos = position_of([detention("2024-01-01"), review("2024-07-20"),
                       legal("cto-start", "2024-03-01", end="2024-09-01"), ended("2024-12-01")])
    assert pos.entitlement.status == "ended"
    blocked = position_of([detention("2024-01-01"), review("2024-07-20"),
                           legal("cto-start", "2024-03-01", end="2024-09-01"),
                           ended("2024-08-01")])
    assert blocked.entitlement.status == "active"


def test_ending_solely_because_the_person_disengaged_is_refused__joint_policy_5_7_5_8():
    pos = position_of([*ACTIVE, ended("2025-06-01", grounds=("disengaged",))])
    assert pos.entitlement.status == "active"
    assert [v.rule for v in pos.refused_endings[0].violations] == ["forbidden-sole-ground"]


def test_years_of_no_contact_do_not_make_it_lapse__joint_policy_5_8_16_9():
    pos = position_of(ACTIVE, today="2035-01-01")
    assert pos.entitlement.status == "active"


def test_ending_solely_on_leaving_specialist_services_is_refused__joint_policy_16_6():
    pos = position_of([*ACTIVE, ended("2025-06-01",
                                      grounds=("discharged-from-specialist-services",))])
    assert pos.entitlement.status == "active"


def test_a_new_entitling_detention_after_ending_opens_a_new_pending_period():
    commands = [*ACTIVE, ended("2025-06-01"), residence("2025-08-01", "LA-B"),
                detention("2026-01-10", episode="ep-2")]
    pos = position_of(commands, today="2026-01-11")
    assert pos.entitlement.status == "pending"
    assert pos.entitlement.pending_since == date(2026, 1, 10)
    assert pos.entitlement.ended is None
    assert pos.entitlement.start is None
    assert pos.entitlement.responsible_council == "LA-B"
    # the previous period's reasons must not linger (was a bug: stale start/ended explain)
    assert "entitlement.ended" not in pos.explain
    assert "entitlement.start" not in pos.explain
    later = position_of([*commands, left("2026-04-01", episode="ep-2")])
    assert (later.entitlement.status, later.entitlement.start) == ("active", date(2026, 4, 1))


def test_an_s2_admission_after_ending_opens_nothing():
    pos = position_of([*ACTIVE, ended("2025-06-01"), detention("2026-01-10", "02",
                                                               episode="ep-2")])
    assert pos.entitlement.status == "ended"


def test_an_ending_of_someone_still_in_hospital_is_refused_not_dropped():
    # Was a bug: an ending while pending was silently ignored (not in refused_endings).
    pos = position_of([detention("2024-01-01"), review("2024-01-20"), ended("2024-02-01")],
                      today="2024-02-02")
    assert pos.entitlement.status == "pending"
    assert [v.rule for v in pos.refused_endings[0].violations] == [
        "ending-needs-active-entitlement"]


def test_an_ending_with_no_entitlement_on_the_register_is_refused():
    pos = position_of([ended("2024-02-01")])
    assert pos.entitlement.status == "none"
    assert len(pos.refused_endings) == 1


def test_an_ending_dated_after_today_has_not_happened_yet():
    commands = [*ACTIVE, ended("2025-06-01")]
    assert position_of(commands, today="2025-05-31").entitlement.status == "active"
    assert position_of(commands, today="2025-06-01").entitlement.status == "ended"


def test_the_other_partner_recording_the_same_lawful_ending_is_not_a_refusal():
    pos = position_of([*ACTIVE, ended("2025-06-01"), ended("2025-06-01", source="icb")])
    assert pos.entitlement.status == "ended"
    assert pos.refused_endings == []


def test_a_council_confirmed_entitlement_ends_by_the_same_rules__joint_policy_16_1():
    one_sided = position_of([confirmed("2019-01-01"), review("2025-05-01"),
                             ended("2025-06-01", icb=False)])
    assert one_sided.entitlement.status == "active"
    lawful = position_of([confirmed("2019-01-01"), review("2025-05-01"), ended("2025-06-01")])
    assert lawful.entitlement.status == "ended"


def test_a_signoff_dated_after_the_notice_arrived_is_impossible():
    person = Person(id="p1")
    command = RecordS117Ended(
        person=person_ref(1), provenance=prov("council", date(2025, 6, 1)),
        date=date(2025, 6, 1), reason="no longer needed",
        council_signoff=Signoff(by="council-officer-1", date=date(2025, 6, 2)),
        icb_signoff=Signoff(by="icb-clinician-1", date=date(2025, 6, 1)))
    assert command.provenance.received_at == datetime(2025, 6, 1, 9, 0)
    with pytest.raises(ImpossibleDates) as err:
        person.record(command)
    assert (err.value.field, err.value.rule) == ("council_signoff.date", "signoff-not-in-future")
