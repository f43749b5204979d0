"""Who is responsible: council and ICB (s117-rules.md "Who is responsible").

Seeds: joint policy 4.2, 4.3.1, 4.3.3 (with the Worcestershire quote), 4.4.1, 4.4.9, 17.1;
standards.md section 6 (Worcestershire CC v SSHSC [2023] UKSC 31; NHS England "Who Pays?").
"""

from __future__ import annotations

from datetime import date

from register_core.domain.position import Policy
from register_core.domain.rules import responsibility

from .builders import (
    COUNCIL_A,
    COUNCIL_B,
    COUNCIL_C,
    ICB_X,
    ICB_Y,
    PRACTICE_X,
    PRACTICE_Y,
    details,
    detention,
    ended,
    gp,
    left,
    legal,
    person_ref,
    position_of,
    regrade,
    residence,
    review,
)

MAP = Policy(practice_to_icb={PRACTICE_X: ICB_X, PRACTICE_Y: ICB_Y})


# -- pure rules -----------------------------------------------------------------------------

def test_council_of_residence_immediately_before_the_detention__joint_policy_4_3_1():
    residences = [(date(2015, 1, 1), COUNCIL_C), (date(2020, 6, 1), COUNCIL_A),
                  (date(2024, 6, 1), COUNCIL_B)]
    assert responsibility.responsible_council(residences, date(2024, 1, 1)) == COUNCIL_A


def test_council_ignores_the_order_residences_are_listed_in():
    residences = [(date(2020, 6, 1), COUNCIL_A), (date(2015, 1, 1), COUNCIL_C)]
    assert responsibility.responsible_council(residences, date(2024, 1, 1)) == COUNCIL_A


def test_no_known_residence_before_the_detention_gives_no_council():
    assert responsibility.responsible_council([(date(2025, 1, 1), COUNCIL_A)],
                                              date(2024, 1, 1)) is None
    assert responsibility.responsible_council([], date(2024, 1, 1)) is None


def test_only_a_new_entitling_detention_moves_the_council__uksc_2023_31_4_3_3():
    assert responsibility.new_detention_moves_council("03", entitlement_ended=False)
    assert responsibility.new_detention_moves_council("37", entitlement_ended=False)
    assert not responsibility.new_detention_moves_council("02", entitlement_ended=False)
    assert not responsibility.new_detention_moves_council("01", entitlement_ended=False)
    # after a lawful ending the new detention starts a fresh duty: nothing to move
    assert not responsibility.new_detention_moves_council("03", entitlement_ended=True)


def test_originating_icb_is_the_gp_practice_icb_before_the_detention__joint_policy_4_4_1():
    regs = [(date(2018, 1, 1), PRACTICE_Y), (date(2021, 1, 1), PRACTICE_X),
            (date(2024, 9, 1), PRACTICE_Y)]
    assert responsibility.originating_icb(regs, date(2024, 1, 1),
                                          {PRACTICE_X: ICB_X, PRACTICE_Y: ICB_Y}) == ICB_X


def test_originating_icb_passes_an_icb_code_through_when_no_map_knows_it():
    assert responsibility.originating_icb([(date(2021, 1, 1), ICB_Y)], date(2024, 1, 1)) \
        == ICB_Y


def test_originating_icb_none_without_a_registration_before_the_detention():
    assert responsibility.originating_icb([(date(2025, 1, 1), ICB_Y)], date(2024, 1, 1)) is None


# -- council through the register ----------------------------------------------------------

def test_council_is_where_the_person_lived_immediately_before_detention__joint_policy_4_3_1():
    pos = position_of([residence("2010-01-01", COUNCIL_C), residence("2022-01-01", COUNCIL_A),
                       detention("2024-01-01"), left("2024-03-01")])
    assert pos.entitlement.responsible_council == COUNCIL_A


def test_a_move_after_discharge_does_not_change_the_council__joint_policy_4_3_3():
    # "ordinarily resident in (A) immediately before detention ... moves on discharge to (B)
    # and moves again to (C), local authority (A) will remain responsible"
    pos = position_of([residence("2020-01-01", COUNCIL_A), detention("2024-01-01"),
                       left("2024-03-01"), residence("2024-03-01", COUNCIL_B),
                       residence("2025-02-01", COUNCIL_C)])
    assert pos.entitlement.responsible_council == COUNCIL_A
    assert pos.entitlement.status == "active"


