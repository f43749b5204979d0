"""The exceptions API over HTTP on the real databases: list and filter, read, assign,
resolve (with a correction recorded as provenance), dismiss, roles and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import func, select

from register_core.adapters.security import Role
from register_core.adapters.tables import audit_log, persons
from register_core.domain.nhs_number import make_synthetic
from register_core.services.reconcile import sweep
from s117hub.bootstrap import Hub

from .reconcile_people import TestClient, admit, client_for, discharge, kept

ITEM_FIELDS = {"id", "person_id", "kind", "status", "raised", "summary", "detail",
               "assigned_to", "decision", "reason", "closed_by", "closed_at"}


@pytest.fixture
def people(hub: Hub) -> dict[str, str]:
    found = {
        "trust-only": kept(hub, 1, date(2026, 3, 2), date(2026, 4, 1), confirm=False,
                           residence="E10000034"),
        "review-due": kept(hub, 2, date(2025, 12, 1), date(2026, 2, 2),
                           residence="E10000011"),
    }
    found["no-nhs"] = admit(hub, 3, date(2026, 5, 4), with_nhs=False)  # no practitioner
    sweep(hub.engine, hub.clock, hub.policy)
    return found


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


def _one(client: TestClient, **params: object) -> dict:
    body = client.get("/api/v1/exceptions", params=params).json()
    assert body["total"] == len(body["items"]) == 1, body
    return body["items"][0]


def test_the_list_carries_the_fields_and_filters(owner: TestClient,
                                                  people: dict[str, str]) -> None:
    body = owner.get("/api/v1/exceptions", params={"status": "open"}).json()
    assert body["total"] == 3
    assert all(ITEM_FIELDS <= item.keys() for item in body["items"])
    assert sorted(i["kind"] for i in body["items"]) == [
        "missed-entitlement", "no-named-practitioner", "review-overdue"]
    missed = _one(owner, kind="missed-entitlement")
    assert missed["person_id"] == people["trust-only"] and missed["status"] == "open"
    assert missed["detail"]["entitlement_start"] == "2026-04-01"
    assert missed["raised"].startswith("2026-06-01T09:00:00")
    assert _one(owner, council="E10000011")["kind"] == "review-overdue"
    assert _one(owner, person_id=people["no-nhs"])["kind"] == "no-named-practitioner"
    assert owner.get("/api/v1/exceptions", params={"status": "dismissed"}).json()["total"] == 0
    page = owner.get("/api/v1/exceptions", params={"limit": 2, "offset": 2}).json()
    assert (page["total"], len(page["items"])) == (3, 1)
    for serial in (1, 2):
        assert make_synthetic(serial) not in owner.get("/api/v1/exceptions").text
    assert "Testfamily" not in owner.get("/api/v1/exceptions").text


def test_the_persons_record_lists_their_open_exceptions(owner: TestClient,
                                                        people: dict[str, str]) -> None:
    record = owner.get(f"/api/v1/people/{people['trust-only']}").json()
    assert [e["kind"] for e in record["open_exceptions"]] == ["missed-entitlement"]


def test_one_exception_by_id_and_404(owner: TestClient, people: dict[str, str]) -> None:
    missed = _one(owner, kind="missed-entitlement")
    assert owner.get(f"/api/v1/exceptions/{missed['id']}").json() == missed
    response = owner.get("/api/v1/exceptions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and response.json()["field"] == "exception_id"


def test_assign_then_resolve_records_who_when_decision_and_reason(
        owner: TestClient, hub: Hub, people: dict[str, str]) -> None:
    item = _one(owner, kind="review-overdue")
    assigned = owner.post(f"/api/v1/exceptions/{item['id']}/assign",
                          json={"assignee": "s117-coordinator-2"})
    assert assigned.status_code == 200
    assert (assigned.json()["status"], assigned.json()["assigned_to"]) == (
        "assigned", "s117-coordinator-2")
    resolved = owner.post(f"/api/v1/exceptions/{item['id']}/resolve",
                          json={"decision": "resolved", "reason": "review booked for 10 June"})
    assert resolved.status_code == 200
    body = resolved.json()
    assert (body["status"], body["decision"], body["reason"]) == (
        "resolved", "resolved", "review booked for 10 June")
    assert body["closed_by"] == owner.token_id  # type: ignore[attr-defined]
    assert body["closed_at"].startswith("2026-06-01")
    again = owner.post(f"/api/v1/exceptions/{item['id']}/dismiss", json={"reason": "x"})
    assert again.status_code == 422 and again.json()["rule"] == "exception-live"
    # A person's decision holds while the facts are the same: the sweep does not reopen it.
    sweep(hub.engine, hub.clock, hub.policy)
    assert owner.get("/api/v1/exceptions", params={"kind": "review-overdue"}).json()[
        "total"] == 1
    with hub.engine.connect() as conn:
        writes = conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.action == "write", audit_log.c.resource == "exception",
            audit_log.c.person_id == people["review-due"])).scalar_one()
    assert writes == 2


def test_dismiss_stays_dismissed(owner: TestClient, hub: Hub,
                                 people: dict[str, str]) -> None:
    item = _one(owner, kind="no-named-practitioner")
    response = owner.post(f"/api/v1/exceptions/{item['id']}/dismiss",
                          json={"reason": "practitioner named on paper; system catching up"})
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    assert response.json()["decision"] == "dismiss"
    sweep(hub.engine, hub.clock, hub.policy)
    assert owner.get("/api/v1/exceptions", params={
        "kind": "no-named-practitioner", "status": "open"}).json()["total"] == 0


def test_a_correction_is_recorded_as_provenance_and_settles_the_finding(
        owner: TestClient, people: dict[str, str]) -> None:
    item = _one(owner, kind="missed-entitlement")
    response = owner.post(f"/api/v1/exceptions/{item['id']}/resolve", json={
        "decision": "corrected", "reason": "council confirmed by phone",
        "apply": {"type": "s117.confirmed", "start": "2026-04-01"}})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["decision"]) == ("resolved",
                                                                         "corrected")
    record = owner.get(f"/api/v1/people/{people['trust-only']}").json()
    [fact] = [p for p in record["provenance"] if p["kind"] == "s117-confirmed"]
    assert (fact["source"], fact["source_ref"], fact["recorded_by"]) == (
        "register", f"exception:{item['id']}", owner.token_id)  # type: ignore[attr-defined]
    assert record["open_exceptions"] == []


def test_a_correction_for_a_person_without_an_nhs_number_finds_the_same_record(
        owner: TestClient, hub: Hub, people: dict[str, str]) -> None:
    with hub.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(persons)).scalar_one()
    item = _one(owner, kind="no-named-practitioner")
    response = owner.post(f"/api/v1/exceptions/{item['id']}/resolve", json={
        "reason": "named at the ward round",
        "apply": {"type": "named-practitioner.set", "name": "Worker Twenty",
                  "role": "care co-ordinator", "date": "2026-06-01"}})
    assert response.status_code == 200, response.text
    with hub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(persons)).scalar_one() == before
    record = owner.get(f"/api/v1/people/{people['no-nhs']}").json()
    assert record["entitlement"]["named_practitioner"] == "Worker Twenty"
    assert {"source": "register", "value": people["no-nhs"]} in record["identifiers"]


@pytest.mark.parametrize("payload, field", [
    ({"decision": "resolved", "reason": "  "}, "reason"),
    ({"decision": "maybe", "reason": "r"}, "decision"),
    ({"decision": "corrected", "reason": "r"}, "apply"),
    ({"decision": "dismiss", "reason": "r",
      "apply": {"type": "aftercare-plan.agreed", "date": "2026-05-01"}}, "apply"),
    ({"reason": "r", "apply": {"type": "s117.ended"}}, "apply"),
    ({"reason": "r", "apply": {"type": "review.completed", "date": "soon"}},
     "apply.review.completed.date"),
    # A NUL is refused with its field (PostgreSQL cannot store it: it was a 500).
    ({"reason": "r", "apply": {"type": "named-practitioner.set", "name": "Sam\x00"}},
     "apply.named-practitioner.set.name"),
    ({"reason": "r", "apply": {"type": "ordinary-residence.changed",
                               "council_code": "E1\r0000034", "date": "2026-05-01"}},
     "apply.ordinary-residence.changed.council_code"),
])
def test_bad_decisions_are_422_naming_the_field(owner: TestClient, people: dict[str, str],
                                                payload: dict, field: str) -> None:
    item = _one(owner, kind="review-overdue")
    response = owner.post(f"/api/v1/exceptions/{item['id']}/resolve", json=payload)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert _one(owner, kind="review-overdue")["status"] == "open"  # nothing changed


def test_auditors_read_and_may_not_decide(hub: Hub, people: dict[str, str]) -> None:
    with client_for(hub, Role.AUDITOR) as auditor:
        item = _one(auditor, kind="review-overdue")
        assert auditor.get(f"/api/v1/exceptions/{item['id']}").status_code == 200
        for action, body in (("assign", {"assignee": "a"}), ("resolve", {"reason": "r"}),
                             ("dismiss", {"reason": "r"})):
            response = auditor.post(f"/api/v1/exceptions/{item['id']}/{action}", json=body)
            assert response.status_code == 403, action
    with client_for(hub, Role.SOURCE_SYSTEM, source="trust-a") as source:
        assert source.get("/api/v1/exceptions").status_code == 403
    with client_for(hub, Role.INTEGRATION_ENGINEER) as engineer:
        assert engineer.get("/api/v1/exceptions").status_code == 403


def test_no_token_is_401(hub: Hub, people: dict[str, str]) -> None:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        response = client.get("/api/v1/exceptions", headers={"Authorization": ""})
    assert response.status_code == 401


def test_every_read_is_audited_against_the_person(owner: TestClient, hub: Hub,
                                                  people: dict[str, str]) -> None:
    owner.get("/api/v1/exceptions", params={"kind": "missed-entitlement"})
    with hub.engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.person_id, audit_log.c.action,
                                   audit_log.c.resource)).all()
    assert (people["trust-only"], "read", "exception") in rows


def test_a_new_discharge_opens_an_exception_the_next_sweep(owner: TestClient, hub: Hub,
                                                            people: dict[str, str]) -> None:
    discharge(hub, 3, date(2026, 5, 20), with_nhs=False)
    sweep(hub.engine, hub.clock, hub.policy)
    kinds = sorted(i["kind"] for i in owner.get(
        "/api/v1/exceptions", params={"person_id": people["no-nhs"], "status": "open"}
    ).json()["items"])
    assert kinds == ["missed-entitlement", "no-aftercare-plan", "no-named-practitioner"]
