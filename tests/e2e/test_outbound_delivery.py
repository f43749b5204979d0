"""Outbound delivery against real partner servers on loopback, through the dramatiq worker.

The partners answer slowly, fail with 500/503/429, hang up, reply AE, then recover: every
change still arrives, once per idempotency key, in order per person. A 400 is final and
kept. A delivery blocked past five working days is a breach (a FixedClock moved forward).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connectors.outbound.actors import OutboundSweeper, OutboundTasks, register_outbound_actors
from connectors.outbound.settings import OutboundSettings
from register_core.adapters import outbox
from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.adapters.tables import delivery_alerts, outbound_deliveries, register_exceptions
from register_core.ports import FixedClock, SystemClock
from s117hub.bootstrap import Hub
from s117hub.worker import build_broker, start_worker
from tests.unit.outbound.partners import Act, HttpPartner, MllpPartner, always, sequence
from tests.unit.outbound.support import FAST_RETRY, apply, key_to_change, story, sub

TOKEN = "partner-token-1"


@dataclass
class Running:
    hub: Hub
    tasks: OutboundTasks
    registry: SubscriptionRegistry
    clock: SystemClock

    def wait_settled(self, timeout: float = 60.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = self.counts()
            if not {"pending", "sending", "retrying"} & counts.keys():
                return counts
            time.sleep(0.1)
        raise AssertionError(f"deliveries not settled: {self.counts()}")

    def counts(self) -> dict[str, int]:
        with self.hub.engine.connect() as conn:
            rows = conn.execute(select(outbound_deliveries.c.status)).scalars().all()
        return {s: rows.count(s) for s in set(rows)}


@pytest.fixture
def running(hub: Hub) -> Iterator[Running]:
    clock = SystemClock()
    registry = SubscriptionRegistry(hub.engine, ttl_seconds=0.2)
    settings = OutboundSettings(sweep_interval_seconds=0.3, batch_size=8, lease_seconds=5,
                                max_delay_hint_seconds=5)
    # Its own broker: the hub's already carries the default outbound actors (bootstrap).
    broker = build_broker("stub://")
    tasks = register_outbound_actors(broker, hub.engine, clock, registry=registry,
                                     settings=settings)
    worker = start_worker(broker, threads=4)
    sweeper = OutboundSweeper(tasks)
    sweeper.start()
    yield Running(hub, tasks, registry, clock)
    sweeper.stop()
    worker.stop()
    tasks.close()


def _flaky(every: int, act: Act) -> object:
    return lambda n, key: act if n % every == every - 1 else Act()


def test_every_change_arrives_once_in_order_despite_misbehaving_partners(
        running: Running) -> None:
    fhir_script = sequence(
        Act(status=500), Act(status=503), Act(status=429, headers=(("Retry-After", "1"),)),
        Act(drop=True, apply=False), Act(delay=1.0),  # the slow one is applied, then times out
        then=Act())
    fhir_flaky = _flaky(7, Act(status=503))

    def fhir(n: int, key: str) -> Act:
        return fhir_script(n, key) if n < 5 else fhir_flaky(n, key)  # type: ignore[operator]

    mllp_script = sequence(Act(status=500, body="busy"), Act(status=500),
                           Act(drop=True, apply=False), Act(delay=1.0), then=Act())
    mllp_flaky = _flaky(6, Act(status=500))

    def mllp(n: int, key: str) -> Act:
        return mllp_script(n, key) if n < 4 else mllp_flaky(n, key)  # type: ignore[operator]

    council_flaky = _flaky(5, Act(status=500))
    with HttpPartner(fhir) as trust, HttpPartner(
            lambda n, k: council_flaky(n, k) if n % 3 else Act(delay=0.05)  # type: ignore
            ) as council, MllpPartner(mllp) as pas:
        now = running.clock.now()
        for s in (sub("trust-fhir", "fhir-r4", f"{trust.url}/fhir", retry=FAST_RETRY,
                      credentials={"bearer_token": TOKEN},
                      changes={"fields": ["entitlement.status"]}),
                  sub("council-x", "council-rest", f"{council.url}/s117/changes",
                      retry=FAST_RETRY, changes={"councils": ["E10000034"]}),
                  sub("trust-pas", "hl7v2-mllp", pas.endpoint, retry=FAST_RETRY,
                      hl7={"receiving_application": "PAS", "receiving_facility": "RX2"})):
            running.registry.save(s, now)
        commands = [story(n) for n in range(1, 9)]
        for step in range(4):  # interleave people, as real traffic does
            for person in commands:
                apply(running.hub.engine, running.clock, person[step])
            running.tasks.hint()
        counts = running.wait_settled()
        assert counts == {"delivered": 8 * (3 + 3 + 4)}

        changes = key_to_change(running.hub.engine)
        with running.hub.engine.connect() as conn:
            rows = conn.execute(select(outbound_deliveries.c.subscription_id,
                                       outbound_deliveries.c.idempotency_key,
                                       outbound_deliveries.c.person_id,
                                       outbound_deliveries.c.change_id)).all()
        for name, partner in (("trust-fhir", trust), ("council-x", council),
                              ("trust-pas", pas)):
            mine = [r for r in rows if r.subscription_id == name]
            applied = partner.recorder.keys_applied()
            assert sorted(applied) == sorted(r.idempotency_key for r in mine), name
            assert len(partner.recorder.requests) > len(applied), f"{name}: no retries"
            per_person: dict[str, list[int]] = {}
            for effect in partner.recorder.effects:
                per_person.setdefault(effect.person, []).append(changes[effect.key])
            expected: dict[str, list[int]] = {}
            for r in sorted(mine, key=lambda r: r.change_id):
                expected.setdefault(r.person_id, []).append(r.change_id)
            assert per_person == expected, f"{name}: out of order"

        key, headers, body = trust.recorder.requests[-1]
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["idempotency-key"] == key
        assert headers["path"].startswith("/fhir/EpisodeOfCare?identifier=urn")
        assert body["resourceType"] == "EpisodeOfCare"
        assert "authorization" not in council.recorder.requests[0][1]


def test_a_permanent_400_fails_at_once_with_the_body_kept(running: Running) -> None:
    refusal = '{"error": "unknown-person", "message": "no such NHS number here"}'
    with HttpPartner(sequence(Act(status=400, body=refusal))) as council:
        running.registry.save(sub("council-x", "council-rest", council.url, retry=FAST_RETRY),
                              running.clock.now())
        admit, _, left, _ = story(1)
        apply(running.hub.engine, running.clock, admit)
        apply(running.hub.engine, running.clock, left)
        running.tasks.hint()
        # The dead letter is closed once the later change reaches the partner: it holds a
        # newer state, so the older one is superseded rather than left open to breach.
        assert running.wait_settled() == {"superseded": 1, "delivered": 1}
    with running.hub.engine.connect() as conn:
        failed = conn.execute(select(outbound_deliveries).where(
            outbound_deliveries.c.status == "superseded")).one()
        delivered = conn.execute(select(outbound_deliveries.c.id).where(
            outbound_deliveries.c.status == "delivered")).scalar_one()
    assert failed.superseded_by == delivered > failed.id
    assert failed.attempts == 1 and failed.last_status_code == 400
    assert failed.response_body == refusal
    assert failed.last_error["kind"] == "http"
    assert len(council.recorder.requests) == 2  # the later change was not held up


def test_a_delivery_blocked_past_five_working_days_is_a_breach(hub: Hub) -> None:
    received = datetime(2026, 12, 23, 15, 0, tzinfo=UTC)  # Wednesday before Christmas
    clock = FixedClock(received)
    registry = SubscriptionRegistry(hub.engine)
    alerts_seen: list[dict[str, object]] = []
    with HttpPartner(always(Act(status=503))) as trust, HttpPartner(
            lambda n, k: Act()) as webhook:
        registry.save(sub("trust-fhir", "fhir-r4", trust.url, retry={
            "max_attempts": 3, "min_backoff_seconds": 60, "timeout_seconds": 2}), received)
        settings = OutboundSettings(alert_webhook_url=f"{webhook.url}/alerts",
                                    alert_warning_hours=24)
        tasks = register_outbound_actors(build_broker("stub://"), hub.engine, clock,
                                         registry=registry, settings=settings)
        apply(hub.engine, FixedClock(received), story(1)[0])
        deliverer = tasks.deliverer
        for _ in range(3):  # the three attempts configured are used up …
            deliverer.drain("trust-fhir")
            clock.at += timedelta(hours=2)
        # … but the five working days are not: it keeps trying (at the backoff cap).
        assert deliverer.sweep() == ["trust-fhir"]
        # Working days: Thu 24, Tue 29 (25, 26 and the substitute Monday 28 are not), Wed 30,
        # Thu 31, Fri 1 January is a bank holiday, Mon 4 January: due 15:00 on 4 January.
        clock.at = datetime(2027, 1, 3, 16, 0, tzinfo=UTC)
        deliverer.sweep()
        clock.at = datetime(2027, 1, 4, 14, 59, tzinfo=UTC)
        deliverer.sweep()
        with hub.engine.connect() as conn:
            assert conn.execute(select(register_exceptions)).all() == []
        clock.at = datetime(2027, 1, 4, 15, 1, tzinfo=UTC)
        deliverer.sweep()
        deliverer.sweep()
        with hub.engine.connect() as conn:
            assert conn.execute(select(outbound_deliveries.c.status)).scalar_one() == "retrying"
        deliverer.drain("trust-fhir")  # past due, attempts used up: now the dead letter
        alerts_seen = [p for _, _, p in webhook.recorder.requests]
        tasks.close()
    with hub.engine.connect() as conn:
        [exc] = conn.execute(select(register_exceptions)).all()
        delivery = conn.execute(select(outbound_deliveries)).one()
        recorded = conn.execute(select(delivery_alerts.c.kind, delivery_alerts.c.status_code)
                                .order_by(delivery_alerts.c.id)).all()
    assert delivery.status == "failed" and delivery.attempts == 4
    assert delivery.breach_alerted_at is not None and delivery.alert_retry_at is None
    assert exc.kind == "delivery-sla-breach"
    assert exc.fingerprint == f"delivery-sla-breach:{delivery.id}"
    assert [a["kind"] for a in alerts_seen] == ["delivery-sla-warning", "delivery-sla-breach"]
    assert alerts_seen[1]["exception_id"] == exc.id
    assert alerts_seen[1]["due_at"] == "2027-01-04T15:00:00+00:00"  # UTC, with its offset
    assert alerts_seen[1]["raised_at"] == "2027-01-04T15:01:00+00:00"
    assert [tuple(r) for r in recorded] == [("warning", 200), ("breach", 200)]
    breaches = tasks.metrics.registry.get_sample_value(
        "s117hub_outbound_sla_breaches_total", {"subscription": "trust-fhir"})
    assert breaches == 1.0


def _overdue_delivery(hub: Hub, clock: FixedClock, webhook_url: str,
                      **settings: float) -> OutboundTasks:
    registry = SubscriptionRegistry(hub.engine)
    registry.save(sub("trust-fhir", "fhir-r4", "http://127.0.0.1:9/fhir"), clock.now())
    tasks = register_outbound_actors(
        build_broker("stub://"), hub.engine, clock, registry=registry,
        settings=OutboundSettings(alert_webhook_url=webhook_url, alert_timeout_seconds=2,
                                  **settings))
    apply(hub.engine, clock, story(1)[0], received_at=clock.now() - timedelta(days=12))
    return tasks


def _delivery(hub: Hub) -> Any:
    with hub.engine.connect() as conn:
        return conn.execute(select(outbound_deliveries)).one()


def test_a_breach_alert_the_webhook_refused_is_sent_again_once_it_is_back(hub: Hub) -> None:
    """503, then a dropped connection, then the webhook is back: the third try is accepted
    and marked; the breach itself (breached_at, the exception) was recorded once, at once."""
    at = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)
    clock = FixedClock(at)
    script = sequence(Act(status=503), Act(drop=True, apply=False), then=Act())
    with HttpPartner(script) as webhook:
        tasks = _overdue_delivery(hub, clock, f"{webhook.url}/alerts")
        deliverer = tasks.deliverer
        deliverer.sweep()  # the breach: recorded, the alert refused (503)
        first = _delivery(hub)
        assert outbox.aware(first.breached_at) == at and first.breach_alerted_at is None
        assert outbox.aware(first.alert_retry_at) == at + timedelta(seconds=10)
        clock.at = at + timedelta(seconds=5)
        deliverer.sweep()  # not yet: the next try is 10 s after the first
        assert len(webhook.recorder.requests) == 1
        clock.at = at + timedelta(seconds=10)
        deliverer.sweep()  # the connection is dropped
        assert len(webhook.recorder.requests) == 2
        assert _delivery(hub).breach_alerted_at is None
        clock.at = at + timedelta(seconds=15)
        deliverer.sweep()  # tries double apart: the next at 20 s
        assert len(webhook.recorder.requests) == 2
        clock.at = at + timedelta(seconds=20)
        deliverer.sweep()  # the webhook is back: accepted
        for minutes in (1, 10, 60):
            clock.at = at + timedelta(minutes=minutes)
            deliverer.sweep()
        payloads = [p for _, _, p in webhook.recorder.requests]
        tasks.close()
    done = _delivery(hub)
    with hub.engine.connect() as conn:
        [exc] = conn.execute(select(register_exceptions)).all()
        recorded = conn.execute(select(delivery_alerts.c.kind, delivery_alerts.c.status_code)
                                .order_by(delivery_alerts.c.id)).all()
    assert len(payloads) == 3  # sent once more than the two refusals, then never again
    assert all(p == payloads[0] for p in payloads)  # the same alert: raised at the breach
    assert payloads[0]["kind"] == "delivery-sla-breach" and payloads[0]["exception_id"] == exc.id
    assert payloads[0]["raised_at"] == at.isoformat()
    assert outbox.aware(done.breach_alerted_at) == at + timedelta(seconds=20)
    assert outbox.aware(done.breached_at) == at and done.alert_retry_at is None
    assert [tuple(r) for r in recorded] == [("breach", 503), ("breach", None),
                                            ("breach", 200)]
    sent = tasks.metrics.registry.get_sample_value(
        "s117hub_outbound_alerts_total", {"kind": "delivery-sla-breach", "result": "sent"})
    assert sent == 1.0


def test_an_alert_to_a_webhook_that_stays_down_is_tried_ever_less_then_given_up(
        hub: Hub) -> None:
    at = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)
    clock = FixedClock(at)
    with HttpPartner(always(Act(status=503))) as webhook:
        tasks = _overdue_delivery(hub, clock, f"{webhook.url}/alerts",
                                  alert_retry_max_seconds=600, alert_retry_hours=2)
        for second in range(0, 3 * 3600, 60):  # a sweep a minute for three hours
            clock.at = at + timedelta(seconds=second)
            tasks.deliverer.sweep()
        tries = len(webhook.recorder.requests)
        tasks.close()
    # 0, 1, 2, 4, 8 min, then every 10 min until given up after two hours.
    assert 14 <= tries <= 18
    done = _delivery(hub)
    assert done.breach_alerted_at is None and done.alert_retry_at is None
    assert done.breached_at is not None
