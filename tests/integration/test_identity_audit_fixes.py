"""Identity audit fixes (black-box audit, 2026): an owner's un-merge stands against
``s117hub reconcile`` (D4); ``same-person`` on an exception whose person was merged away since
is refused, not recorded as a merge of nothing (D9); a ``same-person`` decision is audited as
a write of both people's records (D10). Synthetic people: 999-range NHS numbers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from register_core.adapters.security import Role
from register_core.adapters.tables import audit_log, person_merges
from register_core.domain.commands import MergePersons, Provenance
from register_core.domain.errors import InvalidValue
from register_core.domain.position import Policy
from register_core.services.bulk_matching import match_register
from register_core.services.merges import merge_persons
from s117hub.bootstrap import Hub

from .identity_people import (
    COUNCIL,
    TYPO,
    apply,
    at,
    confirmed,
    council_ref,
    detention,
    identifiers_of,
    identity_exceptions,
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
def onboarded(hub: Hub) -> Iterator[Hub]:
    """Records loaded with probabilistic matching off (a history onboarded in bulk)."""
    configured = hub.policy
    hub.policy = replace(configured, probabilistic_identity=False)
    yield hub
    hub.policy = configured


def _merges(hub: Hub) -> list[dict]:
    with hub.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(person_merges).order_by(person_merges.c.merged_at)).mappings()]


# -- D4: an owner's un-merge is a different-people decision ----------------------------------
def test_reconcile_does_not_merge_again_a_pair_an_owner_unmerged(
        onboarded: Hub, owner: TestClient) -> None:
    """standards.md section 4: a person's decision settles identity without an NHS number;
    un-merging a reconcile link says the two are different people, so the next reconcile
    (even with a lower link threshold) leaves them apart and raises nothing."""
    hub = onboarded
    council = apply(hub, residence(council_ref())).person_id
    trust = apply(hub, detention(trust_ref())).person_id
    apply(hub, left_hospital(trust_ref()))
    first = match_register(hub.engine, hub.clock, Policy())
    assert first.merges == [(trust, council)]
    response = owner.post(f"/api/v1/people/{council}/unmerge")
    assert response.status_code == 200, response.text
    [kept] = identity_exceptions(hub.engine)
    assert (kept["person_id"], kept["status"], kept["decision"]) == (
        council, "dismissed", "different-people")
    assert kept["closed_by"] == owner.token_id  # type: ignore[attr-defined]
    assert kept["detail"]["candidate_person_id"] == trust
    for policy in (Policy(), Policy(identity_link_threshold=0.6,
                                    identity_review_threshold=0.3)):
        again = match_register(hub.engine, hub.clock, policy)
        assert (again.linked, again.reviews_opened, again.known) == (0, 0, 1)
    [merge] = _merges(hub)
    assert merge["unmerged_at"] is not None  # no second merge of the pair
    assert identifiers_of(hub.engine, council) == {(COUNCIL, "C-701")}
    assert len(identity_exceptions(hub.engine)) == 1


def test_unmerging_closes_a_live_question_about_the_pair(hub: Hub, owner: TestClient) -> None:
    """A review still open on the pair when a merge joins them is closed by the merge (by the
    system, as superseded: audit 9), not left asking a question the register answered; the
    un-merge then records different-people on the pair."""
    trust = apply(hub, detention(trust_ref())).person_id
    council = apply(hub, residence(council_ref(**TYPO))).person_id
    [question] = identity_exceptions(hub.engine)
    assert question["status"] == "open"
    with hub.uow() as uow:  # e.g. an A40 joined them while the question was open
        merge_persons(uow, trust, council, source="trust-a", source_ref="a40-1", by="system",
                      clock=hub.clock, policy=hub.policy)
        uow.commit()
    [superseded] = identity_exceptions(hub.engine)
    assert (superseded["id"], superseded["status"], superseded["closed_by"]) == (
        question["id"], "resolved", "system")
    assert owner.post(f"/api/v1/people/{council}/unmerge").status_code == 200
    answered = [r for r in identity_exceptions(hub.engine) if r["id"] != question["id"]]
    assert [(r["status"], r["decision"]) for r in answered] == [
        ("dismissed", "different-people")]
    assert {answered[0]["person_id"], answered[0]["detail"]["candidate_person_id"]} == {
        trust, council}


# -- D9: same-person on a stale exception -----------------------------------------------------
@pytest.fixture
def stale(hub: Hub) -> dict[str, str]:
    """An identity question about the council's record, which the council then merged into
    another of its records (an A40-style merge) before anyone answered."""
    trust = apply(hub, detention(trust_ref())).person_id
    apply(hub, left_hospital(trust_ref()))
    council = apply(hub, residence(council_ref(**TYPO))).person_id
    apply(hub, confirmed(council_ref(**TYPO)))
    [question] = identity_exceptions(hub.engine)
    other = council_ref("C-702", **{**TYPO, "given_name": "Amelie"})
    survivor = apply(hub, MergePersons(
        person=other, merged_local_id="C-701",
        provenance=Provenance(source=COUNCIL, source_ref="merge-1",
                              received_at=at(date(2026, 4, 1))))).person_id
    [merge] = _merges(hub)
    assert (merge["survivor_id"], merge["merged_id"]) == (survivor, council)
    return {"trust": trust, "council": council, "survivor": survivor,
            "exception": question["id"]}


def test_same_person_on_a_person_merged_away_since_is_refused(
        hub: Hub, owner: TestClient, stale: dict[str, str]) -> None:
    response = owner.post(f"/api/v1/exceptions/{stale['exception']}/resolve", json={
        "decision": "same-person", "reason": "same person: checked"})
    assert response.status_code == 409, response.text
    body = response.json()
    assert (body["error"], body["rule"]) == ("person-merged", "merge-live-person")
    assert stale["survivor"] in body["message"]
    assert len(_merges(hub)) == 1  # nothing merged again
    [row] = [r for r in identity_exceptions(hub.engine) if r["id"] == stale["exception"]]
    assert row["status"] == "open"  # still the owner's to dismiss
    dismissed = owner.post(f"/api/v1/exceptions/{stale['exception']}/dismiss",
                           json={"reason": "merged by the council since"})
    assert dismissed.status_code == 200, dismissed.text


def test_merge_persons_refuses_a_merged_away_person_on_either_side(
        hub: Hub, stale: dict[str, str]) -> None:
    for survivor, merged in ((stale["trust"], stale["council"]),
                             (stale["council"], stale["trust"])):
        with hub.uow() as uow, pytest.raises(InvalidValue) as refused:
            merge_persons(uow, survivor, merged, source="register", source_ref="t",
                          by="token-1", clock=hub.clock, policy=hub.policy)
        assert stale["survivor"] in refused.value.message
    assert len(_merges(hub)) == 1


# -- D10: same-person audited for both people -------------------------------------------------
def test_same_person_is_audited_as_a_write_of_both_records(hub: Hub,
                                                           owner: TestClient) -> None:
    trust = apply(hub, detention(trust_ref())).person_id
    council = apply(hub, residence(council_ref(**TYPO))).person_id
    [question] = identity_exceptions(hub.engine)
    response = owner.post(f"/api/v1/exceptions/{question['id']}/resolve", json={
        "decision": "same-person", "reason": "same person: checked"})
    assert response.status_code == 200, response.text
    with hub.engine.connect() as conn:
        writes = {(r.person_id, r.resource, r.resource_id) for r in conn.execute(
            select(audit_log).where(audit_log.c.action == "write"))}
    assert writes == {(council, "exception", question["id"]),
                      (trust, "exception", question["id"])}


# -- D8: a different-people decision can be asked again ---------------------------------------
def test_a_different_people_pair_can_be_asked_again_and_merged(
        hub: Hub, owner: TestClient) -> None:
    """A wrong ``different-people`` is not final: reopening asks the same question again (the
    decision stays on record), and ``same-person`` then merges the two."""
    trust = apply(hub, detention(trust_ref())).person_id
    council = apply(hub, residence(council_ref(**TYPO))).person_id
    [question] = identity_exceptions(hub.engine)
    kept = owner.post(f"/api/v1/exceptions/{question['id']}/resolve", json={
        "decision": "different-people", "reason": "twins, we thought"})
    assert kept.status_code == 200, kept.text
    again = owner.post(f"/api/v1/exceptions/{question['id']}/reopen",
                       json={"reason": "the GP says one person registered twice"})
    assert again.status_code == 200, again.text
    new = again.json()
    assert (new["status"], new["person_id"], new["fingerprint"]) == (
        "open", council, question["fingerprint"])
    assert new["detail"]["reopens"] == question["id"]
    assert new["detail"]["candidate_person_id"] == trust
    twice = owner.post(f"/api/v1/exceptions/{question['id']}/reopen", json={"reason": "r"})
    assert twice.status_code == 422 and twice.json()["rule"] == "exception-reopen"
    merged = owner.post(f"/api/v1/exceptions/{new['id']}/resolve", json={
        "decision": "same-person", "reason": "one person"})
    assert merged.status_code == 200, merged.text
    [merge] = _merges(hub)
    assert (merge["survivor_id"], merge["merged_id"]) == (trust, council)
    statuses = {(r["id"], r["status"], r["decision"]) for r in identity_exceptions(hub.engine)}
    assert statuses == {(question["id"], "dismissed", "different-people"),
                        (new["id"], "resolved", "same-person")}
    with hub.engine.connect() as conn:
        audited = {r.person_id for r in conn.execute(select(audit_log).where(
            audit_log.c.action == "write", audit_log.c.resource_id == new["id"]))}
    assert audited == {trust, council}


def test_an_unmerge_can_be_asked_again(hub: Hub, owner: TestClient) -> None:
    """An un-merge's decision reopens like any different-people: the way to merge back."""
    trust = apply(hub, detention(trust_ref())).person_id
    council = apply(hub, residence(council_ref(**TYPO))).person_id
    [question] = identity_exceptions(hub.engine)
    owner.post(f"/api/v1/exceptions/{question['id']}/resolve", json={
        "decision": "same-person", "reason": "one person"})
    assert owner.post(f"/api/v1/people/{council}/unmerge").status_code == 200
    kept = [r for r in identity_exceptions(hub.engine) if r["decision"] == "different-people"]
    assert len(kept) == 1
    again = owner.post(f"/api/v1/exceptions/{kept[0]['id']}/reopen", json={"reason": "r"})
    assert again.status_code == 200, again.text
    merged = owner.post(f"/api/v1/exceptions/{again.json()['id']}/resolve", json={
        "decision": "same-person", "reason": "one person after all"})
    assert merged.status_code == 200, merged.text
    merges = [(m["survivor_id"], m["merged_id"], m["unmerged_at"] is None)
              for m in _merges(hub)]
    assert sorted(merges) == [(trust, council, False), (trust, council, True)]


def test_only_a_different_people_decision_reopens(hub: Hub, owner: TestClient) -> None:
    apply(hub, detention(trust_ref()))
    apply(hub, residence(council_ref(**TYPO)))
    [question] = identity_exceptions(hub.engine)
    live = owner.post(f"/api/v1/exceptions/{question['id']}/reopen", json={"reason": "r"})
    assert live.status_code == 422 and live.json()["rule"] == "exception-reopen"
    owner.post(f"/api/v1/exceptions/{question['id']}/resolve", json={
        "decision": "same-person", "reason": "one person"})
    merged = owner.post(f"/api/v1/exceptions/{question['id']}/reopen", json={"reason": "r"})
    assert merged.status_code == 422 and merged.json()["rule"] == "exception-reopen"
    assert owner.post("/api/v1/exceptions/nope/reopen",
                      json={"reason": "r"}).status_code == 404
