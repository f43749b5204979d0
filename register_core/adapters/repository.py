"""The person repository over SQLAlchemy Core: loads a person with their journal, and saves
new facts, identifiers and the recomputed projections in the caller's transaction.

Every statement is built once at import: building one per call (``select(...).where(a == b)``)
cost several times what SQLite took to run it. The writes are in ``person_writes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)

from reconciliation.blocking import person_blocking_keys
from reconciliation.identity import Candidate
from register_core.domain.commands import MergePersons
from register_core.domain.model import Identifier, Person
from register_core.domain.position import Position

from .person_writes import DEMOGRAPHICS as _DEMOGRAPHICS
from .person_writes import PersonRows, WriteBuffer
from .register_pages import read_journals
from .tables import entitlements, person_identifiers, persons
from .tables import person_blocking_keys as blocking_keys_table


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def projection_values(person: Person, position: Position | None) -> dict[str, str | None]:
    """The register values whose every change is kept in ``register_changes``."""
    values = {f"person.{name}": _text(getattr(person, name)) for name in _DEMOGRAPHICS}
    if position is not None:
        ent = position.entitlement
        values.update({
            "entitlement.status": ent.status,
            "entitlement.start": _text(ent.start),
            "entitlement.trigger_section": ent.trigger_section,
            "entitlement.responsible_council": ent.responsible_council,
            "entitlement.responsible_icb": ent.responsible_icb,
            "entitlement.named_practitioner": ent.named_practitioner,
            "entitlement.aftercare_plan_date": _text(ent.aftercare_plan_date),
            "entitlement.next_review_due": _text(ent.next_review_due),
            "entitlement.ended": _text(ent.ended.date if ent.ended else None),
            "entitlement.on_cto": _text(position.on_cto),
        })
    return values


# One round trip for both identity look-ups; ``k`` says which key matched.
_LOCATE = union_all(
    select(literal("n").label("k"), persons.c.id.label("pid"))
    .where(persons.c.nhs_number == bindparam("nhs")),
    select(literal("l").label("k"), person_identifiers.c.person_id.label("pid"))
    .where(and_(person_identifiers.c.source == bindparam("source"),
                person_identifiers.c.value == bindparam("value"))))
_BY_NHS = select(persons.c.id).where(persons.c.nhs_number == bindparam("nhs"))
_BY_IDENTIFIER = select(person_identifiers.c.person_id).where(and_(
    person_identifiers.c.source == bindparam("source"),
    person_identifiers.c.value == bindparam("value")))
_IDS_BY_NHS = select(persons.c.nhs_number, persons.c.id).where(
    persons.c.nhs_number.in_(bindparam("nhs", expanding=True)))
_IDS_BY_IDENTIFIER = select(person_identifiers.c.source, person_identifiers.c.value,
                            person_identifiers.c.person_id).where(
    tuple_(person_identifiers.c.source, person_identifiers.c.value).in_(
        bindparam("keys", expanding=True)))
# People's rows with their entitlement projection (the "before" of the change history), and
# their identifiers: ``get`` reads one person, a batch's ``prefetch`` many, the same way.
_ENTITLEMENT_READ = [c.label(f"e_{c.name}") for c in entitlements.columns]
_GET_PEOPLE = (select(persons, *_ENTITLEMENT_READ)
               .select_from(persons.outerjoin(entitlements))
               .where(persons.c.id.in_(bindparam("pids", expanding=True)))
               .order_by(persons.c.id))
_GET_PEOPLE_LOCKED = _GET_PEOPLE.with_for_update(of=persons)  # in id order
_GET_PEOPLE_IDENTIFIERS = (
    select(person_identifiers.c.person_id, person_identifiers.c.source,
           person_identifiers.c.value)
    .where(person_identifiers.c.person_id.in_(bindparam("pids", expanding=True)))
    .order_by(person_identifiers.c.id))
# People sharing a blocking key with an incoming person: one indexed query, at most
# MAX_CANDIDATES (a key shared by more — a care home's postcode and initial — is weak anyway).
MAX_CANDIDATES = 100
_CANDIDATE_COLUMNS = ("nhs_number", "nhs_number_verified", "family_name", "given_name",
                      "birth_date", "sex", "postcode", "gp_practice_ods")
def _candidates_query(without_nhs_only: bool) -> Any:
    sharing = blocking_keys_table.c.key.in_(bindparam("keys", expanding=True))
    if without_nhs_only:
        sharing = and_(sharing, blocking_keys_table.c.nhs_known.is_(False))
    return (select(persons.c.id, *(persons.c[name] for name in _CANDIDATE_COLUMNS))
            .where(persons.c.id.in_(select(blocking_keys_table.c.person_id).where(sharing)))
            .order_by(persons.c.id).limit(MAX_CANDIDATES))


_CANDIDATES = _candidates_query(without_nhs_only=False)
_CANDIDATES_WITHOUT_NHS = _candidates_query(without_nhs_only=True)


def _chunk_candidates_query() -> Any:
    """The people behind many keys at once, each key's first MAX_CANDIDATES people by id with
    and without an NHS number: enough to answer ``candidates`` exactly for any set of these
    keys (the first MAX_CANDIDATES of a union lie within each part's first MAX_CANDIDATES).
    Keys only records with an NHS number ask about (``without_nhs``) read only the people
    without one: a key everyone shares is read for no one who cannot be linked."""
    k = blocking_keys_table
    ranked = select(k.c.key, k.c.nhs_known, k.c.person_id, func.row_number().over(
        partition_by=(k.c.key, k.c.nhs_known), order_by=k.c.person_id).label("rank")).where(
        or_(k.c.key.in_(bindparam("keys", expanding=True)),
            and_(k.c.key.in_(bindparam("without_nhs", expanding=True)),
                 k.c.nhs_known.is_(False)))).subquery()
    return (select(ranked.c.key, ranked.c.nhs_known, persons.c.id,
                   *(persons.c[name] for name in _CANDIDATE_COLUMNS))
            .join(persons, persons.c.id == ranked.c.person_id)
            .where(ranked.c.rank <= MAX_CANDIDATES))


_CHUNK_CANDIDATES = _chunk_candidates_query()


def _candidate(row: Any, first: int) -> Candidate:
    """A Candidate from a row holding the id at ``first - 1`` and the candidate columns."""
    return Candidate(id=row[first - 1], **{name: row[first + i]
                                           for i, name in enumerate(_CANDIDATE_COLUMNS)})
_DELETE_KEYS = delete(blocking_keys_table).where(
    blocking_keys_table.c.person_id == bindparam("pid"))
# What the blocking keys are computed from: keys are rewritten only when one of these changes.
_KEY_BASIS = ("family_name", "given_name", "birth_date", "postcode", "nhs_number")


def _key_basis(person: Any) -> tuple[Any, ...]:
    return tuple(getattr(person, name) for name in _KEY_BASIS)



class SqlPersonRepository:
    def __init__(self, connection: Connection) -> None:
        self.conn = connection
        self._postgres = connection.dialect.name == "postgresql"
        # What the database holds (or will once the buffer is flushed), per person.
        self._loaded: dict[str, dict[str, str | None]] = {}
        self._stored_identifiers: dict[str, set[Identifier]] = {}
        self._stored_detentions: dict[str, list[Any]] = {}
        self._stored_version: dict[str, int] = {}
        self._has_entitlement: set[str] = set()
        self._key_basis: dict[str, tuple[Any, ...]] = {}  # demographics the stored keys are of
        self._writes = WriteBuffer()
        self._batch = False
        # In batch mode: persons as this transaction holds them, and their keys.
        self._persons: dict[str, Person] = {}
        self._by_nhs: dict[str, str] = {}
        self._by_identifier: dict[tuple[str, str], str] = {}
        # In batch mode: keys a prefetch found nowhere (until this batch gives them a person).
        self._absent_nhs: set[str] = set()
        self._absent_identifiers: set[tuple[str, str]] = set()
        # In batch mode, until the next flush: per blocking key, the people stored with it
        # (whether they hold an NHS number, and as a candidate), read for a whole chunk, and
        # whether those with an NHS number were read too.
        self._stored_candidates: dict[str, list[tuple[bool, Candidate]]] = {}
        self._complete_candidates: set[str] = set()

    # -- a batch in one transaction ------------------------------------------------------

    def batch_mode(self) -> None:
        """For many commands in one transaction (the inbound worker): a person read or saved
        earlier in it is served from memory, and writes wait for ``flush``, which the
        caller must call before it commits or reads the register tables itself. After
        rolling back to a savepoint taken after a flush, call ``rolled_back``."""
        self._batch = True

    def flush(self) -> None:
        self._stored_candidates.clear()  # the keys written now are not in it
        self._complete_candidates.clear()
        if self._writes:
            self._writes.flush(self.conn)

    def forget(self) -> None:
        """Write what is pending, then read everything again when needed."""
        self.flush()
        self._drop_remembered()

    def rolled_back(self) -> None:
        """The transaction went back to a savepoint taken after the last flush: drop the
        writes since and what was remembered about stored state."""
        self._writes.clear()
        self._drop_remembered()

    def drop_blocking_keys(self, person_id: str) -> None:
        """A person merged into another is nobody's candidate any more (their keys return
        with an un-merge, through ``reindex``)."""
        self.flush()
        self.conn.execute(_DELETE_KEYS, {"pid": person_id})

    def reindex(self, person_id: str) -> None:
        """Write the person's keys afresh at their next save."""
        self._key_basis.pop(person_id, None)

    def _drop_remembered(self) -> None:
        for remembered in (self._persons, self._by_nhs, self._by_identifier, self._absent_nhs,
                           self._absent_identifiers, self._stored_candidates,
                           self._complete_candidates, self._loaded,
                           self._stored_identifiers, self._stored_detentions,
                           self._stored_version, self._has_entitlement, self._key_basis):
            remembered.clear()

    def _remember(self, person: Person) -> None:
        if not self._batch:
            return
        self._persons[person.id] = person
        if person.nhs_number:
            self._by_nhs[person.nhs_number] = person.id
        for ident in person.identifiers:
            self._by_identifier[ident.source, ident.value] = person.id

    # -- reads ---------------------------------------------------------------------------

    def get(self, person_id: str, *, for_update: bool = False) -> Person | None:
        kept = self._persons.get(person_id)
        if kept is not None:
            return kept  # read (and locked, on PostgreSQL) or created by this transaction
        return self._read_people([person_id], for_update=for_update).get(person_id)

    def prefetch(self, identities: Iterable[tuple[str | None, str, str | None]]) -> None:
        """Batch mode: find the people behind a chunk of commands' identities (valid NHS
        number or None, source, the source's local id or None) and read them, locked, in
        five queries, so that ``locate`` and ``get`` answer the chunk from memory (on
        PostgreSQL they were three or four round trips a message). A key found nowhere is
        remembered as absent; a person this batch creates with it is remembered first."""
        if not self._batch:
            return
        nhs_wanted: set[str] = set()
        local_wanted: set[tuple[str, str]] = set()
        for nhs, source, local_id in identities:
            if nhs and nhs not in self._by_nhs and nhs not in self._absent_nhs:
                nhs_wanted.add(nhs)
            key = (source, local_id) if local_id else None
            if key and key not in self._by_identifier and key not in self._absent_identifiers:
                local_wanted.add(key)
        found: set[str] = set()
        if nhs_wanted:
            by_nhs = dict(self.conn.execute(_IDS_BY_NHS, {"nhs": sorted(nhs_wanted)}).all())
            self._absent_nhs |= nhs_wanted - by_nhs.keys()
            found.update(by_nhs.values())
        if local_wanted:
            rows = self.conn.execute(_IDS_BY_IDENTIFIER, {"keys": sorted(local_wanted)}).all()
            self._absent_identifiers |= local_wanted - {(r.source, r.value) for r in rows}
            found.update(r.person_id for r in rows)
        self._read_people(sorted(found - self._persons.keys()), for_update=True)

    def _read_people(self, ids: Sequence[str], *, for_update: bool) -> dict[str, Person]:
        """Read people with their identifiers and journals (three queries however many),
        locked on PostgreSQL when ``for_update``, and remember them as stored."""
        if not ids:
            return {}
        query = _GET_PEOPLE_LOCKED if for_update and self._postgres else _GET_PEOPLE
        rows = {r["id"]: r for r in self.conn.execute(query, {"pids": list(ids)}).mappings()}
        people = {pid: self._person_of(row) for pid, row in rows.items()}
        if not people:
            return people
        for r in self.conn.execute(_GET_PEOPLE_IDENTIFIERS, {"pids": list(people)}):
            people[r.person_id].identifiers.append(Identifier(r.source, r.value))
        read_journals(self.conn, people)
        for pid, person in people.items():
            self._took(person, rows[pid])
        return people

    @staticmethod
    def _person_of(row: Any) -> Person:
        return Person(id=row["id"], version=row["version"],
                      **{name: row[name] for name in _DEMOGRAPHICS})

    def _took(self, person: Person, row: Any) -> None:
        """Remember a person just read with their identifiers and facts, as stored."""
        self._loaded[person.id] = self._stored_projection(person, row)
        self._stored_identifiers[person.id] = set(person.identifiers)
        self._stored_version[person.id] = person.version
        self._key_basis[person.id] = _key_basis(person)
        self._remember(person)

    def adopt(self, person: Person, entitlement: dict[str, Any] | None) -> None:
        """Take a person read elsewhere in this transaction (``register_pages.read_page``,
        its ``entitlement`` row as stored) as if ``get`` had read them, so ``save`` writes
        and reports only what changed. Their identifiers are taken as stored: the person
        holds none, so ``save`` writes none."""
        self._took(person, {
            "e_person_id": person.id if entitlement is not None else None,
            **{f"e_{name}": value for name, value in (entitlement or {}).items()}})

    def candidates(self, keys: Sequence[str], *, without_nhs_only: bool = False
                   ) -> list[Candidate]:
        """People sharing any of ``keys`` (blocking keys), by id, as they are now.

        In batch mode the people this transaction holds are taken from memory: their rows,
        and the keys of those created or changed since the last flush, may not be written
        yet, and the next message must still find a person the previous one created.
        ``without_nhs_only``: only people without an NHS number (the incoming record has a
        valid one, and different valid numbers never link)."""
        if not keys:
            return []
        wanted = set(keys)
        found: dict[str, Candidate | None]
        if wanted.issubset(self._stored_candidates) and (
                without_nhs_only or wanted.issubset(self._complete_candidates)):
            stored = {candidate.id: candidate for key in wanted
                      for nhs_known, candidate in self._stored_candidates[key]
                      if not (without_nhs_only and nhs_known)}
            found = {pid: stored[pid] for pid in sorted(stored)[:MAX_CANDIDATES]}
        else:
            query = _CANDIDATES_WITHOUT_NHS if without_nhs_only else _CANDIDATES
            found = {row.id: _candidate(row, 1)
                     for row in self.conn.execute(query, {"keys": sorted(wanted)})}
        for pid, (held, _, nhs_known) in self._writes.blocking_keys.items():
            if wanted.intersection(held) and not (without_nhs_only and nhs_known):
                found.setdefault(pid, None)
        out = []
        for pid in sorted(found):
            person = self._persons.get(pid)
            candidate = Candidate.from_person(pid, person) if person else found[pid]
            if candidate is not None and not (without_nhs_only and candidate.nhs_number):
                out.append(candidate)
        return out

    def prefetch_candidates(self, keys: Iterable[str] = (), without_nhs_only: Iterable[str] = ()
                            ) -> None:
        """Batch mode: read the people behind a chunk's blocking keys in one query, so that
        ``candidates`` answers from memory until the next flush; for ``without_nhs_only``
        keys only the people without an NHS number (what a record holding one may link to)."""
        if not self._batch:
            return
        complete = set(keys) - self._complete_candidates
        partial = set(without_nhs_only) - complete - self._stored_candidates.keys()
        if not complete and not partial:
            return
        for key in complete | partial:
            self._stored_candidates[key] = []
        self._complete_candidates |= complete
        for row in self.conn.execute(_CHUNK_CANDIDATES, {"keys": sorted(complete),
                                                         "without_nhs": sorted(partial)}):
            self._stored_candidates[row.key].append((bool(row.nhs_known), _candidate(row, 3)))

    def locate(self, nhs_number: str | None, source: str, local_id: str | None
               ) -> tuple[str | None, str | None]:
        """(person id by NHS number, person id by the source's identifier), each or None.

        A key of a person this transaction holds is answered from memory (in batch mode its
        rows may not be written yet); only the others are looked up, in one round trip."""
        by_nhs = self._by_nhs.get(nhs_number) if nhs_number else None
        by_local = self._by_identifier.get((source, local_id)) if local_id else None
        find_nhs = (nhs_number if nhs_number and by_nhs is None
                    and nhs_number not in self._absent_nhs else None)
        find_local = (local_id if local_id and by_local is None
                      and (source, local_id) not in self._absent_identifiers else None)
        if find_nhs and find_local:
            found = dict(self.conn.execute(_LOCATE, {"nhs": find_nhs, "source": source,
                                                     "value": find_local}).all())
            return found.get("n"), found.get("l")
        if find_nhs:
            by_nhs = self.id_by_nhs_number(find_nhs)
        if find_local:
            by_local = self.id_by_identifier(source, find_local)
        return by_nhs, by_local

    def id_by_nhs_number(self, nhs_number: str) -> str | None:
        return self.conn.execute(_BY_NHS, {"nhs": nhs_number}).scalar()

    def id_by_identifier(self, source: str, value: str) -> str | None:
        return self.conn.execute(_BY_IDENTIFIER, {"source": source, "value": value}).scalar()

    def _stored_projection(self, person: Person, row: Any) -> dict[str, str | None]:
        values = {f"person.{name}": _text(getattr(person, name)) for name in _DEMOGRAPHICS}
        has_entitlement = row["e_person_id"] is not None
        if has_entitlement:
            self._has_entitlement.add(person.id)
        self._stored_detentions[person.id] = (row["e_detentions"] or []
                                              if has_entitlement else [])
        if has_entitlement:
            values.update({
                "entitlement.status": row["e_status"],
                "entitlement.start": _text(row["e_start"]),
                "entitlement.trigger_section": row["e_trigger_section"],
                "entitlement.responsible_council": row["e_responsible_council"],
                "entitlement.responsible_icb": row["e_responsible_icb"],
                "entitlement.named_practitioner": row["e_named_practitioner"],
                "entitlement.aftercare_plan_date": _text(row["e_aftercare_plan_date"]),
                "entitlement.next_review_due": _text(row["e_next_review_due"]),
                "entitlement.ended": _text(row["e_ended_date"]),
                "entitlement.on_cto": _text(row["e_on_cto"]),
            })
        return values

    # -- writes --------------------------------------------------------------------------

    def save(self, person: Person, position: Position, *, source: str, source_ref: str,
             recorded_by: str, now: datetime) -> list[tuple[str, str | None, str | None]]:
        """Write the person, new facts and projections; return the changed register values.

        Optimistic locking on ``persons.version`` turns a lost race into ConcurrentChange, so
        two writers never both "win" (the caller retries the whole unit of work).
        """
        before = self._loaded.get(person.id, {})
        rows = self._writes.persons.get(person.id)
        if rows is None:
            created = person.version == 0
            rows = PersonRows(demographics={}, version=0, updated_at=now,
                              created_at=now if created else None,
                              stored_version=self._stored_version.get(person.id,
                                                                      person.version))
            self._writes.persons[person.id] = rows
        person.version += 1
        rows.demographics = {name: getattr(person, name) for name in _DEMOGRAPHICS}
        rows.version, rows.updated_at = person.version, now
        merged = any(isinstance(f.command, MergePersons) for f in person.new_facts)
        self._save_blocking_keys(person)
        self._save_identifiers(person)
        self._save_facts(person, now)
        self._save_projection(person, position, now, rows)
        after = projection_values(person, position)
        changes = [(name, before.get(name), value) for name, value in after.items()
                   if before.get(name) != value]
        self._writes.changes.extend(
            {"person_id": person.id, "field": name, "old_value": old, "new_value": new,
             "source": source, "source_ref": source_ref, "recorded_by": recorded_by,
             "at": now} for name, old, new in changes)
        if merged:
            # A merge moves an identifier off another person, whom this transaction may
            # have read already: write it now and read everyone again.
            self.forget()
        elif not self._batch:
            self.flush()
        self._loaded[person.id] = after
        self._stored_version[person.id] = person.version
        self._has_entitlement.add(person.id)
        if not merged:
            self._remember(person)
        return changes

    def _save_blocking_keys(self, person: Person) -> None:
        """Queue the person's keys when the demographics behind them changed (or are new).
        Called after the version is bumped: version 1 is a person first written now."""
        basis = _key_basis(person)
        if person.id in self._key_basis and self._key_basis[person.id] == basis:
            return
        self._key_basis[person.id] = basis
        pending = self._writes.blocking_keys.get(person.id)
        replace = pending[1] if pending is not None else person.version > 1
        self._writes.blocking_keys[person.id] = (
            tuple(dict.fromkeys(person_blocking_keys(person))), replace,
            bool(person.nhs_number))

    def _save_identifiers(self, person: Person) -> None:
        known = self._stored_identifiers.setdefault(person.id, set())
        for ident in person.identifiers:
            if ident not in known:
                known.add(ident)
                self._writes.identifiers[ident.source, ident.value] = person.id

    def _save_facts(self, person: Person, now: datetime) -> None:
        new = person.new_facts
        self._writes.facts.extend((person.id, f, now) for f in new)
        new_seqs = {f.seq for f in new}
        if new_seqs:
            self._writes.retractions.extend(
                {"pid": person.id, "fseq": f.seq, "by": f.retracted_by} for f in person.facts
                if f.retracted_by in new_seqs and f.seq not in new_seqs)
        person.new_facts = []

    def _save_projection(self, person: Person, position: Position, now: datetime,
                         rows: PersonRows) -> None:
        if rows.entitlement is None:
            rows.entitlement_exists = person.id in self._has_entitlement
        rows.entitlement = entitlement_row(position, now)
        episodes = rows.entitlement["detentions"]
        # The detentions table is rewritten only when the episodes really changed.
        if episodes != self._stored_detentions.get(person.id):
            self._stored_detentions[person.id] = episodes
            rows.detentions = [{
                "person_id": person.id, "ref": d.ref, "section": d.section, "start": d.start,
                "end": d.end, "end_reason": d.end_reason, "provider_ods": d.provider_ods}
                for d in position.detentions]


