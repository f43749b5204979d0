"""Detectors run on every register change (issue 4): an HL7 discharge applied by the worker
opens the person's exceptions in the same transaction, without waiting for a sweep."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import register_exceptions
from register_core.services.inbound import drain
from s117hub.bootstrap import Hub
from s117hub.harness import synthetic_adt


def test_applying_a_discharge_opens_the_duty_exceptions(hub: Hub) -> None:
    hub.sources.save(SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                                      hl7_sending_application="EPR",
                                      hl7_sending_facility="RX1"), hub.clock.now())
    receiver = Hl7Receiver(hub.engine, hub.sources, hub.clock, lambda _p: None)
    for trigger, control, when in (("A01", "M1", "20260105093000"),
                                   ("A03", "M2", "20260301100000")):
        assert b"MSA|AA|" in receiver.handle(
            synthetic_adt(trigger, control, "9990000018", "RX1-1", when)).ack
    hub.clock.at += timedelta(days=120)  # discharged 1 March: the 3-month review is overdue
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        kinds = set(conn.execute(select(register_exceptions.c.kind)
                                 .where(register_exceptions.c.status == "open")).scalars())
    # No plan, no practitioner, no partner confirmation and the first review missed
    # (joint policy 7.2, 7.3, 14.1, 19.6).
    assert {"review-overdue", "no-named-practitioner", "no-aftercare-plan",
            "missed-entitlement"} <= kinds
