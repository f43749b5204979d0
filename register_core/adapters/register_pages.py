"""The register a page of people at a time, for the sweep: three queries per page where
reading person by person took five per person.

``read_page`` is a snapshot, read without locks; ``lock_unchanged`` then locks (PostgreSQL,
skipping rows another transaction holds) those whose version is still the one read, so the
sweep writes only what it computed from the facts that are still there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select

from register_core.domain.codec import command_from_json
from register_core.domain.model import Fact, Person

from .person_writes import DEMOGRAPHICS
from .tables import entitlements, facts, persons

_ENTITLEMENT_NAMES = [c.name for c in entitlements.columns if c.name != "person_id"]
_ENTITLEMENT_READ = [entitlements.c[name].label(f"e_{name}") for name in _ENTITLEMENT_NAMES]
_PAGE_FACTS = (select(facts.c.person_id, facts.c.id, facts.c.seq, facts.c.kind,
                      facts.c.payload, facts.c.retracted_by)
               .where(facts.c.person_id.in_(bindparam("pids", expanding=True)))
               .order_by(facts.c.person_id, facts.c.seq))
_VERSIONS = select(persons.c.id, persons.c.version).where(
    persons.c.id.in_(bindparam("pids", expanding=True))).order_by(persons.c.id)
_VERSIONS_LOCKED = _VERSIONS.with_for_update(of=persons, skip_locked=True)


@dataclass
class PersonSnapshot:
    person: Person  # with their journal; identifiers are not read
    entitlement: dict[str, Any] | None  # the stored projection row, None if never written


def read_page(conn: Connection, ids: Sequence[str]) -> list[PersonSnapshot]:
    """The people ``ids`` (in that order) with their journals and stored projections."""
    if not ids:
        return []
    query = (select(persons, *_ENTITLEMENT_READ, entitlements.c.person_id.label("e_pid"))
             .select_from(persons.outerjoin(entitlements))
             .where(persons.c.id.in_(ids)))
    found: dict[str, PersonSnapshot] = {}
    for row in conn.execute(query).mappings():
        person = Person(id=row["id"], version=row["version"],
                        **{name: row[name] for name in DEMOGRAPHICS})
        stored = ({name: row[f"e_{name}"] for name in _ENTITLEMENT_NAMES}
                  if row["e_pid"] is not None else None)
        found[person.id] = PersonSnapshot(person, stored)
    read_journals(conn, {pid: snapshot.person for pid, snapshot in found.items()})
    return [found[pid] for pid in ids if pid in found]


def read_journals(conn: Connection, people: dict[str, Person]) -> None:
    """Append to each person (by id) their journal, in sequence: one query for them all."""
    if not people:
        return
    for r in conn.execute(_PAGE_FACTS, {"pids": list(people)}):
        people[r.person_id].facts.append(Fact(
            id=r.id, seq=r.seq, command=command_from_json(r.kind, r.payload),
            retracted_by=r.retracted_by))


def _lock(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    """Id → version of those of ``ids`` that exist, locked for this transaction on
    PostgreSQL in id order. A row another transaction holds is skipped, not waited for: the
    caller takes that person on their own later, so it never waits in a lock cycle with the
    inbound worker. SQLite's writer holds the whole database."""
    if not ids:
        return {}
    query = _VERSIONS_LOCKED if conn.dialect.name == "postgresql" else _VERSIONS
    return dict(conn.execute(query, {"pids": sorted(ids)}).tuples().all())


def lock_people(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Of ``ids``, those that exist, locked (as ``_lock``)."""
    return set(_lock(conn, ids))


def lock_unchanged(conn: Connection, versions: dict[str, int]) -> set[str]:
    """Of the people in ``versions`` (id → the version read), those still at that version,
    locked (as ``_lock``)."""
    return {pid for pid, version in _lock(conn, list(versions)).items()
            if versions[pid] == version}
