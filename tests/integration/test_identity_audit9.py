"""Identity fixes from the ninth black-box audit, through the real inbound path (MLLP
receiver, inbox, worker) and the API:

* an un-merge takes back, with the merged record, a birth date the owner accepted from that
  record (``accept-source`` on an ``identity-demographics-conflict``), and the decision no
  longer counts as settled;
* ``different-people`` is refused on a pair the register holds merged, and a merge joining
  a pair closes the live question about it;
* a birth-date conflict decided once is not raised again for the same two values, whichever
  source sends which.

Synthetic data only: NHS numbers from the 999 test range, invented names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import insert, select

from register_core.adapters.security import Role
from register_core.adapters.tables import facts, inbox_messages, register_exceptions
from register_core.domain.nhs_number import make_synthetic
from register_core.services.identity import pair_fingerprint
from s117hub.bootstrap import Hub

from .reconcile_people import TestClient, client_for
from .test_identity_reversibility import (
    _a40,
    _admit,
    _applied,
    _by_local,
    _conflicts,
    _details,
    _merges,
    _person,
    _receive,
)

NB, NS, NA = make_synthetic(9602), make_synthetic(9701), make_synthetic(9601)
ORLA = {"family": "Pennywhistle", "given": "Orla"}
# Trust B's record of her: another family name, another day of birth (not linked on arrival).
ORLA_B = {"family": "Hartwell", "given": "Orla"}


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


def _identity_questions(hub: Hub) -> list[dict[str, Any]]:
    with hub.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(register_exceptions).where(
                register_exceptions.c.kind == "identity-uncertain")
            .order_by(register_exceptions.c.raised, register_exceptions.c.id)).mappings()]


def _source_refs(hub: Hub, person_id: str) -> list[str]:
    with hub.engine.connect() as conn:
        return list(conn.execute(select(facts.c.source_ref).where(
            facts.c.person_id == person_id).order_by(facts.c.seq)).scalars())


# -- 1: an accepted birth date leaves with the record it came from ---------------------------


def test_an_unmerge_takes_back_a_birth_date_accepted_from_the_merged_record(
        hub: Hub, owner: TestClient) -> None:
    """Trust A registers Orla (NB, born 1990-02-03); trust B's record L-77 (no NHS number, born
    1990-02-02) is a person of its own until trust B sends NB with it: L-77's person is
    merged into Orla's and the birth dates conflict. The owner accepts trust B's date (a
    register correction), then un-merges L-77's person. Before, Orla kept 1990-02-02: the
    correction counted as one of her own later facts. Now it leaves with L-77's record, Orla
    is back to trust A's date, and the decision is closed by the system as no longer
    applying (the owner's decision kept in its detail)."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601100930", nhs=NB, local="L-T", birth="19900203",
               **ORLA),
        _details("trust-b", "M-2", local="L-77", birth="19900202", **ORLA_B),
    ))
    orla = _by_local(hub.engine, "trust-a", "L-T")
    other = _by_local(hub.engine, "trust-b", "L-77")
    assert orla != other
    _applied(_receive(hub, _details("trust-b", "M-3", nhs=NB, local="L-77",
                                    birth="19900202", **ORLA_B)))
    [merge] = _merges(hub.engine)
    assert (merge["survivor_id"], merge["merged_id"]) == (orla, other)
    [conflict] = _conflicts(hub.engine)
    accepted = owner.post(f"/api/v1/exceptions/{conflict['id']}/resolve", json={
        "decision": "accept-source:trust-b", "reason": "birth certificate"})
    assert accepted.status_code == 200, accepted.text
    assert _person(hub.engine, orla)["birth_date"] == date(1990, 2, 2)

    response = owner.post(f"/api/v1/people/{other}/unmerge")
    assert response.status_code == 200, response.text
    assert _person(hub.engine, orla)["birth_date"] == date(1990, 2, 3)
    assert _person(hub.engine, other)["birth_date"] == date(1990, 2, 2)
    correction = f"exception:{conflict['id']}"
    assert correction not in _source_refs(hub.engine, orla)
    assert _source_refs(hub.engine, other) == ["M-2", "M-3", correction]
    [undone] = _conflicts(hub.engine)
    assert (undone["status"], undone["closed_by"]) == ("resolved", "system")
    assert undone["detail"]["superseded"]["decision"] == "accept-source:trust-b"
    assert undone["detail"]["superseded"]["by"] == f"unmerge:{merge['id']}"
    # Orla's own trust sends her date again: nothing to ask, nothing changes.
    _applied(_receive(hub, _details("trust-a", "M-4", nhs=NB, local="L-T", birth="19900203",
                                    **ORLA)))
    assert _person(hub.engine, orla)["birth_date"] == date(1990, 2, 3)
    assert len(_conflicts(hub.engine)) == 1
    # Merged again (the owner reopens the pair, trust B sends NB with L-77 once more): the
    # two dates are a question again — the undone decision does not hold them back.
    [kept] = [q for q in _identity_questions(hub) if q["decision"] == "different-people"]
    assert owner.post(f"/api/v1/exceptions/{kept['id']}/reopen",
                      json={"reason": "one person after all"}).status_code == 200
    _applied(_receive(hub, _details("trust-b", "M-5", nhs=NB, local="L-77",
                                    birth="19900202", **ORLA_B)))
    assert sorted(m["unmerged_at"] is None for m in _merges(hub.engine)) == [False, True]
    assert sorted(r["status"] for r in _conflicts(hub.engine)) == ["open", "resolved"]
    assert _person(hub.engine, orla)["birth_date"] == date(1990, 2, 3)


