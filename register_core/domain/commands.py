"""Canonical commands: what a source (or a person at the console) asks the register to record.

Every inbound path (HL7 v2, FHIR, council REST/CSV) maps to these; nothing else changes the
register. They are imperative and tiny; the facts they become are in ``facts.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar, Literal

LegalStatusKind = Literal[
    "section-change",  # regrade, e.g. s2 -> s3; carries the new section
    "detention-ended",  # section lapsed or discharged from section; may stay informally
    "s17-leave-start",
    "s17-leave-end",
    "cto-start",
    "cto-end",
    "cto-revoked",  # back to detention (s17E/F)
    "conditional-discharge-start",
    "conditional-discharge-end",
    "transfer",
    "awol-start",
    "awol-end",
]
LEGAL_STATUS_KINDS: tuple[str, ...] = LegalStatusKind.__args__  # type: ignore[attr-defined]

ReviewKind = Literal["scheduled", "unscheduled"]


@dataclass(frozen=True, kw_only=True)
class PersonRef:
    """Who a message is about, as the source knows them. Identity matching reads this."""

    nhs_number: str | None = None
    nhs_number_verified: bool | None = None
    local_id: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    postcode: str | None = None
    gp_practice_ods: str | None = None
    death_date: date | None = None


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a fact came from: the source system and its message, or the person who decided."""

    source: str
    source_ref: str
    received_at: datetime
    recorded_by: str = "system"


@dataclass(frozen=True, kw_only=True)
class Signoff:
    by: str
    date: date
    # The organisation the sign-off was given for (a council's GSS code, an ODS code), when
    # the source says: a council sign-off counts only for the responsible council (joint
    # policy 16.1). None: not said (the contract's sign-off is {by, date}), and not judged.
    organisation: str | None = None


@dataclass(frozen=True, kw_only=True)
class Command:
    kind: ClassVar[str] = "command"
    person: PersonRef
    provenance: Provenance

    @property
    def effective(self) -> date | None:
        """The date the fact takes effect in the person's history (None: demographics)."""
        return None


@dataclass(frozen=True, kw_only=True)
class RecordPersonDetails(Command):
    """Demographics only (ADT A28/A31, FHIR Patient): name, birth, GP, postcode, death."""

    kind: ClassVar[str] = "person-details"
    as_of: date | None = None

    @property
    def effective(self) -> date | None:
        return self.as_of


@dataclass(frozen=True, kw_only=True)
class RecordDetentionStarted(Command):
    kind: ClassVar[str] = "detention-started"
    section: str
    start: date
    episode_ref: str | None = None
    provider_ods: str | None = None
    responsible_icb: str | None = None
    end: date | None = None

    @property
    def effective(self) -> date:
        return self.start


@dataclass(frozen=True, kw_only=True)
class RecordLegalStatusChanged(Command):
    kind: ClassVar[str] = "legal-status"
    event: LegalStatusKind
    date: date
    section: str | None = None
    episode_ref: str | None = None
    end: date | None = None
    end_reason: str | None = None
    provider_ods: str | None = None

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordLeftHospital(Command):
    kind: ClassVar[str] = "left-hospital"
    date: date
    episode_ref: str | None = None
    reason: str = "left-hospital"

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordS117Confirmed(Command):
    kind: ClassVar[str] = "s117-confirmed"
    start: date

    @property
    def effective(self) -> date:
        return self.start


