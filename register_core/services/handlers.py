"""Command handlers: the one way the register changes.

Each handler runs inside a unit of work: find (or create) the person, let the domain check and
record the fact, recompute the S117 position, save journal + projections + history, commit.
Any RegisterError rolls the whole unit back, so nothing is half-written.
"""

from __future__ import annotations

import uuid

from reconciliation.exceptions import SYSTEM
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain import nhs_number
from register_core.domain.commands import Command, MergePersons
from register_core.domain.errors import IdentityConflict, InvalidValue, NotFound
from register_core.domain.model import REGISTER_SOURCE, Fact, Person
from register_core.domain.position import Policy, Position, compute_position
from register_core.ports import Clock

from .applied import STATUS_FIELDS, Applied
from .identity import (
    arrival_link_ref,
    demographics_disagree,
    match_incoming,
    open_demographics_conflict,
    open_identity_review,
    pair_kept_apart,
)
from .merges import MergeOutcome, merge_persons

__all__ = ["STATUS_FIELDS", "Applied", "IdentityConflict", "apply_command", "locate_person",
           "recompute", "record_command", "record_for_person"]


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
    late: MergeOutcome | None = None
    try:
        person, created = locate_person(uow, command)
    except IdentityConflict:
        # Only where the keys disagree (rare) is a late NHS number looked at: the common
        # path locates once.
        late = _merge_on_late_nhs_number(uow, command, clock, policy)
        if late is None:
            raise
        person, created = locate_person(uow, command)
    identity = "exact" if person is not None else "new"
    merging = _merged_record_owner(uow, command)
    if isinstance(command, MergePersons):
        # Refused before anything is recorded: an A40 must not even move its identifier.
        _refuse_merge_across_nhs_numbers(uow, command, person, merging)
    match = None
    joins: Person | None = None
    if person is None:
        # Neither key is known: the demographics may still name someone registered.
        match = match_incoming(uow, command, policy)
        if match is not None and match.decision.outcome == "link" and match.candidate:
            joins, identity = match.candidate, "probabilistic"
    if person is None:
        person = Person(id=str(uuid.uuid4()))
    if (person.nhs_number and command.person.nhs_number
            and nhs_number.normalise(command.person.nhs_number) != person.nhs_number):
        raise IdentityConflict("the NHS number differs from the register's for this person",
                               field="person.nhs_number",
                               rule="never-link-different-nhs-numbers")
    by_number = not created and bool(person.nhs_number and command.person.nhs_number)
    fact, position, changes = _record(uow, person, command, clock, policy)
    if by_number:
        # Linked by its NHS number (the number is the identity): a birth date that differs
        # is a question for a person, not a refusal. Compared in memory: no query unless
        # they differ.
        differing = demographics_disagree(person, command)
        if differing:
            open_demographics_conflict(uow, person, fact, differing, clock)
    review = None
    if match is not None and match.decision.outcome == "review":
        review = open_identity_review(uow, person.id, match.decision, command, clock, policy)
    applied = Applied(person_id=person.id, fact_seq=fact.seq, created=created,
                      changes=changes, position=position, identity=identity,
                      identity_exception=review)
    if joins is not None:
        applied = _join_match(uow, applied, joins, command, clock, policy)
    if late is not None:
        # The merge changed the survivor's values before this command did; partners hear of
        # both, and the emptied person's values changed too.
        applied.changes[:0] = late.survivor.changes
        applied.also.append(late.merged)
    if merging is not None and merging != person.id and isinstance(command, MergePersons):
        _merge_the_rest(uow, applied, merging, command, clock, policy)
    return applied


