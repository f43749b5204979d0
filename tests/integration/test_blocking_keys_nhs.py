"""A record that carries a valid NHS number is compared only with people who have none
(standards.md: different valid NHS numbers never link; the same number is found exactly), so
the look-up skips everyone with a number who shares a common key — in the table and in a
worker batch's memory alike."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from reconciliation.blocking import person_blocking_keys
from register_core.adapters.tables import person_blocking_keys as keys_table
from register_core.domain.commands import PersonRef, Provenance, RecordDetentionStarted
from register_core.domain.nhs_number import make_synthetic
from register_core.services.handlers import apply_command, record_command
from s117hub.bootstrap import Hub

AT = datetime(2026, 5, 1, 9, tzinfo=UTC)


def _ref(serial: int, *, with_nhs: bool) -> PersonRef:
    return PersonRef(nhs_number=make_synthetic(serial) if with_nhs else None,
                     local_id=f"L{serial}", family_name="Commonname", given_name="Alex",
                     birth_date=date(1940 + 5 * serial, serial, 10 + serial), postcode="ZZ99 3AZ")
    # The same name and postcode, birth years far apart: they share a blocking key (postcode
    # with initial) but the matcher never links them, so each stays a person of their own.


def _admit(serial: int, *, with_nhs: bool, source: str = "trust-a") -> RecordDetentionStarted:
    return RecordDetentionStarted(
        person=_ref(serial, with_nhs=with_nhs),
        provenance=Provenance(source=source, source_ref=f"m{serial}", received_at=AT),
        section="03", start=date(2026, 5, 1), episode_ref=f"V{serial}")


def test_keys_record_whether_the_person_holds_an_nhs_number(hub: Hub) -> None:
    with hub.uow() as uow:
        with_nhs = apply_command(_admit(1, with_nhs=True), uow, hub.clock).person_id
    with hub.uow() as uow:
        without = apply_command(_admit(2, with_nhs=False, source="council-a"), uow,
                                hub.clock).person_id
    with hub.engine.connect() as conn:
        known = dict(conn.execute(select(keys_table.c.person_id, keys_table.c.nhs_known)
                                  .distinct()).all())
    assert known == {with_nhs: True, without: False}
    keys = person_blocking_keys(_ref(3, with_nhs=True))
    with hub.uow() as uow:
        assert {c.id for c in uow.persons.candidates(keys)} == {with_nhs, without}
        assert [c.id for c in uow.persons.candidates(keys, without_nhs_only=True)] == [without]


def test_the_same_holds_for_people_a_batch_has_not_written_yet(hub: Hub) -> None:
    with hub.uow() as uow:
        uow.persons.batch_mode()
        with_nhs = record_command(_admit(4, with_nhs=True), uow, hub.clock).person_id
        without = record_command(_admit(5, with_nhs=False, source="council-a"), uow,
                                 hub.clock).person_id
        keys = person_blocking_keys(_ref(6, with_nhs=True))
        assert {c.id for c in uow.persons.candidates(keys)} == {with_nhs, without}
        assert [c.id for c in uow.persons.candidates(keys, without_nhs_only=True)] == [without]


def test_a_person_who_gains_an_nhs_number_leaves_the_numberless_pool(hub: Hub) -> None:
    with hub.uow() as uow:
        person_id = apply_command(_admit(7, with_nhs=False), uow, hub.clock).person_id
    keys = person_blocking_keys(_ref(8, with_nhs=True))
    with hub.uow() as uow:
        assert [c.id for c in uow.persons.candidates(keys, without_nhs_only=True)] == [
            person_id]
    later = RecordDetentionStarted(
        person=_ref(7, with_nhs=True),  # the same person, now with a number
        provenance=Provenance(source="trust-a", source_ref="m7b", received_at=AT),
        section="03", start=date(2026, 5, 1), episode_ref="V7")
    with hub.uow() as uow:
        assert apply_command(later, uow, hub.clock).person_id == person_id
    with hub.uow() as uow:
        assert uow.persons.candidates(keys, without_nhs_only=True) == []
