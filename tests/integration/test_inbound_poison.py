"""A message that fails for no rule's reason — data the database will not store, a fault in
the hub's own code — fails alone: it is marked ``failed`` (kept, replayable) and the messages
behind it are applied. It had failed its whole batch on every retry, holding back its inbox
partition on PostgreSQL and, on SQLite (one drainer of every partition), the whole inbox
(wire audit: a NUL in a name, which PostgreSQL text cannot hold)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from register_core.adapters.tables import inbox_messages
from register_core.domain.commands import Command
from register_core.services import inbound
from register_core.services.inbound import drain
from s117hub.bootstrap import Hub

from .identity_people import detention, store_commands, trust_ref


def stored_outcomes(hub: Hub) -> list[tuple[str, Any]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(select(inbox_messages.c.status, inbox_messages.c.error)
                            .order_by(inbox_messages.c.id)).all()
    return [(row.status, (row.error or {}).get("rule")) for row in rows]


def test_a_fault_applying_one_message_fails_that_message_alone(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = [detention(trust_ref(600 + n), msg=f"adt-{n}") for n in range(3)]
    store_commands(hub.engine, commands)
    real = inbound.record_command

    def faulty(command: Command, *args: Any, **kwargs: Any) -> Any:
        if command.provenance.source_ref == "adt-1":
            raise KeyError("a fault in the hub")
        return real(command, *args, **kwargs)

    monkeypatch.setattr(inbound, "record_command", faulty)
    assert drain(hub.engine, lambda entry: [], hub.clock, hub.policy) == 3
    assert stored_outcomes(hub) == [("applied", None), ("failed", "internal-error"),
                                    ("applied", None)]


def test_a_fault_mapping_one_message_fails_that_message_alone(hub: Hub) -> None:
    ids = store_commands(hub.engine, [detention(trust_ref(610 + n), msg=f"adt-{n}")
                                      for n in range(3)])
    with hub.engine.begin() as conn:  # the second row must be mapped by the worker
        conn.execute(inbox_messages.update().where(inbox_messages.c.id == ids[1])
                     .values(commands=None))

    def mapper(entry: Any) -> list[Command]:
        raise ZeroDivisionError("a fault in mapping")

    drain(hub.engine, mapper, hub.clock, hub.policy)
    assert stored_outcomes(hub) == [("applied", None), ("failed", "internal-error"),
                                    ("applied", None)]


def test_a_value_postgresql_cannot_store_fails_that_message_alone(hub: Hub) -> None:
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores a NUL in text")
    ids = store_commands(hub.engine, [detention(trust_ref(620 + n), msg=f"adt-{n}")
                                      for n in range(3)])
    with hub.engine.begin() as conn:  # mapped by the worker (a row stored before the edges
        conn.execute(inbox_messages.update()  # refused NUL), to a name PostgreSQL refuses
                     .where(inbox_messages.c.id == ids[1]).values(commands=None))
    poisoned = detention(replace(trust_ref(621), family_name="Thorn\x00ley"), msg="adt-1")
    drain(hub.engine, lambda entry: [poisoned], hub.clock, hub.policy)
    assert stored_outcomes(hub) == [("applied", None), ("failed", "internal-error"),
                                    ("applied", None)]
