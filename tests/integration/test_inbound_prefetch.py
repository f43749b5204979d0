"""The worker reads a chunk's people together (SqlPersonRepository.prefetch): messages for
people stored before the batch land on them, by NHS number or by the source's id alone, in a
few statements for the whole chunk; keys found nowhere then created in the batch, and an A40
across people stored before it, behave as when each message had its own look-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from sqlalchemy import Engine, event, select

from register_core.adapters.tables import facts
from register_core.domain.commands import MergePersons, Provenance
from register_core.services.inbound import process_batch
from s117hub.bootstrap import Hub

from .identity_people import (
    TRUST,
    apply,
    at,
    confirmed,
    council_ref,
    detention,
    left_hospital,
    residence,
    store_commands,
    trust_ref,
)


@contextmanager
def statements_reading_people(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run meanwhile that read the persons table."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM persons" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_chunk_finds_stored_people_by_either_key_in_a_few_statements(hub: Hub) -> None:
    stored = [apply(hub, detention(trust_ref(800 + n))).person_id for n in range(8)]
    council_only = apply(hub, residence(council_ref("C-9"))).person_id
    newcomer = trust_ref(900, family_name="Okafor", given_name="Chidi",
                         birth_date=date(1991, 2, 9), postcode="M14 5RT")
    ids = store_commands(hub.engine, [
        *(left_hospital(trust_ref(800 + n), msg=f"d-{n}") for n in range(8)),
        confirmed(council_ref("C-9")),
        detention(newcomer, msg="new-1"),
        left_hospital(newcomer, msg="new-2"),
    ])
    with statements_reading_people(hub.engine) as reads:
        outcomes = process_batch(hub.engine, ids, lambda entry: [], hub.clock, hub.policy)
    assert [o.status for o in outcomes] == ["applied"] * 11
    landed = [o.applied[0].person_id for o in outcomes]
    assert landed[:9] == [*stored, council_only]
    assert landed[9] == landed[10] and landed[9] not in stored  # found nowhere, then created
    assert outcomes[9].applied[0].created and not outcomes[10].applied[0].created
    # one look-up by NHS number and one read of the people for the chunk, and the new
    # person's candidates; a look-up and a read per message were 20 or more
    assert len(reads) <= 4, reads
    with hub.engine.connect() as conn:
        kinds = conn.execute(select(facts.c.kind).where(facts.c.person_id == stored[3])
                             .order_by(facts.c.seq)).scalars().all()
    assert kinds == ["detention-started", "left-hospital"]


def test_an_a40_across_people_stored_before_the_batch_then_a_message_for_the_merged_record(
        hub: Hub) -> None:
    """standards.md section 2 (ADT_A40), with both records read by the chunk's prefetch."""
    survivor_ref = trust_ref(810)
    survivor = apply(hub, detention(survivor_ref, date(2025, 6, 2), msg="old-1")).person_id
    merged_ref = trust_ref(811, nhs_number=None, local_id="RX1-OLD")
    merged = apply(hub, detention(merged_ref, msg="adt-1")).person_id
    assert merged != survivor
    ids = store_commands(hub.engine, [
        MergePersons(person=survivor_ref, merged_local_id="RX1-OLD",
                     provenance=Provenance(source=TRUST, source_ref="a40-1",
                                           received_at=at(date(2026, 4, 1)))),
        left_hospital(merged_ref, date(2026, 3, 2), msg="adt-3"),
    ])
    outcomes = process_batch(hub.engine, ids, lambda entry: [], hub.clock, hub.policy)
    assert [o.status for o in outcomes] == ["applied", "applied"]
    assert outcomes[1].applied[0].person_id == survivor
    with hub.engine.connect() as conn:
        left_behind = conn.execute(select(facts.c.kind).where(facts.c.person_id == merged)
                                   ).scalars().all()
    assert left_behind == []