def _join_match(uow: SqlUnitOfWork, arrived: Applied, match: Person, command: Command,
                clock: Clock, policy: Policy | None) -> Applied:
    """A record linked on arrival (at or above ``identity.link_threshold``) joins the person
    it matched as a merge: recorded first on a person of its own (``arrived``), that person
    is merged into the match (``merges.merge_persons``, filling what the register does not
    know), recorded in ``person_merges`` as the register's automatic identity link under
    this message. So a wrong link is undone as any merge: ``POST /api/v1/people/{id}/
    unmerge`` on the arrived person gives it back its facts and identifiers, and records the
    two as different people. Only a link pays for this; an exact or new record does not."""
    prov = command.provenance
    outcome = merge_persons(uow, match.id, arrived.person_id, source=REGISTER_SOURCE,
                            source_ref=arrival_link_ref(prov.source, prov.source_ref),
                            by=SYSTEM, clock=clock, policy=policy, fill_unknown=True)
    # The arrived person was made and emptied in this change: what it says overall.
    emptied = Applied(person_id=arrived.person_id, fact_seq=arrived.fact_seq, created=True,
                      changes=_overall(arrived.changes, outcome.merged.changes),
                      position=outcome.merged.position)
    return Applied(person_id=match.id, fact_seq=outcome.survivor.fact_seq, created=False,
                   changes=outcome.survivor.changes, position=outcome.survivor.position,
                   identity="probabilistic", also=[emptied])


def _overall(first: list[tuple[str, str | None, str | None]],
             then: list[tuple[str, str | None, str | None]]
             ) -> list[tuple[str, str | None, str | None]]:
    """Two successive changes of one person's register values as one."""
    old: dict[str, str | None] = {}
    new: dict[str, str | None] = {}
    for name, before, after in (*first, *then):
        old.setdefault(name, before)
        new[name] = after
    return [(name, old[name], value) for name, value in new.items() if old[name] != value]


def _merge_on_late_nhs_number(uow: SqlUnitOfWork, command: Command, clock: Clock,
                              policy: Policy | None) -> MergeOutcome | None:
    """A source's local id held by a person with no NHS number, now sent with a valid NHS
    number another person holds: the exact NHS number is the register's key (issue 4), so
    the local-id person is merged into the NHS-number person, reversibly and recorded in
    ``person_merges`` under this message, before the command is recorded there. Two people
    a register owner keeps apart (an un-merge of that merge) are refused instead.

    Left to ``locate_person`` to refuse: a local-id person with another valid NHS number."""
    ref = command.person
    if isinstance(command, MergePersons) or not ref.nhs_number or not ref.local_id:
        return None
    nhs = nhs_number.validate(ref.nhs_number, "person.nhs_number")
    prov = command.provenance
    by_nhs, by_local = uow.persons.locate(nhs, prov.source, ref.local_id)
    if not by_nhs or not by_local or by_nhs == by_local:
        return None
    local_person = uow.persons.get(by_local)
    if local_person is None or local_person.nhs_number:
        return None
    if pair_kept_apart(uow, by_nhs, by_local):
        # A register owner un-merged them (or answered different-people): the message
        # cannot join them again behind the owner's back.
        raise IdentityConflict("the source's local identifier and the NHS number name two "
                               "people a register owner keeps apart",
                               field="person.local_id", rule="kept-apart-by-register-owner")
    return merge_persons(uow, by_nhs, by_local, source=prov.source,
                         source_ref=prov.source_ref, by=prov.recorded_by, clock=clock,
                         policy=policy)