def test_a_new_entitling_detention_before_discharge_moves_the_council__uksc_2023_31_4_3_3():
    # "... is subsequently detained in hospital for treatment again, the local authority in
    # whose area the person was ordinarily resident immediately before their subsequent
    # admission (local authority (B) or (C)) will be responsible"
    commands = [residence("2020-01-01", COUNCIL_A), detention("2024-01-01"), left("2024-03-01"),
                residence("2024-03-01", COUNCIL_B), residence("2025-02-01", COUNCIL_C),
                detention("2025-06-01", episode="ep-2")]
    pending = position_of(commands, today="2025-06-02")
    assert pending.entitlement.responsible_council == COUNCIL_C
    assert pending.entitlement.status == "pending"
    again = position_of([*commands, left("2025-08-01", episode="ep-2")])
    assert again.entitlement.responsible_council == COUNCIL_C
    assert again.entitlement.start == date(2025, 8, 1)
    assert "Worcestershire" in again.explain["entitlement.responsible_council"].rule


def test_re_detention_moves_the_council_even_under_s37__joint_policy_17_1():
    pos = position_of([residence("2020-01-01", COUNCIL_A), detention("2024-01-01"),
                       left("2024-03-01"), residence("2024-05-01", COUNCIL_B),
                       detention("2025-06-01", "10", episode="ep-2")], today="2025-07-01")
    assert pos.entitlement.responsible_council == COUNCIL_B


def test_an_s2_admission_does_not_move_the_council__uksc_2023_31_4_3_3():
    pos = position_of([residence("2020-01-01", COUNCIL_A), detention("2024-01-01"),
                       left("2024-03-01"), residence("2024-05-01", COUNCIL_B),
                       detention("2025-06-01", "02", episode="ep-2"),
                       left("2025-06-20", episode="ep-2")])
    assert pos.entitlement.responsible_council == COUNCIL_A
    assert pos.entitlement.status == "active"
    assert pos.entitlement.start == date(2024, 3, 1)


def test_an_informal_admission_does_not_move_the_council__uksc_2023_31_4_3_3():
    pos = position_of([residence("2020-01-01", COUNCIL_A), detention("2024-01-01"),
                       left("2024-03-01"), residence("2024-05-01", COUNCIL_B),
                       detention("2025-06-01", "01", episode="ep-2")], today="2025-06-10")
    assert pos.entitlement.responsible_council == COUNCIL_A
    assert pos.entitlement.status == "active"


def test_an_s2_re_admission_regraded_to_s3_does_move_it__joint_policy_3_3_4_3_3():
    pos = position_of([residence("2020-01-01", COUNCIL_A), detention("2024-01-01"),
                       left("2024-03-01"), residence("2024-05-01", COUNCIL_B),
                       detention("2025-06-01", "02", episode="ep-2"),
                       regrade("2025-06-20", "03", episode="ep-2")], today="2025-07-01")
    assert pos.entitlement.responsible_council == COUNCIL_B
    assert pos.entitlement.status == "pending"


def test_cto_revoked_returns_to_detention_without_moving_the_council__standards_6():
    commands = [residence("2020-01-01", COUNCIL_A), detention("2024-01-01"),
                legal("cto-start", "2024-03-01"), residence("2024-06-01", COUNCIL_B),
                legal("cto-revoked", "2024-09-01")]
    revoked = position_of(commands, today="2024-09-02")
    assert revoked.entitlement.status == "pending"
    assert revoked.entitlement.responsible_council == COUNCIL_A
    assert not revoked.on_cto
    assert revoked.in_hospital
    # Was a bug: the discharge after revocation (same episode ref) was attached to the old,
    # already-ended episode and lost, leaving the person "in hospital" for ever.
    out = position_of([*commands, left("2024-11-01")])
    assert out.entitlement.status == "active"
    assert out.entitlement.start == date(2024, 11, 1)
    assert out.entitlement.responsible_council == COUNCIL_A
    assert not out.in_hospital


