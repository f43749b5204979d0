"""Command handlers: the one way the register changes.

Each handler runs inside a unit of work: find (or create) the person, let the domain check and
record the fact, recompute the S117 position, save journal + projections + history, commit.
Any RegisterError rolls the whole unit back, so nothing is half-written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain import nhs_number
from register_core.domain.commands import Command, MergePersons
from register_core.domain.errors import InvalidValue
from register_core.domain.model import Person
from register_core.domain.position import Policy, Position, compute_position
from register_core.ports import Clock

STATUS_FIELDS = frozenset({
    "entitlement.status", "entitlement.start", "entitlement.responsible_council",
    "entitlement.responsible_icb", "entitlement.ended", "entitlement.on_cto",
})


@dataclass
class Applied:
    person_id: str
    fact_seq: int
    created: bool
    changes: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    position: Position | None = None

    @property
    def status_changed(self) -> bool:
        """Whether the change is one partner systems must be told of (outbound, issue 5)."""
        return any(name in STATUS_FIELDS for name, _, _ in self.changes)


class IdentityConflict(InvalidValue):
    code = "identity-conflict"


def locate_person(uow: SqlUnitOfWork, command: Command) -> tuple[Person | None, bool]:
    """Exact identity: a valid NHS number first, else the source's own identifier.

    Never links two records with different valid NHS numbers (standards.md section 4).
    """
    ref = command.person
    nhs = nhs_number.validate(ref.nhs_number, "person.nhs_number") if ref.nhs_number else None
    by_nhs, by_local = uow.persons.locate(nhs, command.provenance.source, ref.local_id)
    if by_nhs and by_local and by_nhs != by_local and not isinstance(command, MergePersons):
        raise IdentityConflict(
            "the source's local identifier belongs to a person with another NHS number",
            field="person.local_id", rule="never-link-different-nhs-numbers")
    person_id = by_nhs or by_local
    if person_id is None:
        if not ref.nhs_number and not ref.local_id:
            raise InvalidValue("a person needs an NHS number or the source's local identifier",
                               field="person", rule="person-identified")
        return None, True
    return uow.persons.get(person_id, for_update=True), False


def apply_command(command: Command, uow: SqlUnitOfWork, clock: Clock,
                  policy: Policy | None = None) -> Applied:
    """Record one canonical command and commit. Raises RegisterError and rolls back."""
    applied = record_command(command, uow, clock, policy)
    uow.commit()
    return applied


def record_command(command: Command, uow: SqlUnitOfWork, clock: Clock,
                   policy: Policy | None = None) -> Applied:
    """Record one command inside the caller's unit of work, without committing.

    An inbound message's commands and its inbox status are committed together, so a message
    is applied exactly once however often a worker crashes and retries it.
    """
    person, created = locate_person(uow, command)
    if person is None:
        person = Person(id=str(uuid.uuid4()))
    if (person.nhs_number and command.person.nhs_number
            and nhs_number.normalise(command.person.nhs_number) != person.nhs_number):
        raise IdentityConflict("the NHS number differs from the register's for this person",
                               field="person.nhs_number",
                               rule="never-link-different-nhs-numbers")
    fact = person.record(command)
    position = compute_position(person, clock.today(), policy)
    prov = command.provenance
    changes = uow.persons.save(person, position, source=prov.source,
                               source_ref=prov.source_ref, recorded_by=prov.recorded_by,
                               now=clock.now())
    return Applied(person_id=person.id, fact_seq=fact.seq, created=created, changes=changes,
                   position=position)


def recompute(person_id: str, uow: SqlUnitOfWork, clock: Clock,
              policy: Policy | None = None) -> Applied | None:
    """Recompute one person's position as of today (due dates move without messages)."""
    person = uow.persons.get(person_id, for_update=True)
    if person is None:
        return None
    position = compute_position(person, clock.today(), policy)
    changes = uow.persons.save(person, position, source="register", source_ref="sweep",
                               recorded_by="system", now=clock.now())
    uow.commit()
    return Applied(person_id=person_id, fact_seq=person.next_seq() - 1, created=False,
                   changes=changes, position=position)
