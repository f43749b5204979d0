"""Detectors run on every register change (issue 4): an HL7 discharge applied by the worker
opens the person's exceptions in the same transaction, without waiting for a sweep."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from connectors.inbound_mapper import make_mapper
from register_core.adapters.tables import register_exceptions
from register_core.services.inbound import drain
from s117hub.bootstrap import Hub

from .reconcile_people import hl7_admitted_and_discharged


def test_applying_a_discharge_opens_the_duty_exceptions(hub: Hub) -> None:
    hl7_admitted_and_discharged(hub)
    hub.clock.at += timedelta(days=120)  # discharged 1 March: the 3-month review is overdue
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        kinds = set(conn.execute(select(register_exceptions.c.kind)
                                 .where(register_exceptions.c.status == "open")).scalars())
    # No plan, no practitioner, no partner confirmation and the first review missed
    # (joint policy 7.2, 7.3, 14.1, 19.6).
    assert {"review-overdue", "no-named-practitioner", "no-aftercare-plan",
            "missed-entitlement"} <= kinds
