"""Who is responsible, audit findings: each test names the seed paragraph it holds to.

Seeds: joint policy 4.3.1 (council of ordinary residence immediately before), 4.3.4 (during a
dispute the council meeting the need goes on doing so until resolved), 4.4.1 (originating ICB:
GP practice the person is registered with), 4.4.9 (later changes do not transfer it).
"""

from __future__ import annotations

from datetime import date

from register_core.domain.position import Policy
from register_core.domain.rules import responsibility
from register_core.domain.rules.disputes import DisputeSpan

from .builders import (
    COUNCIL_A,
    COUNCIL_B,
    ICB_X,
    ICB_Y,
    PRACTICE_X,
    PRACTICE_Y,
    confirmed,
    details,
    detention,
    dispute_opened,
    dispute_resolved,
    gp,
    left,
    position_of,
    record_all,
    residence,
)

MAP = Policy(practice_to_icb={PRACTICE_X: ICB_X, PRACTICE_Y: ICB_Y})


# -- 4.4.1 / 4.4.9: the originating ICB does not follow the current GP practice -------------

def test_pure_practice_at_the_first_detention_is_the_last_told_before_it__4_4_1():
    told = [(date(2019, 1, 1), PRACTICE_Y), (date(2021, 1, 1), PRACTICE_X),
            (date(2024, 6, 1), PRACTICE_Y)]
    assert responsibility.originating_practice(told, date(2024, 1, 1)) == (1, True)


def test_pure_none_before_the_detention_gives_the_first_known_never_the_latest__4_4_9():
    told = [(date(2025, 1, 1), PRACTICE_Y), (date(2024, 6, 1), PRACTICE_X)]
    assert responsibility.originating_practice(told, date(2024, 1, 1)) == (1, False)
    assert responsibility.originating_practice([], date(2024, 1, 1)) is None


