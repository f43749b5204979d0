"""Tiny helpers that build canonical commands with synthetic data.

NHS numbers come from ``nhs_number.make_synthetic`` (the 999 test range, never issued);
no names, only synthetic local ids. Every helper takes plain ISO date strings or dates so
scenarios read like the seed documents' examples.
"""

from __future__ import annotations

from datetime import date, datetime, time
from itertools import count

from register_core.domain import nhs_number
from register_core.domain.commands import (
    CancelEvent,
    Command,
    PersonRef,
    Provenance,
    RecordAftercarePlanAgreed,
    RecordChildNotification,
    RecordDetentionStarted,
    RecordDisputeOpened,
    RecordDisputeResolved,
    RecordGpRegistration,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordOrdinaryResidenceChanged,
    RecordPersonDetails,
    RecordReviewCompleted,
    RecordS117Confirmed,
    RecordS117Ended,
    RecordServiceCharged,
    RecordSourceAccepted,
    SetNamedPractitioner,
    Signoff,
)
from register_core.domain.model import Person
from register_core.domain.position import Policy, Position, compute_position
from register_core.domain.precedence import question_of

_refs = count(1)

# Synthetic organisation codes (shaped like ODS codes, not meant to be real ones).
COUNCIL_A = "LA-A"
COUNCIL_B = "LA-B"
COUNCIL_C = "LA-C"
ICB_X = "ICB-X"
ICB_Y = "ICB-Y"
PRACTICE_X = "GP-X01"
PRACTICE_Y = "GP-Y01"