# Bookkeeping columns of an entitlement row, not part of what the position says: a row that
# differs from a recomputed one only in these holds the same register values.
BOOKKEEPING = frozenset({"as_of", "updated_at"})


def entitlement_row(position: Position, now: datetime) -> dict[str, Any]:
    """The ``entitlements`` row (without ``person_id``) that stores ``position``."""
    ent = position.entitlement
    episodes = [[d.ref, d.section, _text(d.start), _text(d.end), d.end_reason,
                 d.provider_ods] for d in position.detentions]
    return {
        "status": ent.status, "start": ent.start, "pending_since": ent.pending_since,
        "trigger_section": ent.trigger_section, "trigger_episode": ent.trigger_episode,
        "responsible_council": ent.responsible_council,
        "responsible_icb": ent.responsible_icb,
        "named_practitioner": ent.named_practitioner,
        "aftercare_plan_date": ent.aftercare_plan_date, "last_review": ent.last_review,
        "next_review_due": ent.next_review_due,
        "ended_date": ent.ended.date if ent.ended else None,
        "ended": ({"date": ent.ended.date.isoformat(), "reason": ent.ended.reason,
                   "council_signoff": ent.ended.council_signoff,
                   "icb_signoff": ent.ended.icb_signoff} if ent.ended else None),
        "on_cto": position.on_cto, "in_hospital": position.in_hospital,
        "explain": {k: v.as_dict() for k, v in position.explain.items()},
        "as_of": position.as_of, "updated_at": now, "detentions": episodes,
    }


def projection_unchanged(stored: dict[str, Any] | None, position: Position) -> bool:
    """Whether the stored entitlement row already says what ``position`` says (the sweep
    then writes nothing for the person)."""
    if stored is None:
        return False
    fresh = entitlement_row(position, datetime.min)
    return all(stored.get(name) == value for name, value in fresh.items()
               if name not in BOOKKEEPING)
