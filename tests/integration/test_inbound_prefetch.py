"""The worker reads a chunk's people together (SqlPersonRepository.prefetch): messages for
people stored before the batch land on them, by NHS number or by the source's id alone, in a
few statements for the whole chunk; keys found nowhere then created in the batch, and an A40
across people stored before it, behave as when each message had its own look-up."""

from __future__ import annotations

import re
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
def statements_reading(engine: Engine, table: str) -> Iterator[list[str]]:
    """The SQL SELECT statements run meanwhile that name ``table``."""
    seen: list[str] = []
    named = re.compile(rf"\b{table}\b")

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and named.search(statement):
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
    with statements_reading(hub.engine, "persons") as reads:
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


def test_a_chunks_new_people_have_their_candidates_read_in_one_query_and_still_link(
        hub: Hub) -> None:
    """The council knows Amelia Thornley without an NHS number; the trust's admission of her
    (with one) in a chunk of newcomers links to her through the chunk's one candidate read,
    and a newcomer twice in the chunk is one person."""
    council_only = apply(hub, residence(council_ref("C-9"))).person_id
    strangers = [trust_ref(920 + n, family_name=name, given_name="Sam",
                           birth_date=date(1970 + n, 1, 2), postcode=f"M{n} 1AA")
                 for n, name in enumerate(["Adeyemi", "Brennan", "Czajka"])]
    ids = store_commands(hub.engine, [
        *(detention(ref, msg=f"s-{n}") for n, ref in enumerate(strangers)),
        detention(trust_ref(700), msg="amelia"),
        left_hospital(strangers[0], msg="s-0-out"),
    ])
    with statements_reading(hub.engine, "person_blocking_keys") as reads:
        outcomes = process_batch(hub.engine, ids, lambda entry: [], hub.clock, hub.policy)
    assert [o.status for o in outcomes] == ["applied"] * 5
    assert outcomes[3].applied[0].person_id == council_only
    assert outcomes[3].applied[0].identity == "probabilistic"
    assert outcomes[4].applied[0].person_id == outcomes[0].applied[0].person_id
    assert len({o.applied[0].person_id for o in outcomes[:3]}) == 3
    assert len(reads) == 1, reads  # one per new person before


def test_candidates_from_the_chunk_read_equal_the_one_record_query_past_the_cap(
        hub: Hub) -> None:
    """More people share a key than MAX_CANDIDATES: the chunk's read (each key's first people
    with and without an NHS number) answers exactly as the one-record query does."""
    from dataclasses import replace

    from reconciliation.blocking import person_blocking_keys
    from register_core.adapters.repository import MAX_CANDIDATES
    from register_core.services.handlers import apply_command

    exact_only = replace(hub.policy, probabilistic_identity=False)  # everyone stays apart
    for n in range(MAX_CANDIDATES + 30):
        command = (detention(trust_ref(1000 + n), msg=f"a-{n}") if n % 2
                   else residence(council_ref(f"C-{n}"), msg=f"r-{n}"))
        with hub.uow() as uow:
            apply_command(command, uow, hub.clock, exact_only)
    other = trust_ref(2000, family_name="Zielinski", given_name="Ola",
                      birth_date=date(1990, 5, 6), postcode="B1 1AA")
    apply(hub, detention(other, msg="z"))
    shared = person_blocking_keys(trust_ref(3000))
    lone = person_blocking_keys(other)
    asked = [(keys, without) for keys in (shared, lone, shared[:1], [*shared, *lone])
             for without in (False, True)]
    answers = []
    for prefetch in ({"keys": [*shared, *lone]}, {"without_nhs_only": [*shared, *lone]}):
        with hub.uow() as uow:
            repo = uow.persons
            repo.batch_mode()
            by_query = [repo.candidates(keys, without_nhs_only=without)
                        for keys, without in asked]
            with statements_reading(hub.engine, "person_blocking_keys") as reads:
                repo.prefetch_candidates(**prefetch)
                by_chunk = [repo.candidates(keys, without_nhs_only=without)
                            for keys, without in asked]
        answers.append((by_query, by_chunk, len(reads)))
    for by_query, by_chunk, _ in answers:
        assert by_chunk == by_query
    by_query = answers[0][0]
    assert len(by_query[0]) == MAX_CANDIDATES  # the cap is reached
    assert all(c.nhs_number is None for c in by_query[1])
    assert [c.family_name for c in by_query[2]] == ["Zielinski"]
    assert answers[0][2] == 1  # the chunk's read answered every question
    # read for records with an NHS number only: questions without the filter go to the
    # database (one each), the others are answered from the chunk's read
    assert answers[1][2] == 1 + sum(1 for _, without in asked if not without)
