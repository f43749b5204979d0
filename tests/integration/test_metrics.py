"""``GET /metrics`` on the real databases, parsed with prometheus_client's own parser.

The inbox rows are stored through the inbox adapter as the listeners store them (HL7 rows
with the ACK text that was sent, council rows without one); the outbox rows come from real
status changes (``record_command`` with the outbox, tests/unit/outbound/support.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from register_core.adapters import outbox
from register_core.adapters.inbox import store_message
from register_core.adapters.security import TokenStore
from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import FixedClock
from register_core.services.reconcile import sweep
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from tests.unit.outbound.support import apply, story, sub

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
RECEIVED = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)  # due 2026-05-28 10:00


def _ack(code: str, control_id: str) -> str:
    return (f"MSH|^~\\&|S117HUB|HUB|PAS|RX1|20260601090000||ACK^A01|A{control_id}|P|2.4\r"
            f"MSA|{code}|{control_id}\r")


def _store_inbox(engine: Engine, clock: FixedClock) -> None:
    hour_ago = clock.now() - timedelta(hours=1)
    rows = [  # (source, channel, status, ack, received)
        ("trust-a", "mllp", "received", _ack("AA", "M1"), hour_ago),
        ("trust-a", "mllp", "received", _ack("AA", "M2"), clock.now() - timedelta(minutes=5)),
        ("trust-a", "mllp", "applied", _ack("AA", "M3"), hour_ago),
        ("trust-a", "mllp", "failed", _ack("AE", "M4"), hour_ago),
        ("unknown-sender", "mllp", "rejected", _ack("AR", "M5"), hour_ago),
        ("council-x", "council-rest", "applied", None, hour_ago),
        ("council-x", "council-rest", "failed", None, hour_ago),
        ("council-x", "council-rest", "rejected", None, hour_ago),
    ]
    with engine.begin() as conn:
        for n, (source, channel, status, ack, received) in enumerate(rows):
            store_message(conn, source=source, message_id=f"M{n + 1}", channel=channel,
                          message_type="ADT^A01" if channel == "mllp" else "event",
                          payload="synthetic", received_at=received, status=status, ack=ack)


def _build_outbox(hub: Hub) -> None:
    SubscriptionRegistry(hub.engine).save(
        sub("trust-fhir", "fhir-r4", "http://127.0.0.1:9/fhir"), hub.clock.now())
    for n in (1, 2, 3):
        for command in story(n, end=False):
            apply(hub.engine, hub.clock, command, received_at=RECEIVED)
    with hub.engine.begin() as conn:
        claimed = outbox.claim(conn, "trust-fhir", now=hub.clock.now(),
                               lease_until=hub.clock.now() + timedelta(hours=1), limit=2)
        for delivered_at, delivery in zip((datetime(2026, 5, 21, tzinfo=UTC),
                                           datetime(2026, 5, 29, tzinfo=UTC)), claimed,
                                          strict=True):
            outbox.record(conn, [outbox.Result(id=delivery.id, claim=delivery.claim,
                                               status="delivered")], delivered_at)


@pytest.fixture
def scrape(hub: Hub, clock: FixedClock) -> Iterator[TestClient]:
    _store_inbox(hub.engine, clock)
    _build_outbox(hub)
    sweep(hub.engine, hub.clock, hub.policy)
    _id, token = TokenStore(hub.engine).create("integration-engineer")
    with TestClient(create_app(hub), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _samples(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return _samples(response.text)


def test_inbox_depth_and_oldest_age_per_source_and_status(scrape: TestClient) -> None:
    samples = _scrape(scrape)
    assert _value(samples, "s117hub_inbox_messages", source="trust-a", status="received") == 2
    assert _value(samples, "s117hub_inbox_messages", source="council-x", status="failed") == 1
    assert _value(samples, "s117hub_inbox_oldest_age_seconds", source="trust-a",
                  status="received") == 3600
    assert _value(samples, "s117hub_database_up") == 1


def test_ack_codes_from_the_msa_sent_or_the_status(scrape: TestClient) -> None:
    samples = _scrape(scrape)
    assert _value(samples, "s117hub_inbox_acks", channel="mllp", code="AA", basis="msa") == 3
    assert _value(samples, "s117hub_inbox_acks", channel="mllp", code="AE", basis="msa") == 1
    assert _value(samples, "s117hub_inbox_acks", channel="mllp", code="AR", basis="msa") == 1
    for code in ("AA", "AE", "AR"):
        assert _value(samples, "s117hub_inbox_acks", channel="council-rest", code=code,
                      basis="status") == 1


def test_outbox_depth_deliveries_and_sla_breaches(scrape: TestClient, hub: Hub) -> None:
    samples = _scrape(scrape)
    by_status = {dict(labels)["status"]: value for (name, labels), value in samples.items()
                 if name == "s117hub_outbox_deliveries"}
    total = sum(by_status.values())
    assert total >= 3 and by_status["delivered"] == 2
    assert _value(samples, "s117hub_outbox_delivered", subscription="trust-fhir",
                  sla="within") == 1
    assert _value(samples, "s117hub_outbox_delivered", subscription="trust-fhir",
                  sla="late") == 1
    # Every notice arrived 2026-05-20 and was due 2026-05-28; the clock says 2026-06-01.
    assert _value(samples, "s117hub_sla_breaches_open", subscription="trust-fhir") == total - 2
    assert _value(samples, "s117hub_sla_breaches_recorded", subscription="trust-fhir") == 0
    assert _value(samples, "s117hub_outbox_oldest_age_seconds", subscription="trust-fhir",
                  status="delivered") >= 0


def test_exceptions_by_kind_and_status_and_process_metrics(scrape: TestClient) -> None:
    samples = _scrape(scrape)
    exceptions = {dict(labels)["kind"] for (name, labels), _ in samples.items()
                  if name == "s117hub_exceptions"}
    assert "missed-entitlement" in exceptions
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)
    assert any(name.startswith("python_gc_") for name, _ in samples)


def test_figures_are_read_at_scrape_time(scrape: TestClient, hub: Hub,
                                         clock: FixedClock) -> None:
    before = _value(_scrape(scrape), "s117hub_inbox_messages", source="trust-a",
                    status="received")
    with hub.engine.begin() as conn:
        store_message(conn, source="trust-a", message_id="late-arrival", channel="mllp",
                      message_type="ADT^A08", payload="synthetic", received_at=clock.now(),
                      ack=_ack("AA", "late-arrival"))
    after = _value(_scrape(scrape), "s117hub_inbox_messages", source="trust-a",
                   status="received")
    assert after == before + 1


def test_no_nhs_number_in_any_label(scrape: TestClient) -> None:
    text = scrape.get("/metrics").text
    assert all(make_synthetic(n) not in text for n in (1, 2, 3))
    assert "Testfamily" not in text


@pytest.mark.parametrize("role, status", [("auditor", 200), ("register-owner", 403),
                                          ("source-system", 403)])
def test_engineers_and_auditors_only(hub: Hub, role: str, status: int) -> None:
    _id, token = TokenStore(hub.engine).create(role, source="trust-a"
                                               if role == "source-system" else None)
    with TestClient(create_app(hub)) as client:
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
