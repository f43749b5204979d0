"""The outbound API over HTTP: subscriptions (masked credentials, roles, preload),
deliveries and retry of dead letters, the SLA view, the published council schema."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from register_core.adapters import outbox
from register_core.adapters.database import writer
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.subscriptions import SubscriptionDefinition, SubscriptionRegistry
from register_core.adapters.tables import audit_log, outbound_deliveries, register_exceptions
from register_core.services.outbound import check_sla
from s117hub.api.app import create_app
from s117hub.api.routes_outbound import router as outbound_router
from s117hub.bootstrap import Hub
from tests.unit.outbound.support import apply, story

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

COUNCIL = {"subscription_id": "council-x", "kind": "council-rest",
           "endpoint": "https://council-x.example/s117", "credentials": {"bearer_token": "s3"},
           "changes": {"councils": ["E10000034"], "fields": ["entitlement.status"]}}


@pytest.fixture
def app(hub: Hub) -> FastAPI:
    app = create_app(hub)
    app.include_router(outbound_router)
    return app


def _client(app: FastAPI, hub: Hub, role: Role) -> TestClient:
    _id, token = TokenStore(hub.engine).create(role)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def engineer(app: FastAPI, hub: Hub) -> Iterator[TestClient]:
    with _client(app, hub, Role.INTEGRATION_ENGINEER) as client:
        yield client


@pytest.fixture
def auditor(app: FastAPI, hub: Hub) -> Iterator[TestClient]:
    with _client(app, hub, Role.AUDITOR) as client:
        yield client


def test_subscription_lifecycle_with_the_token_masked(engineer: TestClient, hub: Hub) -> None:
    created = engineer.post("/api/v1/subscriptions", json=COUNCIL)
    assert created.status_code == 201, created.text
    assert created.json()["credentials"] == {"bearer_token": "***"}
    assert created.json()["display_name"] == "council-x"
    assert engineer.post("/api/v1/subscriptions", json=COUNCIL).status_code == 409
    replaced = engineer.put("/api/v1/subscriptions/council-x", json={
        **COUNCIL, "credentials": {"bearer_token": "***"}, "display_name": "Council X"})
    assert replaced.status_code == 200 and replaced.json()["display_name"] == "Council X"
    stored = SubscriptionRegistry(hub.engine).get("council-x")
    assert stored is not None and stored.credentials.bearer_token == "s3"  # kept
    listing = engineer.get("/api/v1/subscriptions").json()
    assert listing["total"] == 1 and "s3" not in str(listing)
    assert engineer.get("/api/v1/subscriptions/council-x").json()["changes"]["councils"] == [
        "E10000034"]
    assert engineer.delete("/api/v1/subscriptions/council-x").status_code == 204
    assert engineer.get("/api/v1/subscriptions/council-x").status_code == 404
    with hub.engine.connect() as conn:
        actions = conn.execute(select(audit_log.c.resource, audit_log.c.action)).all()
    assert ("subscription", "write") in [tuple(a) for a in actions]


@pytest.mark.parametrize("body, field", [
    ({**COUNCIL, "kind": "sms"}, "kind"),
    ({**COUNCIL, "endpoint": "ftp://x"}, "endpoint"),
    ({**COUNCIL, "kind": "hl7v2-mllp", "endpoint": "https://x"}, "endpoint"),
    ({**COUNCIL, "changes": {"fields": ["person.postcode"]}}, "changes.fields"),
    ({**COUNCIL, "credentials": {"bearer_token": "***"}}, "credentials.bearer_token"),
])
def test_bad_subscriptions_are_422(engineer: TestClient, body: dict[str, object],
                                   field: str) -> None:
    response = engineer.post("/api/v1/subscriptions", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_auditor_reads_and_may_not_write(auditor: TestClient, app: FastAPI,
                                         hub: Hub) -> None:
    SubscriptionRegistry(hub.engine).save(SubscriptionDefinition.model_validate(COUNCIL),
                                          datetime.now(UTC))
    assert auditor.get("/api/v1/subscriptions").status_code == 200
    assert auditor.get("/api/v1/deliveries").status_code == 200
    assert auditor.get("/api/v1/sla").status_code == 200
    assert auditor.post("/api/v1/subscriptions", json=COUNCIL).status_code == 403
    assert auditor.delete("/api/v1/subscriptions/council-x").status_code == 403
    with _client(app, hub, Role.REGISTER_OWNER) as owner:
        assert owner.get("/api/v1/subscriptions").status_code == 403
    with TestClient(app) as anonymous:
        assert anonymous.get("/api/v1/deliveries").status_code == 401


def test_preload_from_the_config_file_list(hub: Hub) -> None:
    registry = SubscriptionRegistry(hub.engine)
    assert registry.preload([COUNCIL, {"subscription_id": "pas", "kind": "hl7v2-mllp",
                                       "endpoint": "mllp://10.0.0.7:2575"}],
                            hub.clock.now()) == 2
    assert [s.subscription_id for s in registry.list()] == ["council-x", "pas"]
    assert registry.get("pas").mllp_address == ("10.0.0.7", 2575)  # type: ignore[union-attr]


def _fail_all(hub: Hub) -> list[int]:
    now = hub.clock.now()
    with writer(hub.engine) as conn, conn.begin():
        claimed = outbox.claim(conn, "council-x", now=now, lease_until=now, limit=10)
        outbox.record(conn, [outbox.Result(id=c.id, claim=c.claim, status="failed",
                                           status_code=400, body="nope") for c in claimed],
                      now)
    return [c.id for c in claimed]


def test_retry_a_dead_letter_by_hand(engineer: TestClient, hub: Hub) -> None:
    engineer.post("/api/v1/subscriptions", json=COUNCIL)
    for command in story(1)[:3]:
        apply(hub.engine, hub.clock, command)
    [first] = _fail_all(hub)
    failed = engineer.get("/api/v1/deliveries", params={"status": "failed"}).json()
    assert failed["total"] == 1 and failed["items"][0]["id"] == first
    assert "response_body" not in failed["items"][0]
    detail = engineer.get(f"/api/v1/deliveries/{first}").json()
    assert detail["response_body"] == "nope" and detail["last_status_code"] == 400
    retried = engineer.post(f"/api/v1/deliveries/{first}/retry")
    assert retried.status_code == 202 and retried.json() == {"id": first, "status": "pending"}
    assert engineer.post(f"/api/v1/deliveries/{first}/retry").status_code == 409  # pending
    assert engineer.post("/api/v1/deliveries/999999/retry").status_code == 404
    with hub.engine.connect() as conn:
        row = conn.execute(select(outbound_deliveries).where(
            outbound_deliveries.c.id == first)).one()
    assert (row.status, row.attempts, row.manual_retries) == ("pending", 0, 1)


def test_retry_refuses_an_older_state_than_the_partner_has(engineer: TestClient,
                                                           hub: Hub) -> None:
    engineer.post("/api/v1/subscriptions", json=COUNCIL)
    for command in story(1):
        apply(hub.engine, hub.clock, command)
    [first] = _fail_all(hub)
    now = hub.clock.now()
    with writer(hub.engine) as conn, conn.begin():
        [later] = outbox.claim(conn, "council-x", now=now, lease_until=now, limit=10)
        outbox.record(conn, [outbox.Result(id=later.id, claim=later.claim,
                                           status="delivered")], now)
    superseded = engineer.get(f"/api/v1/deliveries/{first}").json()
    assert (superseded["status"], superseded["superseded_by"]) == ("superseded", later.id)
    refused = engineer.post(f"/api/v1/deliveries/{first}/retry")
    assert refused.status_code == 409 and "newer state" in refused.json()["message"]
    assert engineer.post(f"/api/v1/deliveries/{first}/retry",
                         params={"force": "true"}).status_code == 202


def test_sla_lists_open_deliveries_soonest_due_first(engineer: TestClient, hub: Hub) -> None:
    engineer.post("/api/v1/subscriptions", json=COUNCIL)
    for command in story(2)[:3]:
        apply(hub.engine, hub.clock, command)  # due in five working days
    for command in story(1)[:3]:
        apply(hub.engine, hub.clock, command, received_at=hub.clock.now() - timedelta(days=12))
    body = engineer.get("/api/v1/sla").json()
    assert body["open_total"] == 2 and body["breached_total"] == 0  # no sweep has run yet
    late, on_time = body["items"]
    assert late["seconds_left"] < 0 and late["breached"]
    assert on_time["seconds_left"] == 7 * 24 * 3600 and not on_time["breached"]
    assert engineer.get("/api/v1/sla", params={"breached": "true"}).json()["items"] == []


def test_queues_show_each_subscriber_open_deliveries(engineer: TestClient, hub: Hub) -> None:
    engineer.post("/api/v1/subscriptions", json=COUNCIL)
    engineer.post("/api/v1/subscriptions", json={**COUNCIL, "subscription_id": "council-y"})
    assert engineer.get("/api/v1/queues").json()["outbound"] == {"queues": []}
    for command in story(1)[:3]:
        apply(hub.engine, hub.clock, command)  # one delivery to each subscriber
    now = hub.clock.now()
    with writer(hub.engine) as conn, conn.begin():
        [dead] = outbox.claim(conn, "council-x", now=now, lease_until=now, limit=10)
        outbox.record(conn, [outbox.Result(id=dead.id, claim=dead.claim, status="failed",
                                           status_code=400, body="nope")], now)
    for command in story(2)[:3]:
        apply(hub.engine, hub.clock, command, received_at=now - timedelta(days=12))
    with writer(hub.engine) as conn, conn.begin():
        outbox.claim(conn, "council-y", now=now, lease_until=now + timedelta(minutes=1),
                     limit=1)  # the older one, now in flight
        check_sla(conn, now, timedelta(hours=24))  # the two 12-day-old ones are breached
    hub.clock.at = now + timedelta(seconds=90)  # type: ignore[attr-defined]

    queues = engineer.get("/api/v1/queues").json()["outbound"]["queues"]
    assert queues == [
        {"subscription_id": "council-x", "depth": 1, "in_flight": 0, "failed": 1,
         "breached": 1, "oldest_age_seconds": 90.0},
        {"subscription_id": "council-y", "depth": 1, "in_flight": 1, "failed": 0,
         "breached": 1, "oldest_age_seconds": 90.0}]


def test_the_council_document_schema_is_published(engineer: TestClient) -> None:
    schema = engineer.get("/openapi.json").json()
    assert "CouncilStatusDocument" in schema["components"]["schemas"]
    assert "/api/v1/subscriptions/{subscription_id}" in schema["paths"]
    example = engineer.get("/api/v1/outbound/council-status-document").json()
    assert example["type"] == "s117.status-changed" and example["schema_version"] == "1"


def test_a_dead_letter_superseded_by_a_later_delivery_is_closed_and_never_breaches(
        engineer: TestClient, hub: Hub) -> None:
    """The audit's case: the older change is dead-lettered, the next one goes through."""
    engineer.post("/api/v1/subscriptions", json=COUNCIL)
    for command in story(1)[:3]:
        apply(hub.engine, hub.clock, command)
    [older] = _fail_all(hub)
    for command in story(1)[3:]:
        apply(hub.engine, hub.clock, command)
    assert engineer.get("/api/v1/sla").json()["open_total"] == 2
    now = hub.clock.now()
    with writer(hub.engine) as conn, conn.begin():
        [newer] = outbox.claim(conn, "council-x", now=now, lease_until=now, limit=10)
        outbox.record(conn, [outbox.Result(id=newer.id, claim=newer.claim,
                                           status="delivered")], now)
    listed = engineer.get("/api/v1/deliveries", params={"status": "superseded"}).json()
    assert [(i["id"], i["superseded_by"]) for i in listed["items"]] == [(older, newer.id)]
    assert engineer.get("/api/v1/sla").json()["open_total"] == 0
    with writer(hub.engine) as conn, conn.begin():  # well past its due time
        events = check_sla(conn, now + timedelta(days=30), timedelta(hours=24))
    assert events.breaches == [] and events.warnings == []
    assert engineer.get("/api/v1/sla", params={"breached": "true"}).json()["items"] == []
    assert engineer.get("/api/v1/queues").json()["outbound"] == {"queues": []}