def test_cto_revoked_without_an_episode_ref_finds_the_cto_detention():
    pos = position_of([residence("2020-01-01", COUNCIL_A), detention("2024-01-01", episode=None),
                       legal("cto-start", "2024-03-01", episode=None),
                       residence("2024-06-01", COUNCIL_B),
                       legal("cto-revoked", "2024-09-01", episode=None),
                       left("2024-10-01", episode=None)])
    assert pos.entitlement.status == "active"
    assert pos.entitlement.start == date(2024, 10, 1)
    assert pos.entitlement.responsible_council == COUNCIL_A
    assert [ep.continuation for ep in pos.detentions] == [False, True]


# -- ICB through the register --------------------------------------------------------------

def test_icb_from_the_gp_practice_before_the_first_detention__joint_policy_4_4_1():
    pos = position_of([gp("2019-01-01", PRACTICE_X), detention("2024-01-01"),
                       left("2024-03-01")], policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_X
    assert "4.4.1" in pos.explain["entitlement.responsible_icb"].rule


def test_icb_code_on_the_registration_wins_over_the_map():
    pos = position_of([gp("2019-01-01", PRACTICE_X, icb=ICB_Y), detention("2024-01-01"),
                       left("2024-03-01")], policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_Y


def test_icb_is_sticky_through_re_detention_while_the_council_moves__joint_policy_4_4_9():
    pos = position_of([residence("2019-01-01", COUNCIL_A), gp("2019-01-01", PRACTICE_X),
                       detention("2024-01-01"), left("2024-03-01"),
                       residence("2024-06-01", COUNCIL_B), gp("2024-06-01", PRACTICE_Y),
                       detention("2025-01-01", episode="ep-2"), left("2025-03-01", episode="ep-2")],
                      policy=MAP)
    # standards.md section 6: council and ICB can now belong to different areas
    assert pos.entitlement.responsible_council == COUNCIL_B
    assert pos.entitlement.responsible_icb == ICB_X


def test_a_gp_change_after_discharge_does_not_change_the_icb__joint_policy_4_4_9():
    pos = position_of([gp("2019-01-01", PRACTICE_X), detention("2024-01-01"),
                       left("2024-03-01"), gp("2024-04-01", PRACTICE_Y)], policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_X


def test_a_practice_the_map_does_not_know_is_not_reported_as_an_icb():
    # Was a bug: the practice ODS code itself was reported as the responsible ICB.
    pos = position_of([gp("2019-01-01", "GP-UNKNOWN"), detention("2024-01-01"),
                       left("2024-03-01")], policy=MAP)
    assert pos.entitlement.responsible_icb is None
    assert pos.explain["entitlement.responsible_icb"].rule.startswith("no GP registration")


def test_icb_falls_back_to_the_one_the_detaining_provider_named():
    pos = position_of([detention("2024-01-01", icb=ICB_Y), left("2024-03-01")])
    assert pos.entitlement.responsible_icb == ICB_Y
    assert pos.explain["entitlement.responsible_icb"].facts


def test_icb_falls_back_to_the_gp_practice_reported_at_admission():
    admission = detention("2024-01-01", ref=person_ref(1, gp_practice_ods=PRACTICE_X))
    later = detention("2026-01-01", episode="ep-2", ref=person_ref(1, gp_practice_ods=PRACTICE_Y))
    pos = position_of([admission, left("2024-03-01"), later], today="2026-02-01", policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_X


def test_a_new_period_after_a_lawful_ending_has_a_new_originating_icb__joint_policy_4_4_1():
    pos = position_of([gp("2019-01-01", PRACTICE_X), residence("2019-01-01", COUNCIL_A),
                       detention("2022-01-01"), left("2022-03-01"), review("2023-05-15"),
                       ended("2023-06-01"),
                       gp("2023-09-01", PRACTICE_Y), residence("2023-09-01", COUNCIL_B),
                       detention("2024-05-01", episode="ep-2"),
                       left("2024-07-01", episode="ep-2")], policy=MAP)
    assert pos.entitlement.status == "active"
    assert pos.entitlement.responsible_icb == ICB_Y
    assert pos.entitlement.responsible_council == COUNCIL_B


def test_icb_last_resort_is_the_current_gp_practice_and_says_so():
    pos = position_of([details(gp_practice_ods=PRACTICE_Y, as_of="2024-05-01"),
                       detention("2024-01-01"), left("2024-03-01")], policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_Y
    explanation = pos.explain["entitlement.responsible_icb"]
    assert "current GP practice" in explanation.rule
    assert explanation.facts and "person-details" in explanation.facts[0]