@dataclass(frozen=True, kw_only=True)
class RecordS117Ended(Command):
    kind: ClassVar[str] = "s117-ended"
    date: date
    reason: str | None
    council_signoff: Signoff | None
    icb_signoff: Signoff | None
    grounds: tuple[str, ...] = ()

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordAftercarePlanAgreed(Command):
    kind: ClassVar[str] = "aftercare-plan-agreed"
    date: date

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordReviewCompleted(Command):
    kind: ClassVar[str] = "review-completed"
    date: date
    review_kind: ReviewKind = "scheduled"
    joint: bool | None = None  # None: the source did not say (journals before 2026-12: False)

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class SetNamedPractitioner(Command):
    kind: ClassVar[str] = "named-practitioner-set"
    name: str
    role: str | None = None
    date: date | None = None

    @property
    def effective(self) -> date | None:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordOrdinaryResidenceChanged(Command):
    kind: ClassVar[str] = "ordinary-residence"
    council_code: str
    date: date

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordGpRegistration(Command):
    """GP practice (and so originating ICB) from a date: the ICB rule reads this."""

    kind: ClassVar[str] = "gp-registration"
    gp_practice_ods: str
    icb_code: str | None
    date: date

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordServiceCharged(Command):
    kind: ClassVar[str] = "service-charged"
    service: str
    under_s117: bool
    amount: str
    date: date

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordChildNotification(Command):
    """Children Act 1989 s85 notification to the responsible council (joint policy 6.1)."""

    kind: ClassVar[str] = "child-s85-notified"
    date: date

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class CancelEvent(Command):
    """Undo an earlier event (ADT A11 cancel admit, A13 cancel discharge, a withdrawn FHIR
    Encounter): the latest live ``cancels`` fact from this source (and episode) and all else
    its message recorded about that episode, e.g. the CTO start an A03 carried
    (``Person.cancelled_by``). Retracted facts stay in the journal, ``retracted_by`` this."""

    kind: ClassVar[str] = "cancel"
    cancels: Literal["detention-started", "left-hospital", "legal-status"]
    episode_ref: str | None = None
    date: date | None = None
    # "episode": the whole episode is withdrawn (a FHIR Encounter entered-in-error): every
    # live fact the source told of ``episode_ref``, in whichever message (each version of the
    # Encounter is one), goes. "message": the cancelled message's facts only (HL7 A11/A13).
    scope: Literal["message", "episode"] = "message"

    @property
    def effective(self) -> date | None:
        return self.date


@dataclass(frozen=True, kw_only=True)
class MergePersons(Command):
    """ADT A40: the source's record ``merged_local_id`` is now ``person.local_id``.

    The identifier moves to the survivor, and with it the rest of the merged person's record
    (facts, other identifiers), reversibly (``services.merges``). An A40 across two
    different valid NHS numbers (PID's, MRG's, or the merged record's on the register) is
    refused whole and nothing moves: they are never linked (standards.md section 4).
    """

    kind: ClassVar[str] = "merge"
    merged_local_id: str
    merged_nhs_number: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordDisputeOpened(Command):
    """A dispute logged on the register (``services.disputes``), kept in the person's journal
    so the position sees it: care continues throughout a dispute about ending (dispute
    protocol 3, 7), so an ending dated while one is open does not end the entitlement.

    Only the register writes these (source ``register``), never a source: they are not in
    ``SOURCE_COMMANDS``. The dispute's summary and outcome stay in the ``disputes`` table."""

    kind: ClassVar[str] = "dispute-opened"
    dispute_id: str
    dispute_kind: str
    date: date  # when the dispute opened (the protocol's clock starts then)

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordDisputeResolved(Command):
    """The register's dispute ``dispute_id`` resolved on ``date`` (its outcome is in the
    ``disputes`` table)."""

    kind: ClassVar[str] = "dispute-resolved"
    dispute_id: str
    date: date

    @property
    def effective(self) -> date:
        return self.date


@dataclass(frozen=True, kw_only=True)
class RecordSourceAccepted(Command):
    """A register owner settled a source-conflict exception ``accept-source:<source>``: for
    this person, the disagreement it showed (``field``, the date the value applies from where
    there is one, and what each source told: ``told``) is settled for ``source``, as a
    matching precedence rule would settle it (``precedence.Ruling``). Only the register writes
    these (source ``register``, source_ref ``exception:<id>``, recorded by the owner)."""

    kind: ClassVar[str] = "source-accepted"
    exception_id: str
    source: str
    field: str  # the exception's field, e.g. "detention.section"
    date: date  # when the owner decided
    day: date | None = None  # the date the disputed value applies from, where it has one
    told: tuple[tuple[str, str, str | None], ...] = ()  # (source, value, detention start)

    @property
    def effective(self) -> date:
        return self.date


SOURCE_COMMANDS: dict[str, type[Command]] = {
    cls.kind: cls
    for cls in (
        RecordPersonDetails, RecordDetentionStarted, RecordLegalStatusChanged,
        RecordLeftHospital, RecordS117Confirmed, RecordS117Ended, RecordAftercarePlanAgreed,
        RecordReviewCompleted, SetNamedPractitioner, RecordOrdinaryResidenceChanged,
        RecordGpRegistration, RecordServiceCharged, RecordChildNotification, CancelEvent,
        MergePersons,
    )
}

# What the register itself records in a person's journal (no source sends these).
REGISTER_COMMANDS: dict[str, type[Command]] = {
    cls.kind: cls for cls in (RecordDisputeOpened, RecordDisputeResolved, RecordSourceAccepted)
}
# Every kind a stored fact may have.
JOURNAL_COMMANDS: dict[str, type[Command]] = {**SOURCE_COMMANDS, **REGISTER_COMMANDS}
