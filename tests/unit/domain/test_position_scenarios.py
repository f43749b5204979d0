"""Whole journeys through the register, as the seed documents tell them, and the
properties that make the position trustworthy: every value explained by a rule and the facts
it rests on, the same facts in any order give the same position, impossible facts refused.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from register_core.domain.errors import ImpossibleDates, InvalidValue
from register_core.domain.model import Person
from register_core.domain.position import Policy, Position, compute_position

from .builders import (
    COUNCIL_A,
    COUNCIL_B,
    COUNCIL_C,
    ICB_X,
    ICB_Y,
    PRACTICE_X,
    PRACTICE_Y,
    charge,
    confirmed,
    d,
    details,
    detention,
    ended,
    gp,
    left,
    legal,
    new_person,
    plan,
    position_of,
    practitioner,
    record_all,
    regrade,
    residence,
    review,
)

MAP = Policy(practice_to_icb={PRACTICE_X: ICB_X, PRACTICE_Y: ICB_Y})


def cites(person: Person) -> set[str]:
    return {f.cite() for f in person.facts}


# -- journeys --------------------------------------------------------------------------------

def test_journey_a_to_b_to_c_then_re_detained__joint_policy_4_3_3_uksc_2023_31_4_4_9():
    commands = [
        residence("2019-04-01", COUNCIL_A), gp("2019-04-01", PRACTICE_X),
        detention("2024-01-08", "02"), regrade("2024-01-30", "03"),     # 3.3
        legal("s17-leave-start", "2024-03-04"), legal("s17-leave-end", "2024-03-06"),
        left("2024-04-02"),
        residence("2024-04-02", COUNCIL_B), gp("2024-05-01", PRACTICE_Y),
        review("2024-06-20"),
        residence("2025-01-10", COUNCIL_C),
        detention("2025-09-01", "03", episode="ep-2"),
    ]
    pending = position_of(commands, today="2025-09-02", policy=MAP)
    ent = pending.entitlement
    assert ent.status == "pending"
    # The s17 leave of 4-6 Mar ended back on the ward: the leaving in force is the
    # discharge of 2 Apr (8.4, 14.1), kept while detained again.
    assert ent.start == date(2024, 4, 2)
    assert ent.responsible_council == COUNCIL_C  # Worcestershire: moves to C
    assert ent.responsible_icb == ICB_X  # Who Pays?: stays with the originating ICB (4.4.9)
    assert ent.trigger_episode == "ep-2"
    assert pending.in_hospital

    out = position_of([*commands, legal("cto-start", "2025-11-03", episode="ep-2")],
                      today="2026-01-05", policy=MAP)
    ent = out.entitlement
    assert (ent.status, ent.start) == ("active", date(2025, 11, 3))
    assert ent.next_review_due == date(2026, 2, 3)
    assert out.on_cto
    assert (ent.responsible_council, ent.responsible_icb) == (COUNCIL_C, ICB_X)


def test_journey_discharged_ended_lawfully_then_detained_again_opens_a_new_period():
    commands = [residence("2018-01-01", COUNCIL_A), gp("2018-01-01", PRACTICE_X),
                detention("2020-10-01", "37"), legal("conditional-discharge-start",
                                                     "2021-02-01"),
                review("2021-04-15"), review("2022-04-01", kind="unscheduled"),
                legal("conditional-discharge-end", "2023-01-01"),
                ended("2023-03-01"),
                residence("2023-06-01", COUNCIL_B), gp("2023-06-01", PRACTICE_Y),
                detention("2025-02-01", "16", episode="ep-2"),
                left("2025-05-01", episode="ep-2")]
    at_end = position_of(commands, today="2023-03-02", policy=MAP)
    assert at_end.entitlement.status == "ended"
    assert at_end.entitlement.start == date(2021, 2, 1)
    now = position_of(commands, today="2025-06-01", policy=MAP)
    ent = now.entitlement
    assert (ent.status, ent.start, ent.trigger_section) == ("active", date(2025, 5, 1), "16")
    assert (ent.responsible_council, ent.responsible_icb) == (COUNCIL_B, ICB_Y)
    assert ent.ended is None
    assert ent.next_review_due == date(2025, 8, 1)


def test_care_records_are_kept_whatever_the_status__joint_policy_7_3_13_1():
    pos = position_of([detention("2024-01-01"), practitioner("worker-17", "2024-01-05"),
                       practitioner("worker-23", "2024-02-01"), plan("2024-02-20"),
                       left("2024-03-01"), charge("2024-04-01"),
                       charge("2024-04-02", under_s117=False)])
    assert pos.entitlement.named_practitioner == "worker-23"
    assert pos.entitlement.aftercare_plan_date == date(2024, 2, 20)
    # 13.1, cabinet report 11: a charge against an s117 service is an exception to raise
    assert [f.command.date for f in pos.charges_under_s117] == [date(2024, 4, 1)]
    assert "7.3" in pos.explain["entitlement.named_practitioner"].rule


def test_an_undated_practitioner_change_recorded_later_wins__joint_policy_7_3():
    person = record_all([detention("2024-01-01"), practitioner("worker-17", "2024-01-05")])
    later = practitioner("worker-23")  # console change with no date: received 2030-01-01
    person.record(later)
    pos = compute_position(person, date(2030, 1, 2))
    assert pos.entitlement.named_practitioner == "worker-23"


def test_future_dated_facts_are_not_known_yet():
    commands = [detention("2024-01-01", end="2024-06-01"), review("2024-07-01")]
    before = position_of(commands, today="2024-05-01")
    assert before.entitlement.status == "pending"
    assert before.in_hospital
    assert before.reviews == []
    after = position_of(commands, today="2024-06-01")
    assert (after.entitlement.status, after.entitlement.start) == ("active", date(2024, 6, 1))


# -- explain ---------------------------------------------------------------------------------

EXPLAINED = ["entitlement.status", "entitlement.start", "entitlement.responsible_council",
             "entitlement.responsible_icb", "entitlement.next_review_due"]


def test_every_register_value_names_its_rule_and_cites_recorded_facts():
    person = record_all([residence("2019-01-01", COUNCIL_A), gp("2019-01-01", PRACTICE_X),
                         detention("2024-01-01"), left("2024-03-01"), review("2024-05-01")])
    pos = compute_position(person, date(2024, 6, 1), MAP)
    known = cites(person)
    for key in EXPLAINED:
        explanation = pos.explain[key]
        assert explanation.rule, key
        assert explanation.facts, key
        assert set(explanation.facts) <= known, key
        assert explanation.as_dict() == {"rule": explanation.rule,
                                         "facts": list(explanation.facts)}
    residence_fact, gp_fact, detention_fact, left_fact, review_fact = person.facts
    assert residence_fact.cite() in pos.explain["entitlement.responsible_council"].facts
    assert gp_fact.cite() in pos.explain["entitlement.responsible_icb"].facts
    assert detention_fact.cite() in pos.explain["entitlement.status"].facts
    assert left_fact.cite() in pos.explain["entitlement.start"].facts
    assert pos.explain["entitlement.next_review_due"].facts == (review_fact.cite(),)


def test_the_first_review_due_cites_the_discharge():
    # Was a bug: before any review the due date cited no fact at all.
    person = record_all([detention("2024-01-01"), left("2024-03-01")])
    pos = compute_position(person, date(2024, 3, 2))
    assert pos.explain["entitlement.next_review_due"].facts == (person.facts[1].cite(),)
    assert "3 months" in pos.explain["entitlement.next_review_due"].rule


def test_cites_name_no_personal_data():
    person = record_all([details(family_name="SYNTHETIC", birth_date=date(1990, 1, 1)),
                         detention("2024-01-01"), left("2024-03-01")])
    pos = compute_position(person, date(2024, 6, 1))
    text = repr({k: v.as_dict() for k, v in pos.explain.items()})
    assert person.nhs_number not in text
    assert "SYNTHETIC" not in text
    assert "1990" not in text


def test_an_ended_status_cites_the_ending():
    person = record_all([detention("2024-01-01"), left("2024-03-01"), review("2024-12-01"),
                         ended("2025-01-01")])
    pos = compute_position(person, date(2025, 2, 1))
    assert pos.entitlement.status == "ended"
    assert person.facts[3].cite() in pos.explain["entitlement.status"].facts
    assert "16.1" in pos.explain["entitlement.status"].rule


# -- order of arrival does not matter ------------------------------------------------------

def _summary(pos: Position) -> tuple:
    ent = pos.entitlement
    return (ent.status, ent.start, ent.pending_since, ent.trigger_section, ent.trigger_episode,
            ent.responsible_council, ent.responsible_icb, ent.named_practitioner,
            ent.aftercare_plan_date, ent.last_review, ent.next_review_due,
            ent.ended.date if ent.ended else None, pos.on_cto, pos.in_hospital,
            pos.conditionally_discharged, len(pos.refused_endings),
            [(ep.ref, ep.section, ep.start, ep.end, ep.end_reason) for ep in pos.detentions],
            sorted(pos.reviews), {k: v.rule for k, v in pos.explain.items()})


SCENARIOS = {
    "re-detained": [
        residence("2019-04-01", COUNCIL_A), gp("2019-04-01", PRACTICE_X),
        detention("2024-01-08", "02"), regrade("2024-01-30", "03"),
        legal("s17-leave-start", "2024-03-04"), left("2024-04-02"),
        residence("2024-04-02", COUNCIL_B), review("2024-06-20"),
        residence("2025-01-10", COUNCIL_C), detention("2025-09-01", "03", episode="ep-2"),
        left("2025-09-01", episode="ep-2"), practitioner("worker-5", "2025-09-01")],
    "cto-revoked": [
        residence("2019-04-01", COUNCIL_A), detention("2024-01-08", "10", episode=None),
        legal("cto-start", "2024-03-04", episode=None), ended("2024-05-01", source="council"),
        residence("2024-06-02", COUNCIL_B), legal("cto-revoked", "2024-08-01", episode=None),
        left("2024-10-01", episode=None), plan("2024-10-01")],
    "ended-and-back": [
        residence("2019-04-01", COUNCIL_A), gp("2019-04-01", PRACTICE_X),
        detention("2022-01-08", "37"), legal("detention-ended", "2022-03-01"),
        left("2022-04-01"), review("2022-06-01"), ended("2023-02-01"),
        gp("2023-03-01", PRACTICE_Y), residence("2023-03-01", COUNCIL_B),
        detention("2023-05-05", "18", episode="ep-2"),
        legal("conditional-discharge-start", "2023-09-01", episode="ep-2"),
        review("2023-10-01", kind="unscheduled")],
    "same-day": [
        residence("2020-01-01", COUNCIL_A), detention("2024-01-10", "02"),
        regrade("2024-01-10", "03"), legal("s17-leave-start", "2024-01-10"),
        left("2024-01-10"), review("2024-01-10"), ended("2024-01-10", council=False)],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_recording_the_same_facts_in_any_order_gives_the_same_position__property(name, data):
    commands = SCENARIOS[name]
    shuffled = data.draw(st.permutations(commands))
    for today in ("2024-02-01", "2025-12-31"):
        expected = compute_position(record_all(commands), d(today), MAP)
        got = compute_position(record_all(shuffled), d(today), MAP)
        assert _summary(got) == _summary(expected)


def test_the_scenarios_are_not_trivial():
    final = {name: position_of(cmds, today="2025-12-31", policy=MAP).entitlement
             for name, cmds in SCENARIOS.items()}
    assert (final["re-detained"].status, final["re-detained"].responsible_council) == (
        "active", COUNCIL_C)
    assert (final["cto-revoked"].status, final["cto-revoked"].start,
            final["cto-revoked"].responsible_council) == ("active", date(2024, 10, 1), COUNCIL_A)
    assert (final["ended-and-back"].status, final["ended-and-back"].responsible_icb) == (
        "active", ICB_Y)
    assert (final["same-day"].status, final["same-day"].start) == ("active", date(2024, 1, 10))


# -- impossible dates and bad values --------------------------------------------------------

def test_a_detention_ending_before_it_starts_is_impossible():
    person = new_person()
    with pytest.raises(ImpossibleDates) as err:
        person.record(detention("2024-03-01", end="2024-02-01"))
    assert (err.value.field, err.value.rule) == ("end", "end-after-start")
    assert err.value.as_dict()["error"] == "impossible-dates"
    assert person.facts == []


def test_a_cto_ending_before_it_starts_is_impossible():
    person = new_person()
    with pytest.raises(ImpossibleDates) as err:
        person.record(legal("cto-start", "2024-03-01", end="2024-02-01"))
    assert (err.value.field, err.value.rule) == ("end", "end-after-start")


def test_leaving_before_the_detention_started_is_impossible():
    person = record_all([detention("2024-03-01")])
    with pytest.raises(ImpossibleDates) as err:
        person.record(left("2024-02-01"))
    assert (err.value.field, err.value.rule) == ("date", "end-after-start")
    assert len(person.facts) == 1


@pytest.mark.parametrize(("command", "field"), [
    (detention("1999-12-31"), "start"),
    (left("1999-12-31"), "date"),
    (review("1999-12-31"), "date"),
    (confirmed("1999-12-31"), "start"),
])
def test_an_event_before_birth_is_impossible(command, field):
    person = new_person(birth="2000-01-01")
    with pytest.raises(ImpossibleDates) as err:
        person.record(command)
    assert (err.value.field, err.value.rule) == (field, "event-after-birth")


def test_death_before_birth_is_impossible():
    person = new_person()
    with pytest.raises(ImpossibleDates) as err:
        person.record(details(birth_date=date(2000, 1, 1), death_date=date(1999, 1, 1)))
    assert (err.value.field, err.value.rule) == ("person.death_date", "death-after-birth")


def test_an_unknown_legal_status_code_is_refused():
    with pytest.raises(InvalidValue) as err:
        new_person().record(detention("2024-01-01", "CTO"))
    assert (err.value.field, err.value.rule) == ("section", "mhsds-legal-status-code")


def test_an_invalid_nhs_number_is_refused():
    with pytest.raises(InvalidValue) as err:
        new_person().record(details(nhs_number="9990500003"))
    assert (err.value.field, err.value.rule) == ("person.nhs_number", "nhs-number-check-digit")
