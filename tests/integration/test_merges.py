"""Reversible merges: an HL7 A40 (or a "same-person" decision) moves the merged person's
facts and identifiers to the survivor and records what moved; ``POST /api/v1/people/{id}/
unmerge`` moves exactly that back, and both people's positions are as they were."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, select

from register_core.adapters.security import Role
from register_core.adapters.tables import (
    detentions,
    entitlements,
    facts,
    person_merges,
    persons,
)
from register_core.domain.commands import (
    CancelEvent,
    MergePersons,
    PersonRef,
    Provenance,
)
from register_core.domain.errors import IdentityConflict
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import process_batch
from register_core.services.merges import merge_persons
from s117hub.bootstrap import Hub

from .identity_people import (
    COUNCIL,
    TRUST,
    TYPO,
    apply,
    at,
    confirmed,
    council_ref,
    detention,
    identifiers_of,
    identity_exceptions,
    keys_of,
    left_hospital,
    residence,
    store_commands,
    trust_ref,
)
from .reconcile_people import TestClient, client_for

_VOLATILE = {"version", "updated_at", "created_at"}


def snapshot(engine: Engine, person_id: str, *, skip_kinds: frozenset[str] = frozenset()
             ) -> dict[str, Any]:
    """Everything the register holds about a person that a merge touches."""
    with engine.connect() as conn:
        person = conn.execute(select(persons).where(persons.c.id == person_id)
                              ).mappings().one()
        entitlement = conn.execute(select(entitlements).where(
            entitlements.c.person_id == person_id)).mappings().first()
        episodes = conn.execute(select(
            detentions.c.ref, detentions.c.section, detentions.c.start, detentions.c.end,
            detentions.c.end_reason).where(detentions.c.person_id == person_id)
            .order_by(detentions.c.ref)).all()
        journal = conn.execute(select(facts.c.id, facts.c.seq, facts.c.kind,
                                      facts.c.retracted_by, facts.c.source_ref)
                               .where(facts.c.person_id == person_id)
                               .order_by(facts.c.seq)).all()
    return {
        "person": {k: v for k, v in person.items() if k not in _VOLATILE},
        "entitlement": {k: v for k, v in (entitlement or {}).items() if k not in _VOLATILE},
        "detentions": [tuple(r) for r in episodes],
        "facts": [tuple(r) for r in journal if r.kind not in skip_kinds],
        "identifiers": identifiers_of(engine, person_id),
        "keys": keys_of(engine, person_id),
    }


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


def _payne(**changes: Any) -> PersonRef:
    base = PersonRef(local_id="RX1-801", family_name="Payne", given_name="Neil",
                     birth_date=date(1979, 3, 14), sex="male", postcode="S10 2TN")
    return PersonRef(**{**base.__dict__, **changes})


def _a40(survivor: PersonRef, merged_local_id: str) -> MergePersons:
    return MergePersons(person=survivor, merged_local_id=merged_local_id,
                        provenance=Provenance(source=TRUST, source_ref="a40-1",
                                              received_at=at(date(2026, 4, 1))))


@pytest.fixture
def duplicate(hub: Hub) -> dict[str, str]:
    """The trust registered one man twice: with his NHS number and an old address (RX1-802),
    and without it (RX1-801: a detention cancelled and re-entered, discharged; the council,
    which knows the new address, linked its residence to this record)."""
    survivor = apply(hub, detention(_payne(local_id="RX1-802", postcode="S11 8AA",
                                           nhs_number=make_synthetic(802)),
                                    date(2025, 6, 2), msg="old-1")).person_id
    merged = apply(hub, detention(_payne(), date(2026, 1, 5), msg="adt-1")).person_id
    assert merged != survivor  # one carries an NHS number, the other another local id
    apply(hub, CancelEvent(person=_payne(), cancels="detention-started",
                           episode_ref="RX1-801-V1",
                           provenance=Provenance(source=TRUST, source_ref="adt-x",
                                                 received_at=at(date(2026, 1, 6)))))
    apply(hub, detention(_payne(), date(2026, 1, 7), msg="adt-2"))
    apply(hub, left_hospital(_payne(), date(2026, 3, 2), msg="adt-3"))
    apply(hub, residence(PersonRef(local_id="C-801", family_name="Payne", given_name="Neil",
                                   birth_date=date(1979, 3, 14), postcode="S10 2TN")))
    return {"survivor": survivor, "merged": merged}


def test_an_a40_moves_the_whole_record_and_unmerge_restores_both_exactly(
        hub: Hub, owner: TestClient, duplicate: dict[str, str]) -> None:
    """standards.md section 2 (ADT_A40 "merge two patient records") and section 4 ("NHS
    number"): the merged record's facts, identifiers and journal places move to the
    survivor, and un-merging gives both people back exactly as they were."""
    survivor, merged = duplicate["survivor"], duplicate["merged"]
    before = {pid: snapshot(hub.engine, pid) for pid in (survivor, merged)}
    assert identifiers_of(hub.engine, merged) == {(TRUST, "RX1-801"), (COUNCIL, "C-801")}
    result = apply(hub, _a40(_payne(local_id="RX1-802", postcode="S11 8AA",
                                    nhs_number=make_synthetic(802)), "RX1-801"))
    assert result.person_id == survivor and [a.person_id for a in result.also] == [merged]
    after = snapshot(hub.engine, survivor)
    assert after["identifiers"] == {(TRUST, "RX1-802"), (TRUST, "RX1-801"),
                                    (COUNCIL, "C-801")}
    assert after["entitlement"]["responsible_council"] == "E08000035"
    moved = [f for f in after["facts"] if f[4] in {"adt-1", "adt-x", "adt-2", "adt-3"}]
    cancelled = {f[4]: f for f in moved}["adt-1"]
    assert cancelled[3] == {f[4]: f for f in moved}["adt-x"][1]  # retraction follows
    emptied = snapshot(hub.engine, merged)
    assert emptied["facts"] == [] and emptied["identifiers"] == set()
    assert emptied["keys"] == set() and emptied["entitlement"]["status"] == "none"
    with hub.engine.connect() as conn:
        # The A40's (the council's record joined RX1-801 by an automatic link before).
        [merge] = conn.execute(select(person_merges).where(
            person_merges.c.source_ref == "a40-1")).mappings().all()
    assert (merge["source"], merge["source_ref"], len(merge["fact_ids"])) == (
        TRUST, "a40-1", 5)

    response = owner.post(f"/api/v1/people/{merged}/unmerge")
    assert response.status_code == 200, response.text
    assert response.json() == {"merge_id": merge["id"], "survivor_id": survivor,
                               "merged_id": merged, "facts_moved": 5}
    assert snapshot(hub.engine, merged) == before[merged]
    # The survivor keeps the A40 fact itself (it did happen); all else is as it was.
    assert snapshot(hub.engine, survivor, skip_kinds=frozenset({"merge"})) == before[survivor]
    again = owner.post(f"/api/v1/people/{merged}/unmerge")
    assert again.status_code == 404 and again.json()["rule"] == "merge-exists"
    # Found again by its own identifiers.
    assert apply(hub, left_hospital(_payne(), date(2026, 3, 2), msg="adt-4")
                 ).person_id == merged


def test_same_person_then_unmerge_restores_both_positions(hub: Hub,
                                                          owner: TestClient) -> None:
    """standards.md section 4: a person's "same-person" decision is undone exactly too,
    NHS number included (it went to the survivor, which had none)."""
    known = {"sex": "female", "gp_practice_ods": "B86001"}
    council = apply(hub, residence(council_ref(**known)))
    apply(hub, confirmed(council_ref(**known)))
    trust = apply(hub, detention(trust_ref(704, **TYPO)))
    apply(hub, left_hospital(trust_ref(704, **TYPO)))
    [row] = identity_exceptions(hub.engine)
    new, candidate = row["person_id"], row["detail"]["candidate_person_id"]
    assert (new, candidate) == (trust.person_id, council.person_id)
    before = {pid: snapshot(hub.engine, pid) for pid in (new, candidate)}
    response = owner.post(f"/api/v1/exceptions/{row['id']}/resolve", json={
        "decision": "same-person", "reason": "confirmed with the ward"})
    assert response.status_code == 200, response.text
    merged_state = snapshot(hub.engine, candidate)
    assert merged_state["entitlement"]["status"] == "active"
    assert merged_state["person"]["nhs_number"] == make_synthetic(704)
    assert snapshot(hub.engine, new)["person"]["nhs_number"] is None
    assert owner.post(f"/api/v1/people/{new}/unmerge").status_code == 200
    assert snapshot(hub.engine, new) == before[new]
    assert snapshot(hub.engine, candidate) == before[candidate]


def test_an_a40_across_different_nhs_numbers_is_refused_and_moves_nothing(hub: Hub) -> None:
    """standards.md section 4: "Never link two records with different valid NHS numbers" —
    an A40 across them is refused whole: not even the trust's identifier moves (it used to,
    and the merged record's later messages then landed on the wrong patient)."""
    survivor = apply(hub, detention(trust_ref(705))).person_id
    other = apply(hub, detention(trust_ref(706, family_name="Oakworth"), msg="adt-9"))
    with pytest.raises(IdentityConflict) as refused:
        apply(hub, _a40(trust_ref(705), "RX1-706"))
    assert refused.value.rule == "never-link-different-nhs-numbers"
    assert identifiers_of(hub.engine, survivor) == {(TRUST, "RX1-705")}
    assert identifiers_of(hub.engine, other.person_id) == {(TRUST, "RX1-706")}
    assert snapshot(hub.engine, other.person_id)["facts"]  # its journal stays
    with hub.engine.connect() as conn:
        assert conn.execute(select(person_merges)).all() == []
    with hub.uow() as uow, pytest.raises(IdentityConflict):
        merge_persons(uow, survivor, other.person_id, source="register", source_ref="t",
                      by="t", clock=hub.clock)


def test_unmerge_needs_a_merge_and_an_owner(hub: Hub, owner: TestClient) -> None:
    """standards.md section 4: only a merged person can be un-merged, by a register owner."""
    person = apply(hub, detention(trust_ref(707))).person_id
    refused = owner.post(f"/api/v1/people/{person}/unmerge")
    assert refused.status_code == 404 and refused.json()["field"] == "person_id"
    with client_for(hub, Role.AUDITOR) as auditor:
        assert auditor.post(f"/api/v1/people/{person}/unmerge").status_code == 403


def test_an_a40_in_the_workers_batch_merges_and_a_later_message_follows_it(
        hub: Hub) -> None:
    """standards.md section 2 (ADT_A40): in the worker's batch (deferred writes), the merge
    moves what the batch wrote a moment before, and the next message for the merged record
    lands on the survivor; a refused message in the same batch does not undo the merge."""
    survivor_ref = _payne(local_id="RX1-802", postcode="S11 8AA",
                          nhs_number=make_synthetic(802))
    ids = store_commands(hub.engine, [
        detention(survivor_ref, date(2025, 6, 2), msg="old-1"),
        detention(_payne(), date(2026, 1, 5), msg="adt-1"),
        _a40(survivor_ref, "RX1-801"),
        left_hospital(_payne(), date(2025, 1, 1), msg="too-early"),  # before any admission
        left_hospital(_payne(), date(2026, 3, 2), msg="adt-3"),
    ])
    outcomes = process_batch(hub.engine, ids, lambda entry: [], hub.clock, hub.policy)
    assert [o.status for o in outcomes] == ["applied", "applied", "applied", "failed",
                                            "applied"]
    survivor = outcomes[0].applied[0].person_id
    merged = outcomes[1].applied[0].person_id
    assert outcomes[4].applied[0].person_id == survivor
    assert snapshot(hub.engine, merged)["facts"] == []
    kinds = [f[2] for f in snapshot(hub.engine, survivor)["facts"]]
    assert kinds == ["detention-started", "merge", "detention-started", "left-hospital"]
    with hub.engine.connect() as conn:
        [merge] = conn.execute(select(person_merges)).mappings().all()
    assert (merge["survivor_id"], merge["merged_id"]) == (survivor, merged)