def d(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def synthetic_nhs(serial: int = 1) -> str:
    return nhs_number.make_synthetic(serial)


def person_ref(serial: int = 1, **overrides: object) -> PersonRef:
    fields: dict[str, object] = {"nhs_number": synthetic_nhs(serial),
                                 "local_id": f"SYN-{serial:06d}"}
    fields.update(overrides)
    return PersonRef(**fields)  # type: ignore[arg-type]


def prov(source: str = "trust-a", when: date | None = None, ref: str | None = None) -> Provenance:
    received = datetime.combine(when or date(2030, 1, 1), time(9, 0))
    return Provenance(source=source, source_ref=ref or f"msg-{next(_refs)}",
                      received_at=received)


def new_person(serial: int = 1, birth: str | date | None = None) -> Person:
    p = Person(id=f"person-{serial}")
    if birth is not None:
        p.birth_date = d(birth)
    return p


def detention(start: str | date, section: str = "03", *, episode: str | None = "ep-1",
              end: str | date | None = None, icb: str | None = None, source: str = "trust-a",
              serial: int = 1, ref: PersonRef | None = None) -> RecordDetentionStarted:
    return RecordDetentionStarted(
        person=ref or person_ref(serial), provenance=prov(source, d(start)), section=section,
        start=d(start), episode_ref=episode, responsible_icb=icb,
        end=d(end) if end is not None else None)


def legal(event: str, when: str | date, *, section: str | None = None,
          episode: str | None = "ep-1", end: str | date | None = None,
          source: str = "trust-a", serial: int = 1) -> RecordLegalStatusChanged:
    return RecordLegalStatusChanged(
        person=person_ref(serial), provenance=prov(source, d(when)), event=event,  # type: ignore[arg-type]
        date=d(when), section=section, episode_ref=episode,
        end=d(end) if end is not None else None)


def regrade(when: str | date, section: str = "03", **kw: object) -> RecordLegalStatusChanged:
    return legal("section-change", when, section=section, **kw)  # type: ignore[arg-type]


def left(when: str | date, *, episode: str | None = "ep-1", source: str = "trust-a",
         serial: int = 1, reason: str = "left-hospital") -> RecordLeftHospital:
    return RecordLeftHospital(person=person_ref(serial), provenance=prov(source, d(when)),
                              date=d(when), episode_ref=episode, reason=reason)


def residence(when: str | date, council: str, *, serial: int = 1) -> RecordOrdinaryResidenceChanged:
    return RecordOrdinaryResidenceChanged(person=person_ref(serial),
                                          provenance=prov("council", d(when)),
                                          council_code=council, date=d(when))


def gp(when: str | date, practice: str, icb: str | None = None, *,
       serial: int = 1) -> RecordGpRegistration:
    return RecordGpRegistration(person=person_ref(serial), provenance=prov("pds", d(when)),
                                gp_practice_ods=practice, icb_code=icb, date=d(when))


def review(when: str | date, *, kind: str = "scheduled", joint: bool | None = True,
           serial: int = 1) -> RecordReviewCompleted:
    return RecordReviewCompleted(person=person_ref(serial), provenance=prov("council", d(when)),
                                 date=d(when), review_kind=kind, joint=joint)  # type: ignore[arg-type]


def ended(when: str | date, *, reason: str | None = "no longer needs aftercare for the "
          "mental disorder; joint review held", council: bool = True, icb: bool = True,
          grounds: tuple[str, ...] = (), source: str = "council",
          council_for: str | None = None, serial: int = 1) -> RecordS117Ended:
    """``council_for``: the organisation the council sign-off names (None: not said)."""
    day = d(when)
    return RecordS117Ended(
        person=person_ref(serial), provenance=prov(source, day), date=day, reason=reason,
        council_signoff=Signoff(by="council-officer-1", date=day, organisation=council_for)
        if council else None,
        icb_signoff=Signoff(by="icb-clinician-1", date=day) if icb else None,
        grounds=grounds)


def confirmed(start: str | date, *, serial: int = 1) -> RecordS117Confirmed:
    return RecordS117Confirmed(person=person_ref(serial), provenance=prov("council", d(start)),
                               start=d(start))


def practitioner(name: str, when: str | date | None = None, *,
                 serial: int = 1) -> SetNamedPractitioner:
    return SetNamedPractitioner(person=person_ref(serial),
                                provenance=prov("council", d(when) if when else None),
                                name=name, role="care co-ordinator",
                                date=d(when) if when else None)


def plan(when: str | date, *, serial: int = 1) -> RecordAftercarePlanAgreed:
    return RecordAftercarePlanAgreed(person=person_ref(serial),
                                     provenance=prov("council", d(when)), date=d(when))


def charge(when: str | date, *, under_s117: bool = True, serial: int = 1) -> RecordServiceCharged:
    return RecordServiceCharged(person=person_ref(serial), provenance=prov("council", d(when)),
                                service="supported accommodation", under_s117=under_s117,
                                amount="120.00", date=d(when))


def child_notified(when: str | date, *, serial: int = 1) -> RecordChildNotification:
    return RecordChildNotification(person=person_ref(serial),
                                   provenance=prov("trust-a", d(when)), date=d(when))


def dispute_opened(when: str | date, *, kind: str = "ending", dispute: str = "dispute-1",
                   serial: int = 1) -> RecordDisputeOpened:
    """A dispute logged on the register (the register's own record: no person reference)."""
    return RecordDisputeOpened(person=PersonRef(), provenance=prov("register", d(when),
                                                                   ref=f"dispute:{dispute}"),
                               dispute_id=dispute, dispute_kind=kind, date=d(when))


def dispute_resolved(when: str | date, *, dispute: str = "dispute-1",
                     serial: int = 1) -> RecordDisputeResolved:
    return RecordDisputeResolved(person=PersonRef(), provenance=prov("register", d(when),
                                                                     ref=f"dispute:{dispute}"),
                                 dispute_id=dispute, date=d(when))


def details(*, serial: int = 1, as_of: str | date | None = None,
            **ref_fields: object) -> RecordPersonDetails:
    return RecordPersonDetails(person=person_ref(serial, **ref_fields),
                               provenance=prov("pds", d(as_of) if as_of else None),
                               as_of=d(as_of) if as_of else None)


def cancel(cancels: str, *, episode: str | None = "ep-1", source: str = "trust-a",
           serial: int = 1, scope: str = "message") -> CancelEvent:
    return CancelEvent(person=person_ref(serial), provenance=prov(source), cancels=cancels,  # type: ignore[arg-type]
                       episode_ref=episode, scope=scope)  # type: ignore[arg-type]


def record_all(commands: list[Command], *, serial: int = 1, birth: str | None = None) -> Person:
    p = new_person(serial, birth)
    for command in commands:
        p.record(command)
    return p


def position_of(commands: list[Command], today: str | date = "2030-01-01",
                policy: Policy | None = None, *, birth: str | None = None) -> Position:
    return compute_position(record_all(commands, birth=birth), d(today), policy)


def source_accepted(when: str | date, detail: dict[str, object], source: str, *,
                    exception: str = "exception-1", by: str = "owner-token-1"
                    ) -> RecordSourceAccepted:
    """A register owner's ``accept-source:<source>`` on the source-conflict whose detail is
    ``detail``, as the exceptions service journals it."""
    question = question_of(detail)
    assert question is not None, "not a question a source's value settles"
    return RecordSourceAccepted(
        person=PersonRef(), provenance=Provenance(
            source="register", source_ref=f"exception:{exception}",
            received_at=datetime.combine(d(when), time(9, 0)), recorded_by=by),
        exception_id=exception, source=source, field=question.field, date=d(when),
        day=d(question.day) if question.day else None, told=question.told)
