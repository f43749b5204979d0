"""A row the worker is about to apply may be locked for a moment by someone else: the
listener counting a resend of it (``resent + 1``), a replay. The worker waits for it and
never skips it: skipping (``SKIP LOCKED``) applied the person's next message first — an A11
before the A01 it cancels, leaving the cancelled detention on the register (found by a
concurrency audit with resends over MLLP, two workers, PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, select, update

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.tables import inbox_messages
from register_core.services.inbound import drain
from register_core.views import people_by_nhs_number, person_json
from s117hub.bootstrap import Hub
from tests.integration.test_hl7_cancellations import NHS, admit, cancel_admit
from tests.integration.test_inbound_batch import TRUST_A

pytestmark = pytest.mark.postgres


def test_a_row_locked_by_a_resend_is_waited_for_not_skipped(hub: Hub, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite has one writer)")
    hub.sources.save(TRUST_A, hub.clock.now())
    receiver = Hl7Receiver(engine, hub.sources, hub.clock, lambda _: None)
    receiver.handle(admit().encode())
    receiver.handle(cancel_admit().encode())
    with engine.connect() as conn:
        first_id = min(conn.execute(select(inbox_messages.c.id)).scalars())
    resend = engine.connect()
    resend.begin()
    resend.execute(update(inbox_messages).where(inbox_messages.c.id == first_id)
                   .values(resent=inbox_messages.c.resent + 1))  # held, as a group commit does
    worker = threading.Thread(target=drain, args=(engine, make_mapper(hub.sources),
                                                  hub.clock, hub.policy))
    worker.start()
    time.sleep(0.5)
    resend.commit()
    resend.close()
    worker.join(30)
    assert not worker.is_alive()
    with engine.connect() as conn:
        statuses = set(conn.execute(select(inbox_messages.c.status)).scalars())
        (person_id,) = people_by_nhs_number(conn, NHS)
        record = person_json(conn, person_id, hub.clock.today(), hub.policy)
    assert statuses == {"applied"}
    assert record is not None
    assert record["detentions"] == []  # the A11 cancelled the A01 it came after
