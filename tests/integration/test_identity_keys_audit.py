"""Identity audit fixes, through the real inbound path (MLLP receiver, inbox, worker):

* D1: an A40 across two different valid NHS numbers is refused whole (standards.md
  section 4, "never link two records with different valid NHS numbers"): the message fails
  with the rule, no identifier moves, and later messages for the merged record stay with it.
* D3: a valid NHS number arriving for a source's local id held by a person without one, while
  another person holds that number: the exact NHS number is the register's key (issue 4), so
  the two are merged reversibly under that message and the message applies.
* D2: a record linked by NHS number fills only what the register does not know; it does not
  overwrite another source's demographics. The same source may update what it told.

Synthetic data only: NHS numbers from the 999 test range, invented names."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine, select

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import (
    detentions,
    facts,
    inbox_messages,
    person_merges,
    persons,
)
from register_core.domain.commands import PersonRef, Provenance, RecordPersonDetails
from register_core.domain.model import Person
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import drain
from register_core.services.merges import unmerge
from s117hub.bootstrap import Hub
from tests.unit.mapping.samples import adt, evn, pid, pv1, segment, zls

from .identity_people import at, confirmed, council_ref, identifiers_of, trust_ref

TRUST_A = SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                           hl7_sending_application="EPR", hl7_sending_facility="RX1")
NA, NB, NC = (make_synthetic(n) for n in (931, 932, 933))
ADMIT = zls("03", "202601050930")


def _receive(hub: Hub, engine: Engine, *messages: str) -> dict[str, tuple[str, Any]]:
    """Receive each message over the MLLP receiver, let the worker apply them, and answer
    {control id: (inbox status, stored error)}."""
    hub.sources.save(TRUST_A, hub.clock.now())
    receiver = Hl7Receiver(engine, hub.sources, hub.clock, lambda _: None)
    for message in messages:
        receiver.handle(message.encode())
    drain(engine, make_mapper(hub.sources), hub.clock, hub.policy, batch=100,
          time_budget=60.0)
    with engine.connect() as conn:
        return {r.message_id: (r.status, r.error)
                for r in conn.execute(select(inbox_messages))}


def _admit(control: str, nhs: str, local: str, family: str, visit: str) -> str:
    return adt("A01", evn("A01"), pid(nhs=nhs, local=local, family=family, given=family),
               pv1(visit=visit), ADMIT, control_id=control)


def _a40(control: str, mrg: str) -> str:
    return adt("A40", evn("A40", "20260401090000"), pid(nhs=NA, local="L-A", family="Alder",
                                                        given="Alder"),
               segment("MRG", {1: mrg}), control_id=control, structure="ADT_A39")


def _discharge(control: str, local: str, visit: str) -> str:
    return adt("A03", evn("A03"), pid(nhs="", local=local, family="Birch", given="Birch"),
               pv1(visit=visit, discharge="202604031100"), ADMIT, control_id=control,
               structure="ADT_A03")


def _person_by_nhs(engine: Engine, nhs: str) -> str:
    with engine.connect() as conn:
        return conn.execute(select(persons.c.id).where(persons.c.nhs_number == nhs)).scalar_one()


def _episodes(engine: Engine, person_id: str) -> list[tuple[str, date | None]]:
    with engine.connect() as conn:
        return [(r.ref, r.end) for r in conn.execute(
            select(detentions.c.ref, detentions.c.end)
            .where(detentions.c.person_id == person_id).order_by(detentions.c.ref))]


def _merges(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(person_merges)).mappings()]


def test_an_a40_across_different_nhs_numbers_is_refused_and_nothing_moves(
        hub: Hub, engine: Engine) -> None:
    """D1: PID (A, NHS A) and MRG (B's NHS number and local id) name two patients. Before,
    the A40 was applied and L-B moved to A, so B's discharge rewrote A's detention."""
    outcome = _receive(
        hub, engine,
        _admit("M-1", NA, "L-A", "Alder", "VA"),
        _admit("M-2", NB, "L-B", "Birch", "VB"),
        _a40("M-3", f"{NB}^^^NHS^NH~L-B^^^RX1^MR"),
        _a40("M-4", "L-B^^^RX1^MR"),  # the MRG without B's number: B holds one all the same
        _discharge("M-5", "L-B", "VB"),
    )
    for refused in ("M-3", "M-4"):
        status, error = outcome[refused]
        assert status == "failed", outcome
        assert (error["code"], error["rule"]) == ("identity-conflict",
                                                  "never-link-different-nhs-numbers")
    assert outcome["M-5"][0] == "applied"
    a, b = _person_by_nhs(engine, NA), _person_by_nhs(engine, NB)
    assert identifiers_of(engine, a) == {("trust-a", "L-A")}
    assert identifiers_of(engine, b) == {("trust-a", "L-B")}
    assert _episodes(engine, a) == [("VA", None)]  # A's detention untouched
    assert _episodes(engine, b) == [("VB", date(2026, 4, 3))]  # B's discharge is B's
    assert _merges(engine) == []


def test_an_a40_whose_mrg_names_two_register_people_is_refused(hub: Hub,
                                                                engine: Engine) -> None:
    """D1: the MRG's local id is C's (no NHS number) and its NHS number is B's: which record
    is meant cannot be told, so nothing moves."""
    outcome = _receive(
        hub, engine,
        _admit("M-1", NA, "L-A", "Alder", "VA"),
        _admit("M-2", NB, "L-B", "Birch", "VB"),
        _admit("M-3", "", "L-C", "Cedar", "VC"),
        _a40("M-4", f"{NB}^^^NHS^NH~L-C^^^RX1^MR"),
    )
    status, error = outcome["M-4"]
    assert status == "failed" and error["code"] == "identity-conflict", outcome
    assert error["rule"] == "never-link-different-nhs-numbers"  # MRG NHS B vs survivor A
    assert identifiers_of(engine, _person_by_nhs(engine, NA)) == {("trust-a", "L-A")}
    assert _merges(engine) == []


def test_an_a40_mrg_nhs_number_of_a_third_person_is_refused(hub: Hub, engine: Engine) -> None:
    """D1: the survivor has no NHS number; the MRG's local id is C's, its NHS number B's."""
    outcome = _receive(
        hub, engine,
        _admit("M-1", NB, "L-B", "Birch", "VB"),
        _admit("M-2", "", "L-C", "Cedar", "VC"),
        _admit("M-3", "", "L-D", "Dogwood", "VD"),
        adt("A40", evn("A40", "20260401090000"),
            pid(nhs="", local="L-D", family="Dogwood", given="Dogwood"),
            segment("MRG", {1: f"{NB}^^^NHS^NH~L-C^^^RX1^MR"}), control_id="M-4",
            structure="ADT_A39"),
    )
    status, error = outcome["M-4"]
    assert status == "failed", outcome
    assert (error["code"], error["rule"]) == ("identity-conflict", "merged-record-one-person")
    assert _merges(engine) == []


def test_an_a40_where_the_merged_record_has_the_same_number_still_merges(
        hub: Hub, engine: Engine) -> None:
    """The refusal is only for different numbers: L-C (no NHS number) into A, with the MRG
    carrying A's own number, merges as before."""
    outcome = _receive(
        hub, engine,
        _admit("M-1", NA, "L-A", "Alder", "VA"),
        _admit("M-2", "", "L-C", "Cedar", "VC"),
        _a40("M-3", f"{NA}^^^NHS^NH~L-C^^^RX1^MR"),
    )
    assert outcome["M-3"][0] == "applied", outcome
    a = _person_by_nhs(engine, NA)
    assert identifiers_of(engine, a) == {("trust-a", "L-A"), ("trust-a", "L-C")}
    assert len(_merges(engine)) == 1


def test_an_nhs_number_arriving_later_merges_the_local_record_into_its_holder(
        hub: Hub, engine: Engine) -> None:
    """D3: L-9 was registered without an NHS number; A holds NA. A message with NA and L-9
    used to fail ("another NHS number", though L-9's person had none) and its facts were
    lost. Now L-9's person is merged into A under that message and the message applies."""
    first = _receive(hub, engine, _admit("M-1", NA, "L-A", "Alder", "VA"),
                     _admit("M-2", "", "L-9", "Cedar", "V9"))
    assert {s for s, _ in first.values()} == {"applied"}, first
    a = _person_by_nhs(engine, NA)
    with engine.connect() as conn:
        [local] = conn.execute(select(persons.c.id).where(persons.c.id != a)).scalars()
    outcome = _receive(hub, engine, adt(
        "A03", evn("A03"), pid(nhs=NA, local="L-9", family="Cedar", given="Cedar"),
        pv1(visit="V9", discharge="202604031100"), ADMIT, control_id="M-3",
        structure="ADT_A03"))
    assert outcome["M-3"][0] == "applied", outcome
    assert identifiers_of(engine, a) == {("trust-a", "L-A"), ("trust-a", "L-9")}
    assert identifiers_of(engine, local) == set()
    with engine.connect() as conn:
        journal = conn.execute(select(facts.c.source_ref, facts.c.kind)
                               .where(facts.c.person_id == a).order_by(facts.c.seq)).all()
    # L-9's admission came with it, and the discharge was recorded, not lost.
    assert [tuple(r) for r in journal] == [("M-1", "detention-started"),
                                           ("M-2", "detention-started"),
                                           ("M-3", "left-hospital")]
    [merge] = _merges(engine)
    assert (merge["survivor_id"], merge["merged_id"]) == (a, local)
    assert (merge["source"], merge["source_ref"]) == ("trust-a", "M-3")
    # Reversible: un-merging gives L-9's person its own record back.
    with hub.uow() as uow:
        unmerge(uow, local, by="owner", clock=hub.clock, policy=hub.policy)
        uow.commit()
    assert ("trust-a", "L-9") in identifiers_of(engine, local)
    with engine.connect() as conn:
        kinds = conn.execute(select(facts.c.kind).where(facts.c.person_id == local)
                             ).scalars().all()
    assert "detention-started" in kinds


def test_a_local_id_holding_another_nhs_number_is_still_a_conflict(hub: Hub,
                                                                   engine: Engine) -> None:
    """D3's limit: when the local id's person has a different valid NHS number, refuse."""
    outcome = _receive(hub, engine, _admit("M-1", NA, "L-A", "Alder", "VA"),
                       _admit("M-2", NB, "L-B", "Birch", "VB"),
                       _admit("M-3", NA, "L-B", "Birch", "VX"))
    status, error = outcome["M-3"]
    assert status == "failed" and error["rule"] == "never-link-different-nhs-numbers"
    assert _merges(engine) == []


def test_a_record_linked_by_nhs_number_fills_only_what_is_unknown(hub: Hub,
                                                                   engine: Engine) -> None:
    """D2: a council record keyed to the trust patient's (unverified) NHS number, with
    another name and birth date, does not overwrite the trust's demographics; it fills
    what the register did not know, and its own values stay in its fact."""
    from .identity_people import apply, detention

    trust = trust_ref(934, nhs_number_verified=False, gp_practice_ods=None)
    person_id = apply(hub, detention(trust)).person_id
    stranger = council_ref("C-934", nhs_number=trust.nhs_number, family_name="Wrongly",
                           given_name="Kevin", birth_date=date(2001, 12, 31),
                           postcode="B99 9ZZ", gp_practice_ods="B86002")
    assert apply(hub, confirmed(stranger)).person_id == person_id
    with engine.connect() as conn:
        row = conn.execute(select(persons).where(persons.c.id == person_id)).mappings().one()
    assert (row["family_name"], row["given_name"], row["birth_date"], row["postcode"]) == (
        "Thornley", "Amelia", date(1984, 7, 19), "LS6 2AB")
    assert row["gp_practice_ods"] == "B86002"  # unknown before: filled


def test_the_same_source_may_update_what_it_told() -> None:
    """D2: a name change from the source that gave the name is taken; another source's
    different name is not; the register's own correction is."""
    person = Person(id="p-1")

    def details(source: str, **values: Any) -> RecordPersonDetails:
        return RecordPersonDetails(
            person=PersonRef(local_id=f"{source}-1", **values),
            provenance=Provenance(source=source, source_ref=f"{source}-{len(person.facts)}",
                                  received_at=at(date(2026, 1, 5))))

    person.record(details("trust-a", family_name="Thornley", birth_date=date(1984, 7, 19)))
    person.record(details("council-a", family_name="Wrongly", birth_date=date(2001, 1, 1),
                          postcode="LS6 2AB"))
    assert (person.family_name, person.birth_date, person.postcode) == (
        "Thornley", date(1984, 7, 19), "LS6 2AB")
    person.record(details("trust-a", family_name="Thornley-Hale"))
    assert person.family_name == "Thornley-Hale"
    person.record(details("council-a", postcode="LS7 1AA"))  # the council told the postcode
    assert person.postcode == "LS7 1AA"
    person.record(details("register", birth_date=date(1984, 7, 18)))
    assert person.birth_date == date(1984, 7, 18)
