"""Each person's sweep checkpoint (``tables.person_checks``): written in the transaction that
brings their position and exceptions in step, read by the sweep to pass over the people for
whom it still holds (same journal version, same rules, its date not yet passed).

A checkpoint names the version it was computed from, so it needs no lock: if the person
changed meanwhile, the version no longer matches and the next sweep recomputes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, bindparam, case, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .tables import person_checks, persons


@dataclass(frozen=True)
class Check:
    person_id: str
    version: int  # the journal version the position and findings were computed from
    holds_until: date | None  # the last day they stay right (None: no date moves them)


def _upsert(dialect: str) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(person_checks)
    return statement.on_conflict_do_update(
        index_elements=[person_checks.c.person_id],
        set_={"version": statement.excluded.version, "rules": statement.excluded.rules,
              "holds_until": statement.excluded.holds_until})


_UPSERT = {name: _upsert(name) for name in ("postgresql", "sqlite")}


def record_checks(conn: Connection, checks: Sequence[Check], rules: str) -> None:
    """Write (or replace) the checkpoints of ``checks``, all computed under ``rules``."""
    if not checks:
        return
    conn.execute(_UPSERT[conn.dialect.name], [
        {"person_id": c.person_id, "version": c.version, "rules": rules,
         "holds_until": c.holds_until} for c in checks])


_DUE = or_(person_checks.c.person_id.is_(None),
           person_checks.c.version != persons.c.version,
           person_checks.c.rules != bindparam("rules"),
           person_checks.c.holds_until < bindparam("today"))
_SCAN = (select(persons.c.id, case((_DUE, True), else_=False).label("due"))
         .select_from(persons.outerjoin(person_checks))
         .order_by(persons.c.id))


def scan_due(conn: Connection, *, after: str | None, lower: str | None, upper: str | None,
             limit: int, rules: str, today: date) -> list[tuple[str, bool]]:
    """Up to ``limit`` person ids in order (greater than ``after``, at least ``lower``, less
    than ``upper``; each bound left out when None), each with whether the sweep must look
    at them again on ``today`` under ``rules``."""
    query = _SCAN.limit(limit)
    if after is not None:
        query = query.where(persons.c.id > after)
    if lower is not None:
        query = query.where(persons.c.id >= lower)
    if upper is not None:
        query = query.where(persons.c.id < upper)
    return [(pid, bool(due)) for pid, due in
            conn.execute(query, {"rules": rules, "today": today})]