def test_a31_with_a_new_gp_after_discharge_does_not_move_the_icb__joint_policy_4_4_1_4_4_9():
    # The audit: A28 with PD1 practice X long before admission, A01 without PD1, A03, then
    # an A31 with practice Y. Was a bug: the ICB followed the current practice (Y).
    a28 = details(gp_practice_ods=PRACTICE_X, as_of="2019-03-01")
    a31 = details(gp_practice_ods=PRACTICE_Y, as_of="2024-09-01")
    person = record_all([a28, detention("2024-01-01"), left("2024-03-01"), a31])
    assert person.gp_practice_ods == PRACTICE_Y  # the demographic is the current one
    pos = position_of([a28, detention("2024-01-01"), left("2024-03-01"), a31], policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_X
    why = pos.explain["entitlement.responsible_icb"]
    assert "4.4.1" in why.rule and "4.4.9" in why.rule
    assert why.facts and "person-details" in why.facts[0] and "2019-03-01" in why.facts[0]


def test_a_practice_told_before_the_detention_wins_over_a_later_one_told_at_discharge():
    # The leaving (A03) carries the new practice: still after the detention began (4.4.9).
    pos = position_of([details(gp_practice_ods=PRACTICE_X, as_of="2020-01-01"),
                       detention("2024-01-01"), left("2024-03-01"),
                       details(gp_practice_ods=PRACTICE_Y, as_of="2024-03-01")], policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_X


def test_gp_first_known_after_discharge_sets_the_icb_once_and_it_stays__joint_policy_4_4_9():
    # No GP known before the detention: the first practice told is the best the register
    # knows (and says so); a later change of practice does not move it again.
    first_known = [detention("2024-01-01"), left("2024-03-01"),
                   details(gp_practice_ods=PRACTICE_X, as_of="2024-04-01")]
    pos = position_of(first_known, policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_X
    assert "first known after the detention began" in pos.explain[
        "entitlement.responsible_icb"].rule
    moved = position_of([*first_known, details(gp_practice_ods=PRACTICE_Y, as_of="2025-01-01")],
                        policy=MAP)
    assert moved.entitlement.responsible_icb == ICB_X
    why = moved.explain["entitlement.responsible_icb"]
    assert "first known after the detention began" in why.rule
    assert "2024-04-01" in why.facts[0]


def test_gp_registration_first_dated_after_discharge_stays_on_a_later_one__4_4_9():
    pos = position_of([detention("2024-01-01"), left("2024-03-01"),
                       gp("2024-04-01", PRACTICE_X), gp("2025-01-01", PRACTICE_Y)], policy=MAP)
    assert pos.entitlement.responsible_icb == ICB_X
    assert "first known after the detention began" in pos.explain[
        "entitlement.responsible_icb"].rule


def test_an_unmapped_practice_at_the_detention_is_no_icb_not_a_later_practice__4_4_1():
    pos = position_of([details(gp_practice_ods="GP-UNKNOWN", as_of="2019-01-01"),
                       detention("2024-01-01"), left("2024-03-01"),
                       details(gp_practice_ods=PRACTICE_Y, as_of="2024-09-01")], policy=MAP)
    assert pos.entitlement.responsible_icb is None
    assert "practice_to_icb" in pos.explain["entitlement.responsible_icb"].rule


# -- 4.3.1: a council-confirmed entitlement has a council too ------------------------------

def test_confirmed_entitlement_council_from_residence_before_its_start__joint_policy_4_3_1():
    # Was a bug: confirmed by the council with no detention on the register, the ICB was
    # filled in but the responsible council was left empty.
    before = residence("2020-01-01", COUNCIL_A)
    pos = position_of([before, confirmed("2024-01-01"), residence("2024-06-01", COUNCIL_B)],
                      policy=MAP)
    assert pos.entitlement.status == "active"
    assert pos.entitlement.responsible_council == COUNCIL_A
    why = pos.explain["entitlement.responsible_council"]
    assert "4.3.1" in why.rule
    assert any("ordinary-residence" in cite or "residence" in cite for cite in why.facts)
    assert any("s117-confirmed" in cite for cite in why.facts)


def test_confirmed_entitlement_without_a_residence_before_it_has_no_council():
    pos = position_of([confirmed("2024-01-01"), residence("2024-06-01", COUNCIL_B)])
    assert pos.entitlement.responsible_council is None
    assert pos.explain["entitlement.responsible_council"].rule.startswith("no ordinary residence")


# -- 4.3.4: during a responsibility dispute the council meeting the need goes on -------------

def test_pure_only_an_open_responsibility_dispute_holds_the_council__joint_policy_4_3_4():
    spans = [DisputeSpan(id="d-fund", kind="funding", opened=date(2024, 1, 1)),
             DisputeSpan(id="d-2", kind="responsibility", opened=date(2024, 5, 1)),
             DisputeSpan(id="d-1", kind="responsibility", opened=date(2024, 2, 1),
                         resolved=date(2024, 4, 1))]
    assert responsibility.dispute_holding_council(spans, date(2024, 3, 1)).id == "d-1"
    assert responsibility.dispute_holding_council(spans, date(2024, 4, 15)) is None
    assert responsibility.dispute_holding_council(spans, date(2024, 6, 1)).id == "d-2"


def _disputed(kind: str = "responsibility") -> list:
    # Council A meets the need; a dispute says the person lived in B before the detention;
    # B's residence fact (dated before the detention) arrives while the dispute is open.
    return [residence("2020-01-01", COUNCIL_A), detention("2024-01-01"), left("2024-03-01"),
            dispute_opened("2024-05-01", kind=kind, dispute="dispute-r"),
            residence("2023-06-01", COUNCIL_B)]


def test_a_residence_told_during_a_responsibility_dispute_does_not_move_the_council__4_3_4():
    pos = position_of(_disputed(), today="2024-06-01")
    assert pos.entitlement.responsible_council == COUNCIL_A
    why = pos.explain["entitlement.responsible_council"]
    assert "4.3.4" in why.rule and "dispute-r" in why.rule
    assert any("dispute-opened" in cite for cite in why.facts)


def test_after_the_dispute_is_resolved_the_normal_rule_applies__4_3_1_4_3_4():
    commands = [*_disputed(), dispute_resolved("2024-07-01", dispute="dispute-r")]
    assert position_of(commands, today="2024-06-30").entitlement.responsible_council == COUNCIL_A
    after = position_of(commands, today="2024-07-01")
    assert after.entitlement.responsible_council == COUNCIL_B
    assert "4.3.4" not in after.explain["entitlement.responsible_council"].rule


def test_a_dispute_of_another_kind_does_not_hold_the_council():
    pos = position_of(_disputed(kind="funding"), today="2024-06-01")
    assert pos.entitlement.responsible_council == COUNCIL_B


def test_a_new_detention_told_during_the_dispute_does_not_move_the_council_either__4_3_4():
    pos = position_of([residence("2020-01-01", COUNCIL_A), detention("2024-01-01"),
                       left("2024-03-01"), residence("2024-04-01", COUNCIL_B),
                       dispute_opened("2024-05-01", kind="responsibility", dispute="dispute-r"),
                       detention("2024-06-01", episode="ep-2")], today="2024-06-10")
    assert pos.entitlement.status == "pending"
    assert pos.entitlement.responsible_council == COUNCIL_A


def test_facts_told_before_the_dispute_still_count__4_3_4():
    # Council B was already meeting the need (moved by a re-detention told before the dispute).
    pos = position_of([residence("2020-01-01", COUNCIL_A), detention("2024-01-01"),
                       left("2024-03-01"), residence("2024-04-01", COUNCIL_B),
                       detention("2024-04-10", episode="ep-2"),
                       left("2024-04-20", episode="ep-2"),
                       dispute_opened("2024-05-01", kind="responsibility", dispute="dispute-r")],
                      today="2024-06-10")
    assert pos.entitlement.responsible_council == COUNCIL_B
    assert "4.3.4" in pos.explain["entitlement.responsible_council"].rule
