"""Times in the register's JSON are UTC with their offset on either database."""

from __future__ import annotations

from sqlalchemy import select

from register_core.adapters.tables import inbox_messages
from register_core.services.inbound import drain
from register_core.views import person_json
from s117hub.bootstrap import Hub

from .identity_people import detention, store_commands, trust_ref


def test_the_register_record_gives_times_in_utc_on_either_database(hub: Hub) -> None:
    """SQLite hands date-times back without an offset: the record said ``…T09:00:00`` there
    and ``…T09:00:00+00:00`` on PostgreSQL (concurrency audit)."""
    store_commands(hub.engine, [detention(trust_ref(630), msg="adt-0")])
    drain(hub.engine, lambda entry: [], hub.clock, hub.policy)
    with hub.engine.connect() as conn:
        (person_id,) = conn.execute(select(inbox_messages.c.person_ids)).scalar_one()
        record = person_json(conn, person_id, hub.clock.today(), hub.policy)
    assert record is not None
    times = [p["received_at"] for p in record["provenance"]]
    times += [e["raised"] for e in record["open_exceptions"]]
    assert record["open_exceptions"] and times
    assert all(t.endswith("+00:00") for t in times), times
