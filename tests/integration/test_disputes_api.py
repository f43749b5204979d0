"""The disputes API over HTTP on the real databases: stages and working-day deadlines from the
dispute protocol, escalation history, overdue stages, roles, and care continuing throughout."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import func, select

import register_core
from connectors.inbound_mapper import make_mapper
from register_core import views
from register_core.adapters.disputes_store import DisputeStore
from register_core.adapters.security import Role
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.adapters.tables import outbound_changes, person_checks, persons
from register_core.domain.commands import RecordReviewCompleted, RecordS117Ended, Signoff
from register_core.domain.nhs_number import make_synthetic
from register_core.domain.position import compute_position
from register_core.domain.rules.disputes import DISPUTE_KINDS
from register_core.ports import FixedClock
from register_core.services.inbound import drain
from register_core.services.merges import merge_persons
from register_core.services.reconcile import sweep
from s117hub.api.routes_disputes import DisputeKind
from s117hub.bootstrap import Hub
from tests.unit.outbound.support import sub

from .reconcile_people import (
    TestClient,
    admit,
    client_for,
    council,
    end_by_council_alone,
    kept,
)

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


# -- care continues throughout a dispute about ending (dispute protocol 3, 7) ----------------

NHS = make_synthetic(41)


def _council_event(source: TestClient, event_id: str, kind: str, data: dict) -> None:
    response = source.post("/api/v1/sources/council-w/events", json={
        "event_id": event_id, "type": kind, "occurred_at": f"{data.get('date', '2026-08-05')}"
        "T09:30:00Z", "person": {"nhs_number": NHS, "local_id": "LAS-0041",
                                 "family_name": "Testperson", "birth_date": "1980-01-01"},
        "data": data})
    assert response.status_code == 202, response.text


def _at(clock: FixedClock, day: str) -> None:
    clock.at = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC
                                ).replace(hour=9)


def test_an_ending_during_an_open_ending_dispute_leaves_it_active_until_resolved(
        hub: Hub, owner: TestClient, clock: FixedClock) -> None:
    """The audit's sequence through the API: s3 1 June 2026, discharged 3 August; an ending
    dispute opened 16 November (stage 3); a joint review 18 November; the council's joint
    ending with reasons on 20 November. The entitlement stays active, visibly; the ending
    the partners record once the dispute is resolved ends it."""
    hub.sources.save(SourceDefinition(source_id="council-w", kind="council-rest"), clock.now())
    SubscriptionRegistry(hub.engine).save(
        sub("trust-fhir", "fhir-r4", "http://127.0.0.1:9/fhir"), clock.now())
    mapper = make_mapper(hub.sources)

    def person() -> dict:
        return owner.get(f"/api/v1/people/{person_id}").json()

    def status_deliveries() -> int:
        with hub.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbound_changes).where(
                outbound_changes.c.person_id == person_id)).scalar_one()

    with client_for(hub, Role.SOURCE_SYSTEM, source="council-w") as council:
        _at(clock, "2026-08-05")
        _council_event(council, "e-1", "detention.notified",
                       {"section": "03", "start": "2026-06-01", "end": "2026-08-03"})
        _council_event(council, "e-2", "s117.confirmed", {"start": "2026-08-03"})
        assert drain(hub.engine, mapper, hub.clock, hub.policy) == 2
        with hub.engine.connect() as conn:
            [person_id] = views.people_by_nhs_number(conn, NHS)
        assert person()["entitlement"]["status"] == "active"
        sweep(hub.engine, hub.clock, hub.policy)  # a checkpoint that holds, for now

        _at(clock, "2026-11-16")
        dispute = _open(owner, person_id, "ending")
        assert (dispute["opened"], dispute["stage"]) == ("2026-11-16", 3)
        journal = [(p["kind"], p["source"], p["source_ref"]) for p in person()["provenance"]]
        assert ("dispute-opened", "register", f"dispute:{dispute['id']}") in journal
        # The journal moved, and the checkpoint was written with it: nothing for the sweep.
        assert sweep(hub.engine, hub.clock, hub.policy).recomputed == 0

        _at(clock, "2026-11-18")
        _council_event(council, "e-3", "review.completed",
                       {"date": "2026-11-18", "kind": "unscheduled", "joint": True})
        _at(clock, "2026-11-20")
        signed = {"council_signoff": {"by": "council lead", "date": "2026-11-20"},
                  "icb_signoff": {"by": "ICB s117 lead", "date": "2026-11-20"}}
        _council_event(council, "e-4", "s117.ended",
                       {"date": "2026-11-20", "reason": "needs met", **signed})
        assert drain(hub.engine, mapper, hub.clock, hub.policy) == 2

        record = person()
        assert record["entitlement"]["status"] == "active"
        assert record["entitlement"]["ended"] is None
        status = record["explain"]["entitlement.status"]["rule"]
        assert f"dispute {dispute['id']}" in status and "care continues" in status
        assert "ended-during-dispute" in {e["kind"] for e in record["open_exceptions"]}
        [held] = owner.get("/api/v1/exceptions", params={
            "kind": "ended-during-dispute", "person_id": person_id}).json()["items"]
        assert held["detail"]["disputes"] == [
            {"id": dispute["id"], "opened": "2026-11-16", "resolved": None}]
        changes_before = status_deliveries()

        # Resolved on 1 December, the day the council records the ending again: before the
        # resolution it is held back too; resolving recomputes the person, and it ends.
        _at(clock, "2026-12-01")
        _council_event(council, "e-5", "s117.ended",
                       {"date": "2026-12-01", "reason": "dispute resolved: needs met",
                        "council_signoff": {"by": "council lead", "date": "2026-12-01"},
                        "icb_signoff": {"by": "ICB s117 lead", "date": "2026-12-01"}})
        assert drain(hub.engine, mapper, hub.clock, hub.policy) == 1
        assert person()["entitlement"]["status"] == "active"
        done = owner.post(f"/api/v1/disputes/{dispute['id']}/resolve",
                          json={"outcome": "ending agreed at stage 3"})
        assert done.status_code == 200, done.text

    record = person()
    assert record["entitlement"]["status"] == "ended"
    assert record["entitlement"]["ended"]["date"] == "2026-12-01"
    assert status_deliveries() == changes_before + 1  # partners hear of it
    # The ending dated during the dispute stays refused; its exception says what follows.
    # The one held back only until the resolution that day is closed by the system.
    found = owner.get("/api/v1/exceptions", params={
        "kind": "ended-during-dispute", "person_id": person_id}).json()["items"]
    by_date = {e["detail"]["ending"]["date"]: e for e in found}
    held = by_date["2026-11-20"]
    assert held["status"] == "open"
    assert held["detail"]["disputes"][0]["resolved"] == "2026-12-01"
    assert "resolved on 2026-12-01" in held["summary"]
    assert (by_date["2026-12-01"]["status"], by_date["2026-12-01"]["closed_by"]) == (
        "resolved", "system")
    # The stored register is what a full recompute gives, and the sweep has nothing to do.
    assert sweep(hub.engine, hub.clock, hub.policy).recomputed == 0
    assert sweep(hub.engine, hub.clock, hub.policy, full=True).positions_changed == 0


def test_opening_a_dispute_moves_the_persons_version_for_the_sweep(
        hub: Hub, owner: TestClient, person: str) -> None:
    sweep(hub.engine, hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        before = conn.execute(select(persons.c.version).where(persons.c.id == person)
                              ).scalar_one()
    _open(owner, person, "funding")
    with hub.engine.connect() as conn:
        after = conn.execute(select(persons.c.version).where(persons.c.id == person)
                             ).scalar_one()
        checked = conn.execute(select(person_checks.c.version).where(
            person_checks.c.person_id == person)).scalar_one()
    assert after == before + 1 and checked == after


def _migration(name: str) -> ModuleType:
    path = Path(register_core.__file__).parent / "migrations" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"migration_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_disputes_logged_before_their_steps_were_journalled_are_backfilled(
        hub: Hub, person: str, clock: FixedClock) -> None:
    """Migration 0009: a dispute stored by an earlier version (no facts) gets its facts."""
    council(hub, 1, RecordReviewCompleted, date(2026, 5, 18), date=date(2026, 5, 18),
            joint=True)
    council(hub, 1, RecordS117Ended, date(2026, 5, 20), date=date(2026, 5, 20),
            reason="needs met", council_signoff=Signoff(by="c", date=date(2026, 5, 20)),
            icb_signoff=Signoff(by="i", date=date(2026, 5, 20)))
    with hub.uow() as uow:
        store = DisputeStore(uow.connection)
        open_id = store.create(person_id=person, kind="ending", summary="ending disputed",
                               opened=date(2026, 5, 11), stage=3, stage_due=None,
                               history=[], created_by="token-1", now=clock.now())
        done_id = store.create(person_id=person, kind="funding", summary="who pays",
                               opened=date(2026, 4, 1), stage=1, stage_due=None,
                               history=[], created_by="token-1", now=clock.now())
        store.resolve(done_id, outcome="60:40", resolved=date(2026, 4, 20), history=[
            {"event": "resolved", "by": "token-2", "at": "2026-04-20T10:00:00+00:00"}])
        uow.commit()
    with hub.uow() as uow:
        before = uow.persons.get(person)
        assert before is not None
        assert compute_position(before, clock.today(), hub.policy).entitlement.status == "ended"
    backfill = _migration("0009_dispute_facts").backfill
    with hub.uow() as uow:
        assert backfill(uow.connection, clock.now()) == 3
        assert backfill(uow.connection, clock.now()) == 0  # journalled once
        uow.commit()
    with hub.uow() as uow:
        after = uow.persons.get(person)
    assert after is not None and after.version == before.version + 1
    position = compute_position(after, clock.today(), hub.policy)
    assert [(s.id, s.kind, s.opened, s.resolved) for s in position.disputes] == [
        (done_id, "funding", date(2026, 4, 1), date(2026, 4, 20)),
        (open_id, "ending", date(2026, 5, 11), None)]
    assert position.entitlement.status == "active"  # the ending fell in the open dispute
    journal = [(f.kind, f.source, f.command.provenance.recorded_by) for f in after.facts[-3:]]
    assert journal == [("dispute-opened", "register", "token-1"),
                       ("dispute-resolved", "register", "token-2"),
                       ("dispute-opened", "register", "token-1")]


def test_a_dispute_resolved_after_a_merge_is_resolved_where_its_opening_went(
        hub: Hub, owner: TestClient, person: str) -> None:
    """The record a dispute was opened for was merged into another since: the resolution is
    journalled beside the opening, so the survivor's endings are no longer held back."""
    survivor = admit(hub, 2, date(2026, 1, 5), with_nhs=False)  # the same person, unknown
    dispute = _open(owner, person, "ending")
    with hub.uow() as uow:
        merge_persons(uow, survivor, person, source="register", source_ref="test-merge",
                      by="tester", clock=hub.clock, policy=hub.policy)
        uow.commit()
    done = owner.post(f"/api/v1/disputes/{dispute['id']}/resolve", json={"outcome": "o"})
    assert done.status_code == 200, done.text
    with hub.uow() as uow:
        merged, kept_on = uow.persons.get(person), uow.persons.get(survivor)
    assert merged is not None and kept_on is not None
    assert merged.facts == []
    [span] = compute_position(kept_on, hub.clock.today(), hub.policy).disputes
    assert (span.id, span.resolved) == (dispute["id"], date(2026, 6, 1))


def test_a_dispute_cannot_be_logged_on_a_record_merged_away(hub: Hub, owner: TestClient,
                                                            person: str) -> None:
    """The merged record is empty: a dispute there would never count for the person and its
    journal entry would stop the merge being undone. The answer names the survivor."""
    survivor = admit(hub, 2, date(2026, 1, 5), with_nhs=False)
    with hub.uow() as uow:
        merge_persons(uow, survivor, person, source="register", source_ref="test-merge",
                      by="tester", clock=hub.clock, policy=hub.policy)
        uow.commit()
    refused = owner.post("/api/v1/disputes", json={
        "person_id": person, "kind": "funding", "summary": "who pays"})
    assert refused.status_code == 422, refused.text
    assert survivor in refused.json()["message"]
    assert owner.get("/api/v1/disputes", params={"person_id": person}).json()["total"] == 0
