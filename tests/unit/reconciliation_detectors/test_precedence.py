"""Precedence rules settle what sources disagree on (s117-rules.md, "Missed entitlements and
duties the hub should find": "Sources disagree: section, dates, responsible council or ICB,
alive/deceased"; architecture section 1 step 3: "opens exceptions for conflicts a rule cannot
settle"). A settled disagreement is no exception and the register follows the winner; one no
rule settles is raised exactly as without rules. Synthetic data only."""

from __future__ import annotations

from datetime import date

from register_core.domain.commands import Command
from register_core.domain.position import Policy
from register_core.domain.precedence import Precedence

from ..domain.builders import (
    COUNCIL_A,
    COUNCIL_B,
    confirmed,
    details,
    detention,
    gp,
    left,
    plan,
    practitioner,
    residence,
    review,
)
from .helpers import council_detention, from_source, of_kind, run

TRUST_FIRST = Policy(precedence=Precedence(detention=("trust-*",)))
COUNCIL_RESIDENCE = Policy(precedence=Precedence(ordinary_residence=("council-*",)))
KEPT = [detention("2026-01-05"), practitioner("worker-17", "2026-01-08"), plan("2026-02-27"),
        left("2026-03-02"), confirmed("2026-03-02")]


def section_disagreement() -> list[Command]:
    """The trust detains under s3; the council's record of the same admission says s2."""
    return [detention("2026-01-05", "03"),
            *council_detention("2026-01-05", "02", source="council-a")]


