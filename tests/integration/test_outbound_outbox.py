"""The outbox on the real databases: rows written with the change, order per person,
claims that never overlap, leases taken back, SLA breaches recorded once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from register_core.adapters import outbox
from register_core.adapters.database import writer
from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.adapters.tables import (
    outbound_changes,
    outbound_deliveries,
    register_exceptions,
)
from register_core.ports import FixedClock
from register_core.services.outbound import check_sla
from s117hub.bootstrap import Hub
from tests.unit.outbound.support import apply, story, sub

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def subs(hub: Hub) -> SubscriptionRegistry:
    registry = SubscriptionRegistry(hub.engine)
    registry.save(sub("council-x", "council-rest", "http://127.0.0.1:9/s117",
                      changes={"councils": ["E10000034"]}), NOW)
    registry.save(sub("trust-fhir", "fhir-r4", "http://127.0.0.1:9/fhir",
                      changes={"fields": ["entitlement.status"]}), NOW)
    return registry


def _rows(hub: Hub) -> list[tuple[str, str, str, int]]:
    with hub.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(outbound_deliveries.c.subscription_id, outbound_deliveries.c.person_id,
                   outbound_deliveries.c.status, outbound_deliveries.c.change_id)
            .order_by(outbound_deliveries.c.id))]


def test_a_status_change_writes_one_delivery_per_interested_subscriber(
        hub: Hub, subs: SubscriptionRegistry) -> None:
    admit, council, left, _end = story(1)
    applied, ids = apply(hub.engine, hub.clock, admit)  # pending; no council yet
    assert applied.status_changed
    assert [r[0] for r in _rows(hub)] == ["trust-fhir"]  # council-x filters on its council
    with hub.engine.connect() as conn:  # a new person's old status is "none", not null
        first = conn.execute(select(outbound_changes.c.document)).scalar_one()
    assert {"field": "entitlement.status", "old": "none", "new": "pending"} in first["changes"]
    _, ids = apply(hub.engine, hub.clock, council)  # responsible council only: not "status"
    assert [r[0] for r in _rows(hub)][1:] == ["council-x"]
    _, ids = apply(hub.engine, hub.clock, left)
    assert sorted(r[0] for r in _rows(hub)[2:]) == ["council-x", "trust-fhir"]
    assert len(ids) == 2
    with hub.engine.connect() as conn:
        doc = conn.execute(select(outbound_changes.c.document)
                           .order_by(outbound_changes.c.id.desc())).scalars().first()
        row = conn.execute(select(outbound_deliveries).where(
            outbound_deliveries.c.id == ids[0])).one()
    assert doc["entitlement"]["status"] == "active"
    assert doc["entitlement"]["responsible_council"] == "E10000034"
    assert doc["person"]["nhs_number"] and "change_id" not in doc
    assert outbox.aware(row.due_at) == datetime(2026, 6, 8, 9, 0, tzinfo=UTC)


def test_nothing_is_queued_when_the_change_rolls_back(hub: Hub,
                                                      subs: SubscriptionRegistry) -> None:
    with pytest.raises(RuntimeError):
        apply(hub.engine, hub.clock, story(2)[0], fail=True)
    with hub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbound_deliveries)
                            ).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(outbound_changes)
                            ).scalar_one() == 0


def _claim(hub: Hub, sid: str, limit: int = 10, at: datetime = NOW) -> list[outbox.Claimed]:
    with writer(hub.engine) as conn, conn.begin():
        return outbox.claim(conn, sid, now=at, lease_until=at + timedelta(minutes=2),
                            limit=limit)


def _settle(hub: Hub, claimed: list[outbox.Claimed], status: str) -> None:
    with writer(hub.engine) as conn, conn.begin():
        outbox.record(conn, [outbox.Result(id=c.id, claim=c.claim, status=status,
                                           next_attempt_at=NOW) for c in claimed], NOW)


def test_one_person_at_a_time_in_change_order(hub: Hub, subs: SubscriptionRegistry) -> None:
    for command in story(1) + story(2):
        apply(hub.engine, hub.clock, command)
    first = _claim(hub, "trust-fhir")
    assert len(first) == 2 and len({c.person_id for c in first}) == 2  # one head per person
    assert _claim(hub, "trust-fhir") == []  # the rest wait behind the heads in flight
    _settle(hub, first, "retrying")
    again = _claim(hub, "trust-fhir")
    assert [c.id for c in again] == [c.id for c in first]  # retried before anything later
    _settle(hub, again, "failed")  # a dead letter no longer holds the queue
    nxt = _claim(hub, "trust-fhir")
    assert len(nxt) == 2 and all(n.id > f.id for n, f in zip(nxt, first, strict=True))


def test_a_claim_left_by_a_dead_worker_is_taken_back(hub: Hub,
                                                     subs: SubscriptionRegistry) -> None:
    apply(hub.engine, hub.clock, story(1)[0])
    [claimed] = _claim(hub, "trust-fhir")
    with writer(hub.engine) as conn, conn.begin():
        assert outbox.release_expired(conn, NOW + timedelta(minutes=1)) == 0
        assert outbox.release_expired(conn, NOW + timedelta(minutes=3)) == 1
    [again] = _claim(hub, "trust-fhir", at=NOW + timedelta(minutes=3))
    assert again.id == claimed.id and again.attempts == 2 and again.claim != claimed.claim
    with writer(hub.engine) as conn, conn.begin():  # the dead worker's late answer is ignored
        assert outbox.record(conn, [outbox.Result(id=claimed.id, claim=claimed.claim,
                                                  status="delivered")], NOW) == []


@pytest.mark.postgres
def test_concurrent_claims_never_overlap_on_postgres(hub: Hub,
                                                     subs: SubscriptionRegistry) -> None:
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    for n in range(1, 41):
        apply(hub.engine, hub.clock, story(n)[0])
    got: list[list[int]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := _claim(hub, "trust-fhir", limit=3):
            mine += [c.id for c in batch]
        got.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for ids in got for i in ids]
    assert len(flat) == len(set(flat)) == 40


def test_a_breach_opens_one_exception_however_often_checked(
        hub: Hub, subs: SubscriptionRegistry) -> None:
    applied, _ = apply(hub.engine, hub.clock, story(1)[0])
    clock = FixedClock(NOW + timedelta(days=6, hours=23))  # Sunday 7 June: due Monday 09:00
    with writer(hub.engine) as conn, conn.begin():
        events = check_sla(conn, clock.now(), timedelta(hours=24))
    assert [w["subscription_id"] for w in events.warnings] == ["trust-fhir"]
    assert events.breaches == []
    later = NOW + timedelta(days=7, minutes=1)
    for _ in range(2):
        with writer(hub.engine) as conn, conn.begin():
            events = check_sla(conn, later, timedelta(hours=24))
        if _ == 0:
            assert len(events.breaches) == 1
        else:
            assert events.breaches == [] and events.warnings == []
    with hub.engine.connect() as conn:
        exc = conn.execute(select(register_exceptions)).one()
        delivery_id = conn.execute(select(outbound_deliveries.c.id)).scalar_one()
    assert exc.kind == "delivery-sla-breach" and exc.status == "open"
    assert exc.fingerprint == f"delivery-sla-breach:{delivery_id}"
    assert exc.person_id == applied.person_id
    assert exc.detail["subscription_id"] == "trust-fhir"
