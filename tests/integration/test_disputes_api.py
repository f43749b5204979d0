"""The disputes API over HTTP on the real databases: stages and working-day deadlines from the
dispute protocol, escalation history, overdue stages, roles, and care continuing throughout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from register_core.adapters.security import Role
from register_core.domain.rules.disputes import DISPUTE_KINDS
from register_core.ports import FixedClock
from register_core.services.reconcile import sweep
from s117hub.api.routes_disputes import DisputeKind
from s117hub.bootstrap import Hub

from .reconcile_people import TestClient, client_for, end_by_council_alone, kept

SECTION_7 = {"id", "person_id", "kind", "opened", "stage", "stage_due", "overdue", "summary",
             "outcome"}


@pytest.fixture
def person(hub: Hub) -> str:
    return kept(hub, 1, date(2026, 1, 5), date(2026, 3, 2))


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


def _open(client: TestClient, person_id: str, kind: str = "funding", **extra: object) -> dict:
    response = client.post("/api/v1/disputes", json={
        "person_id": person_id, "kind": kind, "summary": "who funds the placement", **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_an_ending_dispute_starts_at_stage_3_with_15_working_days(
        owner: TestClient, person: str) -> None:
    dispute = _open(owner, person, "ending")
    assert SECTION_7 <= dispute.keys()
    assert (dispute["opened"], dispute["stage"], dispute["stage_due"]) == (
        "2026-06-01", 3, "2026-06-22")
    assert (dispute["overdue"], dispute["outcome"]) == (False, None)
    assert [h["event"] for h in dispute["history"]] == ["opened"]
    assert dispute["history"][0]["by"] == owner.token_id  # type: ignore[attr-defined]


def test_a_dispute_recorded_after_the_fact_counts_from_when_it_opened_and_is_overdue(
        owner: TestClient, person: str) -> None:
    dispute = _open(owner, person, opened="2026-05-01")
    # Friday 1 May 2026, then the early May bank holiday: 5 working days end on 11 May.
    assert (dispute["stage"], dispute["stage_due"], dispute["overdue"]) == (
        1, "2026-05-11", True)
    overdue = owner.get("/api/v1/disputes", params={"overdue": True}).json()
    assert [d["id"] for d in overdue["items"]] == [dispute["id"]]
    assert owner.get("/api/v1/disputes", params={"overdue": False}).json()["total"] == 0


def test_escalation_moves_stage_by_stage_with_history_and_stops_at_4(
        owner: TestClient, person: str, clock: FixedClock) -> None:
    dispute = _open(owner, person, opened="2026-05-01")
    step = owner.post(f"/api/v1/disputes/{dispute['id']}/escalate",
                      json={"reason": "no agreement at frontline"}).json()
    assert (step["stage"], step["stage_started"], step["stage_due"], step["overdue"]) == (
        2, "2026-06-01", "2026-06-15", False)
    assert step["opened"] == "2026-05-01"
    escalated = step["history"][-1]
    assert (escalated["event"], escalated["from_stage"], escalated["was_overdue"]) == (
        "escalated", 1, True)
    clock.at = datetime(2026, 6, 16, 9, tzinfo=UTC)
    assert owner.get(f"/api/v1/disputes/{dispute['id']}").json()["overdue"] is True
    step = owner.post(f"/api/v1/disputes/{dispute['id']}/escalate",
                      json={"reason": "operational leads disagree"}).json()
    assert (step["stage"], step["stage_due"]) == (3, "2026-07-07")
    step = owner.post(f"/api/v1/disputes/{dispute['id']}/escalate",
                      json={"reason": "to NHS England"}).json()
    assert (step["stage"], step["stage_due"], step["overdue"]) == (4, None, False)
    refused = owner.post(f"/api/v1/disputes/{dispute['id']}/escalate", json={"reason": "?"})
    assert refused.status_code == 422 and refused.json()["field"] == "stage"
    assert len(owner.get(f"/api/v1/disputes/{dispute['id']}").json()["history"]) == 4


def test_resolving_records_the_outcome_and_closes_the_dispute(owner: TestClient,
                                                             person: str) -> None:
    dispute = _open(owner, person, opened="2026-05-01")
    done = owner.post(f"/api/v1/disputes/{dispute['id']}/resolve",
                      json={"outcome": "ICB funds 40%, council 60% (Annex 2)"}).json()
    assert (done["outcome"], done["resolved"], done["overdue"]) == (
        "ICB funds 40%, council 60% (Annex 2)", "2026-06-01", False)
    assert done["history"][-1]["event"] == "resolved"
    for action, body in (("escalate", {"reason": "r"}), ("resolve", {"outcome": "o"})):
        response = owner.post(f"/api/v1/disputes/{dispute['id']}/{action}", json=body)
        assert response.status_code == 422 and response.json()["rule"] == "dispute-open"


def test_filters_by_stage_person_and_kind(owner: TestClient, hub: Hub, person: str) -> None:
    other = kept(hub, 2, date(2026, 1, 5), date(2026, 3, 2))
    ending = _open(owner, person, "ending")
    funding = _open(owner, other, "funding")
    assert [d["id"] for d in owner.get("/api/v1/disputes", params={"stage": 3}).json()[
        "items"]] == [ending["id"]]
    assert [d["id"] for d in owner.get("/api/v1/disputes", params={"person_id": other}).json()[
        "items"]] == [funding["id"]]
    assert owner.get("/api/v1/disputes", params={"kind": "ending"}).json()["total"] == 1
    assert owner.get("/api/v1/disputes").json()["total"] == 2


@pytest.mark.parametrize("payload, status, field", [
    ({"kind": "weather"}, 422, "kind"),
    ({"opened": "2026-06-02"}, 422, "opened"),
    ({"summary": ""}, 422, "summary"),
    ({"person_id": "00000000-0000-0000-0000-000000000000"}, 404, "person_id"),
])
def test_bad_disputes_are_refused_naming_the_field(owner: TestClient, person: str,
                                                   payload: dict, status: int,
                                                   field: str) -> None:
    body = {"person_id": person, "kind": "scope", "summary": "what counts as aftercare",
            **payload}
    response = owner.post("/api/v1/disputes", json=body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


def test_the_entitlement_stays_active_while_a_dispute_about_ending_is_open(
        owner: TestClient, hub: Hub, person: str) -> None:
    end_by_council_alone(hub, 1, date(2026, 5, 20))  # the ICB does not agree
    sweep(hub.engine, hub.clock, hub.policy)
    dispute = _open(owner, person, "ending")
    record = owner.get(f"/api/v1/people/{person}").json()
    assert record["entitlement"]["status"] == "active" and record["entitlement"]["ended"] is None
    assert [d["id"] for d in record["disputes"]] == [dispute["id"]]
    assert record["disputes"][0]["stage"] == 3
    assert [e["kind"] for e in record["open_exceptions"]] == ["one-sided-ending"]


def test_auditors_read_and_may_not_write(hub: Hub, owner: TestClient, person: str) -> None:
    dispute = _open(owner, person)
    with client_for(hub, Role.AUDITOR) as auditor:
        assert auditor.get("/api/v1/disputes").json()["total"] == 1
        assert auditor.get(f"/api/v1/disputes/{dispute['id']}").status_code == 200
        assert auditor.post("/api/v1/disputes", json={
            "person_id": person, "kind": "scope", "summary": "s"}).status_code == 403
        assert auditor.post(f"/api/v1/disputes/{dispute['id']}/escalate",
                            json={"reason": "r"}).status_code == 403
    with client_for(hub, Role.SOURCE_SYSTEM, source="trust-a") as source:
        assert source.get("/api/v1/disputes").status_code == 403


def test_unknown_dispute_is_404(owner: TestClient) -> None:
    response = owner.get("/api/v1/disputes/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and response.json()["field"] == "dispute_id"


def test_the_api_spells_the_dispute_kinds_the_rules_know() -> None:
    assert set(DisputeKind.__args__) == set(DISPUTE_KINDS)  # type: ignore[attr-defined]
