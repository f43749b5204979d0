"""Status changes that no inbound message caused still reach partners (issue 5): a register
owner's correction when resolving an exception, and the nightly sweep when time alone moves
a position (a CTO's end date passing). Each writes its outbox rows in its own transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from register_core.adapters.security import Role
from register_core.adapters.subscriptions import SubscriptionDefinition
from register_core.adapters.tables import outbound_changes, outbound_deliveries
from register_core.domain.calendar import add_working_days
from register_core.domain.commands import RecordLegalStatusChanged
from register_core.ports import FixedClock
from register_core.services.outbound import enqueue_on_change
from register_core.services.reconcile import sweep
from s117hub.bootstrap import Hub
from s117hub.cli_reconcile import run
from s117hub.config import Settings
from s117hub.serve import RegisterSweeper

from .reconcile_people import apply, client_for, kept, prov, ref


def _subscribe(hub: Hub) -> None:
    hub.subscriptions.save(SubscriptionDefinition(
        subscription_id="council-a", kind="council-rest",
        endpoint="http://127.0.0.1:9/s117"), hub.clock.now())


def _deliveries(hub: Hub, person_id: str) -> list[dict[str, object]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(
            select(outbound_deliveries, outbound_changes.c.changes)
            .join(outbound_changes, outbound_changes.c.id == outbound_deliveries.c.change_id)
            .where(outbound_deliveries.c.person_id == person_id)
            .order_by(outbound_deliveries.c.id)).mappings().all()
    return [dict(r) for r in rows]


def test_a_correction_that_moves_responsibility_is_queued_for_partners(hub: Hub) -> None:
    person_id = kept(hub, 41, date(2026, 3, 2), date(2026, 4, 1), confirm=False,
                     residence="E10000034")
    sweep(hub.engine, hub.clock, hub.policy)  # the detectors raise the worklist
    _subscribe(hub)
    before = len(_deliveries(hub, person_id))
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        exceptions = owner.get("/api/v1/exceptions",
                               params={"kind": "missed-entitlement"}).json()["items"]
        assert exceptions, "the unconfirmed discharge raised a missed-entitlement exception"
        response = owner.post(f"/api/v1/exceptions/{exceptions[0]['id']}/resolve", json={
            "decision": "corrected", "reason": "moved before detention, council agreed",
            "apply": {"type": "ordinary-residence.changed", "council_code": "E10000011",
                      "date": "2025-12-01"}})
        assert response.status_code == 200, response.text
    new = _deliveries(hub, person_id)[before:]
    assert len(new) == 1
    [delivery] = new
    assert delivery["subscription_id"] == "council-a"
    assert {"field": "entitlement.responsible_council", "old": "E10000034",
            "new": "E10000011"} in delivery["changes"]
    received = delivery["received_at"]
    received = received if received.tzinfo else received.replace(tzinfo=UTC)
    assert received == hub.clock.now()
    assert delivery["due_at"].date() == add_working_days(hub.clock.today(), 5)


def test_a_dismissal_changes_nothing_and_queues_nothing(hub: Hub) -> None:
    person_id = kept(hub, 42, date(2026, 3, 2), date(2026, 4, 1), confirm=False)
    sweep(hub.engine, hub.clock, hub.policy)
    _subscribe(hub)
    before = len(_deliveries(hub, person_id))
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        [item] = owner.get("/api/v1/exceptions",
                           params={"kind": "missed-entitlement"}).json()["items"]
        assert owner.post(f"/api/v1/exceptions/{item['id']}/dismiss",
                          json={"reason": "known to the council"}).status_code == 200
    assert len(_deliveries(hub, person_id)) == before


def _on_cto_until(hub: Hub, serial: int, cto_end: date) -> str:
    person_id = kept(hub, serial, date(2026, 1, 5), date(2026, 3, 2))
    apply(hub, RecordLegalStatusChanged(
        person=ref(serial), provenance=prov("trust-a", f"{serial}-cto", date(2026, 3, 2)),
        event="cto-start", date=date(2026, 3, 2), section="17", end=cto_end,
        episode_ref=f"V{serial}"))
    return person_id


def test_the_sweep_queues_a_cto_ending_with_time_alone(hub: Hub, clock: FixedClock) -> None:
    person_id = _on_cto_until(hub, 43, cto_end=date(2026, 6, 10))
    _subscribe(hub)
    before = len(_deliveries(hub, person_id))
    clock.at = datetime(2026, 6, 15, 2, 0, tzinfo=UTC)  # the CTO's end has passed
    report = sweep(hub.engine, clock, hub.policy, on_change=enqueue_on_change(clock.now))
    assert report.fields_changed["entitlement.on_cto"] == 1
    [delivery] = _deliveries(hub, person_id)[before:]
    assert {"field": "entitlement.on_cto", "old": "True", "new": "False"} in delivery["changes"]
    assert delivery["due_at"].date() == add_working_days(date(2026, 6, 15), 5)
    # A second sweep finds nothing new to say.
    sweep(hub.engine, clock, hub.policy, on_change=enqueue_on_change(clock.now))
    assert len(_deliveries(hub, person_id)) == before + 1


def test_the_reconcile_command_queues_what_it_changes(hub: Hub, database_url: str) -> None:
    person_id = _on_cto_until(hub, 44, cto_end=date(2026, 6, 10))
    _subscribe(hub)
    before = len(_deliveries(hub, person_id))
    later = FixedClock(datetime(2026, 6, 16, 1, 0, tzinfo=UTC))
    assert run(["--no-progress"], Settings(database_url=database_url), clock=later) == 0
    [delivery] = _deliveries(hub, person_id)[before:]
    assert {"field": "entitlement.on_cto", "old": "True", "new": "False"} in delivery["changes"]


def test_the_serving_process_sweeps_the_register_and_hints_delivery(
        hub: Hub, clock: FixedClock) -> None:
    person_id = _on_cto_until(hub, 45, cto_end=date(2026, 6, 10))
    _subscribe(hub)
    hinted: list[object] = []
    hub.outbound.hint = lambda ids=None: hinted.append(ids)  # type: ignore[method-assign]
    before = len(_deliveries(hub, person_id))
    clock.at = datetime(2026, 6, 12, 3, 0, tzinfo=UTC)
    sweeper = RegisterSweeper(hub, interval=3600, first_after=0.0)
    report = sweeper.run_once()
    assert report.people >= 1 and report.fields_changed["entitlement.on_cto"] == 1
    assert len(_deliveries(hub, person_id)) == before + 1
    assert hinted == [None]
    # The thread runs a sweep soon after start and stops when asked.
    sweeper.start()
    sweeper.stop()
    sweeper.join(10)
    assert not sweeper.is_alive()
