"""Register changes for outbound tests, made the way the inbound worker will make them:
``record_command`` and ``enqueue_status_changes`` in one unit of work, then commit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, select

from register_core.adapters.subscriptions import SubscriptionDefinition
from register_core.adapters.tables import outbound_deliveries
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordOrdinaryResidenceChanged,
    RecordS117Ended,
    Signoff,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.domain.position import Policy
from register_core.ports import Clock
from register_core.services.handlers import Applied, record_command
from register_core.services.outbound import enqueue_status_changes

COUNCIL = "E10000034"


def story(n: int, council: str = COUNCIL, *, end: bool = True) -> list[Command]:
    """Four status changes for person ``n``: pending, council set, active, ended."""
    local = f"RX1-{n:06d}"
    def p(ref: str, on: date = date(2026, 5, 20)) -> Provenance:
        return Provenance(source="trust-a", source_ref=f"{local}-{ref}",
                          received_at=datetime(on.year, on.month, on.day, 10, tzinfo=UTC))

    person = PersonRef(nhs_number=make_synthetic(n), local_id=local, family_name="Testfamily",
                       given_name="Robin", birth_date=date(1980, 2, 2))
    commands: list[Command] = [
        RecordDetentionStarted(person=person, provenance=p("admit"), section="03",
                               start=date(2026, 1, 5), episode_ref=f"{local}-V1"),
        RecordOrdinaryResidenceChanged(person=PersonRef(local_id=local), provenance=p("or"),
                                       council_code=council, date=date(2020, 1, 1)),
        RecordLeftHospital(person=PersonRef(local_id=local), provenance=p("left"),
                           date=date(2026, 3, 1), episode_ref=f"{local}-V1"),
    ]
    if end:
        commands.append(RecordS117Ended(
            person=PersonRef(local_id=local), provenance=p("end"), date=date(2026, 5, 20),
            reason="needs met after joint review",
            council_signoff=Signoff(by="council-lead", date=date(2026, 5, 20)),
            icb_signoff=Signoff(by="icb-lead", date=date(2026, 5, 20))))
    return commands


def apply(engine: Engine, clock: Clock, command: Command, *,
          received_at: datetime | None = None, policy: Policy | None = None,
          subscriptions: list[SubscriptionDefinition] | None = None,
          fail: bool = False) -> tuple[Applied, list[int]]:
    """Record one command and queue its deliveries in the same transaction."""
    with SqlUnitOfWork(engine) as uow:
        applied = record_command(command, uow, clock, policy)
        ids = enqueue_status_changes(uow.connection, applied, received_at or clock.now(),
                                     clock.now(), subscriptions=subscriptions)
        if fail:
            raise RuntimeError("the unit of work fails after queueing")
        uow.commit()
    return applied, ids


def sub(subscription_id: str, kind: str, endpoint: str, **extra: Any
        ) -> SubscriptionDefinition:
    return SubscriptionDefinition.model_validate(
        {"subscription_id": subscription_id, "kind": kind, "endpoint": endpoint, **extra})


FAST_RETRY = {"max_attempts": 30, "min_backoff_seconds": 0.02, "max_backoff_seconds": 0.2,
              "timeout_seconds": 0.5}


def key_to_change(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbound_deliveries.c.idempotency_key,
                                   outbound_deliveries.c.change_id)).all()
    return {k: c for k, c in rows}
