"""A register owner settles an identity-uncertain exception through the exceptions API:
"same-person" merges the new record into the candidate (facts, identifiers, a merge row that
can be undone), "different-people" keeps them apart and the pair is not asked about again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from reconciliation.identity import MatchDecision
from register_core.adapters.security import Role
from register_core.adapters.tables import entitlements, facts, person_merges, register_exceptions
from register_core.services.identity import open_identity_review
from register_core.services.reconcile import sweep
from s117hub.bootstrap import Hub

from .identity_people import (
    COUNCIL,
    TRUST,
    TYPO,
    apply,
    confirmed,
    council_ref,
    detention,
    identifiers_of,
    identity_exceptions,
    keys_of,
    left_hospital,
    residence,
    trust_ref,
)
from .reconcile_people import TestClient, client_for


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


@pytest.fixture
def pair(hub: Hub) -> dict[str, str]:
    """The trust's person, detained and discharged; the council's look-alike record (one
    keystroke off in surname and birth date) with its residence and confirmation."""
    trust = apply(hub, detention(trust_ref()))
    apply(hub, left_hospital(trust_ref()))
    council = apply(hub, residence(council_ref(**TYPO)))
    apply(hub, confirmed(council_ref(**TYPO)))
    [row] = identity_exceptions(hub.engine)
    return {"trust": trust.person_id, "council": council.person_id, "exception": row["id"]}


def _entitlement(hub: Hub, person_id: str) -> dict:
    with hub.engine.connect() as conn:
        row = conn.execute(select(entitlements).where(
            entitlements.c.person_id == person_id)).mappings().one()
    return dict(row)


def test_same_person_merges_the_new_record_into_the_candidate(
        hub: Hub, owner: TestClient, pair: dict[str, str]) -> None:
    """standards.md section 4 ("NHS number"): the council's record had none, so a person
    decides; "same-person" moves the council's facts and identifier to the trust's person."""
    assert _entitlement(hub, pair["trust"])["responsible_council"] is None
    response = owner.post(f"/api/v1/exceptions/{pair['exception']}/resolve", json={
        "decision": "same-person", "reason": "same person: checked with the council"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["decision"]) == ("resolved", "same-person")
    survivor = _entitlement(hub, pair["trust"])
    assert survivor["responsible_council"] == "E08000035"
    assert survivor["status"] == "active"
    assert _entitlement(hub, pair["council"])["status"] == "none"
    assert identifiers_of(hub.engine, pair["trust"]) == {(TRUST, "RX1-701"),
                                                         (COUNCIL, "C-701")}
    assert identifiers_of(hub.engine, pair["council"]) == set()
    assert keys_of(hub.engine, pair["council"]) == set()  # nobody's candidate any more
    with hub.engine.connect() as conn:
        [merge] = conn.execute(select(person_merges)).mappings().all()
        kinds = list(conn.execute(select(facts.c.kind).where(
            facts.c.person_id == pair["trust"]).order_by(facts.c.seq)).scalars())
    assert (merge["survivor_id"], merge["merged_id"]) == (pair["trust"], pair["council"])
    assert (merge["source"], merge["source_ref"]) == ("register",
                                                     f"exception:{pair['exception']}")
    assert merge["merged_by"] == owner.token_id  # type: ignore[attr-defined]
    assert len(merge["fact_ids"]) == 2 and merge["unmerged_at"] is None
    assert kinds == ["detention-started", "left-hospital", "ordinary-residence",
                     "s117-confirmed"]
    # The council's next event finds the merged record's survivor by its identifier.
    again = apply(hub, confirmed(council_ref(**TYPO), msg="ev-3"))
    assert (again.person_id, again.identity) == (pair["trust"], "exact")


def test_different_people_keeps_them_apart_and_is_not_asked_again(
        hub: Hub, owner: TestClient, pair: dict[str, str]) -> None:
    """standards.md section 4: without an NHS number a person's decision settles identity;
    "different-people" dismisses, and the same pair does not raise again."""
    response = owner.post(f"/api/v1/exceptions/{pair['exception']}/resolve", json={
        "decision": "different-people", "reason": "different people: twins"})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["decision"]) == ("dismissed",
                                                                        "different-people")
    sweep(hub.engine, hub.clock, hub.policy)
    decision = MatchDecision("review", pair["trust"], 3.0, 0.89, {}, {}, "score-in-review-band")
    with hub.uow() as uow:
        again = open_identity_review(uow, pair["council"], decision,
                                     confirmed(council_ref(**TYPO)), hub.clock, hub.policy)
        uow.commit()
    assert again is None
    assert [r["status"] for r in identity_exceptions(hub.engine)] == ["dismissed"]
    assert identifiers_of(hub.engine, pair["council"]) == {(COUNCIL, "C-701")}


def test_identity_decisions_fit_identity_exceptions_only(
        hub: Hub, owner: TestClient, pair: dict[str, str]) -> None:
    """standards.md section 4: a merge is an identity decision, not a way to close other
    exceptions; and it takes no correction."""
    sweep(hub.engine, hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        other = conn.execute(select(register_exceptions.c.id).where(
            register_exceptions.c.kind != "identity-uncertain")).scalars().first()
    assert other is not None
    refused = owner.post(f"/api/v1/exceptions/{other}/resolve", json={
        "decision": "same-person", "reason": "no"})
    assert refused.status_code == 422 and refused.json()["field"] == "decision"
    with_correction = owner.post(f"/api/v1/exceptions/{pair['exception']}/resolve", json={
        "decision": "same-person", "reason": "r",
        "apply": {"type": "aftercare-plan.agreed", "date": "2026-03-05"}})
    assert with_correction.status_code == 422
    assert with_correction.json()["field"] == "apply"
    assert [r["status"] for r in identity_exceptions(hub.engine)] == ["open"]