# -- 2: different-people on a merged pair; a merge closes the pair's question ----------------


def _merged_again_after_reopen(hub: Hub, owner: TestClient) -> tuple[str, str, str]:
    """A40 M into S, un-merge, the A40 again (refused), reopen, replay: merged again.
    Returns (survivor, merged, the reopened question's id)."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VS", "202601050930", nhs=NS, local="L-S",
               family="Brackenridge", given="Ivo", birth="19660606"),
        _admit("trust-a", "M-2", "VM", "202602100930", local="L-M", family="Brakenridge",
               given="Ivor", birth="19660616"),
        _a40("M-3", "L-S", "L-M^^^RX1^MR", nhs=NS, family="Brackenridge", given="Ivo",
             birth="19660606"),
    ))
    [merge] = _merges(hub.engine)
    survivor, merged = merge["survivor_id"], merge["merged_id"]
    assert owner.post(f"/api/v1/people/{merged}/unmerge").status_code == 200
    refused = _receive(hub, _a40("M-4", "L-S", "L-M^^^RX1^MR", nhs=NS, family="Brackenridge",
                                 given="Ivo", birth="19660606"))
    assert refused["M-4"][0] == "failed"
    [kept] = [q for q in _identity_questions(hub) if q["decision"] == "different-people"]
    reopened = owner.post(f"/api/v1/exceptions/{kept['id']}/reopen", json={"reason": "r"})
    assert reopened.status_code == 200, reopened.text
    with hub.engine.connect() as conn:
        message = conn.execute(select(inbox_messages.c.id).where(
            inbox_messages.c.message_id == "M-4")).scalar_one()
    with client_for(hub, Role.INTEGRATION_ENGINEER) as engineer:
        assert engineer.post(f"/api/v1/messages/{message}/replay").status_code == 202
    _applied(_receive(hub))
    assert [m["unmerged_at"] is None for m in _merges(hub.engine)].count(True) == 1
    return survivor, merged, reopened.json()["id"]


def test_a_merge_closes_the_live_question_about_the_pair(hub: Hub, owner: TestClient) -> None:
    """Before, the reopened question stayed open after the replayed A40 merged the pair, and
    the owner could answer it different-people on a pair the register holds as one. Now the
    merge closes it (by the system, naming the merge); it is no longer there to answer."""
    _, _, question = _merged_again_after_reopen(hub, owner)
    [row] = [q for q in _identity_questions(hub) if q["id"] == question]
    assert (row["status"], row["closed_by"]) == ("resolved", "system"), row
    assert "merge" in row["reason"]
    answered = owner.post(f"/api/v1/exceptions/{question}/resolve", json={
        "decision": "different-people", "reason": "while merged"})
    assert answered.status_code == 422 and answered.json()["rule"] == "exception-live"


def test_different_people_is_refused_while_the_pair_is_merged(hub: Hub,
                                                               owner: TestClient) -> None:
    """A question left open on a merged pair (raised before merges closed it) cannot be
    answered different-people: the register would record "kept apart" for a pair it holds
    as one, while the merged record's messages still land on the survivor. 409, un-merge
    first; nothing moves."""
    survivor, merged, _ = _merged_again_after_reopen(hub, owner)
    stale = str(uuid.uuid4())
    with hub.engine.begin() as conn:
        conn.execute(insert(register_exceptions).values(
            id=stale, person_id=merged, kind="identity-uncertain", status="open",
            fingerprint=pair_fingerprint(merged, survivor), summary="left open",
            detail={"candidate_person_id": survivor}, raised=hub.clock.now()))
    answered = owner.post(f"/api/v1/exceptions/{stale}/resolve", json={
        "decision": "different-people", "reason": "while merged"})
    assert answered.status_code == 409, answered.text
    assert "un-merge" in answered.json()["message"]
    [row] = [q for q in _identity_questions(hub) if q["id"] == stale]
    assert row["status"] == "open"
    assert [m["unmerged_at"] is None for m in _merges(hub.engine)].count(True) == 1
    # Dismissing it stays possible (it asks nothing any more).
    dismissed = owner.post(f"/api/v1/exceptions/{stale}/dismiss", json={"reason": "merged"})
    assert dismissed.status_code == 200, dismissed.text


# -- 3: a decided birth-date conflict is not raised again for the same two values ------------


def test_a_decided_birth_date_conflict_is_not_raised_again_when_the_other_source_resends(
        hub: Hub, owner: TestClient) -> None:
    """Trust B sends another birth date with the NHS number; the owner accepts trust B's.
    Before, trust A's next message with its (same, old) date raised the same two dates again
    (the fingerprint hashed source, held and told values in order). Now the question is the
    person, the field and the pair of values: not raised again whichever source sends which;
    a third date is another question."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A", birth="19750505"),
        _details("trust-b", "M-2", nhs=NA, local="L-B", birth="19750506"),
    ))
    [conflict] = _conflicts(hub.engine)
    accepted = owner.post(f"/api/v1/exceptions/{conflict['id']}/resolve", json={
        "decision": "accept-source:trust-b", "reason": "birth certificate"})
    assert accepted.status_code == 200, accepted.text
    person = conflict["person_id"]
    assert _person(hub.engine, person)["birth_date"] == date(1975, 5, 6)
    _applied(_receive(
        hub,
        _details("trust-a", "M-3", nhs=NA, local="L-A", birth="19750505"),
        _details("trust-b", "M-4", nhs=NA, local="L-B", birth="19750506"),
    ))
    assert len(_conflicts(hub.engine)) == 1
    assert _person(hub.engine, person)["birth_date"] == date(1975, 5, 6)
    _applied(_receive(hub, _details("trust-a", "M-5", nhs=NA, local="L-A",
                                    birth="19750507")))
    assert sorted(r["status"] for r in _conflicts(hub.engine)) == ["open", "resolved"]


def test_an_unmerge_closes_an_open_birth_date_conflict_whose_value_leaves(
        hub: Hub, owner: TestClient) -> None:
    """As above, but the owner has not decided yet: the open conflict asks about a birth date
    only trust B's record L-77 gave. Once L-77's person is un-merged, Orla holds trust A's
    date alone and nothing differs: the system closes the question (it had stayed open on
    her, asking about a value she no longer has)."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601100930", nhs=NB, local="L-T", birth="19900203",
               **ORLA),
        _details("trust-b", "M-2", local="L-77", birth="19900202", **ORLA_B),
    ))
    other = _by_local(hub.engine, "trust-b", "L-77")
    _applied(_receive(hub, _details("trust-b", "M-3", nhs=NB, local="L-77",
                                    birth="19900202", **ORLA_B)))
    [conflict] = _conflicts(hub.engine)
    assert conflict["status"] == "open"
    assert owner.post(f"/api/v1/people/{other}/unmerge").status_code == 200
    [closed] = _conflicts(hub.engine)
    assert (closed["status"], closed["closed_by"]) == ("resolved", "system")
    assert "left with the merged record" in closed["reason"]
