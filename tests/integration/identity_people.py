"""People and messages for the identity tests: a trust registers someone with an NHS number,
a council then sends the same person (or a look-alike) without one. Synthetic data only:
NHS numbers from the 999 test range, invented names."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, select

from register_core.adapters import inbox
from register_core.adapters.tables import (
    person_blocking_keys,
    person_identifiers,
    persons,
    register_exceptions,
)
from register_core.domain.codec import to_json
from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordOrdinaryResidenceChanged,
    RecordS117Confirmed,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.services.handlers import Applied, apply_command
from s117hub.bootstrap import Hub

TRUST, COUNCIL = "trust-a", "council-a"
BIRTH = date(1984, 7, 19)


def at(day: date) -> datetime:
    return datetime.combine(day, time(9), tzinfo=UTC)


def trust_ref(serial: int = 701, **changes: Any) -> PersonRef:
    base = PersonRef(nhs_number=make_synthetic(serial), nhs_number_verified=True,
                     local_id=f"RX1-{serial}", family_name="Thornley", given_name="Amelia",
                     birth_date=BIRTH, sex="female", postcode="LS6 2AB",
                     gp_practice_ods="B86001")
    return replace(base, **changes)


def council_ref(local_id: str = "C-701", **changes: Any) -> PersonRef:
    """The council's view: no NHS number, its own identifier, the same demographics."""
    base = PersonRef(local_id=local_id, family_name="Thornley", given_name="Amelia",
                     birth_date=BIRTH, postcode="LS6 2AB")
    return replace(base, **changes)


# A council clerk's slips: one letter of the surname, the day of birth; no postcode.
TYPO = {"family_name": "Thornly", "birth_date": date(1984, 7, 18), "postcode": None,
        "sex": "female", "gp_practice_ods": "B86001"}


def detention(ref: PersonRef, start: date = date(2026, 1, 5), *, msg: str = "adt-1"
              ) -> RecordDetentionStarted:
    return RecordDetentionStarted(
        person=ref, provenance=Provenance(source=TRUST, source_ref=msg, received_at=at(start)),
        section="03", start=start, episode_ref=f"{ref.local_id}-V1", provider_ods="RX1")


def left_hospital(ref: PersonRef, day: date = date(2026, 3, 2), *, msg: str = "adt-2"
                  ) -> RecordLeftHospital:
    return RecordLeftHospital(
        person=ref, provenance=Provenance(source=TRUST, source_ref=msg, received_at=at(day)),
        date=day, episode_ref=f"{ref.local_id}-V1")


def residence(ref: PersonRef, day: date = date(2025, 12, 1), *, msg: str = "ev-1"
              ) -> RecordOrdinaryResidenceChanged:
    return RecordOrdinaryResidenceChanged(
        person=ref, provenance=Provenance(source=COUNCIL, source_ref=msg,
                                          received_at=at(date(2026, 3, 3))),
        council_code="E08000035", date=day)


def confirmed(ref: PersonRef, day: date = date(2026, 3, 2), *, msg: str = "ev-2"
              ) -> RecordS117Confirmed:
    return RecordS117Confirmed(
        person=ref, provenance=Provenance(source=COUNCIL, source_ref=msg,
                                          received_at=at(date(2026, 3, 4))),
        start=day)


def apply(hub: Hub, command: Command) -> Applied:
    with hub.uow() as uow:
        return apply_command(command, uow, hub.clock, hub.policy)


def person_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(persons.c.id).order_by(persons.c.id)).scalars())


def identifiers_of(engine: Engine, person_id: str) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {(r.source, r.value) for r in conn.execute(
            select(person_identifiers.c.source, person_identifiers.c.value)
            .where(person_identifiers.c.person_id == person_id))}


def keys_of(engine: Engine, person_id: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(person_blocking_keys.c.key).where(
            person_blocking_keys.c.person_id == person_id)).scalars())


def identity_exceptions(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(register_exceptions).where(register_exceptions.c.kind
                                              == "identity-uncertain")
            .order_by(register_exceptions.c.raised, register_exceptions.c.id)).mappings()]


def store_commands(engine: Engine, commands: list[Command]) -> list[int]:
    """Inbox rows already mapped (as the receivers store them), for the worker's batch."""
    ids = []
    with engine.begin() as conn:
        for n, command in enumerate(commands):
            stored = inbox.store_message(
                conn, source=command.provenance.source, message_id=f"m-{n}",
                channel="council-rest", message_type=command.kind, payload="{}",
                received_at=command.provenance.received_at,
                commands=[[command.kind, to_json(command)]])
            ids.append(stored.id)
    return ids
