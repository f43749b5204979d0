"""Merging two people's records into one, and undoing it exactly.

A merge (ADT A40, or a register owner's "same-person" decision on an identity-uncertain
exception) moves the merged person's facts and identifiers to the survivor — their NHS number
too when the survivor has none — recomputes both, and records in ``person_merges`` exactly
what moved (each fact's id with its journal place before and after). The merged person stays,
empty and out of every blocking look-up, so ``unmerge`` can move the same facts back to the
same places and both positions come back as they were.

Two records with different valid NHS numbers are never merged (standards.md section 4), and
a person merged into someone is merged again by nobody: only the survivor they joined holds
their facts. An un-merge is a register owner's decision that the two are different people: it
is recorded as a ``different-people`` identity decision on the pair, so neither ``s117hub
reconcile`` nor a later review links or raises them again.

Messages keep arriving after a merge under the merged record's identifiers (its local id, or
the NHS number it brought), and land on the survivor. An un-merge gives the merged person
those facts too — they came for that record — together with any identifier first seen on
them, and takes back from the survivor what they (or a fill of unknown demographics, for a
link made on arrival) changed in its demographics: each ``person_merges`` row keeps the
survivor's journal place where later facts begin (``survivor_seq``) and its demographics
before the merge (``survivor_had``). A register correction that accepted (``accept-source``)
a value a fact going back had told goes back after it, and its exception is closed again by
the system as no longer applying. A merge closes the live identity question about the pair
it joins, as superseded.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, delete, insert, select, update

from reconciliation.exceptions import (
    ACCEPT_SOURCE,
    AUTO_RESOLVE_DECISION,
    DEMOGRAPHICS_KIND,
    DIFFERENT_PEOPLE,
    LIVE,
    SYSTEM,
)
from reconciliation.findings import Finding
from reconciliation.identity import REVIEW_EXCEPTION_KIND
from register_core.adapters.exceptions_store import ExceptionStore
from register_core.adapters.person_writes import DEMOGRAPHICS
from register_core.adapters.register_pages import PersonSnapshot
from register_core.adapters.tables import (
    facts,
    person_blocking_keys,
    person_identifiers,
    person_merges,
    register_exceptions,
)
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain import nhs_number as nhs
from register_core.domain.errors import IdentityConflict, InvalidValue, NotFound, RegisterError
from register_core.domain.model import REGISTER_SOURCE, Fact, Person
from register_core.domain.position import Policy, compute_position
from register_core.ports import Clock

from .applied import Applied
from .identity import pair_fingerprint

log = logging.getLogger(__name__)

_FACTS_OF = (select(facts.c.id, facts.c.seq, facts.c.retracted_by)
             .where(facts.c.person_id == bindparam("pid")).order_by(facts.c.seq))
_MOVE_FACT = (update(facts).where(facts.c.id == bindparam("fid"))
              .values(person_id=bindparam("to"), seq=bindparam("new_seq"),
                      retracted_by=bindparam("new_rb")))
_IDENTIFIERS_OF = (select(person_identifiers.c.source, person_identifiers.c.value)
                   .where(person_identifiers.c.person_id == bindparam("pid"))
                   .order_by(person_identifiers.c.id))
_MOVE_IDENTIFIER = (update(person_identifiers)
                    .where(and_(person_identifiers.c.source == bindparam("src"),
                                person_identifiers.c.value == bindparam("val"),
                                person_identifiers.c.person_id == bindparam("owner")))
                    .values(person_id=bindparam("to")))
_DELETE_KEYS_OF = delete(person_blocking_keys).where(
    person_blocking_keys.c.person_id.in_(bindparam("ids", expanding=True)))
_OPEN_MERGE_OF = (select(person_merges)
                  .where(and_(person_merges.c.merged_id == bindparam("pid"),
                              person_merges.c.unmerged_at.is_(None)))
                  .order_by(person_merges.c.merged_at.desc(), person_merges.c.id).limit(1))


@dataclass(frozen=True)
class MergeOutcome:
    merge_id: str
    survivor: Applied
    merged: Applied
    facts_moved: int


def open_merge_of(uow: SqlUnitOfWork, person_id: str) -> dict[str, Any] | None:
    """The merge that emptied this person and is not undone, if any."""
    row = uow.connection.execute(_OPEN_MERGE_OF, {"pid": person_id}).mappings().first()
    return dict(row) if row is not None else None


def _both(uow: SqlUnitOfWork, first_id: str, second_id: str) -> tuple[Person, Person]:
    """Both people, locked in id order (two merges of the same pair never deadlock)."""
    uow.persons.flush()
    found: dict[str, Person] = {}
    for pid in sorted({first_id, second_id}):
        person = uow.persons.get(pid, for_update=True)
        if person is None:
            raise NotFound("no person with this id", field="person_id", rule="person-exists")
        found[pid] = person
    return found[first_id], found[second_id]


def merge_persons(uow: SqlUnitOfWork, survivor_id: str, merged_id: str, *, source: str,
                  source_ref: str, by: str, clock: Clock, policy: Policy | None = None,
                  carried: Sequence[tuple[str, str]] = (),
                  fill_unknown: bool = False) -> MergeOutcome:
    """Move everything of ``merged_id`` to ``survivor_id`` and recompute both; the caller
    commits (and tells partners of the status changes in ``MergeOutcome``). ``carried``:
    identifiers of the merged person already moved (an A40's own), returned on un-merge.
    ``fill_unknown``: the survivor takes the merged person's demographics where it has none
    (a record linked on arrival fills what the register does not know); undone on un-merge."""
    if survivor_id == merged_id:
        raise InvalidValue("a person cannot be merged into themself", field="person_id",
                           rule="merge-two-people")
    survivor, merged = _both(uow, survivor_id, merged_id)
    if (survivor.nhs_number and merged.nhs_number
            and survivor.nhs_number != merged.nhs_number):
        raise IdentityConflict("the two records carry different NHS numbers",
                               field="person.nhs_number",
                               rule="never-link-different-nhs-numbers")
    for pid, role, rule in ((survivor_id, "survivor", "merge-into-live-person"),
                            (merged_id, "person to merge", "merge-live-person")):
        # An emptied person has nothing to merge, and nothing to merge into: merging it would
        # record a merge of nothing (and an un-merge that moves nothing back).
        done = open_merge_of(uow, pid)
        if done is not None:
            raise InvalidValue(f"the {role} {pid} was merged into {done['survivor_id']} "
                               f"since (merge {done['id']}); decide about that person, or "
                               "un-merge first", field="person_id", rule=rule)
    conn = uow.connection
    # From the table, not ``merged.facts``: in a worker's batch, facts recorded earlier in
    # the transaction have no id in memory.
    journal = conn.execute(_FACTS_OF, {"pid": merged_id}).all()
    moved_facts = renumbered(survivor.next_seq(), journal)
    if moved_facts:
        conn.execute(_MOVE_FACT, [
            {"fid": fid, "to": survivor_id, "new_seq": after, "new_rb": new_rb}
            for fid, after, new_rb in _fact_moves(moved_facts)])
    identifiers = [[r.source, r.value] for r in conn.execute(_IDENTIFIERS_OF,
                                                             {"pid": merged_id})]
    _move_identifiers(uow, identifiers, merged_id, survivor_id)
    identifiers += [[source_, value] for source_, value in carried
                    if [source_, value] not in identifiers]
    moved: dict[str, Any] = {"facts": moved_facts, "identifiers": identifiers,
                             "nhs_number": None}
    uow.persons.forget()
    survivor, merged = _both(uow, survivor_id, merged_id)
    _note_survivor(survivor, moved)
    _take_nhs_number(survivor, merged, moved)
    if fill_unknown:
        moved["filled"] = _fill_unknown(survivor, merged)
    uow.persons.drop_blocking_keys(merged_id)
    # The merged person first: their NHS number must be free before the survivor takes it.
    merged_applied = _recompute(uow, merged, source, source_ref, by, clock, policy)
    survivor_applied = _recompute(uow, survivor, source, source_ref, by, clock, policy)
    merge_id = str(uuid.uuid4())
    uow.persons.flush()
    conn.execute(insert(person_merges).values(
        id=merge_id, survivor_id=survivor_id, merged_id=merged_id,
        fact_ids=[fid for fid, *_ in moved_facts], moved=moved, source=source,
        source_ref=source_ref, merged_by=by, merged_at=clock.now()))
    close_pair_questions(uow, [(survivor_id, merged_id, merge_id)], clock=clock)
    log.info("persons merged", extra={"merge_id": merge_id, "survivor_id": survivor_id,
                                      "merged_id": merged_id, "facts": len(moved_facts)})
    return MergeOutcome(merge_id, survivor_applied, merged_applied, len(moved_facts))


class _Stored(Protocol):
    id: int | None
    seq: int
    retracted_by: int | None


def renumbered(first_seq: int, journal: Sequence[_Stored]) -> list[list[Any]]:
    """The merged person's stored facts (in seq order) as ``person_merges`` keeps them:
    [fact id, seq before, seq after, retracted_by before], numbered on from ``first_seq``."""
    return [[f.id, f.seq, first_seq + i, f.retracted_by] for i, f in enumerate(journal)]


def _fact_moves(moved_facts: list[list[Any]]) -> list[tuple[int, int, int | None]]:
    """(fact id, new seq, new retracted_by): a retraction points at the renumbered fact."""
    new_seq = {before: after for _, before, after, _ in moved_facts}
    return [(fid, after, new_seq.get(rb) if rb is not None else None)
            for fid, _, after, rb in moved_facts]


# Demographics a fill may set (the NHS number moves by its own rule, ``_take_nhs_number``).
_FILLABLE = tuple(name for name in DEMOGRAPHICS if not name.startswith("nhs_number"))
_DATES = frozenset({"birth_date", "death_date"})


def _note_survivor(survivor: Person, moved: dict[str, Any]) -> None:
    """Keep, with what moved, where the survivor's journal goes on after the merged facts
    (a later fact from there on may have come for the merged record) and its demographics
    as they were: what an un-merge needs to give each person back what is theirs."""
    moved["survivor_seq"] = survivor.next_seq()
    moved["survivor_had"] = {name: _stored_value(getattr(survivor, name))
                             for name in DEMOGRAPHICS}


def _stored_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _read_value(name: str, value: Any) -> Any:
    return date.fromisoformat(value) if name in _DATES and value is not None else value


def _fill_unknown(survivor: Person, merged: Person) -> list[str]:
    """The survivor takes the merged person's value of each demographic it does not know;
    returns the names filled."""
    filled = []
    for name in _FILLABLE:
        if getattr(survivor, name) is None and getattr(merged, name) is not None:
            setattr(survivor, name, getattr(merged, name))
            filled.append(name)
    return filled


def _take_nhs_number(survivor: Person, merged: Person, moved: dict[str, Any]) -> None:
    if merged.nhs_number and not survivor.nhs_number:
        # The number is an identifier: it goes with the facts, and comes back on un-merge.
        moved.update(nhs_number=merged.nhs_number,
                     nhs_number_verified=merged.nhs_number_verified,
                     survivor_nhs_number_verified=survivor.nhs_number_verified)
        survivor.nhs_number, survivor.nhs_number_verified = (merged.nhs_number,
                                                             merged.nhs_number_verified)
        merged.nhs_number = merged.nhs_number_verified = None


@dataclass(frozen=True)
class LoadedPair:
    """Two people read (and locked) in the caller's transaction, to merge in bulk."""

    survivor: PersonSnapshot
    merged: PersonSnapshot
    merged_identifiers: list[list[str]]  # [source, value], as stored


def merge_loaded(uow: SqlUnitOfWork, pairs: Sequence[LoadedPair], *, source: str,
                 source_ref: str, by: str, clock: Clock, policy: Policy | None = None
                 ) -> list[MergeOutcome]:
    """``merge_persons`` for many pairs the caller has read with ``read_page`` inside this
    transaction (locked on PostgreSQL), each person in one pair only, none merged before and
    no two valid NHS numbers differing (the caller checked): the same moves, recomputes and
    ``person_merges`` rows, a statement per kind of row for the lot instead of some thirty
    per merge. The repository must be in batch mode; the caller flushes and commits."""
    conn = uow.connection
    fact_moves: list[dict[str, Any]] = []
    identifier_moves: list[dict[str, Any]] = []
    merge_rows: list[dict[str, Any]] = []
    outcomes: list[MergeOutcome] = []
    now = clock.now()
    for pair in pairs:
        survivor, merged = pair.survivor.person, pair.merged.person
        if survivor.id == merged.id:
            raise InvalidValue("a person cannot be merged into themself", field="person_id",
                               rule="merge-two-people")
        uow.persons.adopt(survivor, pair.survivor.entitlement)
        uow.persons.adopt(merged, pair.merged.entitlement)
        moved_facts = renumbered(survivor.next_seq(), merged.facts)
        by_id = {f.id: f for f in merged.facts}
        for fid, after, new_rb in _fact_moves(moved_facts):
            fact_moves.append({"fid": fid, "to": survivor.id, "new_seq": after,
                               "new_rb": new_rb})
            survivor.facts.append(replace(by_id[fid], seq=after, retracted_by=new_rb))
        merged.facts = []
        identifier_moves += [{"src": src, "val": val, "owner": merged.id, "to": survivor.id}
                             for src, val in pair.merged_identifiers]
        moved: dict[str, Any] = {"facts": moved_facts,
                                 "identifiers": pair.merged_identifiers, "nhs_number": None}
        _note_survivor(survivor, moved)
        _take_nhs_number(survivor, merged, moved)
        # The merged person first: their NHS number must be free before the survivor's.
        merged_applied = _recompute(uow, merged, source, source_ref, by, clock, policy)
        survivor_applied = _recompute(uow, survivor, source, source_ref, by, clock, policy)
        merge_id = str(uuid.uuid4())
        merge_rows.append({"id": merge_id, "survivor_id": survivor.id, "merged_id": merged.id,
                           "fact_ids": [row[0] for row in moved_facts], "moved": moved,
                           "source": source, "source_ref": source_ref, "merged_by": by,
                           "merged_at": now})
        outcomes.append(MergeOutcome(merge_id, survivor_applied, merged_applied,
                                     len(moved_facts)))
    if not pairs:
        return outcomes
    # Facts and identifiers move before the people are written; the merged lose their keys.
    if fact_moves:
        conn.execute(_MOVE_FACT, fact_moves)
    if identifier_moves:
        conn.execute(_MOVE_IDENTIFIER, identifier_moves)
    conn.execute(_DELETE_KEYS_OF, {"ids": [pair.merged.person.id for pair in pairs]})
    uow.persons.flush()
    conn.execute(insert(person_merges), merge_rows)
    close_pair_questions(uow, [(row["survivor_id"], row["merged_id"], row["id"])
                               for row in merge_rows], clock=clock)
    for row in merge_rows:
        log.info("persons merged", extra={"merge_id": row["id"],
                                          "survivor_id": row["survivor_id"],
                                          "merged_id": row["merged_id"],
                                          "facts": len(row["fact_ids"])})
    return outcomes


def unmerge(uow: SqlUnitOfWork, merged_id: str, *, by: str, clock: Clock,
            policy: Policy | None = None, source: str = "register",
            source_ref: str | None = None) -> MergeOutcome:
    """Undo the merge that emptied ``merged_id``: its facts go back to their places, its
    identifiers (and NHS number) back to it, and both people are recomputed. Facts the
    survivor was given since under the merged record's identifiers go with them (after its
    own), with any identifier first told in them — and an owner's accept-source correction
    of a value they told — and the survivor's demographics they (or the merge's fill)
    changed return to what they were."""
    merge = open_merge_of(uow, merged_id)
    if merge is None:
        raise NotFound("this person was not merged into anyone (or was un-merged already)",
                       field="person_id", rule="merge-exists")
    survivor_id = merge["survivor_id"]
    source_ref = source_ref or f"unmerge:{merge['id']}"
    survivor, merged = _both(uow, survivor_id, merged_id)
    if merged.facts:
        raise InvalidValue("facts were recorded on the merged person since the merge; "
                           "move them by hand first", field="person_id",
                           rule="unmerge-exactly")
    moved = merge["moved"]
    conn = uow.connection
    stored = conn.execute(_FACTS_OF, {"pid": survivor_id}).all()
    seq_of = {row.id: row.seq for row in stored}
    back = [fact for fact in moved["facts"] if fact[0] in seq_of]
    if len(back) != len(moved["facts"]):
        raise InvalidValue("some merged facts are no longer the survivor's", field="person_id",
                           rule="unmerge-exactly")
    # Another open merge's facts on the survivor are that merge's to give back, not these.
    others = {fid for fids in conn.execute(_OTHER_MERGES_INTO, {
        "sid": survivor_id, "mid": merge["id"]}).scalars() for fid in fids or ()}
    merged_places = {seq_of[fid] for fid, *_ in back}
    other_places = {seq_of[fid] for fid in others if fid in seq_of}
    later, identifiers = _came_for_merged(survivor, moved, merged_places, other_places)
    # An owner's accept-source of a value the merged record brought leaves with it.
    accepted, undone = _accepted_from_leaving(
        uow, survivor, moved, [f for f in survivor.facts if f.seq in merged_places] + later,
        other_places)
    later = sorted(later + accepted, key=lambda fact: fact.seq)
    moves, unretracted = _journal_moves(back, later, stored, merged_id)
    if moves:
        conn.execute(_MOVE_FACT, moves)
    if unretracted:
        conn.execute(_SET_RETRACTED_BY, unretracted)
    _move_identifiers(uow, identifiers, survivor_id, merged_id)
    uow.persons.forget()
    survivor, merged = _both(uow, survivor_id, merged_id)
    if moved.get("nhs_number") and survivor.nhs_number == moved["nhs_number"]:
        merged.nhs_number = moved["nhs_number"]
        merged.nhs_number_verified = moved.get("nhs_number_verified")
        survivor.nhs_number = None
        survivor.nhs_number_verified = moved.get("survivor_nhs_number_verified")
    _give_back_demographics(survivor, merged, moved)
    if later:
        _take_later_demographics(uow, merged, survivor, len(later))
    uow.persons.reindex(merged_id)  # back in the blocking look-ups
    # The survivor first: the NHS number must be free before the merged person takes it back.
    survivor_applied = _recompute(uow, survivor, source, source_ref, by, clock, policy)
    merged_applied = _recompute(uow, merged, source, source_ref, by, clock, policy)
    uow.persons.flush()
    conn.execute(update(person_merges).where(person_merges.c.id == merge["id"])
                 .values(unmerged_by=by, unmerged_at=clock.now()))
    _supersede_decisions(uow, undone, merge_id=merge["id"], merged_id=merged_id, clock=clock)
    _close_open_conflicts_leaving(
        uow, survivor.id, [f for f in survivor.facts if f.seq in merged_places] + later,
        merge_id=merge["id"], clock=clock)
    record_kept_apart(uow, merged_id, survivor_id, by=by, clock=clock,
                      reason=f"un-merged by a register owner (merge {merge['id']})",
                      source_ref=source_ref)
    log.info("persons un-merged", extra={"merge_id": merge["id"], "survivor_id": survivor_id,
                                         "merged_id": merged_id, "facts": len(back),
                                         "later_facts": len(later)})
    return MergeOutcome(merge["id"], survivor_applied, merged_applied,
                        len(back) + len(later))


_OTHER_MERGES_INTO = select(person_merges.c.fact_ids).where(and_(
    person_merges.c.survivor_id == bindparam("sid"), person_merges.c.id != bindparam("mid"),
    person_merges.c.unmerged_at.is_(None)))
_SET_RETRACTED_BY = (update(facts).where(facts.c.id == bindparam("fid"))
                     .values(retracted_by=bindparam("new_rb")))


def _later_start(moved: dict[str, Any]) -> int | None:
    """The survivor's first journal place after the merged facts (kept since it was
    recorded; for an older merge, the place after the last merged fact, if any moved)."""
    if "survivor_seq" in moved:
        return int(moved["survivor_seq"])
    afters = [after for _, _, after, _ in moved["facts"]]
    return max(afters) + 1 if afters else None


def _came_for_merged(survivor: Person, moved: dict[str, Any], merged_places: set[int],
                     others: set[int]) -> tuple[list[Fact], list[list[str]]]:
    """The survivor's facts recorded after the merge that came in under the merged record's
    identifiers (in journal order), and the identifiers to give back: the merged record's,
    and those first told in such a fact. A fact under one of the survivor's own identifiers
    stays; one without a local id (or under an identifier first told after the merge) came
    for the merged record when it carries the NHS number that record brought."""
    identifiers = [list(ident) for ident in moved["identifiers"]]
    start = _later_start(moved)
    if start is None:
        return [], identifiers
    theirs = {(src, val) for src, val in identifiers}
    number = moved.get("nhs_number")

    def key(fact: Fact) -> tuple[str, str] | None:
        local_id = fact.command.person.local_id
        return (fact.source, local_id) if local_id else None

    told_before = {key(f) for f in survivor.facts
                   if f.seq < start and f.seq not in merged_places} - {None}
    told_after = {key(f) for f in survivor.facts if f.seq >= start} - {None} - told_before
    ours = {(i.source, i.value) for i in survivor.identifiers} - theirs - told_after
    ours |= {key(f) for f in survivor.facts if f.seq in others} - {None} - theirs
    came: list[Fact] = []
    for fact in survivor.facts:
        if fact.seq < start or fact.seq in others:
            continue  # before the merge, or another merged record's (``others``: places)
        told = key(fact)
        if told is not None and told in theirs:
            came.append(fact)
        elif told is not None and told in ours:
            continue
        elif number and _carries_number(fact, number):
            came.append(fact)
            if told is not None:
                theirs.add(told)
                identifiers.append(list(told))
        elif told is not None:
            ours.add(told)
    return came, identifiers


_CORRECTION_REF = "exception:"  # a register correction's source_ref: the exception decided


def _accepted_from_leaving(uow: SqlUnitOfWork, survivor: Person, moved: dict[str, Any],
                           leaving: Sequence[Fact], skip: set[int]
                           ) -> tuple[list[Fact], list[dict[str, Any]]]:
    """The survivor's register corrections since the merge that settled one of its
    ``identity-demographics-conflict`` exceptions ``accept-source:<source>`` for a value a
    fact now ``leaving`` (going back to the merged person) told from that source, and
    those exceptions. The value came with the merged record: kept on the survivor, it would
    count as one of the survivor's own later facts and stay after the un-merge. It goes
    back with the fact it came from (``skip``: another open merge's places)."""
    start = _later_start(moved)
    if start is None or not leaving:
        return [], []
    gone = {fact.seq for fact in leaving}
    store = ExceptionStore(uow.connection)
    found: list[Fact] = []
    decided: list[dict[str, Any]] = []
    for fact in survivor.facts:
        ref = fact.command.provenance.source_ref
        if (fact.seq < start or fact.seq in gone or fact.seq in skip
                or fact.source != REGISTER_SOURCE or not ref.startswith(_CORRECTION_REF)):
            continue
        row = store.get(ref.removeprefix(_CORRECTION_REF))
        decision = (row or {}).get("decision") or ""
        if (row is None or row["kind"] != DEMOGRAPHICS_KIND or row["person_id"] != survivor.id
                or not decision.startswith(ACCEPT_SOURCE)):
            continue
        source = decision.removeprefix(ACCEPT_SOURCE).strip()
        detail = row["detail"] or {}
        name = str(detail.get("field", "")).removeprefix("person.")
        values = [v.get("value") for v in detail.get("values", [])
                  if isinstance(v, dict) and v.get("source") == source]
        if name not in _FILLABLE or not values:
            continue
        if any(f.source == source
               and _stored_value(getattr(f.command.person, name)) == values[0]
               for f in leaving):
            found.append(fact)
            decided.append(row)
    return found, decided


def _supersede_decisions(uow: SqlUnitOfWork, decided: Sequence[dict[str, Any]], *,
                         merge_id: str, merged_id: str, clock: Clock) -> None:
    """An accept-source whose value left with the merged record no longer applies to the
    survivor: closed again by the system (so, like any system close, it does not hold the
    same two values back if the two are merged again), the owner's decision kept in the
    detail under ``superseded``."""
    for row in decided:
        detail = dict(row["detail"] or {})
        detail["superseded"] = {"decision": row["decision"], "closed_by": row["closed_by"],
                                "closed_at": row["closed_at"], "by": f"unmerge:{merge_id}",
                                "value_moved_to": merged_id}
        uow.connection.execute(update(register_exceptions)
                               .where(register_exceptions.c.id == row["id"])
                               .values(status="resolved", decision=AUTO_RESOLVE_DECISION,
                                       closed_by=SYSTEM, closed_at=clock.now(),
                                       detail=detail,
                                       reason=f"no longer applies: un-merged (merge "
                                              f"{merge_id}); the accepted value left with "
                                              "the merged record"))
    if decided:
        log.info("accepted demographics undone by un-merge",
                 extra={"merge_id": merge_id, "exceptions": len(decided)})


_OPEN_DEMOGRAPHICS_OF = select(register_exceptions.c.id, register_exceptions.c.detail).where(
    and_(register_exceptions.c.person_id == bindparam("pid"),
         register_exceptions.c.kind == DEMOGRAPHICS_KIND,
         register_exceptions.c.status.in_(sorted(LIVE))))


def _close_open_conflicts_leaving(uow: SqlUnitOfWork, survivor_id: str,
                                  leaving: Sequence[Fact], *, merge_id: str,
                                  clock: Clock) -> None:
    """An open ``identity-demographics-conflict`` on the survivor whose differing value was
    told by a fact now going back to the merged person no longer asks anything of the
    survivor: closed by the system (the question returns if the two are merged again)."""
    if not leaving:
        return
    gone = {fact.cite() for fact in leaving}
    closing = [row.id for row in uow.connection.execute(_OPEN_DEMOGRAPHICS_OF,
                                                         {"pid": survivor_id})
               if any(cite in gone
                      for value in (row.detail or {}).get("values", [])
                      if isinstance(value, dict) and not value.get("held_by_register")
                      for cite in value.get("facts", []))]
    if closing:
        uow.connection.execute(
            update(register_exceptions).where(register_exceptions.c.id.in_(closing))
            .values(status="resolved", decision=AUTO_RESOLVE_DECISION, closed_by=SYSTEM,
                    closed_at=clock.now(),
                    reason=f"no longer applies: un-merged (merge {merge_id}); the differing "
                           "value left with the merged record"))
        log.info("open demographics conflicts closed by un-merge",
                 extra={"merge_id": merge_id, "exceptions": len(closing)})


def _carries_number(fact: Fact, number: str) -> bool:
    raw = fact.command.person.nhs_number
    return bool(raw) and nhs.is_valid(raw) and nhs.normalise(raw) == number


def _journal_moves(back: list[list[Any]], later: list[Fact], stored: Sequence[Any],
                   merged_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The fact moves that give the merged person its journal back — the merged facts at
    their places, then the later facts after them in order — and the survivor's facts whose
    retraction by a fact leaving it is undone. A retraction between the two people is
    undone on both sides (each as if the other had never joined); within the facts going
    back it follows them to their new places."""
    by_seq = {row.seq: row for row in stored}
    seq_of = {row.id: row.seq for row in stored}
    new_place: dict[int, int] = {}
    before_rb: dict[int, int | None] = {}
    for fid, before, _, rb in back:
        new_place[seq_of[fid]] = before
        before_rb[seq_of[fid]] = rb
    following = max((before for _, before, _, _ in back), default=0) + 1
    for fact in later:
        new_place[fact.seq] = following
        following += 1
    moves = []
    for place, to in new_place.items():
        rb = by_seq[place].retracted_by
        new_rb = new_place[rb] if rb in new_place else before_rb.get(place)
        moves.append({"fid": by_seq[place].id, "to": merged_id, "new_seq": to,
                      "new_rb": new_rb})
    unretracted = [{"fid": row.id, "new_rb": None} for row in stored
                   if row.seq not in new_place and row.retracted_by in new_place]
    return moves, unretracted


def _told(fact: Fact, name: str, value: Any) -> bool:
    """Whether the fact's record gave ``value`` for the demographic ``name``."""
    if name == "nhs_number":
        return bool(value) and _carries_number(fact, value)
    return getattr(fact.command.person, name) == value


def _give_back_demographics(survivor: Person, merged: Person, moved: dict[str, Any]) -> None:
    """Each survivor demographic changed since the merge by a fill or by a fact that has
    gone back to the merged person (and told by none of the survivor's own facts since)
    returns to its value before the merge. An older merge kept no such values: nothing."""
    had, start = moved.get("survivor_had"), _later_start(moved)
    if had is None or start is None:
        return
    filled = set(moved.get("filled") or ())
    own_later = [f for f in survivor.facts if f.seq >= start]
    for name in DEMOGRAPHICS:
        if name == "nhs_number_verified":
            continue  # follows the number
        now, before = getattr(survivor, name), _read_value(name, had.get(name))
        if now == before or any(_told(f, name, now) for f in own_later):
            continue
        if name in filled or any(_told(f, name, now) for f in merged.facts):
            setattr(survivor, name, before)
            if name == "nhs_number":
                survivor.nhs_number_verified = had.get("nhs_number_verified")


def _take_later_demographics(uow: SqlUnitOfWork, merged: Person, survivor: Person,
                             count: int) -> None:
    """The merged person's demographics as its own later facts (the last ``count`` of its
    journal) would have left them, had they reached it: what they told is replayed on it
    with the register's rules. An NHS number among them is taken only if nobody holds it."""
    keep, replay = merged.facts[:-count], merged.facts[-count:]
    replica = Person(id=merged.id, facts=[replace(f) for f in keep],
                     **{name: getattr(merged, name) for name in DEMOGRAPHICS})
    for fact in replay:
        try:
            replica.record(fact.command)
        except RegisterError:
            continue  # not possible on this journal: it tells nothing here
    for name in _FILLABLE:
        setattr(merged, name, getattr(replica, name))
    number = replica.nhs_number
    # The survivor gives up (in memory) a number that came with these facts: it is free.
    if number and not merged.nhs_number and number != survivor.nhs_number and (
            uow.persons.locate(number, "", None)[0] in (None, merged.id, survivor.id)):
        merged.nhs_number, merged.nhs_number_verified = number, replica.nhs_number_verified
    elif number and number == merged.nhs_number:
        merged.nhs_number_verified = replica.nhs_number_verified


_LIVE_OF_PAIR = (select(register_exceptions.c.id)
                 .where(and_(register_exceptions.c.fingerprint == bindparam("fp"),
                             register_exceptions.c.status.in_(sorted(LIVE))))
                 .order_by(register_exceptions.c.raised, register_exceptions.c.id))


def close_pair_questions(uow: SqlUnitOfWork, merged_pairs: Sequence[tuple[str, str, str]],
                         *, clock: Clock) -> list[str]:
    """Close, as superseded, the live ``identity-uncertain`` question about each pair a
    merge has just joined ((survivor, merged, merge id)): the register holds them as one
    now, and a question left open could be answered ``different-people`` on a merged pair.
    Closed by the system (``resolved``, the merge named in the reason); a ``same-person``
    decision that made the merge overwrites it with the owner's. Returns the ids closed."""
    store = ExceptionStore(uow.connection)
    closed: list[str] = []
    for survivor_id, merged_id, merge_id in merged_pairs:
        ids = list(uow.connection.execute(
            _LIVE_OF_PAIR, {"fp": pair_fingerprint(survivor_id, merged_id)}).scalars())
        store.close(ids, status="resolved", decision=AUTO_RESOLVE_DECISION,
                    reason=f"superseded: the two were merged (merge {merge_id})",
                    closed_by=SYSTEM, at=clock.now())
        closed += ids
    if closed:
        log.info("pair questions closed by a merge", extra={"exceptions": len(closed)})
    return closed


def record_kept_apart(uow: SqlUnitOfWork, person_id: str, other_id: str, *, by: str,
                      clock: Clock, reason: str, source_ref: str) -> list[str]:
    """Record a person's decision that ``person_id`` and ``other_id`` are different people,
    as ``different-people`` on an ``identity-uncertain`` exception with the pair's
    fingerprint (what ``identity.pair_known`` reads): a live question about the pair is
    closed with it; else a closed one is written on ``person_id``. Returns the ids closed."""
    fp = pair_fingerprint(person_id, other_id)
    store = ExceptionStore(uow.connection)
    ids = list(uow.connection.execute(_LIVE_OF_PAIR, {"fp": fp}).scalars())
    if not ids:
        uow.persons.flush()  # the exception's person row must exist (batch mode defers it)
        detail = {"candidate_person_id": other_id, "rule": "unmerged-by-register-owner",
                  "source": "register", "source_ref": source_ref}
        summary = (f"Kept apart from {other_id} by a register owner's un-merge: "
                   "different people")
        ids = [eid for eid, _ in store.open_many(
            person_id, [Finding(REVIEW_EXCEPTION_KIND, fp, summary, detail)], clock.now())]
    store.close(ids, status="dismissed", decision=DIFFERENT_PEOPLE, reason=reason,
                closed_by=by, at=clock.now())
    log.info("pair kept apart", extra={"person_id": person_id, "other_person_id": other_id,
                                       "exceptions": len(ids)})
    return ids


def _move_identifiers(uow: SqlUnitOfWork, identifiers: list[list[str]], owner: str,
                      to: str) -> None:
    if identifiers:
        uow.connection.execute(_MOVE_IDENTIFIER, [
            {"src": source, "val": value, "owner": owner, "to": to}
            for source, value in identifiers])


def _recompute(uow: SqlUnitOfWork, person: Person, source: str, source_ref: str, by: str,
               clock: Clock, policy: Policy | None) -> Applied:
    position = compute_position(person, clock.today(), policy)
    changes = uow.persons.save(person, position, source=source, source_ref=source_ref,
                               recorded_by=by, now=clock.now())
    return Applied(person_id=person.id, fact_seq=person.next_seq() - 1, created=False,
                   changes=changes, position=position)