def conflicts(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [f.detail["field"] for f in of_kind(findings, "source-conflict")]


# -- detentions ---------------------------------------------------------------------------

def test_with_no_rule_a_section_disagreement_is_an_exception_as_before():
    findings, position = run(section_disagreement(), "2026-01-20")
    assert conflicts(findings) == ["detention.section"]
    assert sorted(ep.section for ep in position.detentions) == ["02", "03"]
    assert not [k for k, v in position.explain.items() if "precedence" in v.rule]


def test_the_trust_first_for_detention_facts_settles_the_section_and_the_register_shows_it():
    findings, position = run(section_disagreement(), "2026-01-20",
                             position_policy=TRUST_FIRST)
    assert conflicts(findings) == []
    [register] = position.detentions
    assert (register.ref, register.section) == ("ep-1", "03")
    assert position.entitlement.status == "pending"
    assert position.entitlement.trigger_section == "03"
    why = position.explain["detentions[ep-1].section"]
    assert why.rule.startswith("precedence: detention facts from trust-a over council-a "
                               "(config precedence.detention: 'trust-*')")
    assert "Section 3 (03), not council-a's Section 2 (02)" in why.rule
    assert why.facts and all("from trust-a" in cite for cite in why.facts)
    assert "precedence: detention facts from trust-a" in position.explain[
        "entitlement.trigger_section"].rule


def test_a_rule_naming_neither_source_settles_nothing():
    neither = Policy(precedence=Precedence(detention=("trust-b", "pds")))
    findings, position = run(section_disagreement(), "2026-01-20", position_policy=neither)
    assert conflicts(findings) == ["detention.section"]
    assert len(position.detentions) == 2


def test_a_pattern_naming_both_disagreeing_sources_settles_nothing():
    """Two trusts both match ``trust-*``: the rule prefers neither, so a person decides."""
    other_trust = council_detention("2026-01-05", "02", source="trust-b")
    findings, _ = run([detention("2026-01-05", "03"), *other_trust], "2026-01-20",
                      position_policy=TRUST_FIRST)
    assert conflicts(findings) == ["detention.section"]


def test_the_start_date_follows_the_trust_and_the_entitlement_activates_on_its_leaving():
    told = [*KEPT, *council_detention("2026-01-06", source="council-a")]
    assert conflicts(run(told, "2026-04-01")[0]) == ["detention.start"]
    findings, position = run(told, "2026-04-01", position_policy=TRUST_FIRST)
    assert conflicts(findings) == []
    [register] = position.detentions
    assert (register.start, register.end) == (date(2026, 1, 5), date(2026, 3, 2))
    assert position.entitlement.status == "active"
    assert "start date 2026-01-05, not council-a's 2026-01-06" in position.explain[
        "detentions[ep-1].start"].rule


def test_the_end_date_follows_the_preferred_source_either_way():
    told = [*KEPT, *council_detention("2026-01-05", end="2026-03-05", source="council-a")]
    assert conflicts(run(told, "2026-04-01")[0]) == ["detention.end"]
    _, trust = run(told, "2026-04-01", position_policy=TRUST_FIRST)
    assert [ep.end for ep in trust.detentions] == [date(2026, 3, 2)]
    assert trust.entitlement.start == date(2026, 3, 2)
    council_first = Policy(precedence=Precedence(detention=("council-*", "trust-*")))
    findings, council = run(told, "2026-04-01", position_policy=council_first)
    assert conflicts(findings) == []
    assert [ep.end for ep in council.detentions] == [date(2026, 3, 5)]
    assert council.entitlement.start == date(2026, 3, 5)


def test_the_icb_named_for_the_detention_follows_the_preferred_source():
    told = [detention("2026-01-05", icb="ICB-X"),
            *council_detention("2026-01-05", icb="ICB-Y", source="council-a")]
    assert conflicts(run(told, "2026-01-06")[0]) == ["detention.responsible_icb"]
    findings, position = run(told, "2026-01-06", position_policy=Policy(
        precedence=Precedence(detention=("council-a",))))
    assert conflicts(findings) == []
    assert position.entitlement.responsible_icb == "ICB-Y"
    assert "ICB ICB-Y, not trust-a's ICB-X" in position.explain[
        "detentions[detention-2026-01-05-03].responsible_icb"].rule


# -- ordinary residence (joint policy 4.3.1: it sets the responsible council) ---------------

def residence_disagreement() -> list[Command]:
    """The council says LA-A from 1 January 2025; the trust, told later, says LA-B."""
    return [from_source(residence("2025-01-01", COUNCIL_A), "council-a"),
            from_source(residence("2025-01-01", COUNCIL_B), "trust-a"), *KEPT]


def test_with_no_rule_the_residence_disagreement_is_an_exception():
    findings, position = run(residence_disagreement(), "2026-04-01")
    assert conflicts(findings) == ["ordinary_residence.council_code"]
    assert position.entitlement.responsible_council == COUNCIL_B  # the last one told


def test_the_council_first_for_ordinary_residence_sets_the_responsible_council():
    findings, position = run(residence_disagreement(), "2026-04-01",
                             position_policy=COUNCIL_RESIDENCE)
    assert conflicts(findings) == []
    assert position.entitlement.responsible_council == COUNCIL_A
    why = position.explain["entitlement.responsible_council"]
    assert ("precedence: ordinary residence from council-a over trust-a (config "
            "precedence.ordinary_residence: 'council-*')") in why.rule
    settled = position.explain["ordinary_residence[2025-01-01]"]
    assert settled.rule.endswith(f": {COUNCIL_A} from 2025-01-01")
    assert all("from council-a" in cite for cite in settled.facts)


def test_a_residence_rule_naming_neither_source_leaves_the_exception():
    findings, position = run(residence_disagreement(), "2026-04-01", position_policy=Policy(
        precedence=Precedence(ordinary_residence=("council-b",))))
    assert conflicts(findings) == ["ordinary_residence.council_code"]
    assert position.entitlement.responsible_council == COUNCIL_B


def test_a_detention_rule_does_not_settle_residence():
    findings, _ = run(residence_disagreement(), "2026-04-01", position_policy=TRUST_FIRST)
    assert conflicts(findings) == ["ordinary_residence.council_code"]


# -- GP practice (joint policy 4.4.1: it sets the originating ICB) and named practitioner ---

def gp_disagreement() -> list[Command]:
    """PDS registers the person with one practice from 1 June 2025, the trust with another."""
    return [gp("2025-06-01", "P11111", "ICB-1"),
            from_source(gp("2025-06-01", "P22222", "ICB-2"), "trust-a"), *KEPT]


def test_with_no_rule_a_gp_practice_disagreement_is_an_exception():
    findings, position = run(gp_disagreement(), "2026-04-01")
    assert conflicts(findings) == ["gp_registration.gp_practice_ods"]
    [conflict] = of_kind(findings, "source-conflict")
    assert conflict.summary == ("Sources disagree on the GP practice from 2025-06-01: pds says "
                                "P11111, trust-a says P22222")
    assert position.entitlement.responsible_icb == "ICB-2"  # the last one told


def test_a_gp_practice_rule_sets_the_originating_icb_and_says_so():
    findings, position = run(gp_disagreement(), "2026-04-01", position_policy=Policy(
        precedence=Precedence(gp_practice=("pds",))))
    assert conflicts(findings) == []
    assert position.entitlement.responsible_icb == "ICB-1"
    why = position.explain["entitlement.responsible_icb"]
    assert ("precedence: GP practice from pds over trust-a (config precedence.gp_practice: "
            "'pds')") in why.rule
    assert all("from pds" in cite for cite in why.facts)


def practitioner_disagreement() -> list[Command]:
    """The council names worker-17 from 8 January; the trust, the same day, worker-42."""
    return [*KEPT, from_source(practitioner("worker-42", "2026-01-08"), "trust-a")]


def test_with_no_rule_a_named_practitioner_disagreement_is_an_exception():
    findings, position = run(practitioner_disagreement(), "2026-04-01")
    assert conflicts(findings) == ["entitlement.named_practitioner"]
    assert position.entitlement.named_practitioner == "worker-42"


def test_a_named_practitioner_rule_keeps_the_preferred_sources_choice():
    findings, position = run(practitioner_disagreement(), "2026-04-01", position_policy=Policy(
        precedence=Precedence(named_practitioner=("council*",))))
    assert conflicts(findings) == []
    assert position.entitlement.named_practitioner == "worker-17"
    assert "precedence: named practitioner from council over trust-a" in position.explain[
        "entitlement.named_practitioner"].rule


def test_a_practitioner_changed_on_another_day_is_a_change_not_a_conflict():
    later = [*KEPT, from_source(practitioner("worker-42", "2026-02-02"), "trust-a")]
    findings, position = run(later, "2026-04-01")
    assert conflicts(findings) == []
    assert position.entitlement.named_practitioner == "worker-42"


# -- alive or deceased --------------------------------------------------------------------

def test_a_death_rule_settles_the_date_and_explain_records_the_choice():
    told = [*KEPT, details(death_date=date(2026, 5, 1), as_of="2026-05-02"),
            from_source(details(death_date=date(2026, 5, 3), as_of="2026-05-04"), "council-a")]
    assert conflicts(run(told, "2026-06-01")[0]) == ["person.death_date"]
    findings, position = run(told, "2026-06-01", position_policy=Policy(
        precedence=Precedence(death=("pds",))))
    assert conflicts(findings) == []
    why = position.explain["person.death_date"]
    assert why.rule == ("precedence: date of death from pds over council-a (config "
                        "precedence.death: 'pds'): 2026-05-01")
    assert all("from pds" in cite for cite in why.facts)


def test_events_after_a_death_are_raised_whatever_the_rules():
    told = [*KEPT, details(death_date=date(2026, 3, 10), as_of="2026-03-11"),
            review("2026-04-01")]
    findings, _ = run(told, "2026-06-01", position_policy=Policy(
        precedence=Precedence(death=("pds",), detention=("trust-*",))))
    assert [f.fingerprint.split("|")[0] for f in of_kind(findings, "source-conflict")] == [
        "source-conflict:alive-after-death"]


# -- the aftercare plan (joint policy 7.2, 19.2) and reviews (14.1; an ending needs a joint one)

def plan_disagreement() -> list[Command]:
    """The council agreed the plan on 27 February; the trust tells its first plan on 1 March."""
    return [*KEPT, from_source(plan("2026-03-01"), "trust-a")]


def test_with_no_rule_a_plan_date_disagreement_is_an_exception():
    findings, position = run(plan_disagreement(), "2026-04-01")
    assert conflicts(findings) == ["entitlement.aftercare_plan_date"]
    assert position.entitlement.aftercare_plan_date == date(2026, 3, 1)  # the latest told


def test_a_plan_rule_keeps_the_preferred_sources_date_and_says_so():
    findings, position = run(plan_disagreement(), "2026-04-01", position_policy=Policy(
        precedence=Precedence(aftercare_plan=("council*",))))
    assert conflicts(findings) == []
    assert position.entitlement.aftercare_plan_date == date(2026, 2, 27)
    why = position.explain["entitlement.aftercare_plan"]
    assert ("precedence: aftercare plan from council over trust-a (config "
            "precedence.aftercare_plan: 'council*')") in why.rule
    assert all("from council" in cite for cite in why.facts)
    assert position.explain["aftercare_plan[2026-02-27]"].rule.endswith(
        ": agreed 2026-02-27, not trust-a's 2026-03-01")


def test_a_plan_rule_naming_neither_source_or_another_groups_rule_settles_nothing():
    for rules in (Precedence(aftercare_plan=("pds",)),
                  Precedence(detention=("trust-*",), review=("council*",))):
        findings, _ = run(plan_disagreement(), "2026-04-01",
                          position_policy=Policy(precedence=rules))
        assert conflicts(findings) == ["entitlement.aftercare_plan_date"]


def review_disagreement() -> list[Command]:
    """The council held the first review on 1 May; the trust tells it on 11 May."""
    return [*KEPT, review("2026-05-01"), from_source(review("2026-05-11"), "trust-a")]


def test_with_no_rule_a_review_told_on_two_dates_is_an_exception():
    findings, position = run(review_disagreement(), "2026-06-01")
    assert conflicts(findings) == ["entitlement.last_review"]
    assert position.entitlement.last_review == date(2026, 5, 11)
    assert position.entitlement.next_review_due == date(2027, 5, 11)


def test_a_review_rule_sets_the_review_the_next_one_is_due_from():
    findings, position = run(review_disagreement(), "2026-06-01", position_policy=Policy(
        precedence=Precedence(review=("council*",))))
    assert conflicts(findings) == []
    ent = position.entitlement
    assert (ent.last_review, ent.next_review_due) == (date(2026, 5, 1), date(2027, 5, 1))
    assert position.reviews == [(date(2026, 5, 1), "scheduled")]
    why = position.explain["entitlement.next_review_due"]
    assert why.rule.startswith("12 months after the latest review (joint policy 14.1); "
                               "precedence: review from council over trust-a (config "
                               "precedence.review: 'council*'): held 2026-05-01, not "
                               "trust-a's 2026-05-11")
    assert all("from council" in cite for cite in why.facts)


def test_a_review_rule_settles_whether_it_was_joint_and_explain_records_it():
    told = [*KEPT, review("2026-05-01", joint=True),
            from_source(review("2026-05-01", joint=False), "trust-a")]
    assert conflicts(run(told, "2026-06-01")[0]) == ["reviews.joint"]
    findings, position = run(told, "2026-06-01", position_policy=Policy(
        precedence=Precedence(review=("trust-*",))))
    assert conflicts(findings) == []
    assert position.reviews == [(date(2026, 5, 1), "scheduled")]  # the trust's word only
    why = position.explain["review[2026-05-01].joint"]
    assert why.rule == ("precedence: review from trust-a over council (config "
                        "precedence.review: 'trust-*'): the review of 2026-05-01 was "
                        "single-agency, not council's joint")
    assert why.facts and all("from trust-a" in cite for cite in why.facts)