def _refuse_merge_across_nhs_numbers(uow: SqlUnitOfWork, command: MergePersons,
                                     survivor: Person | None, merged_id: str | None) -> None:
    """An A40 across two different valid NHS numbers is refused whole (standards.md
    section 4: never link them): moving only the identifier would send the merged record's
    later messages to the wrong patient. So is an MRG whose NHS number and local id name
    two different people on the register: which record is meant cannot be told. And one
    joining two people a register owner keeps apart (an un-merge, different-people)."""
    def refuse(message: str, field: str, rule: str = "never-link-different-nhs-numbers"
               ) -> IdentityConflict:
        return IdentityConflict(message, field=field, rule=rule)

    incoming = command.person.nhs_number
    survivor_nhs = (survivor.nhs_number if survivor is not None and survivor.nhs_number
                    else nhs_number.normalise(incoming) if incoming else None)
    mrg_nhs = (nhs_number.normalise(command.merged_nhs_number)
               if command.merged_nhs_number and nhs_number.is_valid(command.merged_nhs_number)
               else None)
    if survivor_nhs and mrg_nhs and survivor_nhs != mrg_nhs:
        raise refuse("the merged record's NHS number differs from the survivor's",
                     "merged_nhs_number")
    merged = uow.persons.get(merged_id) if merged_id else None
    if merged is None or (survivor is not None and merged.id == survivor.id):
        return
    if merged.nhs_number and survivor_nhs and merged.nhs_number != survivor_nhs:
        raise refuse("the merged record belongs to a person with another NHS number",
                     "merged_local_id")
    if merged.nhs_number and mrg_nhs and merged.nhs_number != mrg_nhs:
        raise refuse("the merged record's NHS number differs from the register's for it",
                     "merged_nhs_number")
    if mrg_nhs:
        holder = uow.persons.locate(mrg_nhs, command.provenance.source, None)[0]
        if holder is not None and holder != merged.id and (
                survivor is None or holder != survivor.id):
            raise refuse("the merged record's NHS number and local id name different people",
                         "merged_nhs_number", rule="merged-record-one-person")
    if survivor is not None and pair_kept_apart(uow, survivor.id, merged.id):
        # A register owner un-merged them or answered different-people: the source's
        # A40 asks again, and waits (failed, replayable) until the owner reopens that.
        raise refuse("a register owner keeps these two people apart: reopen that decision "
                     "to merge them", "merged_local_id", rule="kept-apart-by-register-owner")


def _merged_record_owner(uow: SqlUnitOfWork, command: Command) -> str | None:
    """For an A40: who holds the merged record now (by the source's id, else the merged
    NHS number), before the merge fact moves that identifier to the survivor."""
    if not isinstance(command, MergePersons):
        return None
    source = command.provenance.source
    owner = uow.persons.locate(None, source, command.merged_local_id)[1]
    if owner is None and command.merged_nhs_number and nhs_number.is_valid(
            command.merged_nhs_number):
        owner = uow.persons.locate(nhs_number.normalise(command.merged_nhs_number), source,
                                   None)[0]
    return owner


def _merge_the_rest(uow: SqlUnitOfWork, applied: Applied, merged_id: str,
                    command: MergePersons, clock: Clock, policy: Policy | None) -> None:
    """An A40 merges the whole record: the merged person's facts and other identifiers move
    to the survivor too (``merges``; undone by ``merges.unmerge``). Two records with
    different valid NHS numbers are never merged (standards.md section 4): such an A40 was
    refused before anything moved (``_refuse_merge_across_nhs_numbers``)."""
    survivor = uow.persons.get(applied.person_id)
    merged = uow.persons.get(merged_id)
    if survivor is None or merged is None:
        return
    prov = command.provenance
    outcome = merge_persons(uow, survivor.id, merged_id, source=prov.source,
                            source_ref=prov.source_ref, by=prov.recorded_by, clock=clock,
                            policy=policy, carried=[(prov.source, command.merged_local_id)])
    applied.changes.extend(outcome.survivor.changes)
    applied.position = outcome.survivor.position
    applied.also.append(outcome.merged)


def record_for_person(person_id: str, command: Command, uow: SqlUnitOfWork, clock: Clock,
                      policy: Policy | None = None) -> Applied:
    """Record one of the register's own commands (``REGISTER_COMMANDS``, e.g. a dispute
    logged) about a person known by id, inside the caller's unit of work: the same checks,
    recomputation and history as ``record_command``, without identity matching."""
    person = uow.persons.get(person_id, for_update=True)
    if person is None:
        raise NotFound("no person with this id", field="person_id", rule="person-exists")
    fact, position, changes = _record(uow, person, command, clock, policy)
    return Applied(person_id=person.id, fact_seq=fact.seq, created=False, changes=changes,
                   position=position)


def _record(uow: SqlUnitOfWork, person: Person, command: Command, clock: Clock,
            policy: Policy | None
            ) -> tuple[Fact, Position, list[tuple[str, str | None, str | None]]]:
    """Journal the command, recompute the position and save both with its provenance."""
    fact = person.record(command)
    position = compute_position(person, clock.today(), policy)
    prov = command.provenance
    changes = uow.persons.save(person, position, source=prov.source,
                               source_ref=prov.source_ref, recorded_by=prov.recorded_by,
                               now=clock.now())
    return fact, position, changes


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
