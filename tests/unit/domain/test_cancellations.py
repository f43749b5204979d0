"""A cancel (ADT A11/A13, a cancelled FHIR Encounter) retracts the whole event it cancels:
the fact of the cancelled kind and every other event fact the same message recorded about
the same episode (a discharge onto a CTO is a leaving *and* a CTO start). The journal stays
append-only: retracted facts are kept, ``retracted_by`` the cancel."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from register_core.domain.commands import (
    Command,
    Provenance,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordPersonDetails,
)
from register_core.domain.model import Person
from register_core.domain.position import compute_position

from .builders import cancel, d, detention, left, legal, person_ref, record_all, regrade


def message(ref: str, when: str = "2024-03-01", source: str = "trust-a") -> Provenance:
    """One inbound message: every command mapped from it shares this provenance."""
    return Provenance(source=source, source_ref=ref, received_at=datetime(2024, 3, 1, 12))


def discharge_onto(marker: str, ref: str = "A03-1", *, episode: str | None = "ep-1",
                   when: str = "2024-03-01", with_details: bool = False) -> list[Command]:
    """What an A03 with ZLS ``CTO`` / ``CD`` maps to: leaving, then the marker's start."""
    prov = message(ref, when)
    commands: list[Command] = []
    if with_details:
        commands.append(RecordPersonDetails(person=person_ref(), provenance=prov,
                                            as_of=d(when)))
    commands.append(RecordLeftHospital(person=person_ref(), provenance=prov, date=d(when),
                                       episode_ref=episode))
    commands.append(RecordLegalStatusChanged(
        person=person_ref(), provenance=prov, date=d(when), episode_ref=episode,
        event="cto-start" if marker == "CTO" else "conditional-discharge-start"))
    return commands


def live_kinds(person: Person) -> list[str]:
    return [getattr(f.command, "event", f.kind) for f in person.live_facts()]


@pytest.mark.parametrize("marker", ["CTO", "CD"])
def test_a13_retracts_the_cto_or_cd_its_discharge_carried(marker: str) -> None:
    person = record_all([detention("2024-01-01"), *discharge_onto(marker),
                         cancel("left-hospital")])
    cancel_seq = person.facts[-1].seq
    assert [(f.seq, f.retracted_by) for f in person.facts] == [
        (1, None), (2, cancel_seq), (3, cancel_seq), (4, None)]
    assert live_kinds(person) == ["detention-started"]
    pos = compute_position(person, d("2030-01-01"))
    assert pos.entitlement.status == "pending"
    assert pos.in_hospital and not pos.on_cto
    assert [e.kind for e in pos.legal_status_events] == []
    assert pos.detentions[0].end is None


def test_the_cancelled_messages_demographics_are_no_event_and_stay() -> None:
    person = record_all([detention("2024-01-01"), *discharge_onto("CTO", with_details=True),
                         cancel("left-hospital")])
    assert live_kinds(person) == ["detention-started", "person-details"]


def test_a_cto_told_by_another_message_stays() -> None:
    a03 = discharge_onto("CTO")[:1]  # a plain discharge
    a08_cto = legal("cto-start", "2024-03-01")  # its own message
    person = record_all([detention("2024-01-01"), *a03, a08_cto, cancel("left-hospital")])
    assert live_kinds(person) == ["detention-started", "cto-start"]


def test_the_same_messages_facts_about_another_episode_stay() -> None:
    """A FHIR Bundle is one message that may tell of several encounters."""
    ours = discharge_onto("CD", "bundle-1", episode="ep-1")
    theirs = discharge_onto("CTO", "bundle-1", episode="ep-0", when="2023-06-01")
    person = record_all([detention("2023-01-01", episode="ep-0"), detention("2024-01-01"),
                         *theirs, *ours, cancel("left-hospital", episode="ep-1")])
    assert live_kinds(person) == ["detention-started", "detention-started", "left-hospital",
                                  "cto-start"]


