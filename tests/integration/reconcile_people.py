"""People for the reconciliation, exceptions and disputes tests, made through the one write
path (``apply_command``). Synthetic data only: NHS numbers from the 999 test range, invented
names. Each source's messages are received on the day of the event unless told otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta

from connectors.hl7v2.receiver import Hl7Receiver
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordAftercarePlanAgreed,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordOrdinaryResidenceChanged,
    RecordS117Confirmed,
    RecordS117Ended,
    SetNamedPractitioner,
    Signoff,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.services.handlers import apply_command
from s117hub.api.app import create_app
from s117hub.api.routes_exceptions import router
from s117hub.bootstrap import Hub
from s117hub.harness import synthetic_adt

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def at(day: date) -> datetime:
    return datetime.combine(day, time(9), tzinfo=UTC)


def ref(serial: int, *, with_nhs: bool = True) -> PersonRef:
    return PersonRef(nhs_number=make_synthetic(serial) if with_nhs else None,
                     local_id=f"RX1-{serial:05d}", family_name="Testfamily",
                     given_name="Robin", birth_date=date(1980, 2, 2) + timedelta(days=serial))


def prov(source: str, ref_: str, day: date) -> Provenance:
    return Provenance(source=source, source_ref=ref_, received_at=at(day))


def apply(hub: Hub, command: Command) -> str:
    with hub.uow() as uow:
        return apply_command(command, uow, hub.clock, hub.policy).person_id


def admit(hub: Hub, serial: int, start: date, *, with_nhs: bool = True,
          end: date | None = None) -> str:
    person = ref(serial, with_nhs=with_nhs)
    return apply(hub, RecordDetentionStarted(
        person=person, provenance=prov("trust-a", f"{serial}-admit", start), section="03",
        start=start, episode_ref=f"V{serial}", end=end))


def discharge(hub: Hub, serial: int, left: date, *, with_nhs: bool = True) -> str:
    return apply(hub, RecordLeftHospital(
        person=PersonRef(local_id=ref(serial, with_nhs=with_nhs).local_id),
        provenance=prov("trust-a", f"{serial}-left", left), date=left, episode_ref=f"V{serial}"))


def council(hub: Hub, serial: int, command_type: type[Command], day: date,
            **fields: object) -> str:
    """A council event about the person (found by NHS number)."""
    return apply(hub, command_type(  # type: ignore[call-arg]
        person=PersonRef(nhs_number=make_synthetic(serial)),
        provenance=prov("council-a", f"{serial}-{command_type.kind}-{day}", day), **fields))


def kept(hub: Hub, serial: int, start: date, left: date, *, confirm: bool = True,
         residence: str | None = None) -> str:
    """Detained, named practitioner and plan recorded, discharged and (by default) confirmed."""
    if residence:
        apply(hub, RecordOrdinaryResidenceChanged(
            person=ref(serial), provenance=prov("council-a", f"{serial}-or", date(2020, 1, 1)),
            council_code=residence, date=date(2020, 1, 1)))
    person_id = admit(hub, serial, start)
    council(hub, serial, SetNamedPractitioner, start, name="Worker Seventeen", date=start)
    council(hub, serial, RecordAftercarePlanAgreed, left, date=left)
    discharge(hub, serial, left)
    if confirm:
        council(hub, serial, RecordS117Confirmed, left, start=left)
    return person_id


def hl7_admitted_and_discharged(hub: Hub) -> None:
    """Trust A's EPR sends an A01 (5 January) and an A03 (1 March) over the HL7 receiver, as
    a partner would; the worker has not run yet."""
    hub.sources.save(SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                                      hl7_sending_application="EPR",
                                      hl7_sending_facility="RX1"), hub.clock.now())
    receiver = Hl7Receiver(hub.engine, hub.sources, hub.clock, lambda _p: None)
    for trigger, control, when in (("A01", "M1", "20260105093000"),
                                   ("A03", "M2", "20260301100000")):
        assert b"MSA|AA|" in receiver.handle(
            synthetic_adt(trigger, control, "9990000018", "RX1-1", when)).ack


def end_by_council_alone(hub: Hub, serial: int, day: date) -> str:
    return council(hub, serial, RecordS117Ended, day, date=day, reason="needs met",
                   council_signoff=Signoff(by="council-lead", date=day), icb_signoff=None)


@contextmanager
def client_for(hub: Hub, role: Role, source: str | None = None) -> Iterator[TestClient]:
    """An API client with a token of ``role``; the issue 4 router included as the lead will."""
    _token_id, token = TokenStore(hub.engine).create(role, source=source)
    app = create_app(hub)
    app.include_router(router)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        client.token_id = _token_id  # type: ignore[attr-defined]
        yield client
