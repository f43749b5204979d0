"""The whole write path: an HL7 discharge applied by the worker writes, in the same
transaction, one outbound delivery per subscriber, due five England working days after the
hub received the message (issue 5, joint policy 19.6)."""

from __future__ import annotations

from sqlalchemy import select

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.subscriptions import SubscriptionDefinition
from register_core.adapters.tables import outbound_deliveries
from register_core.domain.calendar import add_working_days
from register_core.services.inbound import drain
from s117hub.bootstrap import Hub
from s117hub.harness import synthetic_adt

NHS = "9990000018"


def test_status_change_from_hl7_is_queued_for_each_subscriber(hub: Hub) -> None:
    now = hub.clock.now()
    hub.sources.save(SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                                      hl7_sending_application="EPR",
                                      hl7_sending_facility="RX1"), now)
    for sub_id, kind, endpoint in (("council-a", "council-rest", "http://127.0.0.1:9/s117"),
                                   ("trust-fhir", "fhir-r4", "http://127.0.0.1:9/fhir")):
        hub.subscriptions.save(SubscriptionDefinition(subscription_id=sub_id, kind=kind,
                                                      endpoint=endpoint), now)
    receiver = Hl7Receiver(hub.engine, hub.sources, hub.clock, lambda _p: None)
    for trigger, control, when in (("A01", "M1", "20260105093000"),
                                   ("A03", "M2", "20260301100000")):
        ack = receiver.handle(synthetic_adt(trigger, control, NHS, "RX1-1", when))
        assert b"MSA|AA|" in ack.ack
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        rows = conn.execute(select(outbound_deliveries)).mappings().all()
    # Admission (none -> pending) and discharge (pending -> active): two changes, two
    # subscribers each.
    assert sorted(r["subscription_id"] for r in rows) == [
        "council-a", "council-a", "trust-fhir", "trust-fhir"]
    due = add_working_days(now.date(), 5)
    assert {r["due_at"].date() for r in rows} == {due}