def test_another_sources_facts_with_the_same_message_id_stay() -> None:
    other = discharge_onto("CTO", "A03-1")
    other = [replace(c, provenance=message("A03-1", source="trust-b")) for c in other]
    person = record_all([detention("2024-01-01"), *other, *discharge_onto("CD", "A03-1"),
                         cancel("left-hospital")])
    assert [(f.source, getattr(f.command, "event", f.kind), f.retracted_by is None)
            for f in person.facts[1:-1]] == [
        ("trust-b", "left-hospital", True), ("trust-b", "cto-start", True),
        ("trust-a", "left-hospital", False), ("trust-a", "conditional-discharge-start", False)]


def test_a_cancel_for_an_event_never_seen_retracts_nothing() -> None:
    person = record_all([detention("2024-01-01"), legal("cto-start", "2024-03-01"),
                         cancel("left-hospital")])
    assert all(f.retracted_by is None for f in person.facts)
    assert compute_position(person, date(2030, 1, 1)).on_cto


def test_a_second_cancel_takes_back_the_discharge_before() -> None:
    person = record_all([detention("2024-01-01"), *discharge_onto("CTO", "A03-1"),
                         *discharge_onto("CD", "A03-2", when="2024-03-02"),
                         cancel("left-hospital"), cancel("left-hospital")])
    first, second = (f.seq for f in person.facts if f.kind == "cancel")
    assert [f.retracted_by for f in person.facts[1:5]] == [second, second, first, first]
    assert live_kinds(person) == ["detention-started"]



def informal_admission_on(marker: str, ref: str = "A01-1", *, episode: str = "ep-1",
                          when: str = "2024-05-01") -> list[Command]:
    """What an A01 of a patient admitted informally while on a CTO / conditional discharge
    maps to: their details and the marker's start (no detention)."""
    prov = message(ref, when)
    return [RecordPersonDetails(person=person_ref(), provenance=prov, as_of=d(when)),
            RecordLegalStatusChanged(
                person=person_ref(), provenance=prov, date=d("2024-03-01"), episode_ref=episode,
                event="cto-start" if marker == "CTO" else "conditional-discharge-start")]


def withdraw(episode: str = "ep-1") -> Command:
    """A cancelled admission (HL7 A11, a withdrawn FHIR Encounter): the whole episode."""
    return cancel("detention-started", episode=episode, scope="episode")


@pytest.mark.parametrize("marker", ["CTO", "CD"])
def test_a_withdrawn_informal_admission_takes_back_the_cto_or_cd_it_told(marker: str) -> None:
    person = record_all([*informal_admission_on(marker), withdraw()])
    assert live_kinds(person) == ["person-details"]
    pos = compute_position(person, d("2030-01-01"))
    assert not pos.on_cto and pos.legal_status_events == []


def test_a_withdrawn_episode_takes_what_every_message_told_of_it() -> None:
    """An A08 regrade of the cancelled visit must not land on an earlier detention (the
    episode look-up falls back to dates when a ref is unknown)."""
    person = record_all([detention("2024-01-01", "37", episode="V1"),
                         left("2024-03-01", episode="V1"),
                         detention("2025-01-01", "02", episode="V2"),
                         regrade("2025-01-10", "03", episode="V2"), withdraw("V2")])
    assert live_kinds(person) == ["detention-started", "left-hospital"]
    pos = compute_position(person, d("2025-02-01"))
    assert [(e.ref, e.sections) for e in pos.detentions] == [("V1", [("37", d("2024-01-01"))])]
    assert pos.entitlement.trigger_section == "37"


def test_a_withdrawn_episode_leaves_other_episodes_and_sources_alone() -> None:
    person = record_all([*informal_admission_on("CTO"), detention("2024-06-01", episode="V2"),
                         detention("2024-06-01", episode="ep-1", source="council-a"),
                         withdraw("ep-1")])
    assert [(f.kind, f.source, f.retracted_by is None) for f in person.facts
            if f.kind != "person-details"] == [
        ("legal-status", "trust-a", False), ("detention-started", "trust-a", True),
        ("detention-started", "council-a", True), ("cancel", "trust-a", True)]