def test_cancel_closes_an_open_delivery_by_hand(engineer: TestClient, auditor: TestClient,
                                                hub: Hub) -> None:
    engineer.post("/api/v1/subscriptions", json=COUNCIL)
    for command in story(1)[:3]:
        apply(hub.engine, hub.clock, command)
    [dead] = _fail_all(hub)
    assert auditor.post(f"/api/v1/deliveries/{dead}/cancel").status_code == 403
    done = engineer.post(f"/api/v1/deliveries/{dead}/cancel")
    assert done.status_code == 200 and done.json() == {"id": dead, "status": "cancelled"}
    assert engineer.post(f"/api/v1/deliveries/{dead}/cancel").status_code == 409
    assert engineer.post(f"/api/v1/deliveries/{dead}/retry").status_code == 409
    assert engineer.post("/api/v1/deliveries/999999/cancel").status_code == 404
    assert engineer.get("/api/v1/sla").json()["open_total"] == 0
    with hub.engine.connect() as conn:
        audited = conn.execute(select(audit_log.c.resource, audit_log.c.resource_id)).all()
    assert ("delivery", str(dead)) in [tuple(a) for a in audited]


def _zoned(value: str) -> bool:
    return value.endswith(("Z", "+00:00"))


def test_times_in_the_outbound_json_are_utc_with_an_offset(engineer: TestClient,
                                                           hub: Hub) -> None:
    engineer.post("/api/v1/subscriptions", json=COUNCIL)
    for command in story(1)[:3]:
        apply(hub.engine, hub.clock, command, received_at=hub.clock.now() - timedelta(days=12))
    [dead] = _fail_all(hub)
    with writer(hub.engine) as conn, conn.begin():
        check_sla(conn, hub.clock.now(), timedelta(hours=24))
    listed = engineer.get("/api/v1/deliveries").json()["items"][0]
    detail = engineer.get(f"/api/v1/deliveries/{dead}").json()
    item = engineer.get("/api/v1/sla").json()["items"][0]
    for body in (listed, detail, item):
        for name in ("next_attempt_at", "received_at", "due_at", "created_at", "updated_at",
                     "breached_at"):
            assert _zoned(body[name]), (name, body[name])
    with hub.engine.connect() as conn:
        detail_of_breach = conn.execute(select(register_exceptions.c.detail)).scalar_one()
    assert _zoned(detail_of_breach["received_at"]) and _zoned(detail_of_breach["due_at"])
