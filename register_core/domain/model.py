"""The person's record: demographics, identifiers and the journal of facts about them.

The journal is the truth: every fact keeps the command it came from and its provenance, and
the S117 position (entitlement, responsible bodies, due dates) is *computed* from it by
``position.compute_position``, so every register value can say which rule and facts set it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from . import legal_status, nhs_number
from .calendar import england_date
from .commands import (
    CancelEvent,
    Command,
    MergePersons,
    PersonRef,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordPersonDetails,
    RecordS117Ended,
)
from .errors import ImpossibleDates, InvalidValue

_NOT_AN_EVENT = object()  # what a command without an episode (demographics) has for one
_DEMOGRAPHICS = ("family_name", "given_name", "birth_date", "sex", "postcode",
                 "gp_practice_ods", "death_date")
REGISTER_SOURCE = "register"  # the register's own corrections (services.exceptions)


@dataclass(frozen=True)
class Identifier:
    source: str
    value: str


@dataclass(kw_only=True)
class Fact:
    """One recorded command about one person, with its place in their journal."""

    id: int | None
    seq: int
    command: Command
    retracted_by: int | None = None  # seq of the fact that cancelled this one

    @property
    def kind(self) -> str:
        return self.command.kind

    @property
    def effective(self) -> date | None:
        return self.command.effective

    @property
    def source(self) -> str:
        return self.command.provenance.source

    def cite(self) -> str:
        """How explain names this fact: stable, no personal data."""
        prov = self.command.provenance
        when = f" effective {self.effective.isoformat()}" if self.effective else ""
        return f"fact {self.seq}: {self.kind} from {prov.source} ({prov.source_ref}){when}"


@dataclass(kw_only=True)
class Person:
    id: str
    nhs_number: str | None = None
    nhs_number_verified: bool | None = None
    family_name: str | None = None
    given_name: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    postcode: str | None = None
    gp_practice_ods: str | None = None
    death_date: date | None = None
    identifiers: list[Identifier] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    version: int = 0
    new_facts: list[Fact] = field(default_factory=list)  # not yet stored
    changed: bool = False

    # -- changes -------------------------------------------------------------------------

    def record(self, command: Command) -> Fact:
        """Check a command against the person's history and append it to the journal."""
        validate_command(command, self)
        self._absorb_demographics(command.person, command.provenance.source)
        if command.person.local_id:
            self.add_identifier(command.provenance.source, command.person.local_id)
        if isinstance(command, RecordPersonDetails) and command.person.death_date:
            self.death_date = command.person.death_date
        fact = Fact(id=None, seq=self.next_seq(), command=command)
        if isinstance(command, CancelEvent):
            for target in self.cancelled_by(command):
                target.retracted_by = fact.seq
        if isinstance(command, MergePersons):
            self.add_identifier(command.provenance.source, command.merged_local_id)
        self.facts.append(fact)
        self.new_facts.append(fact)
        self.changed = True
        return fact

    def next_seq(self) -> int:
        return (self.facts[-1].seq + 1) if self.facts else 1

    def add_identifier(self, source: str, value: str) -> None:
        ident = Identifier(source, value)
        if ident not in self.identifiers:
            self.identifiers.append(ident)
            self.changed = True

    def _absorb_demographics(self, ref: PersonRef, source: str) -> None:
        """Fill what the register does not know yet; disagreements are for reconciliation.

        A value the register holds is replaced only by the source that told it (a name or
        address change) or by the register's own correction: another source's differing
        value (a council record linked by an unverified NHS number) stays that source's
        fact in the journal and does not overwrite the person's demographics.
        """
        for name in _DEMOGRAPHICS:
            new = getattr(ref, name)
            current = getattr(self, name)
            if new is None or current == new:
                continue
            if current is None or source == REGISTER_SOURCE or self._told(source, name,
                                                                            current):
                setattr(self, name, new)
                self.changed = True
        if ref.nhs_number and not self.nhs_number:
            self.nhs_number = nhs_number.validate(ref.nhs_number)
            self.changed = True
        if ref.nhs_number_verified is not None and ref.nhs_number_verified != (
            self.nhs_number_verified
        ):
            self.nhs_number_verified = ref.nhs_number_verified
            self.changed = True

    def _told(self, source: str, name: str, value: object) -> bool:
        """Whether ``source`` sent ``value`` for demographic ``name`` in any recorded fact:
        the journal is the only per-field provenance the person keeps."""
        return any(f.source == source and getattr(f.command.person, name) == value
                   for f in self.facts)

    def cancelled_by(self, cancel: CancelEvent) -> list[Fact]:
        """The live facts a cancel retracts: the whole event it cancels, not just one fact.

        The cancelled event is found by its kind: the latest live fact of ``cancel.cancels``
        from the same source (and episode, when the cancel names one). Everything else that
        event's message recorded about the same episode goes with it: an A13 cancels the
        A03's leaving *and* the CTO or conditional discharge the A03 carried, whatever kinds
        they are. A message is its source and ``source_ref`` (MSH-10, the FHIR or council
        message id: unique per source in the inbox). Demographics the message carried are no
        event and stay. Nothing found (the hub never saw the event): nothing is retracted.
        A cancel of scope "episode" (a withdrawn FHIR Encounter) takes every live event fact
        the source told of that episode, from every message.
        """
        if cancel.scope == "episode" and cancel.episode_ref is not None:
            return [f for f in self.facts
                    if f.retracted_by is None and f.kind != "cancel"
                    and f.source == cancel.provenance.source
                    and getattr(f.command, "episode_ref", None) == cancel.episode_ref]
        anchor = self._cancel_target(cancel)
        if anchor is None:
            return []
        prov = anchor.command.provenance
        episode = getattr(anchor.command, "episode_ref", None)
        return [f for f in self.facts
                if f is anchor or (
                    f.retracted_by is None and f.kind != "cancel"
                    and f.source == prov.source
                    and f.command.provenance.source_ref == prov.source_ref
                    and getattr(f.command, "episode_ref", _NOT_AN_EVENT) == episode)]

    def _cancel_target(self, cancel: CancelEvent) -> Fact | None:
        """The latest live fact of the cancelled kind from the same source and episode."""
        for fact in reversed(self.facts):
            if (fact.retracted_by is None and fact.kind == cancel.cancels
                    and fact.source == cancel.provenance.source
                    and (cancel.episode_ref is None
                         or getattr(fact.command, "episode_ref", None) == cancel.episode_ref)):
                return fact
        return None

    def live_facts(self) -> list[Fact]:
        return [f for f in self.facts if f.retracted_by is None and f.kind != "cancel"]


def validate_command(command: Command, person: Person | None = None) -> None:
    """Reject impossible values naming the field and the rule; nothing is written."""
    ref = command.person
    if ref.nhs_number:
        nhs_number.validate(ref.nhs_number, field="person.nhs_number")
    birth = ref.birth_date or (person.birth_date if person else None)
    if ref.death_date and birth and ref.death_date < birth:
        raise ImpossibleDates("date of death is before date of birth", field="person.death_date",
                              rule="death-after-birth")
    effective = command.effective
    if birth and effective and effective < birth:
        raise ImpossibleDates(f"{command.kind} is dated before the person's birth",
                              field=_date_field(command), rule="event-after-birth")
    if isinstance(command, RecordDetentionStarted):
        legal_status.validate_code(command.section, field="section")
        if command.end and command.end < command.start:
            raise ImpossibleDates("detention ends before it starts", field="end",
                                  rule="end-after-start")
    if isinstance(command, RecordLegalStatusChanged):
        if command.section is not None:
            legal_status.validate_code(command.section, field="section")
        if command.event == "section-change" and command.section is None:
            raise InvalidValue("a section change needs the new section", field="section",
                               rule="section-change-needs-section")
        if command.end and command.end < command.date:
            raise ImpossibleDates(f"{command.event} ends before it starts", field="end",
                                  rule="end-after-start")
    if isinstance(command, RecordLeftHospital) and person is not None:
        starts = [f.command.start for f in person.live_facts()
                  if isinstance(f.command, RecordDetentionStarted)
                  and command.episode_ref is not None
                  and f.command.episode_ref == command.episode_ref]
        if starts and command.date < min(starts):
            raise ImpossibleDates("left hospital before the detention started", field="date",
                                  rule="end-after-start")
    if isinstance(command, RecordS117Ended):
        for side, signoff in (("council_signoff", command.council_signoff),
                              ("icb_signoff", command.icb_signoff)):
            if signoff is not None and signoff.date > england_date(command.provenance.received_at):
                raise ImpossibleDates(f"{side} is dated in the future", field=f"{side}.date",
                                      rule="signoff-not-in-future")


def _date_field(command: Command) -> str:
    for name in ("start", "date", "as_of"):
        if hasattr(command, name):
            return name
    return "date"


def with_facts(person: Person, facts: list[Fact]) -> Person:
    return replace(person, facts=facts)
